/* sluice-control's log: stderr or syslog, as the configuration's log: says
 * (the dataplane's dataplane/log.c, under the name sluice-control). */
#ifndef SLUICE_CTL_CLOG_H
#define SLUICE_CTL_CLOG_H

#include <syslog.h>

#include "config.h"

void ctl_log_init(enum cfg_log_target t);
void ctl_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
