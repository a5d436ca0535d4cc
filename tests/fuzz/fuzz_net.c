/*
 * libFuzzer target: frames into the native stack.
 *
 * Each run builds two stacks joined back to back (A 192.0.2.1 /
 * 2001:db8::1, MAC 02:00:00:00:00:01; B 192.0.2.2 / 2001:db8::2, MAC
 * ...:02), with A listening on port 25, a connection from B:40000 to A:25
 * and one from A to B:143, both established. Then the input is a series of
 * records, each fed to A as if it came from the wire:
 *   byte 0   flags: bit 0 fix the checksums (IPv4 header, TCP, ICMP,
 *            ICMPv6) so that mutations reach the layers above; bit 1 the
 *            TCP sequence and acknowledgment numbers are offsets from the
 *            B:40000 connection's RCV.NXT and SND.UNA, so that they land in
 *            its window
 *   byte 1   virtual time to let pass first, in 10 ms steps
 *   2..3     frame length (big-endian), then the frame
 * Whatever A sends goes to B and back, a bounded number of rounds, and
 * the applications read, write and close as data arrives. Invariants
 * checked besides the sanitizers': every frame A sends is at least an
 * Ethernet header and at most MTU + 14 bytes, and every TCP segment A
 * sends carries a correct checksum.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_int.h"

#define QMAX 256

struct q {
	uint32_t n;
	uint32_t len[QMAX];
	uint8_t *f[QMAX];
};

static struct q qa, qb;          /* frames sent by A, by B */
static struct net_stack *A, *B;
static struct tcp_conn *a_srv, *a_cli;

static void check_frame(const uint8_t *f, uint32_t len)
{
	if (len < NET_ETH_HLEN || len > 1500 + NET_ETH_HLEN)
		abort();
	if (rd16(f + 12) == ETH_P_IP4 && len >= 34 && f[23] == 6) {
		struct net_addr s = { .family = NET_AF4 }, d = { .family = NET_AF4 };
		uint32_t hl = (f[14] & 15u) * 4, tl = rd16(f + 16) - hl;

		memcpy(s.a, f + 26, 4);
		memcpy(d.a, f + 30, 4);
		if (csum_fold(csum_add(csum_pseudo(&s, &d, 6, tl), f + 14 + hl, tl)) != 0)
			abort();
	}
}

static void push(struct q *q, const uint8_t *f, uint32_t len)
{
	if (q->n >= QMAX)
		return;
	q->f[q->n] = malloc(len);
	if (!q->f[q->n])
		return;
	memcpy(q->f[q->n], f, len);
	q->len[q->n++] = len;
}

static void tx_a(void *ctx, const uint8_t *f, uint32_t len)
{
	(void)ctx;
	check_frame(f, len);
	push(&qa, f, len);
}

static void tx_b(void *ctx, const uint8_t *f, uint32_t len)
{
	(void)ctx;
	push(&qb, f, len);
}

static uint64_t now;

/* Deliver the queued frames both ways, a few rounds at most. */
static void pump(void)
{
	int round;

	for (round = 0; round < 8 && (qa.n || qb.n); round++) {
		struct q a = qa, b = qb;
		uint32_t i;

		qa.n = qb.n = 0;
		for (i = 0; i < a.n; i++) {
			net_input(B, a.f[i], a.len[i], now);
			free(a.f[i]);
		}
		for (i = 0; i < b.n; i++) {
			net_input(A, b.f[i], b.len[i], now);
			free(b.f[i]);
		}
	}
	while (qa.n)
		free(qa.f[--qa.n]);
	while (qb.n)
		free(qb.f[--qb.n]);
}

/* A's applications: read everything, echo a little, close on EOF. */
static void app_data(struct tcp_conn *c, void *ctx)
{
	uint8_t buf[2048];
	ssize_t n;

	while ((n = tcp_read(c, buf, sizeof(buf))) > 0)
		tcp_send(c, buf, (size_t)(n > 64 ? 64 : n));
	if (tcp_eof(c)) {
		if (ctx)
			*(struct tcp_conn **)ctx = NULL;
		tcp_close(c);
	}
}

static void app_closed(struct tcp_conn *c, void *ctx, int err)
{
	(void)c;
	(void)err;
	if (ctx)
		*(struct tcp_conn **)ctx = NULL;
}

static void app_writable(struct tcp_conn *c, void *ctx)
{
	(void)ctx;
	tcp_send(c, "more\r\n", 6);
}

static const struct tcp_ops app_ops = { NULL, app_data, app_writable, app_closed };

static int accept_a(void *lctx, struct tcp_conn *c)
{
	(void)lctx;
	if (a_srv)
		tcp_set_ops(c, &app_ops, NULL); /* later connections: no handle kept */
	else {
		a_srv = c;
		tcp_set_ops(c, &app_ops, &a_srv);
	}
	return 0;
}

static int accept_b(void *lctx, struct tcp_conn *c)
{
	(void)lctx;
	(void)c;
	return 0;
}

static void config(struct net_config *cfg, int id, void (*tx)(void *, const uint8_t *, uint32_t))
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mac[0] = 2;
	cfg->mac[5] = (uint8_t)id;
	cfg->has_ip4 = cfg->has_ip6 = true;
	cfg->ip4[0] = 192;
	cfg->ip4[2] = 2;
	cfg->ip4[3] = (uint8_t)id;
	cfg->ip4_plen = 24;
	cfg->ip6[0] = 0x20;
	cfg->ip6[1] = 0x01;
	cfg->ip6[2] = 0x0d;
	cfg->ip6[3] = 0xb8;
	cfg->ip6[15] = (uint8_t)id;
	cfg->ip6_plen = 64;
	memset(cfg->secret, id, sizeof(cfg->secret));
	cfg->tx = tx;
	cfg->tcp.syn_backlog = 4;
	cfg->tcp.sndbuf = cfg->tcp.rcvbuf = 16384;
}

static void setup(void)
{
	struct net_config ca, cb;
	struct tcp_listener *l;
	struct tcp_conn *b_cli;
	struct tcp_connect_req r1 = { .rport = 25, .lport = 40000 }, r2 = { .rport = 143 };

	now = 1000000;
	a_srv = a_cli = NULL;
	config(&ca, 1, tx_a);
	config(&cb, 2, tx_b);
	A = net_stack_new(&ca, now);
	B = net_stack_new(&cb, now);
	if (!A || !B)
		abort();
	tcp_listen(A, NULL, 25, accept_a, NULL, &l);
	tcp_listen(B, NULL, 143, accept_b, NULL, &l);
	r1.raddr.family = NET_AF4;
	memcpy(r1.raddr.a, ca.ip4, 4);
	tcp_connect(B, &r1, &b_cli);
	r2.raddr.family = NET_AF4;
	memcpy(r2.raddr.a, cb.ip4, 4);
	r2.ops = &app_ops;
	r2.ctx = &a_cli;
	tcp_connect(A, &r2, &a_cli);
	pump();
	pump();
	if (!a_srv || !a_cli || a_srv->state != TCPS_ESTABLISHED)
		abort(); /* the set-up itself must work */
}

/* Recompute the checksums a mutation broke (bit 0). */
static void fix(uint8_t *f, uint32_t len)
{
	struct net_addr s, d;
	uint32_t hl, tl;
	uint8_t *p;

	if (len < 14)
		return;
	if (rd16(f + 12) == ETH_P_IP4 && len >= 34) {
		hl = (f[14] & 15u) * 4;
		if (hl < 20 || 14 + hl > len)
			return;
		wr16(f + 24, 0);
		wr16(f + 24, csum_fold(csum_add(0, f + 14, hl)));
		tl = rd16(f + 16);
		if (tl < hl || 14 + tl > len)
			return;
		tl -= hl;
		p = f + 14 + hl;
		s.family = d.family = NET_AF4;
		memset(s.a, 0, 16);
		memset(d.a, 0, 16);
		memcpy(s.a, f + 26, 4);
		memcpy(d.a, f + 30, 4);
		if (f[23] == 6 && tl >= 20) {
			wr16(p + 16, 0);
			wr16(p + 16, csum_fold(csum_add(csum_pseudo(&s, &d, 6, tl), p, tl)));
		} else if (f[23] == 1 && tl >= 4) {
			wr16(p + 2, 0);
			wr16(p + 2, csum_fold(csum_add(0, p, tl)));
		}
	} else if (rd16(f + 12) == ETH_P_IP6 && len >= 54) {
		tl = rd16(f + 18);
		if (54 + tl > len)
			return;
		p = f + 54;
		s.family = d.family = NET_AF6;
		memcpy(s.a, f + 22, 16);
		memcpy(d.a, f + 38, 16);
		if (f[20] == 6 && tl >= 20) {
			wr16(p + 16, 0);
			wr16(p + 16, csum_fold(csum_add(csum_pseudo(&s, &d, 6, tl), p, tl)));
		} else if (f[20] == 58 && tl >= 4) {
			wr16(p + 2, 0);
			wr16(p + 2, csum_fold(csum_add(csum_pseudo(&s, &d, 58, tl), p, tl)));
		}
	}
}

/* Bit 1: TCP seq/ack as offsets into the B:40000 -> A:25 connection. */
static void relative(uint8_t *f, uint32_t len)
{
	uint8_t *p;

	if (!a_srv || len < 14 + 20 + 20 || rd16(f + 12) != ETH_P_IP4 || f[23] != 6)
		return;
	p = f + 14 + (f[14] & 15u) * 4;
	if (p + 20 > f + len)
		return;
	wr32(p + 4, rd32(p + 4) + a_srv->rcv_nxt);
	wr32(p + 8, rd32(p + 8) + a_srv->snd_una);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t frame[NET_MAX_FRAME];

	setup();
	while (size >= 4) {
		uint8_t flags = data[0];
		uint32_t steps = data[1], len = rd16(data + 2);

		data += 4;
		size -= 4;
		if (len > size)
			len = (uint32_t)size;
		if (len > sizeof(frame))
			len = sizeof(frame);
		memcpy(frame, data, len);
		data += len;
		size -= len;
		while (steps--) {
			now += 10000;
			net_poll(A, now);
			net_poll(B, now);
			pump();
		}
		if (flags & 2)
			relative(frame, len);
		if (flags & 1)
			fix(frame, len);
		net_input(A, frame, len, now);
		pump();
		if (a_cli)
			tcp_send(a_cli, "x", 1);
	}
	now += 120000000; /* two minutes: every timer runs out */
	net_poll(A, now);
	net_poll(B, now);
	pump();
	net_stack_free(A);
	net_stack_free(B);
	return 0;
}
