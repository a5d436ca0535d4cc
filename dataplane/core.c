/*
 * The one core loop, for both stacks. Each pass, in this order:
 *
 *   io->wait        a kernel stack waits for events: not at all with
 *                   sessions to run again, 1 ms while a greeting is held,
 *                   else up to 50 ms; then the loop reads the clock
 *   drain           a drain or undrain asked for (drain.c): listeners,
 *                   goodbyes, the deadline; the counts published
 *   io->poll        what arrived: streams woken, connections accepted
 *   worker jobs     handshakes that came back (sess_job_done; sluice's
 *                   own to a backend: sess_be_job_done)
 *   run-again list  sessions woken or left with work (sess_run_again)
 *   probes          core 0, when the stack asks for them (session/probe_loop.c)
 *   timer wheel     the sessions' timers (sess_timer)
 *   tlsw_kick       wake the workers for the jobs posted in this pass;
 *                   with workers: 0, run them here (a batch), and take
 *                   back what ran (sess_job_done) in the same pass
 *   io->flush       the stack's timers; what the pass queued goes out
 *   reap            free the sessions closed in this pass
 *   busy time       a pass that found work adds its time (the metrics)
 *   io->idle        a polling stack pauses after enough idle passes
 *
 * The stacks (io/) only report readiness (the streams' wake callbacks put
 * sessions on the run-again list) and hand new connections to
 * core_io_cb.accept; every session runs from here, never from inside a
 * stack. Sessions closed in a pass are freed at its end, so no event of
 * the pass can reach freed memory.
 */
#include <stdatomic.h>
#include <syslog.h>

#include "clock.h"
#include "core.h"
#include "drain.h"
#include "io/io.h"
#include "log.h"
#include "session/probe_loop.h"
#include "session/session.h"
#include "snap.h"

#define CORE_WAIT_MS 50   /* the longest a pass waits for an event */
#define CORE_WORKERS_FULL 75 /* percent of the worker rings: stop accepting */
#define CORE_WORKERS_PAUSE_MS 2

struct runtime RT;

/* io_cb.accept: a session takes the connection (listener li). */
static int core_accept(struct core *c, unsigned li, struct stream *st)
{
	return sess_accept(c, &c->snap->listeners[li], st);
}

/* io_cb.refuse_nofile: the reserve descriptor's connection is refused. */
static void core_refuse_nofile(struct core *c, unsigned li, struct stream *st)
{
	sess_refuse_nofile(c, &c->snap->listeners[li], st);
}

const struct io_cb core_io_cb = { .accept = core_accept, .refuse_nofile = core_refuse_nofile };

/* A reload reached this core: listen on the new generation's sockets
 * (listeners added or removed; the same ones, in their new order, else). */
static void core_new_snap(struct core *c)
{
	const struct snap *s = c->snap;

	if (c->snap_gen && s->lfd && c->io->relisten &&
	    c->io->relisten(c, s->lfd + (size_t)c->id * s->n_listeners, s->n_listeners) < 0)
		log_msg(LOG_ERR, "core %u: out of memory taking the listeners of generation %llu",
			c->id, (unsigned long long)s->gen);
	c->snap_gen = s->gen;
}

/* Handshake jobs that came back: each to its session, a client's
 * handshake or sluice's own to the backend. Returns how many. */
static unsigned core_jobs_back(struct core *c)
{
	struct tls_job *j;
	unsigned n = 0;

	while ((j = tlsw_poll(c->id))) {
		c->jobs_back++;
		if (j->kind == TLSJ_CLIENT)
			sess_be_job_done(j);
		else
			sess_job_done(j);
		n++;
	}
	return n;
}

void *core_main(void *arg)
{
	struct core *c = arg;
	const struct io_ops *io = c->io;
	bool probes = c->id == 0 && io->probes_in_loop;

	c->now_ms = clock_mono_ms();
	wheel_init(&c->wheel, c->now_ms);
	c->wake_fd = tlsw_core_fd(c->id);
	c->snap = snap_enter(c->id);
	c->snap_gen = c->snap->gen;
	if (tlsw_core_enter(c->id) < 0) {
		log_msg(LOG_ERR, "core %u: no ticket ciphers in its OpenSSL context", c->id);
		return NULL;
	}
	if (io->enter && io->enter(c) < 0) {
		log_msg(LOG_ERR, "core %u: the %s stack cannot start here", c->id, io->name);
		tlsw_core_leave(c->id);
		return NULL;
	}
	while (!atomic_load_explicit(&RT.stop, memory_order_relaxed)) {
		/* Inline steps left over from the last pass's batch (or
		 * posted after it) run without a wait, as sessions with work
		 * left do. */
		unsigned wait = c->again || tlsw_pending(c->id) ? 0 : CORE_WAIT_MS, work;
		uint64_t t0;

		if (c->now_ms < c->hold_until && wait > 1)
			wait = 1;  /* greet on time: holds are a few ms */
		if (io->wait)
			io->wait(c, wait);
		/* Before anything is handed on: a session accepted now arms
		 * its timers from now, not from before the wait. */
		t0 = clock_mono_ns();
		c->now_ms = t0 / 1000000;
		atomic_store_explicit(&c->pub_pass_ms, c->now_ms, memory_order_relaxed);
		/* A reload is picked up here, once per pass: sessions accepted
		 * from now on take this snapshot, those before keep theirs. */
		c->snap = snap_enter(c->id);
		if (c->snap->gen != c->snap_gen)
			core_new_snap(c);
		/* A drain asked for: listeners stopped before anything more
		 * is accepted, goodbyes, the deadline (one load when none). */
		drain_core_pass(c);
		/* A handshake flood: while the workers' rings are nearly
		 * full, new connections wait in the listen queue (the kernel
		 * holds them for free) rather than being accepted and then
		 * closed for want of a worker. */
		if (tlsw_fill(c->id) >= CORE_WORKERS_FULL && c->accept_after_ms <= c->now_ms) {
			c->accept_after_ms = c->now_ms + CORE_WORKERS_PAUSE_MS;
			ctr_inc(c, CTR_accept_paused_workers);
		}
		work = io->poll(c);
		work += core_jobs_back(c);
		if (c->again) {
			sess_run_again(c);
			work++;
		}
		if (probes)
			work += probe_loop_poll(c, c->now_ms);
		wheel_advance(&c->wheel, c->now_ms, sess_timer);
		if (tlsw_kick(c->id))
			work += core_jobs_back(c); /* inline: their flights go out now */
		if (io->flush)
			io->flush(c);
		sess_reap(c);
		/* Busy time (sluice_core_busy_seconds_total): the passes that
		 * found work, from the wait's end to the idle pause; a pass
		 * that found nothing is polling an idle queue. */
		if (work)
			c->busy_ns += clock_mono_ns() - t0;
		if (io->idle)
			io->idle(c, work);
	}
	sess_close_all(c);
	sess_reap(c);
	if (probes)
		probe_loop_stop();
	if (io->leave)
		io->leave(c);
	tlsw_core_leave(c->id);
	return NULL;
}
