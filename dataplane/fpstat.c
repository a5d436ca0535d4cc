/*
 * The per-fingerprint table: for each client fingerprint (JA4) a core has
 * seen on a listener, how many handshakes it started, finished and failed,
 * when it was first and last seen, its last address, the bytes of the
 * first ClientHello, and whether that hello would still get a certificate
 * under each cipher policy. That is what an operator needs before making a
 * certificate or a policy stricter: which clients (by fingerprint, with a
 * recent address) would break (control/impact.c replays the hellos).
 *
 * One table per core, no locks, no atomic read-modify-write: the core is
 * the only writer. Other threads (the control thread's `hellos`, the
 * report at exit) read an entry with fp_read() under a sequence lock of
 * its own: the core makes seq odd, writes, makes it even again (a release
 * store); a reader copies the fields between an acquire load of seq and a
 * second look at it, and throws the copy away when seq was odd or moved.
 * The fields are copied with plain loads (as the Linux kernel's seqcount
 * readers do): a torn value is possible only in a copy that is then thrown
 * away. The ClientHello's bytes live in a block that is never freed while
 * the table lives (a replaced one goes to t->retired), and the block's cap
 * is written before it is published, so a reader never reads past a block
 * even with a stale pointer.
 *
 * An entry is made once per new (fingerprint, listener), never per packet:
 * the malloc of its hello block happens then (or when a stale entry is
 * reused for a longer hello).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fpstat.h"
#include "resident.h"

/* FNV-1a of the fingerprint and the listener's name. */
static uint32_t fp_hash(const char *ja4, const char *listener)
{
	uint32_t h = 2166136261u;

	while (*ja4)
		h = (h ^ (uint8_t)*ja4++) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	while (*listener)
		h = (h ^ (uint8_t)*listener++) * 16777619u;
	return h;
}

struct fp_table *fp_table_new(void)
{
	struct fp_table *t = calloc_resident(1, sizeof(struct fp_table)); /* RSS fixed from the start */

	if (t)
		t->stale_s = FP_STALE_S;
	return t;
}

void fp_table_free(struct fp_table *t)
{
	if (!t)
		return;
	for (unsigned i = 0; i < FP_SLOTS; i++)
		free(t->slot[i].raw);
	while (t->retired) {
		struct fp_hello_buf *b = t->retired;

		t->retired = b->retired;
		free(b);
	}
	free(t);
}

void fp_write_begin(struct fp_entry *e)
{
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELAXED);
	/* The odd seq is seen before any of the stores that follow. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

void fp_publish(struct fp_entry *e)
{
	__atomic_store_n(&e->seq, e->seq + 1, __ATOMIC_RELEASE);
}

/* Give slot e the key (ja4, listener) with everything else cleared but its
 * hello block (kept for fp_set_hello to reuse). e is open for writing. */
static void fp_rekey(struct fp_entry *e, const char *ja4, const char *listener, long long now)
{
	struct fp_hello_buf *raw = e->raw;
	uint32_t seq = e->seq;

	memset(e, 0, sizeof(*e));
	e->seq = seq;
	e->raw = raw;
	e->used = true;
	snprintf(e->ja4, sizeof(e->ja4), "%s", ja4);
	snprintf(e->listener, sizeof(e->listener), "%s", listener);
	e->first_seen = e->last_seen = now;
}

struct fp_entry *fp_find(struct fp_table *t, const char *ja4, const char *listener,
			 long long now, bool *created)
{
	uint32_t i = fp_hash(ja4, listener) & (FP_SLOTS - 1);
	struct fp_entry *stale = NULL;

	*created = false;
	if (!ja4[0])
		return NULL;
	for (unsigned probe = 0; probe < FP_PROBES; probe++, i = (i + 1) & (FP_SLOTS - 1)) {
		struct fp_entry *e = &t->slot[i];

		if (!e->used) {
			if (t->n >= FP_SLOTS * 3 / 4)
				break; /* full enough: reuse a stale one, or others */
			fp_write_begin(e);
			fp_rekey(e, ja4, listener, now);
			t->n++;
			*created = true;
			return e;
		}
		if (!strcmp(e->ja4, ja4) && !strcmp(e->listener, listener)) {
			fp_write_begin(e);
			return e;
		}
		if (!stale && e->last_seen + (long long)t->stale_s < now)
			stale = e;
	}
	if (stale) {
		/* Slots are re-keyed, never emptied: no probe chain breaks. */
		fp_write_begin(stale);
		fp_rekey(stale, ja4, listener, now);
		*created = true;
		return stale;
	}
	t->others++;
	return NULL;
}

void fp_note_client(struct fp_entry *e, const char *addr)
{
	char ip[FP_IP_MAX];
	const char *a = addr, *end;
	size_t n;

	snprintf(e->client, sizeof(e->client), "%s", addr);
	if (*a == '[') {
		a++;
		end = strchr(a, ']');
	} else {
		end = strrchr(a, ':');
	}
	n = end ? (size_t)(end - a) : strlen(a);
	if (n >= sizeof(ip))
		n = sizeof(ip) - 1;
	memcpy(ip, a, n);
	ip[n] = 0;
	for (unsigned i = 0; i < e->n_ips; i++)
		if (!strcmp(e->ips[i], ip))
			return;
	memcpy(e->ips[e->next_ip], ip, n + 1);
	e->next_ip = (uint8_t)((e->next_ip + 1) % FP_CLIENTS);
	if (e->n_ips < FP_CLIENTS)
		e->n_ips++;
}

int fp_set_hello(struct fp_table *t, struct fp_entry *e, const uint8_t *hello, size_t len)
{
	uint32_t n = len < FP_HELLO_MAX ? (uint32_t)len : FP_HELLO_MAX;

	if (!e->raw || e->raw->cap < n) {
		uint32_t cap = 512;
		struct fp_hello_buf *b;

		while (cap < n)
			cap *= 2;
		if (!(b = malloc(sizeof(*b) + cap))) {
			e->raw_len = e->hello_len = 0;
			return -ENOMEM;
		}
		b->cap = cap;
		b->retired = NULL;
		if (e->raw) {
			/* A reader may hold the old pointer: keep the block. At most
			 * three per slot (512, 1024, 2048 before 4096). */
			e->raw->retired = t->retired;
			t->retired = e->raw;
		}
		__atomic_store_n(&e->raw, b, __ATOMIC_RELEASE);
	}
	memcpy(e->raw->b, hello, n);
	e->raw_len = n;
	e->hello_len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
	return 0;
}

int fp_read(const struct fp_table *t, unsigned i, struct fp_view *v)
{
	const struct fp_entry *e = &t->slot[i];

	for (int tries = 0; tries < 8; tries++) {
		uint32_t s1 = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE), s2;
		const struct fp_hello_buf *raw;
		uint32_t n;

		if (s1 == 0)
			return 0;
		if (s1 & 1)
			continue;
		memcpy(v->ja4, e->ja4, sizeof(v->ja4));
		memcpy(v->listener, e->listener, sizeof(v->listener));
		v->hello = e->hello;
		v->ok = e->ok;
		v->fail = e->fail;
		v->first_seen = e->first_seen;
		v->last_seen = e->last_seen;
		memcpy(v->client, e->client, sizeof(v->client));
		memcpy(v->ips, e->ips, sizeof(v->ips));
		v->n_ips = e->n_ips < FP_CLIENTS ? e->n_ips : FP_CLIENTS;
		memcpy(v->version, e->version, sizeof(v->version));
		memcpy(v->verdict, e->verdict, sizeof(v->verdict));
		v->hello_len = e->hello_len;
		n = e->raw_len;
		raw = __atomic_load_n(&e->raw, __ATOMIC_ACQUIRE);
		if (!raw)
			n = 0;
		else if (n > raw->cap)
			n = raw->cap; /* a pointer and a length of two writes: thrown away below */
		if (n > FP_HELLO_MAX)
			n = FP_HELLO_MAX;
		if (n)
			memcpy(v->raw, raw->b, n);
		v->raw_len = n;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&e->seq, __ATOMIC_RELAXED);
		if (s1 == s2) {
			v->ja4[sizeof(v->ja4) - 1] = v->listener[sizeof(v->listener) - 1] = 0;
			v->client[sizeof(v->client) - 1] = v->version[sizeof(v->version) - 1] = 0;
			for (unsigned k = 0; k < FP_CLIENTS; k++)
				v->ips[k][FP_IP_MAX - 1] = 0;
			return 1;
		}
	}
	return 0;
}

/* What the report keeps of each (fingerprint, listener): no hello bytes. */
struct fp_sum {
	char ja4[40];
	char listener[FP_LISTENER_MAX];
	uint64_t hello, ok, fail;
	char client[48];
	char version[16];
	const char *verdict[FP_POLICIES];
};

/* The verdict words of an entry under policy p. */
static const char *fp_verdict(const struct fp_sum *e, unsigned p)
{
	return e->verdict[p] ? e->verdict[p] : "-";
}

size_t fp_report(struct fp_table *const *tables, unsigned n_tables, const char *const *policy_names,
		 unsigned n_policies, void (*emit)(const char *line))
{
	struct fp_sum *all = calloc((size_t)FP_SLOTS * n_tables, sizeof(*all));
	struct fp_view *v = malloc(sizeof(*v));
	size_t n = 0;
	uint64_t others = 0;
	char line[512];

	if (!all || !v) {
		free(all);
		free(v);
		return 0;
	}
	/* Merge the cores' tables by fingerprint and listener. */
	for (unsigned c = 0; c < n_tables; c++) {
		others += tables[c]->others;
		for (unsigned i = 0; i < FP_SLOTS; i++) {
			size_t k;

			if (!fp_read(tables[c], i, v))
				continue;
			for (k = 0; k < n && (strcmp(all[k].ja4, v->ja4) ||
					      strcmp(all[k].listener, v->listener)); k++)
				;
			if (k == n) {
				struct fp_sum *a = &all[n++];

				memcpy(a->ja4, v->ja4, sizeof(a->ja4));
				memcpy(a->listener, v->listener, sizeof(a->listener));
				a->hello = v->hello;
				a->ok = v->ok;
				a->fail = v->fail;
				memcpy(a->client, v->client, sizeof(a->client));
				memcpy(a->version, v->version, sizeof(a->version));
				memcpy(a->verdict, v->verdict, sizeof(a->verdict));
			} else {
				all[k].hello += v->hello;
				all[k].ok += v->ok;
				all[k].fail += v->fail;
			}
		}
	}
	for (size_t k = 0; k < n; k++) {
		size_t o = (size_t)snprintf(line, sizeof(line),
					    "fingerprint ja4=%s listener=%s hellos=%llu ok=%llu "
					    "failed=%llu client=%s version=%s", all[k].ja4,
					    all[k].listener[0] ? all[k].listener : "-",
					    (unsigned long long)all[k].hello,
					    (unsigned long long)all[k].ok,
					    (unsigned long long)all[k].fail,
					    all[k].client[0] ? all[k].client : "-",
					    all[k].version[0] ? all[k].version : "-");
		for (unsigned p = 0; p < n_policies && p < FP_POLICIES && o < sizeof(line); p++)
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
	free(v);
	return n;
}
