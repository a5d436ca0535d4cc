/*
 * TCP timers on the core's wheel (lib/timer.h, 10 ms ticks): the
 * retransmission timer (RFC 6298), which also serves as persist timer
 * (zero-window probes, RFC 9293 §3.8.6.1), TIME_WAIT (2 MSL) and the
 * orphaned FIN_WAIT_2 timeout; the delayed ACK (RFC 9293 §3.8.6.3); and
 * keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6).
 */
#include <errno.h>

#include "net/net_int.h"

/* (Re)arm one of the connection's timers after_us from now. */
void tcp_arm(struct tcp_conn *c, enum tcp_timer_kind k, uint64_t after_us)
{
	timer_arm(&c->st->wheel, &c->tm[k].t, (c->st->now_us + after_us + 999) / 1000);
}

/* Stop a timer (the RTX timer forgets its job). */
void tcp_disarm(struct tcp_conn *c, enum tcp_timer_kind k)
{
	timer_cancel(&c->tm[k].t);
	if (k == TCP_T_RTX)
		c->rtx_mode = RTX_NONE;
}

/* RFC 6298 §5.1: (re)start the retransmission timer with the current RTO. */
void tcp_rtx_start(struct tcp_conn *c)
{
	c->rtx_mode = RTX_RETRANSMIT;
	tcp_arm(c, TCP_T_RTX, c->rto_us);
}

/* After an ACK: stop the timer when nothing is outstanding (§5.2), else
 * restart it (§5.3). Persist and the closing timers are left alone. */
void tcp_rtx_restart(struct tcp_conn *c)
{
	if (c->rtx_mode == RTX_TIMEWAIT || c->rtx_mode == RTX_FINWAIT2)
		return;
	if (c->rtx_mode == RTX_PERSIST && c->snd_nxt == c->snd_una)
		return; /* only a probe is out: keep probing */
	if (c->snd_una == c->snd_max) {
		if (c->rtx_mode == RTX_RETRANSMIT)
			tcp_disarm(c, TCP_T_RTX);
	} else {
		tcp_rtx_start(c);
	}
}

/* RTO within [rto_min, rto_max] (RFC 6298 §2.4, §2.5). */
static uint32_t clamp_rto(const struct tcp_conn *c, uint64_t rto)
{
	if (rto < c->st->tp.rto_min_us)
		rto = c->st->tp.rto_min_us;
	if (rto > c->st->tp.rto_max_us)
		rto = c->st->tp.rto_max_us;
	return (uint32_t)rto;
}

/* One RTT measurement R (RFC 6298 §2.2-2.4, with K = 4 and a clock
 * granularity G of 1 ms). A valid sample also ends the backoff: the RTO
 * is computed afresh (§5.7's reasoning, Karn: samples are never taken
 * from retransmitted segments without timestamps). */
void tcp_rtt_sample(struct tcp_conn *c, uint32_t r)
{
	uint32_t var;

	if (r == 0)
		r = 1;
	if (c->srtt_us == 0) {
		c->srtt_us = r;
		c->rttvar_us = r / 2;
	} else {
		uint32_t d = c->srtt_us > r ? c->srtt_us - r : r - c->srtt_us;

		c->rttvar_us = c->rttvar_us - c->rttvar_us / 4 + d / 4; /* beta = 1/4 */
		c->srtt_us = c->srtt_us - c->srtt_us / 8 + r / 8;       /* alpha = 1/8 */
	}
	var = 4 * c->rttvar_us;
	if (var < 1000)
		var = 1000;
	c->rto_us = clamp_rto(c, (uint64_t)c->srtt_us + var);
	c->backoff = 0;
}

/* RFC 6298 §5.4-5.6 for data: retransmit the earliest unacknowledged
 * segment, double the RTO (bounded), and restart the timer. Congestion
 * state per RFC 5681 §3.1 (loss window); the SACK scoreboard is cleared
 * (RFC 2018 §8) and sending goes back to SND.UNA. */
static void rto_expired(struct tcp_conn *c)
{
	struct net_stack *st = c->st;
	bool syn = c->state == TCPS_SYN_SENT || c->state == TCPS_SYN_RECEIVED;

	if (c->backoff >= (syn ? st->tp.syn_retries : st->tp.data_retries)) {
		if (c->state != TCPS_SYN_SENT)
			tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
		tcp_conn_fail(c, -ETIMEDOUT);
		return;
	}
	net_count(st, NET_C_tcp_rto);
	c->backoff++;
	c->rto_us = clamp_rto(c, (uint64_t)c->rto_us * 2);
	c->rtt_timing = false;
	if (syn) {
		tcp_send_syn(c, c->state == TCPS_SYN_RECEIVED);
		c->retransmits++;
		net_count(st, NET_C_tcp_retrans_segs);
		tcp_rtx_start(c);
		return;
	}
	tcp_cc_rto(c);
	tcp_sb_clear(c);
	c->in_recovery = false;
	c->dupacks = 0;
	c->snd_nxt = c->snd_una;
	c->rtx_mode = RTX_NONE;
	tcp_output(c);
	if (!c->dead)
		tcp_rtx_start(c);
}

/* Persist: probe with one byte past the window (or what a small window
 * takes), backing off like the RTO but never giving up while the peer
 * answers (RFC 1122 §4.2.2.17). */
static void persist_expired(struct tcp_conn *c)
{
	uint32_t avail = seq_lt(c->snd_nxt, c->snd_qend) ? c->snd_qend - c->snd_nxt : 0, len = 1;

	c->rtx_mode = RTX_NONE;
	if (!avail || c->snd_una != c->snd_nxt)
		return;
	if (c->snd_wnd > 1)
		len = c->snd_wnd < avail ? c->snd_wnd : avail;
	if (len > tcp_eff_mss(c))
		len = tcp_eff_mss(c);
	net_count(c->st, NET_C_tcp_zwp_tx);
	tcp_send_segment(c, c->snd_nxt, len, TH_PSH);
	/* The probe byte is sent but not taken as sent: snd_max covers it so
	 * that its ACK is acceptable; snd_nxt stays for the real send. */
	c->snd_max = c->snd_nxt + len;
	if (c->backoff < 16)
		c->backoff++;
	c->rto_us = clamp_rto(c, (uint64_t)c->rto_us * 2);
	c->rtx_mode = RTX_PERSIST;
	tcp_arm(c, TCP_T_RTX, c->rto_us);
}

/* Keepalive: after keep_idle without a segment from the peer, probe with
 * SEG.SEQ = SND.NXT - 1 and no data (RFC 9293 §3.8.4), keep_count times
 * keep_intvl apart, then give up. */
static void keep_expired(struct tcp_conn *c)
{
	struct net_stack *st = c->st;
	uint64_t idle = st->now_us - c->last_rx_us;

	if (!c->keepalive || (c->state != TCPS_ESTABLISHED && c->state != TCPS_CLOSE_WAIT &&
			      c->state != TCPS_FIN_WAIT_2))
		return;
	if (idle < st->tp.keep_idle_us && c->keep_probes == 0) {
		tcp_arm(c, TCP_T_KEEP, st->tp.keep_idle_us - idle);
		return;
	}
	if (c->keep_probes >= st->tp.keep_count) {
		tcp_send_segment(c, c->snd_nxt, 0, TH_RST | TH_ACK);
		tcp_conn_fail(c, -ETIMEDOUT);
		return;
	}
	c->keep_probes++;
	net_count(st, NET_C_tcp_keepalive_tx);
	tcp_send_segment(c, c->snd_una - 1, 0, 0);
	tcp_arm(c, TCP_T_KEEP, st->tp.keep_intvl_us);
}

/* A segment came in: the keepalive clock starts again. */
void tcp_keep_reset(struct tcp_conn *c)
{
	c->keep_probes = 0;
	if (c->keepalive)
		tcp_arm(c, TCP_T_KEEP, c->st->tp.keep_idle_us);
}

/* One timer of c ran out. */
static void timer_fire(struct tcp_conn *c, uint8_t kind)
{
	switch (kind) {
	case TCP_T_RTX:
		switch (c->rtx_mode) {
		case RTX_RETRANSMIT:
			rto_expired(c);
			break;
		case RTX_PERSIST:
			persist_expired(c);
			break;
		case RTX_TIMEWAIT:
			net_count(c->st, NET_C_tcp_timewait_done);
			tcp_conn_destroy(c);
			break;
		case RTX_FINWAIT2:
			tcp_conn_destroy(c);
			break;
		}
		break;
	case TCP_T_DELACK:
		if (c->delack_pending && c->state != TCPS_CLOSED) {
			net_count(c->st, NET_C_tcp_delack);
			tcp_send_ack(c);
		}
		break;
	case TCP_T_KEEP:
		keep_expired(c);
		break;
	}
}

/* The wheel's callback for every TCP timer: find the connection from the
 * timer's kind, run it, charge its cycles. */
void tcp_timer_fire(struct timer *t)
{
	struct tcp_timer *tt = NET_CONTAINER(t, struct tcp_timer, t);
	struct tcp_conn *c = (struct tcp_conn *)(void *)((char *)(tt - tt->kind) - offsetof(struct tcp_conn, tm));
	uint64_t t0 = net_cycles_now(c->st);

	if (c->dead)
		return;
	timer_fire(c, tt->kind);
	c->cycles += net_cycles_now(c->st) - t0; /* still allocated: reaped after the poll */
}
