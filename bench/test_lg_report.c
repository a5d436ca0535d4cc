/*
 * sluice-loadgen's output: latencies for people, the summary (a run with
 * errors of two kinds, and a clean one) and the JSON object (the rigs'
 * keys, strings escaped), as tables of input and expected text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "lg.h"

static struct lg g;             /* the histogram is large: not on the stack */

/* Every magnitude keeps at most three significant digits and its unit. */
static void test_fmt_us(void **state)
{
	static const struct { uint64_t us; const char *want; } cases[] = {
		{ 0, "0 µs" }, { 999, "999 µs" }, { 1000, "1.00 ms" }, { 1234, "1.23 ms" },
		{ 9999, "10.00 ms" }, { 12345, "12.3 ms" }, { 123456, "123 ms" },
		{ 999999, "1000 ms" }, { 1000000, "1.00 s" }, { 65432100, "65.43 s" },
	};
	char buf[24];
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(lg_fmt_us(buf, sizeof(buf), cases[i].us), cases[i].want);
}

/* A run as the event loop would leave it: n ok ops of latencies 1..n ms. */
static void fill(unsigned n)
{
	unsigned i;

	memset(&g, 0, sizeof(g));
	g.wl = WL_SMTP;
	g.wl_name = "smtp";
	g.host = "mx.example";
	g.dst.sin_port = htons(25);
	g.proto = LG_P_SMTP;
	g.tls_mode = LG_TLS_STARTTLS;
	g.concurrency = 4;
	for (i = 1; i <= n; i++)
		hist_record(&g.lat, i * 1000u);
	g.done = g.started = n;
	g.msgs_accepted = n;
	g.payload_bytes = (uint64_t)n * 4096;
}

/* What fn writes for g over 2 s with 0.5 s of CPU (the caller frees it). */
static char *capture(void (*fn)(FILE *, const struct lg *, double, double))
{
	static char *text;
	static size_t len;
	FILE *f;

	text = NULL;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	fn(f, &g, 2.0, 0.5);
	fclose(f);
	return text;
}

static void test_summary_clean(void **state)
{
	char *t;

	(void)state;
	fill(100);
	t = capture(lg_summary);
	assert_non_null(strstr(t, "sluice-loadgen: smtp to mx.example port 25, STARTTLS "
				  "(TLS 1.2-1.3), closed loop, 4 in flight\n"));
	assert_non_null(strstr(t, "certificate:  not verified"));
	assert_non_null(strstr(t, "operations:   100 succeeded, 0 failed, of 100 started in "
				  "2.00 s: 50.0 per second\n"));
	/* 1..100 ms: each quantile the midpoint of its bucket, within the
	 * histogram's 1/32 (100 ms lies in [98.3, 100.4) ms); max exact */
	assert_non_null(strstr(t, "latency:      p50 49.7 ms, p90 89.1 ms, p99 99.3 ms, "
				  "p99.9 99.3 ms, max 100 ms (from each op's start)\n"));
	assert_non_null(strstr(t, "messages:     100 accepted (0.39 MiB sent, 0.20 MiB/s)\n"));
	assert_non_null(strstr(t, "client CPU:   0.50 s (25 % of one CPU)\n"));
	assert_non_null(strstr(t, "errors:       none\n"));
	assert_null(strstr(t, "resumed:"));     /* not asked for */
	free(t);
}

/* Errors by kind, each with its first words; an open loop says when its
 * latencies start; resumption is shown when asked for. */
static void test_summary_errors(void **state)
{
	char *t;

	(void)state;
	fill(10);
	g.rate = 5;
	g.resume = true;
	g.resumed = 9;
	g.started = 13;
	g.failed = 3;
	g.err[LG_E_connect] = 2;
	g.err[LG_E_auth] = 1;
	lg_note_error(&g, LG_E_connect, "Connection refused");
	lg_note_error(&g, LG_E_connect, "a later one");
	lg_note_error(&g, LG_E_auth, "POP3 reply: -ERR [AUTH] Authentication failed.");
	t = capture(lg_summary);
	assert_non_null(strstr(t, ", open loop at 5/s\n"));
	assert_non_null(strstr(t, "(from when each op was due)\n"));
	assert_non_null(strstr(t, "resumed:      9 of 10 (90.0 %)\n"));
	assert_non_null(strstr(t, "errors:       3\n"
				  "  connect           2   first: Connection refused\n"
				  "  auth              1   first: POP3 reply: -ERR [AUTH] "
				  "Authentication failed.\n"));
	assert_null(strstr(t, "a later one"));
	free(t);
	assert_string_equal(g.first_error, "connect: Connection refused");
}

/* The keys the rigs read, and strings escaped as JSON wants them. */
static void test_json(void **state)
{
	static const char *const keys[] = {
		"\"workload\": \"smtp\"", "\"tls\": \"any\"", "\"implicit\": false",
		"\"mode\": \"closed\"", "\"ops\": 10", "\"started\": 11", "\"error_total\": 1",
		"\"errors\": {\"connect\": 0, \"tls\": 0, \"verify\": 0, \"refused\": 1, ",
		"\"first_error\": \"refused: SMTP reply: 550 \\\"no\\\" \\\\ \\u0001\"",
		"\"first_errors\": {\"refused\": \"SMTP reply: 550 \\\"no\\\" \\\\ \\u0001\"}",
		"\"duration_s\": 2.000000", "\"ops_per_s\": 5.00",
		"\"latency_us\": {\"p50\": 5", "\"p999\": 10", "\"max\": 10000",
		"\"payload_bytes\": 40960", "\"messages_accepted\": 10",
		"\"messages_unanswered\": 0", "\"resumed_fraction\": 0.0000",
		"\"client_cpu_s\": 0.500", "\"host\": \"mx.example\"", "\"port\": 25",
		"\"protocol\": \"smtp\"", "\"tls_mode\": \"starttls\"", "\"verify\": false}\n",
	};
	char *t;
	unsigned i;

	(void)state;
	fill(10);
	g.started = 11;
	g.failed = 1;
	g.err[LG_E_refused] = 1;
	lg_note_error(&g, LG_E_refused, "SMTP reply: 550 \"no\" \\ \001");
	t = capture(lg_json);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strstr(t, keys[i]))
			fail_msg("no %s in %s", keys[i], t);
	assert_int_equal(t[0], '{');
	/* one line: the rigs read the last line of stdout */
	assert_non_null(strchr(t, '\n'));
	assert_int_equal(strchr(t, '\n') - t + 1, strlen(t));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fmt_us),
		cmocka_unit_test(test_summary_clean),
		cmocka_unit_test(test_summary_errors),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
