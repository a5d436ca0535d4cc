/*
 * One log line, written once: syslog, or "NAME[PID]: text\n" on stderr in
 * a single write() so that lines from several threads never interleave.
 * The dataplane's log_msg and sluice-control's ctl_log are this with
 * their name.
 */
#ifndef SLUICE_LOGLINE_H
#define SLUICE_LOGLINE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>
#include <unistd.h>

static inline void logline_v(const char *name, bool to_syslog, int prio, const char *fmt,
			     va_list ap)
{
	char line[2048];
	int n, o;

	if (to_syslog) {
		vsyslog(prio, fmt, ap);
		return;
	}
	o = snprintf(line, sizeof(line), "%s[%d]: ", name, (int)getpid());
	n = vsnprintf(line + o, sizeof(line) - (size_t)o - 1, fmt, ap);
	if (n < 0)
		return;
	n += o;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n); /* nowhere else to say it */
}

#endif
