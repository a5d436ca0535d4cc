/*
 * tls/certsel and tls/explain_input, as scenarios.
 *
 *   - a table of clients (built here as ClientHello bytes from versions,
 *     suites, groups, key shares, signature algorithms and SNI, and read by
 *     hello_parse) against cert sets of different shapes and the three
 *     policies, each with the certificate, version, suite, group and
 *     signature scheme it must get, or the rule it must fail with;
 *   - the issue's case: a TLS 1.2 client with ECDHE-ECDSA and RSA suites
 *     and only secp256r1 gets RSA from {P-384, RSA} and fails with the curve
 *     rule from {P-384}, and explain says so in words;
 *   - SNI (exact, wildcard, default), validity, explicit preference;
 *   - explain_input: Wireshark/xxd/tcpdump hex, bare handshake messages,
 *     whole frames, the fields form (equal to the hand-built hello), and
 *     every error with its position.
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

#include "certsel.h"
#include "explain_input.h"
#include "hello.h"
#include "policy.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------ hello builder --- */

struct u16s {
	const uint16_t *v;
	unsigned n;
};

#define L(...) ((struct u16s){ (const uint16_t[]){ __VA_ARGS__ }, \
			       sizeof((const uint16_t[]){ __VA_ARGS__ }) / 2 })
#define NONE ((struct u16s){ NULL, 0 })

/* A client: what it offers. Lists left NONE are not sent. */
struct client {
	uint16_t legacy;          /* client_version; 0: 0x0303 */
	struct u16s versions;     /* supported_versions */
	struct u16s ciphers;
	struct u16s groups;
	struct u16s key_shares;   /* sent when versions is */
	struct u16s sigalgs;
	struct u16s sigalgs_cert;
	const char *sni;
	bool no_key_share;        /* TLS 1.3 without key_share */
};

struct b {
	uint8_t p[4096];
	size_t n;
	size_t at[8];
	int depth;
	unsigned w[8];
};

static void b_u8(struct b *b, unsigned v)
{
	assert_true(b->n < sizeof(b->p));
	b->p[b->n++] = (uint8_t)v;
}

static void b_u16(struct b *b, unsigned v)
{
	b_u8(b, v >> 8);
	b_u8(b, v & 0xff);
}

static void b_open(struct b *b, unsigned w)
{
	unsigned i;

	b->at[b->depth] = b->n;
	b->w[b->depth++] = w;
	for (i = 0; i < w; i++)
		b_u8(b, 0);
}

static void b_close(struct b *b)
{
	size_t at = b->at[--b->depth], w = b->w[b->depth], len = b->n - at - w, i;

	for (i = 0; i < w; i++)
		b->p[at + i] = (uint8_t)(len >> 8 * (w - 1 - i));
}

static void b_list(struct b *b, unsigned type, unsigned lw, struct u16s l)
{
	unsigned i;

	b_u16(b, type);
	b_open(b, 2);
	b_open(b, lw);
	for (i = 0; i < l.n; i++)
		b_u16(b, l.v[i]);
	b_close(b);
	b_close(b);
}

/* The client's ClientHello as one TLS record. */
static void build(const struct client *c, struct b *b)
{
	unsigned i;

	memset(b, 0, sizeof(*b));
	b_u8(b, 22);
	b_u16(b, 0x0301);
	b_open(b, 2);
	b_u8(b, 1);
	b_open(b, 3);
	b_u16(b, c->legacy ? c->legacy : 0x0303);
	for (i = 0; i < 32; i++)
		b_u8(b, 0x52);
	b_u8(b, 0);                     /* session id */
	b_open(b, 2);
	for (i = 0; i < c->ciphers.n; i++)
		b_u16(b, c->ciphers.v[i]);
	b_close(b);
	b_u8(b, 1);
	b_u8(b, 0);                     /* null compression */
	b_open(b, 2);
	if (c->sni) {
		b_u16(b, 0);
		b_open(b, 2);
		b_open(b, 2);
		b_u8(b, 0);
		b_open(b, 2);
		for (i = 0; c->sni[i]; i++)
			b_u8(b, (uint8_t)c->sni[i]);
		b_close(b);
		b_close(b);
		b_close(b);
	}
	if (c->groups.n)
		b_list(b, 10, 2, c->groups);
	if (c->sigalgs.n)
		b_list(b, 13, 2, c->sigalgs);
	if (c->sigalgs_cert.n)
		b_list(b, 50, 2, c->sigalgs_cert);
	if (c->versions.n) {
		b_list(b, 43, 1, c->versions);
		if (!c->no_key_share) {
			struct u16s ks = c->key_shares.n ? c->key_shares : NONE;

			if (!c->key_shares.n && c->groups.n)
				ks = (struct u16s){ c->groups.v, 1 };
			b_u16(b, 51);
			b_open(b, 2);
			b_open(b, 2);
			for (i = 0; i < ks.n; i++) {
				unsigned k;

				b_u16(b, ks.v[i]);
				b_u16(b, 32);
				for (k = 0; k < 32; k++)
					b_u8(b, 0x4b);
			}
			b_close(b);
			b_close(b);
		}
	}
	while (b->depth)
		b_close(b);
}

static void parse_client(const struct client *c, struct hello *h)
{
	struct b b;

	build(c, &b);
	assert_int_equal(hello_parse(b.p, b.n, h, NULL), HELLO_OK);
}

/* ------------------------------------------------------------ cert sets --- */

#define DAY 86400
#define NOW ((int64_t)1767225600)       /* 2026-01-01 */

static const char *const mail_names[] = { "mail.example.com", "smtp.example.com" };

#define CERT(label_, key_, bits_, sig_) { .label = label_, .key = CERTSEL_KEY_##key_, .bits = bits_, \
	.issuer_sig = sig_, .names = mail_names, .n_names = 2, \
	.not_before = NOW - 30 * DAY, .not_after = NOW + 60 * DAY }

static const struct certsel_cert C_RSA = CERT("rsa-2048", RSA, 2048, 0x0401);
static const struct certsel_cert C_RSA1024 = CERT("rsa-1024", RSA, 1024, 0x0401);
static const struct certsel_cert C_P256 = CERT("ecdsa-p256", P256, 0, 0x0403);
static const struct certsel_cert C_P384 = CERT("ecdsa-p384", P384, 0, 0x0503);
static const struct certsel_cert C_ED = CERT("ed25519", ED25519, 0, 0x0807);
static const struct certsel_cert C_RSA_SHA1 = CERT("rsa-2048-sha1", RSA, 2048, 0x0201);

/* ------------------------------------------------------------- clients --- */

/* The issue's client: TLS 1.2, ECDHE-ECDSA and RSA suites, only secp256r1
 * (a Windows Exchange sender). */
#define EXCHANGE { \
	.ciphers = L(0xc02c, 0xc02b, 0xc030, 0xc02f, 0x009d, 0x009c, 0xc024, 0xc028, 0x003d, 0x003c), \
	.groups = L(0x0017), \
	.sigalgs = L(0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0403, 0x0503, 0x0603), \
	.sni = "mail.example.com", \
}

/* A TLS 1.3 client (OpenSSL s_client's defaults, shortened). */
#define TLS13_CLIENT { \
	.versions = L(0x0304, 0x0303), \
	.ciphers = L(0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0xc02b, 0xc02f, 0xcca9, 0xcca8), \
	.groups = L(0x001d, 0x0017, 0x001e, 0x0018), \
	.sigalgs = L(0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601), \
	.sni = "mail.example.com", \
}
/* (macros, not const objects: C wants constants in the table below) */
static const struct client exchange = EXCHANGE;
static const struct client tls13 = TLS13_CLIENT;

/* ------------------------------------------------------------ scenarios --- */

struct row {
	const char *name;
	struct client c;
	const struct certsel_cert *set[4];
	enum policy_id policy;
	int chosen;                 /* -1: no certificate works */
	enum certsel_rule rule;     /* of the verdict */
	uint16_t version, suite, group, sigalg;
	bool hrr;
};

#define SET(...) { __VA_ARGS__ }
#define OK_(i, v, s, g, sa) i, CERTSEL_R_OK, v, s, g, sa, false
#define HRR_(i, v, s, g, sa) i, CERTSEL_R_OK, v, s, g, sa, true
#define FAIL_(r, v) -1, CERTSEL_R_##r, v, 0, 0, 0, false
#define TLS12(...) { .ciphers = L(__VA_ARGS__) }

static const struct row rows[] = {
	/* The issue (RFC 8422 5.1). */
	{ "exchange: P-384 + RSA gives RSA", EXCHANGE, SET(&C_P384, &C_RSA), POLICY_INTERMEDIATE,
	  OK_(1, 0x0303, 0xc02f, 0x0017, 0x0804) },
	{ "exchange: P-384 alone fails on the curve", EXCHANGE, SET(&C_P384), POLICY_INTERMEDIATE,
	  FAIL_(ECDSA_CURVE_NOT_OFFERED, 0x0303) },
	{ "exchange: P-256 + RSA gives the cheaper P-256", EXCHANGE, SET(&C_RSA, &C_P256), POLICY_INTERMEDIATE,
	  OK_(1, 0x0303, 0xc02b, 0x0017, 0x0403) },
	{ "exchange: legacy policy, P-384 alone still fails", EXCHANGE, SET(&C_P384), POLICY_LEGACY,
	  FAIL_(ECDSA_CURVE_NOT_OFFERED, 0x0303) },
	{ "exchange: modern policy wants TLS 1.3", EXCHANGE, SET(&C_RSA), POLICY_MODERN,
	  FAIL_(VERSION_CLIENT_TOO_OLD, 0) },

	/* TLS 1.3: the signature scheme names the curve (RFC 8446 4.2.3). */
	{ "tls13: P-384 + RSA gives P-384", TLS13_CLIENT, SET(&C_RSA, &C_P384), POLICY_INTERMEDIATE,
	  OK_(1, 0x0304, 0x1301, 0x001d, 0x0503) },
	{ "tls13: client without ecdsa_secp384r1_sha384",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d),
	    .sigalgs = L(0x0403, 0x0804) },
	  SET(&C_P384, &C_RSA), POLICY_MODERN, OK_(1, 0x0304, 0x1301, 0x001d, 0x0804) },
	{ "tls13: P-384 alone, client names only P-256",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d), .sigalgs = L(0x0403) },
	  SET(&C_P384), POLICY_MODERN, FAIL_(TLS13_NO_SCHEME_FOR_KEY, 0x0304) },
	{ "tls13: RSA PKCS#1 is not a TLS 1.3 signature",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d), .sigalgs = L(0x0401, 0x0403) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(TLS13_NO_SCHEME_FOR_KEY, 0x0304) },
	{ "tls13: Ed25519", TLS13_CLIENT, SET(&C_ED, &C_RSA), POLICY_MODERN,
	  OK_(0, 0x0304, 0x1301, 0x001d, 0x0807) },
	{ "tls13: key share on P-384 used as sent",
	  { .versions = L(0x0304), .ciphers = L(0x1302), .groups = L(0x001d, 0x0018),
	    .key_shares = L(0x0018), .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, OK_(0, 0x0304, 0x1302, 0x0018, 0x0804) },
	{ "tls13: key share on x448 only: HelloRetryRequest for x25519",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001e, 0x0017, 0x001d),
	    .key_shares = L(0x001e), .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, 0, CERTSEL_R_OK, 0x0304, 0x1301, 0x001d, 0x0804, true },
	{ "tls13: only ffdhe2048",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x0100), .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(TLS13_NO_COMMON_GROUP, 0x0304) },
	{ "tls13: no signature_algorithms",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d) },
	  SET(&C_RSA), POLICY_MODERN, FAIL_(TLS13_NO_SIGALGS, 0x0304) },
	{ "tls13: no key_share extension",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d), .sigalgs = L(0x0804),
	    .no_key_share = true },
	  SET(&C_RSA), POLICY_MODERN, FAIL_(TLS13_NO_KEY_SHARE_EXT, 0x0304) },
	{ "tls13: key share for a group not in supported_groups",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x0017), .key_shares = L(0x001d),
	    .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_MODERN, FAIL_(TLS13_KEY_SHARE_NOT_OFFERED, 0x0304) },
	{ "tls13: only CCM suites",
	  { .versions = L(0x0304), .ciphers = L(0x1304, 0x1305), .groups = L(0x001d), .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_MODERN, FAIL_(TLS13_NO_SHARED_CIPHER, 0x0304) },
	{ "tls13: no shared signature algorithm",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d), .sigalgs = L(0x0808) },
	  SET(&C_RSA, &C_P256), POLICY_MODERN, FAIL_(NO_SHARED_SIGALGS, 0x0304) },
	{ "tls13: signature_algorithms_cert refuses the RSA issuer",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d), .sigalgs = L(0x0403, 0x0804),
	    .sigalgs_cert = L(0x0403) },
	  SET(&C_RSA), POLICY_MODERN, FAIL_(SIGALGS_CERT_ISSUER, 0x0304) },
	{ "tls13: signature_algorithms_cert: the P-256 certificate fits",
	  { .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d), .sigalgs = L(0x0403, 0x0804),
	    .sigalgs_cert = L(0x0403) },
	  SET(&C_RSA, &C_P256), POLICY_MODERN, OK_(1, 0x0304, 0x1301, 0x001d, 0x0403) },
	{ "tls13 and 1.2 client, policy max 1.2 is not shipped: falls to 1.2 under legacy",
	  { .versions = L(0x0303, 0x0304), .ciphers = L(0xc02f, 0x1301), .groups = L(0x0017),
	    .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_LEGACY, OK_(0, 0x0304, 0x1301, 0x0017, 0x0804) },

	/* TLS 1.2 and below. */
	{ "tls12: ECDSA P-384 cert on a client with all curves", 
	  { .ciphers = L(0xc02b, 0xc02f), .groups = L(0x0017, 0x0018), .sigalgs = L(0x0403, 0x0804) },
	  SET(&C_P384), POLICY_INTERMEDIATE, OK_(0, 0x0303, 0xc02b, 0x0017, 0x0403) },
	{ "tls12: no supported_groups: an ECDSA key on any curve, but no ECDHE",
	  { .ciphers = L(0xc02b, 0xc02f), .sigalgs = L(0x0403, 0x0804) },
	  SET(&C_P384, &C_RSA), POLICY_INTERMEDIATE, FAIL_(ECDHE_NO_GROUPS_EXT, 0x0303) },
	{ "tls12: no supported_groups, legacy: RSA key exchange",
	  { .ciphers = L(0xc02f, 0x009c), .sigalgs = L(0x0403, 0x0804) },
	  SET(&C_P384, &C_RSA), POLICY_LEGACY, OK_(1, 0x0303, 0x009c, 0, 0) },
	{ "tls12: client groups the policy lacks",
	  { .ciphers = L(0xc02f), .groups = L(0x001e), .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(ECDHE_NO_COMMON_GROUP, 0x0303) },
	{ "tls12: only RSA suites for an ECDSA-only set",
	  { .ciphers = L(0xc02f, 0xc030), .groups = L(0x0017), .sigalgs = L(0x0403, 0x0804) },
	  SET(&C_P256), POLICY_INTERMEDIATE, FAIL_(SUITE_NEEDS_OTHER_KEY, 0x0303) },
	{ "tls12: CBC suites only against intermediate",
	  { .ciphers = L(0xc013, 0x002f), .groups = L(0x0017), .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(NO_SHARED_CIPHER, 0x0303) },
	{ "tls12: RSA cert, client signs only ECDSA: OpenSSL picks ECDHE-RSA then fails",
	  { .ciphers = L(0xc02f), .groups = L(0x0017), .sigalgs = L(0x0403) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(TLS12_RSA_NO_SCHEME, 0x0303) },
	{ "tls12: ECDSA cert, client signs only RSA: ECDSA suites skipped",
	  { .ciphers = L(0xc02b, 0xc02f), .groups = L(0x0017), .sigalgs = L(0x0401) },
	  SET(&C_P256), POLICY_INTERMEDIATE, FAIL_(TLS12_NO_SCHEME_FOR_KEY, 0x0303) },
	{ "tls12: no signature_algorithms: SHA-1 forbidden at level 2",
	  { .ciphers = L(0xc02f), .groups = L(0x0017) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(SHA1_FORBIDDEN, 0x0303) },
	{ "tls12: no signature_algorithms: legacy signs with rsa_pkcs1_sha1",
	  { .ciphers = L(0xc02f), .groups = L(0x0017) },
	  SET(&C_RSA), POLICY_LEGACY, OK_(0, 0x0303, 0xc02f, 0x0017, 0x0201) },
	{ "tls12: no signature_algorithms: ECDSA with ecdsa_sha1 under legacy",
	  { .ciphers = L(0xc02b, 0xc02f), .groups = L(0x0017) },
	  SET(&C_P256), POLICY_LEGACY, OK_(0, 0x0303, 0xc02b, 0x0017, 0x0203) },
	{ "tls12: Ed25519 when the client names ed25519",
	  { .ciphers = L(0xc02b), .groups = L(0x001d), .sigalgs = L(0x0807, 0x0403) },
	  SET(&C_ED), POLICY_INTERMEDIATE, OK_(0, 0x0303, 0xc02b, 0x001d, 0x0807) },
	{ "tls12: Ed25519 when the client does not",
	  { .ciphers = L(0xc02b, 0xc02f), .groups = L(0x001d), .sigalgs = L(0x0403, 0x0804) },
	  SET(&C_ED), POLICY_INTERMEDIATE, FAIL_(TLS12_NO_SCHEME_FOR_KEY, 0x0303) },
	{ "tls12: fallback SCSV below the policy's maximum",
	  { .ciphers = L(0xc02f, 0x5600), .groups = L(0x0017), .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(INAPPROPRIATE_FALLBACK, 0x0303) },

	/* TLS 1.0 (legacy policy, security level 0). */
	{ "tls10: AES128-SHA under legacy",
	  { .legacy = 0x0301, .ciphers = L(0x002f, 0x0035, 0x000a) },
	  SET(&C_RSA), POLICY_LEGACY, OK_(0, 0x0301, 0x002f, 0, 0) },
	{ "tls10: ECDHE-RSA-AES128-SHA signs with MD5+SHA-1",
	  { .legacy = 0x0301, .ciphers = L(0xc013, 0x002f), .groups = L(0x0017) },
	  SET(&C_RSA), POLICY_LEGACY, OK_(0, 0x0301, 0xc013, 0x0017, CERTSEL_SIG_RSA_MD5_SHA1) },
	{ "tls10: ECDSA under legacy",
	  { .legacy = 0x0301, .ciphers = L(0xc009, 0x002f), .groups = L(0x0017) },
	  SET(&C_P256), POLICY_LEGACY, OK_(0, 0x0301, 0xc009, 0x0017, 0x0203) },
	{ "tls10: refused by intermediate",
	  { .legacy = 0x0301, .ciphers = L(0x002f) },
	  SET(&C_RSA), POLICY_INTERMEDIATE, FAIL_(VERSION_CLIENT_TOO_OLD, 0) },
	{ "tls10: Ed25519 cannot sign",
	  { .legacy = 0x0301, .ciphers = L(0xc009), .groups = L(0x001d) },
	  SET(&C_ED), POLICY_LEGACY, FAIL_(ED25519_NEEDS_TLS12, 0x0301) },
	{ "tls10: only GCM suites offered",
	  { .legacy = 0x0301, .ciphers = L(0xc02f, 0x009c), .groups = L(0x0017) },
	  SET(&C_RSA), POLICY_LEGACY, FAIL_(SUITE_VERSION, 0x0301) },
	{ "sslv3 client",
	  { .legacy = 0x0300, .ciphers = L(0x002f) },
	  SET(&C_RSA), POLICY_LEGACY, FAIL_(VERSION_CLIENT_TOO_OLD, 0) },
	{ "supported_versions with legacy_version SSL 3.0",
	  { .legacy = 0x0300, .versions = L(0x0304), .ciphers = L(0x1301), .groups = L(0x001d),
	    .sigalgs = L(0x0804) },
	  SET(&C_RSA), POLICY_MODERN, FAIL_(BAD_LEGACY_VERSION, 0) },

	/* The certificate and the security level. */
	{ "RSA-1024 under intermediate (level 2)", EXCHANGE, SET(&C_RSA1024), POLICY_INTERMEDIATE,
	  FAIL_(CERT_KEY_TOO_SMALL, 0) },
	{ "RSA-1024 under legacy (level 0)", EXCHANGE, SET(&C_RSA1024), POLICY_LEGACY,
	  OK_(0, 0x0303, 0xc02f, 0x0017, 0x0804) },
	{ "SHA-1 signed certificate under intermediate", EXCHANGE, SET(&C_RSA_SHA1, &C_P256),
	  POLICY_INTERMEDIATE, OK_(1, 0x0303, 0xc02b, 0x0017, 0x0403) },
	{ "SHA-1 signed certificate alone", EXCHANGE, SET(&C_RSA_SHA1), POLICY_INTERMEDIATE,
	  FAIL_(CERT_MD_TOO_WEAK, 0) },
	{ "empty set", EXCHANGE, SET(NULL), POLICY_INTERMEDIATE, FAIL_(NO_CERTS, 0) },
};

static unsigned set_of(const struct row *r, struct certsel_cert *out)
{
	unsigned n = 0;

	while (n < ARRAY_SIZE(r->set) && r->set[n]) {
		out[n] = *r->set[n];
		n++;
	}
	return n;
}

static void test_table(void **state)
{
	unsigned i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		const struct row *r = &rows[i];
		struct certsel_cert set[4];
		struct certsel_verdict v;
		struct hello h;
		unsigned n = set_of(r, set);
		int rc;

		parse_client(&r->c, &h);
		rc = certsel_choose(&h, set, n, policy_get(r->policy), NOW, &v);
		if (v.chosen != r->chosen || v.rule != r->rule) {
			static char text[8192];

			certsel_explain(&h, set, n, policy_get(r->policy), &v, text, sizeof(text));
			print_message("row \"%s\": chosen %d rule %s, expected %d %s\n%s", r->name,
				      v.chosen, certsel_rule_label(v.rule), r->chosen,
				      certsel_rule_label(r->rule), text);
		}
		assert_int_equal(v.chosen, r->chosen);
		assert_int_equal(v.rule, r->rule);
		assert_int_equal(rc, r->chosen >= 0 ? 0 : -ENOENT);
		if (r->version)
			assert_int_equal(v.version, r->version);
		if (r->chosen < 0)
			continue;
		assert_int_equal(v.suite, r->suite);
		assert_int_equal(v.group, r->group);
		assert_int_equal(v.sigalg, r->sigalg);
		assert_int_equal(v.hrr, r->hrr);
	}
}

/* The issue's case in words: the curve rule, the RFC and the fix. */
static void test_explain_curve_rule(void **state)
{
	struct certsel_cert set[2] = { C_P384, C_RSA };
	const struct policy *p = policy_get(POLICY_INTERMEDIATE);
	struct certsel_verdict v;
	struct hello h;
	char text[8192], line[512];

	(void)state;
	parse_client(&exchange, &h);
	assert_int_equal(certsel_choose(&h, set, 1, p, NOW, &v), -ENOENT);
	certsel_explain(&h, set, 1, p, &v, text, sizeof(text));
	if (getenv("SHOW"))
		print_message("%s", text);
	assert_non_null(strstr(text, "cert 0 ecdsa-p384 (ECDSA P-384): FAIL ecdsa_curve_not_offered "
				     "[RFC 8422 5.1, 5.3]: the client offers only secp256r1; this "
				     "ECDSA certificate is on secp384r1; TLS 1.2 forbids it\n"
				     "    fix: add an RSA or a P-256 certificate\n"));
	assert_non_null(strstr(text, "verdict: FAIL (closest: cert 0 ecdsa-p384 (ECDSA P-384)) "
				     "ecdsa_curve_not_offered"));
	assert_non_null(strstr(text, "policy intermediate: TLS 1.2 to TLS 1.3, security level 2\n"));
	certsel_reason(&h, set, 1, p, &v, -1, line, sizeof(line));
	assert_string_equal(line, "ecdsa_curve_not_offered: the client offers only secp256r1; "
			    "this ECDSA certificate is on secp384r1; TLS 1.2 forbids it (RFC 8422 5.1, 5.3)");

	/* With the RSA certificate as well: RSA is chosen, and P-384's
	 * failure is still explained. */
	assert_int_equal(certsel_choose(&h, set, 2, p, NOW, &v), 0);
	certsel_explain(&h, set, 2, p, &v, text, sizeof(text));
	if (getenv("SHOW"))
		print_message("%s", text);
	assert_non_null(strstr(text, "cert 1 rsa-2048 (RSA-2048): OK TLS 1.2, "
				     "ECDHE-RSA-AES128-GCM-SHA256, group secp256r1, signature "
				     "rsa_pss_rsae_sha256\n"));
	assert_non_null(strstr(text, "FAIL ecdsa_curve_not_offered"));
	assert_non_null(strstr(text, "verdict: cert 1 rsa-2048 (RSA-2048): TLS 1.2, "
				     "ECDHE-RSA-AES128-GCM-SHA256"));
	/* No template is left unexpanded anywhere. */
	assert_null(strchr(text, '{'));
}

/* Every rule's sentence and fix expand with no {name} left, with facts
 * that exist, for every certificate shape and every row. */
static void test_explain_every_row(void **state)
{
	unsigned i, k;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		for (k = 0; k < POLICY_COUNT; k++) {
			struct certsel_cert set[4];
			struct certsel_verdict v;
			struct hello h;
			char text[16384];
			unsigned n = set_of(&rows[i], set);
			int len;

			parse_client(&rows[i].c, &h);
			certsel_choose(&h, set, n, policy_get(k), NOW, &v);
			len = certsel_explain(&h, set, n, policy_get(k), &v, text, sizeof(text));
			assert_true(len > 0 && (size_t)len < sizeof(text));
			assert_int_equal(strlen(text), (size_t)len);
			if (strchr(text, '{'))
				print_message("%s\n", text);
			assert_null(strchr(text, '{'));
			assert_non_null(strstr(text, "\nverdict: "));
			/* a short buffer: truncated, terminated, same length */
			assert_int_equal(certsel_explain(&h, set, n, policy_get(k), &v, text, 40), len);
			assert_int_equal(strlen(text), 39);
		}
	}
}

/* SNI: exact names first, then wildcards, then the default set. */
static void test_sni(void **state)
{
	static const char *const a_names[] = { "a.example.com" };
	static const char *const w_names[] = { "*.example.com" };
	static const char *const o_names[] = { "mx.example.org" };
	struct certsel_cert set[3] = { C_RSA, C_P256, C_P384 };
	struct client c = tls13;
	struct certsel_verdict v;
	struct hello h;

	(void)state;
	set[0].names = a_names;
	set[0].n_names = 1;
	set[1].names = w_names;
	set[1].n_names = 1;
	set[2].names = o_names;
	set[2].n_names = 1;
	set[2].is_default = true;

	c.sni = "A.Example.COM.";
	parse_client(&c, &h);
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 0);
	assert_int_equal(v.sni, CERTSEL_SNI_EXACT);
	assert_false(v.cert[1].considered);
	assert_true(v.cert[1].notes & 1ull << CERTSEL_R_SNI_OTHER_NAME);

	c.sni = "b.example.com";
	parse_client(&c, &h);
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 1);
	assert_int_equal(v.sni, CERTSEL_SNI_WILDCARD);

	c.sni = "x.b.example.com";      /* a wildcard covers one label only */
	parse_client(&c, &h);
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 2);
	assert_int_equal(v.sni, CERTSEL_SNI_DEFAULT);
	assert_true(v.notes & 1ull << CERTSEL_R_SNI_NO_MATCH);

	c.sni = NULL;
	parse_client(&c, &h);
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 2);
	assert_int_equal(v.sni, CERTSEL_SNI_NONE);
	assert_true(v.cert[0].notes & 1ull << CERTSEL_R_NOT_DEFAULT);

	assert_int_equal(certsel_name_match("*.example.com", "example.com"), 0);
	assert_int_equal(certsel_name_match("*.example.com", ".example.com"), 0);
	assert_int_equal(certsel_name_match("example.com", "example.com."), 2);
	assert_int_equal(certsel_name_match("*", "com"), 0);
}

/* Validity first, then explicit preference, then cost. */
static void test_order(void **state)
{
	struct certsel_cert set[3] = { C_RSA, C_P384, C_P256 };
	struct certsel_verdict v;
	struct hello h;
	char text[8192];

	(void)state;
	parse_client(&tls13, &h);
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 2);              /* P-256: cheapest */
	assert_int_equal(v.sigalg, 0x0403);

	set[2].not_after = NOW - DAY;               /* expired */
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 1);
	assert_true(v.cert[2].notes & 1ull << CERTSEL_R_CERT_EXPIRED);
	certsel_explain(&h, set, 3, policy_get(POLICY_MODERN), &v, text, sizeof(text));
	assert_non_null(strstr(text, "warn cert_expired [RFC 5280 4.1.2.5]: the certificate "
				     "expired on 2025-12-31 00:00 UTC"));
	assert_non_null(strstr(text, "note: works, but cert 1 comes first"));

	/* An expired certificate still serves when nothing else works. */
	assert_int_equal(certsel_choose(&h, set + 2, 1, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 0);
	/* now == 0: no validity check */
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), 0, &v), 0);
	assert_int_equal(v.chosen, 2);

	set[2].not_after = NOW + DAY;
	set[0].pref = 1;                            /* the operator wants RSA */
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 0);
	set[1].pref = 1;                            /* a tie: cost decides */
	assert_int_equal(certsel_choose(&h, set, 3, policy_get(POLICY_MODERN), NOW, &v), 0);
	assert_int_equal(v.chosen, 1);

	assert_true(certsel_cost(CERTSEL_KEY_P256, 0) < certsel_cost(CERTSEL_KEY_ED25519, 0));
	assert_true(certsel_cost(CERTSEL_KEY_ED25519, 0) < certsel_cost(CERTSEL_KEY_P384, 0));
	assert_true(certsel_cost(CERTSEL_KEY_P384, 0) < certsel_cost(CERTSEL_KEY_RSA, 2048));
	assert_true(certsel_cost(CERTSEL_KEY_RSA, 2048) < certsel_cost(CERTSEL_KEY_RSA, 3072));
	assert_true(certsel_cost(CERTSEL_KEY_RSA, 3072) < certsel_cost(CERTSEL_KEY_RSA, 4096));
}

/* A policy that is not shipped: TLS 1.2 at most, for VERSION_CLIENT_TOO_NEW. */
static void test_version_too_new(void **state)
{
	struct policy p = *policy_get(POLICY_INTERMEDIATE);
	struct client c = tls13;
	struct certsel_cert set[1] = { C_RSA };
	struct certsel_verdict v;
	struct hello h;

	(void)state;
	p.max_version = 0x0303;
	c.versions = L(0x0304);
	parse_client(&c, &h);
	assert_int_equal(certsel_choose(&h, set, 1, &p, NOW, &v), -ENOENT);
	assert_int_equal(v.rule, CERTSEL_R_VERSION_CLIENT_TOO_NEW);
	c.versions = L(0x0304, 0x0303);
	parse_client(&c, &h);
	assert_int_equal(certsel_choose(&h, set, 1, &p, NOW, &v), 0);
	assert_int_equal(v.version, 0x0303);
	assert_int_equal(v.suite, 0xc02f);
	assert_int_equal(certsel_choose(&h, set, CERTSEL_CERTS_MAX + 1, &p, NOW, &v), -EINVAL);
}

/* Every rule has a label, a kind, a sentence; FAIL rules a fix and an
 * OpenSSL reason. */
static void test_rules_table(void **state)
{
	unsigned r;

	(void)state;
	for (r = 0; r < CERTSEL_R_COUNT; r++) {
		assert_true(strlen(certsel_rule_label(r)) > 1);
		if (certsel_rule_kind(r) == CERTSEL_FAIL) {
			assert_true(strlen(certsel_rule_rfc(r)) > 3);
			assert_true(strlen(certsel_rule_openssl(r)) > 3);
		}
	}
	assert_int_equal(certsel_rule_kind(CERTSEL_R_OK), CERTSEL_OK);
	assert_int_equal(certsel_rule_kind(CERTSEL_R_CERT_EXPIRED), CERTSEL_WARN);
}

/* ------------------------------------------------------ explain_input --- */

/* openssl s_client -tls1_2 -cipher ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:
 * ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA -groups P-256 -servername mail.example.com
 * (OpenSSL 3.0, Debian 12), recorded off the wire; as Wireshark "Copy as Hex Dump"
 * shows it, as the whole frame (made-up Ethernet, IPv4 192.0.2.1 -> 198.51.100.2
 * and TCP headers: 54 bytes), and as xxd shows it. */
static const char ws_dump[] =
	"0000   16 03 01 00 9a 01 00 00 96 03 03 d5 4b c1 30 39   ............K.09\n"
	"0010   5d ac a0 70 a5 fa 7e cb d4 4e fa 39 ce bb 72 fd   ]..p..~..N.9..r.\n"
	"0020   35 20 b3 73 ea 07 3a e3 12 25 7d 00 00 0a c0 2c   5 .s..:..%}....,\n"
	"0030   c0 2b c0 2f 00 2f 00 ff 01 00 00 63 00 00 00 15   .+././.....c....\n"
	"0040   00 13 00 00 10 6d 61 69 6c 2e 65 78 61 6d 70 6c   .....mail.exampl\n"
	"0050   65 2e 63 6f 6d 00 0b 00 04 03 00 01 02 00 0a 00   e.com...........\n"
	"0060   04 00 02 00 17 00 23 00 00 00 16 00 00 00 17 00   ......#.........\n"
	"0070   00 00 0d 00 2a 00 28 04 03 05 03 06 03 08 07 08   ....*.(.........\n"
	"0080   08 08 09 08 0a 08 0b 08 04 08 05 08 06 04 01 05   ................\n"
	"0090   01 06 01 03 03 03 01 03 02 04 02 05 02 06 02      ...............\n"
	;
static const char ws_frame[] =
	"0000   02 00 00 00 00 02 02 00 00 00 00 01 08 00 45 00   ..............E.\n"
	"0010   00 c7 00 00 40 00 40 06 00 00 c0 00 02 01 c6 33   ....@.@........3\n"
	"0020   64 02 c3 50 00 19 00 00 00 01 00 00 00 01 50 18   d..P..........P.\n"
	"0030   ff ff 00 00 00 00 16 03 01 00 9a 01 00 00 96 03   ................\n"
	"0040   03 d5 4b c1 30 39 5d ac a0 70 a5 fa 7e cb d4 4e   ..K.09]..p..~..N\n"
	"0050   fa 39 ce bb 72 fd 35 20 b3 73 ea 07 3a e3 12 25   .9..r.5 .s..:..%\n"
	"0060   7d 00 00 0a c0 2c c0 2b c0 2f 00 2f 00 ff 01 00   }....,.+././....\n"
	"0070   00 63 00 00 00 15 00 13 00 00 10 6d 61 69 6c 2e   .c.........mail.\n"
	"0080   65 78 61 6d 70 6c 65 2e 63 6f 6d 00 0b 00 04 03   example.com.....\n"
	"0090   00 01 02 00 0a 00 04 00 02 00 17 00 23 00 00 00   ............#...\n"
	"00a0   16 00 00 00 17 00 00 00 0d 00 2a 00 28 04 03 05   ..........*.(...\n"
	"00b0   03 06 03 08 07 08 08 08 09 08 0a 08 0b 08 04 08   ................\n"
	"00c0   05 08 06 04 01 05 01 06 01 03 03 03 01 03 02 04   ................\n"
	"00d0   02 05 02 06 02                                    .....\n"
	;
static const char xxd_dump[] =
	"00000000: 1603 0100 9a01 0000 9603 03d5 4bc1 3039  ............K.09\n"
	"00000010: 5dac a070 a5fa 7ecb d44e fa39 cebb 72fd  ]..p..~..N.9..r.\n"
	"00000020: 3520 b373 ea07 3ae3 1225 7d00 000a c02c  5 .s..:..%}....,\n"
	"00000030: c02b c02f 002f 00ff 0100 0063 0000 0015  .+././.....c....\n"
	"00000040: 0013 0000 106d 6169 6c2e 6578 616d 706c  .....mail.exampl\n"
	"00000050: 652e 636f 6d00 0b00 0403 0001 0200 0a00  e.com...........\n"
	"00000060: 0400 0200 1700 2300 0000 1600 0000 1700  ......#.........\n"
	"00000070: 0000 0d00 2a00 2804 0305 0306 0308 0708  ....*.(.........\n"
	"00000080: 0808 0908 0a08 0b08 0408 0508 0604 0105  ................\n"
	"00000090: 0106 0103 0303 0103 0204 0205 0206 02    ...............\n"
	;

/* The same client by fields. */
static const struct explain_fields f_exchange = {
	.versions = "tls1.2",
	.ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,"
		   "0xc02f, AES128-SHA",
	.groups = "P-256",
	.sigalgs = "ecdsa_secp256r1_sha256,ecdsa_secp384r1_sha384,ecdsa_secp521r1_sha512,"
		   "ed25519,ed448,rsa_pss_pss_sha256,rsa_pss_pss_sha384,rsa_pss_pss_sha512,"
		   "rsa_pss_rsae_sha256,rsa_pss_rsae_sha384,rsa_pss_rsae_sha512,"
		   "RSA+SHA256,RSA+SHA384,RSA+SHA512,ECDSA+SHA224,RSA+SHA224,"
		   "dsa_sha224,DSA+SHA256,0x0502,0x0602",
	.sni = "mail.example.com",
	.options = "reneg_scsv,ems",
};

static void check_capture(const struct hello *h)
{
	static const uint16_t ciphers[] = { 0xc02c, 0xc02b, 0xc02f, 0x002f, 0x00ff };

	assert_int_equal(h->legacy_version, 0x0303);
	assert_false(h->flags & HELLO_F_SUPPORTED_VERSIONS);
	assert_int_equal(h->ciphers.n, 5);
	assert_memory_equal(h->ciphers.v, ciphers, sizeof(ciphers));
	assert_int_equal(h->groups.n, 1);
	assert_int_equal(h->groups.v[0], 0x0017);
	assert_int_equal(h->sigalgs.n, 20);
	assert_string_equal(h->sni, "mail.example.com");
}

static void test_hex_forms(void **state)
{
	static const char *const forms[] = { ws_dump, ws_frame, xxd_dump };
	struct hello h, ref;
	uint8_t bin[512];
	size_t n, i;
	char err[256], text[2048], *p;
	unsigned k;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(forms); k++) {
		assert_int_equal(explain_hex(forms[k], &h, err, sizeof(err)), 0);
		check_capture(&h);
		if (forms[k] == ws_frame)
			assert_string_equal(err, "skipped 54 bytes before the TLS record");
		else
			assert_string_equal(err, "");
	}
	/* The bytes themselves, for the other forms. */
	assert_int_equal(explain_unhex(xxd_dump, bin, sizeof(bin), &n, err, sizeof(err)), 0);
	assert_int_equal(n, 159);
	assert_int_equal(hello_parse(bin, n, &ref, NULL), HELLO_OK);

	/* A hex stream; spaced; colon-separated; 0x, and \x escaped; a
	 * bare handshake message (the record header cut off). */
	for (k = 0; k < 6; k++) {
		p = text;
		for (i = k == 5 ? 5 : 0; i < n; i++) {
			static const char *const fmt[] = { "%02x", "%02X ", "%02x:", "0x%02x, ",
							   "\\x%02x", "%02x " };
			p += sprintf(p, fmt[k], bin[i]);
			if (k == 1 && i % 16 == 15)
				p += sprintf(p, "\n");
		}
		assert_int_equal(explain_hex(text, &h, err, sizeof(err)), 0);
		check_capture(&h);
		assert_string_equal(h.ja3, ref.ja3);
	}
}

/* The fields form gives the same summary as the capture (but for the
 * random, session id and the extensions s_client adds). */
static void test_fields(void **state)
{
	struct hello h, ref;
	struct certsel_cert set[2] = { C_P384, C_RSA };
	struct certsel_verdict v1, v2;
	char err[256];

	(void)state;
	assert_int_equal(explain_hex(ws_dump, &ref, err, sizeof(err)), 0);
	assert_int_equal(explain_fields(&f_exchange, &h, err, sizeof(err)), 0);
	check_capture(&h);
	assert_memory_equal(h.sigalgs.v, ref.sigalgs.v, sizeof(h.sigalgs.v[0]) * ref.sigalgs.n);
	assert_true(h.flags & HELLO_F_EMS);
	assert_true(h.flags & HELLO_F_RENEG_SCSV);
	/* and the same verdict */
	certsel_choose(&h, set, 2, policy_get(POLICY_INTERMEDIATE), NOW, &v1);
	certsel_choose(&ref, set, 2, policy_get(POLICY_INTERMEDIATE), NOW, &v2);
	assert_int_equal(v1.chosen, 1);
	assert_int_equal(v1.chosen, v2.chosen);
	assert_int_equal(v1.suite, v2.suite);
	assert_int_equal(v1.cert[0].rule, CERTSEL_R_ECDSA_CURVE_NOT_OFFERED);
	assert_int_equal(v2.cert[0].rule, CERTSEL_R_ECDSA_CURVE_NOT_OFFERED);

	/* TLS 1.3 by fields against the same client built here. */
	{
		struct explain_fields f = {
			.ciphers = "TLS_AES_256_GCM_SHA384,TLS_CHACHA20_POLY1305_SHA256,"
				   "TLS_AES_128_GCM_SHA256,ECDHE-ECDSA-AES256-GCM-SHA384,"
				   "ECDHE-RSA-AES256-GCM-SHA384,ECDHE-ECDSA-AES128-GCM-SHA256,"
				   "ECDHE-RSA-AES128-GCM-SHA256,ECDHE-ECDSA-CHACHA20-POLY1305,"
				   "ECDHE-RSA-CHACHA20-POLY1305",
			.versions = "TLSv1.3:tls1_2",
			.groups = "X25519:secp256r1:x448:P384",
			.sigalgs = "0x0403:0x0503:0x0603:0x0807:0x0808:0x0804:0x0805:0x0806:"
				   "0x0401:0x0501:0x0601",
			.sni = "mail.example.com",
		};
		struct hello mine;

		assert_int_equal(explain_fields(&f, &h, err, sizeof(err)), 0);
		parse_client(&tls13, &mine);
		assert_int_equal(h.version, 0x0304);
		assert_memory_equal(&h.ciphers, &mine.ciphers, sizeof(h.ciphers));
		assert_memory_equal(&h.groups, &mine.groups, sizeof(h.groups));
		assert_memory_equal(&h.sigalgs, &mine.sigalgs, sizeof(h.sigalgs));
		assert_memory_equal(&h.versions, &mine.versions, sizeof(h.versions));
		assert_memory_equal(&h.key_shares, &mine.key_shares, sizeof(h.key_shares));
		assert_string_equal(h.sni, mine.sni);
	}
}

struct bad {
	const char *input;
	const char *err;
};

static void test_hex_errors(void **state)
{
	static const struct bad bad[] = {
		{ "", "no hex bytes in the input" },
		{ "   \n\n", "no hex bytes in the input" },
		{ "16 03 01 zz", "line 1, column 10: 'zz' is not a hex byte" },
		{ "16 03 01\n00 9a 0", "line 2, column 7: '0' has an odd number of hex digits" },
		{ "160301009", "line 1, column 1: '160301009' has an odd number of hex digits" },
		{ "16 03 01 00 9a 01 00 00 96 03", "as a TLS record: the ClientHello is incomplete: "
		  "10 bytes given, at least 159 needed (copy every TCP segment of it)" },
		{ "17 03 03 00 05 01 02 03 04 05", "the bytes start with 0x17: neither a TLS handshake "
		  "record (0x16) nor a ClientHello message (0x01), and no record follows" },
		{ "16 03 01 00 04 02 00 00 00", "as a TLS record: byte 5: handshake message type 2 "
		  "is not client_hello (1)" },
		{ "0000   16 03 01 00 04 01 00 00 00   ........\n0010   zz", "as a TLS record: "
		  "byte 9: ClientHello body of 0 bytes is shorter than client_version, random and "
		  "session_id length (35)" },
		{ "01 00 00 02 03 03", "as a handshake message: byte 9: ClientHello body of 2 bytes "
		  "is shorter than client_version, random and session_id length (35)" },
	};
	struct hello h;
	char err[256];
	unsigned i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(explain_hex(bad[i].input, &h, err, sizeof(err)), -EINVAL);
		if (strcmp(err, bad[i].err))
			print_message("input %u: %s\n", i, err);
		assert_string_equal(err, bad[i].err);
	}
}

static void test_field_errors(void **state)
{
	static const struct {
		struct explain_fields f;
		const char *err;
	} bad[] = {
		{ { .ciphers = NULL }, "ciphers: none given" },
		{ { .ciphers = "AES128-SHA,AES129-SHA" }, "ciphers: item 2 'AES129-SHA' is not a "
		  "cipher suite sluice knows (IANA or OpenSSL name, or 0xNNNN)" },
		{ { .ciphers = "AES128-SHA,,AES256-SHA" }, "ciphers: item 2 is empty" },
		{ { .ciphers = "0x12345" }, "ciphers: item 1 '0x12345' is not a cipher suite sluice "
		  "knows (IANA or OpenSSL name, or 0xNNNN)" },
		{ { .ciphers = "AES128-SHA", .versions = "tls1.2,tls1.4" }, "versions: item 2 "
		  "'tls1.4' is not a protocol version (tls1.0 ... tls1.3)" },
		{ { .ciphers = "AES128-SHA", .groups = "x25519,P-255" }, "groups: item 2 'P-255' is "
		  "not a group (x25519, secp256r1, P-384, 23...)" },
		{ { .ciphers = "AES128-SHA", .groups = "" }, "groups: empty (leave it out to send no "
		  "supported_groups)" },
		{ { .ciphers = "AES128-SHA", .sigalgs = "ECDSA+MD5" }, "sigalgs: item 1 'ECDSA+MD5' "
		  "is not a signature scheme (IANA name, ECDSA+SHA256, or 0xNNNN)" },
		{ { .ciphers = "AES128-SHA", .sni = "mail example.com" }, "sni: character 5 of "
		  "'mail example.com' is not a host name character" },
		{ { .ciphers = "AES128-SHA", .options = "ems,grease" }, "options: 'grease' is not one "
		  "of fallback_scsv, reneg_scsv, ems, no_key_share, supported_versions" },
	};
	struct hello h;
	char err[256];
	unsigned i;
	uint16_t id;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(explain_fields(&bad[i].f, &h, err, sizeof(err)), -EINVAL);
		if (strcmp(err, bad[i].err))
			print_message("fields %u: %s\n", i, err);
		assert_string_equal(err, bad[i].err);
	}
	/* names and numbers */
	assert_int_equal(explain_sigalg_id("RSA-PSS+SHA256", &id), 0);
	assert_int_equal(id, 0x0804);
	assert_int_equal(explain_sigalg_id("ECDSA+SHA1", &id), 0);
	assert_int_equal(id, 0x0203);
	assert_int_equal(explain_group_id("prime256v1", &id), 0);
	assert_int_equal(id, 0x0017);
	assert_int_equal(explain_group_id("29", &id), 0);
	assert_int_equal(id, 0x001d);
	assert_int_equal(explain_version_id("TLSv1", &id), 0);
	assert_int_equal(id, 0x0301);
	assert_int_equal(explain_suite_id("tls_rsa_with_aes_128_cbc_sha", &id), 0);
	assert_int_equal(id, 0x002f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_explain_curve_rule),
		cmocka_unit_test(test_explain_every_row),
		cmocka_unit_test(test_sni),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_version_too_new),
		cmocka_unit_test(test_rules_table),
		cmocka_unit_test(test_hex_forms),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_hex_errors),
		cmocka_unit_test(test_field_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
