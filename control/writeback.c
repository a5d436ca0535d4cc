/* Atomic write-back of committed files (writeback.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "writeback.h"

int writeback_file(const char *path, const char *data, size_t len, unsigned mode, unsigned uid,
		   unsigned gid, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *step;
	size_t off = 0;
	int fd, dfd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	/* O_EXCL: a .tmp left by a crash is removed, never written through
	 * (it could be a link planted there). */
	(void)unlink(tmp);
	step = "create";
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		goto sys;
	/* Owner first, then mode: a key never readable by whom it should not be. */
	step = "chown";
	if (fchown(fd, uid, gid) < 0 && errno != EPERM)
		goto sys_fd;
	step = "chmod";
	if (fchmod(fd, mode & 07777) < 0)
		goto sys_fd;
	step = "write";
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			goto sys_fd;
		off += (size_t)w;
	}
	step = "fsync";
	if (fsync(fd) < 0)
		goto sys_fd;
	close(fd);
	step = "rename";
	if (rename(tmp, path) < 0)
		goto sys_tmp;
	/* The rename itself made durable. */
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
sys_fd:
	rc = -errno;
	close(fd);
	(void)unlink(tmp);
	snprintf(err, errlen, "%s: cannot %s %s: %s", path, step, tmp, strerror(-rc));
	return rc;
sys_tmp:
	rc = -errno;
	(void)unlink(tmp);
	snprintf(err, errlen, "%s: cannot %s %s over it: %s", path, step, tmp, strerror(-rc));
	return rc;
sys:
	rc = -errno;
	snprintf(err, errlen, "%s: cannot %s %s: %s", path, step, tmp, strerror(-rc));
	return rc;
}
