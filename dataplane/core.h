/*
 * A dataplane core: one thread, share-nothing. It owns its sessions, its
 * timer wheel, its counters and its stack's per-core state (listeners,
 * epoll set or native stacks), and nothing it owns is touched by another
 * thread, except the sessions' TLS buffers while a handshake job is out
 * with a worker. core.c runs the one loop; the stack plugs in through
 * c->io (io/io.h).
 */
#ifndef SLUICE_CORE_H
#define SLUICE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "counters.h"
#include "lslot.h"
#include "timer.h"

/* The handshake latency histogram's buckets (hs_buckets.def), +Inf last. */
enum {
#define B(us, le) HSB_##us,
#include "hs_buckets.def"
#undef B
	HSB__INF,
	HSB__COUNT
};

struct sess;
struct listener;
struct io_ops;

struct core {
	unsigned id;
	pthread_t thread;
	const struct io_ops *io;   /* the stack's calls (io/io.h) */
	void *io_core;             /* the stack's per-core state (kernel:
				      struct kern_core, native: struct nat_core) */
	int wake_fd;               /* rung by the workers when jobs come back */
	struct wheel wheel;
	uint64_t now_ms;           /* monotonic, refreshed once per loop */
	uint64_t next_id;
	struct sess *sessions;     /* all live sessions, for shutdown */
	struct sess *dead;         /* closed this loop, freed at its end */
	struct sess *again;        /* to run again next round (work left) */
	unsigned n_sess;
	/* Limits (conn_limits.h, session/admit.c). */
	bool stress;               /* stress mode: shorter timers, eviction */
	uint64_t accept_after_ms;  /* the stack does not accept before then
				      (EMFILE back-off, worker rings full) */
	struct sess *ph_head, *ph_tail; /* sessions before TLS and backend,
				      longest idle first: eviction victims */
	uint64_t lim_log_s;        /* refusal log lines: this second's count */
	unsigned lim_log_n, lim_log_dropped;
	uint64_t hold_until;       /* a greeting is held until then: the loop
				      wakes every ms, not every CORE_WAIT_MS */
	struct counters ctr;       /* [listener slot][counter] (lslot.h) */
	/* For the metrics (ctl_metrics.c), written by this core only. */
	uint64_t hs_hist[LSLOT_MAX][HSB__COUNT]; /* handshakes by duration */
	uint64_t hs_sum_us[LSLOT_MAX];
	uint64_t busy_ns;          /* loop time spent on work, not waiting */
	uint64_t jobs_posted, jobs_back; /* handshake jobs to the workers and back */
	struct fp_table *fp;       /* per-fingerprint table (fpstat.h) */
	struct snap *snap;         /* the configuration of this pass (snap.h) */
	uint64_t snap_gen;         /* its generation: the listeners follow it */
	/* Drain (drain.c): what this core acts on, read from RT once a pass. */
	unsigned drain_gen;        /* the RT.drain_gen acted on */
	bool drain_on;             /* a drain runs (in its grace or past it) */
	bool draining;             /* goodbyes are due; listeners stopped */
	uint64_t drain_accept_ms;  /* listeners accept until then (the grace) */
	uint64_t drain_until_ms;   /* the deadline (clock_mono_ms) */
	uint64_t drain_sweep_ms;   /* the next sweep of all sessions */
	/* Published once a pass for the main and control threads. */
	_Atomic unsigned pub_gen;  /* drain_gen as of the last pass */
	_Atomic unsigned pub_open; /* sessions open */
	_Atomic unsigned pub_busy; /* while draining: sessions not yet closing
				      with all sent */
	_Atomic bool pub_stress;   /* stress, as of the last change */
	_Atomic uint64_t pub_pass_ms; /* now_ms of its last pass (0: none yet):
				      the watchdog's sign of life (notify.h) */
};

struct tls_certset;
struct fp_table;

/* Shared, read-only after start-up. What a reload changes is in the
 * configuration snapshots (snap.h), not here. */
struct runtime {
	const struct cfg *cfg;     /* the start-up configuration: the stack,
				      the backend pools, the cores */
	struct core *cores;
	unsigned n_cores;
	_Atomic bool stop;
	/* Drain (drain.c): set by the main or control thread, read by each
	 * core at the top of a pass when drain_gen moved. */
	_Atomic unsigned drain_gen;
	_Atomic bool draining;
	_Atomic uint64_t drain_accept_ms; /* end of control.drain_grace */
	_Atomic uint64_t drain_until_ms;
	unsigned nofile;           /* RLIMIT_NOFILE (soft) as set at start */
	unsigned fd_base;          /* descriptors open once started (about) */
	_Atomic unsigned socks;    /* connections' sockets open (kernel stack) */
};

extern struct runtime RT;

/* The descriptors the process holds, about: stress mode's measure. */
static inline unsigned rt_fds(void)
{
	return RT.fd_base + atomic_load_explicit(&RT.socks, memory_order_relaxed);
}

/* Counting what belongs to no listener (slot 0); a session's counters go
 * to its listener's slot (session.h sctr_inc). id < 0: nothing. */
/* Handshake jobs the core has posted to the TLS workers and not yet had
 * back, read from another thread: back first, so that posted is at least
 * as new and the difference is never negative. */
static inline uint64_t core_queue_depth(const struct core *c)
{
	uint64_t back = *(const volatile uint64_t *)&c->jobs_back;
	uint64_t posted = *(const volatile uint64_t *)&c->jobs_posted;

	return posted > back ? posted - back : 0;
}

static inline void ctr_inc(struct core *c, int id) { if (id >= 0) c->ctr.v[LSLOT_NONE][id]++; }
static inline void ctr_add(struct core *c, int id, uint64_t n) { c->ctr.v[LSLOT_NONE][id] += n; }
static inline void lctr_inc(struct core *c, unsigned slot, int id)
{
	if (id >= 0)
		c->ctr.v[slot][id]++;
}
static inline void lctr_add(struct core *c, unsigned slot, int id, uint64_t n)
{
	c->ctr.v[slot][id] += n;
}
/* A counter of core c over all its slots (from any thread: racy reads of
 * aligned words, never torn). */
static inline uint64_t ctr_sum(const struct core *c, int id)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < LSLOT_MAX; i++)
		n += c->ctr.v[i][id];
	return n;
}

/* What the stacks hand to the loop's owner (io_setup's callbacks). */
extern const struct io_cb core_io_cb;
/* The core's thread: the one loop (arg: the struct core). */
void *core_main(void *arg);

#endif
