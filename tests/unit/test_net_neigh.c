/*
 * Neighbour tables under a hostile link (RFC 826, RFC 4861 §7.2): an
 * on-link host must not take over the gateway's or a backend's address
 * with one unsolicited ARP reply or advertisement; only requests for our
 * address create entries; a reachable entry's MAC changes only after the
 * known MAC stops answering; static entries never change.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/net_int.h"
#include "test_net_lib.h"

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const uint8_t MAC1[6] = { 2, 0, 0, 0, 0, 1 }, MAC2[6] = { 2, 0, 0, 0, 0, 2 },
		     MAC3[6] = { 2, 0, 0, 0, 0, 3 }, MAC5[6] = { 2, 0, 0, 0, 0, 5 };

/* An ARP packet: sender (sha, spa = host spa_id's address), target tpa_id's address. */
static uint32_t arp(uint8_t *f, uint16_t op, const uint8_t *sha, int spa_id, int tpa_id)
{
	uint8_t *a = f + 14;

	memset(f, 0, 60);
	memcpy(f, op == 1 ? bcast : MAC1, 6);
	memcpy(f + 6, sha, 6);
	wr16(f + 12, ETH_P_ARP);
	wr16(a, 1);
	wr16(a + 2, ETH_P_IP4);
	a[4] = 6;
	a[5] = 4;
	wr16(a + 6, op);
	memcpy(a + 8, sha, 6);
	memcpy(a + 14, tn_ip4(spa_id).a, 4);
	memcpy(a + 24, tn_ip4(tpa_id).a, 4);
	return 60;
}

static struct neigh *entry4(struct tn_peer *p, int id)
{
	struct net_addr a = tn_ip4(id);

	return neigh_lookup(p->st, &a);
}

/* Frames sent that are ARP requests. */
static uint32_t arp_requests(const struct tn_peer *p)
{
	uint32_t i, n = 0;

	for (i = 0; i < p->n; i++)
		if (rd16(p->frame[i] + 12) == ETH_P_ARP && rd16(p->frame[i] + 20) == 1)
			n++;
	return n;
}

/* RFC 826: an entry is created only by a request for our address; a reply
 * nobody asked for, or a packet for another target, creates nothing. */
static void test_arp_create(void **state)
{
	struct tn_peer p;
	uint8_t f[64];

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_send(&p, f, arp(f, 2, MAC3, 3, 1));     /* unsolicited reply to us */
	assert_null(entry4(&p, 3));
	assert_int_equal(tn_counter(p.st, NET_C_drop_neigh_unsolicited), 1);
	tn_peer_send(&p, f, arp(f, 1, MAC3, 3, 9));     /* request for someone else */
	assert_null(entry4(&p, 3));
	tn_peer_send(&p, f, arp(f, 1, MAC3, 3, 1));     /* request for us: learnt */
	assert_non_null(entry4(&p, 3));
	assert_memory_equal(entry4(&p, 3)->mac, MAC3, 6);
	tn_peer_free(&p);
}

/* No merge from traffic for others: a request for another target naming a
 * known address with a new MAC changes nothing. */
static void test_arp_no_merge_from_others(void **state)
{
	struct tn_peer p;
	uint8_t f[64];

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_send(&p, f, arp(f, 1, MAC2, 2, 1));
	assert_memory_equal(entry4(&p, 2)->mac, MAC2, 6);
	tn_peer_send(&p, f, arp(f, 1, MAC3, 2, 9));
	tn_peer_send(&p, f, arp(f, 2, MAC3, 2, 9));
	assert_memory_equal(entry4(&p, 2)->mac, MAC2, 6);
	assert_int_equal(entry4(&p, 2)->state, NEIGH_REACHABLE);
	tn_peer_free(&p);
}

/* A reachable entry (the gateway, say) is not replaced by an unsolicited
 * reply to us: the known MAC is asked again and, while it answers, stays;
 * only when it stops answering does the entry resolve afresh. */
static void test_arp_reachable_kept(void **state)
{
	struct tn_peer p;
	uint8_t f[64];
	struct neigh *e;

	(void)state;
	tn_peer_init(&p, NULL);
	tn_peer_send(&p, f, arp(f, 1, MAC2, 2, 1));
	tn_peer_clear(&p);
	tn_peer_send(&p, f, arp(f, 2, MAC3, 2, 1));     /* the attacker's reply */
	e = entry4(&p, 2);
	assert_memory_equal(e->mac, MAC2, 6);
	assert_int_equal(e->state, NEIGH_PROBE);
	assert_int_equal(tn_counter(p.st, NET_C_neigh_mac_conflict), 1);
	assert_int_equal(arp_requests(&p), 1);         /* asks again */
	tn_peer_send(&p, f, arp(f, 2, MAC3, 2, 1));     /* again: still ignored */
	assert_memory_equal(e->mac, MAC2, 6);
	tn_peer_send(&p, f, arp(f, 2, MAC2, 2, 1));     /* the real host answers */
	assert_int_equal(e->state, NEIGH_REACHABLE);
	assert_memory_equal(e->mac, MAC2, 6);
	/* the attacker again, and now the real host is gone */
	tn_peer_send(&p, f, arp(f, 2, MAC3, 2, 1));
	assert_int_equal(e->state, NEIGH_PROBE);
	tn_peer_clear(&p);
	tn_peer_advance(&p, 3500000);
	assert_int_equal(e->state, NEIGH_INCOMPLETE);  /* 3 probes unanswered */
	assert_memory_equal(e->mac, MAC2, 6);
	tn_peer_send(&p, f, arp(f, 2, MAC3, 2, 1));     /* a real answer to a real question */
	assert_int_equal(e->state, NEIGH_REACHABLE);
	assert_memory_equal(e->mac, MAC3, 6);
	tn_peer_free(&p);
}

/* Static entries: used without asking, changed by nothing. */
static void test_static_neighbours(void **state)
{
	struct net_neigh n[2] = { { .addr = tn_ip4(5) }, { .addr = tn_ip6(5) } };
	struct tcp_connect_req req = { .raddr = tn_ip4(5), .rport = 25 };
	struct tcp_conn *c;
	struct tn_peer p;
	uint8_t f[64];
	struct tn_seg s;

	(void)state;
	memcpy(n[0].mac, MAC5, 6);
	memcpy(n[1].mac, MAC5, 6);
	tn_peer_init_neigh(&p, NULL, n, 2);
	tn_peer_send(&p, f, arp(f, 2, MAC3, 5, 1));
	tn_peer_send(&p, f, arp(f, 1, MAC3, 5, 1));     /* answered, but learns nothing */
	assert_int_equal(entry4(&p, 5)->state, NEIGH_STATIC);
	assert_memory_equal(entry4(&p, 5)->mac, MAC5, 6);
	assert_int_equal(tn_counter(p.st, NET_C_neigh_static_kept), 2);
	tn_peer_clear(&p);
	assert_int_equal(tcp_connect(p.st, &req, &c), 0);
	assert_int_equal(p.n, 1);                       /* the SYN, no ARP */
	tn_peer_tcp(&p, 0, &s);
	assert_int_equal(s.flags, TH_SYN);
	assert_memory_equal(p.frame[0], MAC5, 6);
	tn_peer_clear(&p);
	tn_peer_advance(&p, 120000000);                  /* never expires */
	assert_int_equal(arp_requests(&p), 0);
	tn_peer_free(&p);
}

static void no_tx(void *ctx, const uint8_t *f, uint32_t len)
{
	(void)ctx;
	(void)f;
	(void)len;
}

/* A configuration the stack refuses: a multicast MAC, an address twice, too many. */
static void test_static_refused(void **state)
{
	struct net_config cfg;
	struct net_neigh n[NET_MAX_STATIC_NEIGH + 1];
	unsigned i;

	(void)state;
	memset(n, 0, sizeof(n));
	for (i = 0; i <= NET_MAX_STATIC_NEIGH; i++) {
		n[i].addr = tn_ip4((int)(10 + i));
		memcpy(n[i].mac, MAC5, 6);
	}
	tn_config(&cfg, 1, NULL);
	cfg.tx = no_tx;
	cfg.neigh = n;
	cfg.n_neigh = NET_MAX_STATIC_NEIGH + 1;
	assert_null(net_stack_new(&cfg, 1));
	cfg.n_neigh = 2;
	n[1].mac[0] = 1;
	assert_null(net_stack_new(&cfg, 1));
	n[1] = n[0];
	assert_null(net_stack_new(&cfg, 1));
	cfg.n_neigh = 1;
	net_stack_free(net_stack_new(&cfg, 1));
}

/* ---- NDP, RFC 4861 §7.2.5 ---- */

/* A neighbour advertisement from host 2's address for target host 2. */
static void na(struct tn_peer *p, const uint8_t *tlla, uint8_t flags)
{
	uint8_t f[200], m[32] = { 136 };
	struct net_addr src = tn_ip6(2), dst = tn_ip6(1);
	uint8_t *ic = f + 54;

	m[4] = flags;
	memcpy(m + 8, src.a, 16);
	m[24] = 2;
	m[25] = 1;
	memcpy(m + 26, tlla, 6);
	memcpy(f, MAC1, 6);
	memcpy(f + 6, tlla, 6);
	wr16(f + 12, ETH_P_IP6);
	memcpy(ic, m, 32);
	wr16(ic + 2, csum_fold(csum_add(csum_pseudo(&src, &dst, 58, 32), ic, 32)));
	ip6_header(f + 14, &src, &dst, 58, 32, 255);
	tn_peer_send(p, f, 54 + 32);
}

/* The Override flag and the Solicited flag: an advertisement without O
 * never changes a known MAC; none changes a reachable one at once; an
 * answer to our solicitation resolves. */
static void test_ndp_override(void **state)
{
	struct tcp_connect_req req = { .raddr = tn_ip6(2), .rport = 25 };
	struct net_addr a2 = tn_ip6(2);
	struct tcp_conn *c;
	struct tn_peer p;
	struct neigh *e;

	(void)state;
	tn_peer_init(&p, NULL);
	na(&p, MAC2, 0x60);                             /* nobody asked: nothing learnt */
	assert_null(neigh_lookup(p.st, &a2));
	assert_int_equal(tcp_connect(p.st, &req, &c), 0); /* solicits */
	e = neigh_lookup(p.st, &a2);
	assert_int_equal(e->state, NEIGH_INCOMPLETE);
	na(&p, MAC2, 0x60);                             /* S|O: the answer */
	assert_int_equal(e->state, NEIGH_REACHABLE);
	assert_memory_equal(e->mac, MAC2, 6);
	na(&p, MAC3, 0x00);                             /* no O: never replaces */
	assert_memory_equal(e->mac, MAC2, 6);
	na(&p, MAC3, 0x20);                             /* O, unsolicited: probed first */
	assert_memory_equal(e->mac, MAC2, 6);
	assert_int_equal(e->state, NEIGH_PROBE);
	na(&p, MAC2, 0x60);                             /* the known host confirms */
	assert_int_equal(e->state, NEIGH_REACHABLE);
	assert_memory_equal(e->mac, MAC2, 6);
	/* a stale entry: O replaces, no O does not */
	tn_peer_advance(&p, 31000000);
	tcp_abort(c);
	assert_int_equal(tcp_connect(p.st, &req, &c), 0); /* use: STALE, solicited again */
	assert_int_equal(e->state, NEIGH_STALE);
	na(&p, MAC3, 0x40);
	assert_memory_equal(e->mac, MAC2, 6);
	na(&p, MAC3, 0x60);
	assert_memory_equal(e->mac, MAC3, 6);
	assert_int_equal(e->state, NEIGH_REACHABLE);
	tn_peer_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp_create),
		cmocka_unit_test(test_arp_no_merge_from_others),
		cmocka_unit_test(test_arp_reachable_kept),
		cmocka_unit_test(test_static_neighbours),
		cmocka_unit_test(test_static_refused),
		cmocka_unit_test(test_ndp_override),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
