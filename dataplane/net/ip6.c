/*
 * IPv6 (RFC 8200): header checks, the extension-header walk, dispatch to
 * ICMPv6 and TCP, header construction. Hop-by-hop, destination options
 * and exhausted routing headers are skipped; fragments are dropped and
 * counted (no reassembly; TCP never sends fragments).
 */
#include "net/net_int.h"

#define NH_HOPOPTS 0
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_DSTOPTS 60
#define EXT_MAX 8                 /* extension headers walked before giving up */

/* True for the groups we belong to: all-nodes ff02::1 and the
 * solicited-node groups of our addresses (RFC 4291 §2.7.1). */
bool ip6_is_our_multicast(const struct net_stack *st, const uint8_t *a)
{
	static const uint8_t all_nodes[16] = { 0xff, 2, [15] = 1 };
	static const uint8_t sol[13] = { 0xff, 2, [11] = 1, [12] = 0xff };

	if (memcmp(a, all_nodes, 16) == 0)
		return true;
	if (memcmp(a, sol, 13) != 0)
		return false;
	return memcmp(a + 13, st->cfg.ip6_ll + 13, 3) == 0 ||
	       (st->cfg.has_ip6 && memcmp(a + 13, st->cfg.ip6 + 13, 3) == 0);
}

/* Sources no packet for us may come from: multicast, loopback, ourselves. */
static bool ip6_bad_src(const struct net_stack *st, const uint8_t *a)
{
	static const uint8_t loop[16] = { [15] = 1 };
	struct net_addr x = { .family = NET_AF6 };

	memcpy(x.a, a, 16);
	return a[0] == 0xff || memcmp(a, loop, 16) == 0 || net_is_local(st, &x);
}

/* One IPv6 packet (after the Ethernet header; len may include padding). */
void ip6_input(struct net_stack *st, const uint8_t *p, uint32_t len, const uint8_t *eth)
{
	static const uint8_t any[16];
	struct net_addr src = { .family = NET_AF6 }, dst = { .family = NET_AF6 };
	uint32_t plen, off = NET_IP6_HLEN, end;
	uint8_t nh;
	int n;

	(void)eth;
	if (len < NET_IP6_HLEN) {
		net_count(st, NET_C_drop_ip6_short);
		return;
	}
	if (p[0] >> 4 != 6) {
		net_count(st, NET_C_drop_ip6_version);
		return;
	}
	plen = rd16(p + 4);
	if (NET_IP6_HLEN + plen > len) {
		net_count(st, NET_C_drop_ip6_len);
		return;
	}
	end = NET_IP6_HLEN + plen;
	memcpy(src.a, p + 8, 16);
	memcpy(dst.a, p + 24, 16);
	if (!net_is_local(st, &dst) && !ip6_is_our_multicast(st, dst.a)) {
		net_count(st, NET_C_drop_ip6_not_for_us);
		return;
	}
	if (ip6_bad_src(st, src.a)) {
		net_count(st, NET_C_drop_ip6_bad_src);
		return;
	}
	nh = p[6];
	for (n = 0; n < EXT_MAX; n++) {
		uint32_t hl;

		if (nh != NH_HOPOPTS && nh != NH_DSTOPTS && nh != NH_ROUTING)
			break;
		/* RFC 8200 §4.1: hop-by-hop only right after the header */
		if ((nh == NH_HOPOPTS && off != NET_IP6_HLEN) || end - off < 8) {
			net_count(st, NET_C_drop_ip6_ext);
			return;
		}
		hl = ((uint32_t)p[off + 1] + 1) * 8;
		if (hl > end - off || (nh == NH_ROUTING && p[off + 3] != 0)) {
			/* RFC 8200 §4.4: a routing header with segments left asks
			 * us to forward, which a host does not do */
			net_count(st, NET_C_drop_ip6_ext);
			return;
		}
		nh = p[off];
		off += hl;
	}
	if (n == EXT_MAX) {
		net_count(st, NET_C_drop_ip6_ext);
		return;
	}
	if (nh == NH_FRAGMENT) {
		net_count(st, NET_C_drop_ip6_fragment);
		return;
	}
	if (nh == IPPROTO_ICMP6_) {
		icmp6_input(st, p, p + off, end - off);
		return;
	}
	/* Only ICMPv6 (NDP, DAD) may come from :: or go to a group. */
	if (memcmp(src.a, any, 16) == 0 || dst.a[0] == 0xff) {
		net_count(st, dst.a[0] == 0xff ? NET_C_drop_ip6_not_for_us : NET_C_drop_ip6_bad_src);
		return;
	}
	if (nh == IPPROTO_TCP6)
		tcp_input(st, &src, &dst, p + off, end - off);
	else
		net_count(st, NET_C_drop_ip6_proto);
}

/* Write a 40-byte IPv6 header for plen bytes of payload. */
void ip6_header(uint8_t *ip, const struct net_addr *src, const struct net_addr *dst,
		uint8_t proto, uint32_t plen, uint8_t hlim)
{
	wr32(ip, 0x60000000u);
	wr16(ip + 4, (uint16_t)plen);
	ip[6] = proto;
	ip[7] = hlim;
	memcpy(ip + 8, src->a, 16);
	memcpy(ip + 24, dst->a, 16);
}
