/*
 * Process hardening both processes apply once started (issue 12): no
 * privilege can be gained through execve (PR_SET_NO_NEW_PRIVS, inherited
 * by every thread created after it), and no core dump or ptrace of a
 * process that holds private keys and ticket keys (PR_SET_DUMPABLE 0:
 * /proc/PID/{mem,environ,...} then belong to root, and a crash leaves no
 * key material on disk).
 */
#ifndef SLUICE_HARDEN_H
#define SLUICE_HARDEN_H

#include <errno.h>
#include <sys/prctl.h>

/* No new privileges through execve, for this thread and what it starts. */
static inline int harden_no_new_privs(void)
{
	return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? -errno : 0;
}

/* No core dumps, no ptrace by other users: once the keys are loaded. A
 * setuid() resets it to the system's suid_dumpable, so call it after. */
static inline int harden_no_dump(void)
{
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 ? -errno : 0;
}

#endif
