/*
 * The native stack under the session layer (DESIGN.md §6): DPDK ports,
 * one struct net_stack per core and port, the sessions' streams over
 * net/tcp_stream.h. io/dpdk.c owns the EAL, the ports, the queues and the
 * stack's side of the core loop (nat_io_ops); io/native.c the stacks, the
 * listeners, connects and the counters. This header needs neither DPDK nor
 * net/net.h.
 */
#ifndef SLUICE_NATIVE_H
#define SLUICE_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct core;
struct net_addr;
struct net_stack;
struct tcp_listener;
struct cfg;
struct cfg_native_port;
struct stream;
struct rte_mbuf;
struct rte_mempool;
struct rte_ring;
struct io_ops;

#define NAT_PORTS_MAX 16
#define NAT_BURST 32
#define NAT_RETA_MAX 512

/* A DPDK port: shared, read-only once the cores run. */
struct nat_port {
	const struct cfg_native_port *cfg;
	uint16_t id;                 /* DPDK port id */
	uint16_t n_rxq, n_txq;
	bool rss;                    /* the NIC spreads TCP flows over the cores'
					queues (else: software spread) */
	uint8_t rss_key[40];         /* Toeplitz key programmed into the NIC */
	uint16_t reta_size;
	uint16_t reta[NAT_RETA_MAX]; /* hash -> queue, and queue i is core i */
	struct rte_mempool *pool;
	uint8_t mac[6];
	uint32_t mtu;
	bool gated;                  /* bursts inside io/intr_gate.h (net_memif) */
};

struct nat_pq;
struct nat_core;

/* One listener on one port of one core: the accept callback's context. */
struct nat_lsn {
	struct nat_pq *q;
	unsigned idx;                /* in cfg->listeners, for io_up.accept */
	struct tcp_listener *tl;
};

/* One port as one core sees it: its queues, its stack, its TX burst. */
struct nat_pq {
	struct nat_core *nc;
	const struct nat_port *port;
	uint16_t rxq, txq;
	bool has_rxq;                /* this core polls an RX queue of the port */
	struct net_stack *st;
	struct nat_lsn *lsn;         /* n_lsn */
	unsigned n_lsn;
	struct rte_mbuf *tx[NAT_BURST]; /* frames for the next burst; owned here */
	uint16_t n_tx;
	uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
	uint64_t tx_drops;           /* refused by the NIC: freed here */
	uint64_t tx_nombuf;          /* no mbuf for a frame: dropped */
};

/* Per-lcore state of a native core (the DPDK examples' lcore_conf). */
struct nat_core {
	struct core *core;
	unsigned n_pq;
	struct nat_pq pq[NAT_PORTS_MAX];
	struct rte_ring *in;         /* frames other cores hand over (multi-producer) */
	uint64_t spread_out;         /* frames handed to another core */
	uint64_t spread_in;          /* frames taken from the ring */
	uint64_t spread_drops;       /* the other core's ring was full: freed */
	uint64_t loops, idle_loops, pauses;
	uint64_t busy_cycles, idle_cycles; /* TSC: loops that did work, and not */
	uint64_t pass_tsc;           /* TSC at the start of this pass */
	/* The packet path's TSC outside the stack's own account (net_input,
	 * net_poll and API calls charge net_cycle_stats): the RX bursts and the
	 * mbufs' frees of passes that received frames, the TX bursts of
	 * flushes that sent. With net_cycle_stats the whole packet path
	 * outside TLS and the session: the bench's cycles per packet. */
	uint64_t drv_cycles;
	uint64_t now_us;             /* the pass's time, for net_input/net_poll */
	uint64_t poll_ms;            /* the millisecond of the last net_poll */
	unsigned idle;               /* idle passes in a row */
};

/* ---- io/dpdk.c ---------------------------------------------------------- */

/* EAL, ports, mempools, queues; the cores' native state and stacks; ports
 * started. Fails with a message naming the key or the device, never exits.
 * 0 or a negative errno. */
int nat_init(const struct cfg *c, struct core *cores, unsigned n_cores, char *err,
	     size_t errlen);
/* The native stack's side of the core loop (io/io.h). */
extern const struct io_ops nat_io_ops;
/* Stop the ports, free the stacks, clean the EAL up (after the cores joined). */
void nat_fini(void);
/* The core (its index) that receives the TCP flow raddr:rport -> laddr:lport
 * on port p: by the NIC's RSS, or by the software spread. */
unsigned nat_flow_owner(const struct nat_port *p, const struct net_addr *raddr, uint16_t rport,
			const struct net_addr *laddr, uint16_t lport);
/* net_config.tx: copy a frame into an mbuf of the port's pool, queue it
 * for the burst (ctx: the struct nat_pq). */
void nat_tx(void *ctx, const uint8_t *frame, uint32_t len);
/* net_config.cycles: the TSC. */
uint64_t nat_cycles(void *ctx);

/* ---- io/native.c -------------------------------------------------------- */

/* The stacks of core nc (one per port) and their listeners. 0 or -errno. */
int nat_stacks_init(struct nat_core *nc, const struct cfg *c, char *err, size_t errlen);
void nat_stacks_fini(struct nat_core *nc);
/* io_ops.listen on a native core: drain stops the listeners (SYNs get RST
 * from the stack), undrain starts them again. */
void nat_listen(struct core *c, bool on);
/* Once an accept pause (core.accept_after_ms) is over: the connections
 * that reached ESTABLISHED meanwhile, held in the listeners' accept
 * queues, go to io_up.accept. Returns how many were offered. */
unsigned nat_accept_queued(struct nat_core *nc);
/* io_ops.connect on a native core: s becomes a native stream (the
 * caller's struct tcp_stream) connecting from the port that reaches addr. */
int nat_stream_connect(struct core *c, struct stream *s, const struct sockaddr *addr,
		       socklen_t len);
/* Append " net_NAME=N ... nat_NAME=N" (all cores and ports) to line at o;
 * returns the new length. */
size_t nat_report(char *line, size_t len, size_t o);
/* io_net_counters() and io_port_xstats() of the native stack. */
bool nat_net_counters(uint64_t *v, unsigned n);
void nat_port_xstats(io_xstat_fn *fn, void *arg);

#endif
