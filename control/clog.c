/* sluice-control's log (clog.h). */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "clog.h"

static enum cfg_log_target target = CFG_LOG_STDERR;

void ctl_log_init(enum cfg_log_target t)
{
	if (t == CFG_LOG_SYSLOG && target != CFG_LOG_SYSLOG)
		openlog("sluice-control", LOG_PID | LOG_NDELAY, LOG_MAIL);
	target = t;
}

/* One write per line, as the dataplane does. */
void ctl_log(int prio, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n, o;

	va_start(ap, fmt);
	if (target == CFG_LOG_SYSLOG) {
		vsyslog(prio, fmt, ap);
		va_end(ap);
		return;
	}
	o = snprintf(line, sizeof(line), "sluice-control[%d]: ", (int)getpid());
	n = vsnprintf(line + o, sizeof(line) - (size_t)o - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n += o;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n); /* nowhere else to say it */
}
