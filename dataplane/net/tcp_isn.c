/*
 * Initial sequence numbers (RFC 6528 §3) and timestamp offsets (RFC 7323
 * §5.4, §7.1): keyed hashes of the connection's 4-tuple, so that neither
 * can be predicted off-path, plus a clock for the ISN.
 */
#include "net/net_int.h"

/* SipHash of the 4-tuple, domain-separated by a tag byte. */
static uint64_t tuple_prf(const struct net_stack *st, uint8_t domain, const struct tcp_tuple *t)
{
	uint8_t k[38];

	k[0] = domain;
	k[1] = t->laddr.family;
	memcpy(k + 2, t->laddr.a, 16);
	memcpy(k + 18, t->raddr.a, 16);
	wr16(k + 34, t->lport);
	wr16(k + 36, t->rport);
	return siphash24(st->cfg.secret, k, sizeof(k));
}

/* ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where
 * M is a 4 microsecond timer (RFC 6528 §3, RFC 9293 §3.4.1). */
uint32_t tcp_isn(struct net_stack *st, const struct tcp_tuple *t)
{
	return (uint32_t)(st->now_us / 4) + (uint32_t)tuple_prf(st, 'I', t);
}

/* A per-connection random offset for TSval (RFC 7323 §5.4). */
uint32_t tcp_ts_offset(struct net_stack *st, const struct tcp_tuple *t)
{
	return (uint32_t)tuple_prf(st, 'T', t);
}
