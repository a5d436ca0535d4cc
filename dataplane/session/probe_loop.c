/*
 * Backend capability probes and health checks from core 0's loop.
 *
 * With the native stack the backends sit behind sluice's DPDK ports, where
 * no kernel socket reaches them, so the probe thread of the kernel stack
 * cannot run. Core 0 runs the same conversation instead (session/backend.c:
 * be_probe_begin/input, the engines' probe parsers, be_probe_result for the
 * marking, publishing and logging), one connection per server, all servers
 * of a pool at once, every health_interval. The connections are streams of
 * the core's stack (io_connect), like the sessions' backend connections:
 * on the native stack from the port that reaches the server, with a source
 * port whose answers come back to core 0. The first round, at core 0's
 * first pass, logs every result; later rounds log changes.
 *
 * The streams' wake callbacks only note that a probe has something to do;
 * the conversation moves in probe_loop_poll(), from core 0's loop, never
 * from inside the stack.
 *
 * A backend with implicit TLS (docs/configuration.md "Backend TLS") is
 * probed inside TLS, as the kernel stack's probe thread does: the PROXY
 * header in plaintext, then a full client handshake (never resumed: the
 * probe checks the certificate every time) over the connection's buffers,
 * the conversation through SSL_read/SSL_write, close_notify before the
 * FIN. It begins with the conservative hello while the server is
 * remembered as needing it; the fallback itself is the sessions' to find
 * (a probe that meets intolerance fails, the next session retries and
 * remembers). STARTTLS backends are probed in plaintext.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "io/io.h"
#include "net/tcp_stream.h"
#include "session/backend.h"
#include "session/probe_loop.h"
#include "tls.h"

/* One server's probe. */
struct nprobe {
	struct be_pool *pool;
	unsigned srv;                /* index in pool->srv */
	union {
		struct stream st;            /* the connection, on either stack */
		struct tcp_stream st_native; /* room for a native one */
	};
	struct buf in, out;          /* the server's bytes; ours not taken yet
					(under TLS: ciphertext) */
	SSL *ssl;                    /* implicit TLS to the server, or NULL */
	struct tls_io tio;           /* ssl's BIO: in and out */
	bool tls_up;                 /* its handshake is done */
	bool busy;                   /* a probe is under way (st may be closed) */
	bool draining;               /* result given; reading until the server's FIN */
	bool woken;                  /* the stack reported something */
	bool verbose;
	uint64_t deadline_ms;        /* no progress by then: timed out */
	struct be_probe pr;
};

static struct {
	struct be_pool *pools;
	unsigned n_pools;
	const char *hostname;
	struct nprobe *pr;           /* every server of every pool, in order;
					never moves (the streams live in it) */
	unsigned n_pr;
	uint64_t *next_ms;           /* per pool: the next round */
	bool *probed;                /* per pool: a first round was started */
	bool woken;                  /* some probe was woken */
	uint64_t check_ms;           /* the next look for timeouts */
} NP;

/* stream wake: note it; the conversation moves in probe_loop_poll(). */
static void np_wake(struct stream *s, void *arg)
{
	struct nprobe *np = arg;

	(void)s;
	np->woken = true;
	NP.woken = true;
}

int probe_loop_setup(struct be_pool *pools, unsigned n, const char *hostname)
{
	unsigned i, j, k = 0;

	NP.pools = pools;
	NP.n_pools = n;
	NP.hostname = hostname;
	for (i = 0; i < n; i++)
		NP.n_pr += pools[i].n;
	NP.pr = calloc(NP.n_pr ? NP.n_pr : 1, sizeof(*NP.pr));
	NP.next_ms = calloc(n ? n : 1, sizeof(*NP.next_ms));
	NP.probed = calloc(n ? n : 1, sizeof(*NP.probed));
	if (!NP.pr || !NP.next_ms || !NP.probed) {
		probe_loop_stop();
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < pools[i].n; j++) {
			NP.pr[k].pool = &pools[i];
			NP.pr[k].st.kind = SK_DEAD;
			NP.pr[k++].srv = j;
		}
	return 0;
}

/* The connection is no longer needed: let it go, the probe is idle. */
static void np_release(struct nprobe *np)
{
	SSL_free(np->ssl);
	np->ssl = NULL;
	np->tls_up = false;
	stream_close(&np->st);   /* RST if the server's bytes were left unread */
	buf_free(&np->in);
	buf_free(&np->out);
	np->busy = np->draining = false;
}

/* Send what the conversation queued (it fits: a few hundred bytes into an
 * empty send buffer; what the stack does not take now goes at the next
 * wake-up). 0 or -errno. */
static int np_flush(struct nprobe *np)
{
	if (np->pr.out_len && np->tls_up) {
		/* a few hundred bytes: one record into an empty buffer */
		if (SSL_write(np->ssl, np->pr.out, (int)np->pr.out_len) <= 0) {
			ERR_clear_error();
			return -EPROTO;
		}
		np->pr.out_len = 0;
	} else if (np->pr.out_len && !np->ssl) {
		buf_put(&np->out, np->pr.out, (uint32_t)np->pr.out_len);
		np->pr.out_len = 0;
	}
	if (buf_len(&np->out))
		stream_send(&np->st, &np->out);
	return np->st.failed ? -np->st.err : 0;
}

/*
 * The probe is over: hand the result on. After a good one the QUIT is on
 * its way with our FIN behind it; the connection stays until the server's
 * answer and FIN are read, so that it ends without a reset (RFC 9293
 * §3.10.4: closing with unread data resets).
 */
static void np_finish(struct nprobe *np, int rc, const char *why, uint64_t now_ms)
{
	struct proto_caps *caps = rc == 0 ? be_probe_take(&np->pr) : NULL;

	be_probe_end(&np->pr);
	be_probe_result(np->pool, np->srv, rc, caps, why, np->verbose, now_ms);
	if (rc == 0 && stream_is_open(&np->st) && !np->st.failed) {
		if (np->ssl) {
			SSL_shutdown(np->ssl);   /* close_notify, after the QUIT */
			ERR_clear_error();
			stream_send(&np->st, &np->out);
		}
		stream_shutdown_wr(&np->st);
		np->draining = true;
		np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
	} else {
		np_release(np);
	}
}

/* Draining: discard what the server still says; done at its FIN. */
static void np_drain(struct nprobe *np, uint64_t now_ms)
{
	while (stream_recv(&np->st, &np->in) > 0)
		buf_consume(&np->in, buf_len(&np->in));
	if (!stream_is_open(&np->st) || np->st.eof || np->st.failed || now_ms >= np->deadline_ms)
		np_release(np);
}

/* Start probing server np->srv: the connect goes out. */
static void np_start(struct core *c, struct nprobe *np, bool verbose, uint64_t now_ms)
{
	const struct be_server *s = &np->pool->srv[np->srv];
	char why[128];
	int rc;

	np->busy = true;
	np->woken = false;
	np->verbose = verbose;
	np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
	memset(&np->pr, 0, sizeof(np->pr));
	memset(&np->st_native, 0, sizeof(np->st_native));
	np->st.kind = SK_DEAD;
	np->st.fd = -1;
	np->st.owner = np;
	np->st.wake = np_wake;
	np->st.wake_arg = np;
	rc = io_connect(c, &np->st, (const struct sockaddr *)&s->addr, s->len);
	if (rc < 0) {
		np->st.kind = SK_DEAD;
		snprintf(why, sizeof(why), "connect: %s", strerror(-rc));
		np_finish(np, rc, why, now_ms);
	}
}

/* Implicit TLS: the PROXY header the probe queued goes first, in
 * plaintext; then the ClientHello. 0 or -ENOMEM. */
static int np_tls_begin(struct nprobe *np, uint64_t now_ms)
{
	const struct be_server *s = &np->pool->srv[np->srv];
	bool cons = atomic_load_explicit(&s->fallback_until_ms, memory_order_relaxed) > now_ms;
	BIO *b;

	if (np->pr.out_len &&
	    buf_put(&np->out, np->pr.out, (uint32_t)np->pr.out_len) != np->pr.out_len)
		return -ENOMEM;
	np->pr.out_len = 0;
	np->tio.in = &np->in;
	np->tio.out = &np->out;
	np->tio.in_eof = false;
	np->tls_up = false;
	np->ssl = tls_client_ssl(&np->pool->tlsc, cons, -1); /* full: checks the certificate */
	b = np->ssl ? tls_bio_new(&np->tio) : NULL;
	if (!b) {
		SSL_free(np->ssl);
		np->ssl = NULL;
		return -ENOMEM;
	}
	SSL_set_bio(np->ssl, b, b);
	SSL_do_handshake(np->ssl);   /* the ClientHello into out */
	ERR_clear_error();
	return 0;
}

/* Under TLS: the handshake as far as it goes, then the server's plaintext
 * to the conversation. Returns be_probe_input's 0 or 1, or a negative
 * errno with why[] filled. */
static int np_tls_input(struct nprobe *np, char *why, size_t wlen)
{
	char buf[4096];
	int n, rc;

	np->tio.in_eof = np->st.eof || np->st.failed;
	if (!np->tls_up) {
		ERR_clear_error();
		n = SSL_do_handshake(np->ssl);
		if (n != 1) {
			int e = SSL_get_error(np->ssl, n);
			unsigned long err = ERR_peek_error();
			char w[160];

			if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
			    !np->tio.in_eof)
				return 0;
			if (np->tio.in_eof && (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE))
				e = SSL_ERROR_SYSCALL;
			tls_client_classify(np->ssl, e, err, w, sizeof(w));
			ERR_clear_error();
			snprintf(why, wlen, "TLS: %.100s", w);
			return -EPROTO;
		}
		np->tls_up = true;
	}
	while ((n = SSL_read(np->ssl, buf, sizeof(buf))) > 0)
		if ((rc = be_probe_input(&np->pr, buf, (size_t)n, why, wlen)) != 0) {
			ERR_clear_error();
			return rc;
		}
	ERR_clear_error();
	return 0;
}

/* Not connected before: is it now? Returns 0 when the conversation can
 * begin, 1 to wait, or -1 when the probe finished. */
static int np_begin(struct nprobe *np, uint64_t now_ms)
{
	struct sockaddr_storage me, peer;
	char why[128];
	int rc = stream_is_open(&np->st) ? stream_connected(&np->st) : -ECONNREFUSED;

	if (rc == -EINPROGRESS) {
		if (now_ms < np->deadline_ms)
			return 1;
		np_finish(np, -ETIMEDOUT, "connect: timed out", now_ms);
		return -1;
	}
	if (rc == -ENOTCONN)
		rc = -ECONNREFUSED;   /* the stack let the connection go */
	if (rc == 0 && (rc = stream_addrs(&np->st, &peer, &me)) == 0 &&
	    (rc = be_probe_begin(&np->pr, np->pool, NP.hostname, (struct sockaddr *)&me,
				 (struct sockaddr *)&peer)) < 0) {
		np_finish(np, rc, "out of memory", now_ms);
		return -1;
	}
	if (rc < 0) {
		snprintf(why, sizeof(why), "connect: %s", strerror(-rc));
		np_finish(np, rc, why, now_ms);
		return -1;
	}
	if (np->pool->cfg->tls.tls != CFG_BE_TLS_OFF &&
	    np->pool->cfg->tls.mode == CFG_BE_TLS_IMPLICIT && np_tls_begin(np, now_ms) < 0) {
		np_finish(np, -ENOMEM, "TLS: cannot start", now_ms);
		return -1;
	}
	np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
	return 0;
}

/* Advance one conversation as far as it goes now. */
static void np_step(struct nprobe *np, uint64_t now_ms)
{
	char why[128] = "";
	int rc;

	np->woken = false;
	if (np->draining) {
		np_drain(np, now_ms);
		return;
	}
	if (!np->pr.p && np_begin(np, now_ms) != 0)
		return;
	for (;;) {
		bool got;

		if ((rc = np_flush(np)) < 0) {
			snprintf(why, sizeof(why), "%s", strerror(-rc));
			np_finish(np, rc, why, now_ms);
			return;
		}
		got = stream_recv(&np->st, &np->in) > 0;
		if (got)
			np->deadline_ms = now_ms + np->pool->cfg->connect_timeout * 1000ull;
		if (np->ssl) {
			/* also without new bytes: the close may end the handshake */
			rc = np_tls_input(np, why, sizeof(why));
		} else if (got) {
			rc = be_probe_input(&np->pr, buf_head(&np->in), buf_len(&np->in), why,
					    sizeof(why));
			buf_consume(&np->in, buf_len(&np->in));
		} else {
			rc = 0;
		}
		if (rc < 0) {
			np_finish(np, rc, why, now_ms);
			return;
		}
		if (rc == 1) {
			np_flush(np);                    /* the QUIT */
			np_finish(np, 0, "", now_ms);
			return;
		}
		if (!got)
			break;
	}
	if (np->ssl && (rc = np_flush(np)) < 0) { /* what the handshake made last */
		snprintf(why, sizeof(why), "%s", strerror(-rc));
		np_finish(np, rc, why, now_ms);
		return;
	}
	if (np->st.failed) {
		rc = np->st.err ? -np->st.err : -ECONNRESET;
		snprintf(why, sizeof(why), "%s", strerror(-rc));
		np_finish(np, rc, why, now_ms);
	} else if (!stream_is_open(&np->st) || np->st.eof) {
		np_finish(np, -ECONNRESET, "closed the connection", now_ms);
	} else if (now_ms >= np->deadline_ms) {
		np_finish(np, -ETIMEDOUT, "timed out", now_ms);
	}
}

unsigned probe_loop_poll(struct core *c, uint64_t now_ms)
{
	unsigned i, k = 0, work = 0;

	/* Woken probes; timeouts need a look at every busy one, which is
	 * cheap (a few servers) but not needed every pass. */
	if (NP.woken || now_ms >= NP.check_ms) {
		NP.woken = false;
		NP.check_ms = now_ms + 50;
		for (i = 0; i < NP.n_pr; i++) {
			struct nprobe *np = &NP.pr[i];

			if (np->busy && (np->woken || now_ms >= np->deadline_ms)) {
				np_step(np, now_ms);
				work++;
			}
		}
	}
	for (i = 0; i < NP.n_pools; i++) {
		struct be_pool *p = &NP.pools[i];
		unsigned j;

		if (now_ms >= NP.next_ms[i]) {
			/* A server whose last probe is still under way keeps it. */
			for (j = 0; j < p->n; j++)
				if (!NP.pr[k + j].busy) {
					np_start(c, &NP.pr[k + j], !NP.probed[i], now_ms);
					work++;
				}
			NP.probed[i] = true;
			NP.next_ms[i] = now_ms + p->cfg->health_interval * 1000ull;
		}
		k += p->n;
	}
	return work;
}

void probe_loop_stop(void)
{
	for (unsigned i = 0; NP.pr && i < NP.n_pr; i++) {
		np_release(&NP.pr[i]);
		be_probe_end(&NP.pr[i].pr);
	}
	free(NP.pr);
	free(NP.next_ms);
	free(NP.probed);
	memset(&NP, 0, sizeof(NP));
}
