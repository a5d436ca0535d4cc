/*
 * TCP output: segment construction (options of RFC 9293 §3.2, RFC 7323,
 * RFC 2018), the receive window we advertise, and the send loop that
 * decides what may go out now (send and congestion windows, Nagle and
 * sender SWS avoidance, the FIN, SACK-based recovery's NextSeg()).
 */
#include "net/net_int.h"

#define OPT_EOL 0
#define OPT_NOP 1
#define OPT_MSS 2
#define OPT_WS 3
#define OPT_SACK_PERM 4
#define OPT_SACK 5
#define OPT_TS 8

struct xmit {
	const struct tcp_tuple *t;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	const uint8_t *opt;
	uint32_t optlen;
	const struct tcp_conn *data; /* payload source (send buffer at seq), or NULL */
	uint32_t dlen;
};

/* Build the segment in the stack's scratch frame and route it. */
static void tcp_xmit(struct net_stack *st, const struct xmit *x)
{
	bool v4 = x->t->laddr.family == NET_AF4;
	uint32_t iph = v4 ? NET_IP4_HLEN : NET_IP6_HLEN;
	uint32_t thl = NET_TCP_HLEN + x->optlen, tlen = thl + x->dlen;
	uint8_t *ip = st->frame + NET_ETH_HLEN, *th = ip + iph;

	wr16(th, x->t->lport);
	wr16(th + 2, x->t->rport);
	wr32(th + 4, x->seq);
	wr32(th + 8, (x->flags & TH_ACK) ? x->ack : 0);
	th[12] = (uint8_t)((thl / 4) << 4);
	th[13] = x->flags;
	wr16(th + 14, x->wnd);
	wr16(th + 16, 0);
	wr16(th + 18, 0);
	if (x->optlen)
		memcpy(th + NET_TCP_HLEN, x->opt, x->optlen);
	if (x->dlen) {
		const struct tcp_conn *c = x->data;
		uint32_t pos = x->seq & (c->sbuf_mem - 1), first = c->sbuf_mem - pos;

		if (first > x->dlen)
			first = x->dlen;
		memcpy(th + thl, c->sbuf + pos, first);
		memcpy(th + thl + first, c->sbuf, x->dlen - first);
	}
	wr16(th + 16, csum_fold(csum_add(csum_pseudo(&x->t->laddr, &x->t->raddr, IPPROTO_TCP6, tlen), th, tlen)));
	if (v4)
		ip4_header(ip, &x->t->laddr, &x->t->raddr, IPPROTO_TCP6, tlen, true);
	else
		ip6_header(ip, &x->t->laddr, &x->t->raddr, IPPROTO_TCP6, tlen, 64);
	net_count(st, NET_C_tcp_segs_tx);
	if (x->flags & TH_RST)
		net_count(st, NET_C_tcp_rst_tx);
	net_l3_output(st, st->frame, NET_ETH_HLEN + iph + tlen, &x->t->raddr);
}

/* The MSS we announce: our MTU less the IP and TCP headers. */
static uint16_t our_mss(const struct net_stack *st, uint8_t family)
{
	return (uint16_t)(st->cfg.mtu - (family == NET_AF4 ? NET_IP4_HLEN : NET_IP6_HLEN) - NET_TCP_HLEN);
}

/* SYN options in the usual order: MSS, SACK-permitted + timestamps (or
 * NOP NOP SACK-permitted), NOP + window scale. Returns their length. */
static uint32_t syn_options(uint8_t *o, uint16_t mss, bool sack, bool ts, uint32_t tsval, uint32_t tsecr,
			    int ws)
{
	uint32_t n = 0;

	o[n++] = OPT_MSS;
	o[n++] = 4;
	wr16(o + n, mss);
	n += 2;
	if (ts) {
		if (sack) {
			o[n++] = OPT_SACK_PERM;
			o[n++] = 2;
		} else {
			o[n++] = OPT_NOP;
			o[n++] = OPT_NOP;
		}
		o[n++] = OPT_TS;
		o[n++] = 10;
		wr32(o + n, tsval);
		wr32(o + n + 4, tsecr);
		n += 8;
	} else if (sack) {
		o[n++] = OPT_NOP;
		o[n++] = OPT_NOP;
		o[n++] = OPT_SACK_PERM;
		o[n++] = 2;
	}
	if (ws >= 0) {
		o[n++] = OPT_NOP;
		o[n++] = OPT_WS;
		o[n++] = 3;
		o[n++] = (uint8_t)ws;
	}
	return n;
}

/* The window to advertise (RFC 9293 §3.8.6.2.2, RFC 7323 §2.3): free
 * receive buffer, less one scaling unit so that rounding up never promises
 * more than the buffer holds, never shrinking the right edge already
 * offered, and not moved for gains smaller than min(buffer/2, MSS)
 * (receiver SWS avoidance). Updates rcv_adv. Returns bytes (scaled). */
uint32_t tcp_rcv_wnd(struct tcp_conn *c)
{
	uint32_t unit = 1u << c->rcv_ws, used, freeb, w, old, gain;

	/* SYN-RECEIVED or SYN-SENT: the SYN's unscaled window. From
	 * ESTABLISHED on, the configured buffer's, allocated or not: memory
	 * comes with the bytes (tcp_buf.c). */
	if (!c->rbuf_size)
		return c->st->tp.rcvbuf < 65535 ? c->st->tp.rcvbuf : 65535;
	used = c->rcv_nxt - c->rcv_read;
	freeb = c->rbuf_size - used;
	w = freeb > unit ? (freeb - unit) & ~(unit - 1) : 0;
	if (w > (65535u << c->rcv_ws))
		w = (65535u << c->rcv_ws) & ~(unit - 1);
	old = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	gain = w > old ? w - old : 0;
	if (w < old || (gain < c->rbuf_size / 2 && gain < tcp_eff_mss(c) && w < c->rbuf_size / 2))
		w = (old + unit - 1) & ~(unit - 1);
	if (seq_gt(c->rcv_nxt + w, c->rcv_adv))
		c->rcv_adv = c->rcv_nxt + w;
	return w;
}

/* Send one segment of the connection: seq, len bytes from the send
 * buffer, flags (ACK always added outside SYN-SENT), with timestamps and
 * SACK blocks as negotiated. */
void tcp_send_segment(struct tcp_conn *c, uint32_t seq, uint32_t len, uint8_t flags)
{
	struct net_stack *st = c->st;
	uint8_t opt[40];
	uint32_t n = 0, w, hdr_room;
	struct xmit x = { .t = &c->t, .seq = seq, .ack = c->rcv_nxt, .flags = flags, .opt = opt,
			  .data = c, .dlen = len };

	if (c->state != TCPS_SYN_SENT || (flags & TH_RST))
		x.flags |= TH_ACK;
	if (c->state == TCPS_SYN_SENT && (flags & TH_RST))
		x.flags &= (uint8_t)~TH_ACK;
	if (c->ts_ok && !(flags & TH_RST)) {
		opt[n++] = OPT_NOP;
		opt[n++] = OPT_NOP;
		opt[n++] = OPT_TS;
		opt[n++] = 10;
		wr32(opt + n, tcp_ts_now(c));
		wr32(opt + n + 4, c->ts_recent);
		n += 8;
	}
	/* RFC 2018 §4: SACK blocks in ACKs while data is held out of order,
	 * as many as fit beside the payload in the path MTU. */
	hdr_room = (c->t.laddr.family == NET_AF4 ? NET_IP4_HLEN : NET_IP6_HLEN) + NET_TCP_HLEN + len;
	hdr_room = hdr_room < c->pmtu ? c->pmtu - hdr_room : 0; /* option bytes the path MTU leaves */
	if (c->sack_ok && c->nooo && !(flags & (TH_SYN | TH_RST))) {
		uint32_t k, nb = c->nooo, maxb = (40 - n - 2) / 8;

		if (hdr_room < n + 10)
			maxb = 0;
		else if ((hdr_room - n - 2) / 8 < maxb)
			maxb = (hdr_room - n - 2) / 8;
		if (nb > maxb)
			nb = maxb;
		if (nb) {
			opt[n++] = OPT_NOP;
			opt[n++] = OPT_NOP;
			opt[n++] = OPT_SACK;
			opt[n++] = (uint8_t)(2 + 8 * nb);
			for (k = 0; k < nb; k++) {
				wr32(opt + n, c->ooo[k].start);
				wr32(opt + n + 4, c->ooo[k].end);
				n += 8;
			}
		}
	}
	x.optlen = n;
	w = (flags & TH_RST) ? 0 : tcp_rcv_wnd(c);
	x.wnd = (uint16_t)((flags & TH_SYN) ? w : w >> c->rcv_ws);
	tcp_xmit(st, &x);
	if (x.flags & TH_ACK) {
		c->last_ack_sent = c->rcv_nxt;
		c->ack_now = false;
		c->delack_pending = false;
		c->segs_unacked = 0;
		timer_cancel(&c->tm[TCP_T_DELACK].t);
	}
}

/* SYN (active open) or SYN-ACK (passive or simultaneous open). */
void tcp_send_syn(struct tcp_conn *c, bool ack)
{
	struct net_stack *st = c->st;
	uint8_t opt[40];
	int ws = -1;
	bool sack, ts;
	struct xmit x = { .t = &c->t, .seq = c->iss, .ack = c->rcv_nxt, .opt = opt };

	if (ack) {               /* answer only what the peer offered (RFC 7323 §2.2, RFC 2018 §2) */
		sack = c->sack_ok;
		ts = c->ts_ok;
		if (c->ws_ok)
			ws = c->rcv_ws;
	} else {
		sack = !st->tp.no_sack;
		ts = !st->tp.no_timestamps;
		if (!st->tp.no_wscale)
			ws = c->rcv_ws;
	}
	x.optlen = syn_options(opt, our_mss(st, c->t.laddr.family), sack, ts, tcp_ts_now(c),
			       ack ? c->ts_recent : 0, ws);
	x.flags = TH_SYN | (ack ? TH_ACK : 0);
	x.wnd = (uint16_t)tcp_rcv_wnd(c);
	tcp_xmit(st, &x);
	if (ack)
		c->last_ack_sent = c->rcv_nxt;
}

/* A SYN-ACK with a cookie for ISN: nothing is kept (syncookie.c). */
void tcp_syncookie_synack(struct net_stack *st, const struct tcp_seg *s, uint32_t isn, uint16_t mss)
{
	uint8_t opt[40];
	uint32_t ws = 0, tsval;
	bool ts = s->o.ts_ok && !st->tp.no_timestamps;
	struct xmit x = { .t = &s->t, .seq = isn, .ack = s->seq + 1, .opt = opt, .flags = TH_SYN | TH_ACK };

	(void)mss;
	while (ws < 14 && (st->tp.rcvbuf >> ws) > 65535)
		ws++;
	tsval = syncookie_ts_encode((uint32_t)net_now_ms(st) + tcp_ts_offset(st, &s->t),
				    s->o.ws_ok && !st->tp.no_wscale ? s->o.ws : -1,
				    s->o.sack_ok && !st->tp.no_sack);
	x.optlen = syn_options(opt, our_mss(st, s->t.laddr.family), ts && s->o.sack_ok && !st->tp.no_sack, ts,
			       tsval, s->o.tsval, ts && s->o.ws_ok && !st->tp.no_wscale ? (int)ws : -1);
	x.wnd = (uint16_t)(st->tp.rcvbuf < 65535 ? st->tp.rcvbuf : 65535);
	tcp_xmit(st, &x);
}

/* RFC 9293 §3.10.7.1: the RST answering a segment that has no connection:
 * <SEQ=SEG.ACK><CTL=RST> if it had an ACK, else
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. Never for a RST. */
void tcp_send_rst_for(struct net_stack *st, const struct tcp_seg *s)
{
	struct xmit x = { .t = &s->t };

	if (s->flags & TH_RST)
		return;
	if (s->flags & TH_ACK) {
		x.seq = s->ack;
		x.flags = TH_RST;
	} else {
		x.seq = 0;
		x.ack = s->seq + s->len + ((s->flags & TH_SYN) ? 1 : 0) + ((s->flags & TH_FIN) ? 1 : 0);
		x.flags = TH_RST | TH_ACK;
	}
	tcp_xmit(st, &x);
}

/* A pure ACK at SND.NXT. */
void tcp_send_ack(struct tcp_conn *c)
{
	tcp_send_segment(c, c->snd_nxt, 0, 0);
}

/* RFC 5961 §7: challenge ACKs are rate-limited. A fixed stack-wide count
 * per second is a side channel (CVE-2016-5696: an off-path prober counts
 * how many of the budget a connection's challenge used, and learns the
 * 4-tuple and the sequence numbers), so, as Linux since 4.7:
 *   - each second's budget is drawn afresh in [limit/2, limit*3/2) from
 *     the stack's keyed PRF (the secret is the caller's randomness);
 *   - one connection gets at most one challenge ACK per
 *     challenge_ack_conn_us (Linux's tcp_invalid_ratelimit, 500 ms), so
 *     it cannot spend the budget alone. */
void tcp_send_challenge_ack(struct tcp_conn *c)
{
	struct net_stack *st = c->st;
	uint64_t sec = st->now_us / 1000000;

	if (c->chack_us && st->now_us + 1 - c->chack_us < st->tp.challenge_ack_conn_us) {
		net_count(st, NET_C_tcp_challenge_ack_conn_limited);
		return;
	}
	if (sec != st->chack_second) {
		uint32_t limit = st->tp.challenge_ack_limit, half = (limit + 1) / 2;
		uint8_t k[13] = { 'c', 'h', 'a', 'c', 'k' };

		memcpy(k + 5, &sec, 8);
		st->chack_second = sec;
		st->chack_budget = half + (uint32_t)(siphash24(st->cfg.secret, k, sizeof(k)) % limit);
	}
	if (st->chack_budget == 0) {
		net_count(st, NET_C_tcp_challenge_ack_limited);
		return;
	}
	st->chack_budget--;
	c->chack_us = st->now_us + 1;
	net_count(st, NET_C_tcp_challenge_ack);
	tcp_send_ack(c);
}

/* Start the RTT clock on a new (never retransmitted) segment when
 * timestamps do not time every ACK (Karn's algorithm, RFC 6298 §3). */
static void rtt_time(struct tcp_conn *c, uint32_t end)
{
	if (!c->ts_ok && !c->rtt_timing) {
		c->rtt_timing = true;
		c->rtt_seq = end;
		c->rtt_start_us = c->st->now_us;
	}
}

/* Send a retransmission of [seq, seq+len), with the FIN if asked, counted. */
static void retransmit(struct tcp_conn *c, uint32_t seq, uint32_t len, bool fin)
{
	tcp_send_segment(c, seq, len, (uint8_t)(fin ? TH_FIN : 0) | (len ? TH_PSH : 0));
	c->retransmits++;
	net_count(c->st, NET_C_tcp_retrans_segs);
	net_count_n(c->st, NET_C_tcp_retrans_bytes, len);
}

/* RFC 6675 §5 steps (C): while cwnd - pipe >= 1 SMSS, send what
 * NextSeg() names. Returns true if anything went out. */
static bool sack_recovery_send(struct tcp_conn *c)
{
	uint32_t mss = tcp_eff_mss(c), seq, len;
	bool sent = false;
	int guard = 64;

	while (guard-- > 0 && c->cwnd >= tcp_sb_pipe(c) + mss) {
		if (!tcp_sb_next_seg(c, &seq, &len))
			break;
		if (seq == c->snd_max) { /* rule 2: new data */
			bool fin = c->fin_queued && seq + len == c->snd_qend;

			tcp_send_segment(c, seq, len, (uint8_t)(fin ? TH_FIN : 0) | TH_PSH);
			c->snd_nxt = c->snd_max = seq + len + (fin ? 1 : 0);
		} else {
			/* the FIN rides along only if it was sent before */
			retransmit(c, seq, len, c->fin_queued && seq + len == c->snd_qend &&
				   seq_gt(c->snd_max, c->snd_qend));
			c->high_rxt = seq + len;
		}
		sent = true;
		if (!timer_armed(&c->tm[TCP_T_RTX].t) || c->rtx_mode != RTX_RETRANSMIT)
			tcp_rtx_start(c);
	}
	return sent;
}

/* Going back after an RTO, the scoreboard was emptied (RFC 2018 §8) but
 * refills from the ACKs that follow; RFC 6675 §5.1: a sender SHOULD use
 * that SACK information during the recovery after an RTO. So SND.NXT
 * skips over what has been SACKed since ... */
static void skip_sacked(struct tcp_conn *c)
{
	unsigned i;

	for (i = 0; i < c->nsack; i++)
		if (seq_leq(c->sack[i].start, c->snd_nxt) && seq_lt(c->snd_nxt, c->sack[i].end))
			c->snd_nxt = seq_min(c->sack[i].end, c->snd_max);
}

/* ... and a resent segment stops where the next SACKed range starts. */
static uint32_t sacked_limit(const struct tcp_conn *c, uint32_t len)
{
	unsigned i;

	for (i = 0; i < c->nsack; i++)
		if (seq_gt(c->sack[i].start, c->snd_nxt) && seq_lt(c->sack[i].start, c->snd_nxt + len))
			len = c->sack[i].start - c->snd_nxt;
	return len;
}

/* Send what the windows allow, then a pure ACK if one is owed. */
void tcp_output(struct tcp_conn *c)
{
	uint32_t mss, win, flight, avail, usable, len, lt;
	bool sent = false;

	if (c->dead)
		return;
	/* RFC 1191 §6.3, RFC 8201 §4: a PMTU learnt from ICMP is an estimate
	 * that may go stale (a route changes back); after pmtu_age_us the
	 * link's MTU is tried again, and a router's ICMP lowers it anew. */
	if (c->pmtu < c->st->cfg.mtu && c->st->now_us - c->pmtu_us >= c->st->tp.pmtu_age_us) {
		c->pmtu = (uint16_t)c->st->cfg.mtu;
		net_count(c->st, NET_C_tcp_pmtu_raised);
	}
	switch (c->state) {
	case TCPS_ESTABLISHED: case TCPS_CLOSE_WAIT: case TCPS_FIN_WAIT_1: case TCPS_LAST_ACK: case TCPS_CLOSING:
		break;
	default:
		if (c->ack_now && c->state != TCPS_SYN_SENT && c->state != TCPS_CLOSED &&
		    c->state != TCPS_SYN_RECEIVED)
			tcp_send_ack(c);
		return;
	}
	mss = tcp_eff_mss(c);
	if (c->in_recovery && c->sack_ok)
		sent = sack_recovery_send(c);
	else for (;;) {
		bool fin;

		/* RFC 3042 §2 limited transmit: the first two duplicate ACKs
		 * each let one new segment out beyond cwnd */
		lt = !c->in_recovery && c->dupacks > 0 && c->dupacks < 3 ? c->dupacks * mss : 0;
		win = c->snd_wnd < c->cwnd + lt ? c->snd_wnd : c->cwnd + lt;
		if (seq_lt(c->snd_nxt, c->snd_max) && c->nsack)
			skip_sacked(c);
		flight = c->snd_nxt - c->snd_una;
		avail = seq_lt(c->snd_nxt, c->snd_qend) ? c->snd_qend - c->snd_nxt : 0;
		usable = win > flight ? win - flight : 0;
		len = avail < usable ? avail : usable;
		if (len > mss)
			len = mss;
		if (seq_lt(c->snd_nxt, c->snd_max) && c->nsack)
			len = sacked_limit(c, len);
		fin = c->fin_queued && c->snd_nxt + len == c->snd_qend && seq_leq(c->snd_nxt, c->snd_qend);
		if (len == 0 && !fin)
			break;
		if (len && len < mss && len < avail && len < c->max_snd_wnd / 2)
			break; /* sender SWS avoidance, RFC 9293 §3.8.6.2.1 */
		if (len && len < mss && len == avail && !fin && !c->nodelay && c->snd_nxt != c->snd_una)
			break; /* Nagle, RFC 9293 §3.7.4 */
		if (seq_lt(c->snd_nxt, c->snd_max))
			retransmit(c, c->snd_nxt, len, fin); /* go-back-N after an RTO */
		else
			tcp_send_segment(c, c->snd_nxt, len, (uint8_t)((fin ? TH_FIN : 0) | (len ? TH_PSH : 0)));
		if (seq_geq(c->snd_nxt, c->snd_max) && len)
			rtt_time(c, c->snd_nxt + len);
		c->snd_nxt += len + (fin ? 1 : 0);
		if (seq_gt(c->snd_nxt, c->snd_max))
			c->snd_max = c->snd_nxt;
		sent = true;
		if (!timer_armed(&c->tm[TCP_T_RTX].t) || c->rtx_mode != RTX_RETRANSMIT)
			tcp_rtx_start(c); /* RFC 6298 §5.1 */
		if (fin)
			break;
	}
	if (!sent && (c->ack_now))
		tcp_send_ack(c);
	/* Data waiting, nothing in flight and nothing sendable (a zero or a
	 * silly window): the persist timer probes (RFC 9293 §3.8.6.1). */
	avail = seq_lt(c->snd_nxt, c->snd_qend) ? c->snd_qend - c->snd_nxt : 0;
	if (!sent && c->snd_una == c->snd_max && avail && c->rtx_mode != RTX_PERSIST) {
		c->rtx_mode = RTX_PERSIST;
		tcp_arm(c, TCP_T_RTX, c->rto_us);
	}
}
