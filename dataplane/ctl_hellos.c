/*
 * The control command `hellos` (docs/control.md): the ClientHellos the
 * cores recorded (fpstat.c), merged over cores by (listener, JA4), of the
 * fingerprints seen in the last `since` seconds. sluice-control replays
 * them through certificate selection before a change is committed
 * (control/impact.c). Runs on the control thread; reads the cores' tables
 * with fp_read(), never writes them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clock.h"
#include "core.h"
#include "ctl.h"
#include "fpstat.h"

/* The hex of all hellos of one answer at most: a line stays well under
 * the 16 MiB both sockets take. The most frequent fingerprints keep theirs. */
#define CTL_HELLOS_HEX_MAX (8u << 20)

/* One (listener, JA4) over every core. */
struct merged {
	struct fp_view v;           /* counts summed; the hello of the earliest core */
	long long client_seen;      /* last_seen of the core whose client is kept */
};

/* Fold view v into out[0, *n) (a new row or the sums of one). */
static void merge(struct merged *out, size_t *n, const struct fp_view *v)
{
	struct fp_view *m;
	size_t k;

	for (k = 0; k < *n; k++)
		if (!strcmp(out[k].v.ja4, v->ja4) && !strcmp(out[k].v.listener, v->listener))
			break;
	if (k == *n) {
		out[k].v = *v;
		out[k].client_seen = v->last_seen;
		(*n)++;
		return;
	}
	m = &out[k].v;

	m->hello += v->hello;
	m->ok += v->ok;
	m->fail += v->fail;
	if (v->last_seen > out[k].client_seen) {
		memcpy(m->client, v->client, sizeof(m->client));
		out[k].client_seen = v->last_seen;
	}
	for (unsigned i = 0; i < v->n_ips; i++) { /* the union, at most FP_CLIENTS */
		unsigned j;

		for (j = 0; j < m->n_ips && strcmp(m->ips[j], v->ips[i]); j++)
			;
		if (j == m->n_ips && m->n_ips < FP_CLIENTS)
			memcpy(m->ips[m->n_ips++], v->ips[i], FP_IP_MAX);
	}
	if (v->last_seen > m->last_seen)
		m->last_seen = v->last_seen;
	if (v->first_seen < m->first_seen || !m->raw_len) {
		if (v->raw_len) { /* the first hello seen anywhere */
			memcpy(m->raw, v->raw, v->raw_len);
			m->raw_len = v->raw_len;
			m->hello_len = v->hello_len;
		}
		if (v->first_seen < m->first_seen)
			m->first_seen = v->first_seen;
	}
}

/* hex of b[0, n) as a JSON string. */
static json_t *hex_string(const uint8_t *b, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char *s = malloc(2 * n + 1);
	json_t *j;

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = digits[b[i] >> 4];
		s[2 * i + 1] = digits[b[i] & 15];
	}
	s[2 * n] = 0;
	j = json_stringn(s, 2 * n);
	free(s);
	return j;
}

/* Most hellos first. */
static int by_count(const void *a, const void *b)
{
	uint64_t x = ((const struct merged *)a)->v.hello, y = ((const struct merged *)b)->v.hello;

	return x < y ? 1 : x > y ? -1 : 0;
}

/* A row of the answer; with_hello false: over the answer's budget, the
 * bytes left out ("hello": "", "hello_omitted": true). */
static json_t *row(const struct fp_view *v, bool with_hello)
{
	json_t *o = json_object(), *ips = json_array();

	if (!o || !ips) {
		json_decref(o);
		json_decref(ips);
		return NULL;
	}
	json_object_set_new(o, "listener", json_string(v->listener));
	json_object_set_new(o, "ja4", json_string(v->ja4));
	json_object_set_new(o, "hello", hex_string(v->raw, with_hello ? v->raw_len : 0));
	if (!with_hello)
		json_object_set_new(o, "hello_omitted", json_true());
	if (v->hello_len > v->raw_len) /* kept cut at FP_HELLO_MAX */
		json_object_set_new(o, "hello_len", json_integer(v->hello_len));
	json_object_set_new(o, "client", json_string(v->client));
	for (unsigned i = 0; i < v->n_ips; i++)
		json_array_append_new(ips, json_string(v->ips[i]));
	json_object_set_new(o, "clients", ips);
	json_object_set_new(o, "count", json_integer((json_int_t)v->hello));
	json_object_set_new(o, "ok", json_integer((json_int_t)v->ok));
	json_object_set_new(o, "fail", json_integer((json_int_t)v->fail));
	json_object_set_new(o, "first_seen", json_integer(v->first_seen));
	json_object_set_new(o, "last_seen", json_integer(v->last_seen));
	if (v->version[0])
		json_object_set_new(o, "version", json_string(v->version));
	return o;
}

int ctl_hellos(json_t *req, json_t *ans, char *err, size_t errlen)
{
	json_t *since_j = json_object_get(req, "since");
	long long now = clock_real_s(), since = 86400;
	struct merged *all = NULL;
	struct fp_view *v = NULL;
	json_t *arr = NULL;
	uint64_t others = 0;
	size_t n = 0, cap = 0, hex = 0;
	int rc = -ENOMEM;

	if (since_j) {
		if (!json_is_integer(since_j) || json_integer_value(since_j) < 0) {
			snprintf(err, errlen, "since: a number of seconds, 0 or more");
			return -EINVAL;
		}
		since = (long long)json_integer_value(since_j);
	}
	if (!(v = malloc(sizeof(*v))) || !(arr = json_array()))
		goto fail;
	for (unsigned c = 0; c < RT.n_cores; c++) {
		const struct fp_table *t = RT.cores[c].fp;

		if (!t)
			continue;
		others += __atomic_load_n(&t->others, __ATOMIC_RELAXED);
		for (unsigned i = 0; i < FP_SLOTS; i++) {
			if (!fp_read(t, i, v) || v->last_seen < now - since)
				continue;
			if (n == cap) {
				size_t ncap = cap ? 2 * cap : 64;
				struct merged *p = realloc(all, ncap * sizeof(*all));

				if (!p)
					goto fail;
				all = p;
				cap = ncap;
			}
			merge(all, &n, v);
		}
	}
	if (n)
		qsort(all, n, sizeof(*all), by_count);
	for (size_t k = 0; k < n; k++) {
		bool with = hex + 2 * (size_t)all[k].v.raw_len <= CTL_HELLOS_HEX_MAX;
		json_t *r = row(&all[k].v, with);

		if (with)
			hex += 2 * (size_t)all[k].v.raw_len;
		if (!r || json_array_append_new(arr, r) < 0)
			goto fail;
	}
	json_object_set_new(ans, "hellos", arr);
	arr = NULL;
	json_object_set_new(ans, "others", json_integer((json_int_t)others));
	json_object_set_new(ans, "now", json_integer(now));
	rc = 0;
fail:
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	json_decref(arr);
	free(all);
	free(v);
	return rc;
}
