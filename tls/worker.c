/*
 * The handshake workers. Each worker thread owns an OSSL_LIB_CTX and one
 * SSL_CTX per TLS listener, created at start-up so that algorithms are
 * fetched once and no lock of a shared library context is taken per
 * handshake (OpenSSL 3.0 loses most of its multi-thread speed there).
 *
 * Cores and workers meet on rings: for every (core, worker) pair one ring
 * carries jobs to the worker and one carries them back. A core wakes a worker
 * through the worker's eventfd, and a worker wakes a core through the core's
 * eventfd, which sits in the core's epoll set.
 *
 * With no workers (workers: 0) each core runs its own handshake steps, as
 * nginx and HAProxy do: the core has a library context and SSL_CTXs of its
 * own, a job goes on the core's own ring pair as it would to a worker, and
 * tlsw_kick(), instead of waking a worker, runs at most TLSW_INLINE_BATCH of
 * them through the same tlsw_handshake() a worker calls. No thread switch
 * and no eventfd per step; a flood of steps waits on the ring between
 * passes, where tlsw_fill() sees it and a gone client's step is skipped,
 * as with a worker.
 *
 * sluice's own client handshakes to its backends go the same way as jobs
 * of kind TLSJ_CLIENT (tls.h): only the key exchange and the certificate
 * check leave the core.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ring.h"
#include "resume.h"
#include "tls.h"

#define TLSW_RING 1024
/* Inline: steps a core runs per pass. A full handshake's first step (the
 * signature and the key exchange) takes about 150 us here, so a pass
 * stays within a few ms and the other sessions' I/O goes on between. */
#define TLSW_INLINE_BATCH 16

/* A worker, or inline a core's handshake context (no thread, no evfd). */
struct tlsw {
	pthread_t thread;
	int evfd;              /* cores write here after posting */
	OSSL_LIB_CTX *libctx;
	unsigned id;
	char err[256];         /* start-up failure */
	bool started;
};

static struct {
	unsigned n_workers, n_cores;
	bool inline_hs;        /* workers: 0, the cores run the steps */
	unsigned n_ctx;        /* library contexts: n_workers, or inline n_cores */
	unsigned n_rings;      /* each way: n_workers * n_cores, or inline n_cores */
	struct tlsw *w;        /* [n_ctx] */
	struct ring *to_w;     /* [core * n_workers + worker]; inline [core]:
				  steps posted, not yet run */
	struct ring *to_c;     /* [worker * n_cores + core]; inline [core]:
				  steps run, not yet polled */
	int *core_fd;          /* [core] */
	unsigned *rr;          /* [core] next worker to try */
	uint8_t *kick;         /* [core * n_workers + worker] posted since last kick */
	uint32_t *out;         /* [core * n_workers + worker] (inline [core]) jobs
				  not yet back; kept below the ring size so
				  returns never block */
	_Atomic bool stop;
	pthread_barrier_t ready;
} P;

#define CTX_PER_SET ((TLS_CERTS_MAX + 1) * CFG_POLICY_COUNT)

/* The SSL_CTXs of one configuration snapshot, every worker's (inline:
 * every core's) own. */
struct tlsw_ctxs {
	unsigned n_sets, n_ctx;
	SSL_CTX **ctx[];       /* [worker or core][ctx_slot(set, cert, policy)];
				  NULL where unused */
};

/* Index in a worker's ctx table: per set, the combined SSL_CTX and one per
 * certificate, each under every policy. */
static size_t ctx_slot(unsigned set, unsigned cert, unsigned policy)
{
	return (size_t)set * CTX_PER_SET +
	       (cert == TLS_CERT_ANY ? 0 : cert + 1) * CFG_POLICY_COUNT + policy;
}

/* The core gave up on the job while it waited (its client closed or
 * timed out): nothing is run, the job goes back failed. */
static bool tlsw_cancelled(struct tls_job *j)
{
	if (!atomic_load_explicit(&j->cancelled, memory_order_acquire))
		return false;
	j->skipped = true;
	j->status = TLSJ_FAIL;
	snprintf(j->reason, sizeof(j->reason), "client gone: step skipped");
	return true;
}

/* The alert the client sent, from the error OpenSSL queued when it
 * received it (reason SSL_AD_REASON_OFFSET + the alert's code), or -1. */
static int16_t peer_alert_of(unsigned long e)
{
	int r = ERR_GET_REASON(e);

	if (!e || ERR_GET_LIB(e) != ERR_LIB_SSL || r < SSL_AD_REASON_OFFSET ||
	    r > SSL_AD_REASON_OFFSET + 255)
		return -1;
	return (int16_t)(r - SSL_AD_REASON_OFFSET);
}

/* Run one step of a handshake; the job says how far it got. A client's
 * handshake (TLSJ_SERVER) gets its SSL object made here on the first
 * step, from this worker's own SSL_CTX; sluice's to a backend
 * (TLSJ_CLIENT) comes with the core's, made in the default library
 * context, which is safe to drive from this thread while the core leaves
 * it alone (the job is out). Its new-session callback (tls/client.c) may
 * fire here: the slots take their lock. */
static void tlsw_handshake(struct tlsw *w, struct tls_job *j)
{
	int rc, e;

	j->skipped = false;
	j->peer_alert = -1;
	j->ssl_error = SSL_ERROR_NONE;
	j->err = 0;
	if (tlsw_cancelled(j))
		return;
	ERR_clear_error();
	if (j->kind == TLSJ_CLIENT && !j->ssl) { /* the core makes it: a bug */
		j->status = TLSJ_FAIL;
		snprintf(j->reason, sizeof(j->reason), "client job without an SSL object");
		return;
	}
	if (!j->ssl) {
		BIO *b;

		const struct tlsw_ctxs *t = j->ctxs;
		SSL_CTX *ctx = t && j->set < t->n_sets && j->policy < CFG_POLICY_COUNT &&
			       (j->cert == TLS_CERT_ANY || j->cert < TLS_CERTS_MAX)
			       ? t->ctx[w->id][ctx_slot(j->set, j->cert, j->policy)] : NULL;
		const char *sid = j->sid ? j->sid : "";

		if (!ctx) { /* the core asked for what it never configured */
			j->status = TLSJ_FAIL;
			snprintf(j->reason, sizeof(j->reason), "no SSL_CTX for set %u cert %u "
				 "policy %u", j->set, j->cert, j->policy);
			return;
		}
		j->ssl = SSL_new(ctx);
		b = j->ssl ? tls_bio_new(j->io) : NULL;
		if (b && SSL_set_session_id_context(j->ssl, (const unsigned char *)sid,
						    (unsigned)strnlen(sid, SSL_MAX_SID_CTX_LENGTH)) != 1) {
			BIO_free(b);
			b = NULL;
		}
		if (!b) {
			SSL_free(j->ssl);
			j->ssl = NULL;
			j->status = TLSJ_FAIL;
			snprintf(j->reason, sizeof(j->reason), "out of memory");
			return;
		}
		SSL_set_bio(j->ssl, b, b);
		SSL_set_accept_state(j->ssl);
		if (tlsw_cancelled(j)) /* SSL_new took a while under load */
			return;
	}
	rc = SSL_do_handshake(j->ssl);
	if (rc == 1) {
		j->status = TLSJ_DONE;
		return;
	}
	e = SSL_get_error(j->ssl, rc);
	/* This thread's error queue: what the core needs of it goes back in
	 * the job (tls_client_classify reads err, not the queue). */
	j->ssl_error = e;
	j->err = ERR_peek_error();
	j->peer_alert = peer_alert_of(j->err);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		j->status = TLSJ_WANT_READ;
		break;
	case SSL_ERROR_WANT_WRITE:
		j->status = TLSJ_WANT_WRITE;
		break;
	case SSL_ERROR_ZERO_RETURN:
	case SSL_ERROR_SYSCALL:
		j->status = TLSJ_FAIL;
		if (ERR_peek_error())
			tls_err_string(j->reason, sizeof(j->reason));
		else
			snprintf(j->reason, sizeof(j->reason), "%s closed during the handshake",
				 j->kind == TLSJ_CLIENT ? "server" : "client");
		break;
	default:
		j->status = TLSJ_FAIL;
		tls_err_string(j->reason, sizeof(j->reason));
		break;
	}
	ERR_clear_error(); /* nothing left for the next job on this thread */
}

static void *tlsw_main(void *arg)
{
	struct tlsw *w = arg;
	uint8_t *woke = calloc(P.n_cores, 1);
	unsigned c;
	uint64_t v;

	w->libctx = OSSL_LIB_CTX_new();
	if (!woke || !w->libctx || tls_resume_thread_init(w->libctx) < 0) {
		snprintf(w->err, sizeof(w->err), "worker %u: out of memory", w->id);
		goto ready;
	}
	w->started = true;
ready:
	pthread_barrier_wait(&P.ready);
	if (!w->started) {
		tls_resume_thread_fini();
		free(woke);
		return NULL;
	}

	while (!atomic_load_explicit(&P.stop, memory_order_relaxed)) {
		bool any;

		do {
			any = false;
			for (c = 0; c < P.n_cores; c++) {
				struct ring *in = &P.to_w[c * P.n_workers + w->id];
				struct ring *out = &P.to_c[w->id * P.n_cores + c];
				struct tls_job *j;

				while ((j = ring_pop(in))) {
					tlsw_handshake(w, j);
					/* A core never has more jobs out with a
					 * worker than the return ring holds
					 * (P.out), so this cannot fail. */
					ring_push(out, j);
					woke[c] = 1;
					any = true;
				}
			}
			for (c = 0; c < P.n_cores; c++) {
				if (woke[c]) {
					v = 1;
					(void)!write(P.core_fd[c], &v, sizeof(v)); /* counter overflow only: the core is awake */
					woke[c] = 0;
				}
			}
		} while (any);
		if (read(w->evfd, &v, sizeof(v)) < 0 && errno != EINTR)
			break;
	}
	tls_resume_thread_fini();
	free(woke);
	return NULL;
}

int tlsw_start(unsigned n_workers, unsigned n_cores, char *err, size_t errlen)
{
	char name[16];
	unsigned i;
	int rc = -ENOMEM;

	memset(&P, 0, sizeof(P));
	P.n_workers = n_workers;
	P.n_cores = n_cores;
	P.inline_hs = n_workers == 0;
	P.n_ctx = P.inline_hs ? n_cores : n_workers;
	P.n_rings = P.inline_hs ? n_cores : n_workers * n_cores;
	P.w = calloc(P.n_ctx, sizeof(*P.w));
	P.to_w = calloc(P.n_rings, sizeof(struct ring));
	P.to_c = calloc(P.n_rings, sizeof(struct ring));
	P.core_fd = calloc(n_cores, sizeof(int));
	P.rr = calloc(n_cores, sizeof(unsigned));
	P.kick = calloc(P.n_rings, 1);
	P.out = calloc(P.n_rings, sizeof(uint32_t));
	if (!P.w || !P.to_w || !P.to_c || !P.core_fd || !P.rr || !P.kick || !P.out)
		goto fail;
	for (i = 0; i < P.n_rings; i++)
		if (ring_init(&P.to_w[i], TLSW_RING) < 0 || ring_init(&P.to_c[i], TLSW_RING) < 0)
			goto fail;
	/* Inline too: the stacks watch a core's eventfd, nothing rings it. */
	for (i = 0; i < n_cores; i++) {
		P.core_fd[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (P.core_fd[i] < 0) {
			rc = -errno;
			goto fail;
		}
	}
	if (P.inline_hs) {
		/* Each core's context, made here: its thread fetches the ticket
		 * ciphers in it when it starts (tlsw_core_enter). */
		for (i = 0; i < n_cores; i++) {
			P.w[i].id = i;
			P.w[i].evfd = -1;
			if (!(P.w[i].libctx = OSSL_LIB_CTX_new()))
				goto fail;
		}
		return 0;
	}
	for (i = 0; i < n_workers; i++) {
		P.w[i].evfd = eventfd(0, EFD_CLOEXEC);
		P.w[i].id = i;
		if (P.w[i].evfd < 0) {
			rc = -errno;
			goto fail;
		}
	}
	pthread_barrier_init(&P.ready, NULL, n_workers + 1);
	for (i = 0; i < n_workers; i++) {
		rc = -pthread_create(&P.w[i].thread, NULL, tlsw_main, &P.w[i]);
		if (rc < 0) {
			/* Fatal at start-up; the process exits. */
			snprintf(err, errlen, "cannot start TLS worker %u: %s", i, strerror(-rc));
			return rc;
		}
		snprintf(name, sizeof(name), "sl-tls%u", i % 1000u); /* per-thread CPU tells them apart */
		(void)pthread_setname_np(P.w[i].thread, name);
	}
	pthread_barrier_wait(&P.ready);
	pthread_barrier_destroy(&P.ready);
	for (i = 0; i < n_workers; i++) {
		if (!P.w[i].started) {
			snprintf(err, errlen, "TLS worker %u: %s", i, P.w[i].err);
			tlsw_stop(NULL);
			tlsw_fini();
			return -EINVAL;
		}
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot set up TLS workers: %s", strerror(-rc));
	return rc;
}

bool tlsw_inline(void)
{
	return P.inline_hs;
}

int tlsw_core_enter(unsigned core)
{
	if (!P.inline_hs)
		return 0;
	return tls_resume_thread_init(P.w[core].libctx);
}

void tlsw_core_leave(unsigned core)
{
	(void)core;
	if (P.inline_hs)
		tls_resume_thread_fini();
}

void tlsw_stop(void (*orphan)(struct tls_job *))
{
	unsigned i;
	uint64_t v = 1;

	atomic_store(&P.stop, true);
	for (i = 0; P.w && i < P.n_workers; i++)
		(void)!write(P.w[i].evfd, &v, sizeof(v));
	for (i = 0; P.w && i < P.n_workers; i++)
		pthread_join(P.w[i].thread, NULL);
	/* The cores have stopped: what is on the rings is nobody's. Freed
	 * before the library contexts its SSL objects come from. */
	for (i = 0; orphan && P.to_w && i < P.n_rings; i++) {
		struct tls_job *j;

		while (P.to_w[i].slot && (j = ring_pop(&P.to_w[i])))
			orphan(j);
		while (P.to_c[i].slot && (j = ring_pop(&P.to_c[i])))
			orphan(j);
	}
}

void tlsw_fini(void)
{
	unsigned i;

	/* Only now: a worker that ran a step for an SSL object made in another
	 * worker's library context holds thread state of that context until
	 * it exits. */
	for (i = 0; P.w && i < P.n_ctx; i++) {
		OSSL_LIB_CTX_free(P.w[i].libctx);
		if (P.w[i].evfd >= 0)
			close(P.w[i].evfd);
	}
	for (i = 0; P.to_w && i < P.n_rings; i++) {
		ring_fini(&P.to_w[i]);
		ring_fini(&P.to_c[i]);
	}
	for (i = 0; P.core_fd && i < P.n_cores; i++)
		if (P.core_fd[i] > 0)
			close(P.core_fd[i]);
	free(P.w);
	free(P.to_w);
	free(P.to_c);
	free(P.core_fd);
	free(P.rr);
	free(P.kick);
	free(P.out);
	memset(&P, 0, sizeof(P));
}

bool tlsw_post(unsigned core, struct tls_job *job)
{
	unsigned i, w;

	job->core = (uint16_t)core;
	if (P.inline_hs) {
		/* The core's own ring; run by tlsw_kick() at the pass's end. */
		if (P.out[core] >= TLSW_RING || !ring_push(&P.to_w[core], job))
			return false;
		P.out[core]++;
		return true;
	}
	for (i = 0; i < P.n_workers; i++) {
		w = (P.rr[core] + i) % P.n_workers;
		if (P.out[core * P.n_workers + w] >= TLSW_RING)
			continue;
		if (ring_push(&P.to_w[core * P.n_workers + w], job)) {
			P.rr[core] = w + 1;
			P.kick[core * P.n_workers + w] = 1;
			P.out[core * P.n_workers + w]++;
			return true;
		}
	}
	return false;
}

/* Inline: run up to TLSW_INLINE_BATCH of core's posted steps, oldest
 * first, onto its return ring. Returns how many ran. */
static unsigned tlsw_run_inline(unsigned core)
{
	struct tls_job *j;
	unsigned n;

	for (n = 0; n < TLSW_INLINE_BATCH && (j = ring_pop(&P.to_w[core])); n++) {
		tlsw_handshake(&P.w[core], j);
		ring_push(&P.to_c[core], j); /* out[core] <= TLSW_RING: never full */
	}
	return n;
}

unsigned tlsw_kick(unsigned core)
{
	unsigned w;
	uint64_t v = 1;

	if (P.inline_hs)
		return tlsw_run_inline(core);
	for (w = 0; w < P.n_workers; w++) {
		if (!P.kick[core * P.n_workers + w])
			continue;
		P.kick[core * P.n_workers + w] = 0;
		(void)!write(P.w[w].evfd, &v, sizeof(v));
	}
	return 0;
}

bool tlsw_pending(unsigned core)
{
	return P.inline_hs && P.out[core];
}

struct tls_job *tlsw_poll(unsigned core)
{
	unsigned w;
	struct tls_job *j;

	if (P.inline_hs) {
		if ((j = ring_pop(&P.to_c[core])))
			P.out[core]--;
		return j;
	}
	for (w = 0; w < P.n_workers; w++) {
		if ((j = ring_pop(&P.to_c[w * P.n_cores + core]))) {
			P.out[core * P.n_workers + w]--;
			return j;
		}
	}
	return NULL;
}

int tlsw_core_fd(unsigned core)
{
	return P.core_fd[core];
}

unsigned tlsw_fill(unsigned core)
{
	uint64_t out = 0;

	if (P.inline_hs)
		return (unsigned)((uint64_t)P.out[core] * 100 / TLSW_RING);
	for (unsigned w = 0; w < P.n_workers; w++)
		out += P.out[core * P.n_workers + w];
	return P.n_workers ? (unsigned)(out * 100 / ((uint64_t)P.n_workers * TLSW_RING)) : 0;
}

struct tlsw_ctxs *tlsw_ctxs_build(struct tls_certset *const *sets, unsigned n_sets,
				  char *err, size_t errlen)
{
	struct tlsw_ctxs *t = calloc(1, sizeof(*t) + P.n_ctx * sizeof(t->ctx[0]));

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->n_sets = n_sets;
	t->n_ctx = P.n_ctx;
	for (unsigned w = 0; w < P.n_ctx; w++) {
		if (!(t->ctx[w] = calloc((size_t)(n_sets ? n_sets : 1) * CTX_PER_SET,
					 sizeof(SSL_CTX *)))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		for (unsigned i = 0; i < n_sets; i++) {
			const struct tls_certset *set = sets[i];

			for (unsigned pol = 0; pol < CFG_POLICY_COUNT; pol++) {
				if (!(set->policies & (1u << pol)))
					continue;
				for (unsigned k = 0; k <= set->n; k++) {
					unsigned cert = k ? k - 1 : TLS_CERT_ANY;
					SSL_CTX **slot = &t->ctx[w][ctx_slot(i, cert, pol)];

					*slot = tls_ctx_new(P.w[w].libctx, set, cert,
							    (enum cfg_policy)pol, err, errlen);
					if (!*slot)
						goto fail;
				}
			}
		}
	}
	return t;
fail:
	tlsw_ctxs_free(t);
	return NULL;
}

void tlsw_ctxs_free(struct tlsw_ctxs *t)
{
	if (!t)
		return;
	for (unsigned w = 0; w < t->n_ctx; w++) {
		for (size_t s = 0; t->ctx[w] && s < (size_t)t->n_sets * CTX_PER_SET; s++)
			SSL_CTX_free(t->ctx[w][s]);
		free(t->ctx[w]);
	}
	free(t);
}
