/*
 * Drain a box: see drain.h for who does what.
 *
 * The cores share nothing with the threads that ask for a drain but three
 * fields of RT and a generation: a core loads RT.drain_gen once a pass and
 * reads the rest only when it moved, so a drain costs the hot path one
 * relaxed load. What a core tells back (its generation, its sessions open
 * and busy) it stores once a pass. Whoever starts or stops a drain holds
 * the lock below, which no core ever takes.
 *
 * The control socket's handlers (drain, undrain, health: docs/control.md)
 * are at the end; they run on the control thread (dataplane/ctl.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>

#include "clock.h"
#include "core.h"
#include "ctl.h"
#include "drain.h"
#include "io/io.h"
#include "log.h"
#include "notify.h"
#include "session/session.h"
#include "snap.h"

#define DRAIN_SWEEP_MS 100      /* a core looks at all its sessions this often */
#define DRAIN_REPORT_MS 60000   /* "N sessions left" this often */
#define DRAIN_LATE_MS 2000      /* past the deadline, a core that has not cut
				   yet is not waited for */

static struct {
	pthread_mutex_t lock;    /* drain_start/drain_stop, never a core */
	bool active;             /* a drain runs (main thread's view) */
	bool over;               /* drain_tick said stop: no undrain now */
	uint64_t t_start_ms;
	uint64_t t_report_ms;    /* the next progress line */
	uint64_t cut_before;     /* drain_cut summed when it started */
} D = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* drain_cut over all cores (each core's own counter, read as the
 * counters report reads them). */
static uint64_t drain_cut_total(void)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < RT.n_cores; i++)
		n += ctr_sum(&RT.cores[i], CTR_drain_cut);
	return n;
}

unsigned drain_default_deadline(void)
{
	return snap_current()->tc.c->control.drain_deadline;
}

/* control.drain_grace, within the deadline. */
static unsigned drain_grace(unsigned deadline_s)
{
	unsigned g = snap_current()->tc.c->control.drain_grace;

	return g < deadline_s ? g : deadline_s;
}

unsigned drain_sessions(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < RT.n_cores; i++)
		n += atomic_load_explicit(&RT.cores[i].pub_open, memory_order_relaxed);
	return n;
}

bool drain_active(void)
{
	return atomic_load_explicit(&RT.draining, memory_order_relaxed);
}

unsigned drain_start(unsigned deadline_s, const char *why)
{
	uint64_t now = clock_mono_ms();
	unsigned open = drain_sessions(), grace = drain_grace(deadline_s);
	bool again;

	pthread_mutex_lock(&D.lock);
	again = D.active;
	atomic_store_explicit(&RT.drain_until_ms, now + deadline_s * 1000ull,
			      memory_order_relaxed);
	if (!again)
		atomic_store_explicit(&RT.drain_accept_ms, now + grace * 1000ull,
				      memory_order_relaxed);
	atomic_store_explicit(&RT.draining, true, memory_order_relaxed);
	atomic_fetch_add_explicit(&RT.drain_gen, 1, memory_order_release);
	if (!again) {
		D.active = true;
		D.t_start_ms = now;
		D.t_report_ms = now + DRAIN_REPORT_MS;
		D.cut_before = drain_cut_total();
	}
	pthread_mutex_unlock(&D.lock);
	if (again)
		log_msg(LOG_INFO, "drain: %s: deadline now %u s from now, %u sessions open", why,
			deadline_s, open);
	else if (grace)
		log_msg(LOG_INFO, "drain: started by %s: deadline %u s, %u sessions open; health "
			"says draining now, new connections are taken for %u s more (control."
			"drain_grace), then refused, and idle sessions get their goodbye", why,
			deadline_s, open, grace);
	else
		log_msg(LOG_INFO, "drain: started by %s: deadline %u s, %u sessions open; new "
			"connections refused, idle sessions get their goodbye", why, deadline_s, open);
	notify_status("draining (%s): %u sessions open, deadline %u s", why, open, deadline_s);
	return open;
}

int drain_stop(void)
{
	int rc = 0;

	pthread_mutex_lock(&D.lock);
	if (D.over) {
		rc = -ESRCH;
	} else if (!D.active) {
		rc = -EALREADY;
	} else {
		D.active = false;
		atomic_store_explicit(&RT.draining, false, memory_order_relaxed);
		atomic_fetch_add_explicit(&RT.drain_gen, 1, memory_order_release);
	}
	pthread_mutex_unlock(&D.lock);
	if (!rc) {
		notify_status("serving again (undrained)");
		log_msg(LOG_INFO, "drain: undrained after %llu ms: accepting again, %u sessions open",
			(unsigned long long)(clock_mono_ms() - D.t_start_ms), drain_sessions());
	}
	return rc;
}

void drain_abort(const char *why)
{
	log_msg(LOG_INFO, "drain: %s during the drain: stopping now, %u sessions cut", why,
		drain_sessions());
	pthread_mutex_lock(&D.lock);
	D.over = true;
	pthread_mutex_unlock(&D.lock);
}

bool drain_tick(void)
{
	uint64_t now = clock_mono_ms(), until, accept;
	unsigned gen, busy = 0;
	bool seen = true, stop;

	pthread_mutex_lock(&D.lock);
	if (!D.active || D.over) {
		pthread_mutex_unlock(&D.lock);
		return false;
	}
	gen = atomic_load_explicit(&RT.drain_gen, memory_order_relaxed);
	until = atomic_load_explicit(&RT.drain_until_ms, memory_order_relaxed);
	accept = atomic_load_explicit(&RT.drain_accept_ms, memory_order_relaxed);
	for (unsigned i = 0; i < RT.n_cores; i++) {
		struct core *c = &RT.cores[i];

		if (atomic_load_explicit(&c->pub_gen, memory_order_acquire) != gen)
			seen = false;
		else
			busy += atomic_load_explicit(&c->pub_busy, memory_order_relaxed);
	}
	stop = (seen && busy == 0 && now >= accept) || now >= until + DRAIN_LATE_MS;
	if (stop)
		D.over = true;
	pthread_mutex_unlock(&D.lock);

	if (stop) {
		uint64_t cut = drain_cut_total() - D.cut_before;

		if (cut)
			log_msg(LOG_INFO, "drain: deadline reached after %llu ms: %llu busy sessions "
				"cut; exiting", (unsigned long long)(now - D.t_start_ms),
				(unsigned long long)cut);
		else
			log_msg(LOG_INFO, "drain: done after %llu ms: no session left; exiting",
				(unsigned long long)(now - D.t_start_ms));
		return true;
	}
	if (now >= D.t_report_ms) {
		D.t_report_ms = now + DRAIN_REPORT_MS;
		log_msg(LOG_INFO, "drain: %u sessions left (%u busy), %llu s to the deadline",
			drain_sessions(), busy,
			(unsigned long long)(until > now ? (until - now) / 1000 : 0));
	}
	return false;
}

void drain_core_pass(struct core *c)
{
	unsigned gen = atomic_load_explicit(&RT.drain_gen, memory_order_acquire);
	unsigned busy;

	if (gen != c->drain_gen) {
		bool on = atomic_load_explicit(&RT.draining, memory_order_relaxed);

		c->drain_gen = gen;
		c->drain_until_ms = atomic_load_explicit(&RT.drain_until_ms, memory_order_relaxed);
		c->drain_accept_ms = atomic_load_explicit(&RT.drain_accept_ms, memory_order_relaxed);
		if (!on && c->draining && c->io->listen)
			c->io->listen(c, true); /* undrained */
		if (!on)
			c->draining = false;
		c->drain_on = on;
		c->drain_sweep_ms = 0; /* sweep in this pass */
	}
	/* The grace (control.drain_grace): health says draining, so that the
	 * routing moves new flows elsewhere, while the listeners still take
	 * the ones that arrive meanwhile. Then they stop and goodbyes are due. */
	if (c->drain_on && !c->draining && c->now_ms >= c->drain_accept_ms) {
		if (c->io->listen)
			c->io->listen(c, false);
		c->draining = true;
	}
	if (c->drain_on && !c->draining) {
		/* Still accepting: one more than open, so that drain_tick never
		 * stops the process while a core may take a connection. */
		atomic_store_explicit(&c->pub_busy, c->n_sess + 1, memory_order_relaxed);
	} else if (c->draining) {
		if (c->now_ms >= c->drain_until_ms) {
			sess_drain_cut(c);
			atomic_store_explicit(&c->pub_busy, 0, memory_order_relaxed);
		} else if (c->now_ms >= c->drain_sweep_ms) {
			/* Sessions idle since the last look (a busy one is also
			 * asked each time it runs, in sess_run). */
			busy = sess_drain_sweep(c);
			c->drain_sweep_ms = c->now_ms + DRAIN_SWEEP_MS;
			atomic_store_explicit(&c->pub_busy, busy, memory_order_relaxed);
		}
	}
	atomic_store_explicit(&c->pub_open, c->n_sess, memory_order_relaxed);
	atomic_store_explicit(&c->pub_gen, gen, memory_order_release);
}

/* ---- the control socket's commands (docs/control.md) -------------------- */

#define DRAIN_ACK_MS 1000 /* how long a command waits for the cores */

/* Wait (bounded) until every core acted on the current generation: the
 * answer then says what is true (listeners stopped, or accepting again).
 * A core's pass waits at most 50 ms (core.c), so this is short. */
static void drain_wait_cores(void)
{
	unsigned gen = atomic_load_explicit(&RT.drain_gen, memory_order_acquire);
	uint64_t until = clock_mono_ms() + DRAIN_ACK_MS;
	struct timespec ms = { 0, 1000 * 1000 };

	for (unsigned i = 0; i < RT.n_cores && clock_mono_ms() < until; i++)
		while (atomic_load_explicit(&RT.cores[i].pub_gen, memory_order_acquire) != gen &&
		       !atomic_load_explicit(&RT.stop, memory_order_relaxed) &&
		       clock_mono_ms() < until)
			nanosleep(&ms, NULL);
}

/* drain {deadline_s}: the configured control.drain_deadline without one. */
int ctl_drain(json_t *req, json_t *ans, char *err, size_t errlen)
{
	json_t *d = json_object_get(req, "deadline_s");
	json_int_t secs = drain_default_deadline();

	if (d && !json_is_null(d)) {
		if (!json_is_integer(d) || json_integer_value(d) < 1 ||
		    json_integer_value(d) > 86400) {
			snprintf(err, errlen, "deadline_s: a whole number of seconds from 1 to 86400");
			return -EINVAL;
		}
		secs = json_integer_value(d);
	}
	if (json_object_set_new(ans, "sessions", json_integer(drain_start((unsigned)secs,
									   "control"))) < 0)
		return -ENOMEM;
	drain_wait_cores();
	return 0;
}

/* undrain: accepting again. */
int ctl_undrain(json_t *req, json_t *ans, char *err, size_t errlen)
{
	int rc = drain_stop();

	if (rc == -EALREADY) {
		snprintf(err, errlen, "not draining");
		return rc;
	}
	if (rc == -ESRCH) {
		snprintf(err, errlen, "the drain is over: sluice is stopping");
		return rc;
	}
	drain_wait_cores();
	return 0;
}

/* health: serving (cores running, accepting) and draining. */
int ctl_health(json_t *req, json_t *ans, char *err, size_t errlen)
{
	bool stopping = atomic_load_explicit(&RT.stop, memory_order_relaxed);
	bool draining = drain_active();

	if (json_object_set_new(ans, "serving", json_boolean(!stopping && !draining)) < 0 ||
	    json_object_set_new(ans, "draining", json_boolean(draining)) < 0)
		return -ENOMEM;
	return 0;
}
