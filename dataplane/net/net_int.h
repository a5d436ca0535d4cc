/*
 * The stack's internal types and the functions its files share. Nothing
 * outside dataplane/net/ (and its tests) includes this.
 */
#ifndef SLUICE_NET_INT_H
#define SLUICE_NET_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "net/net.h"
#include "timer.h"

#define NET_ETH_HLEN 14
#define NET_IP4_HLEN 20
#define NET_IP6_HLEN 40
#define NET_TCP_HLEN 20
#define NET_MAX_MTU 9000
#define NET_MAX_FRAME (NET_MAX_MTU + NET_ETH_HLEN)

#define ETH_P_IP4 0x0800
#define ETH_P_ARP 0x0806
#define ETH_P_IP6 0x86dd

#define IPPROTO_ICMP4 1
#define IPPROTO_TCP6 6 /* TCP's protocol number, named apart from <netinet/in.h> */
#define IPPROTO_ICMP6_ 58

#define NET_CONTAINER(p, type, member) ((type *)(void *)((char *)(p) - offsetof(type, member)))

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

/* ---- neighbour tables (ARP for IPv4, NDP for IPv6) ---------------------- */

#define NEIGH_SLOTS 256          /* entries per stack, both families */
#define NEIGH_QUEUE 4            /* packets held per unresolved next hop */

struct neigh_pkt {
	struct neigh_pkt *next;
	uint32_t len;
	uint8_t frame[];             /* a whole frame; dst MAC filled on resolution */
};

enum neigh_state {
	NEIGH_FREE,
	NEIGH_INCOMPLETE,            /* request sent, packets queued */
	NEIGH_REACHABLE,             /* confirmed within the reachable time */
	NEIGH_STALE,                 /* usable; re-probed on use (RFC 4861 §7.3.3) */
	NEIGH_PROBE,                 /* an answer named another MAC: the known one is
					used and asked again until it stops answering */
	NEIGH_STATIC,                /* configured: never changed, expired or evicted */
};

struct neigh {
	uint8_t state;
	uint8_t tries;               /* requests sent while INCOMPLETE */
	uint8_t nq;                  /* packets queued */
	struct net_addr addr;
	uint8_t mac[6];
	uint64_t expire_us;          /* REACHABLE until; INCOMPLETE: next request */
	uint64_t used_us;            /* last use, for replacement */
	struct neigh_pkt *q, **qtail;
};

/* ---- TCP ---------------------------------------------------------------- */

/* Sequence space arithmetic (RFC 9293 §3.4, RFC 1982). Differences are taken
 * in uint32_t, where wrap-around is defined, and the sign is read from bit
 * 31 (no signed conversion at all). Two numbers compare correctly while
 * they are less than 2^31 apart; windows are at most 2^30 (RFC 7323 §2.3),
 * so every comparison here is between numbers within that distance. */
static inline bool seq_lt(uint32_t a, uint32_t b) { return ((a - b) & 0x80000000u) != 0; }
static inline bool seq_leq(uint32_t a, uint32_t b) { return a == b || seq_lt(a, b); }
static inline bool seq_gt(uint32_t a, uint32_t b) { return seq_lt(b, a); }
static inline bool seq_geq(uint32_t a, uint32_t b) { return seq_leq(b, a); }
static inline uint32_t seq_max(uint32_t a, uint32_t b) { return seq_lt(a, b) ? b : a; }
static inline uint32_t seq_min(uint32_t a, uint32_t b) { return seq_lt(a, b) ? a : b; }

struct seq_range { uint32_t start, end; }; /* [start, end) */

#define TCP_OOO_MAX 16           /* out-of-order ranges held by a receiver */
#define TCP_SACK_MAX 32          /* SACKed ranges on a sender's scoreboard */

enum tcp_timer_kind { TCP_T_RTX, TCP_T_DELACK, TCP_T_KEEP, TCP_T__N };

/* The RTX timer's current job. */
enum tcp_rtx_mode { RTX_NONE, RTX_RETRANSMIT, RTX_PERSIST, RTX_TIMEWAIT, RTX_FINWAIT2 };

struct tcp_tuple {
	struct net_addr laddr, raddr;
	uint16_t lport, rport;
};

/* Options parsed from a segment (RFC 9293 §3.2, RFC 7323, RFC 2018). */
struct tcp_opts {
	bool mss_ok, ws_ok, sack_ok, ts_ok;
	uint16_t mss;
	uint8_t ws;
	uint32_t tsval, tsecr;
	uint8_t nsack;
	struct seq_range sack[4];
};

/* A parsed incoming segment. */
struct tcp_seg {
	const uint8_t *hdr;
	const uint8_t *data;
	uint32_t len;                /* payload bytes */
	uint32_t seq, ack;
	uint16_t wnd;                /* unscaled */
	uint8_t flags;
	struct tcp_opts o;
	struct tcp_tuple t;          /* local = destination of the segment */
};

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10
#define TH_URG 0x20

struct tcp_listener {
	struct net_stack *st;
	struct net_addr addr;
	uint16_t port;
	bool used;
	uint32_t nsynq;              /* connections in SYN-RECEIVED */
	uint64_t cookie_us;          /* last SYN cookie sent; 0: never */
	/* Established connections the application said -EAGAIN to, oldest
	 * first, waiting for tcp_accept_queued(); at most syn_backlog. */
	struct tcp_conn *aq_head, *aq_tail;
	uint32_t naq;
	tcp_accept_fn accept;
	void *ctx;
};

struct tcp_timer {
	struct timer t;
	uint8_t kind;                /* enum tcp_timer_kind: finds the connection */
};

struct tcp_conn {
	struct net_stack *st;
	struct tcp_conn *hnext;      /* flow table chain */
	struct tcp_conn *gnext;      /* graveyard list, once dead */
	struct tcp_listener *lst;    /* passive opens, until ESTABLISHED */
	struct tcp_listener *aq;     /* in this listener's accept queue */
	struct tcp_conn *aq_prev, *aq_next;
	struct tcp_tuple t;
	uint8_t state;               /* enum tcp_state */
	uint8_t rtx_mode;            /* enum tcp_rtx_mode */
	bool dead;                   /* destroyed: only the graveyard holds it */
	bool app_gone;               /* tcp_close()d: no more callbacks */
	bool passive, cookie;        /* from a listener; from a SYN cookie */
	bool fin_queued;             /* shutdown: FIN follows the queued bytes */
	bool fin_rcvd;               /* the peer's FIN was taken (rcv_nxt counts it) */
	bool ooo_fin;                /* a FIN seen beyond a hole, at ooo_fin_seq */
	bool ack_now, delack_pending;
	bool nodelay, keepalive;
	bool sack_ok, ts_ok, ws_ok;
	bool in_recovery;            /* fast recovery (RFC 6582 or RFC 6675) */
	bool want_writable;          /* a tcp_send came up short */
	bool rtt_timing;             /* a segment is timed (no timestamps) */
	bool in_tw;                  /* on the stack's TIME_WAIT list */
	bool on_bi;                  /* on the stack's buffer-idle list */
	int soft_err;                /* ended by reset/timeout with bytes unread: tcp_read's
					error once they are read */
	/* One list at a time: TIME_WAIT (oldest first) holds no buffer, the
	 * buffer-idle list (longest idle first) only connections that do. */
	union {
		struct {
			struct tcp_conn *tw_prev, *tw_next;
			uint64_t tw_us;      /* entered TIME_WAIT */
		};
		struct {
			struct tcp_conn *bi_prev, *bi_next;
			uint64_t bi_us;      /* its buffers last found empty */
		};
	};
	uint64_t chack_us;           /* last challenge ACK (RFC 5961 §7 per connection) + 1 */
	uint64_t pmtu_us;            /* last PMTU reduction (RFC 1191 §6.3 aging) */
	struct tcp_timer tm[TCP_T__N];

	/* Send sequence space, RFC 9293 §3.3.1 */
	uint32_t iss;
	uint32_t snd_una, snd_nxt;
	uint32_t snd_max;            /* highest sequence sent + 1 (snd_nxt rewinds on RTO) */
	uint32_t snd_qend;           /* sequence after the last queued byte */
	uint32_t snd_wnd;            /* scaled */
	uint32_t max_snd_wnd;        /* RFC 5961 §5.2 MAX.SND.WND */
	uint32_t snd_wl1, snd_wl2;
	uint8_t snd_ws, rcv_ws;      /* RFC 7323 §2 shifts */
	uint16_t peer_mss;           /* MSS option received (RFC 9293 §3.7.1) */
	uint16_t pmtu;               /* path MTU (RFC 1191, RFC 8201) */

	/* Receive sequence space */
	uint32_t irs, rcv_nxt;
	uint32_t rcv_adv;            /* right edge of the window last advertised */
	uint32_t rcv_read;           /* sequence of the next byte the application reads */
	uint32_t ooo_fin_seq;
	uint8_t nooo;
	struct seq_range ooo[TCP_OOO_MAX]; /* held out of order; ooo[0] most recent (RFC 2018 §4) */
	uint8_t segs_unacked;        /* full segments since the last ACK */

	/* Timestamps, RFC 7323 */
	uint32_t ts_recent, ts_offset, last_ack_sent;

	/* Round trip and retransmission, RFC 6298 */
	uint32_t srtt_us, rttvar_us, rto_us;
	uint32_t rtt_seq;            /* timed sequence (Karn) */
	uint32_t sbuf_mem;           /* bytes of sbuf allocated (below) */
	uint64_t rtt_start_us;
	uint32_t hs_rtt_us;          /* passive open: first SYN-ACK to its ACK by the
				        clock, sent again or not (then an upper
				        bound); 0: none (a SYN cookie) */
	uint8_t backoff;             /* RTO expiries in a row */
	uint8_t keep_probes;

	/* Congestion control, RFC 5681 / 6582 / 6675 / 9438 */
	uint32_t cwnd, ssthresh;
	uint32_t bytes_acked;        /* appropriate byte counting in CA */
	uint32_t recover;            /* RFC 6582 "recover"; RFC 6675 RecoveryPoint */
	uint32_t high_rxt;           /* RFC 6675 HighRxt */
	uint8_t dupacks;
	uint8_t nsack;
	struct seq_range sack[TCP_SACK_MAX]; /* sender scoreboard, sorted, above snd_una */
	/* CUBIC, RFC 9438 §4 (in bytes and microseconds) */
	uint32_t w_max;               /* W_max, bytes */
	uint32_t rbuf_mem;           /* bytes of rbuf allocated (below) */
	uint64_t epoch_us;
	double cubic_k, w_est;

	/* Buffers (tcp_buf.c): sbuf_size and rbuf_size are the configured
	 * sizes from ESTABLISHED on (0 before): what may be queued, and the
	 * window we advertise. Memory follows what is in flight: a ring of
	 * *_mem bytes (a power of two up to the size; NULL, 0: none), byte of
	 * sequence s at buf[s & (mem - 1)], allocated on the first byte to
	 * hold, grown as more is, and freed once empty for buf_idle_us. */
	uint8_t *sbuf, *rbuf;
	uint32_t sbuf_size, rbuf_size;

	const struct tcp_ops *ops;
	void *ctx;
	uint64_t last_rx_us;         /* keepalive idle */
	uint64_t retransmits, bytes_acked_total, bytes_rcvd_total;
	uint64_t cycles;             /* busy cycles charged to this connection */
};

/* ---- the stack ---------------------------------------------------------- */

struct net_stack {
	struct net_config cfg;
	struct tcp_params tp;        /* cfg.tcp with defaults filled */
	uint64_t now_us;
	int depth;                   /* nesting of entry points: reap at 0 */
	uint64_t c[NET_C__COUNT];
	uint8_t ip4_bcast[4];
	struct neigh neigh[NEIGH_SLOTS];
	uint64_t neigh_scan_us;
	/* flow table */
	struct tcp_conn **flows;
	uint32_t flow_mask, nconns;
	struct tcp_listener listeners[16];
	struct tcp_conn *graveyard;
	struct wheel wheel;
	uint64_t chack_second;       /* RFC 5961 §7 rate limit window */
	uint32_t chack_budget;       /* challenge ACKs left in this second */
	uint32_t ntw;                /* connections in TIME_WAIT (in nconns, not in max_conns) */
	uint32_t nhalf;              /* passive opens in SYN-RECEIVED (in nconns, not in
					max_conns: bounded by each listener's syn_backlog) */
	uint64_t buf_bytes;          /* send + receive buffers allocated */
	struct tcp_conn *tw_head, *tw_tail; /* TIME_WAIT, oldest first */
	struct tcp_conn *bi_head, *bi_tail; /* buffers empty, longest first (tcp_buf.c) */
	uint32_t port_next;          /* RFC 6056 alg. 3 counter */
	struct net_cycle_stats cyc;
	struct tcp_conn *cur;        /* the connection the current frame went to */
	uint64_t api_t0;             /* cycle count when an outside API call began */
	uint8_t frame[NET_MAX_FRAME + 64]; /* output scratch */
};

static inline void net_count(struct net_stack *st, enum net_counter c) { st->c[c]++; }
static inline void net_count_n(struct net_stack *st, enum net_counter c, uint64_t n) { st->c[c] += n; }
static inline uint64_t net_cycles_now(const struct net_stack *st)
{
	return st->cfg.cycles ? st->cfg.cycles(st->cfg.cycles_ctx) : 0;
}
static inline uint64_t net_now_ms(const struct net_stack *st) { return st->now_us / 1000; }

/* Internet checksum (RFC 1071): ones' complement sum of 16-bit words. */
uint32_t csum_add(uint32_t sum, const void *p, size_t n);
uint16_t csum_fold(uint32_t sum);
uint32_t csum_pseudo(const struct net_addr *src, const struct net_addr *dst, uint8_t proto, uint32_t len);

/* SipHash-2-4 (keyed PRF for ISNs, cookies, flow hashing). */
uint64_t siphash24(const uint8_t key[16], const void *data, size_t len);

/* eth.c */
void eth_output(struct net_stack *st, uint8_t *frame, uint32_t len, const uint8_t dst[6], uint16_t type);
bool net_is_local(const struct net_stack *st, const struct net_addr *a);
/* Send an IP packet built at frame + NET_ETH_HLEN to its next hop
 * (neighbour resolution, queueing). frame is the stack's scratch or a copy. */
void net_l3_output(struct net_stack *st, uint8_t *frame, uint32_t len, const struct net_addr *dst);
/* The source address to use towards dst. Returns 0 or -EADDRNOTAVAIL. */
int net_src_for(const struct net_stack *st, const struct net_addr *dst, struct net_addr *src);

/* neigh.c */
void neigh_resolve_output(struct net_stack *st, const struct net_addr *nexthop,
			  uint8_t *frame, uint32_t len, uint16_t type);
/* How an ARP/NDP message may change an entry (neigh_update's how). */
#define NU_CREATE    1           /* may create one: a request naming us (RFC 826), an NS (RFC 4861 §7.2.3) */
#define NU_SOLICITED 2           /* answers a question of ours: ARP reply to us, NA with S */
#define NU_OVERRIDE  4           /* may replace a known MAC: ARP for us, NA with O, NS */
void neigh_update(struct net_stack *st, const struct net_addr *a, const uint8_t mac[6], unsigned how);
int neigh_add_static(struct net_stack *st, const struct net_neigh *n);
void neigh_poll(struct net_stack *st);
void neigh_free_all(struct net_stack *st);
struct neigh *neigh_lookup(struct net_stack *st, const struct net_addr *a);

/* arp.c */
void arp_input(struct net_stack *st, const uint8_t *p, uint32_t len);
void arp_request(struct net_stack *st, const struct net_addr *target);

/* ip4.c, icmp4 */
void ip4_input(struct net_stack *st, const uint8_t *p, uint32_t len);
/* Build an IPv4 header at frame + NET_ETH_HLEN for a payload of plen bytes. */
void ip4_header(uint8_t *ip, const struct net_addr *src, const struct net_addr *dst,
		uint8_t proto, uint32_t plen, bool df);
void icmp4_input(struct net_stack *st, const uint8_t *ip, uint32_t iphl, const uint8_t *p, uint32_t len);

/* ip6.c, icmp6.c, ndp.c */
void ip6_input(struct net_stack *st, const uint8_t *p, uint32_t len, const uint8_t *eth_dst);
void ip6_header(uint8_t *ip, const struct net_addr *src, const struct net_addr *dst,
		uint8_t proto, uint32_t plen, uint8_t hlim);
void icmp6_input(struct net_stack *st, const uint8_t *ip, const uint8_t *p, uint32_t len);
void ndp_input(struct net_stack *st, const uint8_t *ip, const uint8_t *p, uint32_t len);
void ndp_solicit(struct net_stack *st, const struct net_addr *target);
bool ip6_is_our_multicast(const struct net_stack *st, const uint8_t *a);

/* tcp_input.c and friends */
void tcp_input(struct net_stack *st, const struct net_addr *src, const struct net_addr *dst,
	       const uint8_t *p, uint32_t len);
int tcp_parse(struct net_stack *st, const struct net_addr *src, const struct net_addr *dst,
	      const uint8_t *p, uint32_t len, struct tcp_seg *s);
void tcp_pmtu(struct net_stack *st, const struct tcp_tuple *t, uint32_t seq, uint32_t mtu);
void tcp_input_conn(struct tcp_conn *c, const struct tcp_seg *s);

/* tcp_open.c */
uint8_t tcp_our_wscale(const struct net_stack *st);
void tcp_listen_input(struct net_stack *st, struct tcp_listener *l, const struct tcp_seg *s);
int tcp_synrcvd_ack(struct tcp_conn *c, const struct tcp_seg *s);
void tcp_syn_sent_input(struct tcp_conn *c, const struct tcp_seg *s);

/* flow.c */
int flow_init(struct net_stack *st);
struct tcp_conn *flow_lookup(struct net_stack *st, const struct tcp_tuple *t);
void flow_insert(struct net_stack *st, struct tcp_conn *c);
void flow_remove(struct net_stack *st, struct tcp_conn *c);
struct tcp_listener *flow_listener(struct net_stack *st, const struct net_addr *laddr, uint16_t port);

/* tcp_isn.c, syncookie.c */
uint32_t tcp_isn(struct net_stack *st, const struct tcp_tuple *t);
uint32_t tcp_ts_offset(struct net_stack *st, const struct tcp_tuple *t);
uint32_t syncookie_make(struct net_stack *st, const struct tcp_tuple *t, uint32_t peer_isn, uint16_t mss,
			uint16_t *mss_out);
int syncookie_check(struct net_stack *st, const struct tcp_tuple *t, uint32_t peer_isn, uint32_t cookie,
		    uint16_t *mss);
uint32_t syncookie_ts_encode(uint32_t tsval, int wscale, bool sack);
void syncookie_ts_decode(uint32_t tsecr, int *wscale, bool *sack);

/* tcp_conn.c: life cycle */
struct tcp_conn *tcp_conn_new(struct net_stack *st, const struct tcp_tuple *t);
void tcp_conn_buffers(struct tcp_conn *c);
void tcp_set_state(struct tcp_conn *c, uint8_t state);
void tcp_conn_destroy(struct tcp_conn *c);
void tcp_tw_trim(struct tcp_conn *c);
static inline uint32_t net_active_conns(const struct net_stack *st)
{
	return st->nconns - st->ntw - st->nhalf;
}
void tcp_conn_fail(struct tcp_conn *c, int err);
void tcp_established(struct tcp_conn *c);
/* An established passive open to the application (tcp_conn.c): 0 taken,
 * -EAGAIN queued on l, -ECONNREFUSED reset and destroyed. */
int tcp_offer_at(struct tcp_listener *l, struct tcp_conn *c, bool front);
void tcp_aq_unlink(struct tcp_conn *c);
void net_reap(struct net_stack *st);
void tcp_update_mss_state(struct tcp_conn *c);
uint32_t tcp_eff_mss(const struct tcp_conn *c);
uint32_t tcp_ts_now(const struct tcp_conn *c);

/* Sequence of the oldest data byte still held in the send buffer. */
static inline uint32_t tcp_snd_data_una(const struct tcp_conn *c)
{
	if (seq_gt(c->snd_una, c->snd_qend))
		return c->snd_qend; /* the FIN is acked too */
	return seq_max(c->snd_una, c->iss + 1);
}

/* tcp_buf.c: buffer memory that follows what is in flight */
int tcp_sbuf_reserve(struct tcp_conn *c, uint32_t bytes);
int tcp_rbuf_reserve(struct tcp_conn *c, uint32_t bytes);
void tcp_buf_check(struct tcp_conn *c);
void tcp_buf_unlist(struct tcp_conn *c);
void tcp_buf_poll(struct net_stack *st);
void tcp_free_sbuf(struct tcp_conn *c);
void tcp_free_rbuf(struct tcp_conn *c);

/* tcp_output.c */
void tcp_output(struct tcp_conn *c);
void tcp_send_ack(struct tcp_conn *c);
void tcp_send_challenge_ack(struct tcp_conn *c);
void tcp_send_syn(struct tcp_conn *c, bool ack);
void tcp_send_rst_for(struct net_stack *st, const struct tcp_seg *s);
void tcp_send_segment(struct tcp_conn *c, uint32_t seq, uint32_t len, uint8_t flags);
uint32_t tcp_rcv_wnd(struct tcp_conn *c);
void tcp_syncookie_synack(struct net_stack *st, const struct tcp_seg *s, uint32_t isn, uint16_t mss);

/* tcp_timer.c */
void tcp_timer_fire(struct timer *t);
void tcp_arm(struct tcp_conn *c, enum tcp_timer_kind k, uint64_t after_us);
void tcp_disarm(struct tcp_conn *c, enum tcp_timer_kind k);
void tcp_rtx_start(struct tcp_conn *c);
void tcp_rtx_restart(struct tcp_conn *c);
void tcp_rtt_sample(struct tcp_conn *c, uint32_t rtt_us);
void tcp_enter_timewait(struct tcp_conn *c);
void tcp_keep_reset(struct tcp_conn *c);

/* tcp_sack.c: the receiver's out-of-order list and the sender's scoreboard */
void tcp_ooo_add(struct tcp_conn *c, uint32_t start, uint32_t end);
uint32_t tcp_ooo_take(struct tcp_conn *c);
bool tcp_sb_update(struct tcp_conn *c, const struct tcp_seg *s);
void tcp_sb_clear(struct tcp_conn *c);
uint32_t tcp_sb_pipe(const struct tcp_conn *c);
bool tcp_sb_next_seg(struct tcp_conn *c, uint32_t *seq, uint32_t *len);
bool tcp_sb_lost_una(const struct tcp_conn *c);

/* tcp_cc.c */
void tcp_cc_init(struct tcp_conn *c);
void tcp_cc_ack(struct tcp_conn *c, uint32_t acked);
void tcp_cc_loss(struct tcp_conn *c);
void tcp_cc_rto(struct tcp_conn *c);
void tcp_ack_recovery(struct tcp_conn *c, const struct tcp_seg *s, uint32_t acked, bool dup);

#endif
