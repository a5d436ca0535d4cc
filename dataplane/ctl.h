/*
 * The dataplane's control socket (docs/control.md): a thread of its own,
 * never a core, serving newline-delimited JSON requests from
 * sluice-control (or any root client) on control.dataplane_socket. The
 * commands are listed once in ctl_cmds.def; each handler lives with the
 * part it belongs to and runs on this thread: it may read the cores'
 * counters and tables racily and set flags the cores read at the top of
 * their loop pass, and must never block for long.
 */
#ifndef SLUICE_CTL_H
#define SLUICE_CTL_H

#include <stddef.h>

#include <jansson.h>

/* A handler: fields of the answer into ans; 0, or <0 with err filled. */
typedef int ctl_handler(json_t *req, json_t *ans, char *err, size_t errlen);

#define CMD(name, fn, help) ctl_handler fn;
#include "ctl_cmds.def"
#undef CMD

/* Bind path (0600; its folder made 0750 if missing; a stale socket of a
 * dead process replaced) and start the thread; tick runs on it about once
 * a second. 0 or -errno with err. */
int ctl_start(const char *path, void (*tick)(void), char *err, size_t errlen);
void ctl_stop(void);
/* Start of service, for status's uptime (ctl_status.c). */
void ctl_status_started(void);
long long ctl_status_start_s(void);

/* Helpers for handlers: a JSON field as a number / bool / string with a
 * default. */
long long ctl_int(const json_t *req, const char *key, long long def);
int ctl_bool(const json_t *req, const char *key, int def);
const char *ctl_str(const json_t *req, const char *key);

#endif
