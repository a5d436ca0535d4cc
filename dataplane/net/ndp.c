/*
 * Neighbour Discovery (RFC 4861) for address resolution: neighbour
 * solicitations for our addresses get advertisements, advertisements
 * resolve our next hops, and we solicit the next hops we need. Router and
 * redirect messages are not handled (static configuration); no DAD of our
 * own addresses.
 */
#include "net/net_int.h"

#define ND_NS 135
#define ND_NA 136
#define ND_OPT_SLLA 1
#define ND_OPT_TLLA 2
#define NA_ROUTER 0x80
#define NA_SOLICITED 0x40
#define NA_OVERRIDE 0x20

/* Walk the options of an NS or NA (RFC 4861 §4.6): every option must have a
 * non-zero length and fit. Sets *lla to the link-layer address option of
 * the wanted type, if any. Returns false if the options are malformed. */
static bool nd_options(const uint8_t *o, uint32_t len, uint8_t want, const uint8_t **lla)
{
	*lla = NULL;
	while (len > 0) {
		uint32_t ol;

		if (len < 2 || o[1] == 0)
			return false;
		ol = (uint32_t)o[1] * 8;
		if (ol > len)
			return false;
		if (o[0] == want && ol >= 8)
			*lla = o + 2;
		o += ol;
		len -= ol;
	}
	return true;
}

/* Send an ICMPv6 NDP message of len bytes (at body) from src to dst. */
static void nd_send(struct net_stack *st, const struct net_addr *src, const struct net_addr *dst,
		    uint8_t *frame, uint32_t len)
{
	uint8_t *body = frame + NET_ETH_HLEN + NET_IP6_HLEN;

	wr16(body + 2, 0);
	wr16(body + 2, csum_fold(csum_add(csum_pseudo(src, dst, IPPROTO_ICMP6_, len), body, len)));
	ip6_header(frame + NET_ETH_HLEN, src, dst, IPPROTO_ICMP6_, len, 255);
	net_l3_output(st, frame, NET_ETH_HLEN + NET_IP6_HLEN + len, dst);
}

/* Solicit target's link-layer address at its solicited-node group (RFC 4861 §7.2.2). */
void ndp_solicit(struct net_stack *st, const struct net_addr *target)
{
	uint8_t f[NET_ETH_HLEN + NET_IP6_HLEN + 32] = { 0 };
	uint8_t *b = f + NET_ETH_HLEN + NET_IP6_HLEN;
	struct net_addr src, dst = { .family = NET_AF6, .a = { 0xff, 2, [11] = 1, [12] = 0xff } };

	memcpy(dst.a + 13, target->a + 13, 3);
	net_src_for(st, target, &src);
	b[0] = ND_NS;
	memcpy(b + 8, target->a, 16);
	b[24] = ND_OPT_SLLA;
	b[25] = 1;
	memcpy(b + 26, st->cfg.mac, 6);
	net_count(st, NET_C_ndp_ns_tx);
	nd_send(st, &src, &dst, f, 32);
}

/* A neighbour solicitation (RFC 4861 §7.1.1 checks, §7.2.3-7.2.4 answer). */
static void ndp_ns(struct net_stack *st, const struct net_addr *src, const uint8_t *ip,
		   const uint8_t *p, uint32_t len)
{
	static const uint8_t any[16];
	uint8_t f[NET_ETH_HLEN + NET_IP6_HLEN + 32] = { 0 };
	uint8_t *b = f + NET_ETH_HLEN + NET_IP6_HLEN;
	struct net_addr target = { .family = NET_AF6 }, dst = { .family = NET_AF6 };
	const uint8_t *slla;
	bool dad = memcmp(src->a, any, 16) == 0;

	if (!nd_options(p + 24, len - 24, ND_OPT_SLLA, &slla) || p[8] == 0xff ||
	    (dad && (slla || !(ip[24] == 0xff && ip[35] == 1 && ip[36] == 0xff)))) {
		net_count(st, NET_C_drop_ndp_invalid);
		return;
	}
	memcpy(target.a, p + 8, 16);
	if (!net_is_local(st, &target)) {
		net_count(st, NET_C_drop_ndp_not_for_us);
		return;
	}
	/* RFC 4861 §7.2.3: the solicitation's SLLA creates or overrides
	 * (within neigh.c's rule: a reachable entry is probed first) */
	if (slla && !(slla[0] & 1))
		neigh_update(st, src, slla, NU_CREATE | NU_OVERRIDE);
	/* RFC 4861 §7.2.4: to the soliciter, or to all nodes for DAD */
	if (dad) {
		dst.a[0] = 0xff;
		dst.a[1] = 2;
		dst.a[15] = 1;
	} else {
		dst = *src;
	}
	b[0] = ND_NA;
	b[4] = (uint8_t)((dad ? 0 : NA_SOLICITED) | NA_OVERRIDE);
	memcpy(b + 8, target.a, 16);
	b[24] = ND_OPT_TLLA;
	b[25] = 1;
	memcpy(b + 26, st->cfg.mac, 6);
	net_count(st, NET_C_ndp_ns_rx);
	nd_send(st, &target, &dst, f, 32);
}

/* A neighbour advertisement (RFC 4861 §7.1.2 checks, §7.2.5 update). */
static void ndp_na(struct net_stack *st, const uint8_t *ip, const uint8_t *p, uint32_t len)
{
	struct net_addr target = { .family = NET_AF6 };
	const uint8_t *tlla;

	if (!nd_options(p + 24, len - 24, ND_OPT_TLLA, &tlla) || p[8] == 0xff ||
	    (ip[24] == 0xff && (p[4] & NA_SOLICITED))) {
		net_count(st, NET_C_drop_ndp_invalid);
		return;
	}
	memcpy(target.a, p + 8, 16);
	net_count(st, NET_C_ndp_na_rx);
	/* RFC 4861 §7.2.5: the Solicited flag confirms, the Override flag
	 * allows a new address; none is created from an advertisement. An
	 * NA without TLLA carries no address to learn. */
	if (tlla && !(tlla[0] & 1))
		neigh_update(st, &target, tlla, ((p[4] & NA_SOLICITED) ? NU_SOLICITED : 0) |
						 ((p[4] & NA_OVERRIDE) ? NU_OVERRIDE : 0));
}

/* NS or NA; ip is the IPv6 header, p the ICMPv6 message (checksum checked). */
void ndp_input(struct net_stack *st, const uint8_t *ip, const uint8_t *p, uint32_t len)
{
	struct net_addr src = { .family = NET_AF6 };

	/* RFC 4861 §7.1: hop limit 255 proves the sender is on link */
	if (ip[7] != 255 || p[1] != 0 || len < 24) {
		net_count(st, NET_C_drop_ndp_invalid);
		return;
	}
	memcpy(src.a, ip + 8, 16);
	if (p[0] == ND_NS)
		ndp_ns(st, &src, ip, p, len);
	else
		ndp_na(st, ip, p, len);
}
