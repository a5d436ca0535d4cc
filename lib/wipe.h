/*
 * Freed memory that held key material (issue 12, finding 4): private keys
 * and ticket keys travel as files read into buffers and as JSON strings
 * (hex) on the control sockets. Such a buffer is wiped before it goes back
 * to the allocator, and never left behind by a realloc that moves it.
 *
 *   wipe_free(p)          wipe the whole block (malloc_usable_size), free it
 *   wipe_grow(&p, old, n) a bigger block with the first old bytes; the old
 *                         block wiped and freed (realloc would free it as is)
 *   wipe_json_init()      every block jansson frees is wiped: its parser's
 *                         token buffers and the strings of a request hold
 *                         the keys' hex (once at start-up, before any JSON)
 */
#ifndef SLUICE_WIPE_H
#define SLUICE_WIPE_H

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static inline void wipe_free(void *p)
{
	if (p) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

/* *p (old bytes used) into a block of n bytes; 0 or -ENOMEM (*p kept). */
static inline int wipe_grow(char **p, size_t old, size_t n)
{
	char *q = malloc(n);

	if (!q)
		return -ENOMEM;
	if (*p)
		memcpy(q, *p, old < n ? old : n);
	wipe_free(*p);
	*p = q;
	return 0;
}

static inline void wipe_json_init(void)
{
	json_set_alloc_funcs(malloc, wipe_free);
}

#endif
