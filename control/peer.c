/* The admin socket's peer check (peer.h). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peer.h"

/* Is gid among the groups of user name (primary gid pgid)? */
static bool user_in_group(const char *name, gid_t pgid, gid_t gid)
{
	int n = 64;
	gid_t *g = NULL;
	bool in = false;

	for (int tries = 0; tries < 4; tries++) {
		gid_t *q = realloc(g, (size_t)n * sizeof(*g));
		int want = n;

		if (!q)
			break;
		g = q;
		if (getgrouplist(name, pgid, g, &want) >= 0) {
			for (int i = 0; i < want; i++)
				in |= g[i] == gid;
			break;
		}
		n = want > n ? want : n * 2;
	}
	free(g);
	return in;
}

bool peer_allowed(int fd, const char *admin_group, uid_t *uid, pid_t *pid, char *why,
		  size_t whylen)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	struct passwd pw, *pwp = NULL;
	struct group gr, *grp = NULL;
	char buf[4096];

	*uid = (uid_t)-1;
	*pid = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		snprintf(why, whylen, "cannot read the peer's credentials: %s", strerror(errno));
		return false;
	}
	*uid = cr.uid;
	*pid = cr.pid;
	if (cr.uid == 0)
		return true;
	if (!admin_group) {
		snprintf(why, whylen, "permission denied: uid %u is not root (no control.admin_group "
			 "is configured)", (unsigned)cr.uid);
		return false;
	}
	if (getgrnam_r(admin_group, &gr, buf, sizeof(buf), &grp) != 0 || !grp) {
		snprintf(why, whylen, "permission denied: control.admin_group '%s' does not exist",
			 admin_group);
		return false;
	}
	if (cr.gid == grp->gr_gid)
		return true;
	{
		gid_t gid = grp->gr_gid;     /* buf is reused below */
		char pbuf[4096];

		if (getpwuid_r(cr.uid, &pw, pbuf, sizeof(pbuf), &pwp) == 0 && pwp &&
		    user_in_group(pwp->pw_name, pwp->pw_gid, gid))
			return true;
	}
	snprintf(why, whylen, "permission denied: uid %u is neither root nor in group %s",
		 (unsigned)cr.uid, admin_group);
	return false;
}
