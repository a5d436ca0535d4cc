/*
 * Single-producer/single-consumer ring of pointers (Lamport), the hand-over
 * between a dataplane core and a TLS worker. One side only pushes, the other
 * only pops; head and tail sit on separate cache lines. Size is a power of
 * two. Ownership of a pushed object moves to the consumer; on a full ring the
 * producer still owns it.
 */
#ifndef SLUICE_RING_H
#define SLUICE_RING_H

#include <errno.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct ring {
	alignas(64) _Atomic uint32_t head; /* next slot to pop, written by consumer */
	alignas(64) _Atomic uint32_t tail; /* next slot to push, written by producer */
	alignas(64) uint32_t mask;
	void **slot;
};

static inline bool ring_push(struct ring *r, void *p)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint32_t h = atomic_load_explicit(&r->head, memory_order_acquire);

	if (t - h > r->mask)
		return false;
	r->slot[t & r->mask] = p;
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
	return true;
}

static inline void *ring_pop(struct ring *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
	void *p;

	if (h == t)
		return NULL;
	p = r->slot[h & r->mask];
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return p;
}

/* size must be a power of two. Returns 0 or -ENOMEM. */
static inline int ring_init(struct ring *r, uint32_t size)
{
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	r->mask = size - 1;
	r->slot = calloc(size, sizeof(void *));
	return r->slot ? 0 : -ENOMEM;
}

/* Free the slots; what they still point to is the caller's. */
static inline void ring_fini(struct ring *r)
{
	free(r->slot);
	r->slot = NULL;
}

#endif
