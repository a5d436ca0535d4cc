/*
 * Backend pools, failover, and the capability probe / health check.
 *
 * The probe speaks the protocol's opening to each server (for SMTP: read the
 * greeting, EHLO, read the capabilities, QUIT) with blocking sockets and
 * timeouts, on the start-up thread first and then on one health thread.
 * Where the backend expects PROXY v2, the probe's header carries the SSL TLV:
 * the backend then shows the capabilities a TLS client of sluice gets (Dovecot
 * hides USER, SASL mechanisms and AUTH= from insecure connections), and the
 * engines derive the list shown before TLS by removing what needs TLS.
 *
 * Capabilities are published as an immutable snapshot by pointer. A core
 * reads the pointer only while composing one reply and never keeps it, so
 * a replaced snapshot can be freed a second later (RETIRE_MS). Every
 * server that answers publishes, and the native prober runs the servers
 * of a pool at once: one round may replace several snapshots within
 * microseconds, which is why they are kept by age, not by round.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <openssl/err.h>

#include "clock.h"
#include "core.h"
#include "log.h"
#include "session/backend.h"
#include "session/proxyproto.h"

#define DOWN_HOLD_MS 2000u /* a failed server is skipped this long */
#define RETIRE_MS 1000u    /* a replaced snapshot lives this long */

int be_pools_init(const struct cfg *c, struct be_pool **pools, char *err, size_t errlen)
{
	struct be_pool *p = calloc(c->n_backends, sizeof(*p));
	unsigned i, j;

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < c->n_backends; i++) {
		const struct cfg_backend *b = &c->backends[i];

		if (b->tls.tls != CFG_BE_TLS_OFF &&
		    tls_client_init(&p[i].tlsc, &b->tls, b->n_servers, err, errlen) < 0) {
			char why[256];

			snprintf(why, sizeof(why), "%s", err);
			be_pools_free(p, c->n_backends);
			snprintf(err, errlen, "%s:%u: backends[%u]: %s", c->path ? c->path : "-",
				 b->line, i, why);
			return -EINVAL;
		}
		p[i].cfg = b;
		p[i].ops = proto_get(b->protocol);
		p[i].n = b->n_servers;
		p[i].srv = calloc(b->n_servers, sizeof(*p[i].srv));
		/* A server publishes at most twice in RETIRE_MS (a slow probe
		 * ending just before the next round's quick one). */
		p[i].n_retired = 2 * b->n_servers + 2;
		p[i].retired = calloc(p[i].n_retired, sizeof(*p[i].retired));
		if (!p[i].srv || !p[i].retired) {
			be_pools_free(p, c->n_backends);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		for (j = 0; j < b->n_servers; j++) {
			memcpy(&p[i].srv[j].addr, &b->addrs[j], sizeof(b->addrs[j]));
			p[i].srv[j].len = b->addrlens[j];
			fmt_addr(&b->addrs[j], p[i].srv[j].name, sizeof(p[i].srv[j].name));
		}
	}
	*pools = p;
	return 0;
}

void be_pools_free(struct be_pool *p, unsigned n)
{
	unsigned i;

	for (i = 0; p && i < n; i++) {
		caps_free(atomic_load(&p[i].caps));
		for (unsigned k = 0; p[i].retired && k < p[i].n_retired; k++)
			caps_free(p[i].retired[k].caps);
		free(p[i].retired);
		free(p[i].srv);
		tls_client_free(&p[i].tlsc);
	}
	free(p);
}

int be_pick(struct be_pool *p, uint64_t seed, unsigned attempt, uint64_t now_ms)
{
	unsigned i, k, up = 0;

	if (attempt >= p->n)
		return -1;
	for (i = 0; i < p->n; i++)
		if (atomic_load_explicit(&p->srv[i].down_until_ms, memory_order_relaxed) <= now_ms)
			up++;
	if (up == 0) /* all believed down: try them all anyway */
		return (int)((seed + attempt) % p->n);
	/* The attempt-th server that is up, starting at a per-session offset. */
	k = attempt % up;
	for (i = 0; i < p->n; i++) {
		unsigned j = (unsigned)((seed + i) % p->n);

		if (atomic_load_explicit(&p->srv[j].down_until_ms, memory_order_relaxed) > now_ms)
			continue;
		if (k-- == 0)
			return (int)j;
	}
	return -1;
}

/* A connect error: sluice's own, or the server's? See backend.h. */
bool be_err_local(int err)
{
	switch (-err) {
	case EMFILE:        /* the process's descriptors */
	case ENFILE:        /* the system's */
	case ENOBUFS:
	case ENOMEM:
	case EADDRNOTAVAIL: /* no source address or port left */
	case EADDRINUSE:    /* (bind of a source port) */
	case EAGAIN:        /* Linux: no ephemeral port, or routing cache full */
	case EPERM:         /* a local firewall rule */
	case EACCES:
	case EAFNOSUPPORT:  /* (no IPv6 here) */
		return true;
	default:            /* ECONNREFUSED, ETIMEDOUT, ECONNRESET,
			       EHOSTUNREACH, ENETUNREACH, ...: the server
			       or the network answered */
		return false;
	}
}

bool be_mark_down(struct be_pool *p, int idx, uint64_t now_ms)
{
	uint64_t was;

	if (idx < 0 || (unsigned)idx >= p->n)
		return false;
	was = atomic_exchange_explicit(&p->srv[idx].down_until_ms, now_ms + DOWN_HOLD_MS,
				       memory_order_relaxed);
	return was <= now_ms;
}

/* Connect with a timeout; returns the fd or -errno. */
static int probe_connect(const struct be_server *s, unsigned timeout_s)
{
	struct timeval tv = { .tv_sec = timeout_s };
	struct pollfd pfd;
	int fd, err = 0, one = 1;
	socklen_t l = sizeof(err);

	fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&s->addr, s->len) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, (int)timeout_s * 1000) != 1) {
			err = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err)
			goto fail;
	}
	/* Blocking from here, with timeouts. */
	if (fcntl(fd, F_SETFL, 0) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		err = errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -(err ? err : EIO);
}

static int send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * The probe conversation, without I/O: both stacks drive it (the kernel
 * one below with a blocking socket, the native one from core 0's loop in
 * session/probe_loop.c over the stack's streams), so that the same bytes
 * go out and the same parser reads the answers.
 */
int be_probe_begin(struct be_probe *pr, const struct be_pool *p, const char *hostname,
		   const struct sockaddr *me, const struct sockaddr *peer)
{
	memset(pr, 0, sizeof(*pr));
	pr->p = p;
	pr->hostname = hostname;
	if (!(pr->caps = calloc(1, sizeof(*pr->caps))))
		return -ENOMEM;
	if (p->cfg->proxy == CFG_PROXY_V2) {
		/* As a TLS client of sluice (see the top of the file). */
		static const struct pp_tls as_tls = { "TLSv1.3", "TLS_AES_128_GCM_SHA256", NULL };
		int n = -1;

		if (me && peer)
			n = pp2_encode((uint8_t *)pr->out, sizeof(pr->out), me, peer, &as_tls);
		if (n < 0)
			n = pp2_encode_local((uint8_t *)pr->out, sizeof(pr->out));
		pr->out_len = n > 0 ? (size_t)n : 0;
	} else if (p->cfg->proxy == CFG_PROXY_V1) {
		memcpy(pr->out, "PROXY UNKNOWN\r\n", 15);
		pr->out_len = 15;
	}
	return 0;
}

/* Queue a request after what is still to be sent; false if it does not fit. */
static bool probe_queue(struct be_probe *pr, const char *s, size_t n)
{
	if (n > sizeof(pr->out) - pr->out_len)
		return false;
	memcpy(pr->out + pr->out_len, s, n);
	pr->out_len += n;
	return true;
}

int be_probe_input(struct be_probe *pr, const void *data, size_t n, char *why, size_t wlen)
{
	const struct proto_ops *ops = pr->p->ops;
	char req[300];

	while (n) {
		size_t take = sizeof(pr->in) - pr->in_len;
		char *lf;

		if (take > n)
			take = n;
		memcpy(pr->in + pr->in_len, data, take);
		pr->in_len += take;
		data = (const char *)data + take;
		n -= take;
		while ((lf = memchr(pr->in, '\n', pr->in_len))) {
			size_t ll = (size_t)(lf - pr->in), used = ll + 1;
			int rc;

			if (ll && pr->in[ll - 1] == '\r')
				ll--;
			rc = ops->probe_line(&pr->state, pr->in, ll, pr->caps);
			memmove(pr->in, pr->in + used, pr->in_len - used);
			pr->in_len -= used;
			if (rc < 0) {
				snprintf(why, wlen, "refused the probe");
				return -EPROTO;
			}
			if (rc == 1) {
				snprintf(req, sizeof(req), ops->probe_request, pr->hostname);
				if (!probe_queue(pr, req, strlen(req))) {
					snprintf(why, wlen, "host name too long for the probe");
					return -EPROTO;
				}
			} else if (rc == 2) {
				probe_queue(pr, ops->probe_quit, strlen(ops->probe_quit));
				pr->done = true;
				return 1;
			}
		}
		if (pr->in_len == sizeof(pr->in)) {
			snprintf(why, wlen, "reply line too long");
			return -EPROTO;
		}
	}
	return 0;
}

struct proto_caps *be_probe_take(struct be_probe *pr)
{
	struct proto_caps *c = pr->done ? pr->caps : NULL;

	if (c)
		pr->caps = NULL;
	return c;
}

void be_probe_end(struct be_probe *pr)
{
	caps_free(pr->caps);
	pr->caps = NULL;
}

/* Send what the conversation queued (through TLS when ssl). 0 or -errno. */
static int probe_flush(int fd, SSL *ssl, struct be_probe *pr)
{
	int rc = 0;

	if (!ssl)
		rc = send_all(fd, pr->out, pr->out_len);
	else if (pr->out_len && SSL_write(ssl, pr->out, (int)pr->out_len) <= 0)
		rc = -EPIPE;
	pr->out_len = 0;
	return rc;
}

static ssize_t probe_recv(int fd, SSL *ssl, char *buf, size_t n)
{
	if (!ssl)
		return recv(fd, buf, n, 0);
	int r = SSL_read(ssl, buf, (int)n);

	if (r <= 0 && SSL_get_error(ssl, r) == SSL_ERROR_SYSCALL && errno)
		return -1;
	return r < 0 ? 0 : r;
}

/*
 * Implicit TLS to server s over fd (blocking, with the socket's timeouts),
 * the PROXY header in plaintext first, as the sessions do: the normal
 * hello, once more the conservative one after a failure that looks like
 * intolerance (on a new connection). The probe does not record the
 * fallback: sessions do, count and log it. The SSL object, or NULL with
 * why[] filled (*fdp may be replaced).
 */
static SSL *probe_tls(const struct be_pool *p, const struct be_server *s, int *fdp,
		      const void *hdr, size_t hlen, char *why, size_t wlen)
{
	bool cons = atomic_load(&s->fallback_until_ms) > clock_mono_ms();

	for (;;) {
		SSL *ssl = tls_client_ssl(&p->tlsc, cons, -1); /* full: checks the certificate */
		unsigned long e;
		int rc;

		if (!ssl || send_all(*fdp, hdr, hlen) < 0 || SSL_set_fd(ssl, *fdp) != 1) {
			snprintf(why, wlen, "TLS: cannot start");
			SSL_free(ssl);
			return NULL;
		}
		ERR_clear_error();
		rc = SSL_connect(ssl);
		if (rc == 1)
			return ssl;
		rc = SSL_get_error(ssl, rc);
		e = ERR_peek_error();
		char w[160];
		enum tls_client_fail f = tls_client_classify(ssl, rc, e, w, sizeof(w));

		ERR_clear_error();
		SSL_free(ssl);
		snprintf(why, wlen, "TLS%s: %.90s", cons ? " (conservative hello)" : "", w);
		if (f != TLSC_FAIL_INTOLERANT || cons || !p->tlsc.conservative)
			return NULL;
		cons = true;
		close(*fdp);
		if ((*fdp = probe_connect(s, p->cfg->connect_timeout)) < 0)
			return NULL;
	}
}

/*
 * One probe of one server over a kernel socket: the opening and the
 * capability request. Returns 0 with *out set, or a negative errno with
 * why[] filled.
 */
static int probe_one(const struct be_pool *p, const struct be_server *s,
		     const char *hostname, struct proto_caps **out, char *why, size_t wlen)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof(me), pl = sizeof(peer);
	struct be_probe *pr;
	SSL *ssl = NULL;
	bool names;
	int fd, rc;

	fd = probe_connect(s, p->cfg->connect_timeout);
	if (fd < 0) {
		snprintf(why, wlen, "connect: %s", strerror(-fd));
		return fd;
	}
	if (!(pr = malloc(sizeof(*pr)))) {
		close(fd);
		return -ENOMEM;
	}
	names = !getsockname(fd, (struct sockaddr *)&me, &ml) &&
		!getpeername(fd, (struct sockaddr *)&peer, &pl);
	rc = be_probe_begin(pr, p, hostname, names ? (struct sockaddr *)&me : NULL,
			    names ? (struct sockaddr *)&peer : NULL);
	if (rc < 0)
		goto out;
	if (p->cfg->tls.tls != CFG_BE_TLS_OFF && p->cfg->tls.mode == CFG_BE_TLS_IMPLICIT) {
		/* STARTTLS backends are probed in plaintext: what sluice
		 * advertises before TLS is what they offer before it. */
		ssl = probe_tls(p, s, &fd, pr->out, pr->out_len, why, wlen);
		pr->out_len = 0;
		if (!ssl) {
			rc = -EPROTO;
			goto out;
		}
	}
	for (;;) {
		char buf[4096];
		ssize_t n;

		if ((rc = probe_flush(fd, ssl, pr)) < 0)
			goto io_fail;
		n = probe_recv(fd, ssl, buf, sizeof(buf));
		if (n <= 0) {
			rc = n < 0 ? -errno : -ECONNRESET;
			goto io_fail;
		}
		rc = be_probe_input(pr, buf, (size_t)n, why, wlen);
		if (rc < 0)
			goto out;
		if (rc == 1) {
			probe_flush(fd, ssl, pr);   /* the QUIT */
			*out = be_probe_take(pr);
			rc = 0;
			/* Read its answer up to the server's FIN (or the
			 * timeout): a close with bytes unread would reset. */
			if (ssl)
				SSL_shutdown(ssl);
			shutdown(fd, SHUT_WR);
			while (probe_recv(fd, ssl, buf, sizeof(buf)) > 0)
				;
			goto out;
		}
	}
io_fail:
	snprintf(why, wlen, "%s", rc == -EAGAIN ? "timed out" : strerror(-rc));
out:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	be_probe_end(pr);
	free(pr);
	return rc;
}

/* Publish a new snapshot; the one it replaces is freed RETIRE_MS later,
 * at a later publish. The prober's thread only. */
static void be_publish(struct be_pool *p, struct proto_caps *caps, uint64_t now_ms)
{
	struct proto_caps *old = atomic_exchange_explicit(&p->caps, caps, memory_order_acq_rel);
	struct be_retired *slot = NULL, *oldest = NULL;

	if (!old)
		return;
	for (unsigned k = 0; k < p->n_retired; k++) {
		struct be_retired *r = &p->retired[k];

		if (r->caps && now_ms - r->since_ms >= RETIRE_MS) {
			caps_free(r->caps);
			r->caps = NULL;
		}
		if (!r->caps && !slot)
			slot = r;
		if (r->caps && (!oldest || r->since_ms < oldest->since_ms))
			oldest = r;
	}
	if (!slot) {
		/* More publishes in RETIRE_MS than a pool makes: free the
		 * oldest rather than grow. */
		caps_free(oldest->caps);
		slot = oldest;
	}
	slot->caps = old;
	slot->since_ms = now_ms;
}

void be_probe_result(struct be_pool *p, unsigned i, int rc, struct proto_caps *caps,
		     const char *why, bool verbose, uint64_t now_ms)
{
	struct be_server *s = &p->srv[i];
	bool was_down = s->probe_down;

	if (rc < 0 && be_err_local(rc)) {
		/* Sluice's own trouble (descriptors, memory, source ports)
		 * says nothing of the server: its state stays as the last
		 * probe that could tell left it. */
		caps_free(caps);
		log_msg(LOG_WARNING, "backend %s %s: probe not done: %s (local error: state kept)",
			p->cfg->name, s->name, why);
		return;
	}
	atomic_store_explicit(&s->probed_ms, now_ms, memory_order_relaxed);
	s->probe_down = !(rc == 0 && caps);
	if (rc == 0 && caps) {
		atomic_store(&s->down_until_ms, 0);
		if (verbose || was_down)
			log_msg(LOG_INFO, "backend %s %s: up, %u capabilities", p->cfg->name,
				s->name, caps->n);
		be_publish(p, caps, now_ms);
	} else {
		caps_free(caps);
		/* Held down until the next round. */
		atomic_store(&s->down_until_ms, now_ms + p->cfg->health_interval * 1000ull);
		/* Once per state change, and again when the reason changes
		 * (a server refused, then up but its certificate failing). */
		if (verbose || !was_down || strcmp(why, s->down_why))
			log_msg(LOG_WARNING, "backend %s %s: down: %s", p->cfg->name, s->name,
				why);
		snprintf(s->down_why, sizeof(s->down_why), "%s", why);
	}
}

/* Probe every server of pool p; verbose logs every result, otherwise only
 * changes of state (and of the reason a server is down). */
static void be_probe_pool(struct be_pool *p, const char *hostname, bool verbose)
{
	unsigned i;

	for (i = 0; i < p->n; i++) {
		struct proto_caps *caps = NULL;
		char why[128] = "";
		int rc = probe_one(p, &p->srv[i], hostname, &caps, why, sizeof(why));

		be_probe_result(p, i, rc, caps, why, verbose, clock_mono_ms());
	}
}

void be_probe_all(struct be_pool *pools, unsigned n, const char *hostname)
{
	unsigned i;

	for (i = 0; i < n; i++)
		be_probe_pool(&pools[i], hostname, true);
}

static struct {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop, started;
	struct be_pool *pools;
	unsigned n;
	const char *hostname;
} H = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void *be_health_main(void *arg)
{
	uint64_t *next = calloc(H.n, sizeof(*next));
	unsigned i;

	for (i = 0; next && i < H.n; i++)
		next[i] = clock_mono_ms() + H.pools[i].cfg->health_interval * 1000ull;
	pthread_mutex_lock(&H.mu);
	while (next && !H.stop) {
		uint64_t now = clock_mono_ms(), soonest = UINT64_MAX;
		struct timespec ts;

		for (i = 0; i < H.n; i++) {
			if (next[i] <= now) {
				pthread_mutex_unlock(&H.mu);
				be_probe_pool(&H.pools[i], H.hostname, false);
				pthread_mutex_lock(&H.mu);
				now = clock_mono_ms();
				next[i] = now + H.pools[i].cfg->health_interval * 1000ull;
			}
			if (next[i] < soonest)
				soonest = next[i];
		}
		if (H.stop)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		now = clock_mono_ms();
		if (soonest > now) {
			uint64_t d = soonest - now;

			ts.tv_sec += (time_t)(d / 1000);
			ts.tv_nsec += (long)(d % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&H.cv, &H.mu, &ts);
		}
	}
	pthread_mutex_unlock(&H.mu);
	free(next);
	return NULL;
}

int be_health_start(struct be_pool *pools, unsigned n, const char *hostname)
{
	int rc;

	H.pools = pools;
	H.n = n;
	H.hostname = hostname;
	H.stop = false;
	rc = -pthread_create(&H.thread, NULL, be_health_main, NULL);
	H.started = rc == 0;
	return rc;
}

void be_health_stop(void)
{
	if (!H.started)
		return;
	pthread_mutex_lock(&H.mu);
	H.stop = true;
	pthread_cond_signal(&H.cv);
	pthread_mutex_unlock(&H.mu);
	pthread_join(H.thread, NULL);
	H.started = false;
}
