/*
 * The per-client-address table (dataplane/conn_limits.c): concurrent
 * sessions, IPv6 grouped by limits.ipv6_prefix, exempt networks, the rate
 * windows (a burst of the per-minute figure, refilled at it), and what a
 * full table does (stale entries reused, an address untracked rather than
 * refused).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "conn_limits.h"

static struct sockaddr_storage v4(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, a, &s->sin_addr), 1);
	return ss;
}

static struct sockaddr_storage v6(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	s->sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, a, &s->sin6_addr), 1);
	return ss;
}

#define SA(x) ((const struct sockaddr *)&(x))

static struct cfg_limits lim(void)
{
	struct cfg_limits k = { .sessions_per_core = 100, .ipv6_prefix = 64 };

	return k;
}

static int setup(void **st)
{
	(void)st;
	return limits_init(0, 4096);
}

static int teardown(void **st)
{
	(void)st;
	limits_fini();
	return 0;
}

static void sessions_per_address(void **st)
{
	struct cfg_limits k = lim();
	struct cfg_addr_limits al = { .sessions = 2 };
	struct sockaddr_storage a = v4("192.0.2.1"), b = v4("192.0.2.2");
	struct lim_ticket t1, t2, t3, t4;

	(void)st;
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 1000, &t1), LIM_OK);
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 1000, &t2), LIM_OK);
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 1000, &t3), LIM_SESSIONS);
	assert_int_equal(t3.slot, LIM_NONE);
	/* another address, and the same address on another listener */
	assert_int_equal(limits_admit(&k, &al, 0, SA(b), 1000, &t4), LIM_OK);
	limits_release(&t4);
	assert_int_equal(limits_admit(&k, &al, 1, SA(a), 1000, &t4), LIM_OK);
	limits_release(&t4);
	/* a session that ends gives its place back, once */
	limits_release(&t1);
	limits_release(&t1);
	assert_int_equal(t1.slot, LIM_NONE);
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 1000, &t3), LIM_OK);
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 1000, &t1), LIM_SESSIONS);
	limits_release(&t2);
	limits_release(&t3);
}

static void ipv6_prefix_grouping(void **st)
{
	struct cfg_limits k = lim();
	struct cfg_addr_limits al = { .sessions = 1 };
	struct sockaddr_storage a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2:ffff::9"),
				c = v6("2001:db8:1:3::1"), m = v6("::ffff:192.0.2.7"),
				m4 = v4("192.0.2.7");
	struct lim_ticket t1, t2, t3;

	(void)st;
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 0, &t1), LIM_OK);
	/* same /64: the same client */
	assert_int_equal(limits_admit(&k, &al, 0, SA(b), 0, &t2), LIM_SESSIONS);
	/* the next /64 is another */
	assert_int_equal(limits_admit(&k, &al, 0, SA(c), 0, &t2), LIM_OK);
	limits_release(&t2);
	/* a /48 prefix groups them all */
	k.ipv6_prefix = 48;
	assert_int_equal(limits_admit(&k, &al, 0, SA(c), 0, &t2), LIM_OK);
	assert_int_equal(limits_admit(&k, &al, 0, SA(b), 0, &t3), LIM_SESSIONS);
	limits_release(&t2);
	limits_release(&t1);
	/* an IPv4-mapped address is its IPv4 address */
	assert_int_equal(limits_admit(&k, &al, 0, SA(m), 0, &t1), LIM_OK);
	assert_int_equal(limits_admit(&k, &al, 0, SA(m4), 0, &t2), LIM_SESSIONS);
	limits_release(&t1);
}

static void exempt_networks(void **st)
{
	struct cfg_limits k = lim();
	struct cfg_net nets[2];
	struct cfg_addr_limits al = { .sessions = 1, .rate = 1 };
	struct sockaddr_storage in = v4("198.51.100.77"), in6 = v6("2001:db8:ffff::1"),
				out = v4("198.51.101.1");
	struct lim_ticket t;

	(void)st;
	assert_int_equal(cfg_parse_net("198.51.100.0/24", &nets[0]), 0);
	assert_int_equal(cfg_parse_net("2001:db8::/32", &nets[1]), 0);
	k.exempt_nets = nets;
	k.n_exempt = 2;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(limits_admit(&k, &al, 0, SA(in), 0, &t), LIM_EXEMPT);
		assert_int_equal(t.slot, LIM_NONE);
		assert_int_equal(limits_admit(&k, &al, 0, SA(in6), 0, &t), LIM_EXEMPT);
	}
	assert_int_equal(limits_admit(&k, &al, 0, SA(out), 0, &t), LIM_OK);
	limits_release(&t);
	assert_int_equal(limits_admit(&k, &al, 0, SA(out), 0, &t), LIM_RATE);
}

static void rate_window(void **st)
{
	struct cfg_limits k = lim();
	struct cfg_addr_limits al = { .rate = 6 };  /* 6 a minute: one every 10 s */
	struct sockaddr_storage a = v4("203.0.113.5");
	struct lim_ticket t;
	uint64_t now = 50000;

	(void)st;
	/* a burst of the whole minute's figure */
	for (int i = 0; i < 6; i++) {
		assert_int_equal(limits_admit(&k, &al, 0, SA(a), now, &t), LIM_OK);
		limits_release(&t);
	}
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), now, &t), LIM_RATE);
	/* refused ones do not count: 9.9 s later still none, at 10 s one */
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), now + 9900, &t), LIM_RATE);
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), now + 10000, &t), LIM_OK);
	limits_release(&t);
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), now + 10000, &t), LIM_RATE);
	/* a minute later the whole burst again */
	now += 70000;
	for (int i = 0; i < 6; i++) {
		assert_int_equal(limits_admit(&k, &al, 0, SA(a), now, &t), LIM_OK);
		limits_release(&t);
	}
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), now, &t), LIM_RATE);
}

static void handshake_window(void **st)
{
	struct cfg_limits k = lim();
	struct cfg_addr_limits al = { .sessions = 100, .handshakes = 2 };
	struct sockaddr_storage a = v4("203.0.113.9");
	struct lim_ticket t, none = { .slot = LIM_NONE };

	(void)st;
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 0, &t), LIM_OK);
	assert_true(limits_handshake(&al, &t, 0));
	assert_true(limits_handshake(&al, &t, 0));
	assert_false(limits_handshake(&al, &t, 0));
	assert_true(limits_handshake(&al, &t, 30000)); /* 2 a minute: one per 30 s */
	assert_true(limits_handshake(&al, &none, 0)); /* untracked, exempt */
	limits_release(&t);
	/* a released ticket no longer reaches the entry */
	assert_true(limits_handshake(&al, &t, 0));
}

/* A table of 8 entries (one set): full of sessions, a new address is
 * admitted untracked; an entry that only holds a rate history is reused
 * (the oldest first) and said so; stale entries are reused silently. */
static void table_full(void **st)
{
	struct cfg_limits k = lim();
	struct cfg_addr_limits al = { .sessions = 1, .rate = 2 };
	struct lim_ticket t[LIM_WAYS], x;
	char ip[32];

	(void)st;
	assert_int_equal(limits_init(0, LIM_WAYS), 0);
	for (unsigned i = 0; i < LIM_WAYS; i++) {
		struct sockaddr_storage a;

		snprintf(ip, sizeof(ip), "10.0.0.%u", i + 1);
		a = v4(ip);
		assert_int_equal(limits_admit(&k, &al, 0, SA(a), 100 + i, &t[i]), LIM_OK);
		assert_false(t[i].forgot);
	}
	struct sockaddr_storage n = v4("10.0.1.1"), a0 = v4("10.0.0.1"), a1 = v4("10.0.0.2");

	/* full of sessions: admitted, not counted, never refused */
	assert_int_equal(limits_admit(&k, &al, 0, SA(n), 200, &x), LIM_UNTRACKED);
	assert_int_equal(x.slot, LIM_NONE);
	/* entries 1 and 0 end; 0 ended first but was used longer ago: 0 goes */
	limits_release(&t[1]);
	limits_release(&t[0]);
	assert_int_equal(limits_admit(&k, &al, 0, SA(n), 200, &x), LIM_OK);
	assert_true(x.forgot);
	limits_release(&x);
	/* 10.0.0.2 kept its entry: still at its session limit? no, released */
	assert_int_equal(limits_admit(&k, &al, 0, SA(a1), 200, &t[1]), LIM_OK);
	assert_false(t[1].forgot);
	/* much later every rate history has drained: stale, reused silently */
	limits_release(&t[1]);
	assert_int_equal(limits_admit(&k, &al, 0, SA(a0), 10000000, &x), LIM_OK);
	assert_false(x.forgot);
	limits_release(&x);
	for (unsigned i = 2; i < LIM_WAYS; i++)
		limits_release(&t[i]);
	/* a table of the default size for 1000 sessions */
	assert_int_equal(limits_init(1000, 0), 0);
	assert_int_equal(limits_init(0, 12), -EINVAL);
	assert_int_equal(limits_init(0, 4096), 0);
}

static void no_limits_no_entry(void **st)
{
	struct cfg_limits k = lim();
	struct cfg_addr_limits al = { 0 };
	struct sockaddr_storage a = v4("192.0.2.200");
	struct lim_ticket t;

	(void)st;
	assert_int_equal(limits_admit(&k, &al, 0, SA(a), 0, &t), LIM_UNTRACKED);
	assert_int_equal(t.slot, LIM_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(sessions_per_address, setup, teardown),
		cmocka_unit_test_setup_teardown(ipv6_prefix_grouping, setup, teardown),
		cmocka_unit_test_setup_teardown(exempt_networks, setup, teardown),
		cmocka_unit_test_setup_teardown(rate_window, setup, teardown),
		cmocka_unit_test_setup_teardown(handshake_window, setup, teardown),
		cmocka_unit_test_setup_teardown(table_full, setup, teardown),
		cmocka_unit_test_setup_teardown(no_limits_no_entry, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
