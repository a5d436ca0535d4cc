/*
 * Privileges of the dataplane (privs.h). The order in app_start():
 *
 *   privs_start   refuse root without user:/run_as_root; NO_NEW_PRIVS
 *   io_setup      ports bound (DPDK initialised) with all of root's power
 *   privs_bound   capabilities cut to what is left to do: as run_as_root,
 *                 CAP_NET_BIND_SERVICE only; before user:, what setuid and
 *                 the control socket need. The bounding set is emptied
 *                 alike. The TLS workers, the control thread and the
 *                 cores are started after it and inherit the cut sets.
 *   ctl_start     the control socket, made as root
 *   privs_drop    user: setuid (every thread: glibc's setxid), no
 *                 capability left; then not dumpable
 *
 * Capabilities are per thread: threads started inside io_setup (DPDK's
 * lcores and interrupt thread) keep root's until setuid clears them; with
 * run_as_root they keep them (docs/operations.md).
 */
#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <syslog.h>
#include <unistd.h>

#include <linux/capability.h>

#include "harden.h"
#include "log.h"
#include "privs.h"
#include "sluice-build.h"

#if HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#define CAPBIT(c) (1ull << (c))

/* The capabilities of the calling thread: effective and permitted set to
 * keep (within what it has), inheritable none. */
static int caps_set(uint64_t keep)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uint64_t perm;

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	perm = (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
	keep &= perm;
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = (uint32_t)keep;
	d[1].effective = d[1].permitted = (uint32_t)(keep >> 32);
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

/* Empty the bounding set but keep (needs CAP_SETPCAP: as root only), and
 * the ambient set. 0 or -errno. */
static int caps_bound(uint64_t keep)
{
	for (unsigned cap = 0; cap < 64; cap++) {
		if (keep & CAPBIT(cap))
			continue;
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
			break;  /* EINVAL: past the kernel's last capability */
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	}
	(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	return 0;
}

/*
 * jemalloc starts its purging thread at its first allocation, before
 * main(): it would keep root's capabilities and lack NO_NEW_PRIVS. Stop
 * it and start it again, now that this thread's sets are the ones to
 * inherit.
 */
static void restart_allocator_thread(void)
{
#if HAVE_JEMALLOC
	bool off = false, on = true, was = false;
	size_t sz = sizeof(was);

	if (mallctl("background_thread", &was, &sz, &off, sizeof(off)) == 0 && was)
		(void)mallctl("background_thread", NULL, NULL, &on, sizeof(on));
#endif
}

int privs_start(const struct cfg *c, char *err, size_t errlen)
{
	int rc;

	if (geteuid() == 0 && !c->user && !c->run_as_root) {
		snprintf(err, errlen, "%s: user: not set, and sluice was started as root: it "
			 "would keep running as root. Set `user: NAME` (an unprivileged user, "
			 "e.g. sluice or nobody) to drop root once the ports are bound, or "
			 "`run_as_root: true` to keep root on purpose (docs/operations.md, "
			 "\"Running without root\")", c->path ? c->path : "(embedded default)");
		return -EPERM;
	}
	if ((rc = harden_no_new_privs()) < 0)
		snprintf(err, errlen, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(-rc));
	return rc;
}

int privs_bound(const struct cfg *c, char *err, size_t errlen)
{
	/* Left to do as root before user:: make the control socket (and its
	 * folder), then become the user. */
	const uint64_t before_user = CAPBIT(CAP_SETUID) | CAPBIT(CAP_SETGID) |
				     CAPBIT(CAP_CHOWN) | CAPBIT(CAP_FOWNER) |
				     CAPBIT(CAP_DAC_OVERRIDE);
	/* A reload may bind a new listener below 1024. */
	const uint64_t keep = CAPBIT(CAP_NET_BIND_SERVICE);
	int rc;

	if (geteuid() == 0 && (rc = caps_bound(c->user ? 0 : keep)) < 0) {
		snprintf(err, errlen, "cannot empty the capability bounding set: %s", strerror(-rc));
		return rc;
	}
	if ((rc = caps_set(c->user ? before_user | keep : keep)) < 0) {
		snprintf(err, errlen, "cannot drop capabilities: %s", strerror(-rc));
		return rc;
	}
	restart_allocator_thread();
	return 0;
}

/* Become user (its uid, gid and groups) for good: every thread, as glibc
 * applies set*id to all of them. */
static int become_user(const char *user, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(user);

	if (!pw) {
		snprintf(err, errlen, "user: no such user '%s'", user);
		return -ENOENT;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "cannot become user '%s': %s", user, strerror(errno));
		return -errno;
	}
	if (pw->pw_uid != 0 && setuid(0) == 0) { /* must not be able to come back */
		snprintf(err, errlen, "cannot drop root for user '%s'", user);
		return -EPERM;
	}
	return 0;
}

int privs_drop(const struct cfg *c, char *err, size_t errlen)
{
	int rc;

	/* Started without root (the embedded default by a developer): there
	 * is no root to drop, and no way to become another user. */
	if (c->user && geteuid() != 0) {
		struct passwd *pw = getpwnam(c->user);

		if (!pw || pw->pw_uid != geteuid())
			log_msg(LOG_NOTICE, "user: %s: not started as root, so running as "
				"uid %u", c->user, (unsigned)geteuid());
	} else if (c->user && (rc = become_user(c->user, err, errlen)) < 0) {
		return rc;
	}
	/* Nothing left: setuid cleared them already unless user: is root. */
	if (c->user && (rc = caps_set(0)) < 0) {
		snprintf(err, errlen, "cannot drop capabilities: %s", strerror(-rc));
		return rc;
	}
	/* The keys are loaded: no core dump, no ptrace of them from now on. */
	if ((rc = harden_no_dump()) < 0)
		snprintf(err, errlen, "prctl(PR_SET_DUMPABLE): %s", strerror(-rc));
	return rc;
}
