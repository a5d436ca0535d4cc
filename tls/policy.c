/*
 * tls/policy: the tables of tls/policy.def and the one function that puts
 * a policy on an OpenSSL SSL_CTX.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "policy.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct policy_suite suites[] = {
#define SUITE(id, ossl, iana, kx, auth, aead, minv, maxv, bits) \
	{ id, ossl, iana, POLICY_KX_##kx, POLICY_AUTH_##auth, aead, minv, maxv, bits },
#include "policy.def"
};

static const struct policy_group groups[] = {
#define GROUP(id, ossl, iana, secbits, tls13_only) { id, ossl, iana, secbits, tls13_only },
#include "policy.def"
};

static const struct policy_sigalg sigalgs[] = {
#define SIGALG(id, iana, ossl, family, hash, curve) \
	{ id, iana, ossl, POLICY_SIG_##family, POLICY_HASH_##hash, curve },
#include "policy.def"
};

/* The code point lists of each policy, as arrays named after it. */
#define CODES(...) { __VA_ARGS__ }
#define POLICY(id, name, minv, maxv, lvl, dhe, c12, c13, gr, sa, SUITES, GROUPS, SIGALGS) \
	static const uint16_t id##_suites[] = SUITES;                                   \
	static const uint16_t id##_groups[] = GROUPS;                                   \
	static const uint16_t id##_sigalgs[] = SIGALGS;
#include "policy.def"

static const struct policy policies[POLICY_COUNT] = {
#define POLICY(id, name, minv, maxv, lvl, dhe, c12, c13, gr, sa, SUITES, GROUPS, SIGALGS) \
	[POLICY_##id] = { POLICY_##id, name, minv, maxv, lvl, dhe, c12, c13, gr, sa,      \
			  id##_suites, ARRAY_SIZE(id##_suites),                            \
			  id##_groups, ARRAY_SIZE(id##_groups),                            \
			  id##_sigalgs, ARRAY_SIZE(id##_sigalgs) },
#include "policy.def"
};
#undef CODES

const struct policy *policy_get(enum policy_id id)
{
	return (unsigned)id < POLICY_COUNT ? &policies[id] : NULL;
}

const struct policy *policy_by_name(const char *name)
{
	unsigned i;

	for (i = 0; name && i < POLICY_COUNT; i++)
		if (!strcasecmp(policies[i].name, name))
			return &policies[i];
	return NULL;
}

const struct policy_suite *policy_suite(uint16_t id)
{
	unsigned i;

	for (i = 0; i < ARRAY_SIZE(suites); i++)
		if (suites[i].id == id)
			return &suites[i];
	return NULL;
}

const struct policy_group *policy_group(uint16_t id)
{
	unsigned i;

	for (i = 0; i < ARRAY_SIZE(groups); i++)
		if (groups[i].id == id)
			return &groups[i];
	return NULL;
}

const struct policy_sigalg *policy_sigalg(uint16_t id)
{
	unsigned i;

	for (i = 0; i < ARRAY_SIZE(sigalgs); i++)
		if (sigalgs[i].id == id)
			return &sigalgs[i];
	return NULL;
}

const struct policy_suite *policy_suites(unsigned *n)
{
	*n = ARRAY_SIZE(suites);
	return suites;
}

const struct policy_group *policy_groups(unsigned *n)
{
	*n = ARRAY_SIZE(groups);
	return groups;
}

const struct policy_sigalg *policy_sigalgs(unsigned *n)
{
	*n = ARRAY_SIZE(sigalgs);
	return sigalgs;
}

static bool in_list(const uint16_t *l, unsigned n, uint16_t id)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (l[i] == id)
			return true;
	return false;
}

bool policy_has_suite(const struct policy *p, uint16_t id)
{
	return in_list(p->suites, p->n_suites, id);
}

bool policy_has_group(const struct policy *p, uint16_t id)
{
	return in_list(p->group_ids, p->n_groups, id);
}

bool policy_has_sigalg(const struct policy *p, uint16_t id)
{
	return in_list(p->sigalg_ids, p->n_sigalgs, id);
}

const char *policy_version_name(uint16_t v, char *buf, size_t len)
{
	if (v == 0x0300)
		snprintf(buf, len, "SSL 3.0");
	else if (v == 0x0002)
		snprintf(buf, len, "SSL 2.0");
	else if (v >= TLSV_1_0 && v <= TLSV_1_3)
		snprintf(buf, len, "TLS 1.%u", v - TLSV_1_0);
	else
		snprintf(buf, len, "0x%04x", v);
	return buf;
}

const char *policy_hash_name(enum policy_hash h)
{
	static const char *const n[] = {
		[POLICY_HASH_NONE] = "none", [POLICY_HASH_SHA1] = "SHA-1",
		[POLICY_HASH_SHA224] = "SHA-224", [POLICY_HASH_SHA256] = "SHA-256",
		[POLICY_HASH_SHA384] = "SHA-384", [POLICY_HASH_SHA512] = "SHA-512",
	};
	return (unsigned)h < ARRAY_SIZE(n) ? n[h] : "?";
}

const char *policy_sigfam_name(enum policy_sigfam f)
{
	static const char *const n[] = {
		[POLICY_SIG_RSA] = "RSA PKCS#1", [POLICY_SIG_PSS_RSAE] = "RSA-PSS",
		[POLICY_SIG_PSS_PSS] = "RSA-PSS (PSS key)", [POLICY_SIG_ECDSA] = "ECDSA",
		[POLICY_SIG_ED25519] = "Ed25519", [POLICY_SIG_ED448] = "Ed448",
		[POLICY_SIG_DSA] = "DSA",
	};
	return (unsigned)f < ARRAY_SIZE(n) ? n[f] : "?";
}

int policy_level_bits(int level)
{
	static const int bits[] = { 0, 80, 112, 128, 192, 256 };

	if (level <= 0)
		return 0;
	return bits[level > 5 ? 5 : level];
}

int policy_hash_bits(enum policy_hash h)
{
	/* OpenSSL 3.0 ssl/t1_lib.c sigalg_security_bits(): half the digest,
	 * SHA-1 lowered to 64 so that level 1 refuses it. EdDSA: 128. */
	switch (h) {
	case POLICY_HASH_SHA1:   return 64;
	case POLICY_HASH_SHA224: return 112;
	case POLICY_HASH_SHA256: return 128;
	case POLICY_HASH_SHA384: return 192;
	case POLICY_HASH_SHA512: return 256;
	case POLICY_HASH_NONE:   return 128;
	}
	return 0;
}

/* OpenSSL's first queued error in words (clears the queue). */
static const char *ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r ? r : e ? "unknown OpenSSL error" : "refused");
	ERR_clear_error();
	return buf;
}

int policy_apply(SSL_CTX *ctx, const struct policy *p, char *why, size_t len)
{
	char r[128];
	const char *call;

	ERR_clear_error();
	call = "SSL_CTX_set_min_proto_version";
	if (!SSL_CTX_set_min_proto_version(ctx, p->min_version))
		goto fail;
	call = "SSL_CTX_set_max_proto_version";
	if (!SSL_CTX_set_max_proto_version(ctx, p->max_version))
		goto fail;
	/* An empty list is refused by OpenSSL; see policy.def (modern). */
	call = "SSL_CTX_set_cipher_list";
	if (*p->ciphers && !SSL_CTX_set_cipher_list(ctx, p->ciphers))
		goto fail;
	call = "SSL_CTX_set_ciphersuites";
	if (!SSL_CTX_set_ciphersuites(ctx, p->ciphersuites))
		goto fail;
	call = "SSL_CTX_set1_groups_list";
	if (!SSL_CTX_set1_groups_list(ctx, p->groups))
		goto fail;
	call = "SSL_CTX_set1_sigalgs_list";
	if (!SSL_CTX_set1_sigalgs_list(ctx, p->sigalgs))
		goto fail;
	call = "SSL_CTX_set_dh_auto";
	if (!SSL_CTX_set_dh_auto(ctx, p->dhe ? 1 : 0))
		goto fail;
	/* The range is min/max only: a system openssl.cnf "Protocol" line
	 * would otherwise leave SSL_OP_NO_TLSv1 and friends behind. */
	SSL_CTX_clear_options(ctx, SSL_OP_NO_SSL_MASK | SSL_OP_PRIORITIZE_CHACHA);
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_security_level(ctx, p->seclevel);
	return 0;
fail:
	snprintf(why, len, "policy %s: %s: %s", p->name, call, ossl_reason(r, sizeof(r)));
	return -EINVAL;
}
