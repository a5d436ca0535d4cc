/* Committed changes written back to disk so that a restart comes up with
 * what runs (docs/control.md, "Files"). */
#ifndef SLUICE_CTL_WRITEBACK_H
#define SLUICE_CTL_WRITEBACK_H

#include <stddef.h>

/*
 * Replace path's contents atomically: PATH.tmp in the same folder with
 * mode, uid and gid, written, fsync'd, renamed over path, the folder
 * fsync'd. A reader sees the old file or the new one, never a mix. 0, or
 * -errno with "PATH: reason" in err (path left as it was).
 */
int writeback_file(const char *path, const char *data, size_t len, unsigned mode, unsigned uid,
		   unsigned gid, char *err, size_t errlen);

#endif
