/*
 * What the dataplane tells systemd, and when (notify.h; lib/sdnotify.h
 * sends it, and says why nothing fails when systemd is away).
 */
#include <stdarg.h>
#include <stdio.h>

#include "clock.h"
#include "notify.h"
#include "sdnotify.h"

void notify_status(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "STATUS=");

	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	sdnotify_send(msg);
}

void notify_ready(unsigned n_listeners, unsigned cores, const char *stack, uint64_t gen)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %u listeners on %u cores (%s stack), "
		 "generation %llu", n_listeners, cores, stack, (unsigned long long)gen);
	sdnotify_send(msg);
}

void notify_reloading(const char *source)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading (%s)",
		 (unsigned long long)clock_mono_us(), source);
	sdnotify_send(msg);
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
	sdnotify_send(msg);
}

void notify_stopping(const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", why);
	sdnotify_send(msg);
}

void notify_watchdog(unsigned stalled, uint64_t stalled_ms)
{
	static uint64_t last_ms;
	static bool said;          /* the stall's STATUS= line was sent */
	uint64_t usec = sdnotify_watchdog_usec(), now;

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
	sdnotify_send("WATCHDOG=1");
}
