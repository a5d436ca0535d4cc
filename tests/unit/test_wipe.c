/*
 * Freed memory never holds key material (issue 12, finding 4; lib/wipe.h).
 *
 * This program replaces free() and realloc() (glibc lets a program do so;
 * the blocks still come from glibc's malloc): while a test watches a byte
 * pattern (a key, its hex, its base64 line), every block that goes back to
 * the allocator is searched for it, and a realloc always moves, so that
 * one that would leave the old block behind is caught too. Not built under
 * the sanitizers, which own free() themselves.
 *
 * It reads every byte malloc_usable_size() reports, past what the block was
 * asked for: _FORTIFY_SOURCE (Debian's build flags) takes that for an
 * overflow and aborts, so it is off in this file.
 */
#undef _FORTIFY_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "config.h"
#include "files.h"
#include "resume.h"
#include "wipe.h"

extern void *__libc_malloc(size_t n);
extern void __libc_free(void *p);

static const void *watch;
static size_t watch_len;
static unsigned leaks;

static void check(void *p)
{
	if (watch && p && memmem(p, malloc_usable_size(p), watch, watch_len))
		leaks++;
}

void free(void *p)
{
	check(p);
	__libc_free(p);
}

void *realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return __libc_malloc(n);
	if (!n) {
		free(p);
		return NULL;
	}
	if (!(q = __libc_malloc(n)))
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

static void watch_for(const void *pat, size_t len)
{
	watch = pat;
	watch_len = len;
	leaks = 0;
}

static unsigned watch_end(void)
{
	watch = NULL;
	return leaks;
}

/* The checker itself: a plain free of a block with the pattern is seen. */
static void test_checker_sees_a_leak(void **state)
{
	static const char pat[] = "0123456789abcdef-secret";
	char *p = malloc(64);

	(void)state;
	snprintf(p, 64, "x%sy", pat);
	watch_for(pat, sizeof(pat) - 1);
	free(p);
	assert_int_equal(watch_end(), 1);
	p = malloc(64);
	snprintf(p, 64, "x%sy", pat);
	watch_for(pat, sizeof(pat) - 1);
	wipe_free(p);
	assert_int_equal(watch_end(), 0);
}

/* A key file read from the disk: neither its text (stdio's buffer) nor the
 * keys outlive the read. */
static void test_key_file_read(void **state)
{
	char dir[] = "/tmp/test_wipe.XXXXXX", path[64], err[256], line[3][128];
	unsigned char raw[80];
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	struct cfg c;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/tickets.key", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 3; i++) {
		memset(raw, 0x61 + i, sizeof(raw));
		raw[0] = (unsigned char)i;
		EVP_EncodeBlock((unsigned char *)line[i], raw, sizeof(raw));
		fprintf(f, "%s\n", line[i]);
	}
	fclose(f);
	chmod(path, 0600);
	memset(&c, 0, sizeof(c));
	c.path = "t.yaml";
	c.tickets.enabled = true;
	c.tickets.key_file = path;
	c.control.ticket_keys = 3;

	watch_for(line[1], strlen(line[1]));
	assert_int_equal(tls_ticket_file_read(&c, keys, 1000, NULL, err, sizeof(err)), 3);
	assert_int_equal(watch_end(), 0);
	OPENSSL_cleanse(keys, sizeof(keys));
	unlink(path);
	rmdir(dir);
}

/* A file bigger than the first buffer (a certificate bundle with its key):
 * growing the buffer leaves no copy behind. */
static void test_file_read_grows(void **state)
{
	static const char pat[] = "-----PRIVATE KEY BYTES 0f1e2d3c4b5a6978-----";
	char dir[] = "/tmp/test_wipe.XXXXXX", path[64], *data = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", pat);
	for (int i = 0; i < 600; i++)
		fprintf(f, "%039d\n", i);
	fclose(f);
	watch_for(pat, sizeof(pat) - 1);
	assert_int_equal(cfg_file_read(NULL, path, &data, &len), 0);
	assert_true(len > 20000);
	assert_int_equal(watch_end(), 0);
	explicit_bzero(data, len);
	free(data);
	unlink(path);
	rmdir(dir);
}

/* A tickets request parsed and freed by jansson: its parser's buffers and
 * strings go back wiped (wipe_json_init). */
static void test_json_request(void **state)
{
	static const char hex[] = "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0";
	char req[512];
	json_t *v;

	(void)state;
	wipe_json_init();
	snprintf(req, sizeof(req), "{\"cmd\":\"tickets\",\"keys\":[{\"name\":\"00\",\"hmac\":\"%s\","
		 "\"aes\":\"%s\"}]}", hex, hex);
	watch_for(hex, 32);
	v = json_loads(req, 0, NULL);
	assert_non_null(v);
	assert_string_equal(json_string_value(json_object_get(
		json_array_get(json_object_get(v, "keys"), 0), "aes")), hex);
	json_decref(v);
	assert_int_equal(watch_end(), 0);
	explicit_bzero(req, sizeof(req));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_checker_sees_a_leak),
		cmocka_unit_test(test_key_file_read),
		cmocka_unit_test(test_file_read_grows),
		cmocka_unit_test(test_json_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
