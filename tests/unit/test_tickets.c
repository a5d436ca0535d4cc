/*
 * Ticket keys: sluice-control's ring (control/tickets.c) through time, the
 * dataplane's windows (tls/resume.c) on the rings it pushes, and the key
 * files (tls/ticket_file.c). Scenarios on a clock passed in:
 *
 *   t0            the ring: this window's key (seals) and the next one's
 *   t0 + R        the next key seals; a ticket of the first still opens
 *   first + 3R    the first key is past its window: its tickets do not open
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "resume.h"
#include "tickets.h"

#define R   3600LL
#define L   7200LL
#define T0  (1000 * R + 100)  /* 100 s into a window */
#define W0  (1000 * R)        /* that window's start */

static struct cfg mkcfg(const char *key_file)
{
	struct cfg c;

	memset(&c, 0, sizeof(c));
	c.path = (char *)"sluice.yaml";
	c.tickets.enabled = true;
	c.tickets.rotate = (unsigned)R;
	c.tickets.lifetime = (unsigned)L;
	c.tickets.key_file = (char *)key_file;
	c.tickets.key_file_line = 7;
	c.control.ticket_keys = 3;
	return c;
}

static int unhex(const char *h, unsigned char *out)
{
	size_t n = strlen(h);

	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(h + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return (int)(n / 2);
}

/* sluice-control's request, as the dataplane's handler decodes it. */
static unsigned ring_keys(struct tls_ticket_key *keys)
{
	json_t *req = tk_ring_request(), *k;
	size_t i;

	assert_non_null(req);
	assert_string_equal(json_string_value(json_object_get(req, "cmd")), "tickets");
	json_array_foreach(json_object_get(req, "keys"), i, k) {
		memset(&keys[i], 0, sizeof(keys[i]));
		assert_int_equal(unhex(json_string_value(json_object_get(k, "name")), keys[i].name), 16);
		keys[i].hmac_len = (unsigned char)unhex(json_string_value(json_object_get(k, "hmac")),
							keys[i].hmac);
		keys[i].aes_len = (unsigned char)unhex(json_string_value(json_object_get(k, "aes")),
						       keys[i].aes);
		assert_int_equal(keys[i].hmac_len, 32);
		assert_int_equal(keys[i].aes_len, 32);
		keys[i].not_before = json_integer_value(json_object_get(k, "not_before"));
		keys[i].not_after = json_integer_value(json_object_get(k, "not_after"));
	}
	i = json_array_size(json_object_get(req, "keys"));
	tk_request_free(req);
	return (unsigned)i;
}

static int ring_setup(void **state)
{
	struct cfg c = mkcfg(NULL);

	(void)state;
	tk_ring_fini();
	return tk_ring_init(&c);
}

/* At t0: this window's key seals from the window's start, the next one's
 * is there a window ahead; not_after = start + R + L (= start + 3R: the
 * last three). Nothing changes until the next window. */
static void ring_first_tick(void **state)
{
	struct tls_ticket_key k[TK_RING_MAX];

	(void)state;
	assert_true(tk_ring_tick(T0));
	assert_false(tk_ring_tick(T0 + 1));
	assert_false(tk_ring_tick(W0 + R - 1));
	assert_int_equal(ring_keys(k), 2);
	assert_int_equal(k[0].not_before, W0 + R);
	assert_int_equal(k[1].not_before, W0);
	assert_int_equal(k[1].not_after, W0 + R + L);
	assert_int_equal(k[0].not_after, W0 + R + R + L);
	assert_int_equal(tls_ticket_sealing(k, 2, T0), 1);
	assert_int_equal(tls_ticket_sealing(k, 2, W0 + R), 0);
	/* the next key opens already (a box whose clock is ahead sealed) */
	assert_int_equal(tls_ticket_opening(k, 2, k[0].name, T0), 0);
}

/* A ticket sealed before a rotation still opens after it, and after the
 * next; one older than the window does not. */
static void ring_ticket_across_rotations(void **state)
{
	struct tls_ticket_key k[TK_RING_MAX];
	unsigned char sealed_by[16];
	unsigned n;
	int s;

	(void)state;
	tk_ring_tick(T0);
	n = ring_keys(k);
	s = tls_ticket_sealing(k, n, T0);
	assert_true(s >= 0);
	memcpy(sealed_by, k[s].name, 16);

	assert_true(tk_ring_tick(W0 + R));           /* rotation: a new next key */
	n = ring_keys(k);
	assert_int_equal(n, 3);
	assert_memory_not_equal(k[tls_ticket_sealing(k, n, W0 + R)].name, sealed_by, 16);
	assert_true(tls_ticket_opening(k, n, sealed_by, W0 + R) >= 0);
	assert_true(tls_ticket_opening(k, n, sealed_by, W0 + R + L - 1) >= 0);

	assert_true(tk_ring_tick(W0 + 2 * R));
	n = ring_keys(k);
	assert_int_equal(n, 4);                      /* next + the last 3 */
	assert_true(tls_ticket_opening(k, n, sealed_by, W0 + 2 * R + 10) >= 0);
	/* past its not_after, even while still in the ring */
	assert_int_equal(tls_ticket_opening(k, n, sealed_by, W0 + R + L), -1);

	assert_true(tk_ring_tick(W0 + 3 * R));       /* out of the last 3 */
	n = ring_keys(k);
	assert_int_equal(n, 4);
	assert_int_equal(tls_ticket_opening(k, n, sealed_by, W0 + 3 * R), -1);
}

/* `tickets rotate`: a key that seals from now and a fresh next key; the
 * key it replaces keeps opening; four forced rotations push it out of the
 * last three. */
static void ring_rotate_now(void **state)
{
	struct tls_ticket_key k[TK_RING_MAX], before[TK_RING_MAX];
	unsigned n, nb;

	(void)state;
	tk_ring_tick(T0);
	nb = ring_keys(before);
	assert_int_equal(tk_ring_rotate_at(T0 + 5), 0);
	n = ring_keys(k);
	assert_int_equal(n, 3);
	assert_int_equal(k[1].not_before, T0 + 5);
	assert_int_equal(tls_ticket_sealing(k, n, T0 + 5), 1);
	assert_int_equal(k[1].not_after, W0 + R + L);
	assert_memory_not_equal(k[0].name, before[0].name, 16); /* next key renewed */
	assert_true(tls_ticket_opening(k, n, before[1].name, T0 + 5) >= 0);
	assert_int_equal(tls_ticket_opening(k, n, before[0].name, T0 + 5), -1);
	(void)nb;
	tk_ring_rotate_at(T0 + 6);
	tk_ring_rotate_at(T0 + 7);
	n = ring_keys(k);
	assert_int_equal(n, 4);
	assert_int_equal(tls_ticket_opening(k, n, before[1].name, T0 + 7), -1);
}

/* Shorter N than the lifetime asks: a key opens only while it is one of
 * the last N, and its not_after says so. */
static void ring_keep_bounds_not_after(void **state)
{
	struct cfg c = mkcfg(NULL);
	struct tls_ticket_key k[TK_RING_MAX];

	(void)state;
	tk_ring_fini();
	c.control.ticket_keys = 2;
	tk_ring_init(&c);
	tk_ring_tick(T0);
	ring_keys(k);
	assert_int_equal(k[1].not_after, W0 + 2 * R);
}

static void ring_show_has_no_keys(void **state)
{
	json_t *show, *keys;
	char *text;

	(void)state;
	tk_ring_tick(T0);
	show = tk_ring_show_at(T0);
	assert_string_equal(json_string_value(json_object_get(show, "source")), "sluice-control");
	assert_int_equal(json_integer_value(json_object_get(show, "next_rotation")), W0 + R);
	keys = json_object_get(show, "keys");
	assert_int_equal(json_array_size(keys), 2);
	assert_false(json_is_true(json_object_get(json_array_get(keys, 0), "sealing")));
	assert_true(json_is_true(json_object_get(json_array_get(keys, 1), "sealing")));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(keys, 1), "age_s")), 100);
	text = json_dumps(show, 0);
	assert_null(strstr(text, "hmac"));
	assert_null(strstr(text, "aes"));
	free(text);
	json_decref(show);
}

/* A key file, or tickets off: nothing to push, nothing to rotate here. */
static void ring_key_file_pushes_nothing(void **state)
{
	struct cfg c = mkcfg("/etc/sluice/ticket.keys");

	(void)state;
	tk_ring_tick(T0);
	tk_ring_init(&c);
	assert_false(tk_ring_tick(T0));
	assert_null(tk_ring_request());
	assert_int_equal(tk_ring_rotate_at(T0), -EPERM);
	c.tickets.key_file = NULL;
	c.tickets.enabled = false;
	tk_ring_init(&c);
	assert_false(tk_ring_tick(T0));
	assert_null(tk_ring_request());
}

/* ------------------------------------------------ the dataplane's ring --- */

static struct tls_ticket_key dk(unsigned char tag, long long nb, long long na)
{
	struct tls_ticket_key k;

	memset(&k, tag, sizeof(k));
	k.hmac_len = k.aes_len = 32;
	k.not_before = nb;
	k.not_after = na;
	return k;
}

/* Pushed keys rule; when none may seal any more the dataplane makes its
 * own, and the pushed keys still in their window keep opening. */
static void dataplane_push_and_fall_back(void **state)
{
	struct cfg c = mkcfg(NULL);
	struct tls_ticket_key ring[2] = { dk(0xbb, T0 + 1000, T0 + 9000), dk(0xaa, T0 - 10, T0 + 50) };
	struct tls_ticket_info info[TLS_TICKET_KEYS_MAX];
	enum tls_ticket_source src;
	long long pushed;
	char err[256];
	unsigned n;

	(void)state;
	c.tickets.rotate = 60;
	c.tickets.lifetime = 60;
	assert_int_equal(tls_resume_init(&c, NULL, err, sizeof(err)), 0);
	n = tls_resume_show(info, TLS_TICKET_KEYS_MAX, T0, &src, &pushed);
	assert_int_equal(src, TLS_TICKETS_SELF);
	assert_int_equal(n, 1);

	assert_int_equal(tls_resume_push(ring, 2, T0, err, sizeof(err)), 0);
	n = tls_resume_show(info, TLS_TICKET_KEYS_MAX, T0, &src, &pushed);
	assert_int_equal(src, TLS_TICKETS_CONTROL);
	assert_int_equal(pushed, T0);
	assert_int_equal(n, 2);
	assert_false(info[0].sealing);
	assert_true(info[1].sealing);

	tls_resume_tick(T0 + 49);                       /* 0xaa still seals */
	n = tls_resume_show(info, TLS_TICKET_KEYS_MAX, T0 + 49, &src, NULL);
	assert_int_equal(src, TLS_TICKETS_CONTROL);
	tls_resume_tick(T0 + 50);                       /* expired: our own key */
	n = tls_resume_show(info, TLS_TICKET_KEYS_MAX, T0 + 50, &src, NULL);
	assert_int_equal(src, TLS_TICKETS_SELF);
	assert_int_equal(n, 2);                         /* ours, then 0xbb */
	assert_true(info[0].sealing);
	assert_int_equal(info[1].name[0], 0xbb);

	/* not pushed: none may seal now, names twice, bad lengths */
	struct tls_ticket_key bad[2] = { dk(0xcc, T0 + 500, T0 + 900), dk(0xcc, T0, T0 + 900) };

	assert_int_equal(tls_resume_push(bad, 1, T0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no key may seal"));
	assert_int_equal(tls_resume_push(bad, 2, T0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "the same name as keys[0]"));
	bad[0].aes_len = 24;
	assert_int_equal(tls_resume_push(bad, 1, T0, err, sizeof(err)), -EINVAL);
	/* SIGUSR2 rotates only the dataplane's own keys */
	assert_int_equal(tls_resume_rotate_now(), 0);
	assert_int_equal(tls_resume_push(ring, 2, T0, err, sizeof(err)), 0);
	assert_int_equal(tls_resume_rotate_now(), -EPERM);
}

/* Does the ring's storage hold the bytes pat[0..len)? */
static bool store_holds(const unsigned char *pat, size_t len)
{
	size_t n;
	const unsigned char *s = tls_resume_store(&n);

	for (size_t i = 0; i + len <= n; i++)
		if (!memcmp(s + i, pat, len))
			return true;
	return false;
}

/* Issue 12, finding 4: a key that leaves the ring (expired, or rotated
 * past the kept count) leaves no byte in its slot; unused slots are zero. */
static void dataplane_retired_slots_wiped(void **state)
{
	struct cfg c = mkcfg(NULL);
	struct tls_ticket_key pushed = dk(0x5a, T0 - 10, T0 + 50);
	struct tls_ticket_info info[TLS_TICKET_KEYS_MAX];
	unsigned char first[16], pat[32];
	const unsigned char *s;
	size_t len;
	char err[256];
	unsigned n;

	(void)state;
	c.tickets.rotate = 60;
	c.tickets.lifetime = 60;                /* keeps 60/60 + 2 = 3 keys */
	assert_int_equal(tls_resume_init(&c, NULL, err, sizeof(err)), 0);
	assert_int_equal(tls_resume_push(&pushed, 1, T0, err, sizeof(err)), 0);
	memset(pat, 0x5a, sizeof(pat));
	assert_true(store_holds(pat, sizeof(pat)));
	tls_resume_tick(T0 + 50);               /* expired: wiped, our own key */
	assert_false(store_holds(pat, sizeof(pat)));

	n = tls_resume_show(info, TLS_TICKET_KEYS_MAX, T0 + 50, NULL, NULL);
	assert_int_equal(n, 1);
	memcpy(first, info[0].name, sizeof(first));
	assert_true(store_holds(first, sizeof(first)));
	for (int i = 0; i < 4; i++)             /* past the kept count */
		assert_int_equal(tls_resume_rotate_now(), 0);
	n = tls_resume_show(info, TLS_TICKET_KEYS_MAX, T0 + 50, NULL, NULL);
	assert_int_equal(n, 3);
	assert_false(store_holds(first, sizeof(first)));
	s = tls_resume_store(&len);
	for (size_t i = n * sizeof(struct tls_ticket_key); i < len; i++)
		if (s[i])
			fail_msg("byte %zu of the ring's storage (slot %zu) is %#x after "
				 "rotation", i, i / sizeof(struct tls_ticket_key), s[i]);
}

/* ----------------------------------------------------------- key files --- */

static char tmpdir[] = "/tmp/sluice-tk-XXXXXX";

static const char *write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	chmod(path, mode);
	return path;
}

static void b64line(char *out, const unsigned char *raw, int n)
{
	static const char a[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int o = 0;

	for (int i = 0; i < n; i += 3) {
		unsigned v = raw[i] << 16 | (i + 1 < n ? raw[i + 1] << 8 : 0) |
			     (i + 2 < n ? raw[i + 2] : 0);

		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		out[o++] = i + 1 < n ? a[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? a[v & 63] : '=';
	}
	out[o++] = '\n';
	out[o] = '\0';
}

/* HAProxy's order: four lines, N = 3: the penultimate seals, then the
 * last, then the oldest kept (line 1 of 0..3); line 0 is gone. AES before
 * HMAC in each line. */
static void file_haproxy_order(void **state)
{
	struct tls_ticket_key k[TLS_TICKET_KEYS_MAX];
	unsigned char raw[4][80];
	char text[4 * 120] = "# fleet keys\n", line[120], err[512];
	struct cfg c;

	(void)state;
	for (int i = 0; i < 4; i++) {
		for (int j = 0; j < 80; j++)
			raw[i][j] = (unsigned char)(i * 80 + j);
		b64line(line, raw[i], 80);
		strcat(text, line);
	}
	c = mkcfg(write_file("hap.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), 3);
	assert_memory_equal(k[0].name, raw[2], 16);
	assert_memory_equal(k[1].name, raw[3], 16);
	assert_memory_equal(k[2].name, raw[1], 16);
	assert_int_equal(k[0].aes_len, 32);
	assert_memory_equal(k[0].aes, raw[2] + 16, 32);
	assert_memory_equal(k[0].hmac, raw[2] + 48, 32);
	assert_int_equal(k[0].not_after, 0);
	assert_int_equal(tls_ticket_sealing(k, 3, 5), 0);
}

static void file_haproxy_48(void **state)
{
	struct tls_ticket_key k[TLS_TICKET_KEYS_MAX];
	unsigned char raw[48];
	char text[3 * 80] = "", line[80], err[512];
	struct cfg c;

	(void)state;
	for (int i = 0; i < 3; i++) {
		memset(raw, 'a' + i, sizeof(raw));
		b64line(line, raw, 48);
		strcat(text, line);
	}
	c = mkcfg(write_file("hap48.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), 3);
	assert_int_equal(k[0].aes_len, 16);
	assert_int_equal(k[0].hmac_len, 16);
	assert_int_equal(k[0].name[0], 'b');
}

static void file_refusals(void **state)
{
	struct tls_ticket_key k[TLS_TICKET_KEYS_MAX];
	unsigned char raw[160];
	char text[400] = "", line[120], err[512];
	struct cfg c;

	(void)state;
	memset(raw, 7, sizeof(raw));
	for (int i = 0; i < 3; i++) {
		b64line(line, raw, 80);
		strcat(text, line);
	}
	c = mkcfg(write_file("open.keys", text, strlen(text), 0644));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "mode 0644: group or others may read it"));
	assert_int_equal(tls_ticket_file_check(&c, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "sluice.yaml:7: tickets.key_file: "));
	c = mkcfg(write_file("group.keys", text, strlen(text), 0640));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), -EPERM);

	c = mkcfg(write_file("two.keys", text, strlen(text) / 3 * 2, 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "2 keys; HAProxy's format needs at least 3"));

	b64line(line, raw, 48);
	strcat(text, line);
	c = mkcfg(write_file("mixed.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 4: a 48-byte key after 80-byte ones"));

	/* nginx's binary keys: 80 bytes each, name, HMAC, AES, the first seals */
	raw[0] = 0xff;          /* not base64 text */
	raw[80] = 0xfe;
	c = mkcfg(write_file("nginx.key", raw, 160, 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), 2);
	assert_int_equal(k[0].name[0], 0xff);
	assert_int_equal(k[1].name[0], 0xfe);
	/* one nginx key in 256 starts with '#': still binary, not a comment */
	raw[0] = '#';
	c = mkcfg(write_file("hash.key", raw, 80, 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), 1);
	assert_int_equal(k[0].name[0], '#');
	c = mkcfg(write_file("nginx79.key", raw, 79, 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 5, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "79 bytes; expected 80 per key"));
}

/* sluice-control's ring written with tickets.export's format and read
 * back as a box's key file: the same keys, windows and sealing order. */
static void file_windowed_round_trip(void **state)
{
	struct tls_ticket_key ring[TK_RING_MAX], k[TLS_TICKET_KEYS_MAX];
	char path[300], err[512];
	struct cfg c = mkcfg(NULL);
	FILE *f;
	unsigned n;

	(void)state;
	tk_ring_fini();
	assert_int_equal(tk_ring_init(&c), 0);
	assert_true(tk_ring_tick(T0));
	assert_true(tk_ring_tick(T0 + R));      /* three keys: last, this, next window */
	n = ring_keys(ring);
	assert_int_equal(n, 3);
	snprintf(path, sizeof(path), "%s/export.keys", tmpdir);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs("# written by the test\n\n", f) >= 0, 1);
	assert_int_equal(tk_ring_write(f), 3);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
	c = mkcfg(path);
	assert_int_equal(tls_ticket_file_read(&c, k, T0 + R, NULL, err, sizeof(err)), 3);
	for (unsigned i = 0; i < n; i++) {
		assert_memory_equal(k[i].name, ring[i].name, 16);
		assert_memory_equal(k[i].aes, ring[i].aes, 32);
		assert_memory_equal(k[i].hmac, ring[i].hmac, 32);
		assert_int_equal(k[i].not_before, ring[i].not_before);
		assert_int_equal(k[i].not_after, ring[i].not_after);
	}
	/* Each box switches by its clock: this window's key now, the next
	 * one's from its start, the oldest still opens but no longer seals. */
	assert_int_equal(tls_ticket_sealing(k, 3, T0 + R), 1);
	assert_int_equal(tls_ticket_sealing(k, 3, W0 + 2 * R), 0);
	assert_int_equal(tls_ticket_opening(k, 3, k[2].name, T0 + R), 2);
	assert_int_equal(tls_ticket_opening(k, 3, k[2].name, k[2].not_after), -1);
	/* No key whose time has come: nothing seals (no tickets), as a file
	 * nobody renews ends. */
	assert_int_equal(tls_ticket_sealing(k, 3, W0 - 1), -1);
	tk_ring_fini();
}

/* The windowed format's refusals name the line and what is wrong; a file
 * written out of order is put in order (newest first). */
static void file_windowed_lines(void **state)
{
	struct tls_ticket_key k[TLS_TICKET_KEYS_MAX];
	unsigned char raw[80];
	char key[120], text[4096], err[512];
	struct cfg c;

	(void)state;
	memset(raw, 9, sizeof(raw));
	b64line(key, raw, 80);
	key[strlen(key) - 1] = 0;             /* no newline */
	snprintf(text, sizeof(text),
		 "2026-12-05T10:00:00Z 2026-12-05T13:00:00Z %s\n"
		 "2026-12-05T12:00:00Z 2026-12-05T15:00:00Z %s\n"
		 "2026-12-05T11:00:00Z 2026-12-05T14:00:00Z %s\n", key, key, key);
	c = mkcfg(write_file("w.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 0, NULL, err, sizeof(err)), 3);
	assert_int_equal(k[0].not_before, 1796464800LL + 2 * 3600);
	assert_int_equal(k[1].not_before, 1796464800LL + 3600);
	assert_int_equal(k[2].not_before, 1796464800LL);
	assert_int_equal(k[2].not_after, 1796464800LL + 3 * 3600);

	snprintf(text, sizeof(text), "2026-12-05T10:00:00Z 2026-12-05T13:00:00Z %s\n%s\n", key,
		 key);
	c = mkcfg(write_file("w2.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 0, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "w2.keys: line 2: not NOT_BEFORE NOT_AFTER KEY"));

	snprintf(text, sizeof(text), "2026-12-05 10:00 2026-12-05T13:00:00Z %s\n", key);
	c = mkcfg(write_file("w3.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 0, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 1: not NOT_BEFORE NOT_AFTER KEY"));

	snprintf(text, sizeof(text), "2026-12-05T10:00:00 2026-12-05T13:00:00Z %s\n", key);
	c = mkcfg(write_file("w4.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 0, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 1: a time is not RFC 3339 UTC"));

	snprintf(text, sizeof(text), "2026-12-05T13:00:00Z 2026-12-05T13:00:00Z %s\n", key);
	c = mkcfg(write_file("w5.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 0, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 1: NOT_AFTER is not after NOT_BEFORE"));

	snprintf(text, sizeof(text), "2026-12-05T10:00:00Z 2026-12-05T13:00:00Z c2hvcnQ=\n");
	c = mkcfg(write_file("w6.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 0, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 1: not a base64 key of 48 or 80 bytes"));

	text[0] = 0;
	for (int i = 0; i < 17; i++) {
		char l[200];

		snprintf(l, sizeof(l), "2026-12-05T10:00:%02dZ 2026-12-05T13:00:00Z %s\n", i, key);
		strcat(text, l);
	}
	c = mkcfg(write_file("w7.keys", text, strlen(text), 0600));
	assert_int_equal(tls_ticket_file_read(&c, k, 0, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "line 17: more than 16 keys"));
}

static int files_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int files_teardown(void **state)
{
	char cmd[300];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(ring_first_tick, ring_setup),
		cmocka_unit_test_setup(ring_ticket_across_rotations, ring_setup),
		cmocka_unit_test_setup(ring_rotate_now, ring_setup),
		cmocka_unit_test_setup(ring_keep_bounds_not_after, ring_setup),
		cmocka_unit_test_setup(ring_show_has_no_keys, ring_setup),
		cmocka_unit_test_setup(ring_key_file_pushes_nothing, ring_setup),
		cmocka_unit_test(dataplane_push_and_fall_back),
		cmocka_unit_test(dataplane_retired_slots_wiped),
		cmocka_unit_test(file_haproxy_order),
		cmocka_unit_test(file_haproxy_48),
		cmocka_unit_test(file_refusals),
		cmocka_unit_test(file_windowed_round_trip),
		cmocka_unit_test(file_windowed_lines),
	};

	return cmocka_run_group_tests_name("ticket keys", tests, files_setup, files_teardown);
}
