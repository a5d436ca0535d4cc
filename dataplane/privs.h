/*
 * Privileges of the dataplane (issue 12, docs/operations.md "Running
 * without root"): it starts as root to bind its ports and read its keys,
 * then becomes `user:`, or stays root only if `run_as_root: true` says so,
 * and then with no capability but binding a port (a reload may add a
 * listener below 1024).
 */
#ifndef SLUICE_PRIVS_H
#define SLUICE_PRIVS_H

#include <stddef.h>

#include "conf.h"

/* Before anything is bound: refuse to go on as root without user: or
 * run_as_root: true (-EPERM, err says which key and the fix), and set
 * PR_SET_NO_NEW_PRIVS for the threads to come. 0 or -errno. */
int privs_start(const struct cfg *c, char *err, size_t errlen);

/* Ports bound: cut the capabilities (and the bounding set) to what is left
 * to do before privs_drop. 0 or -errno with err filled. */
int privs_bound(const struct cfg *c, char *err, size_t errlen);

/* Ports bound, keys read, the control socket made: become c->user (no
 * capability left, the bounding set emptied), or as root keep only
 * CAP_NET_BIND_SERVICE; then not dumpable. 0 or -errno with err filled. */
int privs_drop(const struct cfg *c, char *err, size_t errlen);

#endif
