/*
 * The backend probe as a conversation (session/backend.c), without I/O:
 * what both stacks send and how they read the answers, as transcripts fed
 * in awkward pieces; and what a probe's result does to the pool (up, down,
 * the capabilities published, the replaced ones kept long enough).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "session/backend.h"

/* A pool of n servers 198.51.100.1:10026, 10027, ... */
struct fixture {
	struct cfg c;
	struct cfg_backend b;
	struct sockaddr_storage addrs[4];
	socklen_t lens[4];
	struct be_pool *pools;
};

static struct fixture *fixture_new(enum cfg_proto proto, enum cfg_proxy proxy, unsigned n)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[128];

	assert_non_null(f);
	f->b.name = "pf";
	f->b.protocol = proto;
	f->b.proxy = proxy;
	f->b.n_servers = n;
	f->b.connect_timeout = 2;
	f->b.health_interval = 10;
	f->b.addrs = f->addrs;
	f->b.addrlens = f->lens;
	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&f->addrs[i];

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)(10026 + i));
		inet_pton(AF_INET, "198.51.100.1", &s4->sin_addr);
		f->lens[i] = sizeof(*s4);
	}
	f->c.backends = &f->b;
	f->c.n_backends = 1;
	assert_int_equal(be_pools_init(&f->c, &f->pools, err, sizeof(err)), 0);
	return f;
}

static void fixture_free(struct fixture *f)
{
	be_pools_free(f->pools, 1);
	free(f);
}

/* Feed text in pieces of at most step bytes; the last return value. */
static int feed(struct be_probe *pr, const char *text, size_t step, char *why, size_t wlen)
{
	size_t n = strlen(text);
	int rc = 0;

	for (size_t o = 0; o < n && rc == 0; o += step)
		rc = be_probe_input(pr, text + o, n - o < step ? n - o : step, why, wlen);
	return rc;
}

/* What the conversation queued, as a string; then "sent". */
static const char *sent(struct be_probe *pr, char *out, size_t len)
{
	snprintf(out, len, "%.*s", (int)pr->out_len, pr->out);
	pr->out_len = 0;
	return out;
}

static void smtp_probe_with_proxy_v2(void **state)
{
	struct fixture *f = fixture_new(CFG_PROTO_SMTP, CFG_PROXY_V2, 1);
	struct sockaddr_in me = { .sin_family = AF_INET, .sin_port = htons(40000) };
	struct be_probe pr;
	struct proto_caps *caps;
	char why[128] = "", out[600];

	(void)state;
	inet_pton(AF_INET, "198.51.100.10", &me.sin_addr);
	assert_int_equal(be_probe_begin(&pr, &f->pools[0], "mx.test", (struct sockaddr *)&me,
					(struct sockaddr *)&f->addrs[0]), 0);
	/* The PROXY v2 header first: the probe's own addresses. */
	assert_true(pr.out_len > 16);
	assert_memory_equal(pr.out, PP2_SIG, 12);
	pr.out_len = 0;
	/* The greeting, one byte at a time: then the EHLO. */
	assert_int_equal(feed(&pr, "220-mx.backend ESMTP\r\n220 ready\r\n", 1, why, sizeof(why)), 0);
	assert_string_equal(sent(&pr, out, sizeof(out)), "EHLO mx.test\r\n");
	/* The capabilities in pieces of 7: complete, QUIT queued. */
	assert_int_equal(feed(&pr, "250-mx.backend\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n"
			      "250-STARTTLS\r\n250 8BITMIME\r\n", 7, why, sizeof(why)), 1);
	assert_string_equal(sent(&pr, out, sizeof(out)), "QUIT\r\n");
	caps = be_probe_take(&pr);
	assert_non_null(caps);
	assert_int_equal(caps->n, 4);
	assert_string_equal(caps->item[0], "PIPELINING");
	assert_string_equal(caps->item[1], "SIZE 52428800");
	assert_string_equal(caps->item[3], "8BITMIME");
	assert_null(be_probe_take(&pr));            /* taken once */
	be_probe_end(&pr);
	caps_free(caps);
	fixture_free(f);
}

/* Backends that do not cooperate: each a clear error, nothing leaked. */
static void smtp_probe_failures(void **state)
{
	static const struct {
		const char *transcript;
		const char *why;
	} cases[] = {
		{ "554 5.3.2 go away\r\n", "refused the probe" },
		{ "220 hi\r\n500 what\r\n", "refused the probe" },
		{ "220 hi\r\n250-mx\r\n421 closing\r\n", "refused the probe" },
		{ "garbage\r\n", "refused the probe" },
	};
	struct fixture *f = fixture_new(CFG_PROTO_SMTP, CFG_PROXY_NONE, 1);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct be_probe pr;
		char why[128] = "";

		assert_int_equal(be_probe_begin(&pr, &f->pools[0], "mx.test", NULL, NULL), 0);
		assert_int_equal(pr.out_len, 0);           /* no PROXY header */
		assert_int_equal(feed(&pr, cases[i].transcript, 3, why, sizeof(why)), -EPROTO);
		assert_string_equal(why, cases[i].why);
		assert_null(be_probe_take(&pr));
		be_probe_end(&pr);
	}
	fixture_free(f);
}

static void probe_line_too_long(void **state)
{
	struct fixture *f = fixture_new(CFG_PROTO_SMTP, CFG_PROXY_V1, 1);
	struct be_probe pr;
	char why[128] = "", *line = malloc(20000);
	char out[64];

	(void)state;
	memset(line, 'x', 19999);
	line[19999] = 0;
	assert_int_equal(be_probe_begin(&pr, &f->pools[0], "mx.test", NULL, NULL), 0);
	assert_string_equal(sent(&pr, out, sizeof(out)), "PROXY UNKNOWN\r\n");
	assert_int_equal(feed(&pr, line, 5000, why, sizeof(why)), -EPROTO);
	assert_string_equal(why, "reply line too long");
	be_probe_end(&pr);
	free(line);
	fixture_free(f);
}

static void pop3_probe(void **state)
{
	struct fixture *f = fixture_new(CFG_PROTO_POP3, CFG_PROXY_NONE, 1);
	struct be_probe pr;
	struct proto_caps *caps;
	char why[128] = "", out[64];

	(void)state;
	assert_int_equal(be_probe_begin(&pr, &f->pools[0], "mx.test", NULL, NULL), 0);
	assert_int_equal(feed(&pr, "+OK Dovecot ready.\r\n", 4, why, sizeof(why)), 0);
	assert_string_equal(sent(&pr, out, sizeof(out)), "CAPA\r\n");
	assert_int_equal(feed(&pr, "+OK\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN\r\n.\r\n", 5, why,
			      sizeof(why)), 1);
	caps = be_probe_take(&pr);
	assert_non_null(caps);
	assert_true(caps->n >= 3);
	be_probe_end(&pr);
	caps_free(caps);
	fixture_free(f);
}

static struct proto_caps *caps_of(const char *item)
{
	struct proto_caps *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->item[0] = strdup(item);
	c->n = 1;
	return c;
}

static unsigned retired(const struct be_pool *p)
{
	unsigned n = 0;

	for (unsigned k = 0; k < p->n_retired; k++)
		n += p->retired[k].caps != NULL;
	return n;
}

/*
 * Results: a failed probe holds the server down until the next round; a
 * good one brings it back and publishes. Three servers answering in the
 * same millisecond (the native prober runs them at once) replace two
 * snapshots that a core may still be reading: they are kept, and freed
 * only by a publish a second later.
 */
static void results_mark_and_publish(void **state)
{
	struct fixture *f = fixture_new(CFG_PROTO_SMTP, CFG_PROXY_NONE, 3);
	struct be_pool *p = &f->pools[0];

	(void)state;
	assert_null(be_caps(p));
	be_probe_result(p, 1, -ECONNREFUSED, NULL, "connect: Connection refused", true, 1000);
	assert_int_equal(atomic_load(&p->srv[1].down_until_ms), 1000 + 10000);
	assert_true(p->srv[1].probe_down);
	/* be_pick skips it while others are up. */
	for (unsigned seed = 0; seed < 6; seed++)
		assert_int_not_equal(be_pick(p, seed, 0, 2000), 1);

	be_probe_result(p, 0, 0, caps_of("A"), "", true, 5000);
	be_probe_result(p, 1, 0, caps_of("B"), "", true, 5000);
	be_probe_result(p, 2, 0, caps_of("C"), "", true, 5000);
	assert_string_equal(be_caps(p)->item[0], "C");
	assert_int_equal(atomic_load(&p->srv[1].down_until_ms), 0);
	assert_false(p->srv[1].probe_down);
	assert_int_equal(retired(p), 2);           /* A and B, still readable */
	be_probe_result(p, 0, 0, caps_of("D"), "", false, 5500);
	assert_int_equal(retired(p), 3);           /* not a second yet */
	be_probe_result(p, 0, 0, caps_of("E"), "", false, 6600);
	assert_int_equal(retired(p), 1);           /* A, B, C freed; D kept */
	assert_string_equal(be_caps(p)->item[0], "E");
	fixture_free(f);
}

/*
 * Finding 12: only the server's or the network's errors may mark a server
 * down; sluice's own (out of descriptors, of source ports, of buffers) may
 * not: the server is fine, and marking it down would turn one core's
 * trouble into an outage for all.
 */
static void connect_errors_classified(void **state)
{
	static const int local[] = { EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL,
				     EADDRINUSE, EAGAIN, EPERM, EACCES };
	static const int remote[] = { ECONNREFUSED, ETIMEDOUT, ECONNRESET, EHOSTUNREACH,
				      ENETUNREACH, ECONNABORTED, EPIPE, EHOSTDOWN };

	(void)state;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (!be_err_local(-local[i]))
			fail_msg("%s taken for the server's", strerror(local[i]));
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++)
		if (be_err_local(-remote[i]))
			fail_msg("%s taken for sluice's own", strerror(remote[i]));
}

/* A probe that failed on sluice's side (EMFILE) leaves the server as it
 * was: up stays up, down stays down. */
static void probe_local_error_keeps_state(void **state)
{
	struct fixture *f = fixture_new(CFG_PROTO_SMTP, CFG_PROXY_NONE, 2);
	struct be_pool *p = &f->pools[0];

	(void)state;
	be_probe_result(p, 0, -EMFILE, NULL, "connect: Too many open files", true, 1000);
	assert_int_equal(atomic_load(&p->srv[0].down_until_ms), 0);
	assert_false(p->srv[0].probe_down);
	be_probe_result(p, 1, -ECONNREFUSED, NULL, "connect: Connection refused", true, 1000);
	be_probe_result(p, 1, -EADDRNOTAVAIL, NULL, "connect: no source port", true, 2000);
	assert_int_equal(atomic_load(&p->srv[1].down_until_ms), 1000 + 10000);
	assert_true(p->srv[1].probe_down);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(smtp_probe_with_proxy_v2),
		cmocka_unit_test(smtp_probe_failures),
		cmocka_unit_test(probe_line_too_long),
		cmocka_unit_test(pop3_probe),
		cmocka_unit_test(results_mark_and_publish),
		cmocka_unit_test(connect_errors_classified),
		cmocka_unit_test(probe_local_error_keeps_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
