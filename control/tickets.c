/*
 * sluice-control's ticket keys (tickets.h says the windows and the use).
 * The ring is sorted by not_before, newest first, as the dataplane wants
 * it: the first key whose not_before has come seals there.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "secmem.h"
#include "tickets.h"

enum tk_mode { TK_OFF, TK_MADE, TK_FILE };

struct tk_ckey {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
	long long not_before;
	long long not_after;
};

/* The keys themselves: locked in RAM, out of core dumps (secmem.h). */
static SECMEM_PAGES(struct tk_ckey, TK_RING_MAX) tk_store;

static struct {
	enum tk_mode mode;
	const char *file;        /* tickets.key_file, for show (copied) */
	char file_buf[4096];
	long long rotate, lifetime;
	unsigned keep;           /* N: the sealing key and the N-1 before it */
	struct tk_ckey *key;     /* tk_store.v, newest first */
	unsigned n;
	bool locked;
} R = { .key = tk_store.v };

static long long tk_window(long long t)
{
	long long a = t / R.rotate * R.rotate;

	return a > t ? a - R.rotate : a; /* floor for t < 0 too */
}

/* When a key that may seal from nb stops opening tickets. */
static long long tk_not_after(long long nb)
{
	long long a = tk_window(nb), by_time = a + R.rotate + R.lifetime,
		  by_count = a + (long long)R.keep * R.rotate;

	return by_time < by_count ? by_time : by_count;
}

static void tk_wipe_all(void)
{
	OPENSSL_cleanse(tk_store.v, sizeof(tk_store.v));
	R.n = 0;
}

int tk_ring_init(const struct cfg *c)
{
	enum tk_mode mode = !c->tickets.enabled ? TK_OFF
			    : c->tickets.key_file ? TK_FILE : TK_MADE;

	if (!R.locked && secmem_protect(&tk_store, sizeof(tk_store)) == 0)
		R.locked = true; /* else they work, and may be swapped out */
	if (mode != TK_MADE || R.mode != TK_MADE)
		tk_wipe_all();
	R.mode = mode;
	R.rotate = c->tickets.rotate ? c->tickets.rotate : 3600;
	R.lifetime = c->tickets.lifetime ? c->tickets.lifetime : 7200;
	R.keep = c->control.ticket_keys ? c->control.ticket_keys : 3;
	if (R.keep + 1 > TK_RING_MAX)
		R.keep = TK_RING_MAX - 1;
	snprintf(R.file_buf, sizeof(R.file_buf), "%s", c->tickets.key_file ? c->tickets.key_file : "");
	R.file = R.file_buf;
	/* Keys kept across a reload take the new windows. */
	for (unsigned i = 0; i < R.n; i++)
		R.key[i].not_after = tk_not_after(R.key[i].not_before);
	return 0;
}

/* Insert a new key that may seal from nb, in not_before order (before the
 * keys of the same not_before: the newest seals). 0 or -EIO. */
static int tk_add(long long nb)
{
	struct tk_ckey k = { .not_before = nb, .not_after = tk_not_after(nb) };
	unsigned i;

	if (RAND_priv_bytes(k.name, sizeof(k.name)) != 1 ||
	    RAND_priv_bytes(k.hmac, sizeof(k.hmac)) != 1 ||
	    RAND_priv_bytes(k.aes, sizeof(k.aes)) != 1) {
		OPENSSL_cleanse(&k, sizeof(k));
		return -EIO;
	}
	if (R.n == TK_RING_MAX) { /* never with keep < TK_RING_MAX: the oldest goes */
		OPENSSL_cleanse(&R.key[R.n - 1], sizeof(R.key[0]));
		R.n--;
	}
	for (i = 0; i < R.n && R.key[i].not_before > nb; i++)
		;
	memmove(&R.key[i + 1], &R.key[i], (R.n - i) * sizeof(R.key[0]));
	R.key[i] = k;
	R.n++;
	OPENSSL_cleanse(&k, sizeof(k));
	return 0;
}

/* Drop key i (wiped). */
static void tk_drop(unsigned i)
{
	memmove(&R.key[i], &R.key[i + 1], (R.n - i - 1) * sizeof(R.key[0]));
	R.n--;
	OPENSSL_cleanse(&R.key[R.n], sizeof(R.key[0]));
}

/* Past not_after, or beyond the last N of those that may seal by now. */
static bool tk_prune(long long now)
{
	unsigned i = 0, live = 0;
	bool changed = false;

	while (i < R.n) {
		bool started = R.key[i].not_before <= now;

		if (now >= R.key[i].not_after || (started && live >= R.keep)) {
			tk_drop(i);
			changed = true;
			continue;
		}
		live += started;
		i++;
	}
	return changed;
}

static bool tk_has(long long from, long long to)
{
	for (unsigned i = 0; i < R.n; i++)
		if (R.key[i].not_before >= from && R.key[i].not_before < to)
			return true;
	return false;
}

bool tk_ring_tick(long long now)
{
	long long cur, next;
	bool changed = false;

	if (R.mode != TK_MADE)
		return false;
	cur = tk_window(now);
	next = cur + R.rotate;
	if (!tk_has(cur, next) && tk_add(cur) == 0)
		changed = true;
	if (!tk_has(next, next + 1) && tk_add(next) == 0)
		changed = true;
	return tk_prune(now) || changed;
}

int tk_ring_rotate_at(long long now)
{
	long long next;

	if (R.mode != TK_MADE)
		return -EPERM;
	tk_ring_tick(now);
	next = tk_window(now) + R.rotate;
	/* The next window's key sealed nothing yet: a fresh one replaces it,
	 * so that nothing made before the rotation seals after it. */
	for (unsigned i = 0; i < R.n; i++)
		if (R.key[i].not_before == next) {
			tk_drop(i);
			break;
		}
	if (tk_add(now) < 0 || tk_add(next) < 0)
		return -EIO;
	tk_prune(now);
	return 0;
}

int tk_ring_rotate_now(void)
{
	return tk_ring_rotate_at((long long)time(NULL));
}

static void tk_rfc3339(char out[24], long long t)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (!gmtime_r(&tt, &tm) || !strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 24, "1970-01-01T00:00:00Z");
}

int tk_ring_write(FILE *f)
{
	unsigned char raw[80];
	unsigned char b64[4 * 80 / 3 + 4];
	char nb[24], na[24];
	int rc = (int)R.n;

	for (unsigned i = 0; i < R.n && rc >= 0; i++) {
		/* HAProxy's order: name, AES, HMAC (as tls/ticket_file.c reads). */
		memcpy(raw, R.key[i].name, 16);
		memcpy(raw + 16, R.key[i].aes, 32);
		memcpy(raw + 48, R.key[i].hmac, 32);
		EVP_EncodeBlock(b64, raw, sizeof(raw));
		tk_rfc3339(nb, R.key[i].not_before);
		tk_rfc3339(na, R.key[i].not_after);
		if (fprintf(f, "%s %s %s\n", nb, na, (const char *)b64) < 0)
			rc = -EIO;
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(b64, sizeof(b64));
	return rc;
}

static void tk_hex(char *out, const unsigned char *b, size_t n)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

json_t *tk_ring_request(void)
{
	json_t *req, *keys;
	char hex[65];

	if (R.mode != TK_MADE || !R.n)
		return NULL;
	if (!(req = json_object()) || !(keys = json_array()))
		goto fail;
	json_object_set_new(req, "cmd", json_string("tickets"));
	json_object_set_new(req, "keys", keys);
	for (unsigned i = 0; i < R.n; i++) {
		const struct tk_ckey *k = &R.key[i];
		json_t *o = json_object();

		if (!o || json_array_append_new(keys, o) < 0)
			goto fail;
		tk_hex(hex, k->name, 16);
		json_object_set_new(o, "name", json_string(hex));
		tk_hex(hex, k->hmac, 32);
		json_object_set_new(o, "hmac", json_string(hex));
		tk_hex(hex, k->aes, 32);
		json_object_set_new(o, "aes", json_string(hex));
		json_object_set_new(o, "not_before", json_integer(k->not_before));
		json_object_set_new(o, "not_after", json_integer(k->not_after));
	}
	OPENSSL_cleanse(hex, sizeof(hex));
	return req;
fail:
	OPENSSL_cleanse(hex, sizeof(hex));
	tk_request_free(req);
	return NULL;
}

/* jansson keeps its own copy of each string: wipe it in place before the
 * object goes (the strings are ours, nobody else holds a reference). */
static void tk_wipe_string(json_t *s)
{
	if (json_is_string(s))
		OPENSSL_cleanse((char *)json_string_value(s), json_string_length(s));
}

void tk_request_free(json_t *req)
{
	json_t *keys = json_object_get(req, "keys"), *k;
	size_t i;

	json_array_foreach(keys, i, k) {
		tk_wipe_string(json_object_get(k, "hmac"));
		tk_wipe_string(json_object_get(k, "aes"));
	}
	json_decref(req);
}

json_t *tk_ring_show_at(long long now)
{
	static const char *const names[] = { [TK_OFF] = "off", [TK_MADE] = "sluice-control",
					     [TK_FILE] = "key_file" };
	json_t *o = json_object(), *keys = json_array();
	char hex[33];
	bool sealed = false;

	if (!o || !keys) {
		json_decref(o);
		json_decref(keys);
		return NULL;
	}
	json_object_set_new(o, "source", json_string(names[R.mode]));
	if (R.mode == TK_FILE)
		json_object_set_new(o, "key_file", json_string(R.file));
	json_object_set_new(o, "rotate", json_integer(R.rotate));
	json_object_set_new(o, "lifetime", json_integer(R.lifetime));
	json_object_set_new(o, "keep", json_integer(R.keep));
	if (R.mode == TK_MADE)
		json_object_set_new(o, "next_rotation", json_integer(tk_window(now) + R.rotate));
	json_object_set_new(o, "keys", keys);
	for (unsigned i = 0; i < R.n; i++) {
		const struct tk_ckey *k = &R.key[i];
		bool seals = !sealed && k->not_before <= now && now < k->not_after;
		json_t *e = json_object();

		sealed |= seals;
		tk_hex(hex, k->name, 16);
		json_object_set_new(e, "name", json_string(hex));
		json_object_set_new(e, "age_s", json_integer(now - k->not_before));
		json_object_set_new(e, "not_before", json_integer(k->not_before));
		json_object_set_new(e, "not_after", json_integer(k->not_after));
		json_object_set_new(e, "sealing", json_boolean(seals));
		json_array_append_new(keys, e);
	}
	return o;
}

json_t *tk_ring_show(void)
{
	return tk_ring_show_at((long long)time(NULL));
}

void tk_ring_fini(void)
{
	tk_wipe_all();
	R.mode = TK_OFF;
}
