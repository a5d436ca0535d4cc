/*
 * The proxy session (DESIGN.md §1, §2). One client connection goes through:
 *
 *   SS_DIALOGUE   sluice answers the plaintext opening (protocol engine)
 *   SS_STARTTLS   the STARTTLS reply drains; bytes pipelined behind the
 *                 command were discarded (rule 2.1), nothing more is read
 *   SS_HANDSHAKE  handshake steps run on a worker; the core only moves bytes
 *   SS_DIALOGUE   again inside TLS, knowing nothing from before (rule 2.2)
 *   SS_BACKEND    the backend is connected, PROXY header sent, its opening
 *                 handled by the engine; no plaintext moves to or from it
 *                 before the handshake ended (rule 2.4)
 *   SS_RELAY      bytes both ways, half-close propagated
 *   SS_CLOSING    the last reply and close_notify drain, then close
 *
 * sess_run() is the only place that decides I/O for a session. This file
 * holds the lifecycle (accept, finish, reap), the plaintext dialogue, the
 * run loop, the timer and the log line; SS_BACKEND is in backend_open.c,
 * SS_RELAY and the late STARTTLS in relay.c, the TLS side in handshake.c.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "log.h"
#include "logsafe.h"
#include "quirk/quirk.h"
#include "hello.h"
#include "session/backend.h"
#include "session/ftp_data.h"
#include "session/proxyproto.h"
#include "session/session.h"
#include "session/session_int.h"
#include "io/io.h"
#include "fpstat.h"
#include "snap.h"


static const int quirk_ctr[QUIRK__COUNT] = {
#define Q(n, w, act, why, h) CTR_quirk_##n,
#include "quirk/quirk.def"
#undef Q
};
_Static_assert((int)QUIRK__COUNT == (int)CFG_QUIRK__COUNT, "one quirk table");

/*
 * A client quirk was seen: counted and named in the log line, then the
 * listener's action for it (quirks.NAME, DESIGN.md §3) decides. Returns
 * true when the session must close: the result is set to "REASON
 * (quirks.NAME: close)", a ClientHello's quirk refusing TLS; the caller
 * closes the way its state needs.
 */
bool sess_quirk(struct sess *s, enum quirk_id q)
{
	s->quirks |= 1u << q;
	sctr_inc(s, quirk_ctr[q]);
	if (s->l->cfg->quirks.action[q] != CFG_QUIRK_CLOSE)
		return false;
	sess_set_result(s, s->hello_seen && !s->tls ? "tls-refused" : "client-error",
			"%s (quirks.%s: close)", quirk_reasons[q], cfg_quirk_key((enum cfg_quirk)q));
	return true;
}

struct proto_env sess_env(const struct sess *s)
{
	struct proto_env e = {
		.hostname = s->l->cfg->hostname,
		.tls_mode = s->l->cfg->tls,
		.tls_available = s->l->tls_available,
		.caps = be_caps(s->l->pool),
		.junk_limit = s->snap->tc.c->limits.junk_commands,
		.ftp_allow_prot_c = s->l->cfg->ftp.allow_prot_c,
	};
	return e;
}

void sess_arm(struct sess *s, uint64_t ms)
{
	timer_arm(&s->core->wheel, &s->tm, s->core->now_ms + ms);
}

/* SS_DIALOGUE's timer: see session_int.h. */
void sess_arm_dialogue(struct sess *s)
{
	const struct cfg_timeouts *to = &s->l->cfg->timeouts;
	uint64_t now = s->core->now_ms, idle = sess_plaintext_ms(s); /* shorter under stress */
	uint64_t dl = to->plaintext_deadline * 1000ull;
	uint64_t left = now - s->t_active < idle ? idle - (now - s->t_active) : 0;

	if (dl) {
		uint64_t dleft = now - s->t_dialogue < dl ? dl - (now - s->t_dialogue) : 0;

		if (dleft < left)
			left = dleft;
	}
	sess_arm(s, left);
}

/* The first verdict stands: later ones are consequences of it. */
void sess_set_result(struct sess *s, const char *result, const char *fmt, ...)
{
	va_list ap;

	if (s->result)
		return;
	s->result = result;
	va_start(ap, fmt);
	vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
	va_end(ap);
}

/* Bytes for the client, through TLS when it is up. The callers made sure
 * there is room, so a failure here is a broken TLS state. */
int sess_to_client(struct sess *s, const void *p, size_t len)
{
	int n;

	if (!len)
		return 0;
	if (!s->tls)
		return buf_put(&s->cout, p, (uint32_t)len) == len ? 0 : -ENOBUFS;
	n = sess_tls_write(s, p, len);
	if (n == (int)len)
		return 0;
	if (n >= 0)
		sess_set_result(s, "error", "TLS write failed: no room for a reply");
	return -EIO;
}

void sess_close_backend(struct sess *s)
{
	if (stream_is_open(&s->be))
		stream_close(&s->be);
	buf_free(&s->bin);
	buf_free(&s->bout);
	sess_be_tls_free(s);
}

/* Stop relaying; the client gets what is queued for it, then the close. */
void sess_closing(struct sess *s, const char *result, const char *reason)
{
	if (reason)
		sess_set_result(s, result, "%s", reason);
	if (!s->be_retiring) /* else its QUIT goes, then sess_retire_step */
		sess_close_backend(s);
	(void)sess_tls_close(s); /* close_notify after the last reply; else
				    again from sess_closing_step() */
	s->state = SS_CLOSING;
	sess_arm(s, CLOSE_LINGER_MS);
}

/* Rule 2.1, written once: see session_int.h. */
bool sess_discard_after_starttls(struct sess *s)
{
	uint32_t n = buf_len(&s->cin);
	bool close;

	if (!n)
		return false;
	close = sess_quirk(s, QUIRK_pipelined_starttls);
	sctr_add(s, CTR_discarded_after_starttls, n);
	buf_consume(&s->cin, n);
	return close;
}

/* Carry out what the protocol engine answered: the reply, bytes for the
 * backend, a close, or the start of TLS (DESIGN.md §2). */
void sess_apply(struct sess *s, const struct proto_out *o)
{
	sctr_inc(s, o->counter);
	if (o->flags & PO_OFFERED_TLS)
		sctr_inc(s, CTR_starttls_offered);
	if ((o->flags & PO_STARTTLS) || o->counter == CTR_starttls_not_now ||
	    o->counter == CTR_starttls_untracked)
		sctr_inc(s, CTR_starttls_attempted);
	if (o->counter == CTR_starttls_in_tls)
		sess_quirk(s, QUIRK_starttls_in_tls);
	if (o->reply_len && sess_to_client(s, o->reply, o->reply_len) < 0) {
		sess_closing(s, "error", "cannot queue a reply");
		return;
	}
	if (o->to_backend_len)
		buf_put(&s->bout, o->to_backend, (uint32_t)o->to_backend_len);
	if (o->flags & PO_CLOSE) {
		sess_closing(s, (o->flags & PO_ERROR) ? "client-error" : "ok",
			     o->reason ? o->reason : "closed by sluice");
	} else if (o->flags & PO_STARTTLS) {
		sctr_inc(s, CTR_starttls);
		if (sess_discard_after_starttls(s)) {
			sess_closing(s, NULL, NULL);
			return;
		}
		s->starttls = true;
		s->state = SS_STARTTLS;
		sess_arm(s, sess_handshake_ms(s));
	}
}

/* Has the client finished sending? (Bytes may still wait in our buffers.) */
bool sess_client_eof(const struct sess *s)
{
	return s->tls ? s->tls_in_done : s->cli.eof;
}

/* Has the client finished sending (all its bytes taken)? */
bool sess_client_done(const struct sess *s)
{
	if (s->tls)
		return s->tls_in_done;
	return s->cli.eof && buf_len(&s->cin) == 0;
}

/* Send the greeting that was held back. */
static void sess_greet(struct sess *s)
{
	struct proto_out o;

	s->greet_held = false;
	sess_engine(s, &o, greeting);
	s->t_active = s->core->now_ms;
	sess_ph_touch(s);
	sess_arm_dialogue(s);
}

/* SS_DIALOGUE: feed complete client lines to the engine. */
static bool sess_dialogue(struct sess *s)
{
	struct buf *src = s->tls ? &s->pin : &s->cin;
	struct proto_env env = sess_env(s);
	struct proto_out o;
	struct lr_line line;
	bool did = false, starved = true;

	if (s->greet_held && buf_len(&s->cin)) {
		uint8_t b = buf_head(&s->cin)[0];

		if (b == 0x16 || (b & 0x80)) {
			/* A ClientHello where the greeting was due: the client
			 * expects implicit TLS here (iOS Mail on 587). */
			sess_quirk(s, QUIRK_implicit_on_starttls);
			s->greet_held = false;
			s->state = SS_HANDSHAKE;
			sess_arm(s, sess_handshake_ms(s));
			return true;
		}
		sess_greet(s); /* an early talker: greeted, then answered */
	}
	if (s->tls)
		did |= sess_tls_pull(s, &s->pin);
	while (s->state == SS_DIALOGUE && buf_len(src)) {
		enum lr_event ev;
		size_t used;

		/* Leave room for the reply: a client that pipelines without
		 * reading waits until it reads. */
		if (buf_room(&s->cout) < PO_REPLY_MAX + 512) {
			starved = false;
			break;
		}
		ev = lr_next(&s->lr, buf_head(src), buf_len(src), &line, &used);
		if (ev == LR_NEED_MORE) {
			if (used)
				buf_consume(src, (uint32_t)used);
			break;
		}
		if (ev == LR_LITERAL) { /* data of a command's literal, not a line */
			buf_consume(src, (uint32_t)used);
			did = true;
			continue;
		}
		po_reset(&o);
		if (ev == LR_TOO_LONG) {
			s->l->ops->too_long(&env, &s->ps, &o);
		} else {
			bool blanks = line.len && (line.p[line.len - 1] == ' ' ||
						   line.p[line.len - 1] == '\t');

			if ((!line.crlf && sess_quirk(s, QUIRK_bare_lf)) ||
			    (blanks && sess_quirk(s, QUIRK_trailing_blanks))) {
				sess_closing(s, NULL, NULL);
				return true;
			}
			s->l->ops->client_line(&env, &s->ps, line.p, line.len, line.has_nul, &o);
		}
		if (!(o.flags & PO_BACKEND))
			buf_consume(src, (uint32_t)used);
		if (o.literal)
			lr_literal(&s->lr, o.literal);
		s->t_active = s->core->now_ms;
		sess_ph_touch(s);
		did = true;
		sess_apply(s, &o);
		if (o.flags & PO_BACKEND)
			sess_backend_start(s);
	}
	if (s->state == SS_DIALOGUE && starved && sess_client_eof(s)) {
		/* What is left is an unfinished line: nothing to answer. Under
		 * TLS the client's close_notify gets ours. */
		if (s->tls) {
			sess_closing(s, "ok", "client closed before the backend was needed");
			return true;
		}
		sess_set_result(s, "ok", "client closed before the backend was needed");
		sess_finish(s);
		return false;
	}
	return did;
}

/* SS_CLOSING: close_notify and the rest of cout out, send FIN, wait for
 * the client's or the timer. */
static bool sess_closing_step(struct sess *s)
{
	if (s->cli.failed) {
		sess_finish(s);
		return false;
	}
	if (!sess_tls_close(s) || buf_len(&s->cout))
		return false;
	if (!s->cli.shut_wr) {
		stream_shutdown_wr(&s->cli);
		return true;
	}
	/* Read what the client still sends, so that close() sends FIN and not
	 * a reset that could destroy our last reply in flight. */
	if (buf_len(&s->cin))
		buf_consume(&s->cin, buf_len(&s->cin));
	if (s->cli.eof)
		sess_finish(s);
	return false;
}

static bool sess_read(struct sess *s)
{
	bool did = false;

	if (s->state == SS_STARTTLS || s->job_out)
		return false;
	while (s->cli.readable && !s->cli.eof && !s->cli.failed && buf_room(&s->cin)) {
		if (stream_recv(&s->cli, &s->cin) <= 0)
			break;
		did = true;
	}
	if (s->cli.eof)
		s->tio.in_eof = true;
	/* Under TLS to the backend its ciphertext lands in bcin; not while
	 * a worker has it (be_job_out): the stream stays readable till then. */
	struct buf *bw = s->be_ssl ? &s->bcin : &s->bin;

	while (!s->be_job_out && stream_is_open(&s->be) && !s->be.connecting && s->be.readable &&
	       !s->be.eof && !s->be.failed && buf_room(bw)) {
		if (stream_recv(&s->be, bw) <= 0)
			break;
		did = true;
	}
	if (s->be_tls)
		did |= sess_be_tls_pump(s);
	return did;
}

bool sess_flush(struct sess *s)
{
	bool did = false;

	while (buf_len(&s->cout) && s->cli.writable && !s->cli.failed)
		if (stream_send(&s->cli, &s->cout) > 0)
			did = true;
		else
			break;
	struct buf *bw = s->be_ssl ? &s->bcout : &s->bout;

	if (s->be_job_out)
		return did; /* bcout is the worker's until its step is back */
	if (s->be_tls)
		did |= sess_be_tls_pump(s);
	while (stream_is_open(&s->be) && buf_len(bw) && s->be.writable && !s->be.connecting &&
	       !s->be.failed)
		if (stream_send(&s->be, bw) > 0)
			did = true;
		else
			break;
	return did;
}

/* Run s again in the core's next round: it stopped with work left, and no
 * edge of epoll may come to wake it. */
void sess_again(struct sess *s)
{
	if (s->again)
		return;
	s->again = true;
	s->next_again = s->core->again;
	s->core->again = s;
}

/* A stream's readiness changed (its wake callback, from inside the stack;
 * arg: the session): the session runs in the loop's run-again step. */
void sess_stream_wake(struct stream *st, void *arg)
{
	(void)st;
	sess_again(arg);
}

#define SESS_ROUNDS 64 /* per wake-up, so that one busy session cannot starve the others */

void sess_run(struct sess *s)
{
	int guard;

	for (guard = 0; s->cli.kind != SK_DEAD; guard++) {
		if (guard == SESS_ROUNDS) {
			sess_again(s);
			return;
		}
		bool did;

		if (s->job_out) {
			/* The client closed or reset while its handshake
			 * step waits for a worker: the step is skipped. */
			if (s->cli.hup)
				sess_cancel_job(s);
			return;
		}
		did = sess_read(s);
		sess_retire_step(s, false);
		switch (s->state) {
		case SS_DIALOGUE:
			did |= sess_dialogue(s);
			break;
		case SS_STARTTLS:
			if (buf_len(&s->cout) == 0) {
				/* Rule 2.3: the reply is out; now the handshake. */
				s->state = SS_HANDSHAKE;
				did = true;
			}
			break;
		case SS_HANDSHAKE:
			did |= sess_handshake(s);
			break;
		case SS_BACKEND:
			did |= sess_backend(s);
			break;
		case SS_RELAY:
			did |= sess_relay(s);
			break;
		case SS_CLOSING:
			did |= sess_closing_step(s);
			break;
		}
		if (s->cli.kind == SK_DEAD || s->job_out)
			return;
		/* Draining: the goodbye as soon as the session is idle. */
		if (s->core->draining && !s->bye && s->state != SS_CLOSING)
			did |= sess_goodbye(s);
		if (s->tls_failed && s->state != SS_CLOSING) {
			/* A fatal TLS error: its alert goes out, then the close. */
			sess_closing(s, NULL, NULL);
			did = true;
		}
		did |= sess_flush(s);
		if (s->cli.failed && s->state != SS_CLOSING) {
			sctr_inc(s, CTR_client_reset);
			sess_set_result(s, "client-error", "client connection failed");
			sess_finish(s);
			return;
		}
		if (!did)
			break;
	}
}

void sess_timer(struct timer *t)
{
	struct sess *s = (struct sess *)((char *)t - offsetof(struct sess, tm));
	const struct cfg_timeouts *to = &s->l->cfg->timeouts;
	uint64_t now = s->core->now_ms;
	struct proto_env env = sess_env(s);
	struct proto_out o;

	po_reset(&o);
	switch (s->state) {
	case SS_DIALOGUE:
		if (s->greet_held) {
			sess_greet(s); /* nothing came in the window: plaintext it is */
			break;
		}
		if (to->plaintext_deadline &&
		    now - s->t_dialogue >= to->plaintext_deadline * 1000ull) {
			/* However busy the client kept it (a NOOP a minute):
			 * sluice's own dialogue has a fixed end. */
			sess_set_result(s, "timeout", "sluice's dialogue not done in %us "
					"(timeouts.plaintext_deadline)", to->plaintext_deadline);
			proto_refuse(s->l->ops, &env, &o, PW_DEADLINE, CTR_timeout_deadline, NULL);
			sess_apply(s, &o);
			break;
		}
		if (now - s->t_active < sess_plaintext_ms(s)) {
			sess_arm_dialogue(s);
			return;
		}
		sctr_inc(s, CTR_timeout_plaintext);
		sess_set_result(s, "timeout", "no command for %llus%s",
				(unsigned long long)(sess_plaintext_ms(s) / 1000),
				s->core->stress ? " (stress)" : "");
		sess_engine(s, &o, timeout);
		if (s->state != SS_CLOSING)
			sess_closing(s, NULL, NULL);
		break;
	case SS_STARTTLS:
	case SS_HANDSHAKE:
		sctr_inc(s, CTR_timeout_handshake);
		sctr_inc(s, CTR_hsfail_timeout);
		sess_set_result(s, "timeout", "TLS handshake not done in %llus%s",
				(unsigned long long)(sess_handshake_ms(s) / 1000),
				s->core->stress ? " (stress)" : "");
		sess_finish(s);
		return;
	case SS_BACKEND:
		if (!s->be_connected) {
			if (sess_backend_lost(s, s->be_idx, -ETIMEDOUT))
				sess_backend_next(s);
		} else {
			sess_backend_failed(s, "backend did not answer in time");
		}
		break;
	case SS_RELAY: {
		bool had_data = s->fdata != NULL;
		uint64_t dl = fdata_deadline(s); /* FTP: a data connection's deadlines */

		if (now - s->t_active < to->idle * 1000ull) {
			uint64_t left = to->idle * 1000ull - (now - s->t_active);

			if (dl && dl > now && dl - now < left)
				left = dl - now;
			sess_arm(s, left);
			if (had_data && !s->fdata)
				break; /* it ended: a transfer reply it held moves now */
			return;
		}
	}
		sctr_inc(s, CTR_timeout_idle);
		sess_set_result(s, "timeout", "idle for %us", to->idle);
		/* Words only between the backend's responses (not inside a
		 * FETCH literal, a RETR body, a multi-line reply). */
		proto_timeout(s->l->ops, &env, &s->ps, true, &o);
		o.flags &= ~PO_CLOSE;
		sess_apply(s, &o);
		sess_closing(s, NULL, NULL);
		break;
	case SS_CLOSING:
		sess_finish(s);
		return;
	}
	sess_run(s);
}

/* A session for a new client connection, its streams not attached yet;
 * NULL when out of memory (counted). */
static struct sess *sess_new(struct core *c, const struct listener *l,
			     const struct sockaddr_storage *peer,
			     const struct sockaddr_storage *local)
{
	struct sess *s = calloc(1, sizeof(*s));

	if (!s) {
		lctr_inc(c, l->slot, CTR_conn_refused_overload);
		return NULL;
	}
	lctr_inc(c, l->slot, CTR_conn_accepted);
	s->core = c;
	s->snap = c->snap;
	snap_hold(s->snap, c->id);
	s->l = l;
	s->id = ((uint64_t)c->id << 48) | ++c->next_id;
	s->peer = *peer;
	s->policy = (uint8_t)cfg_policy_for(l->cfg, (const struct sockaddr *)peer);
	s->cert = TLS_CERT_ANY;
	s->local = *local;
	s->ps.trace = l->cfg->trace_header;
	s->be.fd = -1;
	s->be.kind = SK_DEAD;
	s->be_idx = -1;
	s->tio.in = &s->cin;
	s->tio.out = &s->cout;
	s->t_start = s->t_active = s->t_dialogue = c->now_ms;
	lr_init(&s->lr, l->ops->line_max);
	return s;
}

/* The client stream is attached: join the core's list and open the
 * dialogue (greeting, or a handshake for implicit TLS). */
static void sess_begin(struct sess *s)
{
	struct core *c = s->core;
	const struct listener *l = s->l;
	struct proto_out o;

	s->cli.writable = true;
	s->next = c->sessions;
	if (c->sessions)
		c->sessions->prev = s;
	c->sessions = s;
	c->n_sess++;
	sess_ph_join(s);

	if (l->cfg->tls == CFG_TLS_IMPLICIT) {
		sctr_inc(s, CTR_implicit_tls);
		s->state = SS_HANDSHAKE;
		sess_arm(s, sess_handshake_ms(s));
	} else if (l->cfg->detect_implicit_ms) {
		/* Hold the greeting: a ClientHello may come first, right
		 * behind the handshake, so for about two round trips. */
		s->hold_ms = quirk_hold_ms(stream_rtt_us(&s->cli), l->cfg->detect_implicit_ms);
		sctr_inc(s, CTR_greeting_held);
		sctr_add(s, CTR_greeting_held_ms, s->hold_ms);
		s->state = SS_DIALOGUE;
		s->greet_held = true;
		sess_arm(s, s->hold_ms);
		/* The core polls each ms until then; the wheel may fire the
		 * timer up to a tick late. */
		if (c->hold_until < c->now_ms + s->hold_ms + WHEEL_TICK_MS)
			c->hold_until = c->now_ms + s->hold_ms + WHEEL_TICK_MS;
	} else {
		s->state = SS_DIALOGUE;
		sess_engine(s, &o, greeting);
		sess_arm_dialogue(s);
	}
}

int sess_accept(struct core *c, const struct listener *l, struct stream *st)
{
	struct sockaddr_storage peer, local;
	struct lim_ticket lim;
	struct sess *s;
	int rc;

	if ((rc = stream_addrs(st, &peer, &local)) < 0)
		return rc;     /* gone already */
	if (st->ops->size > sizeof(s->cli_native))
		return -EINVAL;
	if ((rc = sess_admit(c, l, st, &peer, &lim)) < 0)
		return rc;
	if (!(s = sess_new(c, l, &peer, &local))) {
		limits_release(&lim);
		return -ENOMEM;
	}
	s->lim = lim;
	memcpy(&s->cli, st, st->ops->size);
	s->cli.owner = s;
	if ((rc = stream_open(&s->cli, sess_stream_wake, s)) < 0) {
		lctr_inc(c, l->slot, CTR_conn_refused_overload);
		lctr_inc(c, l->slot, CTR_conn_closed); /* accepted, never begun */
		limits_release(&s->lim);
		free(s);
		return rc;
	}
	sess_begin(s);
	/* Not from inside the stack: the loop runs it after what it took in,
	 * with the others it woke. */
	sess_again(s);
	return 0;
}

/* The one line per connection (DESIGN.md §9). */
static void sess_log(struct sess *s)
{
	char peer[64], local[64], quirks[160];
	/* The SNI and the reason may carry client bytes (lib/logsafe.h). */
	char sni[LOGSAFE_NAME_SIZE(sizeof(s->sni))], reason[4 * sizeof(s->reason)];
	const char *be = s->be_idx >= 0 ? s->l->pool->srv[s->be_idx].name : "-";

	if (s->ps.denied)
		s->quirks |= 1u << QUIRK_starttls_in_tls;

	log_msg(LOG_INFO,
		"conn=%llx listener=%s client=%s server=%s proto=%s tls=%s cipher=%s "
		"policy=%s resumed=%s "
		"sni=%s cert=%s ja4=%s starttls=%s quirks=%s hold_ms=%u backend=%s backend_tls=%s "
		"backend_hello=%s backend_resumed=%s in=%llu out=%llu ms=%llu "
		"result=%s reason=\"%s\"",
		(unsigned long long)s->id, s->l->cfg->name, fmt_addr(&s->peer, peer, sizeof(peer)),
		fmt_addr(&s->local, local, sizeof(local)), s->l->ops->name,
		s->tls ? s->tls_version : "none", s->tls ? s->tls_cipher : "-",
		s->l->tls_available ? cfg_policy_name((enum cfg_policy)s->policy) : "-",
		s->tls ? (s->resumed ? "yes" : "no") : "-",
		logsafe_name(s->sni, strlen(s->sni), sni, sizeof(sni)),
		s->tls ? s->cert_kind : "-", s->ja4[0] ? s->ja4 : "-",
		s->starttls ? "yes" : "no", quirk_list(s->quirks, quirks, sizeof(quirks)), s->hold_ms, be,
		s->be_tls_version[0] ? s->be_tls_version : "none",
		!sess_be_tls_wanted(s) || s->be_idx < 0 ? "-" :
		s->be_tls_fell_back ? "fallback" : s->be_tls_cons ? "remembered" :
		s->be_tls_version[0] ? "normal" : "-",
		!s->be_tls_version[0] ? "-" : s->be_tls_resumed ? "yes" : "no",
		(unsigned long long)s->bytes_in,
		(unsigned long long)s->bytes_out,
		(unsigned long long)(s->core->now_ms - s->t_start),
		s->result ? s->result : "ok",
		s->reason[0] ? logsafe_quoted(s->reason, reason, sizeof(reason)) : "-");
}

/* Close the sockets now; free the rest at the end of the loop, or when a
 * worker still holding the TLS state gives it back. */
void sess_finish(struct sess *s)
{
	struct core *c = s->core;

	if (s->cli.kind != SK_DEAD) {
		stream_close(&s->cli);
		sess_close_backend(s);
		fdata_free(s);
		timer_cancel(&s->tm);
		sctr_add(s, CTR_starttls_in_tls, s->ps.denied);
		if (s->ps.denied)
			sctr_inc(s, CTR_quirk_starttls_in_tls);
		sess_log(s);
		sctr_inc(s, CTR_conn_closed);
		if (s->prev)
			s->prev->next = s->next;
		else
			c->sessions = s->next;
		if (s->next)
			s->next->prev = s->prev;
		c->n_sess--;
		sess_ph_leave(s);
		limits_release(&s->lim);
		if (c->stress)
			sess_stress_check(c);
	}
	if (s->job_out || s->be_job_out) {
		s->dead = true; /* sess_job_done or sess_be_job_done comes back here */
		/* The worker skips the step if it has not run it yet: no
		 * signature for a client that is gone (the backend's step was
		 * cancelled by sess_close_backend). */
		if (s->job_out)
			atomic_store_explicit(&s->job.cancelled, true, memory_order_release);
		return;
	}
	s->next_dead = c->dead;
	c->dead = s;
}

void sess_run_again(struct core *c)
{
	struct sess *list = c->again, *s;

	c->again = NULL;
	while ((s = list)) {
		list = s->next_again;
		s->again = false;
		if (s->cli.kind != SK_DEAD)
			sess_run(s);
	}
}

void sess_reap(struct core *c)
{
	struct sess *s, *keep = NULL;

	while ((s = c->dead)) {
		c->dead = s->next_dead;
		if (s->again) {
			/* Still on the run-again list: freed once it left it. */
			s->next_dead = keep;
			keep = s;
			continue;
		}
		sess_free(s);
	}
	c->dead = keep;
}

void sess_free(struct sess *s)
{
	fdata_free(s); /* before the SSL object its checks read */
	sess_tls_release(s);
	SSL_free(s->ssl);
	buf_free(&s->cin);
	buf_free(&s->cout);
	buf_free(&s->pin);
	if (s->l->ops->fini)
		s->l->ops->fini(&s->ps);
	snap_release(s->snap, s->core->id);
	free(s);
}

void sess_close_all(struct core *c)
{
	struct sess *s;

	while (c->sessions) {
		sess_set_result(c->sessions, "shutdown", "sluice stopping");
		sess_finish(c->sessions);
	}
	for (s = c->again; s; s = s->next_again)
		s->again = false;
	c->again = NULL;
}
