/*
 * Key material in static storage (ticket keys): a page of its own, locked
 * in RAM so that it is never swapped to disk, and left out of core dumps.
 * Declare it with SECMEM_PAGES(type, count) and call secmem_protect() once.
 */
#ifndef SLUICE_SECMEM_H
#define SLUICE_SECMEM_H

#include <errno.h>
#include <stddef.h>
#include <sys/mman.h>

#define SECMEM_PAGE 4096
/* Storage for count objects of type, rounded up to whole pages. */
#define SECMEM_PAGES(type, count)                                              \
	union {                                                                \
		type v[count];                                                 \
		unsigned char pages[(sizeof(type) * (count) + SECMEM_PAGE - 1) / \
				    SECMEM_PAGE * SECMEM_PAGE];                \
	} __attribute__((aligned(SECMEM_PAGE)))

/* Lock the pages at p (len bytes, page-aligned) and keep them out of core
 * dumps. Best effort: 0, or -errno of what failed (RLIMIT_MEMLOCK); the
 * keys work either way. */
static inline int secmem_protect(void *p, size_t len)
{
	int rc = 0;

	if (mlock(p, len) < 0)
		rc = -errno;
	if (madvise(p, len, MADV_DONTDUMP) < 0 && !rc)
		rc = -errno;
	return rc;
}

#endif
