/*
 * The neighbour table shared by ARP (RFC 826) and NDP (RFC 4861): next-hop
 * address to MAC, with packets held while a next hop is being resolved.
 *
 * States, simplified from RFC 4861 §7.3.2: INCOMPLETE (a request is out, up
 * to NEIGH_QUEUE packets wait, 3 requests 1 s apart, then the packets are
 * dropped), REACHABLE (confirmed in the last 30 s), STALE (still used;
 * the first use after expiry sends a new request, at most once a second),
 * PROBE (an answer named another MAC for a REACHABLE entry: the known MAC
 * stays in use and is asked for again, 3 times 1 s apart; only if it never
 * answers does the entry go back to INCOMPLETE and take a new one) and
 * STATIC (configured; nothing on the wire changes it).
 *
 * Who may change what (RFC 826's merge, RFC 4861 §7.2.3-7.2.5), so that an
 * on-link host cannot take over the gateway's or a backend's address with
 * one unsolicited reply:
 *   - only messages for us count: an ARP packet whose target is our
 *     address, an NS for our address, an NA (sent to us);
 *   - an entry is created only by a request naming us as target (ARP
 *     request, NS with a source link-layer address); replies and
 *     advertisements for an address we never asked for are dropped;
 *   - a new MAC replaces the known one only when the entry is INCOMPLETE
 *     (we asked), or STALE with the override allowed (ARP, NA with O);
 *     for a REACHABLE entry it starts a PROBE instead; in PROBE only the
 *     known MAC's answer counts (it confirms the entry).
 */
#include <errno.h>
#include <stdlib.h>

#include "net/net_int.h"

#define NEIGH_REACHABLE_US 30000000u
#define NEIGH_RETRY_US 1000000u
#define NEIGH_TRIES 3
#define NEIGH_SCAN 8              /* slots looked at from the hashed one */

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

	for (i = 0; i < NEIGH_SCAN; i++) {
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

	for (i = 0; i < NEIGH_SCAN; i++) {
		struct neigh *e = &st->neigh[(h + i) % NEIGH_SLOTS];

		if (e->state == NEIGH_FREE) {
			victim = e;
			break;
		}
		if (e->state != NEIGH_INCOMPLETE && e->state != NEIGH_STATIC &&
		    (!victim || e->used_us < victim->used_us))
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
		if (e->state != NEIGH_STATIC && e->state != NEIGH_PROBE && st->now_us >= e->expire_us) {
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

/* Send what waited for e, now resolved. */
static void neigh_flush(struct net_stack *st, struct neigh *e)
{
	struct neigh_pkt *p = e->q, *n;

	e->q = NULL;
	e->qtail = &e->q;
	e->nq = 0;
	for (; p; p = n) {
		n = p->next;
		eth_output(st, p->frame, p->len, e->mac, rd16(p->frame + 12));
		free(p);
	}
}

/* e is at mac: confirmed (REACHABLE) or only heard of (STALE). */
static void neigh_set(struct net_stack *st, struct neigh *e, const uint8_t mac[6], bool confirmed)
{
	memcpy(e->mac, mac, 6);
	e->tries = 0;
	e->state = confirmed ? NEIGH_REACHABLE : NEIGH_STALE;
	e->expire_us = confirmed ? st->now_us + NEIGH_REACHABLE_US : st->now_us;
	neigh_flush(st, e);
}

/* a is at mac, says an ARP packet or an NS/NA for us; how is NU_* (see
 * the rules at the top, RFC 826 and RFC 4861 §7.2.3-7.2.5). */
void neigh_update(struct net_stack *st, const struct net_addr *a, const uint8_t mac[6], unsigned how)
{
	struct neigh *e = neigh_lookup(st, a);
	bool same;

	if (!e) {
		if (!(how & NU_CREATE)) {
			net_count(st, NET_C_drop_neigh_unsolicited);
			return;
		}
		if (!(e = neigh_alloc(st, a)))
			return;
		e->used_us = st->now_us;
		/* RFC 4861 §7.2.3 makes it STALE; we answer the asker at
		 * once, so it is taken as confirmed, as RFC 826 does. */
		neigh_set(st, e, mac, true);
		return;
	}
	if (e->state == NEIGH_STATIC) {
		net_count(st, NET_C_neigh_static_kept);
		return;
	}
	same = memcmp(e->mac, mac, 6) == 0;
	switch (e->state) {
	case NEIGH_INCOMPLETE:    /* our question's answer (RFC 4861 §7.2.5: STALE without S) */
		neigh_set(st, e, mac, (how & NU_SOLICITED) != 0);
		break;
	case NEIGH_REACHABLE:
		if (same) {
			if (how & NU_SOLICITED)
				e->expire_us = st->now_us + NEIGH_REACHABLE_US;
			break;
		}
		/* Never replaced on one word: ask the known MAC again. */
		net_count(st, NET_C_neigh_mac_conflict);
		e->state = NEIGH_PROBE;
		e->tries = 1;
		e->expire_us = st->now_us + NEIGH_RETRY_US;
		neigh_request(st, a);
		break;
	case NEIGH_STALE:
		if (same) {
			if (how & NU_SOLICITED)
				neigh_set(st, e, mac, true);
		} else if (how & NU_OVERRIDE) {
			net_count(st, NET_C_neigh_mac_changed);
			neigh_set(st, e, mac, (how & NU_SOLICITED) != 0);
		}
		break;
	case NEIGH_PROBE:
		if (same)
			neigh_set(st, e, mac, true);    /* the known host answered */
		else
			net_count(st, NET_C_neigh_mac_conflict);
		break;
	}
}

/* A configured entry (net_config.neigh). Returns 0 or -EINVAL (a bad
 * address or MAC, or no slot left among the ones it may hash to). */
int neigh_add_static(struct net_stack *st, const struct net_neigh *n)
{
	struct neigh *e;

	if ((n->addr.family != NET_AF4 && n->addr.family != NET_AF6) || (n->mac[0] & 1) ||
	    neigh_lookup(st, &n->addr))
		return -EINVAL;
	e = neigh_alloc(st, &n->addr);
	if (!e || e->state != NEIGH_FREE)
		return -EINVAL;
	memcpy(e->mac, n->mac, 6);
	e->state = NEIGH_STATIC;
	return 0;
}

/* Retry or give up on unresolved next hops. */
void neigh_poll(struct net_stack *st)
{
	unsigned i;

	for (i = 0; i < NEIGH_SLOTS; i++) {
		struct neigh *e = &st->neigh[i];

		if ((e->state != NEIGH_INCOMPLETE && e->state != NEIGH_PROBE) || st->now_us < e->expire_us)
			continue;
		if (e->state == NEIGH_PROBE && e->tries >= NEIGH_TRIES) {
			/* The known MAC is gone: resolve afresh, and the next
			 * answer is taken (RFC 4861 §7.3.3: PROBE to INCOMPLETE
			 * after MAX_UNICAST_SOLICIT). */
			e->state = NEIGH_INCOMPLETE;
			e->tries = 1;
			e->expire_us = st->now_us + NEIGH_RETRY_US;
			neigh_request(st, &e->addr);
			continue;
		}
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
