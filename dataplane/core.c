/*
 * The core loop (kernel stack): epoll over the core's listeners, its
 * sessions' sockets and the eventfd that workers ring when handshake jobs
 * come back; then the timer wheel; then the sessions closed in this round
 * are freed (so no event of the round can reach freed memory).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "core.h"
#include "sluice-build.h"
#if HAVE_DPDK
#include "io/native.h"
#endif
#include "fpstat.h"
#include "log.h"
#include "session/session.h"

#define CORE_EVENTS 256
#define ACCEPT_BURST 64
#define CORE_WAIT_MS 50

struct runtime RT;

uint64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int core_listen(struct core *c, char *err, size_t errlen)
{
	unsigned i;
	int one = 1;

	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		return -errno;
	}
	c->lsn = calloc(RT.n_listeners, sizeof(*c->lsn));
	c->fp = fp_table_new();
	if (!c->lsn || !c->fp)
		return -ENOMEM;
	for (i = 0; i < RT.n_listeners; i++) {
		const struct cfg_listener *l = RT.listeners[i].cfg;
		int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int rc;

		if (fd < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
		    (l->addr.ss_family == AF_INET6 &&
		     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
		    bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0 ||
		    listen(fd, 1024) < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s:%u: listeners[%u].address: cannot listen on %s: %s",
				 RT.cfg->path, l->line, i, l->address, strerror(-rc));
			if (fd >= 0)
				close(fd);
			return rc;
		}
		rc = stream_attach(c, &c->lsn[i], fd, SK_LISTENER, &RT.listeners[i]);
		if (rc < 0) {
			snprintf(err, errlen, "epoll: %s", strerror(-rc));
			close(fd);
			return rc;
		}
	}
	return 0;
}

static void core_accept(struct core *c, struct stream *ls)
{
	const struct listener *l = ls->owner;
	int n, one = 1;

	for (n = 0; n < ACCEPT_BURST; n++) {
		struct sockaddr_storage peer, local;
		socklen_t pl = sizeof(peer), ll = sizeof(local);
		int fd = accept4(ls->fd, (struct sockaddr *)&peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				ls->readable = false;
			else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				 errno == ENOMEM)
				ctr_inc(c, CTR_conn_refused_overload);
			return;
		}
		getsockname(fd, (struct sockaddr *)&local, &ll);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sess_accept(c, l, fd, &peer, &local);
	}
	ls->readable = true; /* more may wait: come back next round */
}

static void core_wake(struct core *c)
{
	struct tls_job *j;
	uint64_t v;

	(void)!read(c->wake.fd, &v, sizeof(v)); /* EAGAIN: a spurious edge */
	while ((j = tlsw_poll(c->id)))
		sess_job_done(j);
}

void *core_main(void *arg)
{
	struct core *c = arg;
	struct epoll_event ev[CORE_EVENTS];
	unsigned i;

#if HAVE_DPDK
	if (c->nat) {
		nat_core_main(c);
		return NULL;
	}
#endif
	c->now_ms = clock_ms();
	wheel_init(&c->wheel, c->now_ms);
	if (stream_attach(c, &c->wake, tlsw_core_fd(c->id), SK_WAKE, NULL) < 0) {
		log_msg(LOG_ERR, "core %u: cannot watch the worker eventfd", c->id);
		return NULL;
	}
	while (!atomic_load_explicit(&RT.stop, memory_order_relaxed)) {
		int n, k, wait = CORE_WAIT_MS;

		for (i = 0; i < RT.n_listeners; i++)
			if (c->lsn[i].readable)
				wait = 0;
		if (c->again)
			wait = 0;
		if (c->now_ms < c->hold_until && wait > 1)
			wait = 1;  /* greet on time: holds are a few ms */
		n = epoll_wait(c->epfd, ev, CORE_EVENTS, wait);
		c->now_ms = clock_ms();
		for (k = 0; k < n; k++) {
			struct stream *s = ev[k].data.ptr;
			uint32_t e = ev[k].events;

			switch (s->kind) {
			case SK_LISTENER:
				s->readable = true;
				break;
			case SK_WAKE:
				core_wake(c);
				break;
			case SK_CLIENT:
			case SK_BACKEND:
				if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					s->readable = true;
				if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
					s->writable = true;
				sess_event(s->owner);
				break;
			default:
				break; /* closed earlier in this round */
			}
		}
		for (i = 0; i < RT.n_listeners; i++)
			if (c->lsn[i].readable)
				core_accept(c, &c->lsn[i]);
		sess_run_again(c);
		wheel_advance(&c->wheel, c->now_ms, sess_timer);
		tlsw_kick(c->id);
		sess_reap(c);
	}
	sess_close_all(c);
	sess_reap(c);
	for (i = 0; i < RT.n_listeners; i++)
		stream_close(c, &c->lsn[i]);
	return NULL;
}
