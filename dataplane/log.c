#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "logline.h"

static enum cfg_log_target log_target = CFG_LOG_STDERR;

void log_init(enum cfg_log_target t)
{
	log_target = t;
	if (t == CFG_LOG_SYSLOG)
		openlog("sluice", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

/* One write per line, so lines from several cores never interleave. */
void log_msg(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	logline_v("sluice", log_target == CFG_LOG_SYSLOG, prio, fmt, ap);
	va_end(ap);
}

char *fmt_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(s->sin6_port));
	} else {
		snprintf(out, len, "-");
	}
	return out;
}
