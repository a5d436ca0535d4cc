/*
 * Opening the session's backend (DESIGN.md §2, rule 2.4): SS_BACKEND picks
 * a server of the listener's pool and connects it (the next one when a
 * connect fails), introduces the client with the PROXY header, and lets the
 * engine handle the backend's opening until it answers PO_RELAY. session.c's
 * sess_run decides when.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <syslog.h>

#include "log.h"
#include "session/backend.h"
#include "session/proxyproto.h"
#include "session/session.h"
#include "session/session_int.h"
#include "io/io.h"

#define BACKEND_OPEN_MIN_S 30u

/* A connect to backend server idx failed: see session_int.h. */
bool sess_backend_lost(struct sess *s, int idx, int err)
{
	struct proto_out o;

	if (stream_is_open(&s->be))
		stream_close(&s->be);
	if (be_err_local(err)) {
		/* Sluice's own trouble (EMFILE, no source port...): the
		 * server is not to blame, and the next one would fare no
		 * better. The session log line says it, not a backend line. */
		sctr_inc(s, CTR_backend_connect_local);
		sess_set_result(s, "backend-failed", "cannot connect to backend %s: %s "
				"(local error: server not marked down)",
				s->l->pool->srv[idx].name, strerror(-err));
		sess_engine(s, &o, unavailable);
		sess_closing(s, NULL, NULL);
		return false;
	}
	sctr_inc(s, CTR_backend_connect_fail);
	if (be_mark_down(s->l->pool, idx, s->core->now_ms))
		log_msg(LOG_WARNING, "backend %s: connect: %s", s->l->pool->srv[idx].name,
			strerror(-err));
	return true;
}

int sess_backend_connect(struct sess *s, int idx)
{
	struct be_pool *p = s->l->pool;
	int rc;

	sess_be_tls_free(s);
	s->be.owner = s;
	s->be.wake = sess_stream_wake;
	s->be.wake_arg = s;
	rc = io_connect(s->core, &s->be, (struct sockaddr *)&p->srv[idx].addr, p->srv[idx].len);
	if (rc == 0) {
		s->be_idx = idx;
		sess_arm(s, p->cfg->connect_timeout * 1000ull);
	}
	return rc;
}

/* Connect the next backend server, or tell the client none is there. */
void sess_backend_next(struct sess *s)
{
	struct be_pool *p = s->l->pool;

	for (;;) {
		struct proto_out o;
		int idx = be_pick(p, s->id, s->be_tries++, s->core->now_ms);
		int rc;

		if (idx < 0) {
			/* a server's TLS failure is the reason (sess_be_tls_next) */
			char last[sizeof(s->reason)];

			snprintf(last, sizeof(last), "%s", s->reason);
			sctr_inc(s, CTR_backend_unavailable);
			sess_set_result(s, "backend-failed", "%s",
					last[0] ? last : "no backend server reachable");
			sess_engine(s, &o, unavailable);
			sess_closing(s, NULL, NULL);
			return;
		}
		s->be_tls_cons = false; /* a new server: its own memory decides */
		rc = sess_backend_connect(s, idx);
		if (rc == 0)
			return;
		if (!sess_backend_lost(s, idx, rc))
			return;
	}
}

void sess_backend_start(struct sess *s)
{
	sess_retire_step(s, true);
	s->state = SS_BACKEND;
	s->be_tries = 0;
	sess_backend_next(s);
}

/* The backend accepted the connection: introduce the client. Returns false
 * when the PROXY header cannot be encoded: the session is closing. */
static bool sess_backend_up(struct sess *s)
{
	struct be_pool *p = s->l->pool;
	struct pp_tls t = { s->tls_version, s->tls_cipher, s->sni };
	unsigned v = p->cfg->proxy == CFG_PROXY_V2 ? 2 : p->cfg->proxy == CFG_PROXY_V1 ? 1 : 0;
	uint8_t hdr[PP_MAX];
	struct proto_out o;
	int n;

	s->be_connected = true;
	sctr_inc(s, CTR_backend_connect_ok);
	lr_init(&s->blr, BACKEND_LINE_MAX);
	n = pp_header(v, hdr, sizeof(hdr), (struct sockaddr *)&s->peer,
		      (struct sockaddr *)&s->local, s->tls ? &t : NULL);
	if (n < 0) {
		/* Without its header the backend would take sluice for the
		 * client (its own address: relay rights, no rate limits):
		 * fail closed, with the temporary error. */
		sctr_inc(s, CTR_proxy_unencodable);
		sess_set_result(s, "backend-failed", "PROXY v%u header cannot be encoded: %s",
				v, strerror(-n));
		sess_engine(s, &o, unavailable);
		sess_closing(s, NULL, NULL);
		return false;
	}
	if (n > 0)
		buf_put(&s->bout, hdr, (uint32_t)n);
	sess_arm(s, (p->cfg->connect_timeout > BACKEND_OPEN_MIN_S ? p->cfg->connect_timeout
								   : BACKEND_OPEN_MIN_S) * 1000ull);
	return true;
}

/* The backend failed while being opened: the client gets the engine's
 * temporary error, then the close. */
void sess_backend_failed(struct sess *s, const char *why)
{
	struct proto_out o;

	sess_set_result(s, "backend-failed", "%s", why);
	sess_engine(s, &o, unavailable);
	sess_closing(s, NULL, NULL);
}

/* SS_BACKEND: connect, then let the engine open the backend. */
bool sess_backend(struct sess *s)
{
	struct proto_env env;
	struct lr_line line;
	struct proto_out o;
	bool did = false;

	if (s->be.connecting) {
		int rc;

		if (!s->be.writable && !s->be.failed && !s->be.eof)
			return false;
		rc = stream_connected(&s->be);
		if (rc == -EINPROGRESS)
			return false;
		if (rc < 0) {
			if (sess_backend_lost(s, s->be_idx, rc))
				sess_backend_next(s);
			return true;
		}
		if (!sess_backend_up(s))
			return true;
		if (sess_be_tls_wanted(s) && !sess_be_tls_up(s))
			return true;
		did = true;
	}
	if (s->be_ssl && !s->be_tls) {
		/* Nothing is read from or written to the backend in
		 * plaintext until its handshake is done (rule 2.4's twin). */
		int rc = sess_be_tls_handshake(s);

		if (rc < 0)
			return true;
		if (rc == 0)
			return did;
		sess_be_tls_pump(s);
		did = true;
	}
	/* Hold the client's bytes (decrypted) until the backend is ready. */
	if (s->tls && !s->c2b)
		did |= sess_tls_pull(s, &s->pin);
	if (s->c2b)
		did |= sess_pump_c2b(s);

	env = sess_env(s);
	while (s->state == SS_BACKEND && !s->b2c && buf_len(&s->bin)) {
		size_t used;
		enum lr_event ev = lr_next(&s->blr, buf_head(&s->bin), buf_len(&s->bin),
					   &line, &used);

		if (ev == LR_NEED_MORE) {
			if (used)
				buf_consume(&s->bin, (uint32_t)used);
			break;
		}
		if (ev != LR_LINE) {
			sess_backend_failed(s, "backend sent an overlong line");
			return true;
		}
		if (s->bst_on) {
			/* line.p points into bin: consumed after the call */
			bool go_on = sess_be_starttls_line(s, line.p, line.len,
							   buf_len(&s->bin) - (uint32_t)used);

			if (buf_len(&s->bin) >= used)
				buf_consume(&s->bin, (uint32_t)used);
			did = true;
			if (!go_on)
				return true;
			if (s->bst_replay) {
				s->bst_replay = false;
				sess_be_replay_greeting(s);
			}
			continue;
		}
		po_reset(&o);
		s->l->ops->backend_line(&env, &s->ps, line.p, line.len, &o);
		buf_consume(&s->bin, (uint32_t)used);
		did = true;
		if (o.flags & PO_FAIL) {
			sess_set_result(s, "backend-failed", "%s", o.reason ? o.reason : "refused");
			sess_apply(s, &o);
			sess_closing(s, NULL, NULL);
			return true;
		}
		sess_apply(s, &o);
		if (o.flags & PO_FLUSH_HELD) {
			s->c2b = true; /* the held bytes go first, scanned */
			sess_pump_c2b(s);
		}
		if (o.flags & PO_RELAY) {
			if (!s->result)
				s->reason[0] = '\0'; /* an earlier server's failure */
			s->b2c = true;
			s->state = SS_RELAY;
			if (!s->tls)
				sctr_inc(s, CTR_plaintext_relayed);
			s->t_active = s->core->now_ms;
			sess_arm(s, s->l->cfg->timeouts.idle * 1000ull);
		}
	}
	if (s->state == SS_BACKEND && (s->be.eof || s->be.failed) && !s->b2c) {
		sctr_inc(s, CTR_backend_lost);
		sess_backend_failed(s, "backend closed while being opened");
		return true;
	}
	if (s->state == SS_BACKEND && s->cli.failed) {
		sess_set_result(s, "client-error", "client connection failed");
		sess_finish(s);
		return false;
	}
	return did;
}
