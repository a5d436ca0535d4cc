/*
 * natio: the bench tools' native transport. One DPDK port (a vdev such as
 * net_memif) and sluice's user-space TCP/IP (dataplane/net/) on it, so that
 * the load generator and the sink reach sluice with no kernel on the data
 * path; and a BIO that runs an OpenSSL SSL straight over a native TCP
 * connection.
 *
 * One thread drives everything: natio_poll() takes a burst of frames into
 * the stacks (whose callbacks run the caller's work), runs their timers and
 * sends what they queued. Nothing here is thread-safe.
 *
 * Several local IPv4 addresses share the port: one stack each (a stack has
 * one address), so that a client holds (addresses x ephemeral ports)
 * connections; received frames go to the stack of their destination
 * address.
 */
#ifndef BENCH_NATIO_H
#define BENCH_NATIO_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/bio.h>

#include "net/net.h"

#define NATIO_MAX_ADDRS 256

struct natio_config {
	const char *device;        /* DPDK vdev: "net_memif0,role=client,socket=..." */
	const char *prog;          /* the EAL's argv[0] and file prefix base */
	int cpu;                   /* the one lcore's CPU; -1: the first one allowed */
	uint8_t ip4[4];            /* the first local address */
	uint8_t plen;              /* its prefix length */
	unsigned n_addrs;          /* consecutive addresses from ip4 up (1..NATIO_MAX_ADDRS) */
	uint8_t gw4[4];            /* gateway; 0.0.0.0: none (peers on the link) */
	unsigned mbufs;            /* 0: 8191 */
	unsigned idle_polls;       /* empty passes before natio_idle() pauses (0: 64) */
	unsigned idle_pause_us;    /* the pause (0: 50 µs) */
	unsigned link_wait_ms;     /* natio_open waits for the link (the memif peer): 10 s */
	unsigned queues;           /* RX/TX queue pairs (0: 1). A memif peer sends only
				    * on the rings its client opened: as many as the
				    * server's cores. Frames go out on queue 0; every RX
				    * queue is polled */
	struct tcp_params tcp;     /* every stack's TCP tunables */
};

/* What went through the port, and where the thread's cycles went. */
struct natio_stats {
	uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
	uint64_t tx_drops, tx_nombuf, rx_unknown; /* rx_unknown: for no local address */
	uint64_t busy_cycles;      /* TSC in passes (natio_poll to natio_poll) that found work */
	uint64_t idle_cycles;      /* in passes that did not (pauses included) */
	uint64_t passes, pauses;
	uint64_t tsc_hz;
	uint64_t tcp_rto, tcp_retrans_segs; /* summed over the stacks */
};

struct natio;

/* Start the EAL and the port, make the stacks. NULL with a message in err
 * (set-up is the only place that fails loudly). */
struct natio *natio_open(const struct natio_config *cfg, char *err, size_t errlen);
/* Stop the port and the EAL; the stacks are freed without sending more. */
void natio_close(struct natio *n);

unsigned natio_n_stacks(const struct natio *n);
struct net_stack *natio_stack(struct natio *n, unsigned i);
/* Monotonic µs: the stacks' clock. */
uint64_t natio_now_us(void);

/* One pass: an RX burst into the stacks (their callbacks run now), the
 * stacks' timers, the TX burst. Returns the frames received. */
unsigned natio_poll(struct natio *n);
/* After a pass without work: counts it, and after idle_polls such passes
 * in a row sleeps idle_pause_us (the machine's other processes run). */
void natio_idle(struct natio *n, unsigned work);
/* Send what the stacks queued outside natio_poll (API calls in between). */
void natio_flush(struct natio *n);
void natio_stats(const struct natio *n, struct natio_stats *out);
/* Resolve peer's MAC from every stack before the run: the stack queues
 * only 4 frames per unresolved neighbour, so a burst of first SYNs would
 * lose the rest to a whole RTO. A SYN to port 9 (aborted at once; the peer
 * sees a SYN and a RST, no session) starts each ARP; returns once every
 * stack had a reply, or -ETIMEDOUT after max_ms. */
int natio_resolve(struct natio *n, const uint8_t peer4[4], unsigned max_ms);
/* Poll until no connection is left but in TIME_WAIT (the closes finished:
 * a peer is not left retransmitting to a port gone), at most max_ms. */
void natio_drain(struct natio *n, unsigned max_ms);

/*
 * A BIO over a native connection: reads with tcp_read(), writes with
 * tcp_send(), no buffer of its own; 0 bytes or "not now" become the retry
 * flags (SSL_ERROR_WANT_*), the peer's FIN an EOF, a reset an error with
 * errno set. The BIO does not own c: call natio_bio_detach() when c goes
 * away (closed() callback, tcp_close) so that SSL calls after it fail
 * instead of touching freed memory. NULL on allocation failure.
 */
BIO *natio_bio_new(struct tcp_conn *c);
void natio_bio_detach(BIO *b);

#endif
