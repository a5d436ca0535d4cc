/*
 * The allocator's figures (memstat.h). jemalloc refreshes its statistics
 * when its "epoch" is advanced; the read is a few microseconds, on the
 * control thread only.
 */
#include "memstat.h"

#include <string.h>

#include "sluice-build.h"

#if HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>

static bool get(const char *name, uint64_t *v)
{
	size_t x = 0, sz = sizeof(x);

	if (mallctl(name, &x, &sz, NULL, 0) != 0)
		return false;
	*v = x;
	return true;
}

bool memstat_read(struct memstat *m)
{
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch);

	memset(m, 0, sizeof(*m));
	if (mallctl("epoch", &epoch, &sz, &epoch, sz) != 0)
		return false;
	return get("stats.allocated", &m->allocated) && get("stats.active", &m->active) &&
	       get("stats.resident", &m->resident) && get("stats.mapped", &m->mapped) &&
	       get("stats.retained", &m->retained);
}
#else
bool memstat_read(struct memstat *m)
{
	memset(m, 0, sizeof(*m));
	return false;
}
#endif
