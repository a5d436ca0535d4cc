/*
 * ICMP for IPv4 (RFC 792, RFC 1122 §3.2.2): echo replies, and the one
 * error TCP acts on, "fragmentation needed and DF set" (type 3 code 4),
 * which lowers a connection's path MTU (RFC 1191 §4, validated as RFC 5927
 * §4.1 asks). Other errors are soft for TCP (RFC 5461) and only counted.
 */
#include "net/net_int.h"

#define ICMP_ECHO_REPLY 0
#define ICMP_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_FRAG_NEEDED 4

/* Echo the request back with type 0 (RFC 792 "Echo or Echo Reply"). */
static void icmp4_echo(struct net_stack *st, const uint8_t *ip, const uint8_t *p, uint32_t len)
{
	struct net_addr src = { .family = NET_AF4 }, dst = { .family = NET_AF4 };
	uint8_t *out = st->frame + NET_ETH_HLEN + NET_IP4_HLEN;

	if (NET_IP4_HLEN + len > st->cfg.mtu) {
		net_count(st, NET_C_drop_ip4_len);
		return;
	}
	memcpy(src.a, ip + 16, 4);
	memcpy(dst.a, ip + 12, 4);
	memcpy(out, p, len);
	out[0] = ICMP_ECHO_REPLY;
	wr16(out + 2, 0);
	wr16(out + 2, csum_fold(csum_add(0, out, len)));
	ip4_header(st->frame + NET_ETH_HLEN, &src, &dst, IPPROTO_ICMP4, len, false);
	net_count(st, NET_C_icmp_echo_rx);
	net_l3_output(st, st->frame, NET_ETH_HLEN + NET_IP4_HLEN + len, &dst);
}

/* Fragmentation needed: the quoted header must be one of our TCP segments. */
static void icmp4_frag_needed(struct net_stack *st, const uint8_t *p, uint32_t len)
{
	const uint8_t *in = p + 8;
	struct tcp_tuple t;
	uint32_t mtu = rd16(p + 6), ihl;

	if (len < 8 + NET_IP4_HLEN + 8 || in[0] >> 4 != 4 || in[9] != IPPROTO_TCP6) {
		net_count(st, NET_C_drop_icmp_frag_needed);
		return;
	}
	ihl = (uint32_t)(in[0] & 15) * 4;
	if (ihl < NET_IP4_HLEN || len < 8 + ihl + 8) {
		net_count(st, NET_C_drop_icmp_frag_needed);
		return;
	}
	memset(&t, 0, sizeof(t));
	t.laddr.family = t.raddr.family = NET_AF4;
	memcpy(t.laddr.a, in + 12, 4);
	memcpy(t.raddr.a, in + 16, 4);
	t.lport = rd16(in + ihl);
	t.rport = rd16(in + ihl + 2);
	if (mtu < 68) /* an RFC 792 router without the field (RFC 1191 §5): assume the minimum */
		mtu = 576;
	tcp_pmtu(st, &t, rd32(in + ihl + 4), mtu);
}

/* One ICMP message; ip is its IPv4 header (hl bytes). */
void icmp4_input(struct net_stack *st, const uint8_t *ip, uint32_t hl, const uint8_t *p, uint32_t len)
{
	(void)hl;
	if (len < 8) {
		net_count(st, NET_C_drop_icmp_short);
		return;
	}
	if (csum_fold(csum_add(0, p, len)) != 0) {
		net_count(st, NET_C_drop_icmp_csum);
		return;
	}
	if (p[0] == ICMP_ECHO && p[1] == 0)
		icmp4_echo(st, ip, p, len);
	else if (p[0] == ICMP_UNREACH && p[1] == ICMP_FRAG_NEEDED)
		icmp4_frag_needed(st, p, len);
	else
		net_count(st, NET_C_drop_icmp_type);
}
