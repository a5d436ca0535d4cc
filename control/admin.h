/* The admin socket that sluicectl talks to (docs/control.md): created,
 * its peers checked, its requests read and dispatched by verbs.def. */
#ifndef SLUICE_CTL_ADMIN_H
#define SLUICE_CTL_ADMIN_H

#include <poll.h>

#include "config.h"
#include "ctl.h"

/*
 * Create the socket at k->socket: its folder made 0750 if missing, a stale
 * socket of a dead sluice-control replaced (a live one: -EADDRINUSE), mode
 * 0660 group admin_group when one is set, else 0600. 0 or -errno with the
 * reason in err.
 */
int adm_listen(struct ctl *ctl, const struct cfg_control *k, char *err, size_t errlen);
void adm_close(struct ctl *ctl);
/* Fill pfd[0..) with the listening socket and the clients; returns how
 * many. ids[i] names the client of pfd[i] (0: the listening socket). */
unsigned adm_pollfds(struct ctl *ctl, struct pollfd *pfd, unsigned long long *ids);
void adm_ready(struct ctl *ctl, unsigned long long id, short revents, const char *admin_group);
/* Drop clients past their deadline. */
void adm_tick(struct ctl *ctl);
long long adm_next_ms(const struct ctl *ctl);

#endif
