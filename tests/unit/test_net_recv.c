/*
 * The receiving side against a scripted sender: delayed ACKs (RFC 9293
 * §3.8.6.3), immediate ACKs with SACK blocks for out-of-order data (RFC
 * 5681 §4.2, RFC 2018 §4: the most recent block first), the window as the
 * buffer fills and empties (never shrinking, RFC 9293 §3.8.6.2.2), and the
 * window scale we offer (RFC 7323 §2).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "net/net_int.h"
#include "test_net_lib.h"

struct rx {
	struct tn_peer p;
	struct tcp_listener *l;
	struct tcp_conn *c;
	uint32_t iss, snd;           /* stack's ISS; peer's next sequence */
	int data_events;
};

static void r_data(struct tcp_conn *c, void *ctx) { (void)c; ((struct rx *)ctx)->data_events++; }
static const struct tcp_ops r_ops = { NULL, r_data, NULL, NULL };

static int r_accept(void *lctx, struct tcp_conn *c)
{
	struct rx *r = lctx;

	r->c = c;
	tcp_set_ops(c, &r_ops, r);
	return 0;
}

/* Handshake with SACK (no timestamps, so offsets are simple); returns the
 * window scale the stack offered. */
static int rx_open(struct rx *r, const struct tcp_params *tp)
{
	struct tn_seg s = { .sport = 41000, .dport = 110, .flags = TH_SYN, .seq = 500, .wnd = 65535 }, a;

	memset(r, 0, sizeof(*r));
	tn_peer_init(&r->p, tp);
	tn_peer_arp(&r->p);
	assert_int_equal(tcp_listen(r->p.st, NULL, 110, r_accept, r, &r->l), 0);
	tn_opt_mss(&s, 1000);
	tn_opt_sackok(&s);
	tn_opt_ws(&s, 2);
	tn_peer_clear(&r->p);
	tn_peer_send_seg(&r->p, &s);
	tn_peer_tcp(&r->p, 0, &a);
	r->iss = a.seq;
	r->snd = 501;
	s = (struct tn_seg){ .sport = 41000, .dport = 110, .flags = TH_ACK, .seq = r->snd, .ack = r->iss + 1,
			     .wnd = 1000 };
	tn_peer_send_seg(&r->p, &s);
	assert_non_null(r->c);
	tn_peer_clear(&r->p);
	return a.ws_ok ? a.ws : -1;
}

static void rx_data(struct rx *r, uint32_t off, uint32_t len)
{
	static uint8_t payload[2000];
	struct tn_seg s = { .sport = 41000, .dport = 110, .flags = TH_ACK | TH_PSH, .seq = r->snd + off,
			    .ack = r->iss + 1, .wnd = 1000, .data = payload, .dlen = len };

	tn_peer_send_seg(&r->p, &s);
}

static void test_delayed_ack(void **state)
{
	struct rx r;
	struct tn_seg a;

	(void)state;
	assert_int_equal(rx_open(&r, NULL), 3); /* 256 KiB buffer: shift 3 */
	rx_data(&r, 0, 100);
	assert_int_equal(r.p.n, 0);
	assert_int_equal(r.data_events, 1);
	tn_peer_advance(&r.p, 30000);
	assert_int_equal(r.p.n, 0);
	tn_peer_advance(&r.p, 30000);
	assert_int_equal(r.p.n, 1);
	tn_peer_tcp(&r.p, 0, &a);
	assert_int_equal(a.ack, r.snd + 100);
	assert_int_equal(tn_counter(r.p.st, NET_C_tcp_delack), 1);
	/* two segments: the second is ACKed at once */
	tn_peer_clear(&r.p);
	rx_data(&r, 100, 1000);
	assert_int_equal(r.p.n, 0);
	rx_data(&r, 1100, 1000);
	assert_int_equal(r.p.n, 1);
	tn_peer_tcp(&r.p, 0, &a);
	assert_int_equal(a.ack, r.snd + 2100);
	tn_peer_free(&r.p);
}

static void test_ooo_sack_blocks(void **state)
{
	struct rx r;
	struct tn_seg a;

	(void)state;
	rx_open(&r, NULL);
	rx_data(&r, 1000, 100);
	assert_int_equal(r.p.n, 1);
	tn_peer_tcp(&r.p, 0, &a);
	assert_int_equal(a.ack, r.snd);
	assert_int_equal(a.nsack, 1);
	assert_int_equal(a.sack[0][0], r.snd + 1000);
	assert_int_equal(a.sack[0][1], r.snd + 1100);
	assert_int_equal(r.data_events, 0);
	rx_data(&r, 2000, 100);
	tn_peer_tcp(&r.p, 1, &a);
	assert_int_equal(a.nsack, 2);
	assert_int_equal(a.sack[0][0], r.snd + 2000); /* most recent first */
	assert_int_equal(a.sack[1][0], r.snd + 1000);
	rx_data(&r, 1100, 100);                       /* extends the older block */
	tn_peer_tcp(&r.p, 2, &a);
	assert_int_equal(a.sack[0][0], r.snd + 1000);
	assert_int_equal(a.sack[0][1], r.snd + 1200);
	assert_int_equal(a.sack[1][0], r.snd + 2000);
	rx_data(&r, 0, 1000);                         /* fills the first hole: ACK now */
	assert_int_equal(r.p.n, 4);
	tn_peer_tcp(&r.p, 3, &a);
	assert_int_equal(a.ack, r.snd + 1200);
	assert_int_equal(a.nsack, 1);
	assert_int_equal(a.sack[0][0], r.snd + 2000);
	rx_data(&r, 1200, 800);
	tn_peer_tcp(&r.p, 4, &a);
	assert_int_equal(a.ack, r.snd + 2100);
	assert_int_equal(a.nsack, 0);
	assert_int_equal(tcp_readable(r.c), 2100);
	assert_int_equal(tn_counter(r.p.st, NET_C_tcp_ooo_segs), 3);
	tn_peer_free(&r.p);
}

/* A buffer that is not read fills; the right edge never moves back; bytes
 * past it are refused; reading opens the window with an update. */
static void test_window(void **state)
{
	struct tcp_params tp = { .rcvbuf = 8192 };
	struct rx r;
	struct tn_seg a;
	uint32_t off = 0, edge = 0, i;
	uint8_t buf[8192];

	(void)state;
	assert_int_equal(rx_open(&r, &tp), 0);
	for (i = 0; i < 8; i++, off += 1000) {
		rx_data(&r, off, 1000);
		if (r.p.n) {
			tn_peer_tcp(&r.p, r.p.n - 1, &a);
			if (edge)
				assert_true(a.ack + a.wnd >= edge); /* never shrinks */
			edge = a.ack + a.wnd;
		}
	}
	tn_peer_advance(&r.p, 100000);
	tn_peer_tcp(&r.p, r.p.n - 1, &a);
	printf("# after %u bytes unread: window %u\n", off, a.wnd);
	assert_true(a.wnd < 1000);
	assert_true(a.ack + a.wnd >= edge);
	/* a segment beyond the window: refused and ACKed */
	tn_peer_clear(&r.p);
	rx_data(&r, off + 1000, 1000);
	assert_int_equal(tn_counter(r.p.st, NET_C_drop_tcp_seq), 1);
	assert_int_equal(r.p.n, 1);
	assert_int_equal(tcp_readable(r.c), 8000);
	/* the application reads: a window update goes out */
	tn_peer_clear(&r.p);
	assert_int_equal(tcp_read(r.c, buf, sizeof(buf)), 8000);
	assert_int_equal(r.p.n, 1);
	tn_peer_tcp(&r.p, 0, &a);
	assert_int_equal(a.ack, r.snd + 8000);
	assert_true(a.wnd >= 4096);
	tn_peer_free(&r.p);
}

/* Data for a connection the application has closed cannot be delivered:
 * the peer gets a RST. */
static void test_data_after_close(void **state)
{
	struct rx r;
	struct tn_seg a;

	(void)state;
	rx_open(&r, NULL);
	tcp_close(r.c);
	assert_int_equal(r.p.n, 1);
	tn_peer_tcp(&r.p, 0, &a);
	assert_true(a.flags & TH_FIN);
	rx_data(&r, 0, 100);
	assert_int_equal(r.p.n, 2);
	tn_peer_tcp(&r.p, 1, &a);
	assert_true(a.flags & TH_RST);
	assert_int_equal(tn_counter(r.p.st, NET_C_tcp_data_after_close), 1);
	assert_int_equal(r.p.st->nconns, 0);
	tn_peer_free(&r.p);
}

static uint64_t ns_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The receive path's cost, measured: 20032 in-order 1000-byte segments
 * through net_input (checksum, lookup, buffer, an ACK every second
 * segment, captured by the test), read out 64 segments at a time. Frame
 * building is not timed. Prints ns per segment; asserts only that every
 * byte arrived (the machine is shared: no timing assertion). */
static void test_receive_cost(void **state)
{
	static uint8_t frames[64][1200], buf[65536];
	uint32_t flen[64], i, k;
	struct rx r;
	uint64_t t0, t_in = 0, total = 0;

	(void)state;
	rx_open(&r, NULL);
	for (i = 0; i < 20000; i += 64) {
		for (k = 0; k < 64; k++) {
			struct tn_seg s = { .sport = 41000, .dport = 110, .flags = TH_ACK, .seq = r.snd + (i + k) * 1000,
					    .ack = r.iss + 1, .wnd = 1000, .data = buf, .dlen = 1000, .src_id = 2,
					    .dst_id = 1 };

			flen[k] = tn_build_tcp(frames[k], &s);
		}
		t0 = ns_now();
		for (k = 0; k < 64; k++)
			net_input(r.p.st, frames[k], flen[k], r.p.now);
		for (ssize_t n; (n = tcp_read(r.c, buf, sizeof(buf))) > 0;)
			total += (uint64_t)n;
		t_in += ns_now() - t0;
		tn_peer_clear(&r.p);
	}
	assert_true(total == (20000u + 63) / 64 * 64 * 1000ull);
	printf("# receive path: %.0f ns per 1000-byte segment with its read and its share of ACKs "
	       "(%.2f Gbit/s of payload on one core)\n", (double)t_in / i, 8000.0 * i / (double)t_in);
	tn_peer_free(&r.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delayed_ack),
		cmocka_unit_test(test_ooo_sack_blocks),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_data_after_close),
		cmocka_unit_test(test_receive_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
