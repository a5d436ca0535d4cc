/*
 * The dataplane's messages to systemd (sd_notify(3)), for a Type=notify
 * unit (debian/sluice.service): every call of sluice into libsystemd is in
 * notify.c. Without NOTIFY_SOCKET in the environment (not started by
 * systemd) each call does nothing; built without libsystemd (-Dsystemd=
 * disabled) neither.
 *
 *   READY=1        the listeners are bound and listening, root is dropped,
 *                  the cores run (main.c, after app_start)
 *   RELOADING=1    a reload (SIGHUP, or a load from sluice-control) began;
 *   READY=1        it ended, taken or refused (reload.c)
 *   STOPPING=1     a drain that ends the process: SIGTERM/SIGINT at once;
 *                  a drain from the control socket when it is over, since
 *                  `undrain` can take it back and systemd cannot (main.c)
 *   STATUS=...     one line for `systemctl status`: what serves, reloads,
 *                  drains
 *   WATCHDOG=1     with WatchdogSec=, from the main thread's once-a-second
 *                  tick, while every core has run a loop pass within half
 *                  of WatchdogSec: a core stuck in one pass stops the
 *                  pings (STATUS= names it) and systemd restarts sluice
 */
#ifndef SLUICE_NOTIFY_H
#define SLUICE_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* READY=1 with a STATUS= line naming what serves. */
void notify_ready(unsigned n_listeners, unsigned cores, const char *stack, uint64_t gen);
/* RELOADING=1 (and MONOTONIC_USEC=, which systemd 253 and later want). */
void notify_reloading(const char *source);
/* READY=1 again after a reload; STATUS= says which generation serves and,
 * when refused, why. */
void notify_reloaded(bool ok, uint64_t gen, const char *err);
/* STOPPING=1 with STATUS=why. */
void notify_stopping(const char *why);
/* STATUS= alone (printf-style). */
void notify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* WATCHDOG=1 when the unit has WatchdogSec= and a quarter of it has
 * passed since the last one, unless core `stalled` has not passed its loop
 * for stalled_ms, half of WatchdogSec or more. The main thread, at least
 * once a second. */
void notify_watchdog(unsigned stalled, uint64_t stalled_ms);

#endif
