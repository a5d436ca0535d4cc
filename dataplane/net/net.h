/*
 * sluice's user-space TCP/IP stack: the public interface (DESIGN.md §6).
 *
 * One struct net_stack per core, for one Ethernet port. The stack has no
 * hidden clock and does no I/O of its own:
 *   - frames come in through net_input() (a byte buffer and its length);
 *   - frames go out through the tx callback of the configuration, which
 *     must copy what it needs before it returns (a DPDK adapter copies into
 *     an mbuf; the simulated link queues a copy);
 *   - time is passed in, in microseconds of any monotonic clock, to
 *     net_input() and net_poll(); API calls made between them use the last
 *     time seen.
 * Nothing is thread-safe: a stack belongs to one core.
 *
 * The TCP connection API (tcp_listen ... tcp_abort) is at the end; its
 * callbacks run from inside net_input() and net_poll().
 */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define NET_AF4 4
#define NET_AF6 6

/* An IPv4 (first 4 bytes of a) or IPv6 address. */
struct net_addr {
	uint8_t family;          /* NET_AF4 or NET_AF6; 0: unspecified ("any") */
	uint8_t a[16];
};

/* A native address and port as a sockaddr (net/addr.c). */
void net_sockaddr(const struct net_addr *a, uint16_t port, struct sockaddr_storage *ss);
/* A sockaddr as a native address and port; false for another family. */
bool net_from_sockaddr(const struct sockaddr *sa, struct net_addr *a, uint16_t *port);

enum net_cc {
	NET_CC_NEWRENO,          /* RFC 5681 + RFC 6582 */
	NET_CC_CUBIC,            /* RFC 9438 */
};

/* TCP tunables. Zero fields take the default given at the right. */
struct tcp_params {
	uint32_t sndbuf;           /* bytes a connection may queue, power of 2 (256 KiB) */
	uint32_t rcvbuf;           /* receive window, power of 2 (256 KiB); memory for
				      both follows what is in flight (tcp_buf.c) */
	uint32_t rto_init_us;      /* RFC 6298 §2.1: 1 s */
	uint32_t rto_min_us;       /* 200 ms (RFC 6298 §2.4 says 1 s; see README) */
	uint32_t rto_max_us;       /* RFC 6298 §2.5: 60 s */
	uint32_t delack_us;        /* delayed ACK, RFC 9293 §3.8.6.3 (< 500 ms): 40 ms */
	uint32_t msl_us;           /* TIME_WAIT lasts 2 MSL: 30 s */
	uint32_t fin_wait2_us;     /* orphaned FIN_WAIT_2 timeout: 60 s */
	uint32_t keep_idle_us;     /* keepalive: RFC 1122 4.2.3.6: 2 h */
	uint32_t keep_intvl_us;    /* 75 s */
	uint32_t keep_count;       /* 9 probes */
	uint32_t syn_retries;      /* 6 */
	uint32_t data_retries;     /* RTO expiries before giving up: 15 */
	uint32_t syn_backlog;      /* half-open connections per listener before SYN cookies: 128 */
	uint32_t max_conns;        /* connections per stack: 65536. Not counted: TIME_WAIT
				      (at most max_conns records are kept, the oldest is
				      recycled beyond) and half-open passive ones (bounded
				      by syn_backlog per listener) */
	uint32_t challenge_ack_limit; /* RFC 5961 §7 challenge ACKs per second: 1000 on
					 average (each second's budget is drawn at random
					 in [limit/2, limit*3/2), CVE-2016-5696) */
	uint32_t challenge_ack_conn_us; /* least time between two challenge ACKs of one
					   connection (Linux's tcp_invalid_ratelimit): 500 ms */
	uint32_t buf_idle_us;      /* a connection's send or receive buffer, empty this
				      long, is freed (allocated again on the next byte):
				      1 s */
	uint32_t pmtu_age_us;      /* a path MTU learnt from ICMP is raised back to the
				      link's after this (RFC 1191 §6.3, RFC 8201 §4): 10 min */
	uint16_t port_lo, port_hi; /* ephemeral ports: 32768..60999 */
	uint8_t cc;                /* enum net_cc: NEWRENO */
	bool no_sack;              /* don't offer/accept SACK (RFC 2018) */
	bool no_timestamps;        /* don't offer/accept timestamps (RFC 7323) */
	bool no_wscale;            /* don't offer/accept window scaling (RFC 7323) */
	bool nagle;                /* Nagle's algorithm (RFC 9293 §3.7.4); off by default */
	uint8_t syncookies;        /* 0: when the SYN queue is full, 1: always, 2: never */
};

/* A static neighbour: ARP and NDP never change it (net_config.neigh). */
struct net_neigh {
	struct net_addr addr;
	uint8_t mac[6];
};
#define NET_MAX_STATIC_NEIGH 64

struct net_config {
	uint8_t mac[6];
	uint32_t mtu;              /* IP MTU of the port: 1500 */
	bool has_ip4, has_ip6;
	uint8_t ip4[4], ip4_gw[4]; /* gateway 0.0.0.0: none */
	uint8_t ip4_plen;
	uint8_t ip6[16], ip6_gw[16]; /* global address; gateway (usually link-local) */
	uint8_t ip6_plen;
	uint8_t ip6_ll[16];        /* link-local; all zero: derived from mac (EUI-64) */
	uint8_t secret[16];        /* key for ISNs, cookies, hashes: the caller's randomness */
	void (*tx)(void *ctx, const uint8_t *frame, uint32_t len);
	void *tx_ctx;
	/* Optional cycle counter (rdtsc on a core, a fake one in tests): when
	 * set, the stack charges the cycles of each frame, timer run and API
	 * call to the stack and to the connection it served. */
	uint64_t (*cycles)(void *ctx);
	void *cycles_ctx;
	/* Static neighbours (copied): at most NET_MAX_STATIC_NEIGH. */
	const struct net_neigh *neigh;
	uint32_t n_neigh;
	struct tcp_params tcp;
};

struct net_stack;
struct tcp_conn;
struct tcp_listener;

/* Counters, one per reason a packet is dropped and per protocol event. */
enum net_counter {
#define NC(n, h) NET_C_##n,
#include "net/counters.def"
#undef NC
	NET_C__COUNT
};
extern const char *const net_counter_names[NET_C__COUNT];
extern const char *const net_counter_help[NET_C__COUNT];

/* Create a stack. Returns NULL with errno set (EINVAL: bad configuration). */
struct net_stack *net_stack_new(const struct net_config *cfg, uint64_t now_us);
/* Free a stack and every connection it holds, without sending anything. */
void net_stack_free(struct net_stack *st);
/* Process one received Ethernet frame (not kept after the call). */
void net_input(struct net_stack *st, const uint8_t *frame, uint32_t len, uint64_t now_us);
/* Run the timers due by now_us. */
void net_poll(struct net_stack *st, uint64_t now_us);
/* The counters of the stack. */
const uint64_t *net_counters(const struct net_stack *st);
/* Busy cycles over work done (with net_config.cycles set). */
struct net_cycle_stats {
	uint64_t rx_frames, rx_cycles;     /* net_input */
	uint64_t polls, poll_cycles;       /* net_poll (timers, neighbour upkeep) */
	uint64_t api_calls, api_cycles;    /* tcp_send, tcp_read, tcp_close... from outside the stack */
};
void net_cycle_stats(const struct net_stack *st, struct net_cycle_stats *out);

/* Connections held by the stack: counted against max_conns, and in
 * TIME_WAIT (not counted, holding no buffers); bytes of send and receive
 * buffers allocated. */
struct net_conn_stats {
	uint32_t conns, timewait;
	uint64_t buf_bytes;
};
void net_conn_stats(const struct net_stack *st, struct net_conn_stats *out);

/* Add the stack's configured addresses to *a (family as asked). Returns 0 or -EAFNOSUPPORT. */
int net_local_addr(const struct net_stack *st, uint8_t family, struct net_addr *a);

/* ---- TCP ---------------------------------------------------------------- */

/* TCPS_*, struct tcp_conn_info: names of their own, so that this header
 * and <netinet/tcp.h> (TCP_ESTABLISHED, struct tcp_info) mix. */
enum tcp_state {
#define TS(n) TCPS_##n,
#include "net/tcp_state.def"
#undef TS
	TCPS__NSTATES
};
extern const char *const tcp_state_names[TCPS__NSTATES];

/*
 * Events of one connection. ctx is the pointer given with the ops.
 * closed() says the connection ended without tcp_close(): err 0 when both
 * directions finished (at the end of TIME-WAIT or LAST-ACK), else
 * -ECONNRESET, -ETIMEDOUT or -ECONNREFUSED. An end (orderly, or a reset
 * or timeout) with received bytes still unread calls nothing but data():
 * the bytes stay readable, tcp_read() returns them and then the error
 * (-ECONNRESET, -ETIMEDOUT) or, after an orderly end, 0 with tcp_eof();
 * tcp_close() lets go. After closed() returns, or after tcp_close() or tcp_abort(),
 * the handle is gone and no callback names it again.
 */
struct tcp_ops {
	void (*connected)(struct tcp_conn *c, void *ctx); /* active open finished */
	void (*data)(struct tcp_conn *c, void *ctx);      /* bytes to read, or the peer's FIN (tcp_eof) */
	void (*writable)(struct tcp_conn *c, void *ctx);  /* send space after a short tcp_send */
	void (*closed)(struct tcp_conn *c, void *ctx, int err); /* see above */
};

/*
 * A new connection reached ESTABLISHED on a listener: the callee sets the
 * connection's ops with tcp_set_ops() and returns 0 (it may close it at
 * once: tcp_close() sends a FIN after what it sent), or returns -EAGAIN
 * to pause (the connection waits in the listener's accept queue, with no
 * callbacks, until tcp_accept_queued(); beyond syn_backlog waiting the
 * peer gets a RST), or another negative errno to refuse it (a RST).
 */
typedef int (*tcp_accept_fn)(void *lctx, struct tcp_conn *c);

/* Listen on addr (family 0: every local address of any family) and port.
 * Returns 0 and *out, or -EADDRINUSE, -ENOMEM. */
int tcp_listen(struct net_stack *st, const struct net_addr *addr, uint16_t port,
	       tcp_accept_fn accept, void *lctx, struct tcp_listener **out);
/* Stop listening; half-open and queued connections of the listener are
 * reset. */
void tcp_unlisten(struct tcp_listener *l);
/* The connections the accept callback paused (-EAGAIN), oldest first, to
 * it again until it pauses again or the queue is empty; what was received
 * meanwhile (bytes, a FIN, a reset behind bytes) is readable at once.
 * Returns how many were offered. */
unsigned tcp_accept_queued(struct tcp_listener *l);

struct tcp_connect_req {
	struct net_addr raddr;
	uint16_t rport;
	uint16_t lport;            /* 0: choose an ephemeral port */
	/* Accepts or rejects an ephemeral port (e.g. for its RSS hash); NULL: any. */
	bool (*port_ok)(void *arg, const struct net_addr *laddr, uint16_t lport,
			const struct net_addr *raddr, uint16_t rport);
	void *port_arg;
	const struct tcp_ops *ops;
	void *ctx;
};
/* Active open: sends the SYN. Returns 0 and *out, or -EADDRNOTAVAIL (no
 * local address or no port left), -EADDRINUSE (lport taken), -ENOMEM
 * (also: max_conns reached). An ephemeral port whose 4-tuple is in
 * TIME_WAIT is reused when no free one is left (RFC 6191, as Linux's
 * tcp_tw_reuse): a connection with timestamps idle for 1 s first, else the
 * oldest; the new ISN starts above the old sequence space. */
int tcp_connect(struct net_stack *st, const struct tcp_connect_req *req, struct tcp_conn **out);

void tcp_set_ops(struct tcp_conn *c, const struct tcp_ops *ops, void *ctx);
/* Copy up to len bytes into the send buffer. Returns bytes taken (0: buffer
 * full, writable() follows), or -ENOTCONN, -EPIPE (after shutdown). */
ssize_t tcp_send(struct tcp_conn *c, const void *data, size_t len);
/* Copy up to len received bytes out. Returns bytes (0: none now; see
 * tcp_eof), -ENOTCONN, or once every byte is read the error that ended
 * the connection (-ECONNRESET, -ETIMEDOUT). */
ssize_t tcp_read(struct tcp_conn *c, void *buf, size_t len);
/* Bytes waiting to be read; free send-buffer space. */
uint32_t tcp_readable(const struct tcp_conn *c);
uint32_t tcp_send_space(const struct tcp_conn *c);
/* True once the peer's FIN arrived and every byte before it was read. */
bool tcp_eof(const struct tcp_conn *c);
/* True once the peer's FIN or RST arrived (or the connection ended), even
 * with bytes still unread: the peer is gone or going. */
bool tcp_peer_closed(const struct tcp_conn *c);
/* Half-close: FIN after the queued bytes; reading goes on. */
void tcp_shutdown_wr(struct tcp_conn *c);
/* Close: FIN after the queued bytes (RST if received bytes are unread,
 * RFC 9293 §3.10.4 / RFC 2525 §2.17); the stack finishes alone. */
void tcp_close(struct tcp_conn *c);
/* Reset now and free. */
void tcp_abort(struct tcp_conn *c);
void tcp_set_keepalive(struct tcp_conn *c, bool on);
void tcp_set_nodelay(struct tcp_conn *c, bool on);

struct tcp_conn_info {
	uint8_t state;
	struct net_addr laddr, raddr;
	uint16_t lport, rport;
	uint32_t mss;              /* effective send MSS (payload bytes) */
	uint32_t cwnd, ssthresh, snd_wnd, rcv_wnd;
	uint32_t srtt_us, rto_us;
	uint32_t hs_rtt_us;        /* passive open: first SYN-ACK to its ACK (even
				      when sent again, then an upper bound of the
				      RTT); 0: none (a SYN cookie, an active open) */
	uint8_t snd_wscale, rcv_wscale;
	bool sack, timestamps, cookie;
	uint64_t retransmits, bytes_acked, bytes_received;
	uint64_t cycles;           /* charged to this connection (net_config.cycles) */
};
void tcp_get_info(const struct tcp_conn *c, struct tcp_conn_info *i);

#endif
