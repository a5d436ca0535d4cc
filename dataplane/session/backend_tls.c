/*
 * TLS from sluice to the session's backend (docs/configuration.md "Backend
 * TLS"): a layer under bin/bout. Once the backend connection is up (and
 * its PROXY header, in plaintext, queued), the SSL object reads the
 * backend's ciphertext from bcin and writes to bcout; bin and bout then
 * hold its plaintext, so the engines' backend_line, the relay and the
 * half-closes work as on a plaintext backend.
 *
 * The client handshake runs on the TLS workers, as the client side's
 * does: the core makes the SSL object (sess_be_tls_begin), then posts each
 * step as a job of kind TLSJ_CLIENT (s->be_job) when its input is there,
 * and takes it back in sess_be_job_done. While the job is out the worker
 * owns be_ssl, bcin and bcout (s->be_job_out): sess_read and sess_flush
 * leave the backend's side alone, the backend stream waits readable, and
 * a backend given up meanwhile (a timer, the client gone) has its TLS
 * state freed only when the job comes back (be_job_drop; s->dead for the
 * session, as with the client's job). With workers: 0 the core runs the
 * step itself at the end of its pass (tlsw_kick). OpenSSL's error queue
 * is the worker's: the job carries SSL_get_error's value and the first
 * queued error back, and tls_client_classify reads those on the core.
 *
 * Resumption (tls/client.h): each connection offers its server's last
 * session, from the normal hello; the probes never do (they check the
 * certificate each time).
 *
 * Intolerance (tls/client.h): a handshake that fails before any
 * ServerHello by a reset, a close or a protocol_version/handshake_failure
 * alert is tried once more on a new connection to the same server with
 * the conservative hello, and the server remembered for fallback_memory
 * seconds. A verification failure is never retried.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include <openssl/err.h>

#include "log.h"
#include "session/backend.h"
#include "session/session.h"
#include "session/session_int.h"

/* TLS to the backend of this session's listener? */
bool sess_be_tls_wanted(const struct sess *s)
{
	return s->l->pool->cfg->tls.tls != CFG_BE_TLS_OFF;
}

void sess_be_tls_free(struct sess *s)
{
	s->bst_on = false;
	s->be_tls = false;
	s->be_tls_close_sent = false;
	if (s->be_job_out) {
		/* The worker holds be_ssl, bcin and bcout: freed when the job
		 * comes back (sess_be_job_done), its step skipped if it has
		 * not run yet (no key exchange for a backend given up). */
		s->be_job_drop = true;
		atomic_store_explicit(&s->be_job.cancelled, true, memory_order_release);
		return;
	}
	s->be_job_drop = false;
	s->be_hs_steps = 0;
	s->be_hs_left = 0;
	s->be_hs_want_write = false;
	SSL_free(s->be_ssl);
	s->be_ssl = NULL;
	s->be_tls = false;
	s->be_tls_close_sent = false;
	buf_free(&s->bcin);
	buf_free(&s->bcout);
	memset(&s->btio, 0, sizeof(s->btio));
}

bool sess_be_tls_begin(struct sess *s)
{
	struct be_pool *p = s->l->pool;
	struct be_server *srv = &p->srv[s->be_idx];
	uint64_t until = atomic_load_explicit(&srv->fallback_until_ms, memory_order_relaxed);
	BIO *b;

	if (!s->be_tls_cons && until > s->core->now_ms && p->tlsc.conservative) {
		s->be_tls_cons = true;
		sctr_inc(s, CTR_backend_tls_fallback_remembered);
	}
	/* The PROXY header goes first, in plaintext: straight to the wire. */
	if (buf_len(&s->bout) &&
	    buf_put(&s->bcout, buf_head(&s->bout), buf_len(&s->bout)) != buf_len(&s->bout))
		goto fail;
	buf_consume(&s->bout, buf_len(&s->bout));
	s->btio.in = &s->bcin;
	s->btio.out = &s->bcout;
	s->btio.in_eof = false;
	s->be_ssl = tls_client_ssl(&p->tlsc, s->be_tls_cons, s->be_idx);
	b = s->be_ssl ? tls_bio_new(&s->btio) : NULL;
	if (!b)
		goto fail;
	SSL_set_bio(s->be_ssl, b, b);
	return true;
fail:
	sctr_inc(s, CTR_backend_tls_failed);
	sess_backend_failed(s, "TLS to the backend: out of memory");
	return false;
}

/* Drop the backend connection and what it carried, for a new one. */
static void sess_be_drop(struct sess *s)
{
	sess_be_tls_free(s);
	if (stream_is_open(&s->be))
		stream_close(&s->be);
	buf_free(&s->bin);
	buf_free(&s->bout);
	s->be_connected = false;
}

/*
 * The server failed TLS (its certificate, its STARTTLS, its handshake):
 * it is skipped for a while, as one that refuses connections is, and the
 * session tries the next server of the pool, from a new connection and a
 * full handshake (never a weaker one: the conservative hello is only
 * ever the same server's retry after intolerance). With none left the
 * client hears the temporary error, and the log the last server's reason.
 */
static void sess_be_tls_next(struct sess *s, const char *why)
{
	if (!s->result)
		snprintf(s->reason, sizeof(s->reason), "%s", why);
	be_mark_down(s->l->pool, s->be_idx, s->core->now_ms);
	sess_be_drop(s);
	sess_backend_next(s);
}

/* The handshake failed: retry with the conservative hello, or the next
 * server. */
static void sess_be_tls_failed(struct sess *s, int e, unsigned long err)
{
	struct be_pool *p = s->l->pool;
	struct be_server *srv = &p->srv[s->be_idx];
	char why[160];
	enum tls_client_fail f = tls_client_classify(s->be_ssl, e, err, why, sizeof(why));

	ERR_clear_error();
	if (f == TLSC_FAIL_INTOLERANT && !s->be_tls_cons && p->tlsc.conservative) {
		unsigned mem = p->cfg->tls.fallback_memory;

		sctr_inc(s, CTR_backend_tls_fallback);
		if (mem)
			atomic_store_explicit(&srv->fallback_until_ms,
					      s->core->now_ms + mem * 1000ull, memory_order_relaxed);
		log_msg(LOG_NOTICE, "backend %s: TLS handshake failed (%s): retrying with the "
			"conservative hello (TLS 1.2, fewer extensions), remembered for %us",
			srv->name, why, mem);
		s->be_tls_cons = true;
		s->be_tls_fell_back = true;
		sess_be_drop(s);
		int rc = sess_backend_connect(s, s->be_idx);

		if (rc && sess_backend_lost(s, s->be_idx, rc))
			sess_backend_next(s);
		return;
	}
	sctr_inc(s, f == TLSC_FAIL_VERIFY ? CTR_backend_tls_verify_failed : CTR_backend_tls_failed);
	log_msg(LOG_WARNING, "backend %s: TLS%s: %s", srv->name,
		s->be_tls_cons ? " (conservative hello)" : "", why);
	{
		char r[320];

		snprintf(r, sizeof(r), "TLS to backend %s%s: %s", srv->name,
			 s->be_tls_cons ? " (conservative hello)" : "", why);
		sess_be_tls_next(s, r);
	}
}

bool sess_be_tls_up(struct sess *s)
{
	const struct cfg_backend_tls *t = &s->l->pool->cfg->tls;

	if (t->mode == CFG_BE_TLS_IMPLICIT)
		return sess_be_tls_begin(s);
	bst_init(&s->bst, s->l->pool->cfg->protocol);
	s->bst_on = true;
	return true;
}

/* After the handshake (or without TLS, where tls: on allows): the engine
 * opens the backend as if it had just connected, from the greeting the
 * backend gave before STARTTLS. */
void sess_be_replay_greeting(struct sess *s)
{
	buf_put(&s->bin, s->bst.greeting, (uint32_t)s->bst.glen);
	buf_put(&s->bin, "\r\n", 2);
}

bool sess_be_starttls_line(struct sess *s, const char *l, size_t len, uint32_t rest)
{
	const struct cfg_backend_tls *t = &s->l->pool->cfg->tls;
	char out[320], r[200];
	size_t n;

	switch (bst_line(&s->bst, s->l->cfg->hostname, l, len, out, sizeof(out), &n)) {
	case BST_MORE:
		return true;
	case BST_SEND:
		if (buf_put(&s->bout, out, (uint32_t)n) != n)
			break;
		return true;
	case BST_TLS:
		s->bst_on = false;
		if (rest) {
			/* Bytes behind the go-ahead were sent before TLS could
			 * start: never taken as coming from inside it (rule
			 * 2.1's twin, CVE-2011-0411 on the server side). */
			sctr_inc(s, CTR_backend_tls_failed);
			snprintf(r, sizeof(r), "TLS to backend %s: it sent bytes after its "
				 "STARTTLS reply", s->l->pool->srv[s->be_idx].name);
			log_msg(LOG_WARNING, "backend %s: bytes after its STARTTLS reply",
				s->l->pool->srv[s->be_idx].name);
			sess_be_tls_next(s, r);
			return false;
		}
		sess_be_tls_begin(s);
		return false;
	case BST_ABSENT:
		s->bst_on = false;
		if (t->tls == CFG_BE_TLS_ON) {
			/* The engine opens the backend from its greeting, in
			 * plaintext (after this line is consumed). */
			sctr_inc(s, CTR_backend_tls_absent);
			s->bst_replay = true;
			return true;
		}
		sctr_inc(s, CTR_backend_tls_failed);
		snprintf(r, sizeof(r), "TLS to backend %s: it offers no STARTTLS (tls: required)",
			 s->l->pool->srv[s->be_idx].name);
		log_msg(LOG_WARNING, "backend %s: no STARTTLS offered (tls: required)",
			s->l->pool->srv[s->be_idx].name);
		sess_be_tls_next(s, r);
		return false;
	case BST_FAIL:
		s->bst_on = false;
		sctr_inc(s, CTR_backend_tls_failed);
		snprintf(r, sizeof(r), "TLS to backend %s: %s", s->l->pool->srv[s->be_idx].name,
			 s->bst.why ? s->bst.why : "refused");
		log_msg(LOG_WARNING, "backend %s: STARTTLS: %s", s->l->pool->srv[s->be_idx].name,
			s->bst.why ? s->bst.why : "refused");
		sess_be_tls_next(s, r);
		return false;
	}
	sess_backend_failed(s, "TLS to the backend: no room for a command");
	return false;
}

int sess_be_tls_handshake(struct sess *s)
{
	bool eof = s->be.eof || s->be.failed;

	if (s->be_tls)
		return 1;
	if (!s->be_ssl)
		return -1;
	if (s->be_job_out)
		return 0;
	/* A step only when it has something new to work on: the first, more
	 * bytes from the backend, its close, or room in bcout after a step
	 * that found none. */
	if (s->be_hs_steps && buf_len(&s->bcin) <= s->be_hs_left && !(eof && !s->btio.in_eof) &&
	    !(s->be_hs_want_write && buf_len(&s->bcout) == 0))
		return 0;
	if (s->be_hs_want_write && buf_len(&s->bcout) && !eof)
		return 0;
	s->be_hs_want_write = false;
	s->btio.in_eof = eof;
	memset(&s->be_job, 0, sizeof(s->be_job));
	s->be_job.owner = s;
	s->be_job.kind = TLSJ_CLIENT;
	s->be_job.ssl = s->be_ssl;
	s->be_job.io = &s->btio;
	s->be_job.peer_alert = -1;
	if (!tlsw_post(s->core->id, &s->be_job)) {
		sctr_inc(s, CTR_worker_queue_full);
		sess_backend_failed(s, "TLS to the backend: all TLS workers are busy");
		return -1;
	}
	sctr_inc(s, CTR_backend_tls_jobs);
	s->core->jobs_posted++;
	if (s->be_hs_steps < UINT8_MAX)
		s->be_hs_steps++;
	s->be_job_out = true;
	return 0;
}

/* A step came back from the worker: 1 done, 0 wants I/O, -1 failed (the
 * session either reconnects for the conservative hello or is closing). */
static int sess_be_tls_step_done(struct sess *s, const struct tls_job *j)
{
	int e = j->ssl_error;

	if (j->status == TLSJ_DONE) {
		s->be_tls = true;
		snprintf(s->be_tls_version, sizeof(s->be_tls_version), "%s",
			 SSL_get_version(s->be_ssl));
		sctr_inc(s, CTR_backend_tls_ok);
		if ((s->be_tls_resumed = SSL_session_reused(s->be_ssl)))
			sctr_inc(s, CTR_backend_tls_resumed);
		if (s->l->pool->cfg->tls.mode == CFG_BE_TLS_STARTTLS)
			sess_be_replay_greeting(s);
		return 1;
	}
	if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && !s->be.failed) {
		s->be_hs_left = buf_len(&s->bcin);
		s->be_hs_want_write = e == SSL_ERROR_WANT_WRITE;
		return 0;
	}
	if (s->be.failed && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE))
		e = SSL_ERROR_SYSCALL; /* reset */
	sess_be_tls_failed(s, e, j->err);
	return -1;
}

void sess_be_job_done(struct tls_job *j)
{
	struct sess *s = j->owner;

	s->be_job_out = false;
	if (s->be_job_drop || s->dead) {
		/* Given up while the step ran: now that the worker let go. */
		s->be_job_drop = false;
		sess_be_tls_free(s);
		if (s->dead) {
			sess_finish(s);
			return;
		}
	} else {
		(void)sess_be_tls_step_done(s, j);
	}
	sess_run(s);
}

bool sess_be_tls_pump(struct sess *s)
{
	bool did = false;

	if (!s->be_tls)
		return false;
	s->btio.in_eof = s->be.eof || s->be.failed;
	/* backend -> bin */
	while (buf_room(&s->bin)) {
		uint8_t *q;
		uint32_t room;
		int n;

		if (buf_space(&s->bin, &q, &room) < 0 || room == 0)
			break;
		n = SSL_read(s->be_ssl, q, (int)room);
		if (n <= 0) {
			int e = SSL_get_error(s->be_ssl, n);

			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				s->be_tls_in_done = true;
			ERR_clear_error();
			buf_consume(&s->bin, 0); /* no storage held for nothing */
			break;
		}
		s->bin.tail += (uint32_t)n;
		did = true;
	}
	/* bout -> backend */
	while (buf_len(&s->bout) && buf_room(&s->bcout)) {
		int n = SSL_write(s->be_ssl, buf_head(&s->bout), (int)buf_len(&s->bout));

		if (n <= 0) {
			ERR_clear_error();
			break;
		}
		buf_consume(&s->bout, (uint32_t)n);
		did = true;
	}
	return did;
}

bool sess_be_drained(const struct sess *s)
{
	return buf_len(&s->bin) == 0 &&
	       (!s->be_ssl || !s->be_tls || s->be_tls_in_done || buf_len(&s->bcin) == 0);
}

bool sess_be_tls_close(struct sess *s)
{
	if (!s->be_tls || s->be_tls_close_sent)
		return false;
	s->be_tls_close_sent = true;
	SSL_shutdown(s->be_ssl);
	ERR_clear_error();
	return buf_len(&s->bcout) > 0;
}
