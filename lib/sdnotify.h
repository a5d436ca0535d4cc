/*
 * sd_notify(3) for both programs (dataplane/notify.c, control/notify.c say
 * what each sends when). libsystemd's sd_notify() returns 0 without
 * NOTIFY_SOCKET, so a program started from a shell sends nothing; errors
 * are ignored: systemd being away must never stop the mail. Without
 * libsystemd (-Dsystemd=disabled) both calls do nothing.
 */
#ifndef SLUICE_SDNOTIFY_H
#define SLUICE_SDNOTIFY_H

#include <stdint.h>

#include "sluice-build.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static inline void sdnotify_send(const char *msg)
{
	(void)sd_notify(0, msg);
}

/* WatchdogSec= in µs (0: none), read once: WATCHDOG_USEC and WATCHDOG_PID
 * do not change while the process runs. */
static inline uint64_t sdnotify_watchdog_usec(void)
{
	static int known;
	static uint64_t usec;

	if (!known) {
		known = 1;
		if (sd_watchdog_enabled(0, &usec) <= 0)
			usec = 0;
	}
	return usec;
}
#else
static inline void sdnotify_send(const char *msg)
{
	(void)msg;
}

static inline uint64_t sdnotify_watchdog_usec(void)
{
	return 0;
}
#endif

#endif
