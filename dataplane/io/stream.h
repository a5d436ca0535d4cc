/*
 * The byte-stream connection under the session layer (DESIGN.md §6). The
 * session owns its buffers; a network stack moves bytes between them and the
 * wire, and reports readiness through the flags below. Two stacks implement
 * the calls: kernel sockets (io/kernel.c: epoll, edge-triggered) and the
 * native TCP (net/tcp_stream.c, a struct tcp_stream whose first member is
 * the struct stream; io/native.c makes them). The calls below choose by
 * the stream's native flag.
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
	SK_DEAD,       /* closed: late events are ignored */
};

struct core;

struct stream {
	uint8_t kind;
	bool readable;   /* may have bytes: read until EAGAIN */
	bool writable;   /* may take bytes: write until EAGAIN */
	bool eof;        /* peer finished sending */
	bool failed;     /* reset or error */
	bool shut_wr;    /* we sent FIN */
	bool connecting; /* active open in progress */
	int fd;          /* -1 when closed */
	int err;         /* errno of the failure */
	void *owner;     /* the session, or the listener index */
	bool native;     /* the first member of a struct tcp_stream (native stack) */
};

struct tcp_stream;

/* The kernel stack (io/kernel.c). */
ssize_t kern_stream_recv(struct stream *s, struct buf *b);
ssize_t kern_stream_send(struct stream *s, struct buf *b);
void kern_stream_shutdown_wr(struct stream *s);
int kern_stream_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
			socklen_t len);
int kern_stream_connected(struct stream *s);
void kern_stream_close(struct core *c, struct stream *s);
uint32_t kern_stream_rtt_us(const struct stream *s);

/* The native stack (net/tcp_stream.h, repeated here to keep includes one-way). */
ssize_t tcp_stream_recv(struct tcp_stream *ts, struct buf *b);
ssize_t tcp_stream_send(struct tcp_stream *ts, struct buf *b);
void tcp_stream_shutdown_wr(struct tcp_stream *ts);
int tcp_stream_connected(struct tcp_stream *ts);
void tcp_stream_close(struct tcp_stream *ts);
uint32_t tcp_stream_rtt_us(const struct tcp_stream *ts);

#define STREAM_TS(s) ((struct tcp_stream *)(s)) /* s->native: its first member */

/* Read once into b. Returns bytes read, 0 if nothing now (or buffer full),
 * and sets eof/failed. */
static inline ssize_t stream_recv(struct stream *s, struct buf *b)
{
	return s->native ? tcp_stream_recv(STREAM_TS(s), b) : kern_stream_recv(s, b);
}

/* Send from the head of b, consuming what was taken. Returns bytes sent or
 * 0; sets failed on error. */
static inline ssize_t stream_send(struct stream *s, struct buf *b)
{
	return s->native ? tcp_stream_send(STREAM_TS(s), b) : kern_stream_send(s, b);
}

static inline void stream_shutdown_wr(struct stream *s)
{
	if (s->native)
		tcp_stream_shutdown_wr(STREAM_TS(s));
	else
		kern_stream_shutdown_wr(s);
}

/* Start connecting to addr (with s->owner set) on the core's stack; the
 * stream becomes writable when done. 0 or -errno (io/stream.c). */
int stream_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
		   socklen_t len);

/* Finish an active open: 0 when connected, -EINPROGRESS, or -errno. */
static inline int stream_connected(struct stream *s)
{
	return s->native ? tcp_stream_connected(STREAM_TS(s)) : kern_stream_connected(s);
}

/* The connection's smoothed round-trip time in microseconds as its TCP
 * measured it (on an accepted connection: from the SYN-ACK and its ACK at
 * least), or 0 when there is no measurement. */
static inline uint32_t stream_rtt_us(const struct stream *s)
{
	return s->native ? tcp_stream_rtt_us((const struct tcp_stream *)s) : kern_stream_rtt_us(s);
}

/* Kernel stack: watch fd on the core's epoll set. */
int stream_attach(struct core *c, struct stream *s, int fd, uint8_t kind, void *owner);

/* Close (FIN, or RST with unread bytes); the stream is dead. */
static inline void stream_close(struct core *c, struct stream *s)
{
	if (s->native) {
		tcp_stream_close(STREAM_TS(s));
		s->kind = SK_DEAD;
	} else {
		kern_stream_close(c, s);
	}
}

/* Opened and not closed yet (either stack). */
static inline bool stream_is_open(const struct stream *s)
{
	return s->kind != SK_DEAD;
}

#endif
