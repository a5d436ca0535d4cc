/*
 * Bulk transfers between two stacks over the simulated link: several MiB
 * from client to server, checked byte for byte (a hash of every byte sent
 * against every byte read), under loss, reordering, duplication, delay and
 * jitter, on IPv4 and IPv6, with NewReno and CUBIC, with and without SACK
 * and timestamps. Virtual time: each case takes well under a second of CPU.
 */
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

struct scenario {
	const char *name;
	uint64_t bytes;
	struct simlink_params link;  /* both directions */
	struct tcp_params tcp;
	bool v6;
	bool expect_retrans;
};

#define MiB (1024ull * 1024)
#define LINK(...) { .delay_us = 5000, .rate_bps = 100000000, .queue_bytes = 256 * 1024, __VA_ARGS__ }

static const struct scenario scenarios[] = {
	{ "clean v4", 4 * MiB, LINK(), { 0 }, false, false },
	{ "clean v6", 4 * MiB, LINK(), { 0 }, true, false },
	{ "1% loss", 4 * MiB, LINK(.loss_ppm = 10000), { 0 }, false, true },
	{ "3% loss v6", 3 * MiB, LINK(.loss_ppm = 30000), { 0 }, true, true },
	{ "reordering 5%", 4 * MiB, LINK(.reorder_ppm = 50000, .reorder_us = 3000), { 0 }, false, false },
	{ "duplication 5%", 4 * MiB, LINK(.dup_ppm = 50000), { 0 }, false, false },
	{ "jitter 0-4 ms", 4 * MiB, LINK(.jitter_us = 4000), { 0 }, false, false },
	{ "everything", 4 * MiB, LINK(.loss_ppm = 10000, .dup_ppm = 20000, .reorder_ppm = 20000,
				       .reorder_us = 2000, .jitter_us = 1000), { 0 }, false, true },
	{ "1% loss, no SACK (NewReno)", 4 * MiB, LINK(.loss_ppm = 10000), { .no_sack = true }, false, true },
	{ "1% loss, no timestamps", 4 * MiB, LINK(.loss_ppm = 10000), { .no_timestamps = true }, false, true },
	{ "1% loss, no options at all", 2 * MiB, LINK(.loss_ppm = 10000),
	  { .no_sack = true, .no_timestamps = true, .no_wscale = true }, false, true },
	{ "1% loss, CUBIC", 4 * MiB, LINK(.loss_ppm = 10000), { .cc = NET_CC_CUBIC }, false, true },
	{ "small buffers (16 KiB)", 2 * MiB, LINK(.loss_ppm = 5000), { .sndbuf = 16384, .rcvbuf = 16384 }, false, true },
	{ "MTU 1280 v6", 2 * MiB, LINK(.mtu = 1280, .loss_ppm = 5000), { 0 }, true, true },
};

static void run_scenario(const struct scenario *sc, uint64_t seed)
{
	struct tn_bulk b;
	struct simlink_params p = sc->link;
	bool done;
	uint64_t rtx;

	tn_bulk_init(&b, seed, &p, &p, &sc->tcp, sc->v6);
	if (sc->link.mtu) {
		/* both stacks know the MTU of the link */
		b.a->cfg.mtu = b.b->cfg.mtu = sc->link.mtu;
	}
	done = tn_bulk_run(&b, sc->bytes, 600ull * 1000000);
	rtx = tn_counter(b.a, NET_C_tcp_retrans_segs);
	printf("# %-32s seed %llu: %s in %.2f s virtual, %llu segs, %llu retransmitted, %llu RTOs, "
	       "%llu fast retransmits\n",
	       sc->name, (unsigned long long)seed, done ? "done" : "NOT DONE", simlink_now(b.l) / 1e6,
	       (unsigned long long)tn_counter(b.a, NET_C_tcp_segs_tx), (unsigned long long)rtx,
	       (unsigned long long)tn_counter(b.a, NET_C_tcp_rto),
	       (unsigned long long)tn_counter(b.a, NET_C_tcp_fast_retransmit));
	assert_true(done);
	assert_int_equal(b.client_err, 0);
	assert_int_equal(b.server_err, 0);
	assert_true(b.sent == sc->bytes);
	assert_true(b.received == sc->bytes);
	assert_true(b.hash_rx == b.hash_tx);
	if (sc->expect_retrans)
		assert_true(rtx > 0);
	if (!sc->link.loss_ppm && !sc->link.mtu)
		assert_int_equal(tn_counter(b.a, NET_C_tcp_rto), 0);
	tn_bulk_free(&b);
}

static void test_scenarios(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		run_scenario(&scenarios[i], 1000 + i);
}

/* The same seed gives the same run: the simulation is deterministic. */
static void test_deterministic(void **state)
{
	struct simlink_params p = LINK(.loss_ppm = 20000, .reorder_ppm = 20000, .reorder_us = 2000);
	uint64_t t[2], segs[2];
	int k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct tn_bulk b;

		tn_bulk_init(&b, 42, &p, &p, NULL, false);
		assert_true(tn_bulk_run(&b, 1 * MiB, 600ull * 1000000));
		t[k] = simlink_now(b.l);
		segs[k] = tn_counter(b.a, NET_C_tcp_segs_tx);
		tn_bulk_free(&b);
	}
	assert_true(t[0] == t[1]);
	assert_true(segs[0] == segs[1]);
}

/* A bottleneck that drops from a short tail-drop queue (no random loss):
 * congestion control alone decides the losses. Prints the link
 * utilization for NewReno and CUBIC; asserts the transfer is whole and the
 * link at least half used. */
static void test_bottleneck(void **state)
{
	const uint8_t ccs[2] = { NET_CC_NEWRENO, NET_CC_CUBIC };
	int k;

	(void)state;
	for (k = 0; k < 2; k++) {
		struct simlink_params fwd = { .delay_us = 10000, .rate_bps = 20000000, .queue_bytes = 40000 };
		struct simlink_params rev = { .delay_us = 10000 };
		struct tcp_params tp = { .cc = ccs[k] };
		struct tn_bulk b;
		double secs, util;

		tn_bulk_init(&b, 77, &fwd, &rev, &tp, false);
		assert_true(tn_bulk_run(&b, 8 * MiB, 600ull * 1000000));
		assert_true(b.received == 8 * MiB && b.hash_rx == b.hash_tx);
		secs = simlink_now(b.l) / 1e6;
		util = 8.0 * 8 * MiB / secs / 20e6;
		printf("# 20 Mbit/s, 20 ms RTT, 40 kB queue, %s: 8 MiB in %.2f s, %.0f%% of the link, "
		       "%llu queue drops, %llu retransmitted, %llu RTOs\n", k ? "CUBIC" : "NewReno", secs, util * 100,
		       (unsigned long long)simlink_stats(b.l, 0)->queue_dropped,
		       (unsigned long long)tn_counter(b.a, NET_C_tcp_retrans_segs),
		       (unsigned long long)tn_counter(b.a, NET_C_tcp_rto));
		assert_true(util > 0.5);
		tn_bulk_free(&b);
	}
}

static uint64_t mono_ns(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The cycle accounting hooks, fed with a nanosecond clock: every frame is
 * counted, and what the connections were charged is part of the total.
 * Prints the cost per frame and per MiB of this run (not asserted: the
 * machine is shared). */
static void test_cycle_accounting(void **state)
{
	struct simlink_params p = LINK();
	struct net_cycle_stats ca, cb;
	struct tn_bulk b;

	(void)state;
	tn_bulk_init(&b, 5, &p, &p, NULL, false);
	b.a->cfg.cycles = b.b->cfg.cycles = mono_ns;
	assert_true(tn_bulk_run(&b, 8 * MiB, 60ull * 1000000));
	assert_true(b.hash_rx == b.hash_tx);
	net_cycle_stats(b.a, &ca);
	net_cycle_stats(b.b, &cb);
	assert_int_equal(cb.rx_frames, tn_counter(b.b, NET_C_rx_frames));
	assert_int_equal(ca.rx_frames, tn_counter(b.a, NET_C_rx_frames));
	assert_true(cb.rx_cycles > 0 && ca.api_calls > 0 && ca.api_cycles > 0);
	assert_true(b.server_cycles > 0 && b.server_cycles <= cb.rx_cycles + cb.poll_cycles + cb.api_cycles);
	assert_true(b.client_cycles > 0 && b.client_cycles <= ca.rx_cycles + ca.poll_cycles + ca.api_cycles);
	printf("# receiver: %llu frames, %.0f ns/frame in net_input; %.0f ns/MiB all told\n",
	       (unsigned long long)cb.rx_frames, (double)cb.rx_cycles / (double)cb.rx_frames,
	       (double)(cb.rx_cycles + cb.poll_cycles + cb.api_cycles) / 8);
	printf("# sender: %llu frames (ACKs), %.0f ns/frame; %llu API calls, %.0f ns/MiB all told\n",
	       (unsigned long long)ca.rx_frames, (double)ca.rx_cycles / (double)ca.rx_frames,
	       (unsigned long long)ca.api_calls, (double)(ca.rx_cycles + ca.poll_cycles + ca.api_cycles) / 8);
	tn_bulk_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_cycle_accounting),
		cmocka_unit_test(test_bottleneck),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
