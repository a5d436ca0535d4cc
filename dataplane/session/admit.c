/*
 * Who gets a session (DESIGN.md §5): the per-address verdict of
 * conn_limits.c, the core's own limit, stress mode and its evictions, and
 * the refusals, each the protocol's temporary error said once (never
 * silence), counted by reason and logged.
 *
 * Stress mode, as Postfix's: a core whose sessions pass
 * limits.stress_percent of limits.sessions_per_core, or when the
 * process's descriptors (rt_fds: those of start-up and the connections'
 * sockets) pass that share of RLIMIT_NOFILE, enters it; it
 * leaves 10 points lower (hysteresis). Under stress the plaintext and
 * handshake timers armed from then on are limits.stress_plaintext and
 * .stress_handshake; and a full core (sessions_per_core, or the
 * descriptors but a reserve for backends) closes its longest-idle
 * session that has not finished its handshake, with the protocol's
 * temporary error, to make room: a flood of idle connections cannot lock
 * real senders out.
 *
 * The sessions before TLS and before a backend sit on the core's ph list
 * (longest idle at its head, moved to the tail when they make progress);
 * one that moved past that is dropped from it when it comes to the head.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "conn_limits.h"
#include "log.h"
#include "session/session.h"
#include "session/session_int.h"
#include "snap.h"

#define STRESS_HYSTERESIS 10    /* percentage points below the entry */
#define LIM_LOG_PER_S 20        /* refusal log lines a second per core */

static const struct cfg_limits *sess_limits(const struct core *c)
{
	return &c->snap->tc.c->limits;
}

/* Descriptors the process may hold before a core counts as full: a
 * reserve stays for the backend connections of the sessions it has. */
static unsigned fd_full(unsigned nofile)
{
	unsigned reserve = nofile / 10 > 16 ? nofile / 10 : 16;

	return nofile > reserve ? nofile - reserve : nofile;
}

/* Enter or leave stress mode with what the core holds now. */
void sess_stress_check(struct core *c)
{
	const struct cfg_limits *k = sess_limits(c);
	uint64_t spc = k->sessions_per_core, pct = k->stress_percent;
	uint64_t off = pct > STRESS_HYSTERESIS ? pct - STRESS_HYSTERESIS : pct / 2;
	uint64_t nofile = RT.nofile, fd = rt_fds();
	bool over = c->n_sess * 100 >= spc * pct || (nofile && fd * 100 >= nofile * pct);
	bool under = c->n_sess * 100 < spc * off && (!nofile || fd * 100 < nofile * off);

	if (!c->stress && over) {
		c->stress = true;
		ctr_inc(c, CTR_stress_entered);
		log_msg(LOG_WARNING, "event=stress-enter core=%u sessions=%u sessions_per_core=%u "
			"descriptors=%u nofile=%u stress_percent=%u stress_plaintext=%u "
			"stress_handshake=%u", c->id, c->n_sess, k->sessions_per_core, (unsigned)fd,
			RT.nofile, k->stress_percent, k->stress_plaintext, k->stress_handshake);
	} else if (c->stress && under) {
		c->stress = false;
		ctr_inc(c, CTR_stress_left);
		log_msg(LOG_NOTICE, "event=stress-leave core=%u sessions=%u descriptors=%u",
			c->id, c->n_sess, (unsigned)fd);
	} else {
		return;
	}
	atomic_store_explicit(&c->pub_stress, c->stress, memory_order_relaxed);
}

uint64_t sess_plaintext_ms(const struct sess *s)
{
	unsigned t = s->l->cfg->timeouts.plaintext, st = sess_limits(s->core)->stress_plaintext;

	return (s->core->stress && st < t ? st : t) * 1000ull;
}

uint64_t sess_handshake_ms(const struct sess *s)
{
	unsigned t = s->l->cfg->timeouts.handshake, st = sess_limits(s->core)->stress_handshake;

	return (s->core->stress && st < t ? st : t) * 1000ull;
}

/* ---- the ph list --------------------------------------------------------- */

static void ph_unlink(struct sess *s)
{
	struct core *c = s->core;

	if (!s->on_ph)
		return;
	if (s->ph_prev)
		s->ph_prev->ph_next = s->ph_next;
	else
		c->ph_head = s->ph_next;
	if (s->ph_next)
		s->ph_next->ph_prev = s->ph_prev;
	else
		c->ph_tail = s->ph_prev;
	s->ph_next = s->ph_prev = NULL;
	s->on_ph = false;
}

static void ph_append(struct sess *s)
{
	struct core *c = s->core;

	s->ph_prev = c->ph_tail;
	s->ph_next = NULL;
	if (c->ph_tail)
		c->ph_tail->ph_next = s;
	else
		c->ph_head = s;
	c->ph_tail = s;
	s->on_ph = true;
}

void sess_ph_join(struct sess *s)
{
	ph_append(s);
}

void sess_ph_touch(struct sess *s)
{
	if (!s->on_ph || s->core->ph_tail == s)
		return;
	ph_unlink(s);
	ph_append(s);
}

void sess_ph_leave(struct sess *s)
{
	ph_unlink(s);
}

/* Not past its handshake, never given a backend (one closing after a
 * plaintext relay still owes its client the last reply): it may be
 * evicted. */
static bool ph_evictable(const struct sess *s)
{
	if (s->tls || s->be_idx >= 0 || s->be_connected || stream_is_open(&s->be))
		return false;
	return s->state == SS_DIALOGUE || s->state == SS_STARTTLS ||
	       s->state == SS_HANDSHAKE || s->state == SS_CLOSING;
}

#define EVICT_SCAN 64 /* sessions looked at from the longest idle */

/* Close the core's longest-idle session before TLS to make room; false
 * when there is none. */
static bool sess_evict_one(struct core *c)
{
	struct sess *v;

	struct sess *w;
	unsigned n;

	while ((v = c->ph_head) && !ph_evictable(v))
		ph_unlink(v);   /* moved on: never a victim again */
	if (!v)
		return false;
	/* Among the longest idle, one that is not mid-handshake first: a
	 * real sender's handshake is milliseconds from done (perhaps queued
	 * behind a flood's at the workers), an idle flooder's socket has
	 * nothing in flight. A bounded look, so eviction stays O(1). */
	for (w = v, n = 0; w && n < EVICT_SCAN; w = w->ph_next, n++)
		if (ph_evictable(w) && w->state != SS_HANDSHAKE && w->state != SS_STARTTLS) {
			v = w;
			break;
		}
	ph_unlink(v);
	sctr_inc(v, CTR_stress_evicted);
	sess_set_result(v, "evicted", "stress: idle for %llums before TLS, closed to make room",
			(unsigned long long)(c->now_ms - v->t_active));
	if (v->state == SS_DIALOGUE && !v->tls) {
		struct proto_env env = sess_env(v);
		struct proto_out o;

		po_reset(&o);
		proto_refuse(v->l->ops, &env, &o, PW_TOO_MANY_SESSIONS, -1, NULL);
		(void)sess_to_client(v, o.reply, o.reply_len);
	}
	(void)sess_flush(v);  /* what it was owed, as far as the socket takes it */
	sess_finish(v);
	return true;
}

/* ---- refusals ------------------------------------------------------------ */

/* One refusal log line, at most LIM_LOG_PER_S a second per core: the
 * others are counted (the counters have them all) and the next line
 * says how many were not logged. */
static void lim_log(struct core *c, const struct listener *l, const struct sockaddr_storage *peer,
		    const char *limit, unsigned value, const char *said)
{
	uint64_t sec = c->now_ms / 1000;
	char addr[64];

	if (c->lim_log_s != sec) {
		c->lim_log_s = sec;
		c->lim_log_n = 0;
	}
	if (c->lim_log_n++ >= LIM_LOG_PER_S) {
		c->lim_log_dropped++;
		return;
	}
	log_msg(LOG_NOTICE, "event=refused listener=%s client=%s limit=%s value=%u reply=%s "
		"stress=%s not_logged=%u", l->cfg->name, fmt_addr(peer, addr, sizeof(addr)), limit,
		value, said, c->stress ? "yes" : "no", c->lim_log_dropped);
	c->lim_log_dropped = 0;
}

/* The protocol's temporary refusal w to st (not opened), counted and
 * logged; the caller closes st. Implicit TLS: no plaintext can be said,
 * the close is the refusal. */
static void sess_refuse(struct core *c, const struct listener *l, struct stream *st,
			const struct sockaddr_storage *peer, enum proto_word w, int ctr,
			const char *limit, unsigned value)
{
	bool say = l->cfg->tls != CFG_TLS_IMPLICIT && st->ops->say;

	lctr_inc(c, l->slot, ctr);
	if (say) {
		struct proto_env env = { .hostname = l->cfg->hostname, .tls_mode = l->cfg->tls,
					 .tls_available = l->tls_available };
		struct proto_out o;

		po_reset(&o);
		proto_refuse(l->ops, &env, &o, w, ctr, limit);
		st->ops->say(st, o.reply, o.reply_len);
	}
	lim_log(c, l, peer, limit, value, say ? "temporary-error" : "close");
}

void sess_refuse_nofile(struct core *c, const struct listener *l, struct stream *st)
{
	struct sockaddr_storage peer, local;

	if (stream_addrs(st, &peer, &local) < 0)
		memset(&peer, 0, sizeof(peer));
	sess_refuse(c, l, st, &peer, PW_TOO_MANY_SESSIONS, CTR_conn_refused_nofile, "nofile",
		    RT.nofile);
}

int sess_admit(struct core *c, const struct listener *l, struct stream *st,
	       const struct sockaddr_storage *peer, struct lim_ticket *t)
{
	const struct cfg_limits *k = sess_limits(c);
	const struct cfg_addr_limits *al = &l->cfg->limits;
	enum lim_verdict v;

	v = limits_admit(k, al, l->idx, (const struct sockaddr *)peer, c->now_ms, t);
	if (t->forgot)
		ctr_inc(c, CTR_limits_forgot);
	switch (v) {
	case LIM_SESSIONS:
		sess_refuse(c, l, st, peer, PW_TOO_MANY_FROM_ADDR, CTR_conn_refused_per_address,
			    "per_address.sessions", al->sessions);
		return -ECONNREFUSED;
	case LIM_RATE:
		sess_refuse(c, l, st, peer, PW_RATE_LIMITED, CTR_conn_refused_rate,
			    "per_address.rate", al->rate);
		return -ECONNREFUSED;
	case LIM_UNTRACKED:
		if (al->sessions || al->rate || al->handshakes)
			ctr_inc(c, CTR_limits_untracked);
		break;
	default:
		break;
	}
	sess_stress_check(c);
	if (c->n_sess >= k->sessions_per_core || (RT.nofile && rt_fds() >= fd_full(RT.nofile))) {
		if (!sess_evict_one(c)) {
			limits_release(t);
			sess_refuse(c, l, st, peer, PW_TOO_MANY_SESSIONS, CTR_conn_refused_core_full,
				    c->n_sess >= k->sessions_per_core ? "sessions_per_core" : "nofile",
				    c->n_sess >= k->sessions_per_core ? k->sessions_per_core
								      : RT.nofile);
			return -ECONNREFUSED;
		}
	}
	return 0;
}
