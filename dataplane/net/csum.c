/* The Internet checksum (RFC 1071) and the TCP/ICMPv6 pseudo headers. */
#include "net/net_int.h"

/* Add n bytes at p to a running sum of 16-bit big-endian words; an odd last
 * byte is padded with zero (RFC 1071 §4.1). Sums up to 64 KiB cannot
 * overflow 32 bits. Returns the new sum. */
uint32_t csum_add(uint32_t sum, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 1) {
		sum += (uint32_t)b[0] << 8 | b[1];
		b += 2;
		n -= 2;
	}
	if (n)
		sum += (uint32_t)b[0] << 8;
	return sum;
}

/* Fold the carries and complement: the value to store in a header. A
 * packet checksummed with its checksum field in place folds to 0. */
uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The pseudo header sum: RFC 9293 §3.1 for IPv4, RFC 8200 §8.1 for IPv6. */
uint32_t csum_pseudo(const struct net_addr *src, const struct net_addr *dst, uint8_t proto, uint32_t len)
{
	uint32_t sum = 0;

	if (src->family == NET_AF4) {
		sum = csum_add(sum, src->a, 4);
		sum = csum_add(sum, dst->a, 4);
		sum += proto;
		sum += len;
	} else {
		sum = csum_add(sum, src->a, 16);
		sum = csum_add(sum, dst->a, 16);
		sum += len >> 16;
		sum += len & 0xffff;
		sum += proto;
	}
	return sum;
}
