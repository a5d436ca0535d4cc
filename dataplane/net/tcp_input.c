/*
 * TCP input: segment checks and option parsing (RFC 9293 §3.1-3.2), the
 * dispatch to a connection or a listener, and "SEGMENT ARRIVES" for the
 * synchronized states (RFC 9293 §3.10.7.4) with the RFC 5961 checks on
 * RST, SYN and ACK, PAWS (RFC 7323 §5), reassembly and the FIN.
 */
#include <errno.h>

#include "net/net_int.h"

/* Parse the options (RFC 9293 §3.2). Returns 0, or -1 when an option's
 * length is impossible (zero, past the header, or wrong for its kind). */
static int parse_options(const uint8_t *o, uint32_t n, struct tcp_opts *t)
{
	uint32_t i = 0;

	while (i < n) {
		uint8_t kind = o[i], len;

		if (kind == 0)
			break;
		if (kind == 1) {
			i++;
			continue;
		}
		if (i + 1 >= n)
			return -1;
		len = o[i + 1];
		if (len < 2 || len > n - i)
			return -1;
		switch (kind) {
		case 2: /* MSS */
			if (len != 4)
				return -1;
			t->mss_ok = true;
			t->mss = rd16(o + i + 2);
			break;
		case 3: /* window scale */
			if (len != 3)
				return -1;
			t->ws_ok = true;
			t->ws = o[i + 2];
			break;
		case 4: /* SACK permitted */
			if (len != 2)
				return -1;
			t->sack_ok = true;
			break;
		case 5: { /* SACK: 1 to 4 blocks (RFC 2018 §3) */
			uint32_t k, nb = (uint32_t)(len - 2) / 8;

			if ((len - 2) % 8 || nb == 0 || nb > 4)
				return -1;
			for (k = 0; k < nb; k++) {
				t->sack[k].start = rd32(o + i + 2 + 8 * k);
				t->sack[k].end = rd32(o + i + 6 + 8 * k);
			}
			t->nsack = (uint8_t)nb;
			break;
		}
		case 8: /* timestamps */
			if (len != 10)
				return -1;
			t->ts_ok = true;
			t->tsval = rd32(o + i + 2);
			t->tsecr = rd32(o + i + 6);
			break;
		default: /* unknown options are skipped (RFC 9293 §3.2 MUST-6) */
			break;
		}
		i += len;
	}
	return 0;
}

/* Check a segment and fill s. Returns 0, or -1 after counting the reason
 * it is dropped. */
int tcp_parse(struct net_stack *st, const struct net_addr *src, const struct net_addr *dst,
	      const uint8_t *p, uint32_t len, struct tcp_seg *s)
{
	uint32_t doff;
	uint8_t f;

	memset(s, 0, sizeof(*s));
	if (len < NET_TCP_HLEN) {
		net_count(st, NET_C_drop_tcp_short);
		return -1;
	}
	doff = (uint32_t)(p[12] >> 4) * 4;
	if (doff < NET_TCP_HLEN || doff > len) {
		net_count(st, NET_C_drop_tcp_hlen);
		return -1;
	}
	if (csum_fold(csum_add(csum_pseudo(src, dst, IPPROTO_TCP6, len), p, len)) != 0) {
		net_count(st, NET_C_drop_tcp_csum);
		return -1;
	}
	f = p[13] & 0x3f;
	/* SYN+FIN and SYN+RST have no meaning; a segment with none of SYN,
	 * RST, ACK is dropped in every state (RFC 9293 §3.10.7). */
	if (((f & TH_SYN) && (f & (TH_FIN | TH_RST))) || !(f & (TH_SYN | TH_RST | TH_ACK))) {
		net_count(st, NET_C_drop_tcp_flags);
		return -1;
	}
	s->t.rport = rd16(p);
	s->t.lport = rd16(p + 2);
	if (!s->t.rport || !s->t.lport) {
		net_count(st, NET_C_drop_tcp_port0);
		return -1;
	}
	if (parse_options(p + NET_TCP_HLEN, doff - NET_TCP_HLEN, &s->o) < 0) {
		net_count(st, NET_C_drop_tcp_opt);
		return -1;
	}
	s->hdr = p;
	s->data = p + doff;
	s->len = len - doff;
	s->seq = rd32(p + 4);
	s->ack = rd32(p + 8);
	s->flags = f;
	s->wnd = rd16(p + 14);
	s->t.laddr = *dst;
	s->t.raddr = *src;
	return 0;
}

/* RFC 9293 §3.10.7.4 first check: is any of the segment in the window we
 * offered? With a zero window, only a segment at RCV.NXT is looked at (for
 * its ACK and RST: the "special allowance"); its bytes are then trimmed. */
static bool seq_acceptable(const struct tcp_conn *c, uint32_t seq, uint32_t seglen)
{
	uint32_t wnd = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
	bool first_in = seq_geq(seq, c->rcv_nxt) && seq_lt(seq, c->rcv_nxt + wnd);

	if (wnd == 0)
		return seq == c->rcv_nxt;
	/* A segment without data may sit on the right edge itself: a peer
	 * that filled the window we offered (the data we then had no room
	 * for was dropped) sends its ACKs from there, and refusing them would
	 * freeze our sending while our buffer waits on it (RFC 9293's test is
	 * "< RCV.NXT+RCV.WND"; Linux's tcp_sequence() takes the edge too). */
	if (seglen == 0)
		return first_in || seq == c->rcv_nxt + wnd;
	return first_in || (seq_geq(seq + seglen - 1, c->rcv_nxt) && seq_lt(seq + seglen - 1, c->rcv_nxt + wnd));
}

/* Take the peer's FIN at fin_seq if everything before it is in. */
static bool take_fin(struct tcp_conn *c, uint32_t fin_seq)
{
	if (c->fin_rcvd || fin_seq != c->rcv_nxt) {
		if (!c->fin_rcvd && seq_gt(fin_seq, c->rcv_nxt)) {
			c->ooo_fin = true;
			c->ooo_fin_seq = fin_seq;
		}
		c->ack_now = true;
		return false;
	}
	c->rcv_nxt++;
	c->fin_rcvd = true;
	c->ooo_fin = false;
	c->ack_now = true;
	switch (c->state) {
	case TCPS_SYN_RECEIVED:
	case TCPS_ESTABLISHED:
		tcp_set_state(c, TCPS_CLOSE_WAIT);
		break;
	case TCPS_FIN_WAIT_1:
		tcp_set_state(c, TCPS_CLOSING); /* simultaneous close */
		break;
	case TCPS_FIN_WAIT_2:
		tcp_send_ack(c);
		tcp_enter_timewait(c);
		break;
	}
	return true;
}

/* The segment's text (RFC 9293 §3.10.7.4 seventh): in order, it goes to
 * the buffer and RCV.NXT; beyond a hole, to its place in the buffer and
 * the out-of-order list. Returns true if RCV.NXT moved. */
static bool take_data(struct tcp_conn *c, uint32_t seq, const uint8_t *data, uint32_t len)
{
	struct net_stack *st = c->st;
	uint32_t limit = c->rcv_read + c->rbuf_size, pos, first;
	bool had_ooo = c->nooo > 0;

	if (seq_lt(seq, c->rcv_nxt)) {
		uint32_t skip = c->rcv_nxt - seq;

		if (skip >= len) {
			net_count(st, NET_C_tcp_dup_data);
			c->ack_now = true;
			return false;
		}
		seq += skip;
		data += skip;
		len -= skip;
	}
	if (seq_geq(seq, limit)) {
		net_count(st, NET_C_drop_tcp_rcvbuf);
		c->ack_now = true;
		return false;
	}
	if (seq_gt(seq + len, limit)) {
		net_count(st, NET_C_drop_tcp_rcvbuf);
		len = limit - seq;
	}
	if (seq != c->rcv_nxt && c->nooo >= TCP_OOO_MAX) {
		unsigned i;
		bool merges = false;

		for (i = 0; i < c->nooo; i++)
			if (seq_leq(c->ooo[i].start, seq + len) && seq_leq(seq, c->ooo[i].end))
				merges = true;
		if (!merges) {
			net_count(st, NET_C_drop_tcp_ooo_full);
			c->ack_now = true;
			return false;
		}
	}
	/* We offered the window; the memory comes now. Without it the
	 * segment goes as if it had been lost: the peer sends it again. */
	if (tcp_rbuf_reserve(c, seq + len - c->rcv_read) < 0) {
		net_count(st, NET_C_drop_tcp_buf_nomem);
		c->ack_now = true;
		return false;
	}
	pos = seq & (c->rbuf_mem - 1);
	first = c->rbuf_mem - pos;
	if (first > len)
		first = len;
	memcpy(c->rbuf + pos, data, first);
	memcpy(c->rbuf, data + first, len - first);
	if (seq != c->rcv_nxt) {
		/* RFC 5681 §4.2: an out-of-order segment is ACKed at once */
		net_count(st, NET_C_tcp_ooo_segs);
		tcp_ooo_add(c, seq, seq + len);
		c->ack_now = true;
		return false;
	}
	c->rcv_nxt += len;
	tcp_ooo_take(c);
	c->bytes_rcvd_total += len;
	if (had_ooo) {
		c->ack_now = true; /* RFC 5681 §4.2: a segment that fills a hole */
	} else if (++c->segs_unacked >= 2) {
		c->ack_now = true; /* RFC 9293 §3.8.6.3: every second full segment */
	} else {
		c->delack_pending = true;
	}
	return true;
}

/* ACK processing for the synchronized states (RFC 9293 §3.10.7.4 fifth,
 * RFC 5961 §5.2). Returns -1 if the segment is to be dropped. Sets
 * *writable when send space came back for a short tcp_send. */
static int take_ack(struct tcp_conn *c, const struct tcp_seg *s, bool *writable)
{
	uint32_t ack = s->ack, acked, old_wnd = c->snd_wnd;
	bool fin_acked;

	if (seq_gt(ack, c->snd_max) || seq_lt(ack, c->snd_una - c->max_snd_wnd)) {
		net_count(c->st, NET_C_drop_tcp_bad_ack);
		tcp_send_challenge_ack(c);
		return -1;
	}
	if (seq_lt(ack, c->snd_una))
		return 0; /* old duplicate: the rest of the segment still counts */
	if (seq_lt(c->snd_wl1, s->seq) || (c->snd_wl1 == s->seq && seq_leq(c->snd_wl2, ack))) {
		c->snd_wnd = (uint32_t)s->wnd << c->snd_ws;
		c->snd_wl1 = s->seq;
		c->snd_wl2 = ack;
		if (c->snd_wnd > c->max_snd_wnd)
			c->max_snd_wnd = c->snd_wnd;
	}
	acked = ack - c->snd_una;
	if (acked == 0) {
		/* RFC 5681 §2: a duplicate ACK leaves the window alone; RFC
		 * 6675 §2: under SACK, one that SACKs new bytes is one too,
		 * whatever its window (Linux receivers grow theirs in the
		 * very ACKs that report a hole). */
		bool sacked = c->sack_ok && s->o.nsack && tcp_sb_update(c, s);
		bool dup = s->len == 0 && !(s->flags & (TH_SYN | TH_FIN)) &&
			   (c->snd_wnd == old_wnd || sacked) &&
			   c->snd_una != c->snd_max && c->snd_nxt != c->snd_una;

		if (dup) {
			net_count(c->st, NET_C_tcp_dupack_rx);
			tcp_ack_recovery(c, s, 0, true);
		}
		return 0;
	}
	/* RTT: RFC 7323 §4.1 from TSecr, else the timed segment (Karn) */
	if (c->ts_ok && s->o.ts_ok && s->o.tsecr && tcp_ts_now(c) - s->o.tsecr < 600000u)
		tcp_rtt_sample(c, (tcp_ts_now(c) - s->o.tsecr) * 1000u);
	else if (c->rtt_timing && seq_geq(ack, c->rtt_seq)) {
		c->rtt_timing = false;
		tcp_rtt_sample(c, (uint32_t)(c->st->now_us - c->rtt_start_us));
	}
	fin_acked = c->fin_queued && seq_gt(ack, c->snd_qend);
	c->bytes_acked_total += acked - (fin_acked ? 1 : 0);
	c->snd_una = ack;
	if (seq_lt(c->snd_nxt, c->snd_una))
		c->snd_nxt = c->snd_una;
	c->keep_probes = 0;
	if (c->sack_ok)
		tcp_sb_update(c, s);
	tcp_ack_recovery(c, s, acked, false);
	tcp_rtx_restart(c);
	tcp_buf_check(c);
	if (c->want_writable && !c->fin_queued && tcp_send_space(c) > 0) {
		c->want_writable = false;
		*writable = true;
	}
	return 0;
}

/* A segment for a connection in SYN-RECEIVED or a synchronized state. */
void tcp_input_conn(struct tcp_conn *c, const struct tcp_seg *seg)
{
	struct net_stack *st = c->st;
	struct tcp_seg s = *seg;
	uint32_t seglen;
	bool moved = false, writable = false, fin_was = c->fin_rcvd;

	c->last_rx_us = st->now_us;
	if (c->keepalive && c->state != TCPS_SYN_RECEIVED)
		tcp_keep_reset(c);
	if (c->state == TCPS_SYN_RECEIVED && (s.flags & TH_SYN) && s.seq == c->irs) {
		if (!(s.flags & TH_ACK)) { /* our SYN-ACK was lost: again */
			tcp_send_syn(c, true);
			return;
		}
		s.flags &= (uint8_t)~TH_SYN; /* simultaneous open: keep the ACK */
		s.seq++;
	}
	seglen = s.len + ((s.flags & TH_SYN) ? 1 : 0) + ((s.flags & TH_FIN) ? 1 : 0);
	/* PAWS, RFC 7323 §5.3 R1 (RSTs are exempt) */
	if (c->ts_ok && s.o.ts_ok && !(s.flags & TH_RST) && seq_lt(s.o.tsval, c->ts_recent)) {
		net_count(st, NET_C_drop_tcp_paws);
		tcp_send_ack(c);
		return;
	}
	/* RST: RFC 5961 §3.2 */
	if (s.flags & TH_RST) {
		uint32_t wnd = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 1;

		if (s.seq == c->rcv_nxt) {
			net_count(st, NET_C_tcp_rst_rx);
			if (c->state == TCPS_SYN_RECEIVED && c->passive)
				tcp_conn_destroy(c);  /* back to LISTEN: nobody to tell */
			else if (c->state == TCPS_SYN_RECEIVED)
				tcp_conn_fail(c, -ECONNREFUSED);
			else if (c->state == TCPS_TIME_WAIT)
				tcp_conn_destroy(c);
			else
				tcp_conn_fail(c, -ECONNRESET);
		} else if (seq_geq(s.seq, c->rcv_nxt) && seq_lt(s.seq, c->rcv_nxt + wnd)) {
			tcp_send_challenge_ack(c);
		} else {
			net_count(st, NET_C_drop_tcp_seq);
		}
		return;
	}
	/* SYN in a synchronized state, whatever its sequence (RFC 5961 §4.2,
	 * before the window check) */
	if (s.flags & TH_SYN) {
		tcp_send_challenge_ack(c);
		return;
	}
	if (!seq_acceptable(c, s.seq, seglen)) {
		net_count(st, NET_C_drop_tcp_seq);
		tcp_send_ack(c);
		/* a retransmitted FIN in TIME-WAIT: ACKed (above), and the
		 * 2 MSL start again (RFC 9293 §3.10.7.4, eighth) */
		if (c->state == TCPS_TIME_WAIT && (s.flags & TH_FIN))
			tcp_arm(c, TCP_T_RTX, 2ull * st->tp.msl_us);
		return;
	}
	if (!(s.flags & TH_ACK)) {
		net_count(st, NET_C_drop_tcp_no_ack);
		return;
	}
	/* RFC 7323 §4.3: TS.Recent from a segment that covers Last.ACK.sent */
	if (c->ts_ok && s.o.ts_ok && seq_leq(s.seq, c->last_ack_sent) && seq_geq(s.o.tsval, c->ts_recent))
		c->ts_recent = s.o.tsval;
	if (c->state == TCPS_SYN_RECEIVED && tcp_synrcvd_ack(c, &s) < 0)
		return;
	if (take_ack(c, &s, &writable) < 0 || c->dead)
		return;
	if (c->fin_queued && seq_gt(c->snd_una, c->snd_qend)) { /* our FIN is acked */
		switch (c->state) {
		case TCPS_FIN_WAIT_1:
			tcp_set_state(c, TCPS_FIN_WAIT_2);
			if (c->app_gone) {
				c->rtx_mode = RTX_FINWAIT2;
				tcp_arm(c, TCP_T_RTX, st->tp.fin_wait2_us);
			}
			break;
		case TCPS_CLOSING:
			tcp_enter_timewait(c);
			return;
		case TCPS_LAST_ACK:
			tcp_conn_destroy(c);
			return;
		}
	}
	if (c->state == TCPS_TIME_WAIT) {
		/* RFC 9293: a retransmitted FIN is acknowledged and 2 MSL restart */
		if (s.flags & TH_FIN) {
			tcp_send_ack(c);
			tcp_arm(c, TCP_T_RTX, 2ull * st->tp.msl_us);
		}
		return;
	}
	if (s.len && c->app_gone && seq_gt(s.seq + s.len, c->rcv_nxt) &&
	    (c->state == TCPS_FIN_WAIT_1 || c->state == TCPS_FIN_WAIT_2)) {
		/* New data nobody will read: the application closed. Reset,
		 * as RFC 9293 §3.10.4 and RFC 2525 §2.17 have a close with
		 * unread data do. */
		net_count(st, NET_C_tcp_data_after_close);
		tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
		tcp_conn_destroy(c);
		return;
	}
	if (s.len && (c->state == TCPS_ESTABLISHED || c->state == TCPS_FIN_WAIT_1 || c->state == TCPS_FIN_WAIT_2))
		moved = take_data(c, s.seq, s.data, s.len);
	if (c->ooo_fin && c->ooo_fin_seq == c->rcv_nxt)
		take_fin(c, c->ooo_fin_seq);
	else if (s.flags & TH_FIN)
		take_fin(c, s.seq + s.len);
	if (c->dead)
		return;
	tcp_output(c);
	if (c->delack_pending && !c->dead && !timer_armed(&c->tm[TCP_T_DELACK].t))
		tcp_arm(c, TCP_T_DELACK, st->tp.delack_us);
	if ((moved || c->fin_rcvd != fin_was) && !c->app_gone && c->ops && c->ops->data)
		c->ops->data(c, c->ctx);
	if (writable && !c->dead && !c->app_gone && c->ops && c->ops->writable)
		c->ops->writable(c, c->ctx);
}

/* One TCP segment from src to dst (IP checks done). */
void tcp_input(struct net_stack *st, const struct net_addr *src, const struct net_addr *dst,
	       const uint8_t *p, uint32_t len)
{
	struct tcp_listener *l;
	struct tcp_conn *c;
	struct tcp_seg s;

	net_count(st, NET_C_tcp_segs_rx);
	if (tcp_parse(st, src, dst, p, len, &s) < 0)
		return;
	c = flow_lookup(st, &s.t);
	if (c && c->state == TCPS_CLOSED)
		c = NULL; /* ended, held only for its unread bytes */
	/* RFC 1122 §4.2.2.13 (and RFC 6191 with timestamps): a new SYN above
	 * the old sequence space ends TIME_WAIT early. */
	if (c && c->state == TCPS_TIME_WAIT && (s.flags & (TH_SYN | TH_ACK)) == TH_SYN &&
	    seq_gt(s.seq, c->rcv_nxt) && (!c->ts_ok || !s.o.ts_ok || seq_gt(s.o.tsval, c->ts_recent))) {
		net_count(st, NET_C_tcp_tw_reuse);
		tcp_conn_destroy(c);
		c = NULL;
	}
	if (c) {
		st->cur = c;
		if (c->state == TCPS_SYN_SENT)
			tcp_syn_sent_input(c, &s);
		else
			tcp_input_conn(c, &s);
		return;
	}
	l = flow_listener(st, &s.t.laddr, s.t.lport);
	if (l) {
		tcp_listen_input(st, l, &s);
		return;
	}
	if (s.flags & TH_RST) {
		net_count(st, NET_C_drop_tcp_no_conn);
		return;
	}
	net_count(st, NET_C_tcp_no_listener);
	tcp_send_rst_for(st, &s);
}

/* ICMP says the path to t takes at most mtu bytes (RFC 1191 §6.3, RFC
 * 8201 §5.2). Applied only when seq is in flight (RFC 5927 §4.1); the
 * segments in flight are resent at the new size, which is not a loss
 * (cwnd unchanged). */
void tcp_pmtu(struct net_stack *st, const struct tcp_tuple *t, uint32_t seq, uint32_t mtu)
{
	struct tcp_tuple k = *t;
	struct tcp_conn *c;
	uint32_t min = t->laddr.family == NET_AF4 ? 576 : 1280;

	c = flow_lookup(st, &k);
	if (!c || c->state < TCPS_ESTABLISHED || c->state == TCPS_TIME_WAIT || seq_lt(seq, c->snd_una) ||
	    seq_geq(seq, c->snd_max) || mtu >= c->pmtu) {
		net_count(st, NET_C_drop_icmp_frag_needed);
		return;
	}
	net_count(st, NET_C_icmp_frag_needed);
	net_count(st, NET_C_tcp_pmtu_reduced);
	c->pmtu = (uint16_t)(mtu < min ? min : mtu);
	c->pmtu_us = st->now_us;
	c->snd_nxt = c->snd_una;
	tcp_output(c);
}
