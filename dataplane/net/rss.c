/* The Toeplitz RSS hash and the source-port predicate (rss.h). */
#include "net/net_int.h"
#include "net/rss.h"

const uint8_t net_rss_default_key[NET_RSS_KEY_LEN] = {
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

/* For each set bit of the input, XOR in the 32 key bits starting at that
 * bit position (the specification's definition). */
uint32_t net_toeplitz(const uint8_t *key, const uint8_t *data, size_t len)
{
	uint32_t result = 0, window = rd32(key);
	size_t i;
	int b;

	for (i = 0; i < len; i++) {
		uint8_t next = key[i + 4];

		for (b = 7; b >= 0; b--) {
			if (data[i] & (1u << b))
				result ^= window;
			window = window << 1 | ((next >> b) & 1u);
		}
	}
	return result;
}

/* Input: source address, destination address, source port, destination
 * port, as the NIC reads them from the received packet. */
uint32_t net_rss_hash_tcp(const uint8_t *key, const struct net_addr *src, uint16_t sport,
			  const struct net_addr *dst, uint16_t dport)
{
	uint8_t in[36];
	size_t n = src->family == NET_AF4 ? 4 : 16;

	memcpy(in, src->a, n);
	memcpy(in + n, dst->a, n);
	wr16(in + 2 * n, sport);
	wr16(in + 2 * n + 2, dport);
	return net_toeplitz(key, in, 2 * n + 4);
}

/* Through the redirection table, or modulo the queue count without one. */
uint32_t net_rss_queue(const struct net_rss *r, uint32_t hash)
{
	if (r->reta_size)
		return r->reta[hash & (r->reta_size - 1)];
	return r->nqueues ? hash % r->nqueues : 0;
}

/* The backend answers from raddr:rport to laddr:lport: that is the packet
 * the NIC hashes. */
bool net_rss_port_ok(void *arg, const struct net_addr *laddr, uint16_t lport, const struct net_addr *raddr,
		     uint16_t rport)
{
	const struct net_rss *r = arg;

	return net_rss_queue(r, net_rss_hash_tcp(r->key, raddr, rport, laddr, lport)) == r->queue;
}
