/*
 * tickets.export: the ticket keys this sluice-control makes, with their
 * windows, written to a file for the other boxes of a fleet, which read a
 * copy of it as their tickets.key_file (docs/fleet.md). Written whenever
 * the ring changes (a new window's key, one retired, a rotation) and at
 * start, atomically: a new file beside it (mode 0600, the process's
 * owner), flushed to disk, renamed over the old one, so that whoever
 * copies it at any moment gets a whole file. The next window's key is in
 * the ring one window ahead, so a copy that reaches the boxes within a
 * window is never late: they switch to it by their own clocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control/ticket_export.h"
#include "control/tickets.h"

int tk_export(const char *path, long long now, char *err, size_t errlen)
{
	char tmp[4096 + 16], stamp[32];
	struct tm tm;
	time_t t = (time_t)now;
	FILE *f = NULL;
	int fd, n = -EIO;

	if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 ||
	    !(f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	setvbuf(f, NULL, _IONBF, 0);
	if (!gmtime_r(&t, &tm) || !strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(stamp, sizeof(stamp), "?");
	if (fprintf(f, "# sluice session-ticket keys, written by sluice-control at %s.\n"
		    "# NOT_BEFORE NOT_AFTER KEY: each key seals from NOT_BEFORE (the newest\n"
		    "# whose time has come) and opens tickets until NOT_AFTER. Copy this file\n"
		    "# to every box of the fleet as its tickets.key_file (mode 0600).\n",
		    stamp) >= 0)
		n = tk_ring_write(f);
	if (n >= 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		n = -errno;
	if (fclose(f) != 0 && n >= 0)
		n = -errno;
	if (n >= 0 && rename(tmp, path) != 0)
		n = -errno;
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(-n));
		(void)unlink(tmp);
	}
	return n;
}
