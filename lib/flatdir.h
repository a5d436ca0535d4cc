/*
 * Remove a directory that holds only files (no subdirectories): DPDK's EAL
 * leaves its runtime directory (/var/run/dpdk/PREFIX, with its config
 * files) behind, and each program that runs an EAL of its own prefix
 * (the dataplane, the bench's native rig, memif-flap) removes it on exit.
 * Best effort: what cannot be removed stays.
 */
#ifndef SLUICE_FLATDIR_H
#define SLUICE_FLATDIR_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

static inline void flatdir_remove(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' &&
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path))
			unlink(path);
	closedir(d);
	rmdir(dir);
}

#endif
