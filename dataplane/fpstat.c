/*
 * The per-fingerprint table: for each client fingerprint (JA4) a core has
 * seen, how many handshakes it started, finished and failed, and whether
 * its ClientHello would still get a certificate under each cipher policy.
 * That is what an operator needs before making a policy stricter: which
 * clients (by fingerprint, with a recent address) would break.
 *
 * One table per core, no locks: the core is the only writer; the main
 * thread reads all tables for the report as it reads the counters (a
 * report may see a count one short, never a torn name: an entry's name is
 * written once, before `used` publishes it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fpstat.h"

/* FNV-1a of the fingerprint. */
static uint32_t fp_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

struct fp_table *fp_table_new(void)
{
	return calloc(1, sizeof(struct fp_table));
}

void fp_table_free(struct fp_table *t)
{
	free(t);
}

struct fp_entry *fp_find(struct fp_table *t, const char *ja4, bool *created)
{
	uint32_t i = fp_hash(ja4) & (FP_SLOTS - 1);

	*created = false;
	if (!ja4[0])
		return NULL;
	for (unsigned probe = 0; probe < FP_PROBES; probe++, i = (i + 1) & (FP_SLOTS - 1)) {
		struct fp_entry *e = &t->slot[i];

		if (!e->used) {
			if (t->n >= FP_SLOTS * 3 / 4)
				break; /* full enough: count the rest as others */
			snprintf(e->ja4, sizeof(e->ja4), "%s", ja4);
			__atomic_store_n(&e->used, true, __ATOMIC_RELEASE);
			t->n++;
			*created = true;
			return e;
		}
		if (!strcmp(e->ja4, ja4))
			return e;
	}
	t->others++;
	return NULL;
}

/* The verdict words of an entry under policy p. */
static const char *fp_verdict(const struct fp_entry *e, unsigned p)
{
	return e->verdict[p] ? e->verdict[p] : "-";
}

size_t fp_report(struct fp_table *const *tables, unsigned n_tables, const char *const *policy_names,
		 unsigned n_policies, void (*emit)(const char *line))
{
	struct fp_entry *all = calloc((size_t)FP_SLOTS * n_tables, sizeof(*all));
	size_t n = 0;
	uint64_t others = 0;
	char line[512];

	if (!all)
		return 0;
	/* Merge the cores' tables by fingerprint. */
	for (unsigned c = 0; c < n_tables; c++) {
		others += tables[c]->others;
		for (unsigned i = 0; i < FP_SLOTS; i++) {
			const struct fp_entry *e = &tables[c]->slot[i];
			size_t k;

			if (!__atomic_load_n(&e->used, __ATOMIC_ACQUIRE))
				continue;
			for (k = 0; k < n && strcmp(all[k].ja4, e->ja4); k++)
				;
			if (k == n)
				all[n++] = *e;
			else {
				all[k].hello += e->hello;
				all[k].ok += e->ok;
				all[k].fail += e->fail;
			}
		}
	}
	for (size_t k = 0; k < n; k++) {
		size_t o = (size_t)snprintf(line, sizeof(line),
					    "fingerprint ja4=%s hellos=%llu ok=%llu failed=%llu "
					    "client=%s version=%s", all[k].ja4,
					    (unsigned long long)all[k].hello,
					    (unsigned long long)all[k].ok,
					    (unsigned long long)all[k].fail,
					    all[k].client[0] ? all[k].client : "-",
					    all[k].version[0] ? all[k].version : "-");
		for (unsigned p = 0; p < n_policies && o < sizeof(line); p++)
			o += (size_t)snprintf(line + o, sizeof(line) - o, " %s=%s", policy_names[p],
					      fp_verdict(&all[k], p));
		emit(line);
	}
	if (others) {
		snprintf(line, sizeof(line), "fingerprint ja4=others hellos=%llu (table full)",
			 (unsigned long long)others);
		emit(line);
	}
	free(all);
	return n;
}
