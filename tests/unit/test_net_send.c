/*
 * The sending side and active opens against a scripted peer: limited
 * transmit (RFC 3042), Nagle (RFC 9293 §3.7.4), the 3 s RTO after a
 * resent SYN (RFC 6298 §5.7), refused and invalid answers to a SYN
 * (RFC 9293 §3.10.7.3), the source-port predicate of tcp_connect, and
 * duplicate ACKs under SACK whose window changes (RFC 6675 §2).
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
#include "test_net_lib.h"

struct act {
	struct tn_peer p;
	struct tcp_conn *c;
	uint16_t lport;
	uint32_t iss, peer;          /* stack's ISS, peer's next sequence */
	int connected, closed, err;
};

static void s_connected(struct tcp_conn *c, void *ctx) { (void)c; ((struct act *)ctx)->connected++; }
static void s_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct act *a = ctx;

	(void)c;
	a->closed++;
	a->err = err;
}
static const struct tcp_ops s_ops = { s_connected, NULL, NULL, s_closed };

/* Connect to host 2 port 25; returns the SYN the stack sent. */
static struct tn_seg act_syn(struct act *a, const struct tcp_params *tp)
{
	struct tcp_connect_req req = { .raddr = tn_ip4(2), .rport = 25, .ops = &s_ops };
	struct tn_seg syn;

	memset(a, 0, sizeof(*a));
	tn_peer_init(&a->p, tp);
	tn_peer_arp(&a->p);
	tn_peer_clear(&a->p);
	req.ctx = a;
	assert_int_equal(tcp_connect(a->p.st, &req, &a->c), 0);
	tn_peer_tcp(&a->p, 0, &syn);
	assert_int_equal(syn.flags, TH_SYN);
	a->lport = syn.sport;
	a->iss = syn.seq;
	a->peer = 9000;
	return syn;
}

static struct tn_seg from_peer(struct act *a, uint8_t flags, uint32_t seq, uint32_t ack)
{
	return (struct tn_seg){ .sport = 25, .dport = a->lport, .flags = flags, .seq = seq, .ack = ack,
				.wnd = 65535 };
}

/* SYN, SYN-ACK (MSS 1460, no other option), ACK. */
static void act_open(struct act *a, const struct tcp_params *tp)
{
	struct tn_seg s;

	act_syn(a, tp);
	s = from_peer(a, TH_SYN | TH_ACK, a->peer, a->iss + 1);
	tn_opt_mss(&s, 1460);
	tn_peer_send_seg(&a->p, &s);
	a->peer++;
	assert_int_equal(a->connected, 1);
	tn_peer_clear(&a->p);
}

static void test_limited_transmit(void **state)
{
	static uint8_t data[13 * 1460];
	struct act a;
	struct tn_seg s, r;
	uint32_t base;

	(void)state;
	act_open(&a, NULL);
	base = a.iss + 1;
	assert_int_equal(tcp_send(a.c, data, sizeof(data)), sizeof(data));
	assert_int_equal(a.p.n, 10); /* the initial window (RFC 6928) */
	s = from_peer(&a, TH_ACK, a.peer, base + 1460);
	tn_peer_send_seg(&a.p, &s); /* one segment acked: slow start lets two more out */
	assert_int_equal(a.p.n, 12);
	tn_peer_send_seg(&a.p, &s); /* dupack 1: cwnd is full, limited transmit sends one */
	assert_int_equal(a.p.n, 13);
	tn_peer_tcp(&a.p, 12, &r);
	assert_int_equal(r.seq, base + 12 * 1460);
	tn_peer_send_seg(&a.p, &s); /* dupack 2: nothing left to send */
	assert_int_equal(a.p.n, 13);
	tn_peer_send_seg(&a.p, &s); /* dupack 3: fast retransmit */
	assert_int_equal(a.p.n, 14);
	tn_peer_tcp(&a.p, 13, &r);
	assert_int_equal(r.seq, base + 1460);
	tn_peer_free(&a.p);
}

static void test_nagle(void **state)
{
	struct tcp_params tp = { .nagle = true };
	struct act a;
	struct tn_seg s, r;

	(void)state;
	act_open(&a, &tp);
	assert_int_equal(tcp_send(a.c, "MAIL FROM:<a@example.org>\r\n", 27), 27);
	assert_int_equal(a.p.n, 1);
	assert_int_equal(tcp_send(a.c, "RCPT TO:<b@example.org>\r\n", 25), 25);
	assert_int_equal(a.p.n, 1);                  /* small, and data in flight: held */
	s = from_peer(&a, TH_ACK, a.peer, a.iss + 1 + 27);
	tn_peer_send_seg(&a.p, &s);
	assert_int_equal(a.p.n, 2);                  /* the ACK releases it */
	tn_peer_tcp(&a.p, 1, &r);
	assert_int_equal(r.dlen, 25);
	/* without Nagle both go at once */
	tcp_set_nodelay(a.c, true);
	assert_int_equal(tcp_send(a.c, "DATA\r\n", 6), 6);
	assert_int_equal(tcp_send(a.c, "x\r\n", 3), 3);
	assert_int_equal(a.p.n, 4);
	tn_peer_free(&a.p);
}

/* RFC 6298 §5.7: after a resent SYN and no RTT sample, the RTO for data
 * starts at 3 s. */
static void test_rto_after_syn_loss(void **state)
{
	struct act a;
	struct tn_seg s, r;
	uint32_t i, n = 0;
	uint64_t t0 = 0;

	(void)state;
	act_syn(&a, NULL);
	tn_peer_advance(&a.p, 1000000);
	assert_int_equal(tn_peer_count_tcp(&a.p, 0, TH_SYN, TH_SYN), 2); /* resent after 1 s */
	s = from_peer(&a, TH_SYN | TH_ACK, a.peer, a.iss + 1);
	tn_opt_mss(&s, 1460);
	tn_peer_send_seg(&a.p, &s);
	assert_int_equal(a.connected, 1);
	tn_peer_clear(&a.p);
	assert_int_equal(tcp_send(a.c, "EHLO x\r\n", 8), 8);
	t0 = a.p.now;
	tn_peer_advance(&a.p, 5000000);
	for (i = 0; i < a.p.n; i++) {
		tn_peer_tcp(&a.p, i, &r);
		if (r.dlen == 8 && ++n == 2)
			assert_true(a.p.at[i] - t0 >= 3000000 && a.p.at[i] - t0 <= 3020000);
	}
	assert_int_equal(n, 2);
	tn_peer_free(&a.p);
}

/* RFC 9293 §3.10.7.3: a RST with an acceptable ACK refuses the open; an
 * ACK for something never sent gets a RST and changes nothing. */
static void test_syn_sent_answers(void **state)
{
	struct act a;
	struct tn_seg s, r;

	(void)state;
	act_syn(&a, NULL);
	s = from_peer(&a, TH_ACK | TH_SYN, a.peer, a.iss + 77);
	tn_peer_send_seg(&a.p, &s);
	assert_int_equal(a.p.n, 2);
	tn_peer_tcp(&a.p, 1, &r);
	assert_int_equal(r.flags, TH_RST);
	assert_int_equal(r.seq, a.iss + 77);
	assert_int_equal(a.c->state, TCPS_SYN_SENT);
	s = from_peer(&a, TH_RST, 0, 0); /* no ACK: ignored */
	tn_peer_send_seg(&a.p, &s);
	assert_int_equal(a.closed, 0);
	s = from_peer(&a, TH_RST | TH_ACK, 0, a.iss + 1);
	tn_peer_send_seg(&a.p, &s);
	assert_int_equal(a.closed, 1);
	assert_int_equal(a.err, -ECONNREFUSED);
	tn_peer_free(&a.p);
}

static bool even_port(void *arg, const struct net_addr *laddr, uint16_t lport, const struct net_addr *raddr,
		      uint16_t rport)
{
	(void)laddr;
	(void)raddr;
	(void)rport;
	++*(int *)arg;
	return lport % 4 == 3; /* e.g. "RSS brings it back to core 3 of 4" */
}

static bool no_port(void *arg, const struct net_addr *laddr, uint16_t lport, const struct net_addr *raddr,
		    uint16_t rport)
{
	(void)arg;
	(void)laddr;
	(void)lport;
	(void)raddr;
	(void)rport;
	return false;
}

/* The caller's predicate chooses among the ephemeral ports; ports in use
 * are skipped; with no acceptable port the connect fails. */
static void test_port_predicate(void **state)
{
	struct tcp_params tp = { .port_lo = 50000, .port_hi = 50063 };
	struct tn_peer p;
	struct tcp_connect_req req = { .raddr = tn_ip4(2), .rport = 25, .port_ok = even_port };
	struct tcp_conn *c[16];
	int asked = 0, i;

	(void)state;
	tn_peer_init(&p, &tp);
	req.port_arg = &asked;
	for (i = 0; i < 16; i++) {
		assert_int_equal(tcp_connect(p.st, &req, &c[i]), 0);
		assert_int_equal(c[i]->t.lport % 4, 3);
		assert_true(c[i]->t.lport >= 50000 && c[i]->t.lport <= 50063);
	}
	assert_int_equal(tcp_connect(p.st, &req, &c[0]), -EADDRNOTAVAIL); /* all 16 taken */
	req.port_ok = no_port;
	req.raddr = tn_ip4(3);
	assert_int_equal(tcp_connect(p.st, &req, &c[0]), -EADDRNOTAVAIL);
	tn_peer_free(&p);
}

/* A FIN retransmitted into TIME-WAIT is ACKed and starts 2 MSL again. */
static void test_time_wait_restart(void **state)
{
	struct tcp_params tp = { .msl_us = 1000000 };
	struct act a;
	struct tn_seg s, r;
	struct tcp_tuple t;

	(void)state;
	act_open(&a, &tp);
	t = a.c->t;
	tcp_close(a.c);
	tn_peer_tcp(&a.p, 0, &r);
	s = from_peer(&a, TH_ACK | TH_FIN, a.peer, r.seq + 1);
	tn_peer_send_seg(&a.p, &s);
	assert_int_equal(a.c->state, TCPS_TIME_WAIT);
	tn_peer_advance(&a.p, 1500000);
	tn_peer_clear(&a.p);
	tn_peer_send_seg(&a.p, &s);                  /* our ACK was lost: the FIN again */
	assert_int_equal(a.p.n, 1);
	tn_peer_tcp(&a.p, 0, &r);
	assert_int_equal(r.ack, a.peer + 1);
	tn_peer_advance(&a.p, 1000000);              /* 2.5 s: past the first 2 MSL */
	assert_non_null(flow_lookup(a.p.st, &t));
	tn_peer_advance(&a.p, 1100000);
	assert_null(flow_lookup(a.p.st, &t));
	tn_peer_free(&a.p);
}

/* The reduction on a loss: NewReno halves the flight (RFC 5681 eq. 4),
 * CUBIC multiplies cwnd by beta = 0.7 (RFC 9438 §4.6). */
static void test_loss_reduction(void **state)
{
	static uint8_t data[10 * 1460];
	const struct { uint8_t cc; uint32_t ssthresh_segs; } cases[] = {
		{ NET_CC_NEWRENO, 5 }, /* flight 10 segments / 2 */
		{ NET_CC_CUBIC, 7 },   /* cwnd 10 segments * 0.7 */
	};
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct tcp_params tp = { .cc = cases[k].cc };
		struct act a;
		struct tn_seg s;
		struct tcp_conn_info i;
		int d;

		act_open(&a, &tp);
		assert_int_equal(tcp_send(a.c, data, sizeof(data)), sizeof(data));
		s = from_peer(&a, TH_ACK, a.peer, a.iss + 1);
		for (d = 0; d < 3; d++)
			tn_peer_send_seg(&a.p, &s);
		tcp_get_info(a.c, &i);
		assert_int_equal(i.ssthresh, cases[k].ssthresh_segs * 1460);
		assert_int_equal(i.cwnd, i.ssthresh + 3 * 1460); /* no SACK: NewReno inflation */
		tn_peer_free(&a.p);
	}
}

/*
 * A Linux receiver reports a hole with ACKs that also open its window
 * (receive-buffer autotuning). By RFC 5681's definition none of them is a
 * duplicate ACK; by RFC 6675's each one is, since it SACKs new data. The
 * third starts the fast retransmit (the stack used to wait for the RTO:
 * a 10 MiB download at 3 % loss took 38 s instead of about one).
 */
static void test_dupacks_with_growing_window(void **state)
{
	static uint8_t data[10 * 1460];
	struct act a;
	struct tn_seg s, r;
	uint32_t base;
	int d;

	(void)state;
	act_syn(&a, NULL);
	s = from_peer(&a, TH_SYN | TH_ACK, a.peer, a.iss + 1);
	tn_opt_mss(&s, 1460);
	tn_opt_sackok(&s);
	tn_peer_send_seg(&a.p, &s);
	a.peer++;
	assert_int_equal(a.connected, 1);
	tn_peer_clear(&a.p);
	base = a.iss + 1;
	assert_int_equal(tcp_send(a.c, data, sizeof(data)), sizeof(data));
	assert_int_equal(a.p.n, 10);
	/* The first segment is lost; the next three arrive. */
	for (d = 1; d <= 3; d++) {
		const uint32_t blk[1][2] = { { base + 1460, base + (uint32_t)(d + 1) * 1460 } };

		s = from_peer(&a, TH_ACK, a.peer, base);
		s.wnd = (uint16_t)(60000 + d * 1000);
		tn_opt_sack(&s, 1, blk);
		tn_peer_send_seg(&a.p, &s);
		assert_int_equal(tn_counter(a.p.st, NET_C_tcp_dupack_rx), (uint64_t)d);
	}
	assert_int_equal(tn_counter(a.p.st, NET_C_tcp_fast_retransmit), 1);
	assert_int_equal(a.p.n, 11);
	tn_peer_tcp(&a.p, 10, &r);
	assert_int_equal(r.seq, base);
	assert_int_equal(r.dlen, 1460);
	/* An ACK that only opens the window, SACKing nothing new, is not a
	 * duplicate (RFC 5681 §2 (e)). */
	s.wnd = 65000;
	tn_peer_send_seg(&a.p, &s);
	assert_int_equal(tn_counter(a.p.st, NET_C_tcp_dupack_rx), 3);
	tn_peer_free(&a.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limited_transmit),
		cmocka_unit_test(test_nagle),
		cmocka_unit_test(test_rto_after_syn_loss),
		cmocka_unit_test(test_syn_sent_answers),
		cmocka_unit_test(test_port_predicate),
		cmocka_unit_test(test_time_wait_restart),
		cmocka_unit_test(test_loss_reduction),
		cmocka_unit_test(test_dupacks_with_growing_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
