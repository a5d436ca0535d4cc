/*
 * The network stacks under the one core loop (DESIGN.md §6, core.c). Each
 * stack supplies a struct io_ops that the loop calls every pass, and
 * struct stream_ops (lib/stream.h) for its streams. A stack never calls
 * into session/ or proto/: it reports through the stream's wake callback
 * and hands accepted connections to io_cb.accept, which the loop's owner
 * set at io_setup().
 *
 *   io/io.c       io_setup(): the one place that chooses the stack
 *   io/kernel.c   sockets and an edge-triggered epoll set per core
 *   io/native.c   the native stacks (net/) on DPDK ports: listeners,
 *                 connects, counters
 *   io/dpdk.c     the EAL, ports, queues, frames in and out
 */
#ifndef SLUICE_IO_H
#define SLUICE_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core.h"
#include "stream.h"

struct cfg;

/* What the loop calls on a core's stack; NULL members are skipped. */
struct io_ops {
	const char *name;          /* "kernel", "native" */
	bool probes_in_loop;       /* the backends are reachable only through
				      this stack: core 0's loop probes them
				      (session/probe_loop.c) */
	/* In the core's thread, before the first pass (c->wake_fd is set). */
	int (*enter)(struct core *c);
	/* Wait up to wait_ms for something to arrive (0: only look). A
	 * stack that polls has none (it pauses in idle instead). */
	void (*wait)(struct core *c, unsigned wait_ms);
	/* Take in what arrived: wake the streams it concerns, hand new
	 * connections to io_cb.accept (c->now_ms is fresh: the loop read the
	 * clock after the wait). Returns how much it did (0: nothing). */
	unsigned (*poll)(struct core *c);
	/* After the pass's work: the stack's own timers, and send what the
	 * pass queued. */
	void (*flush)(struct core *c);
	/* The pass is over and did work (0: none): a stack that never waits
	 * in poll() pauses here after enough idle passes. */
	void (*idle)(struct core *c, unsigned work);
	/* The core stopped and closed its sessions: the last frames go out,
	 * the listeners close. */
	void (*leave)(struct core *c);
	/* Drain: stop (on false) or resume taking new connections on the
	 * core's listeners. Stopped, a connection attempt is refused (RST),
	 * never left waiting; the sessions the core has are untouched. */
	void (*listen)(struct core *c, bool on);
	/* Start connecting s to addr; s->owner, s->wake and s->wake_arg are
	 * the caller's, set before. s has room for any stack's stream (a
	 * union with struct tcp_stream, as struct sess has), becomes writable
	 * when connected and must not move. 0 or -errno. */
	int (*connect)(struct core *c, struct stream *s, const struct sockaddr *addr,
		       socklen_t len);
	/* A listener for one connection (FTP's passive data port): a plain
	 * socket bound to addr (no SO_REUSEPORT: a port taken is
	 * -EADDRINUSE), watched; s->owner, s->wake and s->wake_arg are the
	 * caller's, set before; s must not move. 0 or -errno. NULL: the
	 * stack has none. */
	int (*listen_one)(struct core *c, struct stream *s, const struct sockaddr *addr,
			  socklen_t len);
	/* Accept one connection of listener ls into out (opened there, with
	 * ls's wake callback); *peer its address. 0, -EAGAIN when none
	 * waits, or -errno. */
	int (*accept_one)(struct core *c, struct stream *ls, struct stream *out,
			  struct sockaddr_storage *peer);
	/* A reload changed the listeners: this core listens on lfd[0, n)
	 * from now on (listener i's socket for this core), in the new
	 * order. NULL: the stack's listeners are fixed at start-up. */
	int (*relisten)(struct core *c, const int *lfd, unsigned n);
};

/* What a stack calls back into (the loop's owner fills it in). */
struct io_cb {
	/* A connection arrived on listener li (index in cfg->listeners) of
	 * core c: st is made by the stack and not open; the callee copies
	 * st->ops->size bytes to where the stream will live and opens it
	 * there. 0, or -errno: the stack still owns st and closes it. */
	int (*accept)(struct core *c, unsigned li, struct stream *st);
	/* Descriptors ran out and the stack accepted st out of its reserve:
	 * the protocol's temporary refusal for listener li goes out through
	 * st->ops->say (counted, logged); the stack closes st then. */
	void (*refuse_nofile)(struct core *c, unsigned li, struct stream *st);
};

/* Set by io_setup(): for the stacks only. */
extern struct io_cb io_up;

/* Choose and start the stack that cfg asks for (the native one when it
 * has native ports): listeners bound, ports up, every core's io and
 * io_core set. Fails with a message naming the key, never exits. 0 or
 * -errno; io_fini() cleans up after a failure too. */
int io_setup(const struct cfg *cfg, struct core *cores, unsigned n_cores,
	     const struct io_cb *cb, char *err, size_t errlen);
/* After the cores joined: free what io_setup() made. */
void io_fini(void);
/* Append the stack's counters (" name=N ...") to line at o; returns the
 * new length. */
size_t io_report(char *line, size_t len, size_t o);
/* For the metrics (ctl_metrics.c), from the control thread: the native
 * stack's counters (net/counters.def) summed over its stacks into v[n]
 * (n = NET_C__COUNT); false (v untouched) when that stack does not run. */
bool io_net_counters(uint64_t *v, unsigned n);
/* DPDK's extended statistics of each native port, one fn call each
 * (port: its index in native.ports); nothing on the kernel stack. */
typedef void io_xstat_fn(void *arg, unsigned port, const char *name, uint64_t value);
void io_port_xstats(io_xstat_fn *fn, void *arg);

/*
 * Listeners that come and go with a reload (the stack's relisten): the
 * sockets of cfg's listeners for every core into lfd[core * n_listeners +
 * i], binding the addresses not bound yet; the addresses cfg no longer
 * names are marked removed by generation gen. From the reload's thread.
 * 0, -ENOTSUP (the stack cannot: a restart is needed), or -errno with
 * err naming the listener (then nothing changed).
 */
int io_listeners_for(const struct cfg *cfg, uint64_t gen, int *lfd, char *err, size_t errlen);
/* Close the removed addresses' sockets once every core has entered
 * generation seen or later. */
void io_listeners_gc(uint64_t seen);

/* Connect s on core c's stack (io_ops.connect). */
static inline int io_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
			     socklen_t len)
{
	return c->io->connect(c, s, addr, len);
}

/* ---- the stacks (for io.c) ---------------------------------------------- */

extern const struct io_ops kern_io_ops;
int kern_init(const struct cfg *cfg, struct core *cores, unsigned n_cores, char *err,
	      size_t errlen);
void kern_fini(void);
int kern_listeners_for(const struct cfg *cfg, uint64_t gen, int *lfd, char *err, size_t errlen);
void kern_listeners_gc(uint64_t seen);

#endif
