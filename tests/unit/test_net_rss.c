/*
 * RSS: the Toeplitz hash against the verification table of the Microsoft
 * RSS specification ("Verifying the RSS Hash Calculation"), and connects
 * whose source ports the predicate picks so that the answers land on this
 * core's queue.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/net_int.h"
#include "net/rss.h"
#include "test_net_lib.h"

struct vector {
	const char *dst, *src;
	uint16_t dport, sport;
	uint32_t ip_only, with_tcp;
};

static const struct vector vectors[] = {
	{ "161.142.100.80", "66.9.149.187", 1766, 2794, 0x323e8fc2, 0x51ccc178 },
	{ "65.69.140.83", "199.92.111.2", 4739, 14230, 0xd718262a, 0xc626b0ea },
	{ "12.22.207.184", "24.19.198.95", 38024, 12898, 0xd2d0a5de, 0x5c2b394a },
	{ "209.142.163.6", "38.27.205.30", 2217, 48228, 0x82989176, 0xafc7327f },
	{ "202.188.127.2", "153.39.163.191", 1303, 44251, 0x5d1809c5, 0x10e828a2 },
	{ "3ffe:2501:200:3::1", "3ffe:2501:200:1fff::7", 1766, 2794, 0x2cc18cd5, 0x40207d3d },
	{ "ff02::1", "3ffe:501:8::260:97ff:fe40:efab", 4739, 14230, 0x0f0c461c, 0xdde51bbf },
	{ "fe80::200:f8ff:fe21:67cf", "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 38024, 44251, 0x4b61e985, 0x02d1feef },
};

static struct net_addr addr(const char *s)
{
	struct net_addr a = { 0 };

	if (inet_pton(AF_INET, s, a.a) == 1)
		a.family = NET_AF4;
	else {
		assert_int_equal(inet_pton(AF_INET6, s, a.a), 1);
		a.family = NET_AF6;
	}
	return a;
}

static void test_toeplitz_vectors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		struct net_addr d = addr(vectors[i].dst), s = addr(vectors[i].src);
		size_t n = d.family == NET_AF4 ? 4 : 16;
		uint8_t in[32];

		memcpy(in, s.a, n);
		memcpy(in + n, d.a, n);
		assert_int_equal(net_toeplitz(net_rss_default_key, in, 2 * n), vectors[i].ip_only);
		assert_int_equal(net_rss_hash_tcp(net_rss_default_key, &s, vectors[i].sport, &d, vectors[i].dport),
				 vectors[i].with_tcp);
	}
}

/* Four cores, four queues, a 128-entry table spread round-robin: each
 * core's connects get ports whose answers hash to its own queue. */
static void test_connect_lands_on_queue(void **state)
{
	struct tn_peer p;
	struct net_rss r;
	struct tcp_connect_req req = { .raddr = tn_ip4(2), .rport = 25, .port_ok = net_rss_port_ok };
	uint32_t q, i;

	(void)state;
	tn_peer_init(&p, NULL);
	memcpy(r.key, net_rss_default_key, sizeof(r.key));
	r.reta_size = 128;
	r.nqueues = 4;
	for (i = 0; i < 128; i++)
		r.reta[i] = (uint16_t)(i % 4);
	req.port_arg = &r;
	for (q = 0; q < 4; q++) {
		r.queue = q;
		for (i = 0; i < 8; i++) {
			struct tcp_conn *c;
			uint32_t h;

			assert_int_equal(tcp_connect(p.st, &req, &c), 0);
			/* the answer: from the server to us */
			h = net_rss_hash_tcp(r.key, &c->t.raddr, c->t.rport, &c->t.laddr, c->t.lport);
			assert_int_equal(r.reta[h & 127], q);
		}
	}
	tn_peer_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_toeplitz_vectors),
		cmocka_unit_test(test_connect_lands_on_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
