/*
 * sluice-control's messages to systemd (sd_notify(3)), for a Type=notify
 * unit (debian/sluice-control.service): every call into libsystemd is in
 * notify.c, and each does nothing without NOTIFY_SOCKET (not started by
 * systemd) or without libsystemd (-Dsystemd=disabled).
 *
 *   READY=1      the admin socket and the metrics endpoint listen
 *                (control_main.c); the dataplane need not be up: it is
 *                attached whenever it comes, and STATUS= says so
 *   RELOADING=1  a reload (SIGHUP, sluicectl reload) began;
 *   READY=1      it ended, loaded or refused (reload.c)
 *   STOPPING=1   SIGTERM/SIGINT: sluice-control stops (the dataplane and
 *                its sessions go on)
 *   WATCHDOG=1   with WatchdogSec=, from the poll loop (at most a second
 *                a pass)
 */
#ifndef SLUICE_CTL_NOTIFY_H
#define SLUICE_CTL_NOTIFY_H

#include <stdbool.h>

void ctl_notify_ready(const char *socket);
void ctl_notify_reloading(void);
void ctl_notify_reloaded(bool ok, long long generation, const char *err);
void ctl_notify_stopping(const char *why);
/* STATUS= when the dataplane is attached or lost (called every pass: sends
 * only on a change). */
void ctl_notify_attached(bool attached, const char *dataplane_socket);
void ctl_notify_watchdog(void);

#endif
