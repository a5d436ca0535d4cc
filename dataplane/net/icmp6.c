/*
 * ICMPv6 (RFC 4443): echo replies, Packet Too Big for TCP's path MTU
 * (RFC 8201), and the NDP messages handed to ndp.c. Other types are
 * counted and dropped (no router discovery: addresses are configured).
 */
#include "net/net_int.h"

#define ICMP6_TOO_BIG 2
#define ICMP6_ECHO 128
#define ICMP6_ECHO_REPLY 129

/* Echo reply (RFC 4443 §4.2), from our unicast address even when the
 * request went to a group. */
static void icmp6_echo(struct net_stack *st, const uint8_t *ip, const uint8_t *p, uint32_t len)
{
	struct net_addr src, dst = { .family = NET_AF6 };
	uint8_t *out = st->frame + NET_ETH_HLEN + NET_IP6_HLEN;

	if (NET_IP6_HLEN + len > st->cfg.mtu) {
		net_count(st, NET_C_drop_ip6_len);
		return;
	}
	memcpy(dst.a, ip + 8, 16);
	if (dst.a[0] == 0 && memcmp(dst.a, (const uint8_t[16]){ 0 }, 16) == 0) {
		net_count(st, NET_C_drop_ip6_bad_src); /* nobody to answer: from :: */
		return;
	}
	net_src_for(st, &dst, &src);
	memcpy(out, p, len);
	out[0] = ICMP6_ECHO_REPLY;
	wr16(out + 2, 0);
	wr16(out + 2, csum_fold(csum_add(csum_pseudo(&src, &dst, IPPROTO_ICMP6_, len), out, len)));
	ip6_header(st->frame + NET_ETH_HLEN, &src, &dst, IPPROTO_ICMP6_, len, 64);
	net_count(st, NET_C_icmp6_echo_rx);
	net_l3_output(st, st->frame, NET_ETH_HLEN + NET_IP6_HLEN + len, &dst);
}

/* Packet Too Big (RFC 4443 §3.2): the quoted packet must be our TCP
 * segment; the MTU is never taken below 1280 (RFC 8200 §5). */
static void icmp6_too_big(struct net_stack *st, const uint8_t *p, uint32_t len)
{
	const uint8_t *in = p + 8;
	struct tcp_tuple t;
	uint32_t mtu = rd32(p + 4);

	if (len < 8 + NET_IP6_HLEN + 8 || in[6] != IPPROTO_TCP6) {
		net_count(st, NET_C_drop_icmp_frag_needed);
		return;
	}
	memset(&t, 0, sizeof(t));
	t.laddr.family = t.raddr.family = NET_AF6;
	memcpy(t.laddr.a, in + 8, 16);
	memcpy(t.raddr.a, in + 24, 16);
	t.lport = rd16(in + NET_IP6_HLEN);
	t.rport = rd16(in + NET_IP6_HLEN + 2);
	if (mtu < 1280)
		mtu = 1280;
	tcp_pmtu(st, &t, rd32(in + NET_IP6_HLEN + 4), mtu);
}

/* One ICMPv6 message; ip is its IPv6 header. */
void icmp6_input(struct net_stack *st, const uint8_t *ip, const uint8_t *p, uint32_t len)
{
	struct net_addr src = { .family = NET_AF6 }, dst = { .family = NET_AF6 };

	if (len < 8) {
		net_count(st, NET_C_drop_icmp6_short);
		return;
	}
	memcpy(src.a, ip + 8, 16);
	memcpy(dst.a, ip + 24, 16);
	if (csum_fold(csum_add(csum_pseudo(&src, &dst, IPPROTO_ICMP6_, len), p, len)) != 0) {
		net_count(st, NET_C_drop_icmp6_csum);
		return;
	}
	switch (p[0]) {
	case ICMP6_ECHO:
		if (p[1] == 0) {
			icmp6_echo(st, ip, p, len);
			return;
		}
		break;
	case ICMP6_TOO_BIG:
		icmp6_too_big(st, p, len);
		return;
	case 135: /* neighbour solicitation */
	case 136: /* neighbour advertisement */
		ndp_input(st, ip, p, len);
		return;
	}
	net_count(st, NET_C_drop_icmp6_type);
}
