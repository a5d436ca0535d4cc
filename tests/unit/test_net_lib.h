/*
 * Helpers for the native stack's tests: hosts on 192.0.2.0/24 and
 * 2001:db8::/64 (documentation prefixes), a scripted peer that builds the
 * frames a test sends and parses the frames the stack answers, and a bulk
 * transfer application with integrity hashes.
 */
#ifndef TEST_NET_LIB_H
#define TEST_NET_LIB_H

#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"
#include "net/simlink.h"

#define TN_MAX_FRAMES 8192

/* Host id (1, 2, ...) -> MAC 02:00:00:00:00:id, 192.0.2.id/24, 2001:db8::id/64. */
void tn_config(struct net_config *cfg, int id, const struct tcp_params *tp);
struct net_addr tn_ip4(int id);
struct net_addr tn_ip6(int id);
void tn_mac(uint8_t mac[6], int id);

/* A segment to build, or one parsed from the stack's output. */
struct tn_seg {
	bool v6;
	int src_id, dst_id;          /* hosts (addresses and MACs) */
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	uint8_t opt[40];
	uint32_t optlen;
	const uint8_t *data;         /* built: payload; parsed: points into the frame */
	uint32_t dlen;
	/* parsed options */
	bool mss_ok, ws_ok, sack_ok, ts_ok;
	uint16_t mss;
	uint8_t ws;
	uint32_t tsval, tsecr;
	uint8_t nsack;
	uint32_t sack[4][2];
};

/* Build an Ethernet + IP + TCP frame (checksums right). Returns its length. */
uint32_t tn_build_tcp(uint8_t *f, const struct tn_seg *s);
/* Parse a frame the stack sent: true if it is a TCP segment. */
bool tn_parse_tcp(const uint8_t *f, uint32_t len, struct tn_seg *s);
/* Append option bytes to s->opt. */
void tn_opt_mss(struct tn_seg *s, uint16_t mss);
void tn_opt_ws(struct tn_seg *s, uint8_t ws);
void tn_opt_sackok(struct tn_seg *s);
void tn_opt_ts(struct tn_seg *s, uint32_t tsval, uint32_t tsecr);
void tn_opt_sack(struct tn_seg *s, int n, const uint32_t (*blocks)[2]);

/* The scripted peer: the stack under test is host 1; the peer is host 2.
 * Frames the stack sends are captured in order. */
struct tn_peer {
	struct net_stack *st;
	uint64_t now;
	uint32_t n;
	uint32_t len[TN_MAX_FRAMES];
	uint8_t *frame[TN_MAX_FRAMES];
	uint64_t at[TN_MAX_FRAMES];
};
void tn_peer_init(struct tn_peer *p, const struct tcp_params *tp);
/* The same with static neighbours (net_config.neigh). */
void tn_peer_init_neigh(struct tn_peer *p, const struct tcp_params *tp, const struct net_neigh *n,
			uint32_t nn);
void tn_peer_free(struct tn_peer *p);
void tn_peer_clear(struct tn_peer *p);
void tn_peer_send(struct tn_peer *p, const uint8_t *f, uint32_t len);
void tn_peer_send_seg(struct tn_peer *p, const struct tn_seg *s);
/* Advance the clock by us, polling every ms. */
void tn_peer_advance(struct tn_peer *p, uint64_t us);
/* Teach the stack host 2's MAC (an ARP request from host 2 for host 1). */
void tn_peer_arp(struct tn_peer *p);
/* Count the captured TCP segments from index `from` matching flags mask/value. */
uint32_t tn_peer_count_tcp(const struct tn_peer *p, uint32_t from, uint8_t mask, uint8_t value);
/* Parse captured frame i as TCP (asserts it is one). */
void tn_peer_tcp(const struct tn_peer *p, uint32_t i, struct tn_seg *s);
uint64_t tn_counter(const struct net_stack *st, enum net_counter c);

/* Bulk transfer over a simulated link between host 1 (client, end 0) and
 * host 2 (server, end 1). */
struct tn_bulk {
	struct simlink *l;
	struct net_stack *a, *b;
	struct tcp_listener *lst;
	struct tcp_conn *cc, *sc;    /* client and server side */
	uint64_t total, sent, received;
	uint64_t gen, hash_tx, hash_rx;
	bool connected, client_eof, server_eof, client_closed, server_closed;
	int client_err, server_err;
	bool v6;
	uint64_t client_cycles, server_cycles; /* tcp_info.cycles just before close */
};
void tn_bulk_init(struct tn_bulk *b, uint64_t seed, const struct simlink_params *p01,
		  const struct simlink_params *p10, const struct tcp_params *tp, bool v6);
/* Connect, send `bytes`, shut down, read to EOF on both sides, close.
 * Returns true if everything finished within limit_us of virtual time. */
bool tn_bulk_run(struct tn_bulk *b, uint64_t bytes, uint64_t limit_us);
void tn_bulk_free(struct tn_bulk *b);

#endif
