/*
 * What config.c shares with the loader's other parts (config_native.c):
 * the load context, the error helpers and the schema pieces. Not for the
 * rest of sluice, which reads config.h.
 */
#ifndef SLUICE_CONFIG_INT_H
#define SLUICE_CONFIG_INT_H

#include <stdbool.h>

#include <cyaml/cyaml.h>

#include "config.h"

#define CFG_PATH_MAX  256

struct cfg_ld;

/* An error about the value at path, on its line; returns -EINVAL. */
int cfg_err(struct cfg_ld *ld, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "out of memory"; returns -ENOMEM. */
int cfg_oom(struct cfg_ld *ld);
/* Was path written in the document? */
bool cfg_present(const struct cfg_ld *ld, const char *path);
/* Line of path (of its key if key, else of its value). */
unsigned cfg_line(const struct cfg_ld *ld, const char *path, bool key, bool last);
/* Check lo <= *v <= hi, or apply def if path is absent; 0 or -EINVAL. */
int cfg_uint(struct cfg_ld *ld, const char *path, unsigned *v, unsigned def, unsigned lo,
	     unsigned hi);

/* The schema of the `native` mapping (config_native.c). */
extern const cyaml_schema_field_t cfg_native_fields[];
/* Defaults, addresses and cross-checks of the native section (listeners on
 * a port's address, backends reachable from a port). 0 or -EINVAL/-ENOMEM. */
int cfg_check_native(struct cfg_ld *ld, struct cfg *c);

#endif
