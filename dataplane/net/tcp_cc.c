/*
 * Congestion control: slow start and congestion avoidance (RFC 5681) with
 * NewReno (RFC 6582) or CUBIC (RFC 9438) growth, and the loss recovery
 * that drives them: fast retransmit on three duplicate ACKs (RFC 5681
 * §3.2), then NewReno's partial-ACK recovery without SACK, or RFC 6675's
 * pipe-based recovery with it.
 */
#include <math.h>

#include "net/net_int.h"

#define CUBIC_C 0.4
#define CUBIC_BETA 0.7

/* FlightSize (RFC 5681 §2): sent and not yet acknowledged. */
static uint32_t flight(const struct tcp_conn *c) { return c->snd_max - c->snd_una; }

/* RFC 6928 initial window (10 segments, at least 2, with the 14600-byte
 * cap of its §2), ssthresh "arbitrarily high" (RFC 5681 §3.1). */
void tcp_cc_init(struct tcp_conn *c)
{
	uint32_t mss = tcp_eff_mss(c), iw = 10 * mss;

	if (iw > 14600 && 14600 > 2 * mss)
		iw = 14600;
	if (iw < 2 * mss)
		iw = 2 * mss;
	c->cwnd = iw;
	c->ssthresh = 0x7fffffff;
	c->w_max = 0;
	c->epoch_us = 0;
}

/* RFC 9438 §4.2-4.3 growth in congestion avoidance, per ACK of acked
 * bytes. Windows in segments, time in seconds, as the RFC writes them. */
static void cubic_ack(struct tcp_conn *c, uint32_t acked)
{
	double mss = tcp_eff_mss(c), cwnd = c->cwnd / mss, w_max, t, target, w_cubic, alpha;

	if (c->epoch_us == 0) {
		/* §4.2: a new epoch; K from cwnd_epoch (eq. 2), or 0 if the
		 * window is already above W_max */
		c->epoch_us = c->st->now_us;
		c->w_est = cwnd;
		if (c->w_max / mss > cwnd) {
			c->cubic_k = cbrt((c->w_max / mss - cwnd) / CUBIC_C);
		} else {
			c->cubic_k = 0;
			c->w_max = c->cwnd;
		}
	}
	w_max = c->w_max / mss;
	t = (double)(c->st->now_us - c->epoch_us) / 1e6;
	w_cubic = CUBIC_C * pow(t - c->cubic_k, 3) + w_max; /* eq. 1 */
	/* §4.3: the Reno-friendly estimate; alpha becomes 1 once W_est
	 * reaches W_max */
	alpha = c->w_est >= w_max ? 1.0 : 3.0 * (1 - CUBIC_BETA) / (1 + CUBIC_BETA);
	c->w_est += alpha * (acked / mss) / cwnd;
	if (w_cubic < c->w_est) {
		if (c->w_est > cwnd)
			c->cwnd = (uint32_t)(c->w_est * mss);
		return;
	}
	/* §4.4-4.5: aim at W_cubic(t + RTT), between cwnd and 1.5 cwnd, by
	 * (target - cwnd) / cwnd per segment acked */
	target = CUBIC_C * pow(t + c->srtt_us / 1e6 - c->cubic_k, 3) + w_max;
	if (target < cwnd)
		target = cwnd;
	if (target > 1.5 * cwnd)
		target = 1.5 * cwnd;
	c->cwnd += (uint32_t)((target - cwnd) / cwnd * acked);
}

/* New data acked outside recovery: slow start (RFC 5681 §3.1 with
 * appropriate byte counting, L = 2 SMSS, RFC 3465) or congestion avoidance. */
void tcp_cc_ack(struct tcp_conn *c, uint32_t acked)
{
	uint32_t mss = tcp_eff_mss(c);

	if (c->cwnd < c->ssthresh) {
		c->cwnd += acked < 2 * mss ? acked : 2 * mss;
		return;
	}
	if (c->st->tp.cc == NET_CC_CUBIC) {
		cubic_ack(c, acked);
		return;
	}
	/* RFC 5681 eq. (3) by byte counting: one SMSS per cwnd acked */
	c->bytes_acked += acked;
	if (c->bytes_acked >= c->cwnd) {
		c->bytes_acked -= c->cwnd;
		c->cwnd += mss;
	}
}

/* A loss was detected: the new ssthresh (RFC 5681 eq. (4); RFC 9438 §4.6
 * with fast convergence). */
void tcp_cc_loss(struct tcp_conn *c)
{
	uint32_t mss = tcp_eff_mss(c), f = flight(c);

	if (c->st->tp.cc == NET_CC_CUBIC) {
		/* fast convergence: a window that stopped below the last
		 * W_max releases bandwidth to newer flows */
		c->w_max = c->cwnd < c->w_max ? (uint32_t)(c->cwnd * (1 + CUBIC_BETA) / 2) : c->cwnd;
		c->ssthresh = (uint32_t)(c->cwnd * CUBIC_BETA);
		c->epoch_us = 0;
	} else {
		c->ssthresh = f / 2;
	}
	if (c->ssthresh < 2 * mss)
		c->ssthresh = 2 * mss;
	c->bytes_acked = 0;
}

/* RTO: ssthresh as for a loss, but held when the segment was already
 * resent by the timer (RFC 5681 §3.1, after eq. 4); cwnd to the loss
 * window of one segment. The caller counted this expiry in backoff. */
void tcp_cc_rto(struct tcp_conn *c)
{
	if (c->backoff <= 1)
		tcp_cc_loss(c);
	c->cwnd = tcp_eff_mss(c);
	c->recover = c->snd_max; /* RFC 6582 §3.2 step 1 after a timeout */
}

/* Retransmit the first unacknowledged segment. */
static void retransmit_una(struct tcp_conn *c)
{
	uint32_t len = c->snd_max - c->snd_una, mss = tcp_eff_mss(c);
	bool fin = false;

	if (c->fin_queued && seq_gt(c->snd_max, c->snd_qend))
		len--; /* the FIN is not a byte of the buffer */
	if (len > mss)
		len = mss;
	if (c->fin_queued && c->snd_una + len == c->snd_qend && seq_gt(c->snd_max, c->snd_qend))
		fin = true;
	tcp_send_segment(c, c->snd_una, len, (uint8_t)((fin ? TH_FIN : 0) | (len ? TH_PSH : 0)));
	c->retransmits++;
	c->rtt_timing = false;
	net_count(c->st, NET_C_tcp_retrans_segs);
	net_count_n(c->st, NET_C_tcp_retrans_bytes, len);
	if (c->sack_ok && seq_gt(c->snd_una + len, c->high_rxt))
		c->high_rxt = c->snd_una + len;
}

/* Enter fast recovery (RFC 5681 §3.2 steps 2-4; RFC 6675 §5 steps 4.1-4.3;
 * RFC 6582 §3.2 step 2). */
static void enter_recovery(struct tcp_conn *c)
{
	uint32_t mss = tcp_eff_mss(c);

	net_count(c->st, NET_C_tcp_fast_retransmit);
	net_count(c->st, c->sack_ok ? NET_C_tcp_sack_recovery : NET_C_tcp_newreno_recovery);
	c->in_recovery = true;
	c->recover = c->snd_max;
	tcp_cc_loss(c);
	c->high_rxt = c->snd_una;
	retransmit_una(c);
	c->cwnd = c->sack_ok ? c->ssthresh : c->ssthresh + 3 * mss;
	tcp_rtx_start(c);
}

/* The congestion side of one ACK: acked new bytes (acked > 0) or a
 * duplicate ACK (dup). Sending follows in tcp_output(). */
void tcp_ack_recovery(struct tcp_conn *c, const struct tcp_seg *s, uint32_t acked, bool dup)
{
	uint32_t mss = tcp_eff_mss(c);

	(void)s;
	if (dup) {
		if (c->in_recovery) {
			if (!c->sack_ok)
				c->cwnd += mss; /* RFC 6582 §3.2 step 3: inflate */
			return;
		}
		c->dupacks++;
		/* RFC 6582 §3.2 step 2: only if the ACK covers more than
		 * "recover" (here one past the highest sequence sent, so >=),
		 * which avoids a second reduction for one window of losses.
		 * RFC 6675 §5: or as soon as the scoreboard says SND.UNA is lost. */
		if ((c->dupacks >= 3 || (c->sack_ok && tcp_sb_lost_una(c))) && seq_geq(c->snd_una, c->recover))
			enter_recovery(c);
		return;
	}
	if (acked == 0)
		return;
	c->dupacks = 0;
	if (!c->in_recovery) {
		tcp_cc_ack(c, acked);
		return;
	}
	if (seq_geq(c->snd_una, c->recover)) {
		/* Full acknowledgment: leave recovery (RFC 6582 §3.2 step 5,
		 * option 1; RFC 6675 §5 step 2: cwnd = ssthresh). */
		uint32_t f = flight(c);

		c->in_recovery = false;
		if (c->sack_ok)
			c->cwnd = c->ssthresh;
		else
			c->cwnd = c->ssthresh < (f > mss ? f : mss) + mss ? c->ssthresh : (f > mss ? f : mss) + mss;
		return;
	}
	if (c->sack_ok) {
		if (seq_gt(c->snd_una, c->high_rxt))
			c->high_rxt = c->snd_una;
		return;
	}
	/* RFC 6582 §3.2 step 4: a partial ACK retransmits the next hole,
	 * deflates by what it acked, adds back one SMSS if that was at least
	 * one SMSS. */
	retransmit_una(c);
	c->cwnd = c->cwnd > acked ? c->cwnd - acked : mss;
	if (acked >= mss)
		c->cwnd += mss;
	if (c->cwnd < mss)
		c->cwnd = mss;
}
