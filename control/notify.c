/*
 * sd_notify(3) for sluice-control (notify.h says what is sent when). Errors
 * are ignored: systemd being away never stops the control plane.
 */
#include <stdio.h>
#include <stdint.h>
#include <time.h>

#include "notify.h"
#include "sluice-build.h"

#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

static void send_msg(const char *msg)
{
	(void)sd_notify(0, msg);
}

/* WatchdogSec= in µs, 0 without; read once (it does not change). */
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

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void ctl_notify_ready(const char *socket)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=serving %.300s; the dataplane is not "
		 "attached yet", socket);
	send_msg(msg);
}

void ctl_notify_reloading(void)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		 (unsigned long long)mono_us());
	send_msg(msg);
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
	send_msg(msg);
}

void ctl_notify_stopping(const char *why)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", why);
	send_msg(msg);
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
	send_msg(msg);
}

void ctl_notify_watchdog(void)
{
	static uint64_t last;
	uint64_t usec = watchdog_usec(), now;

	if (!usec)
		return;
	now = mono_us();
	/* A quarter: a poll pass may take a second. */
	if (last && now - last < usec / 4)
		return;
	last = now;
	send_msg("WATCHDOG=1");
}
