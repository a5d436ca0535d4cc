/* The stack's life cycle, its clock and its counters. */
#include <errno.h>
#include <stdlib.h>

#include "net/net_int.h"

const char *const net_counter_names[NET_C__COUNT] = {
#define NC(n, h) #n,
#include "net/counters.def"
#undef NC
};
const char *const net_counter_help[NET_C__COUNT] = {
#define NC(n, h) h,
#include "net/counters.def"
#undef NC
};
const char *const tcp_state_names[TCPS__NSTATES] = {
#define TS(n) #n,
#include "net/tcp_state.def"
#undef TS
};

#define DEF(f, v) do { if (!tp->f) tp->f = (v); } while (0)

/* True for a power of two. */
static bool pow2(uint32_t v) { return v && !(v & (v - 1)); }

/* Fill unset tunables with their defaults; reject impossible ones.
 * Returns 0 or -EINVAL. */
static int params_fill(struct tcp_params *tp)
{
	DEF(sndbuf, 256u << 10);
	DEF(rcvbuf, 256u << 10);
	DEF(rto_init_us, 1000000);
	DEF(rto_min_us, 200000);
	DEF(rto_max_us, 60000000);
	DEF(delack_us, 40000);
	DEF(msl_us, 30000000);
	DEF(fin_wait2_us, 60000000);
	DEF(keep_idle_us, 2u * 3600 * 1000000);
	DEF(keep_intvl_us, 75000000);
	DEF(keep_count, 9);
	DEF(syn_retries, 6);
	DEF(data_retries, 15);
	DEF(syn_backlog, 128);
	DEF(max_conns, 65536);
	DEF(challenge_ack_limit, 1000);
	DEF(challenge_ack_conn_us, 500000);
	DEF(pmtu_age_us, 600000000u);
	DEF(buf_idle_us, 1000000);
	DEF(port_lo, 32768);
	DEF(port_hi, 60999);
	if (!pow2(tp->sndbuf) || !pow2(tp->rcvbuf) || tp->sndbuf < 4096 || tp->rcvbuf < 4096 ||
	    tp->sndbuf > (1u << 30) || tp->rcvbuf > (1u << 30) || tp->port_lo > tp->port_hi ||
	    tp->rto_min_us > tp->rto_max_us || tp->cc > NET_CC_CUBIC || tp->syncookies > 2)
		return -EINVAL;
	return 0;
}

/* Create a stack: see net.h. */
struct net_stack *net_stack_new(const struct net_config *cfg, uint64_t now_us)
{
	static const uint8_t zero[16];
	struct net_stack *st;
	uint32_t mask;
	int i;

	if (!cfg->tx || (cfg->mac[0] & 1) || (!cfg->has_ip4 && !cfg->has_ip6) ||
	    (cfg->has_ip4 && cfg->ip4_plen > 32) || (cfg->has_ip6 && cfg->ip6_plen > 128)) {
		errno = EINVAL;
		return NULL;
	}
	st = calloc(1, sizeof(*st));
	if (!st) {
		errno = ENOMEM;
		return NULL;
	}
	st->cfg = *cfg;
	st->tp = cfg->tcp;
	if (!st->cfg.mtu)
		st->cfg.mtu = 1500;
	if (params_fill(&st->tp) < 0 || st->cfg.mtu < 1280 || st->cfg.mtu > NET_MAX_MTU)
		goto inval;
	if (memcmp(st->cfg.ip6_ll, zero, 16) == 0) {
		/* RFC 4291 App. A: fe80::/64 with the modified EUI-64 of the MAC. */
		uint8_t *a = st->cfg.ip6_ll;

		a[0] = 0xfe;
		a[1] = 0x80;
		a[8] = cfg->mac[0] ^ 0x02;
		a[9] = cfg->mac[1];
		a[10] = cfg->mac[2];
		a[11] = 0xff;
		a[12] = 0xfe;
		a[13] = cfg->mac[3];
		a[14] = cfg->mac[4];
		a[15] = cfg->mac[5];
	}
	/* host part of the prefix (no shift by 32: undefined) */
	mask = st->cfg.ip4_plen >= 32 ? 0 : 0xffffffffu >> st->cfg.ip4_plen;
	for (i = 0; i < 4; i++)
		st->ip4_bcast[i] = (uint8_t)(st->cfg.ip4[i] | (uint8_t)(mask >> (24 - 8 * i)));
	st->now_us = now_us;
	wheel_init(&st->wheel, now_us / 1000);
	st->chack_second = UINT64_MAX; /* the first challenge draws a budget */
	if (cfg->n_neigh > NET_MAX_STATIC_NEIGH || (cfg->n_neigh && !cfg->neigh))
		goto inval;
	st->cfg.neigh = NULL;         /* copied into the table below, not kept */
	for (i = 0; i < (int)cfg->n_neigh; i++)
		if (neigh_add_static(st, &cfg->neigh[i]) < 0)
			goto inval;
	st->port_next = (uint32_t)siphash24(st->cfg.secret, "ports", 5);
	if (flow_init(st) < 0) {
		free(st);
		errno = ENOMEM;
		return NULL;
	}
	return st;
inval:
	free(st);
	errno = EINVAL;
	return NULL;
}

/* Free everything without a word on the wire. */
void net_stack_free(struct net_stack *st)
{
	uint32_t i;

	if (!st)
		return;
	for (i = 0; i <= st->flow_mask; i++) {
		struct tcp_conn *c, *n;

		for (c = st->flows[i]; c; c = n) {
			n = c->hnext;
			c->app_gone = true;
			c->hnext = NULL;
			tcp_conn_destroy(c);
		}
		st->flows[i] = NULL;
	}
	net_reap(st);
	neigh_free_all(st);
	free(st->flows);
	free(st);
}

/* Run every timer due by now_us, then the neighbour maintenance. */
void net_poll(struct net_stack *st, uint64_t now_us)
{
	uint64_t t0 = net_cycles_now(st);

	if (now_us > st->now_us)
		st->now_us = now_us;
	st->depth++;
	wheel_advance(&st->wheel, st->now_us / 1000, tcp_timer_fire);
	tcp_buf_poll(st);
	if (st->now_us >= st->neigh_scan_us) {
		neigh_poll(st);
		st->neigh_scan_us = st->now_us + 100000;
	}
	if (st->cfg.cycles) {
		st->cyc.polls++;
		st->cyc.poll_cycles += net_cycles_now(st) - t0;
	}
	if (--st->depth == 0)
		net_reap(st);
}

/* Connections against max_conns, in TIME_WAIT, and their buffers. */
void net_conn_stats(const struct net_stack *st, struct net_conn_stats *out)
{
	out->conns = net_active_conns(st);
	out->timewait = st->ntw;
	out->buf_bytes = st->buf_bytes;
}

/* The counters, indexed by enum net_counter. */
const uint64_t *net_counters(const struct net_stack *st) { return st->c; }

/* Busy cycles over work done, as charged so far. */
void net_cycle_stats(const struct net_stack *st, struct net_cycle_stats *out) { *out = st->cyc; }

/* Our address of the given family (the global one for IPv6). Returns 0 or -EAFNOSUPPORT. */
int net_local_addr(const struct net_stack *st, uint8_t family, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = family;
	if (family == NET_AF4 && st->cfg.has_ip4) {
		memcpy(a->a, st->cfg.ip4, 4);
		return 0;
	}
	if (family == NET_AF6) {
		memcpy(a->a, st->cfg.has_ip6 ? st->cfg.ip6 : st->cfg.ip6_ll, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}
