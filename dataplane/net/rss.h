/*
 * Receive-side scaling as the NIC computes it (the Toeplitz hash of the
 * Microsoft RSS specification), so that an active open can pick a source
 * port whose answers the NIC steers back to the core that opened it
 * (DESIGN.md §6): pass net_rss_port_ok and a struct net_rss as the
 * port_ok predicate of tcp_connect().
 */
#ifndef SLUICE_NET_RSS_H
#define SLUICE_NET_RSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

#define NET_RSS_KEY_LEN 40
#define NET_RSS_RETA_MAX 512

extern const uint8_t net_rss_default_key[NET_RSS_KEY_LEN]; /* the specification's sample key */

/* The port's RSS configuration and the queue of this core. */
struct net_rss {
	uint8_t key[NET_RSS_KEY_LEN];
	uint16_t reta[NET_RSS_RETA_MAX]; /* redirection table: hash -> queue */
	uint32_t reta_size;               /* a power of two; 0: queue = hash % nqueues */
	uint32_t nqueues;
	uint32_t queue;                   /* the queue this core polls */
};

/* Toeplitz hash of len bytes under key (which must be at least len + 4 bytes). */
uint32_t net_toeplitz(const uint8_t *key, const uint8_t *data, size_t len);
/* The hash the NIC computes for a TCP segment from src:sport to dst:dport. */
uint32_t net_rss_hash_tcp(const uint8_t *key, const struct net_addr *src, uint16_t sport,
			  const struct net_addr *dst, uint16_t dport);
/* The queue that hash lands on. */
uint32_t net_rss_queue(const struct net_rss *r, uint32_t hash);
/* tcp_connect() predicate: true if the peer's answers to laddr:lport come
 * back on r->queue. arg is a struct net_rss. */
bool net_rss_port_ok(void *arg, const struct net_addr *laddr, uint16_t lport, const struct net_addr *raddr,
		     uint16_t rport);

#endif
