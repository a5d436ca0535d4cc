/*
 * What sluice-control tells systemd, and when (notify.h; lib/sdnotify.h
 * sends it). Errors are ignored: systemd being away never stops the
 * control plane.
 */
#include <stdio.h>
#include <stdint.h>

#include "clock.h"
#include "notify.h"
#include "sdnotify.h"

void ctl_notify_ready(const char *socket)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %.300s; the dataplane is not "
		 "attached yet", socket);
	sdnotify_send(msg);
}

void ctl_notify_reloading(void)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		 (unsigned long long)clock_mono_us());
	sdnotify_send(msg);
}

void ctl_notify_reloaded(bool ok, long long generation, const char *err)
{
	char msg[512];

	if (ok)
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=reloaded: the dataplane serves "
			 "generation %lld", generation);
	else
		snprintf(msg, sizeof(msg), "READY=1\nSTATUS=the last reload was refused: %.400s",
			 err);
	sdnotify_send(msg);
}

void ctl_notify_stopping(const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", why);
	sdnotify_send(msg);
}

void ctl_notify_attached(bool attached, const char *dataplane_socket)
{
	static int was = -1;
	char msg[512];

	if (was == (int)attached)
		return;
	was = attached;
	snprintf(msg, sizeof(msg), "STATUS=%s %.300s", attached ? "attached to the dataplane at"
		 : "waiting for the dataplane at", dataplane_socket);
	sdnotify_send(msg);
}

void ctl_notify_watchdog(void)
{
	static uint64_t last;
	uint64_t usec = sdnotify_watchdog_usec(), now;

	if (!usec)
		return;
	now = clock_mono_us();
	/* A quarter: a poll pass may take a second. */
	if (last && now - last < usec / 4)
		return;
	last = now;
	sdnotify_send("WATCHDOG=1");
}
