/*
 * sd_notify(3) for the dataplane (notify.h says what is sent when).
 * libsystemd's sd_notify() returns 0 without NOTIFY_SOCKET, so a sluice
 * started from a shell sends nothing; errors are ignored: systemd being
 * away must never stop the mail.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"
#include "notify.h"
#include "sluice-build.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void send_msg(const char *msg)
{
	(void)sd_notify(0, msg);
}

/* The watchdog's interval in µs (0: none), read once: WATCHDOG_USEC and
 * WATCHDOG_PID do not change while the process runs. */
static uint64_t watchdog_usec(void)
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
static void send_msg(const char *msg)
{
	(void)msg;
}

static uint64_t watchdog_usec(void)
{
	return 0;
}
#endif

void notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	send_msg(msg);
}

void notify_ready(unsigned n_listeners, unsigned cores, const char *stack, uint64_t gen)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %u listeners on %u cores (%s stack), "
		 "generation %llu", n_listeners, cores, stack, (unsigned long long)gen);
	send_msg(msg);
}

void notify_reloading(const char *source)
{
	char msg[256];

	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading (%s)",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000,
		 source);
	send_msg(msg);
}

void notify_reloaded(bool ok, uint64_t gen, const char *err)
{
	char msg[512];

	if (ok)
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving generation %llu (reloaded)",
			 (unsigned long long)gen);
	else
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving generation %llu; the last "
			 "reload was refused: %.400s", (unsigned long long)gen, err);
	send_msg(msg);
}

void notify_stopping(const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", why);
	send_msg(msg);
}

void notify_watchdog(unsigned stalled, uint64_t stalled_ms)
{
	static uint64_t last_ms;
	static bool said;          /* the stall's STATUS= line was sent */
	uint64_t usec = watchdog_usec(), now;

	if (!usec)
		return;
	if (stalled_ms * 1000ull >= usec / 2) {
		if (!said)
			notify_status("core %u has not passed its loop for %llu ms: no more "
				      "WATCHDOG=1", stalled, (unsigned long long)stalled_ms);
		said = true;
		return;
	}
	if (said)
		notify_status("every core runs again");
	said = false;
	now = clock_mono_ms();
	/* A quarter: the caller's tick is a second, so WatchdogSec=4s holds. */
	if (last_ms && (now - last_ms) * 1000ull < usec / 4)
		return;
	last_ms = now;
	send_msg("WATCHDOG=1");
}
