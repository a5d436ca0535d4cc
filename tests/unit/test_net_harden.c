/*
 * The native stack under attack and under load (issue 12), against a
 * scripted peer in virtual time: the RFC 5961 challenge-ACK budget is not
 * countable off-path and one connection cannot spend it (CVE-2016-5696);
 * bytes received before a RST are still delivered; TIME_WAIT holds no
 * buffers and no slot of max_conns; a full table answers with RST; active
 * opens reuse TIME_WAIT ports (RFC 6191); a PMTU learnt from ICMP ages
 * back to the link's (RFC 1191 §6.3).
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

#define LPORT 25
#define NCONN 64

/* What the application saw on one connection. */
struct app {
	struct tcp_conn *c;
	int accepted, connected, data, closed, err;
};

static void a_connected(struct tcp_conn *c, void *ctx) { struct app *a = ctx; a->c = c; a->connected++; }
static void a_data(struct tcp_conn *c, void *ctx) { (void)c; ((struct app *)ctx)->data++; }
static void a_writable(struct tcp_conn *c, void *ctx) { (void)c; (void)ctx; }
static void a_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct app *a = ctx;

	(void)c;
	a->closed++;
	a->err = err;
	a->c = NULL;
}
static const struct tcp_ops app_ops = { a_connected, a_data, a_writable, a_closed };

/* The listener hands connection k the app slot k (in accept order). */
struct farm {
	struct tn_peer p;
	struct tcp_listener *l;
	struct app app[NCONN];
	int naccepted;
	uint32_t iss[NCONN], snd[NCONN]; /* the stack's ISS, the peer's next sequence */
	uint32_t peer_ts;
};

static int f_accept(void *lctx, struct tcp_conn *c)
{
	struct farm *f = lctx;
	struct app *a = &f->app[f->naccepted++];

	a->accepted++;
	a->c = c;
	tcp_set_ops(c, &app_ops, a);
	return 0;
}

static void farm_init(struct farm *f, const struct tcp_params *tp)
{
	memset(f, 0, sizeof(*f));
	tn_peer_init(&f->p, tp);
	tn_peer_arp(&f->p);
	assert_int_equal(tcp_listen(f->p.st, NULL, LPORT, f_accept, f, &f->l), 0);
	f->peer_ts = 100;
}

/* A segment from the peer's port 40000 + k. */
static struct tn_seg fseg(struct farm *f, int k, uint8_t flags, uint32_t seq, uint32_t ack)
{
	struct tn_seg s = { .sport = (uint16_t)(40000 + k), .dport = LPORT, .flags = flags, .seq = seq,
			    .ack = ack, .wnd = 65535 };

	tn_opt_ts(&s, ++f->peer_ts, 0);
	return s;
}

/* Handshake from peer port 40000 + k. Returns the stack's first answer's flags. */
static uint8_t farm_open(struct farm *f, int k)
{
	struct tn_seg s = fseg(f, k, TH_SYN, 1000u * (uint32_t)k, 0), r;

	tn_peer_clear(&f->p);
	tn_peer_send_seg(&f->p, &s);
	assert_int_equal(f->p.n, 1);
	tn_peer_tcp(&f->p, 0, &r);
	if (r.flags != (TH_SYN | TH_ACK))
		return r.flags;
	f->iss[k] = r.seq;
	f->snd[k] = 1000u * (uint32_t)k + 1;
	s = fseg(f, k, TH_ACK, f->snd[k], r.seq + 1);
	tn_peer_send_seg(&f->p, &s);
	return r.flags;
}

/* ---- RFC 5961 §7 and CVE-2016-5696 ---- */

/* The stack-wide budget of challenge ACKs is drawn afresh every second in
 * [limit/2, limit*3/2): an off-path prober that fills it with its own
 * challenges cannot tell how many a victim connection took. */
static void test_challenge_budget_random(void **state)
{
	struct tcp_params tp = { .challenge_ack_limit = 20 };
	uint32_t counts[8], i, distinct = 0;
	struct farm *f = calloc(1, sizeof(*f));
	int k;

	(void)state;
	farm_init(f, &tp);
	for (k = 0; k < 40; k++)
		farm_open(f, k);
	assert_int_equal(f->naccepted, 40);
	for (i = 0; i < 8; i++) {
		tn_peer_advance(&f->p, 1000000);
		tn_peer_arp(&f->p); /* keep the neighbour entry fresh: only TCP answers */
		tn_peer_clear(&f->p);
		for (k = 0; k < 40; k++) {
			struct tn_seg s = fseg(f, k, TH_RST, f->snd[k] + 100, 0);

			tn_peer_send_seg(&f->p, &s);
		}
		counts[i] = tn_peer_count_tcp(&f->p, 0, TH_ACK, TH_ACK);
		printf("# second %u: %u challenge ACKs\n", i, counts[i]);
		assert_true(counts[i] >= 10 && counts[i] < 30);
	}
	for (i = 0; i < 8; i++) {
		uint32_t j;

		for (j = 0; j < i && counts[j] != counts[i]; j++)
			;
		if (j == i)
			distinct++;
	}
	assert_true(distinct >= 3);
	for (k = 0; k < 40; k++)
		assert_int_equal(f->app[k].closed, 0);
	tn_peer_free(&f->p);
	free(f);
}

/* One connection gets at most one challenge ACK per 500 ms, whatever the
 * stack's budget (Linux's tcp_invalid_ratelimit). */
static void test_challenge_per_conn(void **state)
{
	struct farm *f = calloc(1, sizeof(*f));
	int i;

	(void)state;
	farm_init(f, NULL);
	farm_open(f, 0);
	tn_peer_clear(&f->p);
	for (i = 0; i < 10; i++) {
		struct tn_seg s = fseg(f, 0, TH_RST, f->snd[0] + 10 + (uint32_t)i, 0);

		tn_peer_send_seg(&f->p, &s);
	}
	assert_int_equal(tn_peer_count_tcp(&f->p, 0, TH_ACK, TH_ACK), 1);
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_challenge_ack), 1);
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_challenge_ack_conn_limited), 9);
	tn_peer_advance(&f->p, 499000);
	{
		struct tn_seg s = fseg(f, 0, TH_SYN, f->snd[0] + 5, 0); /* a SYN: challenged too */

		tn_peer_send_seg(&f->p, &s);
	}
	assert_int_equal(tn_peer_count_tcp(&f->p, 0, TH_ACK, TH_ACK), 1);
	tn_peer_advance(&f->p, 1000);
	{
		struct tn_seg s = fseg(f, 0, TH_SYN, f->snd[0] + 5, 0);

		tn_peer_send_seg(&f->p, &s);
	}
	assert_int_equal(tn_peer_count_tcp(&f->p, 0, TH_ACK, TH_ACK), 2);
	assert_int_equal(f->app[0].closed, 0);
	tn_peer_free(&f->p);
	free(f);
}

/* ---- a RST after data ---- */

/* A backend's "250" followed by its RST: the bytes were received and
 * acknowledged, so they are delivered, and only then the reset. */
static void test_rst_after_data(void **state)
{
	static const char reply[] = "250 2.0.0 Ok: queued\r\n";
	struct farm *f = calloc(1, sizeof(*f));
	struct tn_seg s;
	char buf[64];
	uint32_t n = sizeof(reply) - 1;

	(void)state;
	farm_init(f, NULL);
	farm_open(f, 0);
	s = fseg(f, 0, TH_ACK | TH_PSH, f->snd[0], f->iss[0] + 1);
	s.data = (const uint8_t *)reply;
	s.dlen = n;
	tn_peer_send_seg(&f->p, &s);
	f->snd[0] += n;
	assert_int_equal(f->app[0].data, 1);
	s = fseg(f, 0, TH_RST, f->snd[0], 0);
	tn_peer_send_seg(&f->p, &s);
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_rst_rx), 1);
	assert_int_equal(f->app[0].closed, 0);            /* not yet: bytes to read */
	assert_non_null(f->app[0].c);
	assert_int_equal(tcp_readable(f->app[0].c), n);
	assert_int_equal(tcp_read(f->app[0].c, buf, sizeof(buf)), n);
	assert_memory_equal(buf, reply, n);
	assert_int_equal(tcp_read(f->app[0].c, buf, sizeof(buf)), -ECONNRESET);
	assert_int_equal(tcp_send(f->app[0].c, "x", 1), -ECONNRESET);
	tcp_close(f->app[0].c);
	assert_int_equal(f->app[0].closed, 0);
	tn_peer_free(&f->p);
	free(f);
}

/* The same through the stream adapter the session reads: readable with
 * the bytes, then failed with ECONNRESET. */
static void test_rst_after_data_stream(void **state)
{
	static const char reply[] = "250 ok\r\n";
	struct farm *f = calloc(1, sizeof(*f));
	struct tcp_stream ts;
	struct buf b = { 0 };
	struct tn_seg s;

	(void)state;
	farm_init(f, NULL);
	farm_open(f, 0);
	tcp_stream_attach(&ts, f->app[0].c, SK_BACKEND, NULL, NULL, NULL);
	s = fseg(f, 0, TH_ACK | TH_PSH, f->snd[0], f->iss[0] + 1);
	s.data = (const uint8_t *)reply;
	s.dlen = 8;
	tn_peer_send_seg(&f->p, &s);
	s = fseg(f, 0, TH_RST, f->snd[0] + 8, 0);
	tn_peer_send_seg(&f->p, &s);
	assert_true(ts.s.readable);
	assert_false(ts.s.failed);
	assert_int_equal(tcp_stream_recv(&ts, &b), 8);
	assert_memory_equal(buf_head(&b), reply, 8);
	assert_int_equal(tcp_stream_recv(&ts, &b), 0);
	assert_true(ts.s.failed);
	assert_int_equal(ts.s.err, ECONNRESET);
	tcp_stream_close(&ts);
	buf_free(&b);
	tn_peer_free(&f->p);
	free(f);
}

/* ---- TIME_WAIT and the connection table ---- */

/* We close first; the peer's FIN puts connection k in TIME_WAIT. */
static void close_to_timewait(struct farm *f, int k)
{
	struct tcp_conn *c = f->app[k].c;
	struct tn_seg s, r;

	tn_peer_clear(&f->p);
	tcp_close(c);
	tn_peer_tcp(&f->p, f->p.n - 1, &r);
	assert_true(r.flags & TH_FIN);
	s = fseg(f, k, TH_ACK | TH_FIN, f->snd[k], r.seq + 1);
	tn_peer_send_seg(&f->p, &s);
	f->snd[k]++;
	assert_int_equal(c->state, TCPS_TIME_WAIT);
}

/* A connection in TIME_WAIT keeps neither buffer nor a slot of max_conns
 * (an established one holds none either until a byte comes: tcp_buf.c):
 * with max_conns 4 and 4 connections in TIME_WAIT, 4 more open normally
 * (no SYN cookie, no drop). */
static void test_timewait_light(void **state)
{
	struct tcp_params tp = { .max_conns = 4 };
	struct farm *f = calloc(1, sizeof(*f));
	struct net_conn_stats cs;
	int k;

	(void)state;
	farm_init(f, &tp);
	for (k = 0; k < 4; k++)
		assert_int_equal(farm_open(f, k), TH_SYN | TH_ACK);
	net_conn_stats(f->p.st, &cs);
	assert_int_equal(cs.conns, 4);
	assert_int_equal(cs.buf_bytes, 0);
	for (k = 0; k < 4; k++) {
		struct tcp_conn *c = f->app[k].c;

		close_to_timewait(f, k);
		assert_null(c->sbuf);
		assert_null(c->rbuf);
	}
	net_conn_stats(f->p.st, &cs);
	assert_int_equal(cs.conns, 0);
	assert_int_equal(cs.timewait, 4);
	assert_int_equal(cs.buf_bytes, 0);
	for (k = 4; k < 8; k++)
		assert_int_equal(farm_open(f, k), TH_SYN | TH_ACK);
	assert_int_equal(f->naccepted, 8);
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_syncookie_tx), 0);
	net_conn_stats(f->p.st, &cs);
	assert_int_equal(cs.conns, 4);
	assert_int_equal(cs.timewait, 4);
	tn_peer_free(&f->p);
	free(f);
}

/* No more than max_conns TIME_WAIT records either: the oldest goes. */
static void test_timewait_recycled(void **state)
{
	struct tcp_params tp = { .max_conns = 2 };
	struct farm *f = calloc(1, sizeof(*f));
	struct net_conn_stats cs;
	int k;

	(void)state;
	farm_init(f, &tp);
	for (k = 0; k < 5; k++) {
		assert_int_equal(farm_open(f, k), TH_SYN | TH_ACK);
		close_to_timewait(f, k);
	}
	net_conn_stats(f->p.st, &cs);
	assert_int_equal(cs.timewait, 2);
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_tw_recycled), 3);
	tn_peer_free(&f->p);
	free(f);
}

/* A full table answers a SYN with RST (never silence), counted; so does a
 * valid SYN cookie's ACK when the table is full. */
static void test_table_full_rst(void **state)
{
	struct tcp_params tp = { .max_conns = 3 };
	struct farm *f = calloc(1, sizeof(*f));
	struct tn_seg s, r;
	int k;

	(void)state;
	farm_init(f, &tp);
	for (k = 0; k < 3; k++)
		assert_int_equal(farm_open(f, k), TH_SYN | TH_ACK);
	for (k = 3; k < 10; k++) {
		s = fseg(f, k, TH_SYN, 5000, 0);
		tn_peer_clear(&f->p);
		tn_peer_send_seg(&f->p, &s);
		assert_int_equal(f->p.n, 1);
		tn_peer_tcp(&f->p, 0, &r);
		assert_int_equal(r.flags, TH_RST | TH_ACK);
		assert_int_equal(r.ack, 5001);
	}
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_conn_limit_rst), 7);
	assert_int_equal(f->naccepted, 3);
	/* room again: a SYN is served */
	tcp_abort(f->app[0].c);
	assert_int_equal(farm_open(f, 20), TH_SYN | TH_ACK);
	tn_peer_free(&f->p);
	free(f);

	/* cookies always on: a cookie's ACK that finds the table full */
	f = calloc(1, sizeof(*f));
	tp.syncookies = 1;
	tp.max_conns = 1;
	farm_init(f, &tp);
	tn_peer_clear(&f->p);
	s = fseg(f, 1, TH_SYN, 7000, 0);
	tn_peer_send_seg(&f->p, &s);
	tn_peer_tcp(&f->p, 0, &r);
	assert_int_equal(r.flags, TH_SYN | TH_ACK);      /* the cookie */
	assert_int_equal(farm_open(f, 0), TH_SYN | TH_ACK);
	assert_int_equal(f->naccepted, 1);                /* the table is full now */
	tn_peer_clear(&f->p);
	s = fseg(f, 1, TH_ACK, 7001, r.seq + 1);
	tn_peer_send_seg(&f->p, &s);
	tn_peer_tcp(&f->p, 0, &r);
	assert_true(r.flags & TH_RST);
	assert_int_equal(f->naccepted, 1);
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_conn_limit_rst), 1);
	tn_peer_free(&f->p);
	free(f);
}

/* A SYN flood does not lock the table: half-open connections are bounded
 * by syn_backlog, not counted in max_conns, and cookies answer beyond;
 * real clients then take the table's slots. */
static void test_syn_flood(void **state)
{
	struct tcp_params tp = { .max_conns = 4, .syn_backlog = 8 };
	struct farm *f = calloc(1, sizeof(*f));
	struct net_conn_stats cs;
	int k;

	(void)state;
	farm_init(f, &tp);
	tn_peer_clear(&f->p);
	for (k = 0; k < 50; k++) {          /* SYNs never completed, from ports 40100.. */
		struct tn_seg s = fseg(f, 100 + k, TH_SYN, 100000u * (uint32_t)k, 0);

		tn_peer_send_seg(&f->p, &s);
	}
	assert_int_equal(tn_peer_count_tcp(&f->p, 0, TH_RST, TH_RST), 0);
	assert_int_equal(tn_peer_count_tcp(&f->p, 0, 0xff, TH_SYN | TH_ACK), 50);
	assert_int_equal(tn_counter(f->p.st, NET_C_tcp_syncookie_tx), 42);
	for (k = 0; k < 4; k++)
		assert_int_equal(farm_open(f, k), TH_SYN | TH_ACK);
	assert_int_equal(f->naccepted, 4);
	for (k = 0; k < 4; k++)
		assert_non_null(f->app[k].c);
	net_conn_stats(f->p.st, &cs);
	assert_int_equal(cs.conns, 4);
	assert_int_equal(farm_open(f, 4), TH_RST | TH_ACK); /* now the table is full */
	tn_peer_free(&f->p);
	free(f);
}

/* ---- active opens and TIME_WAIT ports ---- */

/* sluice closes the backend connection first, so each leaves a TIME_WAIT
 * on our side: 40 connections through a range of 10 ports, 100 ms apart
 * (well within 2 MSL), all open; a reused 4-tuple starts above the old
 * connection's sequence space and timestamps (RFC 6191, RFC 7323 App. B.2). */
static void test_tw_port_reuse(void **state)
{
	struct tcp_params tp = { .port_lo = 40000, .port_hi = 40009 };
	struct tn_peer p;
	uint32_t last_seq[10] = { 0 }, last_ts[10] = { 0 }, peer_ts = 1;
	bool used[10] = { false };
	int i, reused = 0;

	(void)state;
	tn_peer_init(&p, &tp);
	for (i = 0; i < 40; i++) {
		struct tcp_connect_req req = { .raddr = tn_ip4(2), .rport = 25, .ops = &app_ops };
		struct app a = { 0 };
		struct tcp_conn *c;
		struct tn_seg s, r;
		int slot;

		req.ctx = &a;
		tn_peer_arp(&p);
		tn_peer_clear(&p);
		assert_int_equal(tcp_connect(p.st, &req, &c), 0);
		tn_peer_tcp(&p, p.n - 1, &r);
		assert_int_equal(r.flags, TH_SYN);
		assert_true(r.ts_ok);
		slot = r.sport - 40000;
		assert_true(slot >= 0 && slot < 10);
		if (used[slot]) {
			reused++;
			assert_true(seq_gt(r.seq, last_seq[slot]));
			assert_true(seq_gt(r.tsval, last_ts[slot]));
		}
		s = (struct tn_seg){ .sport = 25, .dport = r.sport, .flags = TH_SYN | TH_ACK, .seq = 9000,
				     .ack = r.seq + 1, .wnd = 65535 };
		tn_opt_ts(&s, ++peer_ts, r.tsval);
		tn_peer_send_seg(&p, &s);
		assert_int_equal(a.connected, 1);
		tn_peer_clear(&p);
		tcp_close(c);
		tn_peer_tcp(&p, p.n - 1, &r);
		assert_true(r.flags & TH_FIN);
		s = (struct tn_seg){ .sport = 25, .dport = r.sport, .flags = TH_ACK | TH_FIN, .seq = 9001,
				     .ack = r.seq + 1, .wnd = 65535 };
		tn_opt_ts(&s, ++peer_ts, r.tsval);
		tn_peer_send_seg(&p, &s);
		assert_int_equal(c->state, TCPS_TIME_WAIT);
		tn_peer_tcp(&p, p.n - 1, &r);            /* our last ACK */
		used[slot] = true;
		last_seq[slot] = r.seq;
		last_ts[slot] = r.tsval;
		tn_peer_advance(&p, 100000);
	}
	assert_int_equal(reused, 30);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_tw_reuse_connect), 30);
	tn_peer_free(&p);
}

/* ---- path MTU ---- */

/* RFC 1191 §6.3: a PMTU learnt from "fragmentation needed" is raised back
 * to the link's MTU after 10 minutes (and lowered again by the next ICMP
 * if the path still needs it). */
static void test_pmtu_aging(void **state)
{
	struct tn_peer p;
	struct tcp_conn *c;
	struct tcp_connect_req req = { .raddr = tn_ip4(2), .rport = 25 };
	struct net_addr a1 = tn_ip4(1), a2 = tn_ip4(2);
	uint8_t f[1600], data[3000] = { 0 };
	struct tn_seg s, r;
	uint32_t peer_seq = 2;

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_arp(&p);
	tn_peer_clear(&p);
	assert_int_equal(tcp_connect(p.st, &req, &c), 0);
	tn_peer_tcp(&p, 0, &r);
	s = (struct tn_seg){ .sport = 25, .dport = r.sport, .flags = TH_SYN | TH_ACK, .seq = 1, .ack = r.seq + 1,
			     .wnd = 65535 };
	tn_opt_mss(&s, 1460);
	tn_peer_send_seg(&p, &s);
	tn_peer_clear(&p);
	assert_int_equal(tcp_send(c, data, 1460), 1460);
	tn_peer_tcp(&p, 0, &r);
	assert_int_equal(r.dlen, 1460);
	/* a router says: 1200 */
	memset(f, 0, sizeof(f));
	memcpy(f, p.frame[0] + 6, 6);
	memcpy(f + 6, p.frame[0], 6);
	wr16(f + 12, ETH_P_IP4);
	f[34] = 3;
	f[35] = 4;
	wr16(f + 40, 1200);
	memcpy(f + 42, p.frame[0] + 14, 28);
	wr16(f + 36, csum_fold(csum_add(0, f + 34, 36)));
	ip4_header(f + 14, &a2, &a1, 1, 36, false);
	tn_peer_send(&p, f, 70);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_pmtu_reduced), 1);
	/* everything acknowledged */
	s = (struct tn_seg){ .sport = 25, .dport = r.sport, .flags = TH_ACK, .seq = peer_seq, .ack = c->snd_max,
			     .wnd = 65535 };
	tn_peer_send_seg(&p, &s);
	assert_int_equal(c->snd_una, c->snd_max);
	/* 9 minutes on: still 1200 */
	tn_peer_advance(&p, 9 * 60 * 1000000ull);
	tn_peer_arp(&p);
	tn_peer_clear(&p);
	assert_int_equal(tcp_send(c, data, sizeof(data)), sizeof(data));
	tn_peer_tcp(&p, 0, &r);
	assert_true(r.dlen <= 1200 - 40);
	s.ack = c->snd_max;
	tn_peer_send_seg(&p, &s);
	tn_peer_send_seg(&p, &s);
	/* past 10 minutes: the link's 1500 again */
	tn_peer_advance(&p, 61 * 1000000ull);
	tn_peer_arp(&p);
	tn_peer_clear(&p);
	s.ack = c->snd_max;
	tn_peer_send_seg(&p, &s);
	assert_int_equal(c->snd_una, c->snd_max);
	tn_peer_clear(&p);
	assert_int_equal(tcp_send(c, data, sizeof(data)), sizeof(data));
	tn_peer_tcp(&p, 0, &r);
	assert_int_equal(r.dlen, 1460);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_pmtu_raised), 1);
	tn_peer_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_challenge_budget_random),
		cmocka_unit_test(test_challenge_per_conn),
		cmocka_unit_test(test_rst_after_data),
		cmocka_unit_test(test_rst_after_data_stream),
		cmocka_unit_test(test_timewait_light),
		cmocka_unit_test(test_timewait_recycled),
		cmocka_unit_test(test_table_full_rst),
		cmocka_unit_test(test_syn_flood),
		cmocka_unit_test(test_tw_port_reuse),
		cmocka_unit_test(test_pmtu_aging),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
