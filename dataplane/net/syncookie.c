/*
 * SYN cookies (RFC 4987 §3.6): when a listener's SYN queue is full, the
 * SYN-ACK's sequence number carries the state, and the final ACK rebuilds
 * the connection without anything kept in between.
 *
 * Cookie (the ISN we send), 32 bits:
 *   31..8  24 bits of SipHash(secret, 4-tuple, client ISN, time slot)
 *    7..3  the time slot (64 s) modulo 32
 *    2..0  index of the MSS in mss_table (largest entry <= the client's MSS)
 * A cookie is accepted up to two slots old (64-192 s).
 *
 * What the cookie cannot hold, the timestamp can: when the client sent
 * timestamps, the low 6 bits of our TSval carry the client's window scale
 * (4 bits, 15 = none) and SACK-permitted (1 bit), and come back in TSecr.
 * Without timestamps the connection runs without window scaling and SACK.
 */
#include "net/net_int.h"

#define SLOT_US (64ull * 1000000)
#define SLOT_AGE 2
#define TS_BITS 6
#define TS_MASK ((1u << TS_BITS) - 1)
#define WS_NONE 15

static const uint16_t mss_table[8] = { 536, 1220, 1300, 1360, 1400, 1440, 1460, 8960 };

/* The keyed hash a cookie carries 24 bits of. */
static uint32_t cookie_hash(struct net_stack *st, const struct tcp_tuple *t, uint32_t peer_isn, uint64_t slot)
{
	uint8_t k[50];

	k[0] = 'C';
	k[1] = t->laddr.family;
	memcpy(k + 2, t->laddr.a, 16);
	memcpy(k + 18, t->raddr.a, 16);
	wr16(k + 34, t->lport);
	wr16(k + 36, t->rport);
	wr32(k + 38, peer_isn);
	wr32(k + 42, (uint32_t)(slot >> 32));
	wr32(k + 46, (uint32_t)slot);
	return (uint32_t)siphash24(st->cfg.secret, k, sizeof(k));
}

/* The cookie for a SYN from t with sequence peer_isn and MSS option mss.
 * Sets *mss_out to the MSS the cookie encodes. Returns the cookie. */
uint32_t syncookie_make(struct net_stack *st, const struct tcp_tuple *t, uint32_t peer_isn, uint16_t mss,
			uint16_t *mss_out)
{
	uint64_t slot = st->now_us / SLOT_US;
	uint32_t i = 0;

	while (i + 1 < 8 && mss_table[i + 1] <= mss)
		i++;
	*mss_out = mss_table[i];
	return (cookie_hash(st, t, peer_isn, slot) & 0xffffff00u) | (uint32_t)(slot & 31) << 3 | i;
}

/* Check the cookie returned in an ACK (cookie = SEG.ACK - 1, peer_isn =
 * SEG.SEQ - 1). Returns 0 and *mss, or -1 if forged or expired. */
int syncookie_check(struct net_stack *st, const struct tcp_tuple *t, uint32_t peer_isn, uint32_t cookie,
		    uint16_t *mss)
{
	uint64_t now = st->now_us / SLOT_US, slot;
	uint32_t age = (uint32_t)((now - ((cookie >> 3) & 31)) & 31);

	if (age > SLOT_AGE || age > now)
		return -1;
	slot = now - age;
	if (((cookie_hash(st, t, peer_isn, slot) ^ cookie) & 0xffffff00u) != 0)
		return -1;
	*mss = mss_table[cookie & 7];
	return 0;
}

/* Our TSval with the client's options in its low bits. Never ahead of
 * tsval, so the connection's later TSvals do not go back (RFC 7323 §5.3). */
uint32_t syncookie_ts_encode(uint32_t tsval, int wscale, bool sack)
{
	uint32_t v = (uint32_t)(wscale < 0 ? WS_NONE : wscale) | (sack ? 16u : 0u);
	uint32_t ts = (tsval & ~TS_MASK) | v;

	if (ts - tsval < 0x80000000u && ts != tsval)
		ts -= TS_MASK + 1; /* ts was ahead: go back one step */
	return ts;
}

/* The options back from TSecr: *wscale -1 if none. */
void syncookie_ts_decode(uint32_t tsecr, int *wscale, bool *sack)
{
	uint32_t w = tsecr & 15;

	*wscale = w == WS_NONE ? -1 : (int)(w > 14 ? 14 : w);
	*sack = (tsecr & 16) != 0;
}
