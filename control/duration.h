/*
 * A duration in seconds as sluicectl prints it: "3d04h", "1h02m", "5m07s",
 * "42s" (two units at most: a glance, not a timestamp). One place for
 * `status`, `tickets show` and `top`.
 */
#ifndef SLUICE_CTL_DURATION_H
#define SLUICE_CTL_DURATION_H

#include <stddef.h>
#include <stdio.h>

static inline const char *fmt_duration(long long s, char *b, size_t n)
{
	if (s >= 86400)
		snprintf(b, n, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(b, n, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(b, n, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(b, n, "%llds", s);
	return b;
}

#endif
