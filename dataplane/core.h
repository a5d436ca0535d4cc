/*
 * A dataplane core: one thread, share-nothing. It owns its listening sockets
 * (one per listener, SO_REUSEPORT), its sessions, its timer wheel and its
 * counters, and nothing it owns is touched by another thread, except the
 * sessions' TLS buffers while a handshake job is out with a worker.
 */
#ifndef SLUICE_CORE_H
#define SLUICE_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "counters.h"
#include "io/stream.h"
#include "timer.h"

struct sess;
struct listener;
struct nat_core;

struct core {
	unsigned id;
	int epfd;
	pthread_t thread;
	struct stream *lsn;        /* one listening stream per listener */
	struct stream wake;        /* worker completions (eventfd) */
	struct wheel wheel;
	uint64_t now_ms;           /* monotonic, refreshed once per loop */
	uint64_t next_id;
	struct sess *sessions;     /* all live sessions, for shutdown */
	struct sess *dead;         /* closed this loop, freed at its end */
	struct sess *again;        /* to run again next round (work left) */
	unsigned n_sess;
	uint64_t hold_until;       /* a greeting is held until then: the loop
				      wakes every ms, not every CORE_WAIT_MS */
	struct counters ctr;
	struct fp_table *fp;       /* per-fingerprint table (fpstat.h) */
	struct nat_core *nat;      /* native stack (io/native.h); NULL: kernel */
};

struct tls_certset;
struct fp_table;

/* Shared, read-only after start-up. */
struct runtime {
	const struct cfg *cfg;
	struct listener *listeners;
	unsigned n_listeners;
	struct tls_certset **sets; /* every cert set: the named ones, then the
				      listeners' own */
	unsigned n_sets;
	struct core *cores;
	unsigned n_cores;
	_Atomic bool stop;
};
extern struct runtime RT;

static inline void ctr_inc(struct core *c, int id) { if (id >= 0) c->ctr.v[id]++; }
static inline void ctr_add(struct core *c, int id, uint64_t n) { c->ctr.v[id] += n; }

uint64_t clock_ms(void);

/* Bind the listening sockets of core c. On error names the listener. */
int core_listen(struct core *c, char *err, size_t errlen);
void *core_main(void *arg);

#endif
