/*
 * tls/policy against a real OpenSSL, and tls/certsel against real
 * handshakes.
 *
 *   - each policy applied to an SSL_CTX of a fresh OSSL_LIB_CTX offers
 *     exactly the suites its code points list, in that order, and exactly
 *     its groups; its version range and security level are what it says;
 *   - every name of the suite, group and signature scheme tables is one
 *     OpenSSL knows, with the code point the table gives;
 *   - a policy OpenSSL refuses gives -EINVAL and the reason;
 *   - in-process handshakes (memory BIOs, no network) of generated OpenSSL
 *     clients against a server holding one certificate under each policy:
 *     the client's ClientHello goes through hello_parse and certsel, and
 *     certsel's verdict (works or not; version, suite, group, signature)
 *     must be what the handshake did, and its rule must name the reason
 *     OpenSSL gave.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "certsel.h"
#include "hello.h"
#include "policy.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static OSSL_LIB_CTX *libctx;

static int setup(void **state)
{
	(void)state;
	libctx = OSSL_LIB_CTX_new();
	return libctx ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	OSSL_LIB_CTX_free(libctx);
	return 0;
}

static SSL_CTX *server_ctx(const struct policy *p)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
	char why[256];

	assert_non_null(ctx);
	if (policy_apply(ctx, p, why, sizeof(why)))
		fail_msg("%s", why);
	return ctx;
}

/* ------------------------------------------------------------- tables --- */

static void test_policies_offer_their_table(void **state)
{
	unsigned i, k;

	(void)state;
	for (i = 0; i < POLICY_COUNT; i++) {
		const struct policy *p = policy_get(i);
		SSL_CTX *ctx = server_ctx(p);
		SSL *s = SSL_new(ctx);
		STACK_OF(SSL_CIPHER) *sk;

		assert_non_null(s);
		assert_ptr_equal(policy_by_name(p->name), p);
		assert_int_equal(SSL_CTX_get_min_proto_version(ctx), p->min_version);
		assert_int_equal(SSL_CTX_get_max_proto_version(ctx), p->max_version);
		assert_int_equal(SSL_CTX_get_security_level(ctx), p->seclevel);
		assert_true(SSL_CTX_get_options(ctx) & SSL_OP_CIPHER_SERVER_PREFERENCE);
		assert_true(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);

		/* what a client can get: the version range and the security
		 * level applied */
		sk = SSL_get1_supported_ciphers(s);
		assert_non_null(sk);
		if ((unsigned)sk_SSL_CIPHER_num(sk) != p->n_suites)
			print_message("policy %s: OpenSSL offers %d suites, the table %u\n",
				      p->name, sk_SSL_CIPHER_num(sk), p->n_suites);
		assert_int_equal(sk_SSL_CIPHER_num(sk), p->n_suites);
		for (k = 0; k < p->n_suites; k++) {
			const SSL_CIPHER *c = sk_SSL_CIPHER_value(sk, (int)k);

			assert_int_equal(SSL_CIPHER_get_protocol_id(c), p->suites[k]);
			assert_string_equal(SSL_CIPHER_get_name(c), policy_suite(p->suites[k])->ossl);
		}
		sk_SSL_CIPHER_free(sk);

		/* Every signature scheme of the string is the code point listed. */
		{
			char buf[1024], *save = NULL, *t;

			snprintf(buf, sizeof(buf), "%s", p->sigalgs);
			k = 0;
			for (t = strtok_r(buf, ":", &save); t; t = strtok_r(NULL, ":", &save), k++) {
				assert_true(k < p->n_sigalgs);
				assert_string_equal(t, policy_sigalg(p->sigalg_ids[k])->ossl);
			}
			assert_int_equal(k, p->n_sigalgs);
		}
		SSL_free(s);
		SSL_CTX_free(ctx);
	}
}

/* Each name of the tables is OpenSSL's, with the table's code point;
 * the suites this OpenSSL lacks are the ones the table says no policy has. */
static void test_names_are_openssls(void **state)
{
	const struct policy_suite *s;
	const struct policy_sigalg *sa;
	const struct policy_group *g;
	unsigned n, i, k;

	(void)state;
	s = policy_suites(&n);
	for (i = 0; i < n; i++) {
		SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
		char list[128];
		int ok;

		if (s[i].min_version == TLSV_1_3) {
			ok = SSL_CTX_set_ciphersuites(ctx, s[i].ossl);
		} else {
			snprintf(list, sizeof(list), "%s:@SECLEVEL=0", s[i].ossl);
			ok = SSL_CTX_set_cipher_list(ctx, list);
		}
		ERR_clear_error();
		if (!ok) {
			/* 3DES and RC4: compiled out; then no policy may list it */
			for (k = 0; k < POLICY_COUNT; k++)
				assert_false(policy_has_suite(policy_get(k), s[i].id));
			print_message("# not in this OpenSSL: %s\n", s[i].ossl);
		} else {
			STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(ctx);
			const SSL_CIPHER *c = NULL;
			int j;

			for (j = 0; j < sk_SSL_CIPHER_num(sk); j++)
				if (!strcmp(SSL_CIPHER_get_name(sk_SSL_CIPHER_value(sk, j)), s[i].ossl))
					c = sk_SSL_CIPHER_value(sk, j);
			assert_non_null(c);
			assert_int_equal(SSL_CIPHER_get_protocol_id(c), s[i].id);
			assert_string_equal(SSL_CIPHER_standard_name(c), s[i].iana);
			assert_int_equal(SSL_CIPHER_get_bits(c, NULL), s[i].bits);
			assert_int_equal(SSL_CIPHER_is_aead(c), s[i].aead);
		}
		SSL_CTX_free(ctx);
	}
	g = policy_groups(&n);
	for (i = 0; i < n; i++) {
		SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());

		assert_int_equal(SSL_CTX_set1_groups_list(ctx, g[i].ossl), 1);
		SSL_CTX_free(ctx);
	}
	sa = policy_sigalgs(&n);
	for (i = 0; i < n; i++) {
		SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());

		assert_int_equal(SSL_CTX_set1_sigalgs_list(ctx, sa[i].ossl), 1);
		SSL_CTX_free(ctx);
	}
}

static void test_bad_policy(void **state)
{
	struct policy p = *policy_get(POLICY_INTERMEDIATE);
	SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
	char why[256];

	(void)state;
	p.ciphers = "ECDHE-RSA-AES129-GCM-SHA256";
	assert_int_equal(policy_apply(ctx, &p, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "policy intermediate: SSL_CTX_set_cipher_list: no cipher match");
	p = *policy_get(POLICY_INTERMEDIATE);
	p.groups = "X25519:P-255";
	assert_int_equal(policy_apply(ctx, &p, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "policy intermediate: SSL_CTX_set1_groups_list: "));
	assert_int_equal(ERR_peek_error(), 0);
	SSL_CTX_free(ctx);
}

/* ------------------------------------------------------- handshakes --- */

/* A certificate for the server and what certsel is told of it. */
struct shape {
	const char *label, *alg, *param;
	size_t bits;
	struct certsel_cert desc;
	EVP_PKEY *key;
	X509 *x;
};

static struct shape shapes[] = {
	{ .label = "rsa-2048", .alg = "RSA", .param = NULL, .bits = 2048, .desc = { .key = CERTSEL_KEY_RSA, .bits = 2048, .issuer_sig = 0x0401 } },
	{ .label = "ecdsa-p256", .alg = "EC", .param = "P-256", .bits = 0, .desc = { .key = CERTSEL_KEY_P256, .issuer_sig = 0x0403 } },
	{ .label = "ecdsa-p384", .alg = "EC", .param = "P-384", .bits = 0, .desc = { .key = CERTSEL_KEY_P384, .issuer_sig = 0x0403 } },
	{ .label = "ed25519", .alg = "ED25519", .param = NULL, .bits = 0, .desc = { .key = CERTSEL_KEY_ED25519, .issuer_sig = 0x0807 } },
	{ .label = "rsa-1024", .alg = "RSA", .param = NULL, .bits = 1024, .desc = { .key = CERTSEL_KEY_RSA, .bits = 1024, .issuer_sig = 0x0401 } },
};

/* A self-signed certificate for each shape. */
static void make_shapes(void)
{
	unsigned i;

	for (i = 0; i < ARRAY_SIZE(shapes); i++) {
		struct shape *s = &shapes[i];
		X509_NAME *name;

		if (s->x)
			continue;
		s->key = s->param ? EVP_PKEY_Q_keygen(libctx, NULL, s->alg, s->param)
			 : s->bits ? EVP_PKEY_Q_keygen(libctx, NULL, s->alg, s->bits)
				   : EVP_PKEY_Q_keygen(libctx, NULL, s->alg);
		assert_non_null(s->key);
		s->x = X509_new_ex(libctx, NULL);
		ASN1_INTEGER_set(X509_get_serialNumber(s->x), (long)i + 1);
		X509_set_version(s->x, 2);
		X509_gmtime_adj(X509_getm_notBefore(s->x), -3600);
		X509_gmtime_adj(X509_getm_notAfter(s->x), 86400);
		X509_set_pubkey(s->x, s->key);
		name = X509_get_subject_name(s->x);
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					   (const unsigned char *)"mail.example.com", -1, -1, 0);
		X509_set_issuer_name(s->x, name);
		assert_true(X509_sign(s->x, s->key, strcmp(s->alg, "ED25519") ? EVP_sha256() : NULL) > 0);
		s->desc.label = s->label;
		s->desc.self_signed = true;
	}
}

/* A client, as openssl s_client options. */
struct client {
	int minv, maxv;
	const char *ciphers, *suites13, *groups, *sigalgs;
};

static const char *const c_ciphers[] = {
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256",
	"ECDHE-ECDSA-AES256-GCM-SHA384:AES128-GCM-SHA256",
	"ECDHE-RSA-AES128-SHA:AES128-SHA",
	"AES128-SHA:AES256-SHA",
	"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA",
	"DHE-RSA-AES128-SHA",
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
	"ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256",
};
static const char *const c_suites13[] = {
	"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
	"TLS_AES_128_CCM_SHA256",
};
static const char *const c_groups[] = {
	"P-256", "X25519:P-256", "P-384", "X448", "X25519", "P-521:P-384", "ffdhe2048",
	"X448:P-256", "P-256:P-384:P-521",
};
static const char *const c_sigalgs[] = {
	"ecdsa_secp256r1_sha256:rsa_pss_rsae_sha256", "ecdsa_secp384r1_sha384",
	"rsa_pkcs1_sha256", "ed25519:rsa_pss_rsae_sha256", "ECDSA+SHA256:RSA+SHA256",
	"rsa_pss_rsae_sha256", NULL, "ECDSA+SHA1:RSA+SHA1", "ecdsa_secp521r1_sha512:ed25519",
};
static const int c_versions[][2] = {
	{ TLS1_3_VERSION, TLS1_3_VERSION }, { TLS1_2_VERSION, TLS1_2_VERSION },
	{ TLS1_2_VERSION, TLS1_3_VERSION }, { TLS1_VERSION, TLS1_VERSION },
	{ TLS1_VERSION, TLS1_2_VERSION }, { TLS1_1_VERSION, TLS1_1_VERSION },
};

/* A small fixed generator: the same clients every run. */
static unsigned rnd(unsigned *seed, unsigned n)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) % n;
}

static SSL_CTX *client_ctx(const struct client *c)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_client_method());
	char list[256];

	assert_non_null(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_min_proto_version(ctx, c->minv);
	SSL_CTX_set_max_proto_version(ctx, c->maxv);
	snprintf(list, sizeof(list), "%s:@SECLEVEL=0", c->ciphers);
	assert_int_equal(SSL_CTX_set_cipher_list(ctx, list), 1);
	assert_int_equal(SSL_CTX_set_ciphersuites(ctx, c->suites13), 1);
	assert_int_equal(SSL_CTX_set1_groups_list(ctx, c->groups), 1);
	if (c->sigalgs)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(ctx, c->sigalgs), 1);
	return ctx;
}

/* Move what one side wrote to the other. */
static void pump(BIO *from, BIO *to)
{
	char buf[16384];
	int n;

	while ((n = BIO_read(from, buf, sizeof(buf))) > 0)
		assert_int_equal(BIO_write(to, buf, n), n);
}

struct outcome {
	bool ok;
	uint16_t version, suite, group;
	int sig_type, sig_md;
	char reason[128];
};

static uint16_t group_of_nid(int nid)
{
	switch (nid) {
	case NID_X9_62_prime256v1: return 0x0017;
	case NID_secp384r1:        return 0x0018;
	case NID_secp521r1:        return 0x0019;
	case NID_X25519:           return 0x001d;
	case NID_X448:             return 0x001e;
	case NID_ffdhe2048:        return 0x0100;
	}
	return 0;
}

/*
 * Handshake client c against a server with shape s under policy p; the
 * first ClientHello's bytes into hello[0, *hlen). Returns false if the
 * client sent none (its own settings forbid it).
 */
static bool handshake(const struct client *c, struct shape *s, const struct policy *p,
		      uint8_t *hello, size_t *hlen, struct outcome *o)
{
	SSL_CTX *cctx = client_ctx(c), *sctx = server_ctx(p);
	SSL *cl = SSL_new(cctx), *sv = SSL_new(sctx);
	BIO *c_in = BIO_new(BIO_s_mem()), *c_out = BIO_new(BIO_s_mem());
	BIO *s_in = BIO_new(BIO_s_mem()), *s_out = BIO_new(BIO_s_mem());
	bool sent = false, loaded;
	int i, rc;

	memset(o, 0, sizeof(*o));
	ERR_clear_error();
	loaded = SSL_use_certificate(sv, s->x) == 1 && SSL_use_PrivateKey(sv, s->key) == 1;
	if (!loaded)
		snprintf(o->reason, sizeof(o->reason), "%s", ERR_reason_error_string(ERR_peek_error()));
	ERR_clear_error();
	SSL_set_bio(cl, c_in, c_out);
	SSL_set_bio(sv, s_in, s_out);
	SSL_set_connect_state(cl);
	SSL_set_accept_state(sv);
	SSL_set_tlsext_host_name(cl, "mail.example.com");

	for (i = 0; i < 20 && loaded; i++) {
		rc = SSL_do_handshake(cl);
		if (rc <= 0 && SSL_get_error(cl, rc) != SSL_ERROR_WANT_READ)
			break;
		if (!sent) {
			int n = (int)BIO_ctrl_pending(c_out);

			if (n <= 0)
				break;
			assert_true((size_t)n <= *hlen);
			assert_int_equal(BIO_read(c_out, hello, n), n);
			*hlen = (size_t)n;
			BIO_write(s_in, hello, n);
			sent = true;
		} else {
			pump(c_out, s_in);
		}
		ERR_clear_error();
		rc = SSL_do_handshake(sv);
		if (rc <= 0 && SSL_get_error(sv, rc) != SSL_ERROR_WANT_READ) {
			const char *r = ERR_reason_error_string(ERR_peek_error());

			snprintf(o->reason, sizeof(o->reason), "%s", r ? r : "?");
			break;
		}
		pump(s_out, c_in);
		if (rc == 1) {
			rc = SSL_do_handshake(cl);
			o->ok = rc == 1;
			break;
		}
	}
	if (!loaded) {
		/* The server cannot even hold this certificate: let the
		 * caller compare the reason; the hello is any from this client. */
		SSL *probe = SSL_new(cctx);
		BIO *pi = BIO_new(BIO_s_mem()), *po = BIO_new(BIO_s_mem());
		int n;

		SSL_set_bio(probe, pi, po);
		SSL_set_tlsext_host_name(probe, "mail.example.com");
		SSL_connect(probe);
		n = (int)BIO_ctrl_pending(po);
		if (n > 0 && (size_t)n <= *hlen) {
			BIO_read(po, hello, n);
			*hlen = (size_t)n;
			sent = hello[0] == 22;  /* not an alert: the client had a hello */
		}
		SSL_free(probe);
	}
	if (o->ok) {
		o->version = (uint16_t)SSL_version(sv);
		o->suite = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(sv));
		o->group = group_of_nid(SSL_get_negotiated_group(sv));
		if (!SSL_get_peer_signature_type_nid(cl, &o->sig_type))
			o->sig_type = 0;
		if (!SSL_get_peer_signature_nid(cl, &o->sig_md))
			o->sig_md = 0;
	}
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
	return sent;
}

/* The (key type, digest) NIDs OpenSSL reports for a scheme. */
static void sig_nids(uint16_t id, int *type, int *md)
{
	const struct policy_sigalg *s = policy_sigalg(id);
	static const int mds[] = { [POLICY_HASH_NONE] = NID_undef, [POLICY_HASH_SHA1] = NID_sha1,
		[POLICY_HASH_SHA224] = NID_sha224, [POLICY_HASH_SHA256] = NID_sha256,
		[POLICY_HASH_SHA384] = NID_sha384, [POLICY_HASH_SHA512] = NID_sha512 };

	if (id == CERTSEL_SIG_RSA_MD5_SHA1) {
		*type = EVP_PKEY_RSA;
		*md = NID_md5_sha1;
		return;
	}
	assert_non_null(s);
	*md = mds[s->hash];
	*type = s->family == POLICY_SIG_RSA ? EVP_PKEY_RSA : s->family == POLICY_SIG_PSS_RSAE ?
		EVP_PKEY_RSA_PSS : s->family == POLICY_SIG_ECDSA ? EVP_PKEY_EC : EVP_PKEY_ED25519;
}

/* Whether OpenSSL's reason is one the rule names ("a|b"). */
static bool reason_matches(enum certsel_rule r, const char *reason)
{
	const char *alts = certsel_rule_openssl(r);
	size_t l = strlen(reason);

	while (*alts) {
		size_t k = strcspn(alts, "|");

		if (k == l && !strncmp(alts, reason, l))
			return true;
		alts += k;
		alts += *alts == '|';
	}
	return false;
}

static void test_handshakes_agree(void **state)
{
	unsigned seed = 20261122, i, k, si, runs = 0, ok = 0, failed = 0, mismatches = 0;
	uint8_t hello_bytes[8192];

	(void)state;
	make_shapes();
	for (i = 0; i < 400; i++) {
		const int *v = c_versions[rnd(&seed, ARRAY_SIZE(c_versions))];
		struct client c = {
			v[0], v[1],
			c_ciphers[rnd(&seed, ARRAY_SIZE(c_ciphers))],
			c_suites13[rnd(&seed, ARRAY_SIZE(c_suites13))],
			c_groups[rnd(&seed, ARRAY_SIZE(c_groups))],
			c_sigalgs[rnd(&seed, ARRAY_SIZE(c_sigalgs))],
		};

		for (k = 0; k < POLICY_COUNT; k++) {
			for (si = 0; si < ARRAY_SIZE(shapes); si++) {
				const struct policy *p = policy_get(k);
				struct outcome o;
				struct hello h;
				struct certsel_verdict vd;
				size_t hl = sizeof(hello_bytes);
				const struct certsel_result *r;
				bool agree;

				if (!handshake(&c, &shapes[si], p, hello_bytes, &hl, &o))
					continue;
				if (hello_parse(hello_bytes, hl, &h, NULL) != HELLO_OK) {
					char why[256];

					hello_explain(&h, why, sizeof(why));
					fail_msg("client %u: %zu bytes: %s", i, hl, why);
				}
				certsel_choose(&h, &shapes[si].desc, 1, p, 0, &vd);
				r = &vd.cert[0];
				runs++;
				agree = (r->rule == CERTSEL_R_OK) == o.ok;
				if (agree && o.ok) {
					int type = 0, md = 0;

					ok++;
					agree = r->version == o.version && r->suite == o.suite &&
						(!r->group || r->group == o.group);
					if (r->sigalg)
						sig_nids(r->sigalg, &type, &md);
					agree &= !r->sigalg || (type == o.sig_type && md == o.sig_md);
				} else if (agree) {
					failed++;
					agree = reason_matches(r->rule, o.reason);
				}
				if (!agree) {
					char text[8192];

					mismatches++;
					certsel_explain(&h, &shapes[si].desc, 1, p, &vd, text, sizeof(text));
					print_message("MISMATCH client %u (%x-%x ciphers %s suites %s groups %s "
						      "sigalgs %s), %s, policy %s: OpenSSL %s (%s) v%04x %04x "
						      "group %04x sig %d/%d; certsel:\n%s",
						      i, c.minv, c.maxv, c.ciphers, c.suites13, c.groups,
						      c.sigalgs ? c.sigalgs : "(default)", shapes[si].label,
						      p->name, o.ok ? "ok" : "fails", o.reason, o.version,
						      o.suite, o.group, o.sig_type, o.sig_md, text);
				}
			}
		}
	}
	print_message("# %u handshakes: %u succeeded, %u failed, %u disagreements\n",
		      runs, ok, failed, mismatches);
	assert_true(runs > 1000);
	assert_true(ok > 100 && failed > 100);
	assert_int_equal(mismatches, 0);
	for (i = 0; i < ARRAY_SIZE(shapes); i++) {
		X509_free(shapes[i].x);
		EVP_PKEY_free(shapes[i].key);
		shapes[i].x = NULL;
		shapes[i].key = NULL;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policies_offer_their_table),
		cmocka_unit_test(test_names_are_openssls),
		cmocka_unit_test(test_bad_policy),
		cmocka_unit_test(test_handshakes_agree),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
