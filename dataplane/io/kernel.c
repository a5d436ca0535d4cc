/*
 * The kernel stack: sockets and an edge-triggered epoll set per core
 * (io/stream.h calls these for streams that are not native).
 * Readiness is remembered in the stream's flags, so the session reads and
 * writes when it is ready to, without changing the epoll set.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core.h"
#include "io/stream.h"

int stream_attach(struct core *c, struct stream *s, int fd, uint8_t kind, void *owner)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.ptr = s,
	};

	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->kind = kind;
	s->owner = owner;
	if (kind == SK_LISTENER || kind == SK_WAKE)
		ev.events = EPOLLIN | EPOLLET;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		s->fd = -1;
		return -errno;
	}
	return 0;
}

ssize_t kern_stream_recv(struct stream *s, struct buf *b)
{
	uint8_t *p;
	uint32_t room;
	ssize_t n;

	if (s->fd < 0 || s->eof || s->failed || !s->readable)
		return 0;
	if (buf_space(b, &p, &room) < 0 || room == 0)
		return 0;
	n = recv(s->fd, p, room, 0);
	if (n > 0) {
		/* Even a short read leaves readable set: an EOF may wait
		 * behind the data, and the edge that announced it is spent. */
		b->tail += (uint32_t)n;
		return n;
	}
	buf_consume(b, 0);
	if (n == 0) {
		s->eof = true;
	} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
		s->readable = false;
	} else if (errno != EINTR) {
		s->failed = true;
		s->err = errno;
	}
	return 0;
}

ssize_t kern_stream_send(struct stream *s, struct buf *b)
{
	ssize_t n;

	if (s->fd < 0 || s->failed || s->connecting || !s->writable || buf_len(b) == 0)
		return 0;
	n = send(s->fd, buf_head(b), buf_len(b), MSG_NOSIGNAL);
	if (n > 0) {
		if ((uint32_t)n < buf_len(b))
			s->writable = false;
		buf_consume(b, (uint32_t)n);
		return n;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		s->writable = false;
	} else if (errno != EINTR) {
		s->failed = true;
		s->err = errno;
	}
	return 0;
}

void kern_stream_shutdown_wr(struct stream *s)
{
	if (s->fd >= 0 && !s->shut_wr) {
		shutdown(s->fd, SHUT_WR);
		s->shut_wr = true;
	}
}

/* The kernel's srtt of the socket (TCP_INFO tcpi_rtt: for a passive open,
 * sampled from the SYN-ACK and its ACK), or 0 if it has none. */
uint32_t kern_stream_rtt_us(const struct stream *s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (s->fd < 0 || getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return 0;
	return ti.tcpi_rtt;
}

int kern_stream_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
		   socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, rc;

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = stream_attach(c, s, fd, SK_BACKEND, s->owner);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	s->connecting = true;
	return 0;
}

int kern_stream_connected(struct stream *s)
{
	int err = 0;
	socklen_t l = sizeof(err);

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		err = errno;
	if (err == 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		/* A stale wake-up may find the connect still under way. */
		if (getpeername(s->fd, (struct sockaddr *)&ss, &sl) < 0) {
			s->writable = false;
			return errno == ENOTCONN ? -EINPROGRESS : -errno;
		}
		s->connecting = false;
	}
	return -err;
}

void kern_stream_close(struct core *c, struct stream *s)
{
	if (s->fd >= 0) {
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
	}
	s->fd = -1;
	s->kind = SK_DEAD;
}
