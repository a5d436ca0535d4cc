/*
 * sluicectl top's frames (control/top_render.c) from two status and stats
 * answers as sluice-control gives them: the rates are the counters'
 * differences over the time between the reads; a first read, or a read of
 * a restarted dataplane, gives averages since the dataplane's start; a
 * dataplane without per-listener counters still gets its listeners' names
 * and the all row; the frame fits the window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/top_render.h"

/* status: one STARTTLS listener, one implicit; a backend of two servers. */
static const char status_json[] =
	"{\"ok\": true, \"version\": \"9.9.9\", \"pid\": %d, \"uptime_s\": %d,"
	" \"generation\": 4, \"stack\": \"kernel\", \"cores\": 2, \"workers\": 2,"
	" \"draining\": false, \"sessions\": %d, \"stress\": [],"
	" \"listeners\": ["
	"  {\"name\": \"smtp\", \"address\": \"127.0.0.1:25\", \"proto\": \"smtp\", \"tls\": \"starttls\"},"
	"  {\"name\": \"imaps\", \"address\": \"127.0.0.1:993\", \"proto\": \"imap\", \"tls\": \"implicit\"}],"
	" \"backends\": [{\"name\": \"mta\", \"servers\": ["
	"  {\"address\": \"127.0.0.1:2525\", \"up\": true},"
	"  {\"address\": \"127.0.0.2:2525\", \"up\": false}]}]}";

/* stats with per_core and per_listener (docs/control.md): the counters
 * of the smtp listener given, the rest derived from them. */
static json_t *stats(int accepted, int closed, int hs, int fail, int bytes_in, int refused,
		     long long busy_ns, int queue, bool listeners)
{
	json_t *s = json_pack(
		"{s:b, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i},"
		" s:[{s:i, s:i, s:I, s:i}, {s:i, s:i, s:I, s:i}], s:[i]}",
		"ok", 1,
		"counters", "conn_accepted", accepted + 5, "conn_closed", closed + 5,
		"handshake_ok", hs + 5, "handshake_fail", fail, "bytes_from_client", bytes_in,
		"bytes_to_client", 2 * bytes_in, "starttls", hs, "certsel_NO_CERTS", fail,
		"certsel_OK", 0, "conn_refused_rate", refused, "timeout_handshake", 0,
		"hsfail_peer_alert", 2 * fail,
		"cores",
		"conn_accepted", accepted, "conn_closed", closed, "core_busy_ns", busy_ns,
		"worker_queue_depth", queue,
		"conn_accepted", 5, "conn_closed", 5, "core_busy_ns", (json_int_t)0,
		"worker_queue_depth", 0,
		"stress", 1);

	if (listeners)
		json_object_set_new(s, "listeners", json_pack(
			"[{s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i}},"
			" {s:s, s:s, s:s, s:{s:i, s:i}}]",
			"name", "smtp", "proto", "smtp", "mode", "starttls", "counters",
			"conn_accepted", accepted, "conn_closed", closed, "handshake_ok", hs,
			"handshake_fail", fail, "bytes_from_client", bytes_in,
			"bytes_to_client", 2 * bytes_in, "starttls", hs,
			"name", "imaps", "proto", "imap", "mode", "implicit", "counters",
			"conn_accepted", 5, "conn_closed", 5));
	return s;
}

static json_t *status(int pid, int uptime, int sessions)
{
	char buf[2048];
	json_t *j;

	snprintf(buf, sizeof(buf), status_json, pid, uptime, sessions);
	j = json_loads(buf, 0, NULL);
	assert_non_null(j);
	return j;
}

/* The whitespace-separated words of the frame's first line that starts
 * with word (its first word being word), in w; how many. */
static unsigned row(const struct top_frame *f, const char *word, char w[16][32])
{
	for (unsigned i = 0; i < f->n; i++) {
		char buf[1024], *save = NULL;
		unsigned n = 0;

		snprintf(buf, sizeof(buf), "%s", f->line[i]);
		for (char *t = strtok_r(buf, " ", &save); t && n < 16; t = strtok_r(NULL, " ", &save))
			snprintf(w[n++], 32, "%s", t);
		if (n && !strcmp(w[0], word))
			return n;
	}
	return 0;
}

static bool has_line(const struct top_frame *f, const char *part)
{
	for (unsigned i = 0; i < f->n; i++)
		if (strstr(f->line[i], part))
			return true;
	return false;
}

static void dump(const struct top_frame *f)
{
	for (unsigned i = 0; i < f->n; i++)
		print_message("# %s\n", f->line[i]);
}

/* Two reads 2 s apart: 6 new sessions, 4 handshakes, 2 failures, 2000
 * bytes in, 4 refusals, 1 s busy on core 0 over the 2 s. */
static void test_rates_between_two_reads(void **state)
{
	struct top_read a = { status(100, 60, 4), stats(10, 8, 6, 1, 1000, 2, 3000000000LL, 1, true), 10.0, NULL };
	struct top_read b = { status(100, 62, 6), stats(16, 10, 10, 3, 3000, 6, 4000000000LL, 3, true), 12.0, NULL };
	struct top_frame f;
	char w[16][32];

	(void)state;
	assert_int_equal(top_render(&a, &b, 0, 0, &f), 0);
	dump(&f);
	assert_non_null(strstr(f.line[0], "sluice 9.9.9"));
	assert_non_null(strstr(f.line[0], "generation 4"));
	assert_non_null(strstr(f.line[0], "draining no"));
	assert_non_null(strstr(f.line[0], "sessions 6"));
	assert_non_null(strstr(f.line[0], "up 1m02s"));
	assert_true(has_line(&f, "over the last 2.0 s"));
	/* LISTENER PROTO MODE SESS TOTAL NEW/s HS/s HSFAIL/s IN B/s OUT B/s STLS/s */
	assert_int_equal(row(&f, "smtp", w), 11);
	assert_string_equal(w[1], "smtp");
	assert_string_equal(w[2], "starttls");
	assert_string_equal(w[3], "6");         /* 16 accepted - 10 closed */
	assert_string_equal(w[4], "16");
	assert_string_equal(w[5], "3.0");       /* 6 new in 2 s */
	assert_string_equal(w[6], "2.0");
	assert_string_equal(w[7], "1.0");
	assert_string_equal(w[8], "1000");
	assert_string_equal(w[9], "2000");
	assert_string_equal(w[10], "2.0");
	assert_int_equal(row(&f, "imaps", w), 11);
	assert_string_equal(w[2], "implicit");
	assert_string_equal(w[3], "0");
	assert_string_equal(w[4], "5");
	/* Counters at 0 are left out of a listener's: 0, not unknown. */
	for (unsigned k = 5; k < 11; k++)
		assert_string_equal(w[k], "0");
	/* The all row: status' sessions, the summed counters. */
	assert_int_equal(row(&f, "(all)", w), 9);
	assert_string_equal(w[1], "6");
	assert_string_equal(w[2], "21");
	assert_string_equal(w[3], "3.0");
	/* CORE SESS BUSY% QUEUE STRESS */
	assert_int_equal(row(&f, "0", w), 5);
	assert_string_equal(w[1], "6");
	assert_string_equal(w[2], "50.0");
	assert_string_equal(w[3], "3");
	assert_string_equal(w[4], "-");
	assert_int_equal(row(&f, "1", w), 5);
	assert_string_equal(w[2], "0.0");
	assert_string_equal(w[4], "yes");
	assert_true(has_line(&f, "backends: 1 up, 1 down"));
	assert_int_equal(row(&f, "mta", w), 3);
	assert_string_equal(w[1], "127.0.0.1:2525");
	assert_string_equal(w[2], "up");
	assert_true(has_line(&f, "127.0.0.2:2525  DOWN"));
	/* Failure reasons and refusals: counted ones only, with rate and
	 * total, the one that grew most first. */
	assert_true(has_line(&f, "HANDSHAKE FAILURES"));
	for (unsigned i = 0; i + 1 < f.n; i++)
		if (strstr(f.line[i], "HANDSHAKE FAILURES"))
			assert_non_null(strstr(f.line[i + 1], "hsfail_peer_alert"));
	assert_int_equal(row(&f, "hsfail_peer_alert", w), 3);
	assert_string_equal(w[1], "2.0");
	assert_string_equal(w[2], "6");
	assert_int_equal(row(&f, "certsel_NO_CERTS", w), 3);
	assert_string_equal(w[1], "1.0");
	assert_string_equal(w[2], "3");
	assert_int_equal(row(&f, "certsel_OK", w), 0);
	assert_int_equal(row(&f, "timeout_handshake", w), 0);
	assert_int_equal(row(&f, "conn_refused_rate", w), 3);
	assert_string_equal(w[1], "2.0");
	assert_string_equal(w[2], "6");
	/* Plain text: nothing for a terminal in a frame. */
	for (unsigned i = 0; i < f.n; i++)
		assert_null(strchr(f.line[i], '\033'));
	top_frame_free(&f);
	json_decref(a.status), json_decref(a.stats), json_decref(b.status), json_decref(b.stats);
}

/* The first read, and a read after the dataplane restarted (another
 * pid): averages over the dataplane's uptime. */
static void test_since_start(void **state)
{
	struct top_read a = { status(100, 600, 4), stats(1000, 8, 6, 1, 1000, 2, 0, 0, true), 10.0, NULL };
	struct top_read b = { status(200, 10, 4), stats(20, 0, 6, 1, 1000, 2, 0, 0, true), 11.0, NULL };
	struct top_frame f;
	char w[16][32];

	(void)state;
	assert_int_equal(top_render(NULL, &b, 0, 0, &f), 0);
	assert_true(has_line(&f, "averaged since the dataplane started"));
	assert_int_equal(row(&f, "smtp", w), 11);
	assert_string_equal(w[5], "2.0");       /* 20 in 10 s */
	top_frame_free(&f);
	assert_int_equal(top_render(&a, &b, 0, 0, &f), 0);
	assert_true(has_line(&f, "averaged since the dataplane started"));
	assert_int_equal(row(&f, "smtp", w), 11);
	assert_string_equal(w[5], "2.0");       /* not 20 - 1000 */
	top_frame_free(&f);
	json_decref(a.status), json_decref(a.stats), json_decref(b.status), json_decref(b.stats);
}

/* Today's dataplane: no "listeners" in stats, no busy or queue figures.
 * The names come from status, the counts from the all row. */
static void test_without_per_listener(void **state)
{
	struct top_read a = { status(100, 60, 2), stats(10, 8, 6, 1, 1000, 0, 0, 0, false), 10.0, NULL };
	struct top_read b = { status(100, 61, 2), stats(12, 10, 8, 1, 1000, 0, 0, 0, false), 11.0, NULL };
	struct top_frame f;
	char w[16][32];

	(void)state;
	for (unsigned i = 0; i < 2; i++) {
		json_t *c = json_array_get(json_object_get(b.stats, "cores"), i);

		json_object_del(c, "core_busy_ns");
		json_object_del(c, "worker_queue_depth");
	}
	assert_int_equal(top_render(&a, &b, 0, 0, &f), 0);
	dump(&f);
	assert_int_equal(row(&f, "smtp", w), 11);
	assert_string_equal(w[2], "starttls");
	assert_string_equal(w[3], "-");
	assert_int_equal(row(&f, "imaps", w), 11);
	assert_string_equal(w[2], "implicit");
	assert_int_equal(row(&f, "(all)", w), 9);
	assert_string_equal(w[1], "2");
	assert_string_equal(w[2], "17");
	assert_string_equal(w[3], "2.0");
	assert_true(has_line(&f, "no per-listener counters"));
	assert_int_equal(row(&f, "0", w), 5);
	assert_string_equal(w[2], "-");
	assert_string_equal(w[3], "-");
	assert_true(has_line(&f, "REFUSED BY THE LIMITS"));
	assert_int_equal(row(&f, "none", w), 1);
	top_frame_free(&f);
	json_decref(a.status), json_decref(a.stats), json_decref(b.status), json_decref(b.stats);
}

/* sluice-control away: the frame says why, with what it has. */
static void test_error_shown(void **state)
{
	struct top_read b = { NULL, NULL, 11.0, "cannot reach sluice-control at /x: refused" };
	struct top_frame f;

	(void)state;
	assert_int_equal(top_render(NULL, &b, 80, 24, &f), 0);
	assert_true(has_line(&f, "cannot reach sluice-control at /x"));
	top_frame_free(&f);
}

/* A small window: no line wider, no more lines than it has, the last
 * one saying what did not fit. */
static void test_fits_the_window(void **state)
{
	struct top_read a = { status(100, 60, 4), stats(10, 8, 6, 1, 1000, 2, 0, 1, true), 10.0, NULL };
	struct top_read b = { status(100, 62, 6), stats(16, 10, 10, 3, 3000, 6, 0, 3, true), 12.0, NULL };
	struct top_frame f;

	(void)state;
	assert_int_equal(top_render(&a, &b, 40, 10, &f), 0);
	assert_int_equal(f.n, 10);
	for (unsigned i = 0; i < f.n; i++)
		assert_true(strlen(f.line[i]) <= 40);
	assert_non_null(strstr(f.line[9], "more lines"));
	top_frame_free(&f);
	json_decref(a.status), json_decref(a.stats), json_decref(b.status), json_decref(b.stats);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rates_between_two_reads),
		cmocka_unit_test(test_since_start),
		cmocka_unit_test(test_without_per_listener),
		cmocka_unit_test(test_error_shown),
		cmocka_unit_test(test_fits_the_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
