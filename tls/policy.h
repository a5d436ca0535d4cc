/*
 * tls/policy: the cipher policies (modern, intermediate, legacy) and the
 * tables of cipher suites, groups and signature schemes sluice knows, all
 * from tls/policy.def. Everything here is a const table or a pure lookup,
 * except policy_apply(), the one function that touches OpenSSL: it sets a
 * policy on an SSL_CTX explicitly, so that the system openssl.cnf never
 * decides (Debian's sets SECLEVEL=2 and a TLS 1.2 minimum).
 */
#ifndef SLUICE_POLICY_H
#define SLUICE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLSV_1_0 0x0301
#define TLSV_1_1 0x0302
#define TLSV_1_2 0x0303
#define TLSV_1_3 0x0304

enum policy_kx { POLICY_KX_ANY, POLICY_KX_RSA, POLICY_KX_ECDHE, POLICY_KX_DHE };
enum policy_auth { POLICY_AUTH_ANY, POLICY_AUTH_RSA, POLICY_AUTH_ECDSA };

/* Who signs with a signature scheme (RFC 8446 4.2.3). */
enum policy_sigfam {
	POLICY_SIG_RSA,       /* RSASSA-PKCS1-v1_5 */
	POLICY_SIG_PSS_RSAE,  /* RSASSA-PSS with an rsaEncryption key */
	POLICY_SIG_PSS_PSS,   /* RSASSA-PSS with an id-RSASSA-PSS key */
	POLICY_SIG_ECDSA,
	POLICY_SIG_ED25519,
	POLICY_SIG_ED448,
	POLICY_SIG_DSA,
};

enum policy_hash {
	POLICY_HASH_NONE,     /* EdDSA: no separate hash */
	POLICY_HASH_SHA1,
	POLICY_HASH_SHA224,
	POLICY_HASH_SHA256,
	POLICY_HASH_SHA384,
	POLICY_HASH_SHA512,
};

struct policy_suite {
	uint16_t id;                /* IANA code point */
	const char *ossl;           /* OpenSSL name */
	const char *iana;           /* IANA name */
	uint8_t kx;                 /* enum policy_kx */
	uint8_t auth;               /* enum policy_auth */
	bool aead;
	uint16_t min_version, max_version;
	uint16_t bits;              /* strength, as the security level sees it */
};

struct policy_group {
	uint16_t id;
	const char *ossl;           /* name in an OpenSSL groups list */
	const char *iana;
	uint16_t secbits;
	bool tls13_only;            /* OpenSSL 3.0: FFDHE only in TLS 1.3 */
};

struct policy_sigalg {
	uint16_t id;
	const char *iana;
	const char *ossl;           /* name in an OpenSSL sigalgs list */
	uint8_t family;             /* enum policy_sigfam */
	uint8_t hash;               /* enum policy_hash */
	uint16_t curve;             /* group a TLS 1.3 ECDSA scheme names, or 0 */
};

enum policy_id {
#define POLICY(id, ...) POLICY_##id,
#include "policy.def"
	POLICY_COUNT
};

struct policy {
	enum policy_id id;
	const char *name;
	uint16_t min_version, max_version;
	int seclevel;               /* OpenSSL security level */
	bool dhe;                   /* DHE suites: SSL_CTX_set_dh_auto() */
	const char *ciphers;        /* OpenSSL cipher list, TLS <= 1.2 ("": none) */
	const char *ciphersuites;   /* TLS 1.3 */
	const char *groups;
	const char *sigalgs;
	const uint16_t *suites;     /* the same as code points, server preference */
	unsigned n_suites;
	const uint16_t *group_ids;
	unsigned n_groups;
	const uint16_t *sigalg_ids;
	unsigned n_sigalgs;
};

/* The policy with this id, or by name ("modern"); NULL if none. */
const struct policy *policy_get(enum policy_id id);
const struct policy *policy_by_name(const char *name);

/* Table lookups by code point; NULL when sluice does not know it. */
const struct policy_suite *policy_suite(uint16_t id);
const struct policy_group *policy_group(uint16_t id);
const struct policy_sigalg *policy_sigalg(uint16_t id);

/* The whole tables, for listing and name lookups. */
const struct policy_suite *policy_suites(unsigned *n);
const struct policy_group *policy_groups(unsigned *n);
const struct policy_sigalg *policy_sigalgs(unsigned *n);

/* Whether the policy lists a suite, group or signature scheme. */
bool policy_has_suite(const struct policy *p, uint16_t id);
bool policy_has_group(const struct policy *p, uint16_t id);
bool policy_has_sigalg(const struct policy *p, uint16_t id);

/* "TLS 1.2" for 0x0303, "SSL 3.0", "0x7f1c" for others (into buf). */
const char *policy_version_name(uint16_t v, char *buf, size_t len);

/* Names of the hash and the signing family ("SHA-256", "ECDSA"). */
const char *policy_hash_name(enum policy_hash h);
const char *policy_sigfam_name(enum policy_sigfam f);

/*
 * The minimum security bits of an OpenSSL security level (0: none, 1: 80,
 * 2: 112, 3: 128, 4: 192, 5: 256), and the bits OpenSSL 3.0 credits a
 * signature hash with (SHA-1 64, MD5+SHA-1 67: below level 1 on purpose).
 */
int policy_level_bits(int level);
int policy_hash_bits(enum policy_hash h);

struct ssl_ctx_st; /* SSL_CTX */

/*
 * Set policy p on ctx: protocol range, both cipher lists, groups,
 * signature algorithms, security level (last, so no cipher string can
 * change it), DH auto for DHE, server preference, no renegotiation, and
 * clears the SSL_OP_NO_TLSv1* bits that a system openssl.cnf may have set.
 * Returns 0, or -EINVAL with the call and OpenSSL's reason in why.
 */
int policy_apply(struct ssl_ctx_st *ctx, const struct policy *p, char *why, size_t len);

#endif
