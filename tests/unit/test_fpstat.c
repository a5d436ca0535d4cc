/*
 * dataplane/fpstat: the per-core fingerprint table. Entries by (JA4,
 * listener); the first ClientHello's bytes kept (cut at FP_HELLO_MAX, and
 * said so); a stale entry reused once the table is full; and a reader on
 * another thread never gets a torn copy while the core writes (the
 * sequence lock), checked with a writer that keeps an invariant between
 * fields.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fpstat.h"

/* Make (ja4, listener) with a hello of len bytes, published. */
static struct fp_entry *make(struct fp_table *t, const char *ja4, const char *l, long long now,
			     size_t len)
{
	static uint8_t hello[3 * FP_HELLO_MAX];
	bool created;
	struct fp_entry *e = fp_find(t, ja4, l, now, &created);

	if (!e)
		return NULL;
	assert_true(created);
	for (size_t i = 0; i < len; i++)
		hello[i] = (uint8_t)(i * 7 + ja4[0]);
	assert_int_equal(fp_set_hello(t, e, hello, len), 0);
	e->hello++;
	fp_publish(e);
	return e;
}

static void keyed_by_fingerprint_and_listener(void **state)
{
	struct fp_table *t = fp_table_new();
	struct fp_view v;
	bool created;
	struct fp_entry *a = make(t, "t12d_x", "smtp", 1000, 100);
	struct fp_entry *b = make(t, "t12d_x", "submission", 1000, 100);
	struct fp_entry *e;

	assert_non_null(a);
	assert_non_null(b);
	assert_ptr_not_equal(a, b);
	e = fp_find(t, "t12d_x", "smtp", 1005, &created);
	assert_ptr_equal(e, a);
	assert_false(created);
	e->hello++;
	e->last_seen = 1005;
	fp_publish(e);
	assert_int_equal(fp_read(t, (unsigned)(a - t->slot), &v), 1);
	assert_string_equal(v.listener, "smtp");
	assert_int_equal(v.hello, 2);
	assert_int_equal(v.first_seen, 1000);
	assert_int_equal(v.last_seen, 1005);
	assert_int_equal(v.raw_len, 100);
	assert_int_equal(v.hello_len, 100);
	assert_int_equal(v.raw[1], (uint8_t)(7 + 't'));
	/* empty JA4: nothing kept */
	assert_null(fp_find(t, "", "smtp", 1000, &created));
	fp_table_free(t);
}

/* The last client with its port, and the last FP_CLIENTS distinct
 * addresses without it. */
static void clients_are_kept_distinct(void **state)
{
	static const char *const seen[] = {
		"192.0.2.1:1000", "192.0.2.1:1001", "[2001:db8::1]:25", "192.0.2.2:7",
		"192.0.2.3:7", "192.0.2.4:7", "192.0.2.5:7",
	};
	struct fp_table *t = fp_table_new();
	struct fp_entry *e = make(t, "t12d_x", "smtp", 1000, 10);
	struct fp_view v;
	bool created;

	for (unsigned i = 0; i < sizeof(seen) / sizeof(seen[0]); i++) {
		e = fp_find(t, "t12d_x", "smtp", 1000, &created);
		fp_note_client(e, seen[i]);
		fp_publish(e);
		if (i == 2) {
			assert_int_equal(fp_read(t, (unsigned)(e - t->slot), &v), 1);
			assert_int_equal(v.n_ips, 2);
			assert_string_equal(v.ips[0], "192.0.2.1");
			assert_string_equal(v.ips[1], "2001:db8::1");
			assert_string_equal(v.client, "[2001:db8::1]:25");
		}
	}
	assert_int_equal(fp_read(t, (unsigned)(e - t->slot), &v), 1);
	assert_int_equal(v.n_ips, FP_CLIENTS);
	assert_string_equal(v.client, "192.0.2.5:7");
	/* the oldest two went round: 192.0.2.4 and .5 took their places */
	assert_string_equal(v.ips[0], "192.0.2.4");
	assert_string_equal(v.ips[1], "192.0.2.5");
	assert_string_equal(v.ips[2], "192.0.2.2");
	assert_string_equal(v.ips[3], "192.0.2.3");
	fp_table_free(t);
}

static void long_hello_is_cut_and_says_so(void **state)
{
	struct fp_table *t = fp_table_new();
	struct fp_view v;
	struct fp_entry *e = make(t, "t13d_long", "smtp", 1000, FP_HELLO_MAX + 900);

	assert_int_equal(fp_read(t, (unsigned)(e - t->slot), &v), 1);
	assert_int_equal(v.raw_len, FP_HELLO_MAX);
	assert_int_equal(v.hello_len, FP_HELLO_MAX + 900);
	fp_table_free(t);
}

/* Once 3/4 full, a new fingerprint takes an entry not seen for stale_s
 * (its hello block reused or replaced), never a fresh one; none stale:
 * counted in others. */
static void stale_entries_are_reused_when_full(void **state)
{
	struct fp_table *t = fp_table_new();
	char ja4[40];
	unsigned made = 0;
	bool created;
	struct fp_entry *e;
	struct fp_view v;

	t->stale_s = 100;
	for (unsigned i = 0; made < FP_SLOTS * 3 / 4 && i < 100000; i++) {
		snprintf(ja4, sizeof(ja4), "fp%u", i);
		if (make(t, ja4, "smtp", 1000, 200))
			made++;
	}
	assert_int_equal(made, FP_SLOTS * 3 / 4);
	assert_int_equal(t->n, FP_SLOTS * 3 / 4);
	/* not stale yet: others */
	uint64_t others = t->others;

	assert_null(fp_find(t, "newcomer", "smtp", 1050, &created));
	assert_int_equal(t->others, others + 1);
	/* stale: reused, with a longer hello (a new block; the old retired) */
	e = make(t, "newcomer", "smtp", 2000, 3000);
	assert_non_null(e);
	assert_int_equal(t->n, FP_SLOTS * 3 / 4);
	assert_non_null(t->retired);
	assert_int_equal(fp_read(t, (unsigned)(e - t->slot), &v), 1);
	assert_string_equal(v.ja4, "newcomer");
	assert_int_equal(v.hello, 1);
	assert_int_equal(v.first_seen, 2000);
	assert_int_equal(v.raw_len, 3000);
	fp_table_free(t);
}

static void open_entry_is_not_read(void **state)
{
	struct fp_table *t = fp_table_new();
	struct fp_view v;
	struct fp_entry *e = make(t, "t12d_x", "smtp", 1000, 10);
	bool created;

	assert_int_equal(fp_read(t, 0 == (e - t->slot) ? 1 : 0, &v), 0); /* an empty slot */
	fp_find(t, "t12d_x", "smtp", 1000, &created); /* opened, not published */
	assert_int_equal(fp_read(t, (unsigned)(e - t->slot), &v), 0);
	fp_publish(e);
	assert_int_equal(fp_read(t, (unsigned)(e - t->slot), &v), 1);
	fp_table_free(t);
}

/* ------------------------------------------------- a reader, a writer --- */

struct race {
	struct fp_table *t;
	unsigned slot;
	volatile bool stop;         /* the writer is done */
	volatile bool enough;       /* the reader made enough clean copies */
	unsigned long writes;
};

/* The core: the client field always says the hello count, and ok + fail
 * equals it; between an open and a publish the fields disagree. */
static void *writer(void *arg)
{
	struct race *r = arg;
	bool created;

	for (unsigned n = 0; n < 5000000 && (n < 100000 || !r->enough); n++) {
		struct fp_entry *e = fp_find(r->t, "t12d_race", "smtp", 1000 + n, &created);

		e->hello++;
		snprintf(e->client, sizeof(e->client), "192.0.2.1:%llu", (unsigned long long)e->hello);
		if (n % 2)
			e->ok++;
		else
			e->fail++;
		e->last_seen = 1000 + n;
		fp_publish(e);
		r->writes++;
	}
	r->stop = true;
	return NULL;
}

static void reader_never_sees_a_torn_entry(void **state)
{
	struct race r = { .t = fp_table_new() };
	struct fp_entry *e = make(r.t, "t12d_race", "smtp", 1000, 300);
	struct fp_view *v = malloc(sizeof(*v));
	unsigned long reads = 0;
	pthread_t th;

	r.slot = (unsigned)(e - r.t->slot);
	/* the invariant from the start: */
	{
		bool created;

		e = fp_find(r.t, "t12d_race", "smtp", 1000, &created);
		e->hello = 0;
		snprintf(e->client, sizeof(e->client), "192.0.2.1:0");
		fp_publish(e);
	}
	assert_int_equal(pthread_create(&th, NULL, writer, &r), 0);
	/* While the writer runs, then once more after (a stable entry reads
	 * at once). Under load the reader may get few clean copies, never a
	 * torn one. */
	for (bool last = false; !last;) {
		char want[48];

		last = r.stop;
		if (!fp_read(r.t, r.slot, v)) {
			assert_false(last);
			continue;
		}
		if (++reads >= 1000)
			r.enough = true;
		snprintf(want, sizeof(want), "192.0.2.1:%llu", (unsigned long long)v->hello);
		assert_string_equal(v->client, want);
		assert_int_equal(v->ok + v->fail, v->hello);
		assert_int_equal(v->raw_len, 300);
	}
	pthread_join(th, NULL);
	assert_int_equal(v->hello, r.writes);   /* the last copy is the last write */
	free(v);
	fp_table_free(r.t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keyed_by_fingerprint_and_listener),
		cmocka_unit_test(clients_are_kept_distinct),
		cmocka_unit_test(long_hello_is_cut_and_says_so),
		cmocka_unit_test(stale_entries_are_reused_when_full),
		cmocka_unit_test(open_entry_is_not_read),
		cmocka_unit_test(reader_never_sees_a_torn_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
