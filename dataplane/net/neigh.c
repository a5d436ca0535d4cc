/*
 * The neighbour table shared by ARP (RFC 826) and NDP (RFC 4861): next-hop
 * address to MAC, with packets held while a next hop is being resolved.
 *
 * States, simplified from RFC 4861 §7.3.2: INCOMPLETE (a request is out, up
 * to NEIGH_QUEUE packets wait, 3 requests 1 s apart, then the packets are
 * dropped), REACHABLE (confirmed in the last 30 s) and STALE (still used;
 * the first use after expiry sends a new request, at most once a second).
 */
#include <stdlib.h>

#include "net/net_int.h"

#define NEIGH_REACHABLE_US 30000000u
#define NEIGH_RETRY_US 1000000u
#define NEIGH_TRIES 3
#define NEIGH_PROBE 8             /* slots looked at from the hashed one */

/* The slot an address is looked for from. */
static uint32_t neigh_hash(const struct net_addr *a)
{
	uint32_t h = 2166136261u;     /* FNV-1a: the table is small and entries are ours */
	unsigned i, n = a->family == NET_AF4 ? 4 : 16;

	for (i = 0; i < n; i++)
		h = (h ^ a->a[i]) * 16777619u;
	return h;
}

/* Same family and address. */
static bool addr_eq(const struct net_addr *x, const struct net_addr *y)
{
	return x->family == y->family && memcmp(x->a, y->a, x->family == NET_AF4 ? 4 : 16) == 0;
}

/* The entry for a, or NULL. */
struct neigh *neigh_lookup(struct net_stack *st, const struct net_addr *a)
{
	uint32_t h = neigh_hash(a), i;

	for (i = 0; i < NEIGH_PROBE; i++) {
		struct neigh *e = &st->neigh[(h + i) % NEIGH_SLOTS];

		if (e->state != NEIGH_FREE && addr_eq(&e->addr, a))
			return e;
	}
	return NULL;
}

/* Free an entry's waiting packets (counted as unresolved if count). */
static void neigh_drop_queue(struct net_stack *st, struct neigh *e, bool count)
{
	struct neigh_pkt *p, *n;

	for (p = e->q; p; p = n) {
		n = p->next;
		if (count)
			net_count(st, NET_C_drop_neigh_unresolved);
		free(p);
	}
	e->q = NULL;
	e->qtail = &e->q;
	e->nq = 0;
}

/* A slot for a: a free one, else the least recently used resolved one.
 * Returns NULL if every candidate is INCOMPLETE. */
static struct neigh *neigh_alloc(struct net_stack *st, const struct net_addr *a)
{
	uint32_t h = neigh_hash(a), i;
	struct neigh *victim = NULL;

	for (i = 0; i < NEIGH_PROBE; i++) {
		struct neigh *e = &st->neigh[(h + i) % NEIGH_SLOTS];

		if (e->state == NEIGH_FREE) {
			victim = e;
			break;
		}
		if (e->state != NEIGH_INCOMPLETE && (!victim || e->used_us < victim->used_us))
			victim = e;
	}
	if (!victim)
		return NULL;
	neigh_drop_queue(st, victim, false);
	memset(victim, 0, sizeof(*victim));
	victim->addr = *a;
	victim->qtail = &victim->q;
	return victim;
}

/* Ask for a next hop: ARP request or neighbour solicitation. */
static void neigh_request(struct net_stack *st, const struct net_addr *a)
{
	if (a->family == NET_AF4)
		arp_request(st, a);
	else
		ndp_solicit(st, a);
}

/* Send frame (IP packet at frame + 14) to next hop nh, or hold a copy
 * until nh is resolved. The frame is not kept: queueing copies it. */
void neigh_resolve_output(struct net_stack *st, const struct net_addr *nh,
			  uint8_t *frame, uint32_t len, uint16_t type)
{
	struct neigh *e = neigh_lookup(st, nh);
	struct neigh_pkt *p;

	if (e && e->state != NEIGH_INCOMPLETE) {
		e->used_us = st->now_us;
		if (st->now_us >= e->expire_us) {
			e->state = NEIGH_STALE;
			e->expire_us = st->now_us + NEIGH_RETRY_US;
			neigh_request(st, nh);
		}
		eth_output(st, frame, len, e->mac, type);
		return;
	}
	if (!e) {
		e = neigh_alloc(st, nh);
		if (!e) {
			net_count(st, NET_C_drop_neigh_table_full);
			return;
		}
		e->state = NEIGH_INCOMPLETE;
		e->tries = 1;
		e->expire_us = st->now_us + NEIGH_RETRY_US;
		e->used_us = st->now_us;
		neigh_request(st, nh);
	}
	if (e->nq >= NEIGH_QUEUE) { /* keep the newest, as RFC 4861 §7.2.2 suggests */
		p = e->q;
		e->q = p->next;
		if (!e->q)
			e->qtail = &e->q;
		e->nq--;
		free(p);
		net_count(st, NET_C_drop_neigh_queue_full);
	}
	p = malloc(sizeof(*p) + len);
	if (!p) {
		net_count(st, NET_C_drop_neigh_queue_full);
		return;
	}
	p->next = NULL;
	p->len = len;
	memcpy(p->frame, frame, len);
	wr16(p->frame + 12, type);
	*e->qtail = p;
	e->qtail = &p->next;
	e->nq++;
	net_count(st, NET_C_neigh_queued);
}

/* a is at mac (a reply, an advertisement, or a request naming its sender).
 * Updates an existing entry and sends what waited for it; creates one only
 * when create is set (RFC 826 "merge" then add when we are the target). */
void neigh_update(struct net_stack *st, const struct net_addr *a, const uint8_t mac[6], bool create)
{
	struct neigh *e = neigh_lookup(st, a);
	struct neigh_pkt *p, *n;

	if (!e) {
		if (!create || !(e = neigh_alloc(st, a)))
			return;
		e->used_us = st->now_us;
	}
	memcpy(e->mac, mac, 6);
	e->state = NEIGH_REACHABLE;
	e->expire_us = st->now_us + NEIGH_REACHABLE_US;
	p = e->q;
	e->q = NULL;
	e->qtail = &e->q;
	e->nq = 0;
	for (; p; p = n) {
		n = p->next;
		eth_output(st, p->frame, p->len, mac, rd16(p->frame + 12));
		free(p);
	}
}

/* Retry or give up on unresolved next hops. */
void neigh_poll(struct net_stack *st)
{
	unsigned i;

	for (i = 0; i < NEIGH_SLOTS; i++) {
		struct neigh *e = &st->neigh[i];

		if (e->state != NEIGH_INCOMPLETE || st->now_us < e->expire_us)
			continue;
		if (e->tries >= NEIGH_TRIES) {
			neigh_drop_queue(st, e, true);
			e->state = NEIGH_FREE;
			continue;
		}
		e->tries++;
		e->expire_us = st->now_us + NEIGH_RETRY_US;
		neigh_request(st, &e->addr);
	}
}

/* Free every waiting packet (stack teardown). */
void neigh_free_all(struct net_stack *st)
{
	unsigned i;

	for (i = 0; i < NEIGH_SLOTS; i++)
		neigh_drop_queue(st, &st->neigh[i], false);
}
