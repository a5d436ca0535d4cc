/*
 * The session layer's byte stream (lib/stream.h) over a native TCP
 * connection: the same struct stream flags (readable, writable, eof,
 * failed, shut_wr, connecting, err) and the same call semantics as the
 * kernel implementation in io/kernel.c, so a session runs unchanged on
 * either stack; tcp_stream_ops are its struct stream_ops. Readiness
 * changes call the stream's wake(), the equivalent of an epoll event, from
 * inside net_input()/net_poll().
 */
#ifndef SLUICE_TCP_STREAM_H
#define SLUICE_TCP_STREAM_H

#include "net/net.h"
#include "stream.h"

struct tcp_stream {
	struct stream s;             /* what the session reads; s.fd stays -1 */
	struct tcp_conn *c;          /* NULL once the connection is gone */
};

/* The struct stream_ops of native streams (s.ops of every tcp_stream). */
extern const struct stream_ops tcp_stream_ops;

/* Make a stream of an accepted connection (from the listener's accept
 * callback), not open yet: the owner moves it to its place and calls
 * stream_open() there before the callback returns. */
void tcp_stream_take(struct tcp_stream *ts, struct tcp_conn *c, uint8_t kind);
/* Let go of an accepted connection refused before it was opened (after
 * its stream_ops.say, if any): the bytes it sent are dropped, then a FIN
 * (a RST only if more than a few KiB were waiting); the stream is dead. */
void tcp_stream_drop(struct tcp_stream *ts);
/* Take an accepted connection and open it here (tcp_stream_take, then
 * stream_open). */
void tcp_stream_attach(struct tcp_stream *ts, struct tcp_conn *c, uint8_t kind, void *owner,
		       stream_wake_fn wake, void *wake_arg);
/* Start an active open; writable (and connecting false) when done. req's
 * ops and ctx are the adapter's own. The stream is open at once: it must
 * not move. Returns 0 or a negative errno. */
int tcp_stream_connect(struct net_stack *st, struct tcp_stream *ts, struct tcp_connect_req *req,
		       void *owner, stream_wake_fn wake, void *wake_arg);
/* As stream_recv(): bytes read into b, or 0 (nothing now, buffer full,
 * eof or failed set). */
ssize_t tcp_stream_recv(struct tcp_stream *ts, struct buf *b);
/* As stream_send(): bytes taken from the head of b, or 0. */
ssize_t tcp_stream_send(struct tcp_stream *ts, struct buf *b);
void tcp_stream_shutdown_wr(struct tcp_stream *ts);
/* As stream_connected(): 0 when connected, -EINPROGRESS, or -errno. */
int tcp_stream_connected(struct tcp_stream *ts);
/* As stream_rtt_us(): the connection's srtt, else the handshake's time on
 * a passive open, else 0. */
uint32_t tcp_stream_rtt_us(const struct tcp_stream *ts);
/* As stream_close(): the connection closes (FIN, or RST if bytes were
 * left unread); the stream is dead. */
void tcp_stream_close(struct tcp_stream *ts);

#endif
