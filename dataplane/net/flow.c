/*
 * The flow table: connections by 4-tuple (chained hash, keyed SipHash so a
 * peer cannot aim flows at one bucket), and the listeners (a short array:
 * a core listens on a handful of ports).
 */
#include <stdlib.h>

#include "net/net_int.h"

/* Buckets for max_conns connections: a power of two, load factor <= 2. */
int flow_init(struct net_stack *st)
{
	uint32_t n = 64;

	while (n < st->tp.max_conns / 2 && n < (1u << 22))
		n <<= 1;
	st->flows = calloc(n, sizeof(*st->flows));
	if (!st->flows)
		return -1;
	st->flow_mask = n - 1;
	return 0;
}

/* The bucket hash: SipHash of the 4-tuple under the stack's secret. */
static uint32_t flow_hash(const struct net_stack *st, const struct tcp_tuple *t)
{
	uint8_t k[37];

	k[0] = t->laddr.family;
	memcpy(k + 1, t->laddr.a, 16);
	memcpy(k + 17, t->raddr.a, 16);
	wr16(k + 33, t->lport);
	wr16(k + 35, t->rport);
	return (uint32_t)siphash24(st->cfg.secret, k, sizeof(k));
}

/* Same family, addresses and ports. */
static bool tuple_eq(const struct tcp_tuple *x, const struct tcp_tuple *y)
{
	return x->lport == y->lport && x->rport == y->rport && x->laddr.family == y->laddr.family &&
	       memcmp(x->laddr.a, y->laddr.a, 16) == 0 && memcmp(x->raddr.a, y->raddr.a, 16) == 0;
}

/* The connection of t, or NULL. Addresses are compared on all 16 bytes:
 * IPv4 tuples keep the last 12 at zero. */
struct tcp_conn *flow_lookup(struct net_stack *st, const struct tcp_tuple *t)
{
	struct tcp_conn *c;

	for (c = st->flows[flow_hash(st, t) & st->flow_mask]; c; c = c->hnext)
		if (tuple_eq(&c->t, t))
			return c;
	return NULL;
}

/* Add c to its bucket (the caller checked the tuple is free). */
void flow_insert(struct net_stack *st, struct tcp_conn *c)
{
	struct tcp_conn **b = &st->flows[flow_hash(st, &c->t) & st->flow_mask];

	c->hnext = *b;
	*b = c;
	st->nconns++;
}

/* Take c out of its bucket, if it is there. */
void flow_remove(struct net_stack *st, struct tcp_conn *c)
{
	struct tcp_conn **p = &st->flows[flow_hash(st, &c->t) & st->flow_mask];

	for (; *p; p = &(*p)->hnext)
		if (*p == c) {
			*p = c->hnext;
			c->hnext = NULL;
			st->nconns--;
			return;
		}
}

/* The listener for (laddr, port): an exact address first, then a wildcard
 * of the same family, then one of any family. NULL if none. */
struct tcp_listener *flow_listener(struct net_stack *st, const struct net_addr *laddr, uint16_t port)
{
	static const uint8_t zero[16];
	struct tcp_listener *best = NULL;
	int rank = 0;
	unsigned i;

	for (i = 0; i < sizeof(st->listeners) / sizeof(st->listeners[0]); i++) {
		struct tcp_listener *l = &st->listeners[i];
		int r;

		if (!l->used || l->port != port)
			continue;
		if (l->addr.family == 0)
			r = 1;
		else if (l->addr.family != laddr->family)
			continue;
		else if (memcmp(l->addr.a, zero, 16) == 0)
			r = 2;
		else if (memcmp(l->addr.a, laddr->a, 16) == 0)
			r = 3;
		else
			continue;
		if (r > rank) {
			rank = r;
			best = l;
		}
	}
	return best;
}
