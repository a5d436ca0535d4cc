/* The control command `hellos` (ctl_hellos.c). */
#ifndef SLUICE_CTL_HELLOS_H
#define SLUICE_CTL_HELLOS_H

#include <stddef.h>

#include <jansson.h>

/* req {"since": seconds, default 86400}; fills ans["hellos"] with
 * [{listener, ja4, hello (hex), hello_len (only when cut), client, count,
 * ok, fail, first_seen, last_seen, version}], ans["others"] (hellos not
 * kept, tables full) and ans["now"]. 0, or <0 with err. */
int ctl_hellos(json_t *req, json_t *ans, char *err, size_t errlen);

#endif
