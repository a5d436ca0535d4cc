/* sluice-control's log (clog.h). */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "clog.h"
#include "logline.h"

static enum cfg_log_target target = CFG_LOG_STDERR;

void ctl_log_init(enum cfg_log_target t)
{
	if (t == CFG_LOG_SYSLOG && target != CFG_LOG_SYSLOG)
		openlog("sluice-control", LOG_PID | LOG_NDELAY, LOG_MAIL);
	target = t;
}

/* One write per line, as the dataplane does (lib/logline.h). */
void ctl_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	logline_v("sluice-control", target == CFG_LOG_SYSLOG, prio, fmt, ap);
	va_end(ap);
}
