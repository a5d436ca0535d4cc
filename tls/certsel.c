/*
 * tls/certsel: certificate choice from a parsed ClientHello, the same way
 * OpenSSL 3.0 would negotiate with each certificate alone (certsel.h says
 * which OpenSSL functions each step follows). The words are in
 * certsel_explain.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "certsel_int.h"

/* ------------------------------------------------------------ the keys --- */

unsigned certsel_cost(enum certsel_key key, unsigned bits)
{
	switch (key) {
	case CERTSEL_KEY_P256:    return 10;
	case CERTSEL_KEY_ED25519: return 20;
	case CERTSEL_KEY_P384:    return 30;
	case CERTSEL_KEY_P521:    return 50;
	case CERTSEL_KEY_RSA:
		return bits <= 2048 ? 40 : bits <= 3072 ? 60 : bits <= 4096 ? 70 : 80;
	}
	return 100;
}

const char *certsel_key_name(enum certsel_key key, unsigned bits, char *buf, size_t len)
{
	switch (key) {
	case CERTSEL_KEY_RSA:     snprintf(buf, len, "RSA-%u", bits); break;
	case CERTSEL_KEY_P256:    snprintf(buf, len, "ECDSA P-256"); break;
	case CERTSEL_KEY_P384:    snprintf(buf, len, "ECDSA P-384"); break;
	case CERTSEL_KEY_P521:    snprintf(buf, len, "ECDSA P-521"); break;
	case CERTSEL_KEY_ED25519: snprintf(buf, len, "Ed25519"); break;
	default:                  snprintf(buf, len, "unknown key"); break;
	}
	return buf;
}

bool certsel_key_is_ec(enum certsel_key k)
{
	return k == CERTSEL_KEY_P256 || k == CERTSEL_KEY_P384 || k == CERTSEL_KEY_P521;
}

/* The named group of an ECDSA key's curve, or 0. */
uint16_t certsel_key_curve(enum certsel_key k)
{
	return k == CERTSEL_KEY_P256 ? 0x0017 : k == CERTSEL_KEY_P384 ? 0x0018 :
	       k == CERTSEL_KEY_P521 ? 0x0019 : 0;
}

/* Security bits of a key, as EVP_PKEY_get_security_bits() (BN_security_bits
 * for RSA, SP 800-57). */
int certsel_key_secbits(const struct certsel_cert *c)
{
	switch (c->key) {
	case CERTSEL_KEY_RSA:
		return c->bits >= 15360 ? 256 : c->bits >= 7680 ? 192 : c->bits >= 3072 ? 128 :
		       c->bits >= 2048 ? 112 : c->bits >= 1024 ? 80 : 0;
	case CERTSEL_KEY_P256:
	case CERTSEL_KEY_ED25519: return 128;
	case CERTSEL_KEY_P384:    return 192;
	case CERTSEL_KEY_P521:    return 256;
	}
	return 0;
}

/* Whether key k signs with family f (OpenSSL's sig_idx). */
bool certsel_fam_fits_key(enum policy_sigfam f, enum certsel_key k)
{
	switch (f) {
	case POLICY_SIG_RSA:
	case POLICY_SIG_PSS_RSAE: return k == CERTSEL_KEY_RSA;
	case POLICY_SIG_ECDSA:    return certsel_key_is_ec(k);
	case POLICY_SIG_ED25519:  return k == CERTSEL_KEY_ED25519;
	default:                  return false; /* PSS keys, Ed448, DSA: none here */
	}
}

/* ------------------------------------------------------------- context --- */

struct ctx {
	const struct hello *h;
	const struct policy *p;
	int minbits;                /* of the policy's security level */
	bool groups, sigalgs, sigalgs_cert;   /* extensions sent */
};

bool certsel_has(const uint16_t *l, unsigned n, uint16_t v)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (l[i] == v)
			return true;
	return false;
}

#define CLIENT_HAS(c_, list_, id_) certsel_has((c_)->h->list_.v, (c_)->h->list_.kept, (id_))

/* A version the policy enables (OpenSSL ssl_method_error(): range and the
 * security level's SSL_SECOP_VERSION). */
static bool version_enabled(const struct ctx *c, uint16_t v)
{
	if (v < c->p->min_version || v > c->p->max_version)
		return false;
	if (c->p->seclevel >= 3 && v <= TLSV_1_0)
		return false;
	if (c->p->seclevel >= 4 && v <= TLSV_1_1)
		return false;
	return true;
}

/* is_tls13_capable(): an ECDSA key needs a scheme for its curve among the
 * policy's signature algorithms (RFC 8446 4.2.3). */
static bool tls13_capable(const struct ctx *c, const struct certsel_cert *ct)
{
	unsigned i;

	if (!certsel_key_is_ec(ct->key))
		return true;
	for (i = 0; i < c->p->n_sigalgs; i++) {
		const struct policy_sigalg *s = policy_sigalg(c->p->sigalg_ids[i]);

		if (s && s->family == POLICY_SIG_ECDSA && s->curve == certsel_key_curve(ct->key))
			return true;
	}
	return false;
}

/* tls12_sigalg_allowed(): known, no DSA in TLS 1.3, hash strong enough. */
static bool sigalg_allowed(const struct ctx *c, const struct policy_sigalg *s, uint16_t v)
{
	if (!s)
		return false;
	if (v >= TLSV_1_3 && s->family == POLICY_SIG_DSA)
		return false;
	return policy_hash_bits(s->hash) >= c->minbits;
}

/* A group OpenSSL would use at version v (tls_group_allowed(), and the
 * group's TLS range: FFDHE only in TLS 1.3). */
static bool group_usable(const struct ctx *c, uint16_t id, uint16_t v)
{
	const struct policy_group *g = policy_group(id);

	if (!g || g->secbits < c->minbits)
		return false;
	return v >= TLSV_1_3 || !g->tls13_only;
}

/* tls1_shared_group(s, 0) with server preference: the first policy group
 * the client offers. 0 if none (or no supported_groups at all). */
static uint16_t shared_group(const struct ctx *c, uint16_t v)
{
	unsigned i;

	for (i = 0; i < c->p->n_groups; i++) {
		uint16_t g = c->p->group_ids[i];

		if (CLIENT_HAS(c, groups, g) && group_usable(c, g, v))
			return g;
	}
	return 0;
}

/*
 * tls1_set_shared_sigalgs() with server preference: the policy's schemes
 * the client's signature_algorithms also name, allowed at version v.
 */
static unsigned shared_sigalgs(const struct ctx *c, uint16_t v, uint16_t *out)
{
	unsigned i, n = 0;

	for (i = 0; i < c->p->n_sigalgs; i++) {
		uint16_t id = c->p->sigalg_ids[i];

		if (CLIENT_HAS(c, sigalgs, id) && sigalg_allowed(c, policy_sigalg(id), v))
			out[n++] = id;
	}
	return n;
}

/*
 * check_cert_usable(): with signature_algorithms_cert, the issuer's
 * signature on the leaf must be one the client names, compared as OpenSSL
 * does by (hash, signature type): the two RSA-PSS kinds count as one.
 */
static bool issuer_sig_accepted(const struct ctx *c, const struct certsel_cert *ct)
{
	const struct policy_sigalg *is = policy_sigalg(ct->issuer_sig), *s;
	unsigned i;

	if (!c->sigalgs_cert || !is)    /* unknown: cannot tell, assume yes */
		return true;
	for (i = 0; i < c->h->sigalgs_cert.kept; i++) {
		s = policy_sigalg(c->h->sigalgs_cert.v[i]);
		if (!s || s->hash != is->hash)
			continue;
		if (s->family == is->family ||
		    ((s->family == POLICY_SIG_PSS_RSAE || s->family == POLICY_SIG_PSS_PSS) &&
		     (is->family == POLICY_SIG_PSS_RSAE || is->family == POLICY_SIG_PSS_PSS)))
			return true;
	}
	return false;
}

/* rsa_pss_check_min_key_size(): the key must hold 2 * hash + 2 bytes. */
static bool pss_fits(const struct certsel_cert *ct, const struct policy_sigalg *s)
{
	unsigned hlen = s->hash == POLICY_HASH_SHA512 ? 64 : s->hash == POLICY_HASH_SHA384 ? 48 : 32;

	return s->family != POLICY_SIG_PSS_RSAE || ct->bits / 8 >= 2 * hlen + 2;
}

/* ------------------------------------------------------ version (4.2.1) --- */

/* ssl_choose_server_version(). Returns the version or 0 with r->rule. */
static uint16_t choose_version(const struct ctx *c, const struct certsel_cert *ct,
			       struct certsel_result *r)
{
	const struct hello *h = c->h;
	uint16_t best = 0, cmax = 0, v;
	unsigned i;

	if (h->flags & HELLO_F_SUPPORTED_VERSIONS) {
		if (h->legacy_version <= 0x0300) {
			r->rule = CERTSEL_R_BAD_LEGACY_VERSION;
			return 0;
		}
		for (i = 0; i < h->versions.kept; i++) {
			v = h->versions.v[i];
			if (v >= 0x0300 && v <= TLSV_1_3 && v > cmax)
				cmax = v;
			if (v > best && v >= TLSV_1_0 && v <= TLSV_1_3 && version_enabled(c, v) &&
			    (v != TLSV_1_3 || tls13_capable(c, ct)))
				best = v;
		}
		if (best)
			return best;
		r->rule = cmax && cmax < c->p->min_version ? CERTSEL_R_VERSION_CLIENT_TOO_OLD
							   : CERTSEL_R_VERSION_CLIENT_TOO_NEW;
		r->version = cmax;
		return 0;
	}
	/* No supported_versions: client_version, at most TLS 1.2. */
	cmax = h->legacy_version >= TLSV_1_3 ? TLSV_1_2 : h->legacy_version;
	for (v = TLSV_1_2; v >= TLSV_1_0; v--)
		if (v <= cmax && version_enabled(c, v))
			return v;
	r->rule = CERTSEL_R_VERSION_CLIENT_TOO_OLD;
	r->version = cmax;
	return 0;
}

/* The highest version the policy enables (ssl_check_version_downgrade()). */
static uint16_t highest_enabled(const struct ctx *c)
{
	uint16_t v;

	for (v = TLSV_1_3; v >= TLSV_1_0; v--)
		if (version_enabled(c, v))
			return v;
	return 0;
}

/* A CBC suite with HMAC-SHA1: its OpenSSL name ends in "-SHA". */
static bool mac_sha1(const struct policy_suite *s)
{
	size_t l = strlen(s->ossl);

	return l > 4 && !strcmp(s->ossl + l - 4, "-SHA");
}

/* ssl3_choose_cipher()'s security check (SSL_SECOP_CIPHER_SHARED). */
static bool suite_strong(const struct ctx *c, const struct policy_suite *s)
{
	if (c->p->seclevel <= 0)
		return true;
	if (s->bits < c->minbits)
		return false;
	if (c->minbits > 160 && !s->aead && mac_sha1(s))
		return false;   /* HMAC-SHA1 counts as 160 bits */
	if (c->p->seclevel >= 3 && s->kx == POLICY_KX_RSA)
		return false;   /* level 3: forward secrecy only */
	return true;
}

/* -------------------------------------------------------------- TLS 1.3 --- */

static void eval13(const struct ctx *c, const struct certsel_cert *ct, struct certsel_result *r)
{
	const struct hello *h = c->h;
	uint16_t shared[64], g = 0;
	unsigned i, n;
	bool blocked_by_cert = false;

	/* ssl3_choose_cipher(): server preference among TLS 1.3 suites. */
	for (i = 0; i < c->p->n_suites && !r->suite; i++) {
		const struct policy_suite *s = policy_suite(c->p->suites[i]);

		if (s && s->min_version == TLSV_1_3 && CLIENT_HAS(c, ciphers, s->id) &&
		    suite_strong(c, s))
			r->suite = s->id;
	}
	if (!r->suite) {
		r->rule = CERTSEL_R_TLS13_NO_SHARED_CIPHER;
		return;
	}
	if (h->compression_n == 1 && (h->flags & HELLO_F_COMPRESSION)) {
		r->rule = CERTSEL_R_NO_NULL_COMPRESSION;
		return;
	}
	/* tls_parse_ctos_key_share(): the client's first share the policy
	 * can use; every share before it must be in supported_groups. */
	if ((h->flags & HELLO_F_KEY_SHARE) && !c->groups) {
		r->rule = CERTSEL_R_TLS13_NO_SUPPORTED_GROUPS;
		return;
	}
	for (i = 0; i < h->key_shares.kept && !g; i++) {
		uint16_t k = h->key_shares.v[i];

		if (!CLIENT_HAS(c, groups, k)) {
			r->rule = CERTSEL_R_TLS13_KEY_SHARE_NOT_OFFERED;
			r->about = k;
			return;
		}
		if (policy_has_group(c->p, k) && group_usable(c, k, TLSV_1_3))
			g = k;
	}
	/* The extensions' final checks, in OpenSSL's table order. */
	if (!c->sigalgs) {
		r->rule = CERTSEL_R_TLS13_NO_SIGALGS;
		return;
	}
	if (!g) {
		if (!(h->flags & HELLO_F_KEY_SHARE)) {
			r->rule = CERTSEL_R_TLS13_NO_KEY_SHARE_EXT;
			return;
		}
		g = shared_group(c, TLSV_1_3);  /* RFC 8446 4.1.4 */
		if (!g) {
			r->rule = CERTSEL_R_TLS13_NO_COMMON_GROUP;
			return;
		}
		r->hrr = true;
	}
	r->group = g;
	if (h->compression_n != 1) {
		r->rule = CERTSEL_R_TLS13_COMPRESSION;
		return;
	}
	n = shared_sigalgs(c, TLSV_1_3, shared);
	if (!n) {
		r->rule = CERTSEL_R_NO_SHARED_SIGALGS;
		return;
	}
	/* find_sig_alg(): the first shared scheme this key can make; TLS 1.3
	 * names the curve, and has no PKCS#1, SHA-1 or SHA-224 signatures. */
	for (i = 0; i < n; i++) {
		const struct policy_sigalg *s = policy_sigalg(shared[i]);

		if (s->hash == POLICY_HASH_SHA1 || s->hash == POLICY_HASH_SHA224 ||
		    s->family == POLICY_SIG_DSA || s->family == POLICY_SIG_RSA)
			continue;
		if (!certsel_fam_fits_key(s->family, ct->key))
			continue;
		if (s->family == POLICY_SIG_ECDSA && s->curve != certsel_key_curve(ct->key))
			continue;
		if (!pss_fits(ct, s))
			continue;
		if (!issuer_sig_accepted(c, ct)) {
			blocked_by_cert = true;
			continue;
		}
		r->sigalg = s->id;
		r->rule = CERTSEL_R_OK;
		return;
	}
	r->rule = blocked_by_cert ? CERTSEL_R_SIGALGS_CERT_ISSUER : CERTSEL_R_TLS13_NO_SCHEME_FOR_KEY;
}

/* ------------------------------------------------------ TLS 1.2 and below --- */

/* The auth a key serves (ssl_set_masks()): RSA, or ECDSA for EC and EdDSA. */
static enum policy_auth key_auth(enum certsel_key k)
{
	return k == CERTSEL_KEY_RSA ? POLICY_AUTH_RSA : POLICY_AUTH_ECDSA;
}

/* What ssl_set_masks() and tls1_check_chain() conclude for the one key. */
struct masks {
	bool valid;         /* CERT_PKEY_VALID: an EC key's curve is acceptable */
	bool sign, explicit_sign;
	bool auth;          /* the key's auth bit (aRSA or aECDSA) is set */
	uint16_t group;     /* the ECDHE group, 0 if none */
};

/* Whether the shared schemes hold one this key signs with (tls1_process_sigalgs()). */
static bool shared_fits(const uint16_t *shared, unsigned n, enum certsel_key k)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (certsel_fam_fits_key(policy_sigalg(shared[i])->family, k))
			return true;
	return false;
}

/* The scheme TLS 1.2 assumes without signature_algorithms (RFC 5246
 * 7.4.1.4.1): SHA-1 with the key's algorithm; none for EdDSA. */
static uint16_t default_sigalg(enum certsel_key k)
{
	return k == CERTSEL_KEY_RSA ? 0x0201 : certsel_key_is_ec(k) ? 0x0203 : 0;
}

static void masks(const struct ctx *c, const struct certsel_cert *ct, uint16_t v,
		  const uint16_t *shared, unsigned n, struct masks *m)
{
	memset(m, 0, sizeof(*m));
	m->valid = !certsel_key_is_ec(ct->key) || !c->groups || CLIENT_HAS(c, groups, certsel_key_curve(ct->key));
	if (v < TLSV_1_2) {
		m->sign = m->explicit_sign = true;
	} else if (!c->sigalgs && !c->sigalgs_cert) {
		uint16_t d = default_sigalg(ct->key);

		/* tls1_set_server_sigalgs(): the default, if allowed and listed */
		m->sign = d && sigalg_allowed(c, policy_sigalg(d), v) && policy_has_sigalg(c->p, d);
	} else {
		m->sign = m->explicit_sign = shared_fits(shared, n, ct->key);
	}
	if (ct->key == CERTSEL_KEY_RSA)
		m->auth = m->valid;
	else if (certsel_key_is_ec(ct->key))
		m->auth = m->valid && m->sign;
	else
		m->auth = m->explicit_sign && v == TLSV_1_2;
	m->group = shared_group(c, v);
}

/* Whether ssl3_choose_cipher() takes suite s for this key. */
static bool suite_ok(const struct ctx *c, const struct policy_suite *s, uint16_t v,
		     const struct masks *m, enum certsel_key k)
{
	if (v < s->min_version || v > s->max_version || s->min_version >= TLSV_1_3)
		return false;
	if (s->auth != key_auth(k) || !m->auth)
		return false;
	if (s->kx == POLICY_KX_DHE && !c->p->dhe)
		return false;
	if (s->kx == POLICY_KX_ECDHE && !m->group)
		return false;
	return CLIENT_HAS(c, ciphers, s->id) && suite_strong(c, s);
}

/* The rule that explains why no suite fits: see the FAIL rules' order. */
static void no_suite(const struct ctx *c, const struct certsel_cert *ct, uint16_t v,
		     const struct masks *m, struct certsel_result *r)
{
	const struct policy_suite *first = NULL, *s;
	bool any_version = false, any_strong = false;
	unsigned i;

	for (i = 0; i < c->p->n_suites; i++) {
		s = policy_suite(c->p->suites[i]);
		if (!s || s->min_version >= TLSV_1_3 || !CLIENT_HAS(c, ciphers, s->id))
			continue;
		if (!r->about)
			r->about = s->id;
		if (v < s->min_version || v > s->max_version)
			continue;
		if (!any_version)
			r->about = s->id;
		any_version = true;
		if (!suite_strong(c, s))
			continue;
		if (!any_strong)
			r->about = s->id;
		any_strong = true;
		if (s->auth == key_auth(ct->key)) {
			first = s;
			break;
		}
	}
	if (!r->about) {
		r->rule = CERTSEL_R_NO_SHARED_CIPHER;
		return;
	}
	if (!any_version) {
		r->rule = CERTSEL_R_SUITE_VERSION;
		return;
	}
	if (!any_strong) {
		r->rule = CERTSEL_R_CIPHER_TOO_WEAK;
		return;
	}
	if (!first) {
		r->rule = CERTSEL_R_SUITE_NEEDS_OTHER_KEY;
		return;
	}
	r->about = first->id;
	if (certsel_key_is_ec(ct->key) && !m->valid) {
		r->rule = CERTSEL_R_ECDSA_CURVE_NOT_OFFERED;
	} else if (ct->key == CERTSEL_KEY_ED25519 && v < TLSV_1_2) {
		r->rule = CERTSEL_R_ED25519_NEEDS_TLS12;
	} else if (!m->auth) {
		uint16_t d = default_sigalg(ct->key);

		if (c->sigalgs || c->sigalgs_cert || !d)
			r->rule = CERTSEL_R_TLS12_NO_SCHEME_FOR_KEY;
		else if (!sigalg_allowed(c, policy_sigalg(d), v))
			r->rule = CERTSEL_R_SHA1_FORBIDDEN;
		else
			r->rule = CERTSEL_R_SHA1_NOT_IN_POLICY;
	} else if (first->kx == POLICY_KX_ECDHE && !m->group) {
		r->rule = c->groups ? CERTSEL_R_ECDHE_NO_COMMON_GROUP : CERTSEL_R_ECDHE_NO_GROUPS_EXT;
	} else {
		r->rule = CERTSEL_R_NO_SHARED_CIPHER; /* not reached: first would fit */
	}
}

static void eval12(const struct ctx *c, const struct certsel_cert *ct, uint16_t v,
		   struct certsel_result *r)
{
	const struct policy_suite *s = NULL;
	uint16_t shared[64];
	unsigned i, n = 0;
	bool use_sigalgs = v >= TLSV_1_2, blocked_by_cert = false;
	struct masks m;

	if (c->h->compression_n == 1 && (c->h->flags & HELLO_F_COMPRESSION)) {
		r->rule = CERTSEL_R_NO_NULL_COMPRESSION;
		return;
	}
	/* tls1_set_server_sigalgs(): a list sent must share something. */
	if (use_sigalgs && (c->sigalgs || c->sigalgs_cert)) {
		n = shared_sigalgs(c, v, shared);
		if (!n) {
			r->rule = CERTSEL_R_NO_SHARED_SIGALGS;
			return;
		}
	}
	masks(c, ct, v, shared, n, &m);
	for (i = 0; i < c->p->n_suites; i++) {
		s = policy_suite(c->p->suites[i]);
		if (s && suite_ok(c, s, v, &m, ct->key))
			break;
	}
	if (i == c->p->n_suites) {
		no_suite(c, ct, v, &m, r);
		return;
	}
	r->suite = s->id;
	r->group = s->kx == POLICY_KX_ECDHE ? m.group : 0;

	/* tls_choose_sigalg() */
	if (!use_sigalgs) {
		/* TLS 1.0/1.1: MD5+SHA-1 for RSA, SHA-1 for ECDSA; OpenSSL
		 * credits them 67 and 64 bits, below level 1. */
		if (c->p->seclevel > 0) {
			r->rule = CERTSEL_R_SHA1_FORBIDDEN;
			r->about = s->id;
			return;
		}
		r->sigalg = ct->key == CERTSEL_KEY_RSA ? CERTSEL_SIG_RSA_MD5_SHA1 : 0x0203;
	} else if (!c->sigalgs) {
		uint16_t d = default_sigalg(ct->key);

		if (!sigalg_allowed(c, policy_sigalg(d), v)) {
			r->rule = CERTSEL_R_SHA1_FORBIDDEN;
			r->about = s->id;
			return;
		}
		if (!policy_has_sigalg(c->p, d)) {
			r->rule = CERTSEL_R_SHA1_NOT_IN_POLICY;
			r->about = s->id;
			return;
		}
		r->sigalg = d;
	} else {
		for (i = 0; i < n && !r->sigalg; i++) {
			const struct policy_sigalg *sa = policy_sigalg(shared[i]);

			if (!certsel_fam_fits_key(sa->family, ct->key) || !pss_fits(ct, sa))
				continue;
			if (!issuer_sig_accepted(c, ct)) {
				blocked_by_cert = true;
				continue;
			}
			r->sigalg = sa->id;
		}
		if (!r->sigalg) {
			r->about = s->id;
			r->rule = blocked_by_cert ? CERTSEL_R_SIGALGS_CERT_ISSUER
						  : CERTSEL_R_TLS12_RSA_NO_SCHEME;
			return;
		}
	}
	if (s->kx == POLICY_KX_RSA)
		r->sigalg = 0;  /* checked as OpenSSL does, but nothing is signed */
	r->rule = CERTSEL_R_OK;
}

/* ------------------------------------------------------------ one cert --- */

static void eval(const struct ctx *c, const struct certsel_cert *ct, struct certsel_result *r)
{
	const struct policy_sigalg *is = policy_sigalg(ct->issuer_sig);
	uint16_t v;

	if (certsel_key_secbits(ct) < c->minbits) {
		r->rule = CERTSEL_R_CERT_KEY_TOO_SMALL;
		return;
	}
	/* ssl_security_cert_sig(): X509_get_signature_info() gives SHA-1 63
	 * bits, MD5 39; EdDSA 128 and up. */
	if (!ct->self_signed && is && c->p->seclevel > 0 &&
	    (is->hash == POLICY_HASH_SHA1 ? 63 : policy_hash_bits(is->hash)) < c->minbits) {
		r->rule = CERTSEL_R_CERT_MD_TOO_WEAK;
		return;
	}
	v = choose_version(c, ct, r);
	if (!v)
		return;
	r->version = v;
	if ((c->h->flags & HELLO_F_FALLBACK_SCSV) && v < highest_enabled(c)) {
		r->rule = CERTSEL_R_INAPPROPRIATE_FALLBACK;
		return;
	}
	if (v == TLSV_1_3)
		eval13(c, ct, r);
	else
		eval12(c, ct, v, r);
}

/* --------------------------------------------------------------- names --- */

int certsel_name_match(const char *pattern, const char *host)
{
	size_t hl = strlen(host), pl = strlen(pattern);
	const char *dot;

	if (hl && host[hl - 1] == '.')
		hl--;
	if (!hl || !pl)
		return 0;
	if (pl == hl && !strncasecmp(pattern, host, hl))
		return 2;
	/* "*.example.com" covers exactly one more label (RFC 6125 6.4.3) */
	if (pl > 2 && pattern[0] == '*' && pattern[1] == '.') {
		dot = memchr(host, '.', hl);
		if (dot && dot > host && (size_t)(host + hl - dot) == pl - 1 &&
		    !strncasecmp(dot, pattern + 1, pl - 1))
			return 1;
	}
	return 0;
}

static int best_match(const struct certsel_cert *ct, const char *sni)
{
	int m = 0, k;
	unsigned i;

	for (i = 0; i < ct->n_names; i++)
		if (ct->names[i] && (k = certsel_name_match(ct->names[i], sni)) > m)
			m = k;
	return m;
}

/* Mark the candidates by SNI; returns how the client's name was met. */
static enum certsel_sni candidates(const struct hello *h, const struct certsel_cert *certs,
				   unsigned n, struct certsel_verdict *v)
{
	int best = 0, m[CERTSEL_CERTS_MAX];
	bool any_default = false;
	unsigned i;

	for (i = 0; i < n; i++) {
		m[i] = h->sni_len ? best_match(&certs[i], h->sni) : 0;
		if (m[i] > best)
			best = m[i];
		any_default |= certs[i].is_default;
	}
	for (i = 0; i < n; i++) {
		if (best)
			v->cert[i].considered = m[i] == best;
		else
			v->cert[i].considered = !any_default || certs[i].is_default;
		if (!v->cert[i].considered)
			v->cert[i].notes |= 1ull << (best ? CERTSEL_R_SNI_OTHER_NAME : CERTSEL_R_NOT_DEFAULT);
	}
	if (!h->sni_len)
		return CERTSEL_SNI_NONE;
	return best == 2 ? CERTSEL_SNI_EXACT : best == 1 ? CERTSEL_SNI_WILDCARD : CERTSEL_SNI_DEFAULT;
}

/* Sort key: explicit preference first, then cost, then order. */
static bool before(const struct certsel_cert *certs, unsigned a, unsigned b)
{
	unsigned pa = certs[a].pref ? certs[a].pref : 1000, pb = certs[b].pref ? certs[b].pref : 1000;
	unsigned ca = certsel_cost(certs[a].key, certs[a].bits), cb = certsel_cost(certs[b].key, certs[b].bits);

	if (pa != pb)
		return pa < pb;
	if (ca != cb)
		return ca < cb;
	return a < b;
}

int certsel_choose(const struct hello *h, const struct certsel_cert *certs, unsigned n,
		   const struct policy *p, int64_t now, struct certsel_verdict *v)
{
	struct ctx c;
	unsigned i;
	int best = -1, fail = -1;
	bool best_valid = false;

	if (!h || !p || !v || (n && !certs) || n > CERTSEL_CERTS_MAX)
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->chosen = v->rule_cert = -1;
	v->n = n;
	c.h = h;
	c.p = p;
	c.minbits = policy_level_bits(p->seclevel);
	c.groups = h->groups.n > 0;
	c.sigalgs = h->sigalgs.n > 0;
	c.sigalgs_cert = h->sigalgs_cert.n > 0;
	if (h->flags & HELLO_F_TRUNCATED)
		v->notes |= 1ull << CERTSEL_R_HELLO_TRUNCATED;
	if (!n) {
		v->rule = CERTSEL_R_NO_CERTS;
		return -ENOENT;
	}
	v->sni = candidates(h, certs, n, v);
	if (v->sni == CERTSEL_SNI_DEFAULT)
		v->notes |= 1ull << CERTSEL_R_SNI_NO_MATCH;

	for (i = 0; i < n; i++) {
		struct certsel_result *r = &v->cert[i];
		bool valid;

		eval(&c, &certs[i], r);
		if (now && certs[i].not_after && now > certs[i].not_after)
			r->notes |= 1ull << CERTSEL_R_CERT_EXPIRED;
		if (now && certs[i].not_before && now < certs[i].not_before)
			r->notes |= 1ull << CERTSEL_R_CERT_NOT_YET_VALID;
		if (!r->considered)
			continue;
		valid = !(r->notes & (1ull << CERTSEL_R_CERT_EXPIRED | 1ull << CERTSEL_R_CERT_NOT_YET_VALID));
		if (r->rule == CERTSEL_R_OK) {
			if (best < 0 || (valid && !best_valid) ||
			    (valid == best_valid && before(certs, i, (unsigned)best))) {
				best = (int)i;
				best_valid = valid;
			}
		} else if (fail < 0 || r->rule > v->cert[fail].rule ||
			   (r->rule == v->cert[fail].rule && before(certs, i, (unsigned)fail))) {
			fail = (int)i;
		}
	}
	if (best >= 0) {
		const struct certsel_result *r = &v->cert[best];

		v->chosen = best;
		v->rule = CERTSEL_R_OK;
		v->version = r->version;
		v->suite = r->suite;
		v->group = r->group;
		v->sigalg = r->sigalg;
		v->hrr = r->hrr;
		return 0;
	}
	v->rule_cert = fail;
	v->rule = v->cert[fail].rule;
	v->version = v->cert[fail].version;
	return -ENOENT;
}
