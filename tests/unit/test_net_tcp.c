/*
 * TCP against a scripted peer: the test plays host 2 segment by segment
 * and checks what the stack (host 1) answers. Each test is a transcript:
 * what the peer sends, what must come back, which counter moves.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/net_int.h"
#include "net/tcp_stream.h"
#include "test_net_lib.h"

#define PEER_ISS 1000u
#define PPORT 40000
#define LPORT 25

/* What the application saw on the stack's connection. */
struct app {
	struct tcp_conn *c;
	int accepted, connected, data, writable, closed;
	int err;
};

static void a_connected(struct tcp_conn *c, void *ctx) { struct app *a = ctx; a->c = c; a->connected++; }
static void a_data(struct tcp_conn *c, void *ctx) { (void)c; ((struct app *)ctx)->data++; }
static void a_writable(struct tcp_conn *c, void *ctx) { (void)c; ((struct app *)ctx)->writable++; }
static void a_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct app *a = ctx;

	(void)c;
	a->closed++;
	a->err = err;
	a->c = NULL;
}
static const struct tcp_ops app_ops = { a_connected, a_data, a_writable, a_closed };

static int a_accept(void *lctx, struct tcp_conn *c)
{
	struct app *a = lctx;

	a->accepted++;
	a->c = c;
	tcp_set_ops(c, &app_ops, a);
	return 0;
}

/* A connection established by the peer to the stack's listener. */
struct est {
	struct tn_peer p;
	struct app app;
	struct tcp_listener *l;
	uint32_t iss;        /* the stack's ISS */
	uint32_t snd;        /* the peer's next sequence number */
	bool ts;
	uint32_t peer_ts;
	uint32_t stack_ts;   /* last TSval seen from the stack */
};

/* A segment from the peer on the established connection. */
static struct tn_seg peer_seg(struct est *e, uint8_t flags, uint32_t seq, uint32_t ack)
{
	struct tn_seg s = { .sport = PPORT, .dport = LPORT, .flags = flags, .seq = seq, .ack = ack,
			    .wnd = 65535 };

	if (e->ts)
		tn_opt_ts(&s, ++e->peer_ts, e->stack_ts);
	return s;
}

/* The three-way handshake with the options asked. */
static void establish(struct est *e, const struct tcp_params *tp, bool ts, bool sack, int ws)
{
	struct tn_seg s = { .sport = PPORT, .dport = LPORT, .flags = TH_SYN, .seq = PEER_ISS, .wnd = 65535 }, r;

	memset(e, 0, sizeof(*e));
	tn_peer_init(&e->p, tp);
	tn_peer_arp(&e->p);
	assert_int_equal(tcp_listen(e->p.st, NULL, LPORT, a_accept, &e->app, &e->l), 0);
	e->ts = ts;
	e->peer_ts = 5000;
	tn_opt_mss(&s, 1460);
	if (sack)
		tn_opt_sackok(&s);
	if (ts)
		tn_opt_ts(&s, e->peer_ts, 0);
	if (ws >= 0)
		tn_opt_ws(&s, (uint8_t)ws);
	tn_peer_clear(&e->p);
	tn_peer_send_seg(&e->p, &s);
	assert_int_equal(e->p.n, 1);
	tn_peer_tcp(&e->p, 0, &r);
	assert_int_equal(r.flags, TH_SYN | TH_ACK);
	assert_int_equal(r.ack, PEER_ISS + 1);
	assert_int_equal(r.ts_ok, ts);
	assert_int_equal(r.sack_ok, sack);
	assert_int_equal(r.ws_ok, ws >= 0);
	e->iss = r.seq;
	e->stack_ts = r.tsval;
	e->snd = PEER_ISS + 1;
	s = peer_seg(e, TH_ACK, e->snd, e->iss + 1);
	tn_peer_clear(&e->p);
	tn_peer_send_seg(&e->p, &s);
	assert_int_equal(e->app.accepted, 1);
	assert_non_null(e->app.c);
	assert_int_equal(e->app.c->state, TCPS_ESTABLISHED);
}

static void est_free(struct est *e)
{
	tn_peer_free(&e->p);
}

/* The last segment the stack sent. */
static struct tn_seg last(struct est *e)
{
	struct tn_seg r;

	tn_peer_tcp(&e->p, e->p.n - 1, &r);
	if (r.ts_ok)
		e->stack_ts = r.tsval;
	return r;
}

/* The handshake's round trip on a passive open, which the session holds a
 * greeting by (stream_rtt_us): the SYN-ACK to its ACK is the first RTT
 * sample and hs_rtt_us. A SYN-ACK sent twice without timestamps gives no
 * sample (Karn), and the stream falls back on hs_rtt_us, timed from the
 * first SYN-ACK: an upper bound. */
static void test_handshake_rtt(void **state)
{
	(void)state;
	for (int again = 0; again < 2; again++) {
		struct tn_seg s = { .sport = PPORT, .dport = LPORT, .flags = TH_SYN,
				    .seq = PEER_ISS, .wnd = 65535 }, r;
		struct tcp_stream ts;
		struct tcp_conn_info ti;
		struct est e;

		memset(&e, 0, sizeof(e));
		tn_peer_init(&e.p, NULL);
		tn_peer_arp(&e.p);
		assert_int_equal(tcp_listen(e.p.st, NULL, LPORT, a_accept, &e.app, &e.l), 0);
		tn_opt_mss(&s, 1460);
		tn_peer_clear(&e.p);
		tn_peer_send_seg(&e.p, &s);
		tn_peer_tcp(&e.p, 0, &r);
		assert_int_equal(r.flags, TH_SYN | TH_ACK);
		if (again) {  /* the SYN-ACK is lost: the RTO (1 s) sends it again */
			tn_peer_advance(&e.p, 1000000);
			assert_int_equal(e.p.n, 2);
		}
		tn_peer_advance(&e.p, 30000);   /* 30 ms after the (last) SYN-ACK */
		e.iss = r.seq;
		e.snd = PEER_ISS + 1;
		s = peer_seg(&e, TH_ACK, e.snd, e.iss + 1);
		tn_peer_send_seg(&e.p, &s);
		assert_int_equal(e.app.accepted, 1);
		tcp_get_info(e.app.c, &ti);
		memset(&ts, 0, sizeof(ts));
		ts.c = e.app.c;
		if (!again) {
			assert_int_equal(ti.srtt_us, 30000);
			assert_int_equal(ti.hs_rtt_us, 30000);
			assert_int_equal(tcp_stream_rtt_us(&ts), 30000);
		} else {
			assert_int_equal(ti.srtt_us, 0);
			assert_int_equal(ti.hs_rtt_us, 1030000);
			assert_int_equal(tcp_stream_rtt_us(&ts), 1030000);
		}
		est_free(&e);
	}
}

/* ---- RFC 5961 ---- */

/* §3.2: a RST exactly at RCV.NXT resets the connection. */
static void test_rst_exact(void **state)
{
	struct est e;
	struct tn_seg s;

	(void)state;
	establish(&e, NULL, true, true, 7);
	s = peer_seg(&e, TH_RST, e.snd, 0);
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(e.app.closed, 1);
	assert_int_equal(e.app.err, -ECONNRESET);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_rst_rx), 1);
	assert_int_equal(e.p.n, 0); /* nothing answers a RST */
	est_free(&e);
}

/* §3.2: a RST in the window but not at RCV.NXT gets a challenge ACK and
 * changes nothing; out of the window it is dropped silently. */
static void test_rst_in_window(void **state)
{
	struct est e;
	struct tn_seg s, r;

	(void)state;
	establish(&e, NULL, true, true, 7);
	s = peer_seg(&e, TH_RST, e.snd + 100, 0);
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(e.app.closed, 0);
	assert_int_equal(e.p.n, 1);
	r = last(&e);
	assert_int_equal(r.flags, TH_ACK);
	assert_int_equal(r.seq, e.iss + 1);
	assert_int_equal(r.ack, e.snd);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_challenge_ack), 1);
	/* the challenge ACK makes a real peer answer with the exact RST */
	tn_peer_clear(&e.p);
	s = peer_seg(&e, TH_RST, e.snd + 10000000, 0);
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(e.p.n, 0);
	assert_int_equal(e.app.closed, 0);
	assert_int_equal(tn_counter(e.p.st, NET_C_drop_tcp_seq), 1);
	assert_int_equal(e.app.c->state, TCPS_ESTABLISHED);
	est_free(&e);
}

/* A pure ACK exactly on the right edge of the window we offered (the
 * peer filled it; data we had no room for was dropped) still acknowledges
 * our data: refusing it froze an echo under loss (a TAP test against the
 * kernel stalled so). One past the edge is refused. */
static void test_ack_on_right_edge(void **state)
{
	static const char data[1000] = "x";
	struct est e;
	struct tn_seg s, r;
	struct tcp_conn_info ti;

	(void)state;
	establish(&e, NULL, false, false, -1);
	assert_int_equal(tcp_send(e.app.c, data, sizeof(data)), (ssize_t)sizeof(data));
	r = last(&e);
	assert_int_equal(r.dlen, sizeof(data));
	assert_true(r.wnd > 0);
	tn_peer_clear(&e.p);
	s = peer_seg(&e, TH_ACK, e.snd + r.wnd + 1, r.seq + 500);   /* beyond: refused */
	tn_peer_send_seg(&e.p, &s);
	tcp_get_info(e.app.c, &ti);
	assert_int_equal(ti.bytes_acked, 0);
	s = peer_seg(&e, TH_ACK, e.snd + r.wnd, r.seq + sizeof(data)); /* on the edge */
	tn_peer_send_seg(&e.p, &s);
	tcp_get_info(e.app.c, &ti);
	assert_int_equal(ti.bytes_acked, sizeof(data));
	est_free(&e);
}

/* §4.2: a SYN on an established connection, in window or not, gets a
 * challenge ACK; the connection stays. */
static void test_syn_in_established(void **state)
{
	struct est e;
	struct tn_seg s, r;

	(void)state;
	establish(&e, NULL, false, false, -1);
	s = peer_seg(&e, TH_SYN, e.snd + 5, 0);
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(e.p.n, 1);
	r = last(&e);
	assert_int_equal(r.flags, TH_ACK);
	assert_int_equal(r.ack, e.snd);
	tn_peer_advance(&e.p, 500000); /* one challenge per 500 ms and connection */
	s = peer_seg(&e, TH_SYN, e.snd - 100000, 0); /* out of window too */
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(e.p.n, 2);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_challenge_ack), 2);
	assert_int_equal(e.app.c->state, TCPS_ESTABLISHED);
	assert_int_equal(e.app.closed, 0);
	est_free(&e);
}

/* §5.2: an ACK for data never sent is dropped with a challenge ACK; its
 * data is not taken. */
static void test_bad_ack(void **state)
{
	struct est e;
	struct tn_seg s;

	(void)state;
	establish(&e, NULL, false, false, -1);
	s = peer_seg(&e, TH_ACK, e.snd, e.iss + 1 + 50000);
	s.data = (const uint8_t *)"hello";
	s.dlen = 5;
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(tn_counter(e.p.st, NET_C_drop_tcp_bad_ack), 1);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_challenge_ack), 1);
	assert_int_equal(tcp_readable(e.app.c), 0);
	assert_int_equal(e.app.data, 0);
	est_free(&e);
}

/* §7: challenge ACKs are limited per second (each second's budget drawn
 * in [limit/2, limit*3/2): test_net_harden checks the spread). */
static void test_challenge_ack_limit(void **state)
{
	struct tcp_params tp = { .challenge_ack_limit = 5, .challenge_ack_conn_us = 1 };
	struct est e;
	uint32_t n;
	int i;

	(void)state;
	establish(&e, &tp, false, false, -1);
	for (i = 0; i < 12; i++) {
		struct tn_seg s = peer_seg(&e, TH_RST, e.snd + 10 + (uint32_t)i, 0);

		tn_peer_send_seg(&e.p, &s);
		tn_peer_advance(&e.p, 1000); /* past the per-connection limit (1 us) */
	}
	n = e.p.n;
	assert_true(n >= 3 && n <= 7);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_challenge_ack), n);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_challenge_ack_limited), 12 - n);
	tn_peer_advance(&e.p, 1000000); /* a new second */
	{
		struct tn_seg s = peer_seg(&e, TH_RST, e.snd + 99, 0);

		tn_peer_send_seg(&e.p, &s);
	}
	assert_int_equal(e.p.n, n + 1);
	est_free(&e);
}

/* ---- retransmission ---- */

/* RFC 6298 §5.5: each expiry doubles the RTO, up to the maximum; after
 * data_retries expiries the connection ends with ETIMEDOUT and a RST. */
static void test_rto_backoff(void **state)
{
	struct tcp_params tp = { .rto_min_us = 200000, .rto_max_us = 3200000, .data_retries = 8 };
	struct est e;
	uint8_t buf[1000] = { 0 };
	uint64_t t[16];
	uint32_t n = 0, i;
	uint64_t expect;

	(void)state;
	establish(&e, &tp, false, false, -1);
	assert_int_equal(tcp_send(e.app.c, buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(e.p.n, 1); /* the original */
	tn_peer_advance(&e.p, 60000000);
	for (i = 0; i < e.p.n; i++) {
		struct tn_seg r;

		tn_peer_tcp(&e.p, i, &r);
		if (r.dlen == 1000) {
			assert_int_equal(r.seq, e.iss + 1);
			t[n++] = e.p.at[i];
		}
	}
	/* original + 8 retransmissions, then the RST */
	assert_int_equal(n, 9);
	expect = 200000;
	for (i = 1; i < n; i++) {
		uint64_t gap = t[i] - t[i - 1];

		printf("# retransmission %u after %llu ms\n", i, (unsigned long long)gap / 1000);
		assert_true(gap >= expect && gap <= expect + 20000); /* wheel ticks: 10 ms */
		expect = expect * 2 > 3200000 ? 3200000 : expect * 2;
	}
	assert_int_equal(e.app.closed, 1);
	assert_int_equal(e.app.err, -ETIMEDOUT);
	assert_int_equal(tn_peer_count_tcp(&e.p, 0, TH_RST, TH_RST), 1);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_rto), 8);
	est_free(&e);
}

/* Send `nseg` full segments from the stack's application; returns the MSS. */
static uint32_t send_segments(struct est *e, uint32_t nseg)
{
	static uint8_t buf[64 * 1460];
	uint32_t mss = tcp_eff_mss(e->app.c), i;

	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	assert_int_equal(tcp_send(e->app.c, buf, nseg * mss), (ssize_t)(nseg * mss));
	assert_int_equal(tn_peer_count_tcp(&e->p, 0, 0, 0), nseg);
	return mss;
}

/* RFC 5681 §3.2: the third duplicate ACK, not the first two, triggers the
 * retransmission of the missing segment, without waiting for the RTO. */
static void test_fast_retransmit(void **state)
{
	struct est e;
	struct tn_seg s, r;
	uint32_t mss, i, base;

	(void)state;
	establish(&e, NULL, false, false, -1);
	tn_peer_clear(&e.p);
	mss = send_segments(&e, 8);
	base = e.iss + 1;
	tn_peer_clear(&e.p);
	/* segment 1 arrives, segment 2 is lost, 3..5 arrive: ACK, then dupacks */
	s = peer_seg(&e, TH_ACK, e.snd, base + mss);
	tn_peer_send_seg(&e.p, &s);
	for (i = 0; i < 3; i++) {
		uint32_t before = tn_peer_count_tcp(&e.p, 0, 0, 0);

		tn_peer_send_seg(&e.p, &s);
		if (i < 2)
			assert_int_equal(tn_peer_count_tcp(&e.p, 0, 0, 0), before);
	}
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_fast_retransmit), 1);
	tn_peer_tcp(&e.p, 0, &r);
	assert_int_equal(r.seq, base + mss);
	assert_int_equal(r.dlen, mss);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_rto), 0);
	/* NewReno (no SACK): a partial ACK retransmits the next hole at once */
	tn_peer_clear(&e.p);
	s = peer_seg(&e, TH_ACK, e.snd, base + 3 * mss);
	tn_peer_send_seg(&e.p, &s);
	assert_true(e.p.n >= 1);
	tn_peer_tcp(&e.p, 0, &r);
	assert_int_equal(r.seq, base + 3 * mss);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_newreno_recovery), 1);
	est_free(&e);
}

/* RFC 6675: with SACK, recovery retransmits the holes and only the holes. */
static void test_sack_recovery(void **state)
{
	struct est e;
	struct tn_seg s;
	uint32_t mss, base, i;
	uint32_t blocks[2][2];
	bool seen2 = false, seen5 = false;

	(void)state;
	establish(&e, NULL, true, true, 7);
	tn_peer_clear(&e.p);
	mss = send_segments(&e, 10);
	base = e.iss + 1;
	(void)last(&e);
	tn_peer_clear(&e.p);
	/* segments are numbered 1..10; 2 and 5 are lost */
	blocks[0][0] = base + 2 * mss;
	blocks[0][1] = base + 4 * mss;
	blocks[1][0] = base + 5 * mss;
	for (i = 6; i <= 10; i++) {
		blocks[1][1] = base + i * mss;
		s = peer_seg(&e, TH_ACK, e.snd, base + mss);
		tn_opt_sack(&s, 2, (const uint32_t (*)[2])blocks);
		tn_peer_send_seg(&e.p, &s);
	}
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_sack_recovery), 1);
	for (i = 0; i < e.p.n; i++) {
		struct tn_seg r;

		tn_peer_tcp(&e.p, i, &r);
		if (!r.dlen)
			continue;
		if (r.seq == base + mss)
			seen2 = true;
		else if (r.seq == base + 4 * mss)
			seen5 = true;
		else
			fail_msg("retransmitted %u, not a hole", r.seq - base);
	}
	assert_true(seen2);
	assert_true(seen5);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_retrans_segs), 2);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_rto), 0);
	est_free(&e);
}

/* RFC 9293 §3.8.6.1: against a zero window the stack probes, backing off,
 * and never gives up while the peer answers; when the window opens the
 * data flows. */
static void test_zero_window_probe(void **state)
{
	struct tcp_params tp = { .data_retries = 3, .rto_max_us = 4000000 };
	struct est e;
	struct tn_seg s, r;
	uint8_t buf[3000] = { 0 };
	uint32_t probes = 0, i, base;
	uint64_t prev = 0, gap = 0;

	(void)state;
	establish(&e, &tp, false, false, -1);
	base = e.iss + 1;
	s = peer_seg(&e, TH_ACK, e.snd, base);
	s.wnd = 0;
	tn_peer_send_seg(&e.p, &s);
	tn_peer_clear(&e.p);
	assert_int_equal(tcp_send(e.app.c, buf, sizeof(buf)), sizeof(buf));
	assert_int_equal(e.p.n, 0); /* nothing fits a zero window */
	for (i = 0; i < 60; i++) {
		uint32_t before = e.p.n;

		tn_peer_advance(&e.p, 1000000);
		while (before < e.p.n) {
			if (!tn_parse_tcp(e.p.frame[before], e.p.len[before], &r)) {
				before++; /* an ARP refresh of the neighbour entry */
				continue;
			}
			assert_int_equal(r.dlen, 1);
			assert_int_equal(r.seq, base);
			if (prev)
				assert_true(e.p.at[before] - prev >= gap); /* backing off */
			gap = prev ? e.p.at[before] - prev : 0;
			prev = e.p.at[before];
			probes++;
			before++;
			/* the peer answers: still zero */
			tn_peer_send_seg(&e.p, &s);
		}
	}
	printf("# %u probes in 60 s, last gap %llu ms\n", probes, (unsigned long long)gap / 1000);
	assert_true(probes >= 5);
	assert_true(gap <= 4000000 + 20000);
	assert_int_equal(e.app.closed, 0);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_zwp_tx), probes);
	/* the window opens (and the neighbour entry is fresh again) */
	tn_peer_arp(&e.p);
	tn_peer_clear(&e.p);
	s = peer_seg(&e, TH_ACK, e.snd, base);
	s.wnd = 65535;
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(tn_peer_count_tcp(&e.p, 0, 0, 0), 3); /* 1448 + 1448 + 104 */
	tn_peer_tcp(&e.p, 0, &r);
	assert_int_equal(r.seq, base);
	est_free(&e);
}

/* ---- SYN cookies ---- */

static struct tn_seg syn_from(uint16_t port, uint32_t iss, bool ts, bool sack, int ws)
{
	struct tn_seg s = { .sport = port, .dport = LPORT, .flags = TH_SYN, .seq = iss, .wnd = 65535 };

	tn_opt_mss(&s, 1460);
	if (sack)
		tn_opt_sackok(&s);
	if (ts)
		tn_opt_ts(&s, 777, 0);
	if (ws >= 0)
		tn_opt_ws(&s, (uint8_t)ws);
	return s;
}

/* RFC 4987 §3.6: once the SYN queue is full, SYN-ACKs carry cookies; a
 * valid final ACK completes the connection with the options the cookie and
 * the timestamp kept; a forged one gets a RST. */
static void test_syn_cookies(void **state)
{
	struct tcp_params tp = { .syn_backlog = 4 };
	struct tn_peer p;
	struct app app = { 0 };
	struct tcp_listener *l;
	struct tn_seg s, r, cookie_ts, cookie_plain;
	struct tcp_conn_info info;
	uint32_t i;

	(void)state;
	tn_peer_init(&p, &tp);
	tn_peer_arp(&p);
	assert_int_equal(tcp_listen(p.st, NULL, LPORT, a_accept, &app, &l), 0);
	tn_peer_clear(&p);
	/* a flood of 100 SYNs from different ports */
	for (i = 0; i < 100; i++) {
		s = syn_from((uint16_t)(20000 + i), 100000 * i, i % 2 == 0, true, 7);
		tn_peer_send_seg(&p, &s);
	}
	assert_int_equal(tn_peer_count_tcp(&p, 0, TH_SYN | TH_ACK, TH_SYN | TH_ACK), 100);
	assert_int_equal(l->nsynq, 4);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_syn_queue_full), 96);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_syncookie_tx), 96);
	assert_int_equal(p.st->nconns, 4);
	tn_peer_tcp(&p, 10, &cookie_ts);    /* port 20010, with timestamps */
	tn_peer_tcp(&p, 11, &cookie_plain); /* port 20011, without */
	assert_true(cookie_ts.ts_ok);
	assert_true(cookie_ts.sack_ok);
	assert_false(cookie_plain.ts_ok);
	assert_false(cookie_plain.sack_ok); /* SACK needs the timestamp to come back */
	tn_peer_clear(&p);
	/* a forged cookie */
	s = (struct tn_seg){ .sport = 20012, .dport = LPORT, .flags = TH_ACK, .seq = 100000 * 12 + 1,
			     .ack = 12345, .wnd = 100 };
	tn_peer_send_seg(&p, &s);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_syncookie_bad), 1);
	assert_int_equal(tn_peer_count_tcp(&p, 0, TH_RST, TH_RST), 1);
	assert_int_equal(app.accepted, 0);
	/* the real final ACK, with timestamps: window scale and SACK come back */
	s = (struct tn_seg){ .sport = 20010, .dport = LPORT, .flags = TH_ACK, .seq = 100000 * 10 + 1,
			     .ack = cookie_ts.seq + 1, .wnd = 1000 };
	tn_opt_ts(&s, 778, cookie_ts.tsval);
	tn_peer_send_seg(&p, &s);
	assert_int_equal(app.accepted, 1);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_syncookie_ok), 1);
	tcp_get_info(app.c, &info);
	assert_true(info.cookie);
	assert_int_equal(info.state, TCPS_ESTABLISHED);
	assert_true(info.timestamps);
	assert_true(info.sack);
	assert_int_equal(info.snd_wscale, 7);
	assert_int_equal(info.snd_wnd, 1000u << 7);
	assert_int_equal(info.mss, 1460 - 12);
	/* data on the new connection flows */
	tn_peer_clear(&p);
	assert_int_equal(tcp_send(app.c, "250 ok\r\n", 8), 8);
	tn_peer_tcp(&p, 0, &r);
	assert_int_equal(r.seq, cookie_ts.seq + 1);
	assert_int_equal(r.dlen, 8);
	/* without timestamps: no window scaling, no SACK, the MSS from the table */
	s = (struct tn_seg){ .sport = 20011, .dport = LPORT, .flags = TH_ACK, .seq = 100000 * 11 + 1,
			     .ack = cookie_plain.seq + 1, .wnd = 1000 };
	tn_peer_send_seg(&p, &s);
	assert_int_equal(app.accepted, 2);
	tcp_get_info(app.c, &info);
	assert_false(info.sack);
	assert_int_equal(info.snd_wscale, 0);
	assert_int_equal(info.mss, 1460);
	/* a cookie more than three minutes old is refused */
	tn_peer_advance(&p, 200000000);
	s = (struct tn_seg){ .sport = 20013, .dport = LPORT, .flags = TH_ACK, .seq = 100000 * 13 + 1,
			     .wnd = 1000 };
	tn_peer_clear(&p);
	tn_peer_send_seg(&p, &s);
	assert_int_equal(app.accepted, 2);
	tn_peer_free(&p);
}

/* ---- closing ---- */

/* The stack closes first: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT for 2 MSL,
 * during which the 4-tuple cannot be used again; then it can. */
static void test_time_wait(void **state)
{
	struct tcp_params tp = { .msl_us = 1000000 };
	struct tn_peer p;
	struct app app = { 0 };
	struct tcp_connect_req req = { .raddr = tn_ip4(2), .rport = 8025, .lport = 33333,
				       .ops = &app_ops, .ctx = &app };
	struct tcp_conn *c, *c2;
	struct tn_seg s, r;

	(void)state;
	tn_peer_init(&p, &tp);
	tn_peer_arp(&p);
	tn_peer_clear(&p);
	assert_int_equal(tcp_connect(p.st, &req, &c), 0);
	tn_peer_tcp(&p, 0, &r);
	assert_int_equal(r.flags, TH_SYN);
	s = (struct tn_seg){ .sport = 8025, .dport = 33333, .flags = TH_SYN | TH_ACK, .seq = 7000,
			     .ack = r.seq + 1, .wnd = 65535 };
	tn_opt_mss(&s, 1460);
	tn_peer_send_seg(&p, &s);
	assert_int_equal(app.connected, 1);
	assert_int_equal(c->state, TCPS_ESTABLISHED);
	tcp_close(c);
	assert_int_equal(c->state, TCPS_FIN_WAIT_1);
	tn_peer_tcp(&p, p.n - 1, &r);
	assert_true(r.flags & TH_FIN);
	/* the peer ACKs our FIN, then sends its own */
	s = (struct tn_seg){ .sport = 8025, .dport = 33333, .flags = TH_ACK, .seq = 7001, .ack = r.seq + 1,
			     .wnd = 65535 };
	tn_peer_send_seg(&p, &s);
	assert_int_equal(c->state, TCPS_FIN_WAIT_2);
	s.flags = TH_ACK | TH_FIN;
	tn_peer_send_seg(&p, &s);
	assert_int_equal(c->state, TCPS_TIME_WAIT);
	tn_peer_tcp(&p, p.n - 1, &r);
	assert_int_equal(r.ack, 7002);
	/* a retransmitted FIN is ACKed again */
	tn_peer_send_seg(&p, &s);
	tn_peer_tcp(&p, p.n - 1, &r);
	assert_int_equal(r.ack, 7002);
	assert_int_equal(tcp_connect(p.st, &req, &c2), -EADDRINUSE);
	tn_peer_advance(&p, 1900000);
	assert_int_equal(tcp_connect(p.st, &req, &c2), -EADDRINUSE);
	tn_peer_advance(&p, 200000);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_timewait_done), 1);
	assert_int_equal(tcp_connect(p.st, &req, &c2), 0);
	assert_int_equal(c2->state, TCPS_SYN_SENT);
	tn_peer_free(&p);
}

/* ---- two stacks ---- */

struct pair {
	struct simlink *l;
	struct net_stack *a, *b;
	struct app aa, ab;
};

static void pair_init(struct pair *p, const struct tcp_params *tp)
{
	struct net_config ca, cb;
	struct simlink_params lp = { .delay_us = 10000 };

	memset(p, 0, sizeof(*p));
	p->l = simlink_new(7, &lp, &lp);
	tn_config(&ca, 1, tp);
	tn_config(&cb, 2, tp);
	ca.tx = cb.tx = simlink_tx;
	ca.tx_ctx = simlink_port(p->l, 0);
	cb.tx_ctx = simlink_port(p->l, 1);
	p->a = net_stack_new(&ca, 0);
	p->b = net_stack_new(&cb, 0);
	simlink_attach_stack(p->l, 0, p->a);
	simlink_attach_stack(p->l, 1, p->b);
}

static void pair_free(struct pair *p)
{
	net_stack_free(p->a);
	net_stack_free(p->b);
	simlink_free(p->l);
}

static bool both_connected(void *arg)
{
	struct pair *p = arg;

	return p->aa.connected && p->ab.connected;
}

/* RFC 9293 §3.5 figure 7: both ends connect at once, SYNs cross, both
 * reach ESTABLISHED through SYN-RECEIVED; then bytes flow both ways. */
static void test_simultaneous_open(void **state)
{
	struct pair p;
	struct tcp_connect_req ra = { .raddr = tn_ip4(2), .rport = 6000, .lport = 5000, .ops = &app_ops };
	struct tcp_connect_req rb = { .raddr = tn_ip4(1), .rport = 5000, .lport = 6000, .ops = &app_ops };
	struct tcp_conn *ca, *cb;
	char buf[16];

	(void)state;
	pair_init(&p, NULL);
	/* the first SYN also resolves the neighbour: let ARP settle first */
	ra.ctx = &p.aa;
	rb.ctx = &p.ab;
	assert_int_equal(tcp_connect(p.a, &ra, &ca), 0);
	assert_int_equal(tcp_connect(p.b, &rb, &cb), 0);
	assert_true(simlink_run(p.l, 5000000, both_connected, &p));
	assert_int_equal(ca->state, TCPS_ESTABLISHED);
	assert_int_equal(cb->state, TCPS_ESTABLISHED);
	assert_int_equal(tcp_send(ca, "ping", 4), 4);
	assert_int_equal(tcp_send(cb, "pong", 4), 4);
	simlink_run(p.l, simlink_now(p.l) + 100000, NULL, NULL);
	assert_int_equal(tcp_read(cb, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(tcp_read(ca, buf, sizeof(buf)), 4);
	assert_memory_equal(buf, "pong", 4);
	pair_free(&p);
}

static int p_accept(void *lctx, struct tcp_conn *c)
{
	return a_accept(lctx, c);
}

/* RFC 9293 §3.6 figure 13: both ends close at once; FINs cross, both go
 * through CLOSING to TIME-WAIT and both are gone after 2 MSL. */
static void test_simultaneous_close(void **state)
{
	struct tcp_params tp = { .msl_us = 2000000 };
	struct pair p;
	struct tcp_listener *l;
	struct tcp_connect_req ra = { .raddr = tn_ip4(2), .rport = 25, .ops = &app_ops };
	struct tcp_conn *ca, *cb;
	struct tcp_tuple ta, tb;

	(void)state;
	pair_init(&p, &tp);
	ra.ctx = &p.aa;
	assert_int_equal(tcp_listen(p.b, NULL, 25, p_accept, &p.ab, &l), 0);
	assert_int_equal(tcp_connect(p.a, &ra, &ca), 0);
	simlink_run(p.l, 1000000, NULL, NULL);
	assert_int_equal(p.aa.connected, 1);
	assert_int_equal(p.ab.accepted, 1);
	cb = p.ab.c;
	ta = ca->t;
	tb = cb->t;
	tcp_close(ca);
	tcp_close(cb);
	assert_int_equal(ca->state, TCPS_FIN_WAIT_1);
	assert_int_equal(cb->state, TCPS_FIN_WAIT_1);
	simlink_run(p.l, simlink_now(p.l) + 15000, NULL, NULL); /* the FINs cross */
	assert_int_equal(ca->state, TCPS_CLOSING);
	assert_int_equal(cb->state, TCPS_CLOSING);
	simlink_run(p.l, simlink_now(p.l) + 100000, NULL, NULL);
	assert_int_equal(ca->state, TCPS_TIME_WAIT);
	assert_int_equal(cb->state, TCPS_TIME_WAIT);
	simlink_run(p.l, simlink_now(p.l) + 4100000, NULL, NULL);
	assert_null(flow_lookup(p.a, &ta));
	assert_null(flow_lookup(p.b, &tb));
	assert_int_equal(tn_counter(p.a, NET_C_tcp_timewait_done), 1);
	assert_int_equal(tn_counter(p.b, NET_C_tcp_timewait_done), 1);
	pair_free(&p);
}

/* PAWS (RFC 7323 §5): a segment with an older timestamp is dropped and
 * ACKed, its data not taken. */
static void test_paws(void **state)
{
	struct est e;
	struct tn_seg s;

	(void)state;
	establish(&e, NULL, true, true, 7);
	s = (struct tn_seg){ .sport = PPORT, .dport = LPORT, .flags = TH_ACK, .seq = e.snd, .ack = e.iss + 1,
			     .wnd = 1000, .data = (const uint8_t *)"old", .dlen = 3 };
	tn_opt_ts(&s, 4000, e.stack_ts); /* below TS.Recent (5001) */
	tn_peer_send_seg(&e.p, &s);
	assert_int_equal(tn_counter(e.p.st, NET_C_drop_tcp_paws), 1);
	assert_int_equal(tcp_readable(e.app.c), 0);
	assert_int_equal(e.p.n, 1);
	est_free(&e);
}

/* Keepalive (RFC 9293 §3.8.4): probes after the idle time, then the end. */
static void test_keepalive(void **state)
{
	struct tcp_params tp = { .keep_idle_us = 10000000, .keep_intvl_us = 1000000, .keep_count = 3 };
	struct est e;
	struct tn_seg r;

	(void)state;
	establish(&e, &tp, false, false, -1);
	tcp_set_keepalive(e.app.c, true);
	tn_peer_advance(&e.p, 9000000);
	assert_int_equal(e.p.n, 0);
	tn_peer_advance(&e.p, 1100000);
	assert_int_equal(e.p.n, 1);
	tn_peer_tcp(&e.p, 0, &r);
	assert_int_equal(r.seq, e.iss); /* SND.NXT - 1 */
	assert_int_equal(r.dlen, 0);
	tn_peer_advance(&e.p, 5000000);
	assert_int_equal(tn_counter(e.p.st, NET_C_tcp_keepalive_tx), 3);
	assert_int_equal(e.app.closed, 1);
	assert_int_equal(e.app.err, -ETIMEDOUT);
	est_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rst_exact),
		cmocka_unit_test(test_rst_in_window),
		cmocka_unit_test(test_ack_on_right_edge),
		cmocka_unit_test(test_handshake_rtt),
		cmocka_unit_test(test_syn_in_established),
		cmocka_unit_test(test_bad_ack),
		cmocka_unit_test(test_challenge_ack_limit),
		cmocka_unit_test(test_rto_backoff),
		cmocka_unit_test(test_fast_retransmit),
		cmocka_unit_test(test_sack_recovery),
		cmocka_unit_test(test_zero_window_probe),
		cmocka_unit_test(test_syn_cookies),
		cmocka_unit_test(test_time_wait),
		cmocka_unit_test(test_simultaneous_open),
		cmocka_unit_test(test_simultaneous_close),
		cmocka_unit_test(test_paws),
		cmocka_unit_test(test_keepalive),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
