/*
 * tls/certsel: which certificate of a cert set serves a client, decided
 * from its parsed ClientHello (tls/hello) and the listener's policy
 * (tls/policy) before OpenSSL sees the handshake, and the same reasoning
 * in words for `sluice explain` and the failure reason in the logs.
 *
 * A pure function: no I/O, no allocation, no OpenSSL, no state but const
 * tables. It models what OpenSSL 3.0 does as a server when its SSL_CTX
 * holds that one certificate and the policy (policy_apply()), with no
 * servername or certificate callback and without "strict" chain checks:
 * ssl_choose_server_version(), ssl3_choose_cipher() with ssl_set_masks()
 * and tls1_check_chain(), the TLS 1.3 key_share processing and
 * final_key_share(), tls1_set_server_sigalgs() and tls_choose_sigalg().
 * Each certificate is judged on its own; the verdict is the cheapest one
 * that works (or the first by explicit preference).
 */
#ifndef SLUICE_CERTSEL_H
#define SLUICE_CERTSEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hello.h"
#include "policy.h"

#define CERTSEL_CERTS_MAX 16

enum certsel_rule {
#define R(name, label, kind, group, rfc, sentence, fix, ossl) CERTSEL_R_##name,
#include "certsel_rules.def"
#undef R
	CERTSEL_R_COUNT
};

enum certsel_kind { CERTSEL_OK, CERTSEL_FAIL, CERTSEL_WARN, CERTSEL_NOTE };

enum certsel_key {
	CERTSEL_KEY_RSA,
	CERTSEL_KEY_P256,
	CERTSEL_KEY_P384,
	CERTSEL_KEY_P521,
	CERTSEL_KEY_ED25519,
};

/* The signature OpenSSL makes in TLS 1.0 and 1.1 with an RSA key (MD5 and
 * SHA-1 concatenated): no IANA code point, so a private value. */
#define CERTSEL_SIG_RSA_MD5_SHA1 0xff01

/* What certsel needs to know of one certificate (the caller fills it from
 * the loaded X509; nothing here is owned). */
struct certsel_cert {
	const char *label;          /* for explain: "rsa-2048 /etc/sluice/rsa.pem"; may be NULL */
	uint8_t key;                /* enum certsel_key */
	uint16_t bits;              /* RSA modulus bits (ignored for the others) */
	uint16_t issuer_sig;        /* scheme the issuer signed the leaf with
				       (0x0401 sha256WithRSAEncryption, 0x0804 PSS,
				       0x0403 ecdsa-with-SHA256...); 0: unknown */
	bool self_signed;           /* the security level skips its signature */
	bool is_default;            /* answers clients whose SNI no cert names */
	uint8_t pref;               /* explicit preference: 1 first, 2...; 0: by cost */
	const char *const *names;   /* DNS names, exact or "*.example.com" */
	unsigned n_names;
	int64_t not_before, not_after; /* Unix time; 0: not known */
};

enum certsel_sni {
	CERTSEL_SNI_NONE,     /* the client sent no host_name */
	CERTSEL_SNI_EXACT,    /* a certificate names it */
	CERTSEL_SNI_WILDCARD, /* only a wildcard covers it */
	CERTSEL_SNI_DEFAULT,  /* nothing names it: the default certificates */
};

/* One certificate under the policy. */
struct certsel_result {
	enum certsel_rule rule;     /* OK, or the FAIL rule OpenSSL would meet */
	bool considered;            /* SNI made it a candidate */
	bool hrr;                   /* TLS 1.3: HelloRetryRequest for group */
	uint16_t version;           /* negotiated, or being negotiated at the failure */
	uint16_t suite;             /* chosen suite (0: none yet) */
	uint16_t group;             /* (EC)DHE group; 0 for RSA and DHE key exchange */
	uint16_t sigalg;            /* signature scheme; 0 for RSA key exchange */
	uint16_t about;             /* the suite or group the rule is about, or 0 */
	uint64_t notes;             /* bit r: WARN/NOTE rule r applies */
};

struct certsel_verdict {
	int chosen;                 /* index of the certificate, or -1 */
	enum certsel_rule rule;     /* OK, or why nothing works */
	int rule_cert;              /* the certificate that rule is about, or -1 */
	uint16_t version, suite, group, sigalg;
	bool hrr;
	enum certsel_sni sni;
	uint64_t notes;             /* of the hello: SNI_NO_MATCH, HELLO_TRUNCATED */
	unsigned n;
	struct certsel_result cert[CERTSEL_CERTS_MAX];
};

/*
 * Judge every certificate of certs[0, n) for hello h under policy p, and
 * choose: among those SNI makes candidates (exact names, else wildcards,
 * else the default ones) that succeed, one within its validity at now
 * (Unix time; 0: do not check) before one outside it, then by explicit
 * preference, then cheapest signer (certsel_cost()), then order.
 * Returns 0 with v->chosen set, -ENOENT when no candidate works (v->rule
 * and v->rule_cert say why), -EINVAL if n > CERTSEL_CERTS_MAX or an
 * argument is NULL.
 */
int certsel_choose(const struct hello *h, const struct certsel_cert *certs, unsigned n,
		   const struct policy *p, int64_t now, struct certsel_verdict *v);

/*
 * The verdict in words, one line per fact: the client, the policy, each
 * certificate (OK with what it negotiates, or FAIL with the rule, the RFC
 * and the fix; warnings and notes), and the verdict. Arguments as given to
 * certsel_choose(). Returns what snprintf returns (the length it needed).
 */
int certsel_explain(const struct hello *h, const struct certsel_cert *certs, unsigned n,
		    const struct policy *p, const struct certsel_verdict *v,
		    char *buf, size_t len);

/*
 * One line for a log: "label: sentence (RFC)" for the verdict's rule, or
 * for certificate i's when i >= 0. Returns what snprintf returns.
 */
int certsel_reason(const struct hello *h, const struct certsel_cert *certs, unsigned n,
		   const struct policy *p, const struct certsel_verdict *v, int i,
		   char *buf, size_t len);

const char *certsel_rule_label(enum certsel_rule r);
enum certsel_kind certsel_rule_kind(enum certsel_rule r);
const char *certsel_rule_rfc(enum certsel_rule r);
const char *certsel_rule_openssl(enum certsel_rule r);

/* Signing cost rank of a key: P-256 < Ed25519 < P-384 < RSA-2048 < P-521 <
 * RSA-3072 < RSA-4096 < larger. */
unsigned certsel_cost(enum certsel_key key, unsigned bits);

/* "ECDSA P-256", "RSA-2048", "Ed25519" into buf. */
const char *certsel_key_name(enum certsel_key key, unsigned bits, char *buf, size_t len);

/* Whether DNS name pattern (exact, or "*." and one label) covers host
 * (case-insensitive; one trailing dot on host ignored). 2 exact, 1
 * wildcard, 0 no. */
int certsel_name_match(const char *pattern, const char *host);

#endif
