/*
 * The dataplane commands for ticket keys (docs/control.md), run on the
 * control thread:
 *
 *   tickets       {"keys": [{"name", "hmac", "aes" (hex), "not_before",
 *                 "not_after"}], newest first} -> {"n"}: the ring replaced
 *                 at once (tls_resume_push), the old keys wiped;
 *   tickets_show  {} -> {"source", "pushed_age_s", "file_errors", "keys": [{"name" (hex),
 *                 "age_s", "not_before", "not_after", "sealing"}]}: never
 *                 key material.
 *
 * The hex strings of a request are wiped in place once decoded: the
 * request is the control thread's and is freed after the answer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "clock.h"
#include "ctl.h"
#include "resume.h"

/* hex (2 * n digits, any case) into out; 0 or -1. */
static int hex_bytes(const char *hex, size_t len, unsigned char *out, size_t n)
{
	if (len != 2 * n)
		return -1;
	for (size_t i = 0; i < 2 * n; i++) {
		char ch = hex[i];
		int v = ch >= '0' && ch <= '9' ? ch - '0'
			: ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
			: ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;

		if (v < 0)
			return -1;
		out[i / 2] = (unsigned char)(i % 2 ? (out[i / 2] << 4) | v : v);
	}
	return 0;
}

/* Field f of key object o: hex of 16 or 32 bytes (16 only if just16) into
 * out; the byte count, or -1. The string is wiped after. */
static int key_field(json_t *o, const char *f, unsigned char *out, bool just16)
{
	json_t *s = json_object_get(o, f);
	size_t len;
	int rc = -1;

	if (!json_is_string(s))
		return -1;
	len = json_string_length(s);
	if (len == 32)
		rc = hex_bytes(json_string_value(s), len, out, 16) ? -1 : 16;
	else if (len == 64 && !just16)
		rc = hex_bytes(json_string_value(s), len, out, 32) ? -1 : 32;
	if (strcmp(f, "name"))
		OPENSSL_cleanse((char *)json_string_value(s), len);
	return rc;
}

int ctl_tickets(json_t *req, json_t *ans, char *err, size_t errlen)
{
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	json_t *arr = json_object_get(req, "keys"), *o;
	size_t i, n = json_array_size(arr);
	int rc = -EINVAL, len;

	memset(keys, 0, sizeof(keys));
	if (!json_is_array(arr) || n == 0 || n > TLS_TICKET_KEYS_MAX) {
		snprintf(err, errlen, "keys: an array of 1 to %d keys, newest first",
			 TLS_TICKET_KEYS_MAX);
		goto out;
	}
	json_array_foreach(arr, i, o) {
		struct tls_ticket_key *k = &keys[i];
		json_t *nb = json_object_get(o, "not_before"), *na = json_object_get(o, "not_after");

		if (!json_is_object(o) || key_field(o, "name", k->name, true) != 16) {
			snprintf(err, errlen, "keys[%zu].name: 32 hex digits", i);
			goto out;
		}
		if ((len = key_field(o, "hmac", k->hmac, false)) < 0) {
			snprintf(err, errlen, "keys[%zu].hmac: 32 or 64 hex digits", i);
			goto out;
		}
		k->hmac_len = (unsigned char)len;
		if ((len = key_field(o, "aes", k->aes, false)) < 0) {
			snprintf(err, errlen, "keys[%zu].aes: 32 or 64 hex digits", i);
			goto out;
		}
		k->aes_len = (unsigned char)len;
		if (!json_is_integer(nb) || !json_is_integer(na) || json_integer_value(na) < 0) {
			snprintf(err, errlen, "keys[%zu]: not_before and not_after are seconds "
				 "since the epoch (not_after 0: no end)", i);
			goto out;
		}
		k->not_before = json_integer_value(nb);
		k->not_after = json_integer_value(na);
	}
	if ((rc = tls_resume_push(keys, (unsigned)n, clock_real_s(), err, errlen)) == 0)
		json_object_set_new(ans, "n", json_integer((json_int_t)n));
out:
	/* Whatever was not decoded yet is wiped too. */
	json_array_foreach(arr, i, o) {
		json_t *h = json_object_get(o, "hmac"), *a = json_object_get(o, "aes");

		if (json_is_string(h))
			OPENSSL_cleanse((char *)json_string_value(h), json_string_length(h));
		if (json_is_string(a))
			OPENSSL_cleanse((char *)json_string_value(a), json_string_length(a));
	}
	OPENSSL_cleanse(keys, sizeof(keys));
	return rc;
}

int ctl_tickets_show(json_t *req, json_t *ans, char *err, size_t errlen)
{
	struct tls_ticket_info info[TLS_TICKET_KEYS_MAX];
	enum tls_ticket_source src;
	long long now = clock_real_s(), pushed;
	unsigned n = tls_resume_show(info, TLS_TICKET_KEYS_MAX, now, &src, &pushed);
	json_t *keys = json_array();
	char hex[33];

	(void)req;
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_object_set_new(ans, "source", json_string(tls_ticket_source_name(src)));
	json_object_set_new(ans, "pushed_age_s", pushed ? json_integer(now - pushed) : json_null());
	json_object_set_new(ans, "file_errors", json_integer((json_int_t)tls_resume_file_errors()));
	json_object_set_new(ans, "keys", keys);
	for (unsigned i = 0; i < n; i++) {
		json_t *o = json_object();

		for (unsigned j = 0; j < 16; j++)
			snprintf(hex + 2 * j, 3, "%02x", info[i].name[j]);
		json_object_set_new(o, "name", json_string(hex));
		json_object_set_new(o, "age_s", json_integer(now - info[i].not_before));
		json_object_set_new(o, "not_before", json_integer(info[i].not_before));
		json_object_set_new(o, "not_after", json_integer(info[i].not_after));
		json_object_set_new(o, "sealing", json_boolean(info[i].sealing));
		json_array_append_new(keys, o);
	}
	return 0;
}
