/*
 * The dataplane socket's ticket-key commands (ctl_tickets.c), listed in
 * ctl_cmds.def. Each fills ans and returns 0, or <0 with the reason in err.
 */
#ifndef SLUICE_CTL_TICKETS_H
#define SLUICE_CTL_TICKETS_H

#include <stddef.h>

#include <jansson.h>

int ctl_tickets(json_t *req, json_t *ans, char *err, size_t errlen);
int ctl_tickets_show(json_t *req, json_t *ans, char *err, size_t errlen);

#endif
