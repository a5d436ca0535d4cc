/*
 * Tables of a fixed size, committed at start. calloc() of a large table
 * maps zero pages that become resident only when first written, so a
 * session cache or a statistics table filling over hours looks like RSS
 * creeping up (a leak, to an operator's eye and to the soak). The pages
 * of such a table are written here once, so that the memory a bounded
 * table costs is visible, and fixed, from the first second.
 *
 *   calloc_resident(n, size)   calloc() whose every page is resident
 */
#ifndef SLUICE_RESIDENT_H
#define SLUICE_RESIDENT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline void *calloc_resident(size_t n, size_t size)
{
	size_t bytes;
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	bytes = n * size;
	if (!(p = malloc(bytes > 0 ? bytes : 1)))
		return NULL;
	/* explicit_bzero: a compiler may fold malloc()+memset() into calloc() */
	explicit_bzero(p, bytes);
	return p;
}

#endif
