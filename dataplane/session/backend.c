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
 * the snapshot replaced at one probe round can be freed at the next one
 * (rounds are at least a second apart).
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

#include "core.h"
#include "log.h"
#include "session/backend.h"
#include "session/proxyproto.h"

#define DOWN_HOLD_MS 2000u /* a failed server is skipped this long */

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

		p[i].cfg = b;
		p[i].ops = proto_get(b->protocol);
		p[i].n = b->n_servers;
		p[i].srv = calloc(b->n_servers, sizeof(*p[i].srv));
		if (!p[i].srv) {
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
		caps_free(p[i].retired);
		free(p[i].srv);
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
 * One probe of one server: the opening and the capability request.
 * Returns 0 with *out set, or a negative errno with why[] filled.
 */
static int probe_one(const struct be_pool *p, const struct be_server *s,
		     const char *hostname, struct proto_caps **out, char *why, size_t wlen)
{
	struct proto_caps *caps = calloc(1, sizeof(*caps));
	char buf[8192], req[300];
	size_t len = 0;
	int fd, rc, state = 0;
	uint8_t hdr[PP_MAX];

	if (!caps)
		return -ENOMEM;
	fd = probe_connect(s, p->cfg->connect_timeout);
	if (fd < 0) {
		snprintf(why, wlen, "connect: %s", strerror(-fd));
		caps_free(caps);
		return fd;
	}
	rc = 0;
	if (p->cfg->proxy == CFG_PROXY_V2) {
		static const struct pp_tls as_tls = { "TLSv1.3", "TLS_AES_128_GCM_SHA256", NULL };
		struct sockaddr_storage me, peer;
		socklen_t ml = sizeof(me), pl = sizeof(peer);
		int n = -1;

		if (!getsockname(fd, (struct sockaddr *)&me, &ml) &&
		    !getpeername(fd, (struct sockaddr *)&peer, &pl))
			n = pp2_encode(hdr, sizeof(hdr), (struct sockaddr *)&me,
				       (struct sockaddr *)&peer, &as_tls);
		if (n < 0)
			n = pp2_encode_local(hdr, sizeof(hdr));
		rc = send_all(fd, hdr, (size_t)n);
	} else if (p->cfg->proxy == CFG_PROXY_V1) {
		rc = send_all(fd, "PROXY UNKNOWN\r\n", 15);
	}
	if (rc < 0)
		goto io_fail;

	for (;;) {
		char *lf;
		ssize_t n;

		while ((lf = memchr(buf, '\n', len))) {
			size_t ll = (size_t)(lf - buf);
			size_t used = ll + 1;

			if (ll && buf[ll - 1] == '\r')
				ll--;
			rc = p->ops->probe_line(&state, buf, ll, caps);
			memmove(buf, buf + used, len - used);
			len -= used;
			if (rc < 0) {
				snprintf(why, wlen, "refused the probe");
				rc = -EPROTO;
				goto out;
			}
			if (rc == 1) {
				snprintf(req, sizeof(req), p->ops->probe_request, hostname);
				if ((rc = send_all(fd, req, strlen(req))) < 0)
					goto io_fail;
			} else if (rc == 2) {
				send_all(fd, p->ops->probe_quit, strlen(p->ops->probe_quit));
				*out = caps;
				caps = NULL;
				rc = 0;
				goto out;
			}
		}
		if (len == sizeof(buf)) {
			snprintf(why, wlen, "reply line too long");
			rc = -EPROTO;
			goto out;
		}
		n = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (n <= 0) {
			rc = n < 0 ? -errno : -ECONNRESET;
			goto io_fail;
		}
		len += (size_t)n;
	}
io_fail:
	snprintf(why, wlen, "%s", rc == -EAGAIN ? "timed out" : strerror(-rc));
out:
	close(fd);
	caps_free(caps);
	return rc;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Publish a new snapshot; the one it replaces lives one more round. */
static void be_publish(struct be_pool *p, struct proto_caps *caps)
{
	struct proto_caps *old = atomic_exchange_explicit(&p->caps, caps, memory_order_acq_rel);

	caps_free(p->retired);
	p->retired = old;
}

/* Probe every server of pool p; verbose logs every result, otherwise only
 * changes of state. */
static void be_probe_pool(struct be_pool *p, const char *hostname, bool verbose)
{
	unsigned i;

	for (i = 0; i < p->n; i++) {
		struct be_server *s = &p->srv[i];
		struct proto_caps *caps = NULL;
		char why[128] = "";
		bool was_down = atomic_load(&s->down_until_ms) > mono_ms();
		int rc = probe_one(p, s, hostname, &caps, why, sizeof(why));

		if (rc == 0) {
			atomic_store(&s->down_until_ms, 0);
			if (verbose || was_down)
				log_msg(LOG_INFO, "backend %s %s: up, %u capabilities", p->cfg->name,
					s->name, caps->n);
			be_publish(p, caps);
		} else {
			/* Held down until the next round. */
			atomic_store(&s->down_until_ms,
				     mono_ms() + p->cfg->health_interval * 1000ull);
			if (verbose || !was_down)
				log_msg(LOG_WARNING, "backend %s %s: down: %s", p->cfg->name,
					s->name, why);
		}
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
		next[i] = mono_ms() + H.pools[i].cfg->health_interval * 1000ull;
	pthread_mutex_lock(&H.mu);
	while (next && !H.stop) {
		uint64_t now = mono_ms(), soonest = UINT64_MAX;
		struct timespec ts;

		for (i = 0; i < H.n; i++) {
			if (next[i] <= now) {
				pthread_mutex_unlock(&H.mu);
				be_probe_pool(&H.pools[i], H.hostname, false);
				pthread_mutex_lock(&H.mu);
				now = mono_ms();
				next[i] = now + H.pools[i].cfg->health_interval * 1000ull;
			}
			if (next[i] < soonest)
				soonest = next[i];
		}
		if (H.stop)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		now = mono_ms();
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
