/*
 * The connection API of net.h for the session layer: listen, connect,
 * send, read, shutdown, close, abort. Calls may come from inside the
 * stack's callbacks; connections are freed only when the outermost call
 * returns (net_reap).
 */
#include <errno.h>

#include "net/net_int.h"

/* Calls from outside the stack (depth 0) are charged to the stack's API
 * cycles and to the connection; calls from callbacks are already inside
 * a frame's or a timer's account. */
static void enter(struct net_stack *st)
{
	if (st->depth++ == 0)
		st->api_t0 = net_cycles_now(st);
}

/* End an API call; charge its cycles to c (outside calls only); free the dead at depth 0. */
static void leave_conn(struct net_stack *st, struct tcp_conn *c)
{
	if (st->depth == 1 && st->cfg.cycles) {
		uint64_t d = net_cycles_now(st) - st->api_t0;

		st->cyc.api_calls++;
		st->cyc.api_cycles += d;
		if (c)
			c->cycles += d;
	}
	if (--st->depth == 0)
		net_reap(st);
}

static void leave(struct net_stack *st) { leave_conn(st, NULL); }

/* Listen on (addr, port): see net.h. Returns 0, -EINVAL, -EADDRINUSE or -ENOMEM. */
int tcp_listen(struct net_stack *st, const struct net_addr *addr, uint16_t port,
	       tcp_accept_fn accept, void *lctx, struct tcp_listener **out)
{
	struct net_addr any = { 0 };
	unsigned i, n = sizeof(st->listeners) / sizeof(st->listeners[0]);
	struct tcp_listener *free_l = NULL;

	if (!addr)
		addr = &any;
	if (port == 0 || !accept)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		struct tcp_listener *l = &st->listeners[i];

		if (l->used && l->port == port && l->addr.family == addr->family &&
		    memcmp(l->addr.a, addr->a, 16) == 0)
			return -EADDRINUSE;
		if (!l->used && !free_l)
			free_l = l;
	}
	if (!free_l)
		return -ENOMEM;
	memset(free_l, 0, sizeof(*free_l));
	free_l->st = st;
	free_l->addr = *addr;
	free_l->port = port;
	free_l->accept = accept;
	free_l->ctx = lctx;
	free_l->used = true;
	*out = free_l;
	return 0;
}

/* Stop listening; the listener's half-open connections are reset. */
void tcp_unlisten(struct tcp_listener *l)
{
	struct net_stack *st = l->st;
	uint32_t i;

	enter(st);
	for (i = 0; i <= st->flow_mask; i++) {
		struct tcp_conn *c, *n;

		for (c = st->flows[i]; c; c = n) {
			n = c->hnext;
			if (c->lst == l) {
				tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
				tcp_conn_destroy(c);
			}
		}
	}
	/* The accept queue too: the application never had them. */
	while (l->aq_head) {
		struct tcp_conn *c = l->aq_head;

		tcp_aq_unlink(c);
		c->app_gone = true;
		if (c->state != TCPS_CLOSED)
			tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
		tcp_conn_destroy(c);
	}
	l->used = false;
	leave(st);
}

/* See net.h: the accept queue's connections to the accept callback again,
 * oldest first, until it pauses again. */
unsigned tcp_accept_queued(struct tcp_listener *l)
{
	struct net_stack *st = l->st;
	unsigned n = 0;

	if (!l->aq_head)
		return 0;
	enter(st);
	while (l->aq_head) {
		struct tcp_conn *c = l->aq_head;

		tcp_aq_unlink(c);
		n++;
		if (tcp_offer_at(l, c, true) == -EAGAIN)
			break;
		if (!c->dead && c->keepalive)
			tcp_keep_reset(c);
	}
	leave(st);
	return n;
}

/* May an active open take t's 4-tuple from the connection x now in
 * TIME_WAIT there? As Linux's tcp_tw_reuse (tcp_twsk_unique): x used
 * timestamps and heard nothing for a second, so the peer's PAWS (RFC 7323
 * §5, Appendix B.2) tells the old incarnation's stray segments from the
 * new one's, whose TSvals (same per-tuple offset, a later clock) and ISN
 * (above x's SND.NXT, RFC 6191 §2) are both higher. x's bytes must all be
 * read: a CLOSED object held for them cannot go. */
static bool tw_reusable(const struct tcp_conn *x)
{
	return x->state == TCPS_TIME_WAIT && x->ts_ok && tcp_readable(x) == 0 &&
	       x->st->now_us - x->last_rx_us >= 1000000;
}

/* RFC 6056 §3.3.3 (Algorithm 3): a keyed offset per destination plus a
 * counter, then the caller's predicate (e.g. "RSS brings it back to this
 * core"). A port whose 4-tuple is in TIME_WAIT is taken when tw_reusable()
 * says so; when every port is taken, the oldest TIME_WAIT among them is
 * (a client that closes first leaves one per connection: ~470 closes a
 * second would otherwise exhaust 28232 ports within 2 MSL). *tw is then
 * the connection to end. Returns 0 or -EADDRNOTAVAIL. */
static int pick_port(struct net_stack *st, struct tcp_tuple *t, const struct tcp_connect_req *r,
		     struct tcp_conn **tw)
{
	uint32_t num = (uint32_t)st->tp.port_hi - st->tp.port_lo + 1, i, oldest_i = 0;
	struct tcp_conn *oldest = NULL;
	uint8_t k[36];
	uint32_t off;

	*tw = NULL;
	memcpy(k, t->laddr.a, 16);
	memcpy(k + 16, t->raddr.a, 16);
	wr16(k + 32, t->rport);
	wr16(k + 34, 0x5050);
	off = (uint32_t)siphash24(st->cfg.secret, k, sizeof(k));
	for (i = 0; i < num; i++) {
		uint16_t port = (uint16_t)(st->tp.port_lo + (off + st->port_next + i) % num);
		struct tcp_conn *x;

		t->lport = port;
		x = flow_lookup(st, t);
		if (x && (x->state != TCPS_TIME_WAIT || tcp_readable(x) > 0))
			continue;
		if (r->port_ok && !r->port_ok(r->port_arg, &t->laddr, port, &t->raddr, t->rport))
			continue;
		if (x && !tw_reusable(x)) {
			if (!oldest || x->tw_us < oldest->tw_us) {
				oldest = x;
				oldest_i = i;
			}
			continue;
		}
		*tw = x;
		st->port_next += i + 1;
		return 0;
	}
	if (!oldest)
		return -EADDRNOTAVAIL;
	t->lport = oldest->t.lport;
	*tw = oldest;
	st->port_next += oldest_i + 1;
	return 0;
}

/* Active open (RFC 9293 §3.10.1): pick the local address and port, send the SYN. */
int tcp_connect(struct net_stack *st, const struct tcp_connect_req *r, struct tcp_conn **out)
{
	struct tcp_conn *c, *tw = NULL;
	struct tcp_tuple t;
	uint32_t tw_snd_nxt = 0;
	int err;

	memset(&t, 0, sizeof(t));
	if (r->rport == 0 || (r->raddr.family != NET_AF4 && r->raddr.family != NET_AF6))
		return -EINVAL;
	t.raddr = r->raddr;
	t.rport = r->rport;
	if (net_src_for(st, &r->raddr, &t.laddr) < 0)
		return -EADDRNOTAVAIL;
	if (net_active_conns(st) >= st->tp.max_conns)
		return -ENOMEM;
	if (r->lport) {
		t.lport = r->lport;
		if (flow_lookup(st, &t))
			return -EADDRINUSE;
	} else if ((err = pick_port(st, &t, r, &tw)) < 0) {
		return err;
	}
	enter(st);
	if (tw) {
		/* RFC 6191 §2 / Linux: the new ISN above the old SND.NXT by
		 * more than a window, so no old segment is in the new window. */
		tw_snd_nxt = tw->snd_nxt;
		net_count(st, NET_C_tcp_tw_reuse_connect);
		tcp_conn_destroy(tw);
	}
	c = tcp_conn_new(st, &t);
	if (!c) {
		leave(st);
		return -ENOMEM;
	}
	c->ops = r->ops;
	c->ctx = r->ctx;
	c->iss = tcp_isn(st, &t);
	if (tw)
		c->iss = tw_snd_nxt + 65535 + 2;
	c->snd_una = c->iss;
	c->snd_nxt = c->snd_max = c->snd_qend = c->iss + 1;
	c->recover = c->iss;
	c->rcv_ws = st->tp.no_wscale ? 0 : tcp_our_wscale(st);
	c->rtt_start_us = st->now_us;
	tcp_set_state(c, TCPS_SYN_SENT);
	tcp_send_syn(c, false);
	c->rtx_mode = RTX_RETRANSMIT;
	tcp_arm(c, TCP_T_RTX, c->rto_us);
	*out = c;
	leave_conn(st, c);
	return 0;
}

/* Set the connection's callbacks and their context. */
void tcp_set_ops(struct tcp_conn *c, const struct tcp_ops *ops, void *ctx)
{
	c->ops = ops;
	c->ctx = ctx;
}

/* Free bytes in the send buffer (0 before ESTABLISHED). */
uint32_t tcp_send_space(const struct tcp_conn *c)
{
	if (!c->sbuf_size)
		return 0;
	return c->sbuf_size - (c->snd_qend - tcp_snd_data_una(c));
}

/* Copy into the send buffer at SND.QEND and let the send loop run. */
static ssize_t send_inner(struct tcp_conn *c, const void *data, size_t len)
{
	uint32_t room, n, pos, first;

	if (c->soft_err && !c->app_gone)
		return c->soft_err;
	if (c->app_gone || (c->state != TCPS_ESTABLISHED && c->state != TCPS_CLOSE_WAIT))
		return c->fin_queued && !c->app_gone ? -EPIPE : -ENOTCONN;
	if (c->fin_queued)
		return -EPIPE;
	room = tcp_send_space(c);
	n = len < room ? (uint32_t)len : room;
	if (n < len)
		c->want_writable = true;
	if (n == 0)
		return 0;
	if (tcp_sbuf_reserve(c, c->snd_qend - tcp_snd_data_una(c) + n) < 0)
		return -ENOMEM;
	pos = c->snd_qend & (c->sbuf_mem - 1);
	first = c->sbuf_mem - pos;
	if (first > n)
		first = n;
	memcpy(c->sbuf + pos, data, first);
	memcpy(c->sbuf, (const uint8_t *)data + first, n - first);
	c->snd_qend += n;
	tcp_output(c);
	return n;
}

/* See net.h: bytes taken, 0, -ENOTCONN or -EPIPE. */
ssize_t tcp_send(struct tcp_conn *c, const void *data, size_t len)
{
	ssize_t r;

	enter(c->st);
	r = send_inner(c, data, len);
	leave_conn(c->st, c);
	return r;
}

/* In-order bytes not yet read (the FIN is not a byte). */
uint32_t tcp_readable(const struct tcp_conn *c)
{
	return c->rbuf ? c->rcv_nxt - c->rcv_read - (c->fin_rcvd ? 1u : 0u) : 0; /* none: nothing held */
}

/* The peer's FIN is in and every byte before it was read. */
bool tcp_eof(const struct tcp_conn *c)
{
	return c->fin_rcvd && tcp_readable(c) == 0;
}

/* The peer sent its FIN or reset (or the connection died), whatever is
 * still unread. */
bool tcp_peer_closed(const struct tcp_conn *c)
{
	return c->fin_rcvd || c->soft_err || c->state == TCPS_CLOSED;
}

/* Copy out from RCV.READ; send a window update if the edge moved enough. */
static ssize_t read_inner(struct tcp_conn *c, void *buf, size_t len)
{
	uint32_t avail, n, pos, first, edge, thresh;

	if (c->app_gone)
		return -ENOTCONN;
	avail = tcp_readable(c);
	n = len < avail ? (uint32_t)len : avail;
	if (n == 0)
		return avail == 0 && c->soft_err ? c->soft_err : 0;
	pos = c->rcv_read & (c->rbuf_mem - 1);
	first = c->rbuf_mem - pos;
	if (first > n)
		first = n;
	memcpy(buf, c->rbuf + pos, first);
	memcpy((uint8_t *)buf + first, c->rbuf, n - first);
	c->rcv_read += n;
	if (c->state == TCPS_TIME_WAIT && tcp_readable(c) == 0) {
		tcp_tw_trim(c);
		return n;
	}
	tcp_buf_check(c);
	/* Window update when the right edge moves by a useful amount
	 * (receiver SWS avoidance, RFC 9293 §3.8.6.2.2). */
	edge = c->rcv_read + c->rbuf_size - (1u << c->rcv_ws);
	thresh = c->rbuf_size / 2 < 2 * tcp_eff_mss(c) ? c->rbuf_size / 2 : 2 * tcp_eff_mss(c);
	if (!c->fin_rcvd && seq_gt(edge, c->rcv_adv) && edge - c->rcv_adv >= thresh &&
	    (c->state == TCPS_ESTABLISHED || c->state == TCPS_FIN_WAIT_1 || c->state == TCPS_FIN_WAIT_2))
		tcp_send_ack(c);
	return n;
}

/* See net.h: bytes copied, 0, or -ENOTCONN. */
ssize_t tcp_read(struct tcp_conn *c, void *buf, size_t len)
{
	ssize_t r;

	enter(c->st);
	r = read_inner(c, buf, len);
	leave_conn(c->st, c);
	return r;
}

/* Queue our FIN: ESTABLISHED -> FIN-WAIT-1, CLOSE-WAIT -> LAST-ACK
 * (RFC 9293 §3.10.4). Returns true if a FIN was queued now. */
static bool queue_fin(struct tcp_conn *c)
{
	if (c->fin_queued)
		return false;
	if (c->state == TCPS_ESTABLISHED)
		tcp_set_state(c, TCPS_FIN_WAIT_1);
	else if (c->state == TCPS_CLOSE_WAIT)
		tcp_set_state(c, TCPS_LAST_ACK);
	else
		return false;
	c->fin_queued = true;
	return true;
}

/* Half-close: the FIN follows the queued bytes. */
void tcp_shutdown_wr(struct tcp_conn *c)
{
	if (c->app_gone)
		return;
	enter(c->st);
	if (queue_fin(c))
		tcp_output(c);
	leave_conn(c->st, c);
}

/* The application lets go (RFC 9293 §3.10.4): FIN, or RST with unread bytes; the stack finishes. */
void tcp_close(struct tcp_conn *c)
{
	struct net_stack *st = c->st;

	if (c->app_gone)
		return;
	enter(st);
	c->app_gone = true;
	if (c->state == TCPS_SYN_SENT || c->state == TCPS_CLOSED) {
		tcp_conn_destroy(c);
	} else if (tcp_readable(c) > 0 || c->state == TCPS_SYN_RECEIVED) {
		/* RFC 9293 §3.10.4 / RFC 2525 §2.17: unread data means the
		 * peer must learn its data was not consumed. A handshake
		 * still in SYN-RECEIVED (simultaneous open) is simply reset. */
		tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
		tcp_conn_destroy(c);
	} else {
		if (queue_fin(c))
			tcp_output(c);
		tcp_tw_trim(c);
		if (c->state == TCPS_FIN_WAIT_2) {
			c->rtx_mode = RTX_FINWAIT2;
			tcp_arm(c, TCP_T_RTX, st->tp.fin_wait2_us);
		}
	}
	leave_conn(st, c);
}

/* Reset now (RFC 9293 §3.10.5) and free. */
void tcp_abort(struct tcp_conn *c)
{
	struct net_stack *st = c->st;

	if (c->app_gone)
		return;
	enter(st);
	c->app_gone = true;
	if (c->state != TCPS_SYN_SENT && c->state != TCPS_CLOSED && c->state != TCPS_TIME_WAIT)
		tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
	tcp_conn_destroy(c);
	leave_conn(st, c);
}

/* Keepalive on or off (RFC 9293 §3.8.4: off unless asked). */
void tcp_set_keepalive(struct tcp_conn *c, bool on)
{
	c->keepalive = on;
	if (on && c->state == TCPS_ESTABLISHED)
		tcp_keep_reset(c);
	else if (!on)
		tcp_disarm(c, TCP_T_KEEP);
}

/* Nagle's algorithm off (true) or on. */
void tcp_set_nodelay(struct tcp_conn *c, bool on)
{
	c->nodelay = on;
}

/* A snapshot of the connection's state and counters. */
void tcp_get_info(const struct tcp_conn *c, struct tcp_conn_info *i)
{
	memset(i, 0, sizeof(*i));
	i->state = c->state;
	i->laddr = c->t.laddr;
	i->raddr = c->t.raddr;
	i->lport = c->t.lport;
	i->rport = c->t.rport;
	i->mss = tcp_eff_mss(c);
	i->cwnd = c->cwnd;
	i->ssthresh = c->ssthresh;
	i->snd_wnd = c->snd_wnd;
	i->rcv_wnd = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	i->srtt_us = c->srtt_us;
	i->rto_us = c->rto_us;
	i->hs_rtt_us = c->hs_rtt_us;
	i->snd_wscale = c->snd_ws;
	i->rcv_wscale = c->rcv_ws;
	i->sack = c->sack_ok;
	i->timestamps = c->ts_ok;
	i->cookie = c->cookie;
	i->retransmits = c->retransmits;
	i->bytes_acked = c->bytes_acked_total;
	i->bytes_received = c->bytes_rcvd_total;
	i->cycles = c->cycles;
}
