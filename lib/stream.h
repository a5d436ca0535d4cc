/*
 * The byte-stream connection under the session layer (DESIGN.md §6). The
 * owner (a session, a backend probe) owns its buffers and the struct
 * stream itself; a network stack moves bytes between the buffers and the
 * wire, and reports readiness through the flags below and the wake
 * callback. Each stack supplies its calls as a struct stream_ops: kernel
 * sockets (dataplane/io/kernel.c) and the native TCP (net/tcp_stream.c, a
 * struct tcp_stream whose first member is the struct stream).
 *
 * Life of a stream: a stack makes it (an accepted connection, or
 * stream_connect() of the stack), the owner places it where it will live
 * and calls stream_open() there (a stream must not move after that), then
 * reads and writes until stream_close().
 */
#ifndef SLUICE_STREAM_H
#define SLUICE_STREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "buf.h"

enum stream_kind {
	SK_LISTENER,
	SK_CLIENT,
	SK_BACKEND,
	SK_WAKE,
	SK_PASSIVE,    /* a listener of one connection (io_ops.listen_one) */
	SK_DEAD,       /* closed: late events are ignored */
};

struct stream;

/* Readiness changed (data, send space, connected, closed). Called from
 * inside the stack: the callee only notes it and acts later. */
typedef void (*stream_wake_fn)(struct stream *s, void *arg);

/* A stack's side of its streams. */
struct stream_ops {
	size_t size;       /* bytes of the stack's stream: a struct stream and
			      what the stack keeps behind it */
	/* The stream sits where it will live: wake the owner from now on.
	 * 0 or -errno (the stream is not open then; the stack's handle is
	 * still the caller's to close). */
	int (*open)(struct stream *s, stream_wake_fn wake, void *arg);
	ssize_t (*recv)(struct stream *s, struct buf *b);
	ssize_t (*send)(struct stream *s, struct buf *b);
	void (*shutdown_wr)(struct stream *s);
	int (*connected)(struct stream *s);
	void (*close)(struct stream *s);
	/* Close with a reset, not a FIN: the peer must not take the end for
	 * a complete transfer. NULL: close. */
	void (*abort)(struct stream *s);
	/* The connection's addresses. 0 or -errno. */
	int (*addrs)(struct stream *s, struct sockaddr_storage *peer,
		     struct sockaddr_storage *local);
	/* The smoothed round-trip time its TCP measured (us), or 0. */
	uint32_t (*rtt_us)(const struct stream *s);
	/* A connection refused before it was opened (a limit): send these
	 * few bytes if they fit now, never waiting; its owner closes it
	 * then. NULL: the stack cannot, the refusal is a close. */
	void (*say)(struct stream *s, const void *p, size_t len);
};

struct stream {
	const struct stream_ops *ops; /* the stack's; NULL: never made */
	void *stack;     /* the stack's state this stream belongs to */
	uint8_t kind;    /* enum stream_kind */
	bool readable;   /* may have bytes: read until EAGAIN */
	bool writable;   /* may take bytes: write until EAGAIN */
	bool eof;        /* peer finished sending */
	bool failed;     /* reset or error */
	bool shut_wr;    /* we sent FIN */
	bool connecting; /* active open in progress */
	bool hup;        /* the stack saw the peer close or reset, maybe
			    before its bytes were read (the owner may stop
			    work for a peer that is gone) */
	int fd;          /* kernel stack: the socket; -1 when closed or native */
	int err;         /* errno of the failure */
	void *owner;     /* the session, the probe, or the listener */
	stream_wake_fn wake;
	void *wake_arg;
};

/* Start watching a stream that sits at its final place. 0 or -errno. */
static inline int stream_open(struct stream *s, stream_wake_fn wake, void *arg)
{
	return s->ops->open(s, wake, arg);
}

/* Read once into b. Returns bytes read, 0 if nothing now (or buffer full),
 * and sets eof/failed. */
static inline ssize_t stream_recv(struct stream *s, struct buf *b)
{
	return s->ops->recv(s, b);
}

/* Send from the head of b, consuming what was taken. Returns bytes sent or
 * 0; sets failed on error. */
static inline ssize_t stream_send(struct stream *s, struct buf *b)
{
	return s->ops->send(s, b);
}

/* Half-close once: FIN after what was sent. */
static inline void stream_shutdown_wr(struct stream *s)
{
	s->ops->shutdown_wr(s);
}

/* Finish an active open: 0 when connected, -EINPROGRESS, or -errno. */
static inline int stream_connected(struct stream *s)
{
	return s->ops->connected(s);
}

/* Opened and not closed yet. */
static inline bool stream_is_open(const struct stream *s)
{
	return s->ops && s->kind != SK_DEAD;
}

/* Close (FIN, or RST with unread bytes); the stream is dead. Closing a
 * dead stream does nothing. */
static inline void stream_close(struct stream *s)
{
	if (stream_is_open(s))
		s->ops->close(s);
	s->kind = SK_DEAD;
}

/* Close with a reset where the stack can (the peer sees an error, not
 * the end of the data); the stream is dead. */
static inline void stream_abort(struct stream *s)
{
	if (stream_is_open(s))
		(s->ops->abort ? s->ops->abort : s->ops->close)(s);
	s->kind = SK_DEAD;
}

/* The connection's smoothed round-trip time in microseconds as its TCP
 * measured it (on an accepted connection: from the SYN-ACK and its ACK at
 * least), or 0 when there is no measurement. */
static inline uint32_t stream_rtt_us(const struct stream *s)
{
	return s->ops->rtt_us(s);
}

/* The connection's peer and local addresses. 0 or -errno. */
static inline int stream_addrs(struct stream *s, struct sockaddr_storage *peer,
			       struct sockaddr_storage *local)
{
	return s->ops->addrs(s, peer, local);
}

#endif
