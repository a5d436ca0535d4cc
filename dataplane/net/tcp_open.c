/*
 * Opening handshakes: a listener's SYNs (RFC 9293 §3.10.7.2), SYN cookies
 * when its SYN queue is full (RFC 4987 §3.6), the final ACK of a cookie,
 * and the SYN-SENT state of an active open (§3.10.7.3) including
 * simultaneous open.
 */
#include <errno.h>

#include "net/net_int.h"

#define COOKIE_WINDOW_US (3ull * 64 * 1000000) /* cookie ACKs looked at after the last cookie sent */

/* The shift that fits our receive buffer in 16 bits (RFC 7323 §2.2). */
uint8_t tcp_our_wscale(const struct net_stack *st)
{
	uint8_t ws = 0;

	while (ws < 14 && (st->tp.rcvbuf >> ws) > 65535)
		ws++;
	return ws;
}

/* Agree on the options of RFC 7323 and RFC 2018: each is on only when we
 * offered it and the peer's SYN carries it. */
static void negotiate(struct tcp_conn *c, const struct tcp_opts *o)
{
	const struct tcp_params *tp = &c->st->tp;

	if (o->mss_ok && o->mss)
		c->peer_mss = o->mss;
	c->ws_ok = o->ws_ok && !tp->no_wscale;
	if (c->ws_ok) {
		c->snd_ws = o->ws > 14 ? 14 : o->ws; /* RFC 7323 §2.3: at most 14 */
		c->rcv_ws = tcp_our_wscale(c->st);
	} else {
		c->snd_ws = c->rcv_ws = 0;
	}
	c->ts_ok = o->ts_ok && !tp->no_timestamps;
	if (c->ts_ok)
		c->ts_recent = o->tsval;
	c->sack_ok = o->sack_ok && !tp->no_sack;
}

/* Fields common to a new passive connection from a SYN (or a cookie). */
static void passive_init(struct tcp_conn *c, struct tcp_listener *l, uint32_t irs, uint32_t iss)
{
	c->passive = true;
	c->lst = l;
	l->nsynq++;
	c->st->nhalf++;
	c->irs = irs;
	c->rcv_nxt = c->rcv_read = irs + 1;
	c->rcv_adv = c->rcv_nxt + tcp_rcv_wnd(c);
	c->iss = iss;
	c->snd_una = iss;
	c->snd_nxt = c->snd_max = c->snd_qend = iss + 1;
	c->recover = iss;
	c->rtt_start_us = c->st->now_us;
}

/* max_conns connections are open: the peer hears so at once (a RST)
 * instead of retrying a SYN into silence, and a connection flood costs no
 * more than the answer. TIME_WAIT does not count (it is recycled). */
static void table_full(struct net_stack *st, const struct tcp_seg *s)
{
	net_count(st, NET_C_tcp_conn_limit_rst);
	tcp_send_rst_for(st, s);
}

/* The final ACK of a cookie handshake: rebuild the connection from it. */
static void cookie_ack(struct net_stack *st, struct tcp_listener *l, const struct tcp_seg *s)
{
	struct tcp_opts o = { .mss_ok = true };
	struct tcp_conn *c;
	int ws;
	bool sack;

	if (!l->cookie_us || st->now_us - l->cookie_us > COOKIE_WINDOW_US) {
		net_count(st, NET_C_drop_tcp_listen_ack);
		tcp_send_rst_for(st, s);
		return;
	}
	if (syncookie_check(st, &s->t, s->seq - 1, s->ack - 1, &o.mss) < 0) {
		net_count(st, NET_C_tcp_syncookie_bad);
		tcp_send_rst_for(st, s);
		return;
	}
	if (net_active_conns(st) >= st->tp.max_conns) {
		table_full(st, s);
		return;
	}
	c = tcp_conn_new(st, &s->t);
	if (!c) {
		net_count(st, NET_C_drop_tcp_conn_nomem);
		return;
	}
	if (s->o.ts_ok && !st->tp.no_timestamps) {
		syncookie_ts_decode(s->o.tsecr, &ws, &sack);
		o.ts_ok = true;
		o.tsval = s->o.tsval;
		o.ws_ok = ws >= 0;
		o.ws = (uint8_t)(ws < 0 ? 0 : ws);
		o.sack_ok = sack;
	}
	negotiate(c, &o);
	c->cookie = true;
	passive_init(c, l, s->seq - 1, s->ack - 1);
	c->snd_una = s->ack;
	c->snd_wnd = c->max_snd_wnd = (uint32_t)s->wnd << c->snd_ws;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	tcp_set_state(c, TCPS_SYN_RECEIVED);
	net_count(st, NET_C_tcp_syncookie_ok);
	tcp_established(c);
	if (c->dead)
		return;
	if (s->len || (s->flags & TH_FIN)) /* the rest of the segment, as any other */
		tcp_input_conn(c, s);
}

/* A segment for a listener (RFC 9293 §3.10.7.2). */
void tcp_listen_input(struct net_stack *st, struct tcp_listener *l, const struct tcp_seg *s)
{
	struct tcp_conn *c;
	bool cookie;

	if (s->flags & TH_RST) {
		net_count(st, NET_C_drop_tcp_no_conn);
		return;
	}
	if (s->flags & TH_ACK) {
		if ((s->flags & TH_SYN) || st->tp.syncookies == 2) {
			net_count(st, NET_C_drop_tcp_listen_ack);
			tcp_send_rst_for(st, s);
			return;
		}
		cookie_ack(st, l, s);
		return;
	}
	if (!(s->flags & TH_SYN)) {
		net_count(st, NET_C_drop_tcp_no_conn);
		return;
	}
	if (net_active_conns(st) >= st->tp.max_conns) {
		table_full(st, s);
		return;
	}
	cookie = st->tp.syncookies == 1 || (st->tp.syncookies == 0 && l->nsynq >= st->tp.syn_backlog);
	if (!cookie && l->nsynq >= st->tp.syn_backlog) {
		/* cookies off: the SYN queue bounds half-open connections */
		net_count(st, NET_C_drop_tcp_syn_backlog);
		return;
	}
	if (cookie) {
		uint16_t mss;
		uint32_t isn = syncookie_make(st, &s->t, s->seq, s->o.mss_ok ? s->o.mss : 536, &mss);

		if (st->tp.syncookies == 0)
			net_count(st, NET_C_tcp_syn_queue_full);
		net_count(st, NET_C_tcp_syncookie_tx);
		l->cookie_us = st->now_us ? st->now_us : 1;
		tcp_syncookie_synack(st, s, isn, mss);
		return;
	}
	c = tcp_conn_new(st, &s->t);
	if (!c) {
		net_count(st, NET_C_drop_tcp_conn_nomem);
		return;
	}
	negotiate(c, &s->o);
	passive_init(c, l, s->seq, tcp_isn(st, &s->t));
	c->snd_wnd = c->max_snd_wnd = s->wnd; /* RFC 7323 §2.2: a SYN's window is not scaled */
	c->snd_wl1 = s->seq;
	tcp_set_state(c, TCPS_SYN_RECEIVED);
	if (s->len)
		net_count(st, NET_C_drop_tcp_syn_data);
	tcp_send_syn(c, true);
	tcp_rtx_start(c);
}

/* RTT of the handshake: from timestamps, or from the clock if the SYN
 * was sent once (Karn). */
static void handshake_rtt(struct tcp_conn *c, const struct tcp_seg *s)
{
	if (c->ts_ok && s->o.ts_ok && s->o.tsecr && tcp_ts_now(c) - s->o.tsecr < 600000u)
		tcp_rtt_sample(c, (tcp_ts_now(c) - s->o.tsecr) * 1000u);
	else if (c->retransmits == 0)
		tcp_rtt_sample(c, (uint32_t)(c->st->now_us - c->rtt_start_us));
}

/* SYN-RECEIVED: the ACK of our SYN-ACK (RFC 9293 §3.10.7.4 fifth, first
 * bullet). Returns 0 if the connection is now ESTABLISHED, -1 if the
 * segment was answered with a RST or the connection ended. */
int tcp_synrcvd_ack(struct tcp_conn *c, const struct tcp_seg *s)
{
	if (!seq_gt(s->ack, c->snd_una) || seq_gt(s->ack, c->snd_max)) {
		net_count(c->st, NET_C_drop_tcp_bad_ack);
		tcp_send_rst_for(c->st, s);
		return -1;
	}
	handshake_rtt(c, s);
	c->hs_rtt_us = (uint32_t)(c->st->now_us - c->rtt_start_us);
	if (!c->hs_rtt_us)
		c->hs_rtt_us = 1;
	c->snd_una = s->ack;
	c->snd_wnd = (uint32_t)s->wnd << c->snd_ws;
	c->max_snd_wnd = c->snd_wnd > c->max_snd_wnd ? c->snd_wnd : c->max_snd_wnd;
	c->snd_wl1 = s->seq;
	c->snd_wl2 = s->ack;
	tcp_disarm(c, TCP_T_RTX);
	tcp_established(c);
	return c->dead ? -1 : 0;
}

/* SYN-SENT (RFC 9293 §3.10.7.3). */
void tcp_syn_sent_input(struct tcp_conn *c, const struct tcp_seg *s)
{
	struct net_stack *st = c->st;

	if ((s->flags & TH_ACK) && (seq_leq(s->ack, c->iss) || seq_gt(s->ack, c->snd_max))) {
		net_count(st, NET_C_drop_tcp_syn_sent);
		tcp_send_rst_for(st, s);
		return;
	}
	if (s->flags & TH_RST) {
		/* RFC 5961 §3.2: a RST in SYN-SENT counts only with an
		 * acceptable ACK (checked above) */
		if (s->flags & TH_ACK)
			tcp_conn_fail(c, -ECONNREFUSED);
		else
			net_count(st, NET_C_drop_tcp_syn_sent);
		return;
	}
	if (!(s->flags & TH_SYN)) {
		net_count(st, NET_C_drop_tcp_syn_sent);
		return;
	}
	negotiate(c, &s->o);
	c->irs = s->seq;
	c->rcv_nxt = c->rcv_read = s->seq + 1;
	c->rcv_adv = c->rcv_nxt + tcp_rcv_wnd(c);
	c->snd_wnd = c->max_snd_wnd = s->wnd; /* unscaled in a SYN (RFC 7323 §2.2) */
	c->snd_wl1 = s->seq;
	if (s->len)
		net_count(st, NET_C_drop_tcp_syn_data);
	if (!(s->flags & TH_ACK)) {
		/* simultaneous open: SYN-RECEIVED, SYN-ACK with our ISS */
		tcp_set_state(c, TCPS_SYN_RECEIVED);
		tcp_send_syn(c, true);
		tcp_rtx_start(c);
		return;
	}
	handshake_rtt(c, s);
	c->snd_una = s->ack;
	c->snd_wl2 = s->ack;
	tcp_disarm(c, TCP_T_RTX);
	tcp_established(c);
	if (c->dead)
		return;
	c->ack_now = true;
	tcp_output(c);
}
