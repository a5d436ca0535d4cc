/*
 * IPv4 (RFC 791, RFC 1122 §3.2.1): header checks, dispatch to ICMP and
 * TCP, header construction. No options are sent; received options are
 * skipped. No fragments: both directions set DF (RFC 1191 path MTU
 * discovery) and received fragments are dropped and counted.
 */
#include "net/net_int.h"

/* Sources no packet for us may come from (RFC 1122 §3.2.1.3). */
static bool ip4_bad_src(const struct net_stack *st, const uint8_t *a)
{
	static const uint8_t any[4], all[4] = { 255, 255, 255, 255 };

	return a[0] >= 224 || a[0] == 127 || memcmp(a, any, 4) == 0 || memcmp(a, all, 4) == 0 ||
	       memcmp(a, st->ip4_bcast, 4) == 0 || memcmp(a, st->cfg.ip4, 4) == 0;
}

/* One IPv4 packet (after the Ethernet header; len may include padding). */
void ip4_input(struct net_stack *st, const uint8_t *p, uint32_t len)
{
	struct net_addr src = { .family = NET_AF4 }, dst = { .family = NET_AF4 };
	uint32_t hl, tot;

	if (len < NET_IP4_HLEN) {
		net_count(st, NET_C_drop_ip4_short);
		return;
	}
	if (p[0] >> 4 != 4) {
		net_count(st, NET_C_drop_ip4_version);
		return;
	}
	hl = (uint32_t)(p[0] & 15) * 4;
	tot = rd16(p + 2);
	if (hl < NET_IP4_HLEN) {
		net_count(st, NET_C_drop_ip4_hlen);
		return;
	}
	if (tot > len) {
		net_count(st, NET_C_drop_ip4_len);
		return;
	}
	if (hl > tot) {
		net_count(st, NET_C_drop_ip4_hlen);
		return;
	}
	if (csum_fold(csum_add(0, p, hl)) != 0) {
		net_count(st, NET_C_drop_ip4_csum);
		return;
	}
	if (rd16(p + 6) & 0x3fff) { /* MF set or a fragment offset */
		net_count(st, NET_C_drop_ip4_fragment);
		return;
	}
	if (!st->cfg.has_ip4 || memcmp(p + 16, st->cfg.ip4, 4) != 0) {
		net_count(st, NET_C_drop_ip4_not_for_us);
		return;
	}
	if (ip4_bad_src(st, p + 12)) {
		net_count(st, NET_C_drop_ip4_bad_src);
		return;
	}
	memcpy(src.a, p + 12, 4);
	memcpy(dst.a, p + 16, 4);
	switch (p[9]) {
	case IPPROTO_TCP6:
		tcp_input(st, &src, &dst, p + hl, tot - hl);
		break;
	case IPPROTO_ICMP4:
		icmp4_input(st, p, hl, p + hl, tot - hl);
		break;
	default:
		net_count(st, NET_C_drop_ip4_proto);
	}
}

/* Write a 20-byte IPv4 header for plen bytes of payload. DF is set on
 * everything TCP sends (RFC 1191); the ID is 0 for such atomic datagrams
 * (RFC 6864 §4.1). TTL 64 (RFC 1700's default). */
void ip4_header(uint8_t *ip, const struct net_addr *src, const struct net_addr *dst,
		uint8_t proto, uint32_t plen, bool df)
{
	ip[0] = 0x45;
	ip[1] = 0;
	wr16(ip + 2, (uint16_t)(NET_IP4_HLEN + plen));
	wr16(ip + 4, 0);
	wr16(ip + 6, df ? 0x4000 : 0);
	ip[8] = 64;
	ip[9] = proto;
	wr16(ip + 10, 0);
	memcpy(ip + 12, src->a, 4);
	memcpy(ip + 16, dst->a, 4);
	wr16(ip + 10, csum_fold(csum_add(0, ip, NET_IP4_HLEN)));
}
