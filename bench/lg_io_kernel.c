/*
 * The load generator over the kernel's sockets: non-blocking connect(),
 * one epoll set for the connections (and stdin for the idle workload's
 * rig), SSL on the descriptor.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lg.h"

#define STDIN_TAG ((void *)1)

static int k_init(struct lg *g)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = STDIN_TAG };

	if ((g->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -errno;
	if (g->wl == WL_IDLE)
		epoll_ctl(g->ep, EPOLL_CTL_ADD, 0, &e);
	return 0;
}

static void k_fini(struct lg *g)
{
	if (g->ep > 0)
		close(g->ep);
}

/* A non-blocking connect from the next source address (if any). */
static int k_connect(struct lg *g, struct lg_conn *c)
{
	struct epoll_event e;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (g->nsrc) {
		struct sockaddr_in *s = &g->src[g->src_next++ % g->nsrc];

		/* the port is chosen at connect(), per destination: no early
		 * exhaustion of the source port range */
		setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(c->fd, (struct sockaddr *)s, sizeof(*s)) < 0)
			return -errno;
	}
	if (connect(c->fd, (struct sockaddr *)&g->dst, sizeof(g->dst)) < 0 &&
	    errno != EINPROGRESS)
		return -errno;
	c->connecting = true;
	c->events = EPOLLOUT;
	e.events = EPOLLOUT;
	e.data.ptr = c;
	if (epoll_ctl(g->ep, EPOLL_CTL_ADD, c->fd, &e) < 0)
		return -errno;
	return 0;
}

static ssize_t k_send(struct lg_conn *c, const void *p, size_t n)
{
	ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);

	return r < 0 ? -errno : r;
}

static ssize_t k_recv(struct lg_conn *c, void *p, size_t n)
{
	ssize_t r = recv(c->fd, p, n, 0);

	return r < 0 ? -errno : r;
}

static int k_ssl_bind(struct lg_conn *c, SSL *ssl)
{
	return SSL_set_fd(ssl, c->fd);
}

/* Register the epoll interest ev for c (no system call when unchanged). */
static void k_want(struct lg *g, struct lg_conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = c };

	if (ev == c->events || c->fd < 0)
		return;
	epoll_ctl(g->ep, EPOLL_CTL_MOD, c->fd, &e);
	c->events = ev;
}

static void k_close(struct lg *g, struct lg_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* An epoll event for c. */
static void k_event(struct lg *g, struct lg_conn *c, uint32_t ev)
{
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || (ev & (EPOLLERR | EPOLLHUP))) {
			lg_op_end(g, c, LG_E_connect, strerror(err ? err : ECONNREFUSED));
			return;
		}
		c->connecting = false;
		k_want(g, c, EPOLLIN);
	} else if (c->held) {
		lg_op_end(g, c, LG_E_closed, "server closed an idle connection");
		return;
	}
	lg_drive(g, c);
}

static int k_wait(struct lg *g, int wait_ms)
{
	struct epoll_event ev[256];
	int i, n = epoll_wait(g->ep, ev, 256, wait_ms);
	bool go = false;

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		if (ev[i].data.ptr == STDIN_TAG)
			go = true;
		else
			k_event(g, ev[i].data.ptr, ev[i].events);
	}
	return go;
}

const struct lg_io lg_io_kernel = {
	.name = "kernel",
	.init = k_init,
	.connect = k_connect,
	.send = k_send,
	.recv = k_recv,
	.ssl_bind = k_ssl_bind,
	.want = k_want,
	.close = k_close,
	.wait = k_wait,
	.fini = k_fini,
};
