/*
 * The layers under TCP, against a scripted peer: ARP (answers, resolution
 * with queued packets, giving up), ICMP and ICMPv6 echo, NDP solicitation
 * and advertisement, path MTU from ICMP, and a table of malformed frames,
 * each dropped without an answer and counted under its own reason.
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

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t MAC1[6] = { 2, 0, 0, 0, 0, 1 }, MAC2[6] = { 2, 0, 0, 0, 0, 2 }, MAC3[6] = { 2, 0, 0, 0, 0, 3 };
static const uint8_t SOLMAC2[6] = { 0x33, 0x33, 0xff, 0, 0, 2 };

static void eth_hdr(uint8_t *f, const uint8_t *dst, int src_id, uint16_t type)
{
	memcpy(f, dst, 6);
	tn_mac(f + 6, src_id);
	wr16(f + 12, type);
}

/* An ARP packet from host src_id. */
static uint32_t arp_frame(uint8_t *f, uint16_t op, int src_id, const uint8_t *tpa)
{
	uint8_t *a = f + 14;

	memset(f, 0, 60);
	eth_hdr(f, bcast, src_id, ETH_P_ARP);
	wr16(a, 1);
	wr16(a + 2, ETH_P_IP4);
	a[4] = 6;
	a[5] = 4;
	wr16(a + 6, op);
	tn_mac(a + 8, src_id);
	memcpy(a + 14, tn_ip4(src_id).a, 4);
	memcpy(a + 24, tpa, 4);
	return 60;
}

/* An ICMP echo request from host src_id to host 1 with len bytes of payload. */
static uint32_t echo4(uint8_t *f, int src_id, uint16_t id, uint16_t seq, uint32_t len)
{
	struct net_addr s = tn_ip4(src_id), d = tn_ip4(1);
	uint8_t *ic = f + 34;
	uint32_t i;

	eth_hdr(f, MAC1, src_id, ETH_P_IP4);
	memset(ic, 0, 8);
	ic[0] = 8;
	wr16(ic + 4, id);
	wr16(ic + 6, seq);
	for (i = 0; i < len; i++)
		ic[8 + i] = (uint8_t)(i * 7);
	wr16(ic + 2, csum_fold(csum_add(0, ic, 8 + len)));
	ip4_header(f + 14, &s, &d, 1, 8 + len, false);
	return 34 + 8 + len;
}

/* An ICMPv6 message (type, body) from src to dst with a hop limit. */
static uint32_t icmp6_frame(uint8_t *f, const uint8_t *eth_dst, const struct net_addr *src,
			    const struct net_addr *dst, uint8_t hlim, const uint8_t *msg, uint32_t len)
{
	uint8_t *ic = f + 54;

	eth_hdr(f, eth_dst, 2, ETH_P_IP6);
	memcpy(ic, msg, len);
	wr16(ic + 2, 0);
	wr16(ic + 2, csum_fold(csum_add(csum_pseudo(src, dst, 58, len), ic, len)));
	ip6_header(f + 14, src, dst, 58, len, hlim);
	return 54 + len;
}

/* A neighbour solicitation from host 2 for target, with its SLLA. */
static uint32_t ns_frame(uint8_t *f, const struct net_addr *target, uint8_t hlim)
{
	uint8_t m[32] = { 135 };
	struct net_addr src = tn_ip6(2), dst = { .family = NET_AF6, .a = { 0xff, 2, [11] = 1, [12] = 0xff } };
	uint8_t mac[6] = { 0x33, 0x33, 0xff };

	memcpy(dst.a + 13, target->a + 13, 3);
	memcpy(mac + 3, target->a + 13, 3);
	memcpy(m + 8, target->a, 16);
	m[24] = 1;
	m[25] = 1;
	tn_mac(m + 26, 2);
	return icmp6_frame(f, mac, &src, &dst, hlim, m, 32);
}

/* ---- ARP ---- */

/* RFC 826: a request for our address is answered; the asker is learnt. */
static void test_arp_reply(void **state)
{
	struct tn_peer p;
	uint8_t f[64];
	const uint8_t *a;

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_send(&p, f, arp_frame(f, 1, 2, tn_ip4(1).a));
	assert_int_equal(p.n, 1);
	a = p.frame[0] + 14;
	assert_int_equal(rd16(p.frame[0] + 12), ETH_P_ARP);
	assert_memory_equal(p.frame[0], MAC2, 6);
	assert_int_equal(rd16(a + 6), 2);
	assert_memory_equal(a + 8, MAC1, 6);
	assert_memory_equal(a + 14, tn_ip4(1).a, 4);
	assert_memory_equal(a + 24, tn_ip4(2).a, 4);
	assert_int_equal(tn_counter(p.st, NET_C_arp_request_rx), 1);
	/* for someone else: no answer */
	tn_peer_send(&p, f, arp_frame(f, 1, 2, tn_ip4(9).a));
	assert_int_equal(p.n, 1);
	assert_int_equal(tn_counter(p.st, NET_C_drop_arp_not_for_us), 1);
	tn_peer_free(&p);
}

/* Packets for an unresolved next hop wait (4 at most, the newest kept)
 * while ARP asks; the reply sends them in order. */
static void test_arp_queue(void **state)
{
	struct tn_peer p;
	uint8_t f[200];
	uint16_t i;
	const uint8_t *a;

	(void)state;
	tn_peer_init(&p, NULL);
	for (i = 0; i < 6; i++)
		tn_peer_send(&p, f, echo4(f, 3, 77, i, 16)); /* from 192.0.2.3, not yet known */
	assert_int_equal(p.n, 1); /* one ARP request, nothing else */
	a = p.frame[0] + 14;
	assert_memory_equal(p.frame[0], bcast, 6);
	assert_int_equal(rd16(a + 6), 1);
	assert_memory_equal(a + 24, tn_ip4(3).a, 4);
	assert_int_equal(tn_counter(p.st, NET_C_neigh_queued), 6);
	assert_int_equal(tn_counter(p.st, NET_C_drop_neigh_queue_full), 2);
	tn_peer_send(&p, f, arp_frame(f, 2, 3, tn_ip4(1).a));
	assert_int_equal(p.n, 5);
	for (i = 0; i < 4; i++) {
		const uint8_t *r = p.frame[1 + i];

		assert_memory_equal(r, MAC3, 6);
		assert_int_equal(r[34], 0);                  /* echo reply */
		assert_int_equal(rd16(r + 34 + 6), 2 + i);   /* sequence 2..5: the newest kept */
	}
	tn_peer_free(&p);
}

/* No answer: three requests a second apart, then the packets are dropped. */
static void test_arp_unresolved(void **state)
{
	struct tn_peer p;
	uint8_t f[200];

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_send(&p, f, echo4(f, 4, 1, 1, 8));
	tn_peer_advance(&p, 5000000);
	assert_int_equal(p.n, 3);
	assert_int_equal(tn_counter(p.st, NET_C_arp_request_tx), 3);
	assert_int_equal(tn_counter(p.st, NET_C_drop_neigh_unresolved), 1);
	tn_peer_free(&p);
}

/* ---- ICMP ---- */

static void test_icmp4_echo(void **state)
{
	struct tn_peer p;
	uint8_t f[1600];
	uint32_t n;
	const uint8_t *r;

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_arp(&p);
	tn_peer_clear(&p);
	n = echo4(f, 2, 0x1234, 9, 1000);
	tn_peer_send(&p, f, n);
	assert_int_equal(p.n, 1);
	r = p.frame[0];
	assert_int_equal(p.len[0], n);
	assert_memory_equal(r + 26, tn_ip4(1).a, 4); /* from us */
	assert_memory_equal(r + 30, tn_ip4(2).a, 4);
	assert_int_equal(csum_fold(csum_add(0, r + 14, 20)), 0);
	assert_int_equal(r[34], 0);
	assert_int_equal(rd16(r + 38), 0x1234);
	assert_int_equal(rd16(r + 40), 9);
	assert_memory_equal(r + 42, f + 42, 1000);
	assert_int_equal(csum_fold(csum_add(0, r + 34, 1008)), 0);
	assert_int_equal(tn_counter(p.st, NET_C_icmp_echo_rx), 1);
	tn_peer_free(&p);
}

/* RFC 4861 §7.2.3-7.2.4: a solicitation for our address gets a solicited,
 * override advertisement with our MAC; the solicitor is learnt, so the
 * echo reply that follows needs no solicitation of our own. */
static void test_ndp_and_icmp6_echo(void **state)
{
	struct tn_peer p;
	uint8_t f[1600], m[64] = { 128 };
	struct net_addr me = tn_ip6(1), peer = tn_ip6(2);
	const uint8_t *r;
	uint32_t n;

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_send(&p, f, ns_frame(f, &me, 255));
	assert_int_equal(p.n, 1);
	r = p.frame[0];
	assert_memory_equal(r, MAC2, 6);
	assert_int_equal(rd16(r + 12), ETH_P_IP6);
	assert_int_equal(r[14 + 7], 255);             /* hop limit */
	assert_memory_equal(r + 22, me.a, 16);        /* from the target */
	assert_memory_equal(r + 38, peer.a, 16);
	assert_int_equal(r[54], 136);
	assert_int_equal(r[58], 0x60);                /* solicited, override */
	assert_memory_equal(r + 62, me.a, 16);
	assert_int_equal(r[78], 2);                   /* target link-layer address */
	assert_memory_equal(r + 80, MAC1, 6);
	assert_int_equal(csum_fold(csum_add(csum_pseudo(&me, &peer, 58, 32), r + 54, 32)), 0);
	/* echo */
	tn_peer_clear(&p);
	wr16(m + 4, 0xbeef);
	wr16(m + 6, 3);
	memcpy(m + 8, "sluice-v6-ping", 14);
	n = icmp6_frame(f, MAC1, &peer, &me, 64, m, 22);
	tn_peer_send(&p, f, n);
	assert_int_equal(p.n, 1);
	r = p.frame[0];
	assert_int_equal(r[54], 129);
	assert_int_equal(rd16(r + 58), 0xbeef);
	assert_memory_equal(r + 62, "sluice-v6-ping", 14);
	assert_int_equal(csum_fold(csum_add(csum_pseudo(&me, &peer, 58, 22), r + 54, 22)), 0);
	assert_int_equal(tn_counter(p.st, NET_C_icmp6_echo_rx), 1);
	/* NS with hop limit 64 (off link) and NS for another target */
	tn_peer_clear(&p);
	tn_peer_send(&p, f, ns_frame(f, &me, 64));
	assert_int_equal(tn_counter(p.st, NET_C_drop_ndp_invalid), 1);
	{
		struct net_addr other = tn_ip6(1);

		other.a[14] = 9;
		tn_peer_send(&p, f, ns_frame(f, &other, 255));
	}
	assert_int_equal(p.n, 0);
	tn_peer_free(&p);
}

/* We solicit an unknown IPv6 next hop at its solicited-node group; the
 * advertisement releases the queued SYN. */
static void test_ndp_resolution(void **state)
{
	struct tn_peer p;
	struct tcp_conn *c;
	struct tcp_connect_req req = { .raddr = tn_ip6(2), .rport = 143 };
	struct net_addr me = tn_ip6(1), peer = tn_ip6(2);
	struct net_addr allnodes = { .family = NET_AF6, .a = { 0xff, 2, [15] = 1 } };
	uint8_t f[200], m[32] = { 136, 0, 0, 0, 0x60 };
	struct tn_seg s;
	const uint8_t *r;

	(void)state;
	(void)allnodes;
	tn_peer_init(&p, NULL);
	assert_int_equal(tcp_connect(p.st, &req, &c), 0);
	assert_int_equal(p.n, 1);
	r = p.frame[0];
	assert_memory_equal(r, SOLMAC2, 6);
	assert_int_equal(r[54], 135);
	assert_memory_equal(r + 62, peer.a, 16);
	assert_int_equal(r[78], 1);                   /* source link-layer address */
	assert_memory_equal(r + 80, MAC1, 6);
	assert_int_equal(r[14 + 24], 0xff);           /* to ff02::1:ff00:2 */
	assert_int_equal(r[14 + 24 + 15], 2);
	memcpy(m + 8, peer.a, 16);
	m[24] = 2;
	m[25] = 1;
	tn_mac(m + 26, 2);
	tn_peer_send(&p, f, icmp6_frame(f, MAC1, &peer, &me, 255, m, 32));
	assert_int_equal(tn_counter(p.st, NET_C_ndp_na_rx), 1);
	assert_int_equal(p.n, 2);
	tn_peer_tcp(&p, 1, &s);
	assert_true(s.v6);
	assert_int_equal(s.flags, TH_SYN);
	assert_int_equal(s.dport, 143);
	assert_memory_equal(p.frame[1], MAC2, 6);
	tn_peer_free(&p);
}

/* ICMP "fragmentation needed" for a segment in flight lowers the MSS and
 * resends at the new size; one for data not in flight is ignored (RFC 5927). */
static void test_pmtu(void **state)
{
	struct tn_peer p;
	struct tcp_conn *c;
	struct tcp_connect_req req = { .raddr = tn_ip4(2), .rport = 25 };
	uint8_t f[1600], data[3000] = { 0 };
	struct tn_seg s, r;
	uint32_t i, n;
	struct net_addr a1 = tn_ip4(1), a2 = tn_ip4(2);

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
	assert_int_equal(tcp_send(c, data, sizeof(data)), sizeof(data));
	tn_peer_tcp(&p, 0, &r);
	assert_int_equal(r.dlen, 1460);
	/* a router says: 1200 */
	eth_hdr(f, MAC1, 2, ETH_P_IP4);
	memset(f + 34, 0, 8);
	f[34] = 3;
	f[35] = 4;
	wr16(f + 40, 1200);
	memcpy(f + 42, p.frame[0] + 14, 28); /* the IP header and 8 bytes of TCP */
	wr16(f + 36, csum_fold(csum_add(0, f + 34, 36)));
	ip4_header(f + 14, &a2, &a1, 1, 36, false);
	n = p.n;
	tn_peer_send(&p, f, 70);
	assert_int_equal(tn_counter(p.st, NET_C_tcp_pmtu_reduced), 1);
	assert_true(p.n > n);
	for (i = n; i < p.n; i++) {
		tn_peer_tcp(&p, i, &r);
		assert_true(r.dlen <= 1200 - 40);
	}
	tn_peer_tcp(&p, n, &r);
	assert_int_equal(r.seq, c->snd_una);
	/* the same for a sequence not in flight: ignored */
	wr32(f + 42 + 24, c->snd_una - 100000);
	wr16(f + 36, 0);
	wr16(f + 40, 800);
	wr16(f + 36, csum_fold(csum_add(0, f + 34, 36)));
	tn_peer_send(&p, f, 70);
	assert_int_equal(tn_counter(p.st, NET_C_drop_icmp_frag_needed), 1);
	tn_peer_free(&p);
}

/* ICMPv6 Packet Too Big (RFC 8201) for a segment in flight: the MSS
 * follows; an MTU under 1280 is taken as 1280 (RFC 8200 §5). */
static void test_pmtu6(void **state)
{
	struct tn_peer p;
	struct tcp_conn *c;
	struct tcp_connect_req req = { .raddr = tn_ip6(2), .rport = 25 };
	struct net_addr me = tn_ip6(1), peer = tn_ip6(2);
	uint8_t f[1600], m[8 + 48] = { 2 }, data[3000] = { 0 };
	struct tn_seg s, r;
	uint32_t i, n;

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_send(&p, f, ns_frame(f, &me, 255)); /* teaches it our MAC */
	tn_peer_clear(&p);
	assert_int_equal(tcp_connect(p.st, &req, &c), 0);
	tn_peer_tcp(&p, 0, &r);
	s = (struct tn_seg){ .v6 = true, .sport = 25, .dport = r.sport, .flags = TH_SYN | TH_ACK, .seq = 1,
			     .ack = r.seq + 1, .wnd = 65535 };
	tn_opt_mss(&s, 1440);
	tn_peer_send_seg(&p, &s);
	tn_peer_clear(&p);
	assert_int_equal(tcp_send(c, data, sizeof(data)), sizeof(data));
	tn_peer_tcp(&p, 0, &r);
	assert_int_equal(r.dlen, 1440);
	wr32(m + 4, 1000); /* below the minimum: 1280 is used */
	memcpy(m + 8, p.frame[0] + 14, 48);
	n = p.n;
	tn_peer_send(&p, f, icmp6_frame(f, MAC1, &peer, &me, 64, m, sizeof(m)));
	assert_int_equal(tn_counter(p.st, NET_C_tcp_pmtu_reduced), 1);
	assert_true(p.n > n);
	for (i = n; i < p.n; i++) {
		tn_peer_tcp(&p, i, &r);
		assert_true(r.dlen <= 1280 - 60);
	}
	tn_peer_free(&p);
}

static void no_tx(void *ctx, const uint8_t *f, uint32_t len)
{
	(void)ctx;
	(void)f;
	(void)len;
}

/* Configurations that cannot work are refused with EINVAL. */
static void test_bad_config(void **state)
{
	static const struct { const char *what; int field; } cases[] = {
		{ "no tx", 0 }, { "multicast MAC", 1 }, { "no address", 2 }, { "IPv4 prefix 33", 3 },
		{ "MTU 1000", 4 }, { "MTU 10000", 5 }, { "send buffer not a power of 2", 6 },
		{ "port range reversed", 7 }, { "unknown congestion control", 8 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct net_config cfg;
		struct net_stack *st;

		tn_config(&cfg, 1, NULL);
		cfg.tx = no_tx;
		switch (cases[i].field) {
		case 0: cfg.tx = NULL; break;
		case 1: cfg.mac[0] = 1; break;
		case 2: cfg.has_ip4 = cfg.has_ip6 = false; break;
		case 3: cfg.ip4_plen = 33; break;
		case 4: cfg.mtu = 1000; break;
		case 5: cfg.mtu = 10000; break;
		case 6: cfg.tcp.sndbuf = 100000; break;
		case 7: cfg.tcp.port_lo = 5000; cfg.tcp.port_hi = 4000; break;
		case 8: cfg.tcp.cc = 9; break;
		}
		errno = 0;
		st = net_stack_new(&cfg, 0);
		if (st || errno != EINVAL)
			fail_msg("%s: accepted", cases[i].what);
	}
	/* the edges that are valid: a /32 and a /0 */
	for (i = 0; i <= 32; i += 32) {
		struct net_config cfg;
		struct net_stack *st;

		tn_config(&cfg, 1, NULL);
		cfg.tx = no_tx;
		cfg.ip4_plen = (uint8_t)i;
		st = net_stack_new(&cfg, 0);
		assert_non_null(st);
		net_stack_free(st);
	}
}

/* ---- malformed frames ---- */

enum mut {
	M_ETH_SHORT, M_ETH_DST, M_ETH_VLAN, M_IP4_SHORT, M_IP4_VERSION, M_IP4_IHL4, M_IP4_IHL_OVER,
	M_IP4_TOTLEN, M_IP4_CSUM, M_IP4_FRAG_MF, M_IP4_FRAG_OFF, M_IP4_DST, M_IP4_SRC_BCAST, M_IP4_PROTO,
	M_TCP_SHORT, M_TCP_DOFF4, M_TCP_DOFF_OVER, M_TCP_CSUM, M_TCP_OPT_ZERO_LEN, M_TCP_OPT_MSS_LEN,
	M_TCP_OPT_PAST, M_TCP_OPT_SACK_LEN, M_TCP_OPT_WS_LEN, M_TCP_SYN_FIN, M_TCP_SYN_RST, M_TCP_NULL,
	M_TCP_FIN_ONLY, M_TCP_XMAS, M_TCP_PORT0, M_ICMP_CSUM, M_ICMP_SHORT,
	M_IP6_SHORT, M_IP6_VERSION, M_IP6_PLEN, M_IP6_FRAG, M_IP6_ROUTING, M_IP6_HBH_LATE, M_IP6_MCAST_SRC,
	M_IP6_TCP_CSUM, M_ICMP6_CSUM, M_ARP_SHORT, M_ARP_HTYPE, M_ARP_OP,
};

struct malformed {
	const char *what;
	enum mut m;
	enum net_counter counter;
};

static const struct malformed malformed[] = {
	{ "frame of 10 bytes", M_ETH_SHORT, NET_C_drop_eth_short },
	{ "another MAC", M_ETH_DST, NET_C_drop_eth_not_for_us },
	{ "VLAN tag", M_ETH_VLAN, NET_C_drop_eth_type },
	{ "IPv4 of 12 bytes", M_IP4_SHORT, NET_C_drop_ip4_short },
	{ "IPv4 version 5", M_IP4_VERSION, NET_C_drop_ip4_version },
	{ "IPv4 IHL 4", M_IP4_IHL4, NET_C_drop_ip4_hlen },
	{ "IPv4 IHL past total length", M_IP4_IHL_OVER, NET_C_drop_ip4_hlen },
	{ "IPv4 total length past frame", M_IP4_TOTLEN, NET_C_drop_ip4_len },
	{ "IPv4 bad header checksum", M_IP4_CSUM, NET_C_drop_ip4_csum },
	{ "IPv4 first fragment (MF)", M_IP4_FRAG_MF, NET_C_drop_ip4_fragment },
	{ "IPv4 later fragment (offset)", M_IP4_FRAG_OFF, NET_C_drop_ip4_fragment },
	{ "IPv4 for another host", M_IP4_DST, NET_C_drop_ip4_not_for_us },
	{ "IPv4 from broadcast", M_IP4_SRC_BCAST, NET_C_drop_ip4_bad_src },
	{ "IPv4 UDP", M_IP4_PROTO, NET_C_drop_ip4_proto },
	{ "TCP of 12 bytes", M_TCP_SHORT, NET_C_drop_tcp_short },
	{ "TCP data offset 4", M_TCP_DOFF4, NET_C_drop_tcp_hlen },
	{ "TCP data offset past segment", M_TCP_DOFF_OVER, NET_C_drop_tcp_hlen },
	{ "TCP bad checksum", M_TCP_CSUM, NET_C_drop_tcp_csum },
	{ "TCP option of length 0", M_TCP_OPT_ZERO_LEN, NET_C_drop_tcp_opt },
	{ "TCP MSS option of length 3", M_TCP_OPT_MSS_LEN, NET_C_drop_tcp_opt },
	{ "TCP option past the header", M_TCP_OPT_PAST, NET_C_drop_tcp_opt },
	{ "TCP SACK option of length 3", M_TCP_OPT_SACK_LEN, NET_C_drop_tcp_opt },
	{ "TCP window scale of length 4", M_TCP_OPT_WS_LEN, NET_C_drop_tcp_opt },
	{ "TCP SYN+FIN", M_TCP_SYN_FIN, NET_C_drop_tcp_flags },
	{ "TCP SYN+RST", M_TCP_SYN_RST, NET_C_drop_tcp_flags },
	{ "TCP no flags", M_TCP_NULL, NET_C_drop_tcp_flags },
	{ "TCP FIN alone", M_TCP_FIN_ONLY, NET_C_drop_tcp_flags },
	{ "TCP FIN+PSH+URG", M_TCP_XMAS, NET_C_drop_tcp_flags },
	{ "TCP source port 0", M_TCP_PORT0, NET_C_drop_tcp_port0 },
	{ "ICMP bad checksum", M_ICMP_CSUM, NET_C_drop_icmp_csum },
	{ "ICMP of 4 bytes", M_ICMP_SHORT, NET_C_drop_icmp_short },
	{ "IPv6 of 30 bytes", M_IP6_SHORT, NET_C_drop_ip6_short },
	{ "IPv6 version 4", M_IP6_VERSION, NET_C_drop_ip6_version },
	{ "IPv6 payload length past frame", M_IP6_PLEN, NET_C_drop_ip6_len },
	{ "IPv6 fragment header", M_IP6_FRAG, NET_C_drop_ip6_fragment },
	{ "IPv6 routing header, segments left 1", M_IP6_ROUTING, NET_C_drop_ip6_ext },
	{ "IPv6 hop-by-hop not first", M_IP6_HBH_LATE, NET_C_drop_ip6_ext },
	{ "IPv6 from multicast", M_IP6_MCAST_SRC, NET_C_drop_ip6_bad_src },
	{ "IPv6 TCP bad checksum", M_IP6_TCP_CSUM, NET_C_drop_tcp_csum },
	{ "ICMPv6 bad checksum", M_ICMP6_CSUM, NET_C_drop_icmp6_csum },
	{ "ARP of 20 bytes", M_ARP_SHORT, NET_C_drop_arp_malformed },
	{ "ARP hardware type 6", M_ARP_HTYPE, NET_C_drop_arp_malformed },
	{ "ARP operation 9", M_ARP_OP, NET_C_drop_arp_op },
};

static void fix_ip4(uint8_t *f)
{
	uint32_t hl = (f[14] & 15u) * 4;

	wr16(f + 24, 0);
	if (hl >= 20 && hl <= 60)
		wr16(f + 24, csum_fold(csum_add(0, f + 14, hl)));
}

static void fix_tcp(uint8_t *f, uint32_t len, bool v6)
{
	struct net_addr s = v6 ? tn_ip6(2) : tn_ip4(2), d = v6 ? tn_ip6(1) : tn_ip4(1);
	uint32_t off = 14 + (v6 ? 40 : 20), tl = len - off;

	wr16(f + off + 16, 0);
	wr16(f + off + 16, csum_fold(csum_add(csum_pseudo(&s, &d, 6, tl), f + off, tl)));
}

/* A valid SYN to port 25 (v4 or v6), with an MSS option and 4 more bytes
 * of options space (NOP NOP NOP NOP) to mutate. */
static uint32_t base_syn(uint8_t *f, bool v6)
{
	struct tn_seg s = { .v6 = v6, .src_id = 2, .dst_id = 1, .sport = 40000, .dport = 25,
			    .flags = TH_SYN, .seq = 1, .wnd = 1000 };
	uint8_t nops[4] = { 1, 1, 1, 1 };

	tn_opt_mss(&s, 1460);
	memcpy(s.opt + s.optlen, nops, 4);
	s.optlen += 4;
	return tn_build_tcp(f, &s);
}

static uint32_t mutate(uint8_t *f, enum mut m)
{
	uint32_t n;
	uint8_t *ip = f + 14, *th = f + 34, *th6 = f + 54;

	switch (m) {
	case M_ETH_SHORT: base_syn(f, false); return 10;
	case M_ETH_DST: n = base_syn(f, false); f[5] = 9; return n;
	case M_ETH_VLAN: n = base_syn(f, false); wr16(f + 12, 0x8100); return n;
	case M_IP4_SHORT: base_syn(f, false); return 14 + 12;
	case M_IP4_VERSION: n = base_syn(f, false); ip[0] = 0x55; fix_ip4(f); return n;
	case M_IP4_IHL4: n = base_syn(f, false); ip[0] = 0x44; fix_ip4(f); return n;
	case M_IP4_IHL_OVER: n = base_syn(f, false); ip[0] = 0x4f; wr16(ip + 2, 40); return n;
	case M_IP4_TOTLEN: n = base_syn(f, false); wr16(ip + 2, (uint16_t)(n - 14 + 1)); fix_ip4(f); return n;
	case M_IP4_CSUM: n = base_syn(f, false); ip[10] ^= 1; return n;
	case M_IP4_FRAG_MF: n = base_syn(f, false); wr16(ip + 6, 0x2000); fix_ip4(f); return n;
	case M_IP4_FRAG_OFF: n = base_syn(f, false); wr16(ip + 6, 0x0010); fix_ip4(f); return n;
	case M_IP4_DST: n = base_syn(f, false); ip[19] = 77; fix_ip4(f); return n;
	case M_IP4_SRC_BCAST: n = base_syn(f, false); ip[15] = 255; fix_ip4(f); return n;
	case M_IP4_PROTO: n = base_syn(f, false); ip[9] = 17; fix_ip4(f); return n;
	case M_TCP_SHORT: base_syn(f, false); wr16(ip + 2, 32); fix_ip4(f); return 14 + 32;
	case M_TCP_DOFF4: n = base_syn(f, false); th[12] = 0x40; fix_tcp(f, n, false); return n;
	case M_TCP_DOFF_OVER: n = base_syn(f, false); th[12] = 0xf0; fix_tcp(f, n, false); return n;
	case M_TCP_CSUM: n = base_syn(f, false); th[16] ^= 0x40; return n;
	case M_TCP_OPT_ZERO_LEN: n = base_syn(f, false); th[24] = 30; th[25] = 0; fix_tcp(f, n, false); return n;
	case M_TCP_OPT_MSS_LEN: n = base_syn(f, false); th[21] = 3; th[23] = 1; fix_tcp(f, n, false); return n;
	case M_TCP_OPT_PAST: n = base_syn(f, false); th[26] = 8; th[27] = 10; fix_tcp(f, n, false); return n;
	case M_TCP_OPT_SACK_LEN: n = base_syn(f, false); th[24] = 5; th[25] = 3; fix_tcp(f, n, false); return n;
	case M_TCP_OPT_WS_LEN: n = base_syn(f, false); th[24] = 3; th[25] = 4; fix_tcp(f, n, false); return n;
	case M_TCP_SYN_FIN: n = base_syn(f, false); th[13] = TH_SYN | TH_FIN; fix_tcp(f, n, false); return n;
	case M_TCP_SYN_RST: n = base_syn(f, false); th[13] = TH_SYN | TH_RST; fix_tcp(f, n, false); return n;
	case M_TCP_NULL: n = base_syn(f, false); th[13] = 0; fix_tcp(f, n, false); return n;
	case M_TCP_FIN_ONLY: n = base_syn(f, false); th[13] = TH_FIN; fix_tcp(f, n, false); return n;
	case M_TCP_XMAS: n = base_syn(f, false); th[13] = TH_FIN | TH_PSH | TH_URG; fix_tcp(f, n, false); return n;
	case M_TCP_PORT0: n = base_syn(f, false); wr16(th, 0); fix_tcp(f, n, false); return n;
	case M_ICMP_CSUM: n = echo4(f, 2, 1, 1, 8); f[42] ^= 1; return n;
	case M_ICMP_SHORT: n = echo4(f, 2, 1, 1, 8); wr16(ip + 2, 24); fix_ip4(f); return 14 + 24;
	case M_IP6_SHORT: base_syn(f, true); return 14 + 30;
	case M_IP6_VERSION: n = base_syn(f, true); ip[0] = 0x40; return n;
	case M_IP6_PLEN: n = base_syn(f, true); wr16(ip + 4, (uint16_t)(n - 54 + 1)); return n;
	case M_IP6_FRAG: case M_IP6_ROUTING: case M_IP6_HBH_LATE: {
		/* insert an 8-byte extension header before TCP */
		uint8_t tmp[200];

		n = base_syn(f, true);
		memcpy(tmp, th6, n - 54);
		memset(th6, 0, 8);
		th6[0] = 6;
		if (m == M_IP6_FRAG) {
			ip[6] = 44;
		} else if (m == M_IP6_ROUTING) {
			ip[6] = 43;
			th6[3] = 1;
		} else {
			ip[6] = 60; /* destination options, then hop-by-hop: not allowed */
			th6[0] = 0;
			memcpy(th6 + 8, th6, 8);
			th6[8] = 6;
			memcpy(th6 + 16, tmp, n - 54);
			wr16(ip + 4, (uint16_t)(n - 54 + 16));
			return n + 16;
		}
		memcpy(th6 + 8, tmp, n - 54);
		wr16(ip + 4, (uint16_t)(n - 54 + 8));
		return n + 8;
	}
	case M_IP6_MCAST_SRC: n = base_syn(f, true); ip[8] = 0xff; return n;
	case M_IP6_TCP_CSUM: n = base_syn(f, true); th6[16] ^= 1; return n;
	case M_ICMP6_CSUM: {
		uint8_t m6[16] = { 128 };
		struct net_addr s = tn_ip6(2), d = tn_ip6(1);

		n = icmp6_frame(f, MAC1, &s, &d, 64, m6, 16);
		f[54 + 8] ^= 1;
		return n;
	}
	case M_ARP_SHORT: arp_frame(f, 1, 2, tn_ip4(1).a); return 14 + 20;
	case M_ARP_HTYPE: n = arp_frame(f, 1, 2, tn_ip4(1).a); wr16(f + 14, 6); return n;
	case M_ARP_OP: n = arp_frame(f, 9, 2, tn_ip4(1).a); return n;
	}
	return 0;
}

static int refuse(void *lctx, struct tcp_conn *c)
{
	(void)lctx;
	(void)c;
	return -ECONNREFUSED;
}

/* Every malformed frame is dropped: no answer, its counter +1 and no other
 * drop counter moves; a valid SYN after them all still gets its SYN-ACK. */
static void test_malformed(void **state)
{
	struct tn_peer p;
	struct tcp_listener *l;
	uint8_t f[300];
	size_t i;
	int app = 0;

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_arp(&p);
	{
		/* an NS so that IPv6 answers could go out if there were any */
		uint8_t g[200];
		struct net_addr me = tn_ip6(1);

		tn_peer_send(&p, g, ns_frame(g, &me, 255));
	}
	assert_int_equal(tcp_listen(p.st, NULL, 25, refuse, &app, &l), 0);
	tn_peer_clear(&p);
	for (i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		uint64_t before[NET_C__COUNT];
		uint32_t n = mutate(f, malformed[i].m), k;

		memcpy(before, net_counters(p.st), sizeof(before));
		tn_peer_send(&p, f, n);
		if (p.n != 0 || net_counters(p.st)[malformed[i].counter] != before[malformed[i].counter] + 1)
			fail_msg("%s: %u frames answered, counter %s %llu -> %llu", malformed[i].what, p.n,
				 net_counter_names[malformed[i].counter],
				 (unsigned long long)before[malformed[i].counter],
				 (unsigned long long)net_counters(p.st)[malformed[i].counter]);
		for (k = 0; k < NET_C__COUNT; k++)
			if (k != (uint32_t)malformed[i].counter && strncmp(net_counter_names[k], "drop_", 5) == 0 &&
			    net_counters(p.st)[k] != before[k])
				fail_msg("%s: also counted as %s", malformed[i].what, net_counter_names[k]);
	}
	printf("# %zu malformed frames dropped under their own counter\n", i);
	/* the unmutated frames are answered */
	tn_peer_send(&p, f, base_syn(f, false));
	tn_peer_send(&p, f, base_syn(f, true));
	assert_int_equal(tn_peer_count_tcp(&p, 0, TH_SYN | TH_ACK, TH_SYN | TH_ACK), 2);
	tn_peer_free(&p);
}

/* csum_add sums native-order words and swaps once (csum.c): the same
 * sum as RFC 1071's 16-bit big-endian words, for every length, odd ones
 * included, at every alignment, from any running sum. */
static void test_csum_reference(void **state)
{
	uint8_t buf[1603];
	uint32_t seed = 12345;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		seed = seed * 1103515245 + 12345;
		buf[i] = (uint8_t)(seed >> 16);
	}
	memset(buf + 100, 0xff, 64); /* carries */
	for (size_t off = 0; off < 4; off++) {
		for (size_t n = 0; n + off <= 1600; n++) {
			uint32_t start = (uint32_t)(n * 7919 % 0x2ffff), ref = start;
			const uint8_t *b = buf + off;
			size_t k;

			for (k = 0; k + 1 < n; k += 2)
				ref += (uint32_t)b[k] << 8 | b[k + 1];
			if (k < n)
				ref += (uint32_t)b[k] << 8;
			assert_int_equal(csum_fold(csum_add(start, b, n)), csum_fold(ref));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp_reply),
		cmocka_unit_test(test_arp_queue),
		cmocka_unit_test(test_arp_unresolved),
		cmocka_unit_test(test_icmp4_echo),
		cmocka_unit_test(test_ndp_and_icmp6_echo),
		cmocka_unit_test(test_ndp_resolution),
		cmocka_unit_test(test_pmtu),
		cmocka_unit_test(test_pmtu6),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_csum_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
