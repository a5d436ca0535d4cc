/*
 * Ethernet: frames in (destination check, EtherType dispatch) and out
 * (header, next-hop choice for IPv4 and IPv6). No VLAN tags: a tagged
 * frame is counted as an unknown EtherType.
 */
#include <errno.h>

#include "net/net_int.h"

static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* Fill the Ethernet header at frame and hand the frame to the driver. */
void eth_output(struct net_stack *st, uint8_t *frame, uint32_t len, const uint8_t dst[6], uint16_t type)
{
	memcpy(frame, dst, 6);
	memcpy(frame + 6, st->cfg.mac, 6);
	wr16(frame + 12, type);
	net_count(st, NET_C_tx_frames);
	st->cfg.tx(st->cfg.tx_ctx, frame, len);
}

/* True if a is one of our unicast addresses. */
bool net_is_local(const struct net_stack *st, const struct net_addr *a)
{
	if (a->family == NET_AF4)
		return st->cfg.has_ip4 && memcmp(a->a, st->cfg.ip4, 4) == 0;
	if (a->family == NET_AF6)
		return (st->cfg.has_ip6 && memcmp(a->a, st->cfg.ip6, 16) == 0) ||
		       memcmp(a->a, st->cfg.ip6_ll, 16) == 0;
	return false;
}

/* fe80::/10 (RFC 4291 §2.5.6). */
static bool ip6_link_local(const uint8_t *a) { return a[0] == 0xfe && (a[1] & 0xc0) == 0x80; }

/* True if a and b share their first plen bits. */
static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned plen)
{
	unsigned full = plen / 8, rest = plen % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ b[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/* The source address for packets to dst: our IPv4 address, or the IPv6
 * link-local one for link-local peers and the global one otherwise.
 * Returns 0, or -EADDRNOTAVAIL when the family is not configured. */
int net_src_for(const struct net_stack *st, const struct net_addr *dst, struct net_addr *src)
{
	memset(src, 0, sizeof(*src));
	src->family = dst->family;
	if (dst->family == NET_AF4 && st->cfg.has_ip4) {
		memcpy(src->a, st->cfg.ip4, 4);
		return 0;
	}
	if (dst->family == NET_AF6) {
		if (ip6_link_local(dst->a) || !st->cfg.has_ip6)
			memcpy(src->a, st->cfg.ip6_ll, 16);
		else
			memcpy(src->a, st->cfg.ip6, 16);
		return 0;
	}
	return -EADDRNOTAVAIL;
}

/* Route an IP packet (already at frame + NET_ETH_HLEN) to its next hop: on
 * link if the destination is in our prefix (or link-local), else via the
 * gateway. The neighbour layer fills the destination MAC or queues a copy. */
void net_l3_output(struct net_stack *st, uint8_t *frame, uint32_t len, const struct net_addr *dst)
{
	struct net_addr nh = *dst;
	static const uint8_t zero[16], all_ones4[4] = { 255, 255, 255, 255 };

	if (dst->family == NET_AF4) {
		if (!st->cfg.has_ip4)
			goto noroute;
		if (memcmp(dst->a, st->ip4_bcast, 4) == 0 || memcmp(dst->a, all_ones4, 4) == 0) {
			eth_output(st, frame, len, bcast_mac, ETH_P_IP4);
			return;
		}
		if (!prefix_match(dst->a, st->cfg.ip4, st->cfg.ip4_plen)) {
			if (memcmp(st->cfg.ip4_gw, zero, 4) == 0)
				goto noroute;
			memcpy(nh.a, st->cfg.ip4_gw, 4);
		}
		neigh_resolve_output(st, &nh, frame, len, ETH_P_IP4);
		return;
	}
	if (dst->family == NET_AF6) {
		if (dst->a[0] == 0xff) { /* multicast: RFC 2464 §7 */
			uint8_t mac[6] = { 0x33, 0x33, dst->a[12], dst->a[13], dst->a[14], dst->a[15] };

			eth_output(st, frame, len, mac, ETH_P_IP6);
			return;
		}
		if (!ip6_link_local(dst->a) &&
		    !(st->cfg.has_ip6 && prefix_match(dst->a, st->cfg.ip6, st->cfg.ip6_plen))) {
			if (memcmp(st->cfg.ip6_gw, zero, 16) == 0)
				goto noroute;
			memcpy(nh.a, st->cfg.ip6_gw, 16);
		}
		neigh_resolve_output(st, &nh, frame, len, ETH_P_IP6);
		return;
	}
noroute:
	net_count(st, NET_C_drop_no_route);
}

/* One received frame: check the destination, dispatch on the EtherType. */
static void eth_input(struct net_stack *st, const uint8_t *f, uint32_t len)
{
	uint16_t type;

	if (len < NET_ETH_HLEN) {
		net_count(st, NET_C_drop_eth_short);
		return;
	}
	/* Unicast to us, broadcast, or IPv6 multicast (33:33:..., groups checked by ip6). */
	if (memcmp(f, st->cfg.mac, 6) != 0 && memcmp(f, bcast_mac, 6) != 0 &&
	    !(f[0] == 0x33 && f[1] == 0x33)) {
		net_count(st, NET_C_drop_eth_not_for_us);
		return;
	}
	if ((f[6] & 1) || memcmp(f + 6, st->cfg.mac, 6) == 0) {
		net_count(st, NET_C_drop_eth_src);
		return;
	}
	type = rd16(f + 12);
	switch (type) {
	case ETH_P_ARP:
		arp_input(st, f + NET_ETH_HLEN, len - NET_ETH_HLEN);
		break;
	case ETH_P_IP4:
		ip4_input(st, f + NET_ETH_HLEN, len - NET_ETH_HLEN);
		break;
	case ETH_P_IP6:
		ip6_input(st, f + NET_ETH_HLEN, len - NET_ETH_HLEN, f);
		break;
	default:
		net_count(st, NET_C_drop_eth_type);
	}
}

/* Public entry: see net.h. */
void net_input(struct net_stack *st, const uint8_t *frame, uint32_t len, uint64_t now_us)
{
	uint64_t t0 = net_cycles_now(st);

	if (now_us > st->now_us)
		st->now_us = now_us;
	st->depth++;
	st->cur = NULL;
	net_count(st, NET_C_rx_frames);
	eth_input(st, frame, len);
	if (st->cfg.cycles) {
		uint64_t d = net_cycles_now(st) - t0;

		st->cyc.rx_frames++;
		st->cyc.rx_cycles += d;
		if (st->cur) /* dead or alive: freed only by the reap below */
			st->cur->cycles += d;
	}
	st->cur = NULL;
	if (--st->depth == 0)
		net_reap(st);
}
