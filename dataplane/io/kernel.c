/*
 * The kernel stack: sockets, SO_REUSEPORT listeners and an edge-triggered
 * epoll set per core. Readiness is remembered in the streams' flags and
 * reported through their wake callbacks, so the owner reads and writes when
 * it is ready to, without changing the epoll set.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "io/io.h"
#include "log.h"

#define KERN_EVENTS 256
#define KERN_ACCEPT_BURST 64
#define KERN_NOFILE_BACKOFF_MS 100 /* accepting pauses this long when
				      descriptors ran out */

/* One core's sockets. */
struct kern_core {
	int epfd;
	unsigned n_lsn;
	struct stream *lsn;        /* one listening stream per listener; owner:
				      the listener's index */
	struct stream wake;        /* the workers' eventfd (c->wake_fd) */
	struct epoll_event ev[KERN_EVENTS]; /* what kern_wait got, for kern_poll */
	int n_ev;
	bool paused;               /* drain: the listeners are shut down */
	int reserve_fd;            /* held for EMFILE: closed to accept one
				      connection and tell it to come back */
	uint64_t nofile_log_s;     /* the second of the last EMFILE log line */
	unsigned nofile_dropped;   /* EMFILE refusals since that line */
};

/* One listening address, a socket per core (SO_REUSEPORT). Listeners
 * come and go with reloads: the control thread binds the sockets of a new
 * address (kern_listeners_for), the cores adopt their own at the top of a
 * pass (kern_relisten), and the sockets of a removed address are closed
 * once every core has moved past it (kern_listeners_gc). */
struct kern_lsock {
	struct sockaddr_storage addr;
	socklen_t len;
	int *fd;                   /* [core] */
	uint64_t removed;          /* the generation that dropped it; 0: in use */
};

static struct {
	struct kern_core *kc;      /* [core] */
	unsigned n_cores;
	struct kern_lsock *ls;     /* every address bound, in use or closing */
	unsigned n_ls;
} K;

static const struct stream_ops kern_stream_ops, kern_accepted_ops;
static int kern_relisten(struct core *c, const int *lfd, unsigned n);

/* A connection accept4() just gave: its peer as accept4() said it, which
 * getpeername() no longer tells once the client has reset. Only the
 * struct stream is copied to the session; the address is read before. */
struct kern_accepted {
	struct stream s;           /* ops: kern_accepted_ops until opened */
	struct sockaddr_storage peer;
};

/* Watch s (at its final place) on the core's epoll set. 0 or -errno. */
static int kern_watch(struct kern_core *kc, struct stream *s)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
		.data.ptr = s,
	};

	if (s->kind == SK_LISTENER || s->kind == SK_WAKE || s->kind == SK_PASSIVE)
		ev.events = EPOLLIN | EPOLLET;
	return epoll_ctl(kc->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0 ? -errno : 0;
}

/* A stream of this stack for fd, not watched yet. */
static void kern_make(struct kern_core *kc, struct stream *s, int fd, uint8_t kind, void *owner)
{
	*s = (struct stream){ .ops = &kern_stream_ops, .stack = kc, .kind = kind, .fd = fd,
			      .owner = owner };
}

/* stream_open(): watched from now on, at this address. */
static int kern_open(struct stream *s, stream_wake_fn wake, void *arg)
{
	s->ops = &kern_stream_ops;
	s->wake = wake;
	s->wake_arg = arg;
	return kern_watch(s->stack, s);
}

/* stream_recv(): one recv() into b; EAGAIN clears readable. */
static ssize_t kern_recv(struct stream *s, struct buf *b)
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

/* stream_send(): one send() from b; a short one clears writable. */
static ssize_t kern_send(struct stream *s, struct buf *b)
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

/* stream_shutdown_wr(): FIN once. */
static void kern_shutdown_wr(struct stream *s)
{
	if (s->fd >= 0 && !s->shut_wr) {
		shutdown(s->fd, SHUT_WR);
		s->shut_wr = true;
	}
}

/* stream_rtt_us(): the kernel's srtt of the socket (TCP_INFO tcpi_rtt: for
 * a passive open, sampled from the SYN-ACK and its ACK), or 0 if it has
 * none. */
static uint32_t kern_rtt_us(const struct stream *s)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (s->fd < 0 || getsockopt(s->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return 0;
	return ti.tcpi_rtt;
}

/* stream_connected(): the connect's outcome (SO_ERROR), or -EINPROGRESS. */
static int kern_connected(struct stream *s)
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

/* stream_close(): out of the epoll set, the socket closed. */
static void kern_close(struct stream *s)
{
	struct kern_core *kc = s->stack;

	if (s->fd >= 0) {
		epoll_ctl(kc->epfd, EPOLL_CTL_DEL, s->fd, NULL);
		close(s->fd);
		if (s->kind == SK_CLIENT || s->kind == SK_BACKEND)
			atomic_fetch_sub_explicit(&RT.socks, 1, memory_order_relaxed);
	}
	s->fd = -1;
	s->kind = SK_DEAD;
}

/* stream_abort(): SO_LINGER 0, so that close() sends a reset. */
static void kern_abort(struct stream *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (s->fd >= 0)
		setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	kern_close(s);
}

/* stream_addrs(): getpeername() and getsockname(). */
static int kern_addrs(struct stream *s, struct sockaddr_storage *peer,
		      struct sockaddr_storage *local)
{
	socklen_t pl = sizeof(*peer), ll = sizeof(*local);

	memset(peer, 0, sizeof(*peer));
	memset(local, 0, sizeof(*local));
	if (getpeername(s->fd, (struct sockaddr *)peer, &pl) < 0)
		return -errno;
	getsockname(s->fd, (struct sockaddr *)local, &ll);
	return 0;
}

/* stream_addrs() of a connection not opened yet: the peer accept4() gave. */
static int kern_accepted_addrs(struct stream *s, struct sockaddr_storage *peer,
			       struct sockaddr_storage *local)
{
	socklen_t ll = sizeof(*local);

	*peer = ((struct kern_accepted *)s)->peer;
	memset(local, 0, sizeof(*local));
	getsockname(s->fd, (struct sockaddr *)local, &ll);
	return 0;
}

/* Close a connection sluice refused (a limit; its refusal line, if any,
 * was said): what the client sent already is read and dropped first, so
 * that the close is a FIN after the line and not a reset that could
 * destroy it (an implicit-TLS client's ClientHello is usually there). */
static void kern_drop(int fd)
{
	char scratch[4096];

	for (int i = 0; i < 4 && recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

/* stream_ops.say: a refusal line to a connection not opened yet, only
 * what the socket buffer takes now. */
static void kern_say(struct stream *s, const void *p, size_t len)
{
	if (s->fd >= 0 && len)
		(void)!send(s->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static const struct stream_ops kern_accepted_ops = {
	.size = sizeof(struct stream),
	.open = kern_open,
	.close = kern_close,
	.addrs = kern_accepted_addrs,
	.say = kern_say,
};

static const struct stream_ops kern_stream_ops = {
	.size = sizeof(struct stream),
	.open = kern_open,
	.recv = kern_recv,
	.send = kern_send,
	.shutdown_wr = kern_shutdown_wr,
	.connected = kern_connected,
	.close = kern_close,
	.abort = kern_abort,
	.addrs = kern_addrs,
	.rtt_us = kern_rtt_us,
};

/* io_ops.connect: a non-blocking connect, watched at once. */
static int kern_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
			socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	stream_wake_fn wake = s->wake;
	void *arg = s->wake_arg;
	int one = 1, rc;

	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, addr, len) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		close(fd);
		return rc;
	}
	kern_make(c->io_core, s, fd, SK_BACKEND, s->owner);
	atomic_fetch_add_explicit(&RT.socks, 1, memory_order_relaxed);
	rc = kern_open(s, wake, arg);
	if (rc < 0) {
		atomic_fetch_sub_explicit(&RT.socks, 1, memory_order_relaxed);
		close(fd);
		s->fd = -1;
		s->kind = SK_DEAD;
		return rc;
	}
	s->connecting = true;
	return 0;
}

/* io_ops.listen_one: a plain listening socket of backlog 1, watched. */
static int kern_listen_one(struct core *c, struct stream *s, const struct sockaddr *addr,
			   socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	stream_wake_fn wake = s->wake;
	void *arg = s->wake_arg;
	int one = 1, rc;

	if (fd < 0)
		return -errno;
	/* SO_REUSEADDR: the port's last connection may linger in TIME_WAIT;
	 * a socket listening there still makes bind() fail (no REUSEPORT). */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, addr, len) < 0 || listen(fd, 1) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	kern_make(c->io_core, s, fd, SK_PASSIVE, s->owner);
	s->readable = true; /* one may wait already */
	if ((rc = kern_open(s, wake, arg)) < 0) {
		close(fd);
		s->fd = -1;
		s->kind = SK_DEAD;
	}
	return rc;
}

/* io_ops.accept_one: one connection of ls, opened at out. */
static int kern_accept_one(struct core *c, struct stream *ls, struct stream *out,
			   struct sockaddr_storage *peer)
{
	socklen_t pl = sizeof(*peer);
	int one = 1, rc;
	int fd = accept4(ls->fd, (struct sockaddr *)peer, &pl, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		rc = -errno;
		if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
			ls->readable = false;
			return -EAGAIN;
		}
		return rc;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	kern_make(c->io_core, out, fd, SK_CLIENT, out->owner);
	atomic_fetch_add_explicit(&RT.socks, 1, memory_order_relaxed);
	if ((rc = kern_open(out, ls->wake, ls->wake_arg)) < 0) {
		atomic_fetch_sub_explicit(&RT.socks, 1, memory_order_relaxed);
		close(fd);
		out->fd = -1;
		out->kind = SK_DEAD;
		return rc;
	}
	out->writable = true;
	return 0;
}

/*
 * accept4() failed for want of descriptors or memory. The listener stays
 * readable (its queue is not empty) and edge-triggered epoll will not
 * tell again, so accepting pauses KERN_NOFILE_BACKOFF_MS (kern_wait sleeps
 * meanwhile: no core spins on a listener it cannot empty). On EMFILE or
 * ENFILE the reserve descriptor makes room for one accept: that client
 * hears the protocol's temporary refusal instead of waiting in the queue
 * until it gives up, then the reserve is taken back. At most one log line
 * a second per core.
 */
static void kern_accept_failed(struct core *c, struct kern_core *kc, struct stream *ls,
			       unsigned li, int err)
{
	bool nofile = err == EMFILE || err == ENFILE;
	uint64_t sec = c->now_ms / 1000;

	c->accept_after_ms = c->now_ms + KERN_NOFILE_BACKOFF_MS;
	ctr_inc(c, CTR_accept_backoff);
	if (nofile && kc->reserve_fd >= 0) {
		struct kern_accepted ka;
		socklen_t pl = sizeof(ka.peer);
		int fd;

		close(kc->reserve_fd);
		fd = accept4(ls->fd, (struct sockaddr *)&ka.peer, &pl,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			kern_make(kc, &ka.s, fd, SK_CLIENT, NULL);
			ka.s.ops = &kern_accepted_ops;
			if (io_up.refuse_nofile)
				io_up.refuse_nofile(c, li, &ka.s);
			kern_drop(fd);
		}
		kc->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	} else {
		ctr_inc(c, CTR_conn_refused_overload);
	}
	kc->nofile_dropped++;
	if (kc->nofile_log_s != sec) {
		log_msg(LOG_WARNING, "event=accept-backoff core=%u listener=%u error=%s "
			"backoff_ms=%u events=%u reserve=%s hint=\"raise limits.nofile or lower "
			"limits.sessions_per_core\"", c->id, li, nofile ? "EMFILE" : strerror(err),
			KERN_NOFILE_BACKOFF_MS, kc->nofile_dropped,
			kc->reserve_fd >= 0 ? "yes" : "no");
		kc->nofile_log_s = sec;
		kc->nofile_dropped = 0;
	}
}

/* A listener is readable: accept a burst, each handed to io_up.accept. */
static void kern_accept(struct core *c, struct stream *ls)
{
	unsigned li = (unsigned)(uintptr_t)ls->owner;
	int n, one = 1;

	for (n = 0; n < KERN_ACCEPT_BURST; n++) {
		struct kern_accepted ka;
		socklen_t pl = sizeof(ka.peer);
		int fd = accept4(ls->fd, (struct sockaddr *)&ka.peer, &pl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				ls->readable = false;
			else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				 errno == ENOMEM)
				kern_accept_failed(c, c->io_core, ls, li, errno);
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		atomic_fetch_add_explicit(&RT.socks, 1, memory_order_relaxed);
		kern_make(c->io_core, &ka.s, fd, SK_CLIENT, NULL);
		ka.s.ops = &kern_accepted_ops;
		if (io_up.accept(c, li, &ka.s) < 0) {
			kern_drop(fd);   /* refused: still ours */
			atomic_fetch_sub_explicit(&RT.socks, 1, memory_order_relaxed);
		}
		if (c->accept_after_ms > c->now_ms)
			return;      /* the session layer asked for a pause */
	}
	ls->readable = true; /* more may wait: come back next pass */
}

/* io_ops.wait: epoll_wait, up to wait_ms (not at all while a listener may
 * have more connections); the events wait for kern_poll. */
static void kern_wait(struct core *c, unsigned wait_ms)
{
	struct kern_core *kc = c->io_core;
	unsigned i;

	for (i = 0; i < kc->n_lsn && !kc->paused; i++)
		if (kc->lsn[i].readable) {
			/* Accepting paused: sleep until then, not spin. */
			if (c->accept_after_ms > c->now_ms)
				wait_ms = (unsigned)(c->accept_after_ms - c->now_ms) < wait_ms
					  ? (unsigned)(c->accept_after_ms - c->now_ms) : wait_ms;
			else
				wait_ms = 0;
		}
	kc->n_ev = epoll_wait(kc->epfd, kc->ev, KERN_EVENTS, (int)wait_ms);
}

/* io_ops.poll: the events kern_wait got, then the listeners that have
 * connections. */
static unsigned kern_poll(struct core *c)
{
	struct kern_core *kc = c->io_core;
	unsigned i, work = 0;
	int k;
	uint64_t v;

	for (k = 0; k < kc->n_ev; k++) {
		struct stream *s = kc->ev[k].data.ptr;
		uint32_t e = kc->ev[k].events;

		if (!s)
			continue;  /* a listener a reload moved (kern_relisten) */
		switch (s->kind) {
		case SK_LISTENER:
			s->readable = !kc->paused; /* (shut down: its HUP) */
			break;
		case SK_WAKE:
			/* The jobs themselves are the loop's; EAGAIN: a spurious edge. */
			(void)!read(s->fd, &v, sizeof(v));
			break;
		case SK_PASSIVE:
			s->readable = true;
			if (s->wake)
				s->wake(s, s->wake_arg);
			break;
		case SK_CLIENT:
		case SK_BACKEND:
			if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				s->readable = true;
			if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
				s->hup = true;
			if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
				s->writable = true;
			if (s->wake)
				s->wake(s, s->wake_arg);
			break;
		default:
			break; /* closed since */
		}
	}
	if (kc->n_ev > 0)
		work += (unsigned)kc->n_ev;
	kc->n_ev = 0;
	for (i = 0; i < kc->n_lsn && !kc->paused && c->accept_after_ms <= c->now_ms; i++)
		if (kc->lsn[i].readable) {
			kern_accept(c, &kc->lsn[i]);
			work++;
		}
	return work;
}

/* io_ops.enter: the workers' eventfd joins the epoll set. */
static int kern_enter(struct core *c)
{
	struct kern_core *kc = c->io_core;

	kern_make(kc, &kc->wake, c->wake_fd, SK_WAKE, NULL);
	return kern_watch(kc, &kc->wake);
}

/* io_ops.leave: the listeners stop taking connections (a listening
 * socket shut down leaves its SO_REUSEPORT group and resets its backlog);
 * kern_fini closes them. The eventfd is the workers'. */
static void kern_leave(struct core *c)
{
	struct kern_core *kc = c->io_core;

	for (unsigned i = 0; i < kc->n_lsn; i++) {
		(void)epoll_ctl(kc->epfd, EPOLL_CTL_DEL, kc->lsn[i].fd, NULL);
		(void)shutdown(kc->lsn[i].fd, SHUT_RDWR);
	}
}

/* Is fd a listening socket now? */
static bool kern_listening(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v;
}

/*
 * io_ops.listen: a drain stops the listeners without closing them, as
 * HAProxy pauses its own: shutdown() takes a listening socket out of the
 * LISTEN state (the connections in its queue are reset, new ones refused
 * once no socket of the SO_REUSEPORT group listens: an upgraded sluice
 * started beside this one takes them) and keeps it bound, so that
 * listen() resumes it without the privilege a port under 1024 needs.
 */
static void kern_listen_set(struct core *c, bool on)
{
	struct kern_core *kc = c->io_core;

	if (kc->paused == !on)
		return;
	for (unsigned i = 0; i < kc->n_lsn; i++) {
		struct stream *ls = &kc->lsn[i];

		if (ls->fd < 0)
			continue;
		if (!on) {
			/* Only a socket that listens: shutdown() on one shut
			 * down already leaves flags that the connections it
			 * accepts after listen() inherit (they are reset). */
			if (kern_listening(ls->fd))
				(void)shutdown(ls->fd, SHUT_RDWR);
			ls->readable = false;
		} else {
			if (listen(ls->fd, 1024) < 0)
				log_msg(LOG_ERR, "core %u: listener %u cannot listen again: %s",
					c->id, i, strerror(errno));
			ls->readable = true; /* an edge may have come and gone */
		}
	}
	kc->paused = !on;
}

const struct io_ops kern_io_ops = {
	.name = "kernel",
	.enter = kern_enter,
	.wait = kern_wait,
	.poll = kern_poll,
	.leave = kern_leave,
	.listen = kern_listen_set,
	.connect = kern_connect,
	.listen_one = kern_listen_one,
	.accept_one = kern_accept_one,
	.relisten = kern_relisten,
};

/* A socket listening on addr; fd or -errno. */
static int kern_listen(const struct sockaddr_storage *addr, socklen_t len)
{
	int one = 1, rc;
	int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (addr->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)addr, len) < 0 || listen(fd, 1024) < 0) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	return fd;
}

static void kern_lsock_close(struct kern_lsock *l)
{
	for (unsigned k = 0; l->fd && k < K.n_cores; k++)
		if (l->fd[k] >= 0)
			close(l->fd[k]);
	free(l->fd);
	l->fd = NULL;
}

/* The entry for addr in use (or closing: it is taken back), or a new one
 * with a socket per core. Its index, or -errno. */
static int kern_lsock_get(const struct sockaddr_storage *addr, socklen_t len)
{
	struct kern_lsock *v;
	unsigned i, k;
	int fd;

	for (i = 0; i < K.n_ls; i++)
		if (K.ls[i].len == len && !memcmp(&K.ls[i].addr, addr, len)) {
			K.ls[i].removed = 0;
			return (int)i;
		}
	if (!(v = realloc(K.ls, (K.n_ls + 1) * sizeof(*v))))
		return -ENOMEM;
	K.ls = v;
	v = &K.ls[K.n_ls];
	memset(v, 0, sizeof(*v));
	v->addr = *addr;
	v->len = len;
	if (!(v->fd = malloc(K.n_cores * sizeof(int))))
		return -ENOMEM;
	for (k = 0; k < K.n_cores; k++)
		v->fd[k] = -1;
	for (k = 0; k < K.n_cores; k++) {
		if ((fd = kern_listen(addr, len)) < 0) {
			kern_lsock_close(v);
			return fd;
		}
		v->fd[k] = fd;
	}
	return (int)K.n_ls++;
}

int kern_listeners_for(const struct cfg *cfg, uint64_t gen, int *lfd, char *err, size_t errlen)
{
	unsigned n0 = K.n_ls, i, k;
	bool *used;
	int e;

	if (!(used = calloc(K.n_ls + cfg->n_listeners + 1, sizeof(*used))))
		return -ENOMEM;
	for (i = 0; i < cfg->n_listeners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];

		if ((e = kern_lsock_get(&l->addr, l->addrlen)) < 0) {
			snprintf(err, errlen, "%s:%u: listeners[%u].address: cannot listen on %s: %s",
				 cfg->path, l->line, i, l->address, strerror(-e));
			/* What this call bound goes again; nothing else changed. */
			while (K.n_ls > n0)
				kern_lsock_close(&K.ls[--K.n_ls]);
			free(used);
			return e;
		}
		if (used[e]) {
			snprintf(err, errlen, "%s:%u: listeners[%u].address: %s is listed twice",
				 cfg->path, l->line, i, l->address);
			while (K.n_ls > n0)
				kern_lsock_close(&K.ls[--K.n_ls]);
			free(used);
			return -EINVAL;
		}
		used[e] = true;
		for (k = 0; k < K.n_cores; k++)
			lfd[(size_t)k * cfg->n_listeners + i] = K.ls[e].fd[k];
	}
	for (i = 0; i < K.n_ls; i++)
		if (!used[i] && !K.ls[i].removed)
			K.ls[i].removed = gen;
	free(used);
	return 0;
}

void kern_listeners_gc(uint64_t seen)
{
	for (unsigned i = 0; i < K.n_ls;) {
		if (K.ls[i].removed && K.ls[i].removed <= seen) {
			kern_lsock_close(&K.ls[i]);
			K.ls[i] = K.ls[--K.n_ls];
		} else {
			i++;
		}
	}
}

/* io_ops.relisten: this core's listening sockets become lfd[0, n) (one per
 * listener of the new generation, in its order). A socket kept moves to
 * its new place (epoll is told the new address); one no longer listed
 * leaves the epoll set (kern_listeners_gc closes it). */
static int kern_relisten(struct core *c, const int *lfd, unsigned n)
{
	struct kern_core *kc = c->io_core;
	struct stream *v = calloc(n ? n : 1, sizeof(*v));
	unsigned i, j;

	if (!v)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		for (j = 0; j < kc->n_lsn && kc->lsn[j].fd != lfd[i]; j++)
			;
		kern_make(kc, &v[i], lfd[i], SK_LISTENER, (void *)(uintptr_t)i);
		v[i].readable = true;  /* accept4 tells: EAGAIN clears it */
		if (j < kc->n_lsn) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = &v[i] };

			(void)epoll_ctl(kc->epfd, EPOLL_CTL_MOD, lfd[i], &ev);
			kc->lsn[j].fd = -1;  /* moved */
		} else {
			(void)kern_watch(kc, &v[i]);
		}
	}
	for (j = 0; j < kc->n_lsn; j++)
		if (kc->lsn[j].fd >= 0)
			(void)epoll_ctl(kc->epfd, EPOLL_CTL_DEL, kc->lsn[j].fd, NULL);
	/* Events kern_wait got this pass still point at the old array: they
	 * go (every listener kept is readable above, so nothing is missed). */
	for (int k = 0; k < kc->n_ev; k++) {
		struct stream *s = kc->ev[k].data.ptr;

		if (s >= kc->lsn && s < kc->lsn + kc->n_lsn)
			kc->ev[k].data.ptr = NULL;
	}
	free(kc->lsn);
	kc->lsn = v;
	kc->n_lsn = n;
	if (kc->paused) {
		/* Draining: a listener the reload added does not listen either
		 * (those that were here are shut down already). */
		kc->paused = false;
		kern_listen_set(c, false);
	}
	return 0;
}

/* Core k's epoll set and its listening sockets (K.ls, one per listener). */
static int kern_core_init(const struct cfg *cfg, struct kern_core *kc, unsigned k, char *err,
			  size_t errlen)
{
	unsigned i;

	kc->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	kc->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (kc->epfd < 0) {
		snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
		return -errno;
	}
	kc->lsn = calloc(cfg->n_listeners ? cfg->n_listeners : 1, sizeof(*kc->lsn));
	if (!kc->lsn)
		return -ENOMEM;
	for (i = 0; i < cfg->n_listeners; i++) {
		int rc;

		kern_make(kc, &kc->lsn[i], K.ls[i].fd[k], SK_LISTENER, (void *)(uintptr_t)i);
		kc->n_lsn = i + 1;
		rc = kern_watch(kc, &kc->lsn[i]);
		if (rc < 0) {
			snprintf(err, errlen, "epoll: %s", strerror(-rc));
			return rc;
		}
	}
	return 0;
}

int kern_init(const struct cfg *cfg, struct core *cores, unsigned n_cores, char *err,
	      size_t errlen)
{
	unsigned k;
	int rc;

	K.kc = calloc(n_cores, sizeof(*K.kc));
	if (!K.kc)
		return -ENOMEM;
	K.n_cores = n_cores;
	for (k = 0; k < n_cores; k++)
		K.kc[k].epfd = K.kc[k].reserve_fd = -1;
	/* Listeners are bound in their order, so that K.ls[i] is listener i. */
	for (unsigned i = 0; i < cfg->n_listeners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];

		if ((rc = kern_lsock_get(&l->addr, l->addrlen)) < 0) {
			snprintf(err, errlen, "%s:%u: listeners[%u].address: cannot listen on %s: %s",
				 cfg->path, l->line, i, l->address, strerror(-rc));
			return rc;
		}
		if ((unsigned)rc != i) {
			snprintf(err, errlen, "%s:%u: listeners[%u].address: %s is listed twice",
				 cfg->path, l->line, i, l->address);
			return -EINVAL;
		}
	}
	for (k = 0; k < n_cores; k++) {
		cores[k].io_core = &K.kc[k];
		if ((rc = kern_core_init(cfg, &K.kc[k], k, err, errlen)) < 0)
			return rc;
	}
	return 0;
}

void kern_fini(void)
{
	for (unsigned k = 0; K.kc && k < K.n_cores; k++) {
		struct kern_core *kc = &K.kc[k];

		free(kc->lsn);
		if (kc->epfd >= 0)
			close(kc->epfd);
		if (kc->reserve_fd >= 0)
			close(kc->reserve_fd);
	}
	/* The sockets are K.ls's: closed once, whichever cores watched them. */
	for (unsigned i = 0; i < K.n_ls; i++)
		kern_lsock_close(&K.ls[i]);
	free(K.ls);
	K.ls = NULL;
	K.n_ls = 0;
	free(K.kc);
	K.kc = NULL;
	K.n_cores = 0;
}
