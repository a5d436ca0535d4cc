/*
 * The allocator's own figures (jemalloc's stats.*): what the program holds
 * (allocated) against what the process keeps resident. RSS alone cannot
 * tell a leak from pages an allocator keeps for reuse.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct memstat {
	uint64_t allocated;	/* bytes the program holds */
	uint64_t active;	/* bytes in pages with live allocations */
	uint64_t resident;	/* bytes of the allocator's pages in memory */
	uint64_t mapped;	/* bytes mapped by the allocator */
	uint64_t retained;	/* bytes unmapped-but-kept address space */
};

/* Fills *m and returns true when the allocator can tell (jemalloc). */
bool memstat_read(struct memstat *m);
