/* struct stream over the native TCP (tcp_stream.h). */
#include <errno.h>
#include <string.h>

#include "net/tcp_stream.h"

/* Readiness changed: let the owner run. */
static void wake(struct tcp_stream *ts)
{
	if (ts->s.wake)
		ts->s.wake(&ts->s, ts->s.wake_arg);
}

/* Active open done: writable, connecting is cleared by tcp_stream_connected(). */
static void ev_connected(struct tcp_conn *c, void *ctx)
{
	struct tcp_stream *ts = ctx;

	(void)c;
	ts->s.writable = true;
	wake(ts);
}

/* Bytes or the FIN to read. A FIN or a reset behind unread bytes sets
 * hup at once (as the kernel stack's EPOLLRDHUP): a handshake step that
 * waits for a worker is cancelled for a peer that is gone. */
static void ev_data(struct tcp_conn *c, void *ctx)
{
	struct tcp_stream *ts = ctx;

	if (tcp_peer_closed(c))
		ts->s.hup = true;
	ts->s.readable = true;
	wake(ts);
}

/* Send space came back. */
static void ev_writable(struct tcp_conn *c, void *ctx)
{
	struct tcp_stream *ts = ctx;

	(void)c;
	ts->s.writable = true;
	wake(ts);
}

/* The connection ended without our close: an error, or the orderly end
 * of a connection whose both directions are finished. */
static void ev_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct tcp_stream *ts = ctx;

	(void)c;
	ts->c = NULL;
	ts->s.hup = true;
	ts->s.readable = true; /* so that the session looks, and sees eof/failed */
	if (err) {
		ts->s.failed = true;
		ts->s.err = -err;
	} else {
		ts->s.eof = true;
	}
	wake(ts);
}

static const struct tcp_ops conn_ops = { ev_connected, ev_data, ev_writable, ev_closed };

/* A fresh stream: no fd, nothing ready. */
static void init(struct tcp_stream *ts, uint8_t kind, void *owner, stream_wake_fn w, void *arg)
{
	ts->s = (struct stream){ .ops = &tcp_stream_ops, .kind = kind, .fd = -1, .owner = owner,
				 .wake = w, .wake_arg = arg };
}

/* Take an accepted connection; it may be written at once. One that waited
 * in the accept queue may have bytes, a FIN or a reset already, which no
 * event will announce again: readable (and hup) say so now, as a kernel
 * socket's first epoll event would. */
void tcp_stream_take(struct tcp_stream *ts, struct tcp_conn *c, uint8_t kind)
{
	init(ts, kind, NULL, NULL, NULL);
	ts->c = c;
	ts->s.writable = true;
	ts->s.hup = tcp_peer_closed(c);
	ts->s.readable = ts->s.hup || tcp_readable(c) > 0;
}

/* stream_open(): the connection's events come to ts from now on. */
static int ts_open(struct stream *s, stream_wake_fn w, void *arg)
{
	struct tcp_stream *ts = (struct tcp_stream *)s;

	if (!ts->c)
		return -ENOTCONN;
	s->wake = w;
	s->wake_arg = arg;
	tcp_set_ops(ts->c, &conn_ops, ts);
	return 0;
}

void tcp_stream_attach(struct tcp_stream *ts, struct tcp_conn *c, uint8_t kind, void *owner,
		       stream_wake_fn w, void *arg)
{
	tcp_stream_take(ts, c, kind);
	ts->s.owner = owner;
	ts_open(&ts->s, w, arg);
}

/* Start an active open with the adapter as the callbacks. */
int tcp_stream_connect(struct net_stack *st, struct tcp_stream *ts, struct tcp_connect_req *req,
		       void *owner, stream_wake_fn w, void *arg)
{
	int rc;

	init(ts, SK_BACKEND, owner, w, arg);
	req->ops = &conn_ops;
	req->ctx = ts;
	rc = tcp_connect(st, req, &ts->c);
	if (rc < 0) {
		ts->c = NULL;
		return rc;
	}
	ts->s.connecting = true;
	return 0;
}

/* One read into b, with stream_recv() semantics. */
ssize_t tcp_stream_recv(struct tcp_stream *ts, struct buf *b)
{
	uint8_t *p;
	uint32_t room;
	ssize_t n;

	if (!ts->c || ts->s.eof || ts->s.failed || !ts->s.readable)
		return 0;
	if (buf_space(b, &p, &room) < 0 || room == 0)
		return 0;
	n = tcp_read(ts->c, p, room);
	if (n > 0) {
		b->tail += (uint32_t)n;
		return n;
	}
	buf_consume(b, 0);
	if (n < 0) {
		ts->s.failed = true;
		ts->s.err = (int)-n;
	} else if (tcp_eof(ts->c)) {
		ts->s.eof = true;
	} else {
		ts->s.readable = false;
	}
	return 0;
}

/* One send from b, with stream_send() semantics. */
ssize_t tcp_stream_send(struct tcp_stream *ts, struct buf *b)
{
	ssize_t n;

	if (!ts->c || ts->s.failed || ts->s.connecting || !ts->s.writable || buf_len(b) == 0)
		return 0;
	n = tcp_send(ts->c, buf_head(b), buf_len(b));
	if (n > 0) {
		if ((uint32_t)n < buf_len(b))
			ts->s.writable = false;
		buf_consume(b, (uint32_t)n);
		return n;
	}
	if (n == 0) {
		ts->s.writable = false;
	} else {
		ts->s.failed = true;
		ts->s.err = (int)-n;
	}
	return 0;
}

/* Half-close once. */
void tcp_stream_shutdown_wr(struct tcp_stream *ts)
{
	if (ts->c && !ts->s.shut_wr) {
		tcp_shutdown_wr(ts->c);
		ts->s.shut_wr = true;
	}
}

/* The connection's srtt: on an accepted one, the handshake's sample (the
 * SYN-ACK timed by the clock, or by the timestamp echo in whole ms), later
 * smoothed. With no sample yet (a SYN-ACK sent twice without timestamps:
 * Karn), the time from the first SYN-ACK to its ACK, an upper bound; 0
 * when neither is known (a SYN cookie without timestamps). */
uint32_t tcp_stream_rtt_us(const struct tcp_stream *ts)
{
	struct tcp_conn_info i;

	if (!ts->c)
		return 0;
	tcp_get_info(ts->c, &i);
	return i.srtt_us ? i.srtt_us : i.hs_rtt_us;
}

/* With stream_connected() semantics. */
int tcp_stream_connected(struct tcp_stream *ts)
{
	if (ts->s.failed)
		return -ts->s.err;
	if (!ts->c)
		return -ENOTCONN;
	if (!ts->s.writable) /* a stale wake-up: still under way */
		return -EINPROGRESS;
	ts->s.connecting = false;
	return 0;
}

/* Close and mark the stream dead. */
void tcp_stream_close(struct tcp_stream *ts)
{
	if (ts->c)
		tcp_close(ts->c);
	ts->c = NULL;
	ts->s.kind = SK_DEAD;
}

/* stream_ops.say: a refusal line to an accepted connection not opened
 * yet, what the send buffer takes now (it is empty: all of a line). */
static void ts_say(struct stream *s, const void *p, size_t len)
{
	struct tcp_stream *ts = (struct tcp_stream *)s;

	if (ts->c && len)
		(void)tcp_send(ts->c, p, len);
}

/* A refused accepted connection (said its line, or nothing): what the
 * client sent already (the handshake's last ACK may carry its first
 * bytes, a ClientHello) is read and dropped, so that tcp_close() sends a
 * FIN after the line, not a RST that could destroy it. */
void tcp_stream_drop(struct tcp_stream *ts)
{
	uint8_t scratch[2048];

	if (!ts->c)
		return;
	for (int i = 0; i < 8 && tcp_read(ts->c, scratch, sizeof(scratch)) > 0; i++)
		;
	tcp_close(ts->c);
	ts->c = NULL;
	ts->s.kind = SK_DEAD;
}

/* stream_addrs(): the connection's addresses as sockaddrs. */
static int ts_addrs(struct stream *s, struct sockaddr_storage *peer, struct sockaddr_storage *local)
{
	struct tcp_stream *ts = (struct tcp_stream *)s;
	struct tcp_conn_info ti;

	if (!ts->c)
		return -ENOTCONN;
	tcp_get_info(ts->c, &ti);
	net_sockaddr(&ti.raddr, ti.rport, peer);
	net_sockaddr(&ti.laddr, ti.lport, local);
	return 0;
}

/* The stream_ops calls: the tcp_stream_* functions above. */
static ssize_t ts_recv(struct stream *s, struct buf *b)
{
	return tcp_stream_recv((struct tcp_stream *)s, b);
}

static ssize_t ts_send(struct stream *s, struct buf *b)
{
	return tcp_stream_send((struct tcp_stream *)s, b);
}

static void ts_shutdown_wr(struct stream *s)
{
	tcp_stream_shutdown_wr((struct tcp_stream *)s);
}

static uint32_t ts_rtt_us(const struct stream *s)
{
	return tcp_stream_rtt_us((const struct tcp_stream *)s);
}

static int ts_connected(struct stream *s)
{
	return tcp_stream_connected((struct tcp_stream *)s);
}

static void ts_close(struct stream *s)
{
	tcp_stream_close((struct tcp_stream *)s);
}

const struct stream_ops tcp_stream_ops = {
	.size = sizeof(struct tcp_stream),
	.open = ts_open,
	.recv = ts_recv,
	.send = ts_send,
	.shutdown_wr = ts_shutdown_wr,
	.connected = ts_connected,
	.close = ts_close,
	.addrs = ts_addrs,
	.rtt_us = ts_rtt_us,
	.say = ts_say,
};
