/* Logging: start-up messages and the one key=value line per connection. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stddef.h>
#include <sys/socket.h>

#include "config.h"

void log_init(enum cfg_log_target t);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "1.2.3.4:25" or "[::1]:25" */
char *fmt_addr(const struct sockaddr_storage *ss, char *out, size_t len);

#endif
