/*
 * control/impact: who would break, and what is refused, when a staged
 * configuration replaces the running one. The ClientHellos are real
 * (tests/unit/hellos/, recorded from openssl s_client once):
 *
 *   exchange-tls12-p256.bin  TLS 1.2 only, groups P-256 only, ECDSA+SHA256
 *                            and RSA+SHA256, ECDHE-ECDSA/RSA-AES128-GCM: a
 *                            Windows/Exchange sender's typical hello
 *   tls12-p256-p384.bin      the same offering P-384 and ECDSA+SHA384 too
 *   openssl-tls13.bin        OpenSSL 3.0's default (TLS 1.3)
 *
 * all three with SNI mx.example.net. The certificates are made here, in
 * memory, and reach tls_conf_load() through a cfg_files bundle.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "conf.h"
#include "files.h"
#include "control/impact.h"

static const char *hello_dir = "tests/unit/hellos";
static long long NOW;

/* ------------------------------------------------------------ fixtures --- */

/* A self-signed certificate of key kind ("p256", "p384", "rsa") for
 * names, valid from yesterday for days; PEM into *cert and *key. */
static void make_cert(const char *kind, const char *names, long days, char **cert, char **key)
{
	EVP_PKEY *k = !strcmp(kind, "rsa") ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
		    : EVP_PKEY_Q_keygen(NULL, NULL, "EC", !strcmp(kind, "p256") ? "P-256" : "P-384");
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	char san[256], first[128];
	BIO *b;
	BUF_MEM *m;

	assert_non_null(k);
	assert_non_null(x);
	snprintf(first, sizeof(first), "%s", names);
	first[strcspn(first, ",")] = 0;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
	X509_gmtime_adj(X509_getm_notBefore(x), -86400);
	X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)first, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	snprintf(san, sizeof(san), "DNS:%s", names);
	for (char *p = san; (p = strchr(p, ',')); p += 4) { /* "a,b" -> "DNS:a,DNS:b" */
		memmove(p + 5, p + 1, strlen(p + 1) + 1);
		memcpy(p, ",DNS:", 5);
	}
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);

	b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	BIO_get_mem_ptr(b, &m);
	*cert = strndup(m->data, m->length);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	BIO_get_mem_ptr(b, &m);
	*key = strndup(m->data, m->length);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* Put a certificate and its key under /t/NAME.pem and /t/NAME.key. */
static void put_cert(struct cfg_files *fb, const char *name, const char *kind,
		     const char *names, long days)
{
	char *c, *k, path[64];

	make_cert(kind, names, days, &c, &k);
	snprintf(path, sizeof(path), "/t/%s.pem", name);
	assert_int_equal(cfg_files_put(fb, path, c, strlen(c), 0644), 0);
	snprintf(path, sizeof(path), "/t/%s.key", name);
	assert_int_equal(cfg_files_put(fb, path, k, strlen(k), 0600), 0);
	free(c);
	free(k);
}

/*
 * A configuration: listener smtp with policy (and, when rule is not NULL,
 * "NETWORK POLICY" for policy_by_network) answering with cert set mx,
 * names set_names, of the certificates certs ("a b": /t/a.pem, /t/b.pem).
 */
static void load_conf(struct tls_conf *tc, struct cfg_files *fb, const char *set_names,
		      const char *certs, const char *policy, const char *rule)
{
	char yaml[4096], list[1024] = "", net[64] = "", rpol[32] = "", err[512];
	char tmp[256], *save = NULL;
	size_t o = 0;
	int n;

	snprintf(tmp, sizeof(tmp), "%s", certs);
	for (char *c = strtok_r(tmp, " ", &save); c; c = strtok_r(NULL, " ", &save))
		o += (size_t)snprintf(list + o, sizeof(list) - o,
				      "      - {cert: /t/%s.pem, key: /t/%s.key}\n", c, c);
	if (rule)
		sscanf(rule, "%63s %31s", net, rpol);
	n = snprintf(yaml, sizeof(yaml),
		     "hostname: t.example\n"
		     "backends:\n"
		     "  - {name: pf, protocol: smtp, servers: [127.0.0.1:10026]}\n"
		     "cert_sets:\n"
		     "  - name: mx\n"
		     "    names: [%s]\n"
		     "    certs:\n%s"
		     "listeners:\n"
		     "  - name: smtp\n"
		     "    address: 127.0.0.1:2525\n"
		     "    protocol: smtp\n"
		     "    tls: starttls\n"
		     "    backend: pf\n"
		     "    cert_sets: [mx]\n"
		     "    policy: %s\n"
		     "%s%s%s%s%s",
		     set_names, list, policy,
		     rule ? "    policy_by_network:\n      - networks: [" : "", rule ? net : "",
		     rule ? "]\n        policy: " : "", rule ? rpol : "", rule ? "\n" : "");
	assert_true(n > 0 && (size_t)n < sizeof(yaml));
	if (tls_conf_load(yaml, (size_t)n, "test.yaml", fb, tc, err, sizeof(err)) < 0)
		fail_msg("tls_conf_load: %s\n%s", err, yaml);
}

/* The hex of a recorded hello. */
static char *hello_hex(const char *name)
{
	char path[512];
	uint8_t b[8192];
	size_t n;
	FILE *f;
	char *hex;

	snprintf(path, sizeof(path), "%s/%s", hello_dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	n = fread(b, 1, sizeof(b), f);
	fclose(f);
	hex = malloc(2 * n + 1);
	for (size_t i = 0; i < n; i++)
		sprintf(hex + 2 * i, "%02x", b[i]);
	hex[2 * n] = 0;
	return hex;
}

/* A row of a `hellos` answer: the recorded hello file, count, client,
 * last seen ago seconds before NOW. */
static void add_row(json_t *arr, const char *file, const char *ja4, long long count,
		    const char *client, long long ago)
{
	char *hex = hello_hex(file);

	json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I}",
		"listener", "smtp", "ja4", ja4, "hello", hex, "client", client,
		"count", (json_int_t)count, "ok", (json_int_t)count, "fail", (json_int_t)0,
		"first_seen", (json_int_t)(NOW - ago - 3600), "last_seen", (json_int_t)(NOW - ago)));
	free(hex);
}

/* The three recorded clients, as the dataplane answers `hellos`. */
static json_t *three_clients(void)
{
	json_t *ans = json_object(), *arr = json_array();

	add_row(arr, "exchange-tls12-p256.bin", "exchange", 41, "192.0.2.7:4711", 60);
	add_row(arr, "tls12-p256-p384.bin", "p384ok", 5, "198.51.100.9:5000", 120);
	add_row(arr, "openssl-tls13.bin", "modern", 10, "203.0.113.5:6000", 30);
	json_object_set_new(ans, "ok", json_true());
	json_object_set_new(ans, "hellos", arr);
	return ans;
}

static size_t count_kind(const json_t *arr, const char *key, const char *value)
{
	size_t i, n = 0;
	const json_t *o;

	json_array_foreach(arr, i, o)
		if (!strcmp(json_string_value(json_object_get(o, key)) ?: "", value))
			n++;
	return n;
}

static char *printed(const json_t *r, bool fingerprints)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (fingerprints)
		impact_fingerprints_print(f, r);
	else
		impact_print(f, r);
	fclose(f);
	return buf;
}

struct world {
	struct cfg_files fb;
	struct tls_conf now, staged;
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));

	put_cert(&w->fb, "p256", "p256", "mx.example.net", 365);
	put_cert(&w->fb, "rsa", "rsa", "mx.example.net", 365);
	put_cert(&w->fb, "p384", "p384", "mx.example.net", 365);
	put_cert(&w->fb, "p384soon", "p384", "mx.example.net", 5);
	put_cert(&w->fb, "other", "p256", "other.example.net", 365);
	load_conf(&w->now, &w->fb, "mx.example.net", "p256 rsa", "intermediate", NULL);
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	tls_conf_free(&w->now);
	tls_conf_free(&w->staged);
	cfg_files_clear(&w->fb);
	free(w);
	return 0;
}

/* ---------------------------------------------------------------- tests --- */

/* The scenario: P-256 + RSA now, P-384 only staged. The Exchange
 * hello (P-256 only, TLS 1.2) breaks; the P-384 and TLS 1.3 ones do not. */
static void p384_only_breaks_the_p256_only_client(void **state)
{
	struct world *w = *state;
	json_t *hellos = three_clients(), *r, *b, *s;
	char *text;

	load_conf(&w->staged, &w->fb, "mx.example.net", "p384", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_non_null(r);
	assert_false(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 1);
	b = json_array_get(json_object_get(r, "breaks"), 0);
	assert_string_equal(json_string_value(json_object_get(b, "ja4")), "exchange");
	assert_string_equal(json_string_value(json_object_get(b, "listener")), "smtp");
	assert_int_equal(json_integer_value(json_object_get(b, "count")), 41);
	assert_string_equal(json_string_value(json_array_get(json_object_get(b, "clients"), 0)),
			    "192.0.2.7:4711");
	assert_string_equal(json_string_value(json_object_get(b, "rule")), "ecdsa_curve_not_offered");
	assert_non_null(strstr(json_string_value(json_object_get(b, "reason")), "secp256r1"));
	assert_non_null(strstr(json_string_value(json_object_get(b, "explain")), "ecdsa-p384"));
	assert_int_equal(json_array_size(json_object_get(r, "refusals")), 0);
	/* P-256 and RSA removed, P-384 added. */
	assert_int_equal(count_kind(json_object_get(r, "changes"), "change", "removed"), 2);
	assert_int_equal(count_kind(json_object_get(r, "changes"), "change", "added"), 1);
	json_decref(r);
	tls_conf_free(&w->staged);

	/* P-256 alone now, P-384 alone staged: a renewal that changed curve,
	 * one replacement; the Exchange client still breaks. */
	tls_conf_free(&w->now);
	load_conf(&w->now, &w->fb, "mx.example.net", "p256", "intermediate", NULL);
	load_conf(&w->staged, &w->fb, "mx.example.net", "p384", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_int_equal(json_array_size(json_object_get(r, "changes")), 1);
	b = json_array_get(json_object_get(r, "changes"), 0);
	assert_string_equal(json_string_value(json_object_get(b, "change")), "replaced");
	assert_string_equal(json_string_value(json_object_get(b, "key")), "ecdsa-p256 -> ecdsa-p384");
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 1);
	s = json_array_get(json_object_get(r, "summary"), 0);
	assert_non_null(s);
	assert_non_null(strstr(json_string_value(json_object_get(s, "line")),
			       "1 fingerprint, 41 handshakes in the last 24 h, would get no certificate: "));
	text = printed(r, false);
	if (getenv("IMPACT_SHOW")) fputs(text, stderr);
	assert_non_null(strstr(text, "BREAKS listener smtp: 1 fingerprint, 41 handshakes"));
	assert_non_null(strstr(text, "not ok"));
	free(text);
	json_decref(r);
	json_decref(hellos);
}

/* Two fingerprints that fail for the same reason are one summary line;
 * counts add up. */
static void same_reason_is_one_line(void **state)
{
	struct world *w = *state;
	json_t *arr = json_array(), *r, *s;

	add_row(arr, "exchange-tls12-p256.bin", "exchange-a", 30, "192.0.2.7:4711", 60);
	add_row(arr, "exchange-tls12-p256.bin", "exchange-b", 11, "192.0.2.8:4711", 60);
	add_row(arr, "exchange-tls12-p256.bin", "exchange-c", 7, "192.0.2.9:4711", 60);
	load_conf(&w->staged, &w->fb, "mx.example.net", "p384", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, arr, NOW, 86400, 14);
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 3);
	assert_int_equal(json_array_size(json_object_get(r, "summary")), 1);
	s = json_array_get(json_object_get(r, "summary"), 0);
	assert_int_equal(json_integer_value(json_object_get(s, "fingerprints")), 3);
	assert_int_equal(json_integer_value(json_object_get(s, "handshakes")), 48);
	assert_non_null(strstr(json_string_value(json_object_get(s, "line")),
			       "listener smtp: 3 fingerprints, 48 handshakes in the last 24 h, "
			       "would get no certificate: the client offers only secp256r1"));
	json_decref(r);
	json_decref(arr);
}

/* The same configuration again: no change, nothing breaks, ok. */
static void same_configuration_is_ok(void **state)
{
	struct world *w = *state;
	json_t *hellos = three_clients(), *r;

	load_conf(&w->staged, &w->fb, "mx.example.net", "p256 rsa", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 0);
	assert_int_equal(json_array_size(json_object_get(r, "changes")), 0);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "checked"),
							    "fingerprints")), 3);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "checked"),
							    "handshakes")), 56);
	json_decref(r);
	json_decref(hellos);
}

/* Adding P-384 beside what serves today breaks no one. */
static void adding_a_certificate_breaks_no_one(void **state)
{
	struct world *w = *state;
	json_t *hellos = three_clients(), *r;

	load_conf(&w->staged, &w->fb, "mx.example.net", "p256 rsa p384", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_true(json_is_true(json_object_get(r, "ok")));
	assert_int_equal(count_kind(json_object_get(r, "changes"), "change", "added"), 1);
	json_decref(r);
	json_decref(hellos);
}

/* A new certificate that ends in 5 days: refused within 14 days' margin,
 * not with margin 0 (the P-256 client still breaks: not ok either way). */
static void certificate_within_margin_is_refused(void **state)
{
	struct world *w = *state;
	json_t *hellos = three_clients(), *r, *x;

	load_conf(&w->staged, &w->fb, "mx.example.net", "p384soon rsa", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_int_equal(json_array_size(json_object_get(r, "refusals")), 1);
	x = json_array_get(json_object_get(r, "refusals"), 0);
	assert_string_equal(json_string_value(json_object_get(x, "kind")), "expires_soon");
	assert_string_equal(json_string_value(json_object_get(x, "cert")), "ecdsa-p384");
	assert_true(json_integer_value(json_object_get(x, "days")) <= 5);
	/* RSA stays: every client still gets a certificate. */
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 0);
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 0);
	assert_int_equal(json_array_size(json_object_get(r, "refusals")), 0);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	json_decref(hellos);
}

/* A set renamed to other.example.net: mx.example.net, configured and seen,
 * is covered by no certificate after. */
static void names_no_longer_covered_are_refused(void **state)
{
	struct world *w = *state;
	json_t *hellos = three_clients(), *r, *x;
	size_t i;
	bool seen = false;

	load_conf(&w->staged, &w->fb, "other.example.net", "other", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_int_equal(count_kind(json_object_get(r, "refusals"), "kind", "name_not_covered"), 1);
	json_array_foreach(json_object_get(r, "refusals"), i, x)
		if (!strcmp(json_string_value(json_object_get(x, "name")), "mx.example.net")) {
			seen = true;
			/* the seen SNI of all three fingerprints: 41 + 5 + 10 */
			assert_int_equal(json_integer_value(json_object_get(x, "handshakes")), 56);
		}
	assert_true(seen);
	assert_false(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	json_decref(hellos);
}

/* policy stage: modern for everyone but 192.0.2.0/24 (intermediate). The
 * TLS 1.2 client at 192.0.2.7 keeps working; the one at 198.51.100.9
 * breaks (TLS 1.2 is too old for modern); the TLS 1.3 one does not. */
static void policy_by_network_decides_per_client(void **state)
{
	struct world *w = *state;
	json_t *hellos = three_clients(), *r, *b, *c;

	load_conf(&w->staged, &w->fb, "mx.example.net", "p256 rsa", "modern",
		  "192.0.2.0/24 intermediate");
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 1);
	b = json_array_get(json_object_get(r, "breaks"), 0);
	assert_string_equal(json_string_value(json_object_get(b, "ja4")), "p384ok");
	assert_string_equal(json_string_value(json_object_get(b, "policy_after")), "modern");
	assert_string_equal(json_string_value(json_object_get(b, "rule")), "version_too_old");
	c = json_array_get(json_object_get(r, "changes"), 0);
	assert_string_equal(json_string_value(json_object_get(c, "what")), "policy");
	assert_string_equal(json_string_value(json_object_get(c, "new")), "modern");
	json_decref(r);
	json_decref(hellos);

	/* One fingerprint from both networks ("clients", as the dataplane
	 * keeps the last distinct addresses): only the outside one breaks. */
	hellos = json_array();
	add_row(hellos, "exchange-tls12-p256.bin", "exchange", 41, "192.0.2.7:4711", 60);
	json_object_set_new(json_array_get(hellos, 0), "clients",
			    json_pack("[s, s, s]", "192.0.2.7", "2001:db8::25", "192.0.2.99"));
	r = impact_check(&w->now, &w->staged, hellos, NOW, 86400, 14);
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 1);
	c = json_object_get(json_array_get(json_object_get(r, "breaks"), 0), "clients");
	assert_int_equal(json_array_size(c), 1);
	assert_string_equal(json_string_value(json_array_get(c, 0)), "2001:db8::25");
	json_decref(r);
	json_decref(hellos);
}

/* Rows last seen before the window are not looked at. */
static void window_leaves_old_hellos_out(void **state)
{
	struct world *w = *state;
	json_t *arr = json_array(), *r;

	add_row(arr, "exchange-tls12-p256.bin", "exchange", 41, "192.0.2.7:4711", 3 * 86400);
	load_conf(&w->staged, &w->fb, "mx.example.net", "p384", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, arr, NOW, 86400, 14);
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 0);
	assert_true(json_is_true(json_object_get(r, "ok")));
	json_decref(r);
	r = impact_check(&w->now, &w->staged, arr, NOW, 7 * 86400, 14);
	assert_int_equal(json_array_size(json_object_get(r, "breaks")), 1);
	assert_non_null(strstr(json_string_value(json_object_get(
		json_array_get(json_object_get(r, "summary"), 0), "line")), "in the last 7 d"));
	json_decref(r);
	json_decref(arr);
}

/* Bad rows (not hex, cut, empty, not objects) are counted, never fatal. */
static void bad_rows_are_counted(void **state)
{
	struct world *w = *state;
	json_t *arr = json_array(), *r;
	char *hex = hello_hex("exchange-tls12-p256.bin");

	hex[40] = 0; /* cut */
	json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "listener", "smtp",
					     "hello", hex, "last_seen", (json_int_t)NOW));
	json_array_append_new(arr, json_pack("{s:s, s:s, s:I}", "listener", "smtp",
					     "hello", "zz", "last_seen", (json_int_t)NOW));
	json_array_append_new(arr, json_pack("{s:s, s:I}", "listener", "smtp",
					     "last_seen", (json_int_t)NOW));
	json_array_append_new(arr, json_string("not a row"));
	free(hex);
	load_conf(&w->staged, &w->fb, "mx.example.net", "p384", "intermediate", NULL);
	r = impact_check(&w->now, &w->staged, arr, NOW, 86400, 14);
	assert_non_null(r);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "checked"),
							    "unparsed")), 3);
	json_decref(r);
	r = impact_check(&w->now, &w->staged, json_null(), NOW, 86400, 14);
	assert_non_null(r);
	json_decref(r);
	json_decref(arr);
}

/* sluicectl fingerprints: each fingerprint under each policy. */
static void fingerprint_report(void **state)
{
	struct world *w = *state;
	json_t *hellos = three_clients(), *r, *f, *x;
	size_t i;
	char *text;

	r = impact_fingerprints(&w->now, hellos, NOW);
	assert_non_null(r);
	f = json_object_get(r, "fingerprints");
	assert_int_equal(json_array_size(f), 3);
	json_array_foreach(f, i, x) {
		const json_t *v = json_object_get(x, "verdicts");
		const char *ja4 = json_string_value(json_object_get(x, "ja4"));

		assert_string_equal(json_string_value(json_object_get(x, "policy")), "intermediate");
		assert_string_equal(json_string_value(json_object_get(v, "intermediate")), "ok");
		assert_string_equal(json_string_value(json_object_get(v, "legacy")), "ok");
		assert_string_equal(json_string_value(json_object_get(v, "modern")),
				    !strcmp(ja4, "modern") ? "ok" : "version_too_old");
		assert_null(json_object_get(x, "reason"));
	}
	text = printed(r, true);
	if (getenv("IMPACT_SHOW")) fputs(text, stderr);
	assert_non_null(strstr(text, "smtp exchange sni=mx.example.net TLS 1.2 count=41"));
	assert_non_null(strstr(text, "clients 192.0.2.7:4711\n"));
	free(text);
	json_decref(r);
	json_decref(hellos);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(p384_only_breaks_the_p256_only_client, setup, teardown),
		cmocka_unit_test_setup_teardown(same_reason_is_one_line, setup, teardown),
		cmocka_unit_test_setup_teardown(same_configuration_is_ok, setup, teardown),
		cmocka_unit_test_setup_teardown(adding_a_certificate_breaks_no_one, setup, teardown),
		cmocka_unit_test_setup_teardown(certificate_within_margin_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(names_no_longer_covered_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(policy_by_network_decides_per_client, setup, teardown),
		cmocka_unit_test_setup_teardown(window_leaves_old_hellos_out, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_rows_are_counted, setup, teardown),
		cmocka_unit_test_setup_teardown(fingerprint_report, setup, teardown),
	};

	if (argc > 1)
		hello_dir = argv[1];
	NOW = (long long)time(NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
