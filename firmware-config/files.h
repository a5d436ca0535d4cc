/*
 * The files a configuration names (certificates, keys, the ticket key
 * file), held in memory: what sluice-control reads as root and hands the
 * dataplane, which runs unprivileged and reads nothing from disk after
 * start-up. A NULL bundle means "read the disk".
 */
#ifndef SLUICE_FILES_H
#define SLUICE_FILES_H

#include <stddef.h>

struct cfg_file {
	char *path;
	char *data;       /* NUL-terminated copy of the contents */
	size_t len;
	unsigned mode;    /* st_mode & 07777 where it was read */
	unsigned uid, gid;
};

struct cfg_files {
	struct cfg_file *f;
	unsigned n;
};

/* The contents of path: from b when b is not NULL (-ENOENT if b does not
 * hold it), else from the disk. *out is a NUL-terminated malloc'd copy
 * the caller frees, *len its length (may be NULL). 0 or -errno. */
int cfg_file_read(const struct cfg_files *b, const char *path, char **out, size_t *len);
/* Add path to b, read from the disk (mode and owner kept); a path already
 * held is not read twice. 0 or -errno. */
int cfg_files_add(struct cfg_files *b, const char *path);
/* Add contents under path (a staged file that is not on disk yet). */
int cfg_files_put(struct cfg_files *b, const char *path, const char *data, size_t len,
		  unsigned mode);
const struct cfg_file *cfg_files_find(const struct cfg_files *b, const char *path);
/* Wipe (the keys) and free every file; b itself is not freed. */
void cfg_files_clear(struct cfg_files *b);

#endif
