/* The Internet checksum (RFC 1071) and the TCP/ICMPv6 pseudo headers. */
#include <arpa/inet.h>
#include <string.h>

#include "net/net_int.h"

/* Add n bytes at p to a running sum of 16-bit big-endian words; an odd last
 * byte is padded with zero (RFC 1071 §4.1). Every packet in and out goes
 * through here, so the bytes are summed as native-order 32-bit words into
 * 64 bits (eight times fewer steps than by 16-bit words) and the folded
 * result swapped to network order once: the ones' complement sum does not
 * depend on the byte order (RFC 1071 §2(B)). What is added is at most
 * 0xffff, so sums of up to 64 KiB still cannot overflow 32 bits. Returns
 * the new sum. */
uint32_t csum_add(uint32_t sum, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t acc = 0;
	uint32_t w;
	uint16_t h;

	for (; n >= 16; b += 16, n -= 16) {
		uint32_t w1, w2, w3;

		memcpy(&w, b, 4);
		memcpy(&w1, b + 4, 4);
		memcpy(&w2, b + 8, 4);
		memcpy(&w3, b + 12, 4);
		acc += (uint64_t)w + w1 + w2 + w3;
	}
	for (; n >= 4; b += 4, n -= 4) {
		memcpy(&w, b, 4);
		acc += w;
	}
	if (n >= 2) {
		memcpy(&h, b, 2);
		acc += h;
		b += 2;
		n -= 2;
	}
	if (n) {
		const uint8_t last[2] = { b[0], 0 };

		memcpy(&h, last, 2);
		acc += h;
	}
	acc = (acc & 0xffffffff) + (acc >> 32);
	acc = (acc & 0xffffffff) + (acc >> 32);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return sum + ntohs((uint16_t)acc);
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
