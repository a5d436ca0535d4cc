/* Who may use the admin socket (docs/control.md): root, or a member of
 * control.admin_group, as the kernel says the peer is (SO_PEERCRED). */
#ifndef SLUICE_CTL_PEER_H
#define SLUICE_CTL_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * May the peer of the connected UNIX socket fd ask? true if its uid is 0,
 * or admin_group (NULL: none) is its gid or one of its user's groups (the
 * group database: getgrouplist). Else false with the reason in why. *uid
 * and *pid say who it was, for the log.
 */
bool peer_allowed(int fd, const char *admin_group, uid_t *uid, pid_t *pid, char *why,
		  size_t whylen);

#endif
