/* Helpers for the native stack's tests (see test_net_lib.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include <cmocka.h>

#include "net/net_int.h"
#include "test_net_lib.h"

void tn_mac(uint8_t mac[6], int id)
{
	static const uint8_t m[6] = { 0x02, 0, 0, 0, 0, 0 };

	memcpy(mac, m, 6);
	mac[5] = (uint8_t)id;
}

struct net_addr tn_ip4(int id)
{
	struct net_addr a = { .family = NET_AF4, .a = { 192, 0, 2, 0 } };

	a.a[3] = (uint8_t)id;
	return a;
}

struct net_addr tn_ip6(int id)
{
	struct net_addr a = { .family = NET_AF6, .a = { 0x20, 0x01, 0x0d, 0xb8 } };

	a.a[15] = (uint8_t)id;
	return a;
}

void tn_config(struct net_config *cfg, int id, const struct tcp_params *tp)
{
	struct net_addr a4 = tn_ip4(id), a6 = tn_ip6(id);
	int i;

	memset(cfg, 0, sizeof(*cfg));
	tn_mac(cfg->mac, id);
	cfg->has_ip4 = cfg->has_ip6 = true;
	memcpy(cfg->ip4, a4.a, 4);
	cfg->ip4_plen = 24;
	memcpy(cfg->ip6, a6.a, 16);
	cfg->ip6_plen = 64;
	for (i = 0; i < 16; i++)
		cfg->secret[i] = (uint8_t)(id * 31 + i);
	if (tp)
		cfg->tcp = *tp;
}

/* ---- frames ---- */

static void opt_put(struct tn_seg *s, const uint8_t *o, uint32_t n)
{
	memcpy(s->opt + s->optlen, o, n);
	s->optlen += n;
}

void tn_opt_mss(struct tn_seg *s, uint16_t mss)
{
	uint8_t o[4] = { 2, 4, (uint8_t)(mss >> 8), (uint8_t)mss };

	opt_put(s, o, 4);
}

void tn_opt_ws(struct tn_seg *s, uint8_t ws)
{
	uint8_t o[4] = { 1, 3, 3, ws };

	opt_put(s, o, 4);
}

void tn_opt_sackok(struct tn_seg *s)
{
	uint8_t o[4] = { 1, 1, 4, 2 };

	opt_put(s, o, 4);
}

void tn_opt_ts(struct tn_seg *s, uint32_t tsval, uint32_t tsecr)
{
	uint8_t o[12] = { 1, 1, 8, 10 };

	wr32(o + 4, tsval);
	wr32(o + 8, tsecr);
	opt_put(s, o, 12);
}

void tn_opt_sack(struct tn_seg *s, int n, const uint32_t (*blocks)[2])
{
	uint8_t o[36] = { 1, 1, 5, (uint8_t)(2 + 8 * n) };
	int i;

	for (i = 0; i < n; i++) {
		wr32(o + 4 + 8 * i, blocks[i][0]);
		wr32(o + 8 + 8 * i, blocks[i][1]);
	}
	opt_put(s, o, 4 + 8 * (uint32_t)n);
}

uint32_t tn_build_tcp(uint8_t *f, const struct tn_seg *s)
{
	struct net_addr src = s->v6 ? tn_ip6(s->src_id) : tn_ip4(s->src_id);
	struct net_addr dst = s->v6 ? tn_ip6(s->dst_id) : tn_ip4(s->dst_id);
	uint32_t iph = s->v6 ? 40 : 20, thl = 20 + ((s->optlen + 3) & ~3u), tlen = thl + s->dlen;
	uint8_t *ip = f + 14, *th = ip + iph;

	tn_mac(f, s->dst_id);
	tn_mac(f + 6, s->src_id);
	wr16(f + 12, s->v6 ? ETH_P_IP6 : ETH_P_IP4);
	memset(th, 0, thl);
	wr16(th, s->sport);
	wr16(th + 2, s->dport);
	wr32(th + 4, s->seq);
	wr32(th + 8, s->ack);
	th[12] = (uint8_t)((thl / 4) << 4);
	th[13] = s->flags;
	wr16(th + 14, s->wnd);
	memcpy(th + 20, s->opt, s->optlen);
	if (s->dlen)
		memcpy(th + thl, s->data, s->dlen);
	wr16(th + 16, csum_fold(csum_add(csum_pseudo(&src, &dst, 6, tlen), th, tlen)));
	if (s->v6)
		ip6_header(ip, &src, &dst, 6, tlen, 64);
	else
		ip4_header(ip, &src, &dst, 6, tlen, true);
	return 14 + iph + tlen;
}

bool tn_parse_tcp(const uint8_t *f, uint32_t len, struct tn_seg *s)
{
	const uint8_t *ip = f + 14, *th, *o;
	uint32_t iph, tlen, doff, i;

	memset(s, 0, sizeof(*s));
	if (len < 14 + 20)
		return false;
	if (rd16(f + 12) == ETH_P_IP4 && ip[9] == 6) {
		iph = (ip[0] & 15u) * 4;
		tlen = rd16(ip + 2) - iph;
		s->src_id = ip[15];
		s->dst_id = ip[19];
	} else if (rd16(f + 12) == ETH_P_IP6 && ip[6] == 6) {
		iph = 40;
		tlen = rd16(ip + 4);
		s->v6 = true;
		s->src_id = ip[23];
		s->dst_id = ip[39];
	} else {
		return false;
	}
	th = ip + iph;
	s->sport = rd16(th);
	s->dport = rd16(th + 2);
	s->seq = rd32(th + 4);
	s->ack = rd32(th + 8);
	doff = (uint32_t)(th[12] >> 4) * 4;
	s->flags = th[13];
	s->wnd = rd16(th + 14);
	s->data = th + doff;
	s->dlen = tlen - doff;
	o = th + 20;
	for (i = 0; i < doff - 20;) {
		uint8_t k = o[i];

		if (k == 0)
			break;
		if (k == 1) {
			i++;
			continue;
		}
		switch (k) {
		case 2: s->mss_ok = true; s->mss = rd16(o + i + 2); break;
		case 3: s->ws_ok = true; s->ws = o[i + 2]; break;
		case 4: s->sack_ok = true; break;
		case 5:
			s->nsack = (uint8_t)((o[i + 1] - 2) / 8);
			for (uint32_t b = 0; b < s->nsack; b++) {
				s->sack[b][0] = rd32(o + i + 2 + 8 * b);
				s->sack[b][1] = rd32(o + i + 6 + 8 * b);
			}
			break;
		case 8: s->ts_ok = true; s->tsval = rd32(o + i + 2); s->tsecr = rd32(o + i + 6); break;
		}
		i += o[i + 1];
	}
	return true;
}

/* ---- scripted peer ---- */

static void capture(void *ctx, const uint8_t *f, uint32_t len)
{
	struct tn_peer *p = ctx;

	assert_true(p->n < TN_MAX_FRAMES);
	p->frame[p->n] = malloc(len);
	assert_non_null(p->frame[p->n]);
	memcpy(p->frame[p->n], f, len);
	p->len[p->n] = len;
	p->at[p->n] = p->now;
	p->n++;
}

void tn_peer_init_neigh(struct tn_peer *p, const struct tcp_params *tp, const struct net_neigh *n,
			uint32_t nn)
{
	struct net_config cfg;

	memset(p, 0, sizeof(*p));
	p->now = 1000000;
	tn_config(&cfg, 1, tp);
	cfg.tx = capture;
	cfg.tx_ctx = p;
	cfg.neigh = n;
	cfg.n_neigh = nn;
	p->st = net_stack_new(&cfg, p->now);
	assert_non_null(p->st);
}

void tn_peer_init(struct tn_peer *p, const struct tcp_params *tp)
{
	tn_peer_init_neigh(p, tp, NULL, 0);
}

void tn_peer_clear(struct tn_peer *p)
{
	uint32_t i;

	for (i = 0; i < p->n; i++)
		free(p->frame[i]);
	p->n = 0;
}

void tn_peer_free(struct tn_peer *p)
{
	net_stack_free(p->st);
	tn_peer_clear(p);
}

void tn_peer_send(struct tn_peer *p, const uint8_t *f, uint32_t len)
{
	net_input(p->st, f, len, p->now);
}

void tn_peer_send_seg(struct tn_peer *p, const struct tn_seg *s)
{
	uint8_t f[NET_MAX_FRAME];
	struct tn_seg c = *s;

	if (!c.src_id)
		c.src_id = 2;
	if (!c.dst_id)
		c.dst_id = 1;
	tn_peer_send(p, f, tn_build_tcp(f, &c));
}

void tn_peer_advance(struct tn_peer *p, uint64_t us)
{
	uint64_t end = p->now + us;

	while (p->now < end) {
		p->now += 1000;
		if (p->now > end)
			p->now = end;
		net_poll(p->st, p->now);
	}
}

void tn_peer_arp(struct tn_peer *p)
{
	uint8_t f[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t *a = f + 14;

	tn_mac(f + 6, 2);
	wr16(f + 12, ETH_P_ARP);
	wr16(a, 1);
	wr16(a + 2, ETH_P_IP4);
	a[4] = 6;
	a[5] = 4;
	wr16(a + 6, 1);
	tn_mac(a + 8, 2);
	memcpy(a + 14, tn_ip4(2).a, 4);
	memcpy(a + 24, tn_ip4(1).a, 4);
	tn_peer_send(p, f, sizeof(f));
}

uint32_t tn_peer_count_tcp(const struct tn_peer *p, uint32_t from, uint8_t mask, uint8_t value)
{
	uint32_t i, n = 0;
	struct tn_seg s;

	for (i = from; i < p->n; i++)
		if (tn_parse_tcp(p->frame[i], p->len[i], &s) && (s.flags & mask) == value)
			n++;
	return n;
}

void tn_peer_tcp(const struct tn_peer *p, uint32_t i, struct tn_seg *s)
{
	assert_true(i < p->n);
	assert_true(tn_parse_tcp(p->frame[i], p->len[i], s));
}

uint64_t tn_counter(const struct net_stack *st, enum net_counter c)
{
	return net_counters(st)[c];
}

/* ---- bulk transfer ---- */

#define FNV_OFF 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * FNV_PRIME;
	return h;
}

static uint8_t gen_byte(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint8_t)(*s >> 56);
}

static void bulk_fill(struct tn_bulk *b)
{
	uint8_t chunk[8192];

	while (b->sent < b->total) {
		uint64_t g = b->gen;
		size_t n = sizeof(chunk), i;
		ssize_t r;

		if (b->total - b->sent < n)
			n = (size_t)(b->total - b->sent);
		for (i = 0; i < n; i++)
			chunk[i] = gen_byte(&g);
		r = tcp_send(b->cc, chunk, n);
		assert_true(r >= 0);
		if (r == 0)
			return;
		/* advance the generator by what was taken */
		for (i = 0; i < (size_t)r; i++)
			gen_byte(&b->gen);
		b->hash_tx = hash_bytes(b->hash_tx, chunk, (size_t)r);
		b->sent += (uint64_t)r;
	}
	tcp_shutdown_wr(b->cc);
}

static void c_connected(struct tcp_conn *c, void *ctx)
{
	struct tn_bulk *b = ctx;

	(void)c;
	b->connected = true;
	bulk_fill(b);
}

static void c_writable(struct tcp_conn *c, void *ctx)
{
	(void)c;
	bulk_fill(ctx);
}

static void c_data(struct tcp_conn *c, void *ctx)
{
	struct tn_bulk *b = ctx;
	uint8_t buf[4096];

	while (tcp_read(c, buf, sizeof(buf)) > 0)
		;
	if (tcp_eof(c) && !b->client_eof) {
		struct tcp_conn_info i;

		tcp_get_info(c, &i);
		b->client_cycles = i.cycles;
		b->client_eof = true;
		b->client_closed = true;
		tcp_close(c);
		b->cc = NULL;
	}
}

static void c_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct tn_bulk *b = ctx;

	(void)c;
	b->client_err = err;
	b->client_closed = true;
	b->cc = NULL;
}

static const struct tcp_ops client_ops = { c_connected, c_data, c_writable, c_closed };

static void s_data(struct tcp_conn *c, void *ctx)
{
	struct tn_bulk *b = ctx;
	uint8_t buf[16384];
	ssize_t n;

	while ((n = tcp_read(c, buf, sizeof(buf))) > 0) {
		b->hash_rx = hash_bytes(b->hash_rx, buf, (size_t)n);
		b->received += (uint64_t)n;
	}
	if (tcp_eof(c) && !b->server_eof) {
		struct tcp_conn_info i;

		tcp_get_info(c, &i);
		b->server_cycles = i.cycles;
		b->server_eof = true;
		b->server_closed = true;
		tcp_close(c);
		b->sc = NULL;
	}
}

static void s_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct tn_bulk *b = ctx;

	(void)c;
	b->server_err = err;
	b->server_closed = true;
	b->sc = NULL;
}

static const struct tcp_ops server_ops = { NULL, s_data, NULL, s_closed };

static int s_accept(void *lctx, struct tcp_conn *c)
{
	struct tn_bulk *b = lctx;

	b->sc = c;
	tcp_set_ops(c, &server_ops, b);
	return 0;
}

void tn_bulk_init(struct tn_bulk *b, uint64_t seed, const struct simlink_params *p01,
		  const struct simlink_params *p10, const struct tcp_params *tp, bool v6)
{
	struct net_config ca, cb;

	memset(b, 0, sizeof(*b));
	b->v6 = v6;
	b->l = simlink_new(seed, p01, p10);
	assert_non_null(b->l);
	tn_config(&ca, 1, tp);
	tn_config(&cb, 2, tp);
	ca.tx = cb.tx = simlink_tx;
	ca.tx_ctx = simlink_port(b->l, 0);
	cb.tx_ctx = simlink_port(b->l, 1);
	b->a = net_stack_new(&ca, 0);
	b->b = net_stack_new(&cb, 0);
	assert_non_null(b->a);
	assert_non_null(b->b);
	simlink_attach_stack(b->l, 0, b->a);
	simlink_attach_stack(b->l, 1, b->b);
	assert_int_equal(tcp_listen(b->b, NULL, 25, s_accept, b, &b->lst), 0);
	b->hash_tx = b->hash_rx = FNV_OFF;
	b->gen = seed * 7 + 1;
}

static bool bulk_done(void *arg)
{
	struct tn_bulk *b = arg;

	return b->client_closed && b->server_closed;
}

bool tn_bulk_run(struct tn_bulk *b, uint64_t bytes, uint64_t limit_us)
{
	struct tcp_connect_req r = { .rport = 25, .ops = &client_ops, .ctx = b };

	b->total = bytes;
	r.raddr = b->v6 ? tn_ip6(2) : tn_ip4(2);
	assert_int_equal(tcp_connect(b->a, &r, &b->cc), 0);
	return simlink_run(b->l, simlink_now(b->l) + limit_us, bulk_done, b);
}

void tn_bulk_free(struct tn_bulk *b)
{
	net_stack_free(b->a);
	net_stack_free(b->b);
	simlink_free(b->l);
}
