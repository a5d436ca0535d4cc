/*
 * A TCP connection's life: creation, state changes, buffers, the end
 * (with or without the application), and the graveyard that frees
 * connections only once no caller up the stack can still hold them.
 */
#include <errno.h>
#include <stdlib.h>

#include "net/net_int.h"

/* A connection for t, in the flow table, state CLOSED. NULL if the table is
 * full (max_conns, TIME_WAIT not counted) or memory is short. */
struct tcp_conn *tcp_conn_new(struct net_stack *st, const struct tcp_tuple *t)
{
	struct tcp_conn *c;
	int k;

	if (net_active_conns(st) >= st->tp.max_conns)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->st = st;
	c->t = *t;
	for (k = 0; k < TCP_T__N; k++)
		c->tm[k].kind = (uint8_t)k;
	c->nodelay = !st->tp.nagle;
	c->rto_us = st->tp.rto_init_us;
	c->pmtu = (uint16_t)st->cfg.mtu;
	c->peer_mss = t->laddr.family == NET_AF4 ? 536 : 1220; /* RFC 9293 §3.7.1, RFC 8200 §8.3 */
	c->ts_offset = tcp_ts_offset(st, t);
	flow_insert(st, c);
	return c;
}

/* Every state change goes through here (one place to trace or count them). */
void tcp_set_state(struct tcp_conn *c, uint8_t state)
{
	c->state = state;
}

/* At ESTABLISHED the connection may queue and receive up to its
 * configured buffers (a SYN flood costs none); their memory comes with
 * the first byte (tcp_buf.c). */
void tcp_conn_buffers(struct tcp_conn *c)
{
	c->sbuf_size = c->st->tp.sndbuf;
	c->rbuf_size = c->st->tp.rcvbuf;
}

/* A connection in TIME_WAIT holds no buffers: everything we sent is
 * acknowledged (our FIN too), and the receive buffer goes as soon as the
 * application has read it (a SYN flood's or a connection flood's TIME_WAITs
 * would otherwise keep 2 x 256 KiB each for 2 MSL). */
void tcp_tw_trim(struct tcp_conn *c)
{
	if (c->state != TCPS_TIME_WAIT)
		return;
	tcp_free_sbuf(c);
	if (c->app_gone || tcp_readable(c) == 0)
		tcp_free_rbuf(c);
}

/* Off the TIME_WAIT list. */
static void tw_unlink(struct tcp_conn *c)
{
	struct net_stack *st = c->st;

	if (!c->in_tw)
		return;
	if (c->tw_prev)
		c->tw_prev->tw_next = c->tw_next;
	else
		st->tw_head = c->tw_next;
	if (c->tw_next)
		c->tw_next->tw_prev = c->tw_prev;
	else
		st->tw_tail = c->tw_prev;
	c->tw_prev = c->tw_next = NULL;
	c->in_tw = false;
	st->ntw--;
}

/* Payload bytes per segment: RFC 9293 §3.7.1 Eff.snd.MSS =
 * min(SendMSS + 20, MMS_S) - TCPhdrsize - IPoptionsize, with the
 * timestamp option counted in the header. */
uint32_t tcp_eff_mss(const struct tcp_conn *c)
{
	uint32_t iph = c->t.laddr.family == NET_AF4 ? NET_IP4_HLEN : NET_IP6_HLEN;
	uint32_t mms = c->pmtu - iph, m = c->peer_mss + NET_TCP_HLEN;

	if (m > mms)
		m = mms;
	m -= NET_TCP_HLEN + (c->ts_ok ? 12 : 0);
	return m < 64 ? 64 : m;
}

/* Our TSval: a millisecond clock plus the connection's offset. */
uint32_t tcp_ts_now(const struct tcp_conn *c)
{
	return (uint32_t)net_now_ms(c->st) + c->ts_offset;
}

/* Tell the application the connection is over (err 0: orderly), once.
 * The handle is the stack's from here on. */
static void tcp_finish(struct tcp_conn *c, int err)
{
	if (c->app_gone)
		return;
	c->app_gone = true;
	if (c->ops && c->ops->closed)
		c->ops->closed(c, c->ctx, err);
}

/* Take the connection out of the stack: timers, flow table, listener;
 * freed by net_reap(). The application is told first if it is still there
 * (closed(0)), unless it has bytes left to read: then the object stays,
 * CLOSED, until the application's tcp_close(). */
void tcp_conn_destroy(struct tcp_conn *c)
{
	int k;

	if (c->dead)
		return;
	tw_unlink(c);
	tcp_buf_unlist(c);
	for (k = 0; k < TCP_T__N; k++)
		timer_cancel(&c->tm[k].t);
	if (c->lst) {
		c->lst->nsynq--;
		c->st->nhalf--;
		c->lst = NULL;
	}
	c->state = TCPS_CLOSED;
	/* Bytes the application has not read yet stay readable: the object
	 * stays (CLOSED, ignored by tcp_input, its 4-tuple still taken) until
	 * tcp_close(). */
	if (!c->app_gone && tcp_readable(c) > 0)
		return;
	flow_remove(c->st, c);
	tcp_aq_unlink(c);
	tcp_finish(c, 0);
	c->dead = true;
	c->gnext = c->st->graveyard;
	c->st->graveyard = c;
}

/* The connection failed (reset, timeout, refused): tell the application
 * with err, then destroy. */
void tcp_conn_fail(struct tcp_conn *c, int err)
{
	if (err == -ECONNRESET)
		net_count(c->st, NET_C_tcp_reset_rx_conn);
	else if (err == -ETIMEDOUT)
		net_count(c->st, NET_C_tcp_timeout);
	/* Bytes received and acknowledged before the reset are the
	 * application's: a backend's "250" followed by a RST is a delivered
	 * message. They stay readable (the object stays, CLOSED), data() says
	 * so, and tcp_read() gives the error after the last of them. */
	if (!c->app_gone && tcp_readable(c) > 0) {
		c->soft_err = err;
		tcp_conn_destroy(c);
		if (c->ops && c->ops->data)
			c->ops->data(c, c->ctx);
		return;
	}
	tcp_finish(c, err);
	tcp_conn_destroy(c);
}

/* Out of its listener's accept queue, if it is in one. */
void tcp_aq_unlink(struct tcp_conn *c)
{
	struct tcp_listener *l = c->aq;

	if (!l)
		return;
	if (c->aq_prev)
		c->aq_prev->aq_next = c->aq_next;
	else
		l->aq_head = c->aq_next;
	if (c->aq_next)
		c->aq_next->aq_prev = c->aq_prev;
	else
		l->aq_tail = c->aq_prev;
	l->naq--;
	c->aq = NULL;
	c->aq_prev = c->aq_next = NULL;
}

/* At the tail of l's accept queue (front: back at its head, its turn
 * again first). */
static void aq_push(struct tcp_listener *l, struct tcp_conn *c, bool front)
{
	c->aq = l;
	if (front) {
		c->aq_prev = NULL;
		c->aq_next = l->aq_head;
		if (l->aq_head)
			l->aq_head->aq_prev = c;
		else
			l->aq_tail = c;
		l->aq_head = c;
	} else {
		c->aq_next = NULL;
		c->aq_prev = l->aq_tail;
		if (l->aq_tail)
			l->aq_tail->aq_next = c;
		else
			l->aq_head = c;
		l->aq_tail = c;
	}
	l->naq++;
}

/*
 * The application's turn for an established passive open c of listener
 * l (NULL: gone): 0, it took c; -EAGAIN, it asked for a pause and c waits
 * in l's accept queue (front: it was the queue's head) with no callbacks
 * (what arrives meanwhile is kept: bytes, the FIN; a reset or a timeout
 * takes it out), beyond syn_backlog waiting the peer hears a RST as a
 * refusal does; or -ECONNREFUSED, refused (RST) and destroyed.
 */
int tcp_offer_at(struct tcp_listener *l, struct tcp_conn *c, bool front)
{
	int rc = l ? l->accept(l->ctx, c) : -ECONNREFUSED;

	if (rc == -EAGAIN && !c->dead && !c->app_gone) {
		if (l->naq < c->st->tp.syn_backlog) {
			if (!front)
				net_count(c->st, NET_C_tcp_accept_queued);
			aq_push(l, c, front);
			return -EAGAIN;
		}
		net_count(c->st, NET_C_tcp_accept_queue_full);
	} else if (rc >= 0) {
		net_count(c->st, NET_C_tcp_passive_open);
		return 0;
	} else {
		net_count(c->st, NET_C_tcp_refused_by_app);
	}
	if (!c->dead && !c->app_gone) {
		c->app_gone = true;
		if (c->state != TCPS_CLOSED)
			tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
		tcp_conn_destroy(c);
	}
	return -ECONNREFUSED;
}

/* SYN-RECEIVED or SYN-SENT reached ESTABLISHED (RFC 9293 §3.10.7.3-4):
 * buffers, congestion state, and the application's turn (accept or
 * connected). The connection may be dead on return. */
void tcp_established(struct tcp_conn *c)
{
	struct tcp_listener *l = c->lst;

	/* A half-open connection (SYN queue or cookie) takes a slot of
	 * max_conns only now: a SYN flood's half-opens, bounded by
	 * syn_backlog, never lock the table. Full: the peer hears a RST. */
	if (c->passive && l && net_active_conns(c->st) >= c->st->tp.max_conns) {
		net_count(c->st, NET_C_tcp_conn_limit_rst);
		c->app_gone = true;
		tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
		tcp_conn_destroy(c);
		return;
	}
	tcp_conn_buffers(c);
	c->rcv_read = c->rcv_nxt;
	/* RFC 6298 §5.7: a SYN or SYN-ACK that had to be resent, and no RTT
	 * sample: data starts with an RTO of at least 3 s. */
	if (c->retransmits && c->srtt_us == 0 && c->rto_us < 3000000)
		c->rto_us = 3000000 < c->st->tp.rto_max_us ? 3000000 : c->st->tp.rto_max_us;
	tcp_set_state(c, TCPS_ESTABLISHED);
	tcp_cc_init(c);
	c->last_rx_us = c->st->now_us;
	if (c->passive) {
		if (l) {
			l->nsynq--;
			c->st->nhalf--;
			c->lst = NULL;
		}
		if (tcp_offer_at(l, c, false) < 0)
			return;
	} else {
		net_count(c->st, NET_C_tcp_active_open);
		if (c->ops && c->ops->connected)
			c->ops->connected(c, c->ctx);
	}
	if (!c->dead && c->keepalive)
		tcp_keep_reset(c);
}

/* Free the connections destroyed since the last call. Called when the
 * outermost entry point returns, so no frame still holds one. */
void net_reap(struct net_stack *st)
{
	struct tcp_conn *c;

	while ((c = st->graveyard)) {
		st->graveyard = c->gnext;
		tcp_free_sbuf(c);
		tcp_free_rbuf(c);
		free(c);
	}
}

/* TIME-WAIT: the application keeps its handle (it may still read) until
 * it closes it or 2 MSL end the connection (closed(0) then). */
void tcp_enter_timewait(struct tcp_conn *c)
{
	struct net_stack *st = c->st;

	tcp_set_state(c, TCPS_TIME_WAIT);
	tcp_buf_unlist(c); /* its links are the TIME_WAIT list's from here */
	timer_cancel(&c->tm[TCP_T_KEEP].t);
	timer_cancel(&c->tm[TCP_T_DELACK].t);
	c->rtx_mode = RTX_TIMEWAIT;
	tcp_arm(c, TCP_T_RTX, 2ull * st->tp.msl_us); /* RFC 9293 §3.10.7.4: 2 MSL */
	/* Out of max_conns, on the list (oldest first) that bounds how many
	 * are kept, as Linux's tcp_max_tw_buckets: beyond max_conns of them
	 * the oldest ends early. */
	if (!c->in_tw) {
		c->in_tw = true;
		c->tw_us = st->now_us;
		c->tw_prev = st->tw_tail;
		c->tw_next = NULL;
		if (st->tw_tail)
			st->tw_tail->tw_next = c;
		else
			st->tw_head = c;
		st->tw_tail = c;
		st->ntw++;
	}
	tcp_tw_trim(c);
	while (st->ntw > st->tp.max_conns && st->tw_head != c) {
		net_count(st, NET_C_tcp_tw_recycled);
		tcp_conn_destroy(st->tw_head);
	}
}
