/*
 * Unit tests for what a configuration may hold (issue 12, findings 2 and
 * 3): no YAML aliases (a few KiB once expanded into 9 M rules and 566 MB),
 * a bound on every list and string, the host name's length. Each document
 * is built here, too big to write out in a table.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "config.h"

#define BE \
	"backends:\n" \
	"  - name: pf\n" \
	"    protocol: smtp\n" \
	"    servers: [127.0.0.1:10026]\n"
#define LS \
	"listeners:\n" \
	"  - name: smtp\n" \
	"    address: 127.0.0.1:2525\n" \
	"    protocol: smtp\n" \
	"    tls: starttls\n" \
	"    backend: pf\n"

/* A growing document. */
struct doc {
	char *s;
	size_t len, cap;
};

static void doc_add(struct doc *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!d->s) { /* (no offset on a null pointer: UBSan) */
		d->cap = 256;
		d->s = malloc(d->cap);
		assert_non_null(d->s);
	}
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(d->s + d->len, d->cap - d->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < d->cap - d->len)
			break;
		d->cap = d->cap * 2 + (size_t)n + 64;
		d->s = realloc(d->s, d->cap);
		assert_non_null(d->s);
	}
	d->len += (size_t)n;
}

/* Load d; it must fail with -EINVAL and a message starting with want. */
static void expect_refused(const struct doc *d, const char *want)
{
	struct cfg *c = (struct cfg *)&c;
	char err[512] = "";
	int rc;

	rc = cfg_load_string(d->s, d->len, "t.yaml", &c, err, sizeof(err));
	if (rc != -EINVAL || strncmp(err, want, strlen(want)))
		fail_msg("rc %d, got\n    %s\nwant prefix\n    %s", rc, err, want);
	assert_null(c);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * The alias bomb of the review, in the schema's own shape: a listener whose
 * rule is aliased 100 times, the listener aliased 100 times, 100 networks
 * in the rule: 2 KiB that libcyaml expanded into 1 M networks. Refused at
 * the first alias, with its line, before anything is expanded.
 */
static void test_alias_bomb(void **state)
{
	struct doc d = { 0 };
	double t0;

	(void)state;
	doc_add(&d, BE "listeners:\n  - &L\n    name: smtp\n    address: 127.0.0.1:2525\n"
		"    protocol: smtp\n    tls: starttls\n    backend: pf\n"
		"    policy_by_network:\n      - &R\n        policy: legacy\n        networks: [");
	for (int i = 0; i < 100; i++)
		doc_add(&d, "%s192.0.2.0/24", i ? ", " : "");
	doc_add(&d, "]\n");
	for (int i = 0; i < 99; i++)
		doc_add(&d, "      - *R\n");
	for (int i = 0; i < 99; i++)
		doc_add(&d, "  - *L\n");
	t0 = now_s();
	expect_refused(&d, "t.yaml:16: YAML aliases (*R) are not allowed");
	assert_true(now_s() - t0 < 1.0);
	free(d.s);
}

/* One alias alone, where the schema would take it: refused too. */
static void test_single_alias(void **state)
{
	struct doc d = { 0 };

	(void)state;
	doc_add(&d, BE "listeners:\n  - name: &n smtp\n    address: 127.0.0.1:2525\n"
		"    protocol: smtp\n    tls: starttls\n    backend: pf\n"
		"  - name: smtp2\n    address: 127.0.0.1:2526\n    protocol: smtp\n"
		"    tls: starttls\n    backend: pf\n    hostname: *n\n");
	expect_refused(&d, "t.yaml:16: YAML aliases (*n) are not allowed");
	free(d.s);
}

/* A list over its bound names the key and the bound. */
static void test_list_caps(void **state)
{
	struct doc d = { 0 };

	(void)state;
	doc_add(&d, "backends:\n  - name: pf\n    protocol: smtp\n    servers:\n");
	for (int i = 0; i < 65; i++)
		doc_add(&d, "      - 127.0.0.%d:10026\n", i + 1);
	doc_add(&d, LS);
	expect_refused(&d, "t.yaml:5: backends[0].servers: more than 64 entries");
	free(d.s);

	memset(&d, 0, sizeof(d));
	doc_add(&d, BE LS "    policy_by_network:\n      - policy: legacy\n        networks:\n");
	for (int i = 0; i < 4097; i++)
		doc_add(&d, "          - 10.%d.%d.0/24\n", i / 256, i % 256);
	expect_refused(&d, "t.yaml:14: listeners[0].policy_by_network[0].networks: more than "
		       "4096 entries");
	free(d.s);

	memset(&d, 0, sizeof(d));
	doc_add(&d, BE "listeners:\n");
	for (int i = 0; i < 257; i++)
		doc_add(&d, "  - name: l%d\n    address: 127.0.0.1:%d\n    protocol: smtp\n"
			"    tls: starttls\n    backend: pf\n", i, 20000 + i);
	expect_refused(&d, "t.yaml:6: listeners: more than 256 entries");
	free(d.s);
}

/* A string over its bound; a host name over 253 bytes. */
static void test_string_caps(void **state)
{
	struct doc d = { 0 };
	char name[300];
	size_t o = 0;

	(void)state;
	doc_add(&d, BE LS "    certs:\n      - cert: /");
	for (int i = 0; i < 4100; i++)
		doc_add(&d, "a");
	doc_add(&d, "\n        key: /k.pem\n");
	expect_refused(&d, "t.yaml:12: listeners[0].certs[0].cert: longer than 4096 bytes");
	free(d.s);

	/* 4 labels of 63 and one of 1: 257 bytes, each label valid. */
	for (int l = 0; l < 4; l++) {
		memset(name + o, 'a' + l, 63);
		o += 63;
		name[o++] = '.';
	}
	name[o++] = 'z';
	name[o] = '\0';
	memset(&d, 0, sizeof(d));
	doc_add(&d, "hostname: %s\n" BE LS, name);
	expect_refused(&d, "t.yaml:1: hostname: not a valid host name (257 bytes");
	free(d.s);

	/* 253 bytes exactly: loads. */
	name[253] = '\0';
	name[252] = 'x';
	memset(&d, 0, sizeof(d));
	doc_add(&d, "hostname: %s\n" BE LS, name);
	{
		struct cfg *c = NULL;
		char err[512] = "";

		assert_int_equal(cfg_load_string(d.s, d.len, "t.yaml", &c, err, sizeof(err)), 0);
		assert_string_equal(c->hostname, name);
		assert_string_equal(c->listeners[0].hostname, name);
		cfg_free(c);
	}
	free(d.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alias_bomb),
		cmocka_unit_test(test_single_alias),
		cmocka_unit_test(test_list_caps),
		cmocka_unit_test(test_string_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
