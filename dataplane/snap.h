/*
 * Configuration snapshots (docs/control.md): everything a reload may
 * change — the parsed configuration, the listeners' run-time settings, the
 * cert sets and the workers' SSL_CTXs — built off the cores, published by
 * one pointer swap, never edited after.
 *
 * Each core takes the current snapshot at the top of its loop pass
 * (snap_enter) and says so by storing its generation; a session takes the
 * snapshot of the pass that accepted it and keeps it to its end with a
 * per-core count that only that core writes (no atomic read-modify-write
 * on any core). The control thread frees a retired snapshot once every
 * core has entered a newer one and no session of any core holds it.
 */
#ifndef SLUICE_SNAP_H
#define SLUICE_SNAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

#define SNAP_CORES_MAX 64

struct listener;
struct tlsw_ctxs;
struct be_pool;

struct snap {
	uint64_t gen;              /* 1 at start, +1 per load */
	struct tls_conf tc;        /* the configuration and its cert sets */
	struct listener *listeners; /* [tc.c->n_listeners] */
	unsigned n_listeners;
	struct tlsw_ctxs *ctxs;    /* every worker's SSL_CTXs */
	int *lfd;                  /* [core * n_listeners + i]: listener i's
				      socket on each core (kernel stack); NULL:
				      the stack's listeners are fixed */
	long long loaded_s;        /* wall clock */
	struct snap *next_retired;
	_Atomic uint32_t refs[SNAP_CORES_MAX]; /* sessions per core; each
				      written only by its core */
	bool keep_cfg;             /* the start-up configuration: the stack
				      and the backend pools point into it */
};

/*
 * A snapshot of tc (taken over: tc is zeroed) for the backend pools made at
 * start-up (matched by backend name). Listeners get their engine, pool and
 * cert sets; every worker's SSL_CTXs are built. NULL with err on failure
 * (tc is then still the caller's).
 */
struct snap *snap_build(struct tls_conf *tc, struct be_pool *pools, unsigned n_pools,
			char *err, size_t errlen);
/* Free a snapshot that was never published. */
void snap_discard(struct snap *s);
/* Make s the current snapshot (generation: one more than the last); the
 * one before is retired. From the control thread or main only. */
void snap_publish(struct snap *s);
/* The generation the next snap_publish() will give. */
uint64_t snap_next_gen(void);
/* The oldest generation a core is in (for closing what they all left). */
uint64_t snap_min_seen(void);
/* The current one (for the control thread and main). */
struct snap *snap_current(void);
/* Free the retired snapshots that no core can reach any more; returns how
 * many are still waiting. From the control thread or main. */
unsigned snap_reclaim(void);
/* At teardown, after the cores and workers stopped: free them all. */
void snap_free_all(void);

/* How many cores enter snapshots (before they start). */
void snap_cores(unsigned n);

/* A core's view: the snapshot for this pass (and its generation stored
 * for the reclaimer). */
struct snap *snap_enter(unsigned core);
static inline void snap_hold(struct snap *s, unsigned core)
{
	atomic_store_explicit(&s->refs[core],
			      atomic_load_explicit(&s->refs[core], memory_order_relaxed) + 1,
			      memory_order_relaxed);
}
static inline void snap_release(struct snap *s, unsigned core)
{
	atomic_store_explicit(&s->refs[core],
			      atomic_load_explicit(&s->refs[core], memory_order_relaxed) - 1,
			      memory_order_release);
}

#endif
