/*
 * ARP (RFC 826) for Ethernet and IPv4: answers requests for our address,
 * learns from replies and from requests aimed at us, asks for next hops.
 * Packets for another target teach nothing (no merge from traffic between
 * others); what a packet for us may change is neigh.c's rule.
 */
#include "net/net_int.h"

#define ARP_LEN 28
#define ARP_REQUEST 1
#define ARP_REPLY 2
#define ETH_MIN_FRAME 60          /* without FCS; shorter frames are padded */

static const uint8_t bcast_mac[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

/* Build and send one ARP packet. */
static void arp_send(struct net_stack *st, uint16_t op, const uint8_t *eth_dst,
		     const uint8_t *tha, const uint8_t *tpa)
{
	uint8_t f[ETH_MIN_FRAME] = { 0 };
	uint8_t *a = f + NET_ETH_HLEN;

	wr16(a, 1);                   /* hardware: Ethernet */
	wr16(a + 2, ETH_P_IP4);
	a[4] = 6;
	a[5] = 4;
	wr16(a + 6, op);
	memcpy(a + 8, st->cfg.mac, 6);
	memcpy(a + 14, st->cfg.ip4, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	eth_output(st, f, sizeof(f), eth_dst, ETH_P_ARP);
}

/* Ask who has target (broadcast). */
void arp_request(struct net_stack *st, const struct net_addr *target)
{
	static const uint8_t zero[6];

	net_count(st, NET_C_arp_request_tx);
	arp_send(st, ARP_REQUEST, bcast_mac, zero, target->a);
}

/* Senders no ARP packet may name: multicast, loopback, broadcast, ourselves. */
static bool ip4_bad_sender(const struct net_stack *st, const uint8_t *ip)
{
	return ip[0] >= 224 || ip[0] == 127 || memcmp(ip, st->ip4_bcast, 4) == 0 ||
	       memcmp(ip, st->cfg.ip4, 4) == 0;
}

/* One ARP packet (after the Ethernet header), RFC 826 "Packet Reception". */
void arp_input(struct net_stack *st, const uint8_t *p, uint32_t len)
{
	static const uint8_t zero4[4];
	struct net_addr spa = { .family = NET_AF4 };
	uint16_t op;
	bool for_us;

	if (len < ARP_LEN || rd16(p) != 1 || rd16(p + 2) != ETH_P_IP4 || p[4] != 6 || p[5] != 4) {
		net_count(st, NET_C_drop_arp_malformed);
		return;
	}
	if (!st->cfg.has_ip4) {
		net_count(st, NET_C_drop_arp_not_for_us);
		return;
	}
	op = rd16(p + 6);
	if (op != ARP_REQUEST && op != ARP_REPLY) {
		net_count(st, NET_C_drop_arp_op);
		return;
	}
	if ((p[8] & 1) || (memcmp(p + 14, zero4, 4) != 0 && ip4_bad_sender(st, p + 14))) {
		net_count(st, NET_C_drop_arp_bad_sender);
		return;
	}
	memcpy(spa.a, p + 14, 4);
	for_us = memcmp(p + 24, st->cfg.ip4, 4) == 0;
	if (!for_us) {
		net_count(st, NET_C_drop_arp_not_for_us);
		return;
	}
	/* RFC 826: merge, then add when we are the target of a request; a
	 * reply must answer a question of ours (neigh.c drops the others).
	 * ARP has no flags: a packet for us from the known MAC confirms it.
	 * A probe (sender 0.0.0.0, RFC 5227 §2.1.1) teaches nothing. */
	if (memcmp(spa.a, zero4, 4) != 0)
		neigh_update(st, &spa, p + 8,
			     NU_OVERRIDE | NU_SOLICITED | (op == ARP_REQUEST ? NU_CREATE : 0));
	if (op == ARP_REQUEST) {
		net_count(st, NET_C_arp_request_rx);
		arp_send(st, ARP_REPLY, p + 8, p + 8, p + 14);
	} else {
		net_count(st, NET_C_arp_reply_rx);
	}
}
