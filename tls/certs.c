/*
 * Certificates: loading and checking the operator's files, generating the
 * self-signed pair a listener gets when it names none, and building the
 * server SSL_CTX a worker serves them from.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "resume.h"
#include "files.h"
#include "tls.h"

const char *tls_err_string(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *r;

	if (!e) {
		snprintf(buf, len, "unknown error");
	} else if ((r = ERR_reason_error_string(e))) {
		snprintf(buf, len, "%s", r);
	} else {
		ERR_error_string_n(e, buf, len);
	}
	ERR_clear_error();
	return buf;
}

void tls_key_kind(const EVP_PKEY *k, char *out, size_t len)
{
	char group[64];
	size_t glen = 0;

	if (EVP_PKEY_is_a(k, "EC")) {
		if (!EVP_PKEY_get_utf8_string_param(k, "group", group, sizeof(group), &glen))
			snprintf(group, sizeof(group), "unknown");
		if (!strcmp(group, "prime256v1"))
			snprintf(group, sizeof(group), "p256");
		else if (!strcmp(group, "secp384r1"))
			snprintf(group, sizeof(group), "p384");
		else if (!strcmp(group, "secp521r1"))
			snprintf(group, sizeof(group), "p521");
		snprintf(out, len, "ecdsa-%s", group);
	} else if (EVP_PKEY_is_a(k, "RSA")) {
		snprintf(out, len, "rsa-%d", EVP_PKEY_get_bits(k));
	} else if (EVP_PKEY_is_a(k, "ED25519")) {
		snprintf(out, len, "ed25519");
	} else if (EVP_PKEY_is_a(k, "ED448")) {
		snprintf(out, len, "ed448");
	} else {
		snprintf(out, len, "%s", EVP_PKEY_get0_type_name(k));
	}
}


/* Parse PEM text into a leaf and its chain. Returns 0 or -EINVAL. */
static int parse_certs(OSSL_LIB_CTX *lc, const char *pem, X509 **leaf,
		       STACK_OF(X509) **chain)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	*leaf = NULL;
	*chain = sk_X509_new_null();
	if (!b || !*chain)
		goto fail;
	for (;;) {
		x = X509_new_ex(lc, NULL);
		if (!x)
			goto fail;
		if (!PEM_read_bio_X509(b, &x, NULL, NULL)) {
			X509_free(x);
			break;
		}
		if (!*leaf)
			*leaf = x;
		else if (!sk_X509_push(*chain, x)) {
			X509_free(x);
			goto fail;
		}
	}
	ERR_clear_error(); /* the end of the PEM stream */
	BIO_free(b);
	return *leaf ? 0 : -EINVAL;
fail:
	BIO_free(b);
	X509_free(*leaf);
	sk_X509_pop_free(*chain, X509_free);
	*leaf = NULL;
	*chain = NULL;
	return -EINVAL;
}

static EVP_PKEY *parse_key(OSSL_LIB_CTX *lc, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = NULL;

	if (b)
		k = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL, lc, NULL);
	BIO_free(b);
	return k;
}

/* Seconds since the epoch of an ASN1_TIME; 0 on error. */
static long long asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (long long)timegm(&tm);
}

static void fmt_time(long long t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(out, len, "%lld", t);
}

static int add_name(struct tls_cert *tc, const char *n, size_t len)
{
	char **v;

	if (len == 0 || len > 253 || memchr(n, 0, len))
		return 0; /* not a host name: nothing SNI could match */
	v = realloc(tc->names, (tc->n_names + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	tc->names = v;
	if (!(v[tc->n_names] = strndup(n, len)))
		return -ENOMEM;
	tc->n_names++;
	return 0;
}

/* The DNS names of leaf: its subjectAltName dNSNames, else its CN
 * (RFC 6125 6.4.4). 0 or -ENOMEM. */
static int leaf_names(X509 *leaf, struct tls_cert *tc)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	int i, rc = 0;

	if (san) {
		for (i = 0; i < sk_GENERAL_NAME_num(san) && !rc; i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(san, i);

			if (g->type == GEN_DNS)
				rc = add_name(tc, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
					      (size_t)ASN1_STRING_length(g->d.dNSName));
		}
		GENERAL_NAMES_free(san);
		if (rc || tc->n_names)
			return rc;
	}
	i = X509_NAME_get_index_by_NID(X509_get_subject_name(leaf), NID_commonName, -1);
	if (i >= 0) {
		ASN1_STRING *cn = X509_NAME_ENTRY_get_data(
			X509_NAME_get_entry(X509_get_subject_name(leaf), i));

		rc = add_name(tc, (const char *)ASN1_STRING_get0_data(cn),
			      (size_t)ASN1_STRING_length(cn));
	}
	return rc;
}

/* Is configured name covered by one of the certificate's names? A wildcard
 * is covered by the same wildcard only (certsel_name_match() takes a
 * configured "*.x" as a host name: only the same pattern matches it). */
static bool cert_covers(const struct tls_cert *tc, const char *name)
{
	for (unsigned i = 0; i < tc->n_names; i++)
		if (certsel_name_match(tc->names[i], name))
			return true;
	return false;
}

unsigned tls_certset_for_sni(struct tls_certset *const *sets, unsigned n, const struct hello *h)
{
	unsigned i, j;

	if (!(h->flags & HELLO_F_SNI) || !h->sni[0])
		return 0;
	for (i = 0; i < n; i++)
		for (j = 0; j < sets[i]->n_names; j++)
			if (certsel_name_match(sets[i]->names[j], h->sni) == 2)
				return i;
	for (i = 0; i < n; i++)
		if (tls_certset_matches(sets[i], h->sni))
			return i;
	return 0;
}

const struct policy *tls_policy(enum cfg_policy p)
{
	const struct policy *pol = policy_by_name(cfg_policy_name(p));

	return pol ? pol : policy_by_name("intermediate");
}

bool tls_certset_matches(const struct tls_certset *set, const char *host)
{
	for (unsigned i = 0; i < set->n_names; i++)
		if (certsel_name_match(set->names[i], host))
			return true;
	return false;
}

static const char *const key_type_names[TLS_KEY__COUNT] = {
	[TLS_KEY_ECDSA_P256] = "ecdsa-p256", [TLS_KEY_ED25519] = "ed25519",
	[TLS_KEY_ECDSA_P384] = "ecdsa-p384", [TLS_KEY_RSA] = "rsa",
};

/* The key type of k; -1 for one sluice does not serve. */
static int key_type(const EVP_PKEY *k, char *kind, size_t len)
{
	tls_key_kind(k, kind, len);
	if (!strcmp(kind, "ecdsa-p256"))
		return TLS_KEY_ECDSA_P256;
	if (!strcmp(kind, "ecdsa-p384"))
		return TLS_KEY_ECDSA_P384;
	if (!strcmp(kind, "ed25519"))
		return TLS_KEY_ED25519;
	if (!strncmp(kind, "rsa-", 4))
		return TLS_KEY_RSA;
	return -1;
}

/* Where a certificate entry is in the file, for messages. */
struct cert_at {
	const struct cfg *c;
	const char *key;   /* "cert_sets[0].certs" or "listeners[2].certs" */
};

#define CERR(file_, ...)                                                             \
	do {                                                                        \
		int o_ = snprintf(err, errlen, "%s:%u: %s[%u]: %s: ", at->c->path,    \
				  cc->line, at->key, i, file_);                      \
		if (o_ > 0 && (size_t)o_ < errlen)                                  \
			snprintf(err + o_, errlen - o_, __VA_ARGS__);               \
	} while (0)

/* Check the order of leaf + chain: each certificate is signed by the next
 * (RFC 8446 4.4.2, RFC 5246 7.4.2: the sender's certificate first, each
 * following one certifying the one before). Returns the position of the
 * first one that is not, or 0. */
static int chain_out_of_order(X509 *leaf, STACK_OF(X509) *chain)
{
	X509 *prev = leaf;

	for (int k = 0; k < sk_X509_num(chain); k++) {
		X509 *x = sk_X509_value(chain, k);
		EVP_PKEY *pk = X509_get0_pubkey(x);

		if (X509_NAME_cmp(X509_get_issuer_name(prev), X509_get_subject_name(x)) ||
		    !pk || X509_verify(prev, pk) != 1) {
			ERR_clear_error();
			return k + 1;
		}
		prev = x;
	}
	return 0;
}

/* Check certificate entry i of at; fill tc. */
static int check_cert(const struct cert_at *at, const struct cfg_cert *cc, unsigned i,
		      struct tls_cert *tc, char *err, size_t errlen)
{
	char ebuf[160], when[40];
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	long long now = (long long)time(NULL);
	int rc, t, bad;

	if ((rc = cfg_file_read(at->c->files, cc->cert, &tc->cert_pem, NULL)) < 0) {
		CERR(cc->cert, "cannot read certificate: %s", strerror(-rc));
		return rc;
	}
	if ((rc = cfg_file_read(at->c->files, cc->key, &tc->key_pem, NULL)) < 0) {
		CERR(cc->key, "cannot read key: %s", strerror(-rc));
		return rc;
	}
	snprintf(tc->source, sizeof(tc->source), "%s", cc->cert);
	rc = -EINVAL;
	if (parse_certs(NULL, tc->cert_pem, &leaf, &chain) < 0) {
		CERR(cc->cert, "no PEM certificate in file (%s)", tls_err_string(ebuf, sizeof(ebuf)));
		goto out;
	}
	if (!(key = parse_key(NULL, tc->key_pem))) {
		CERR(cc->key, "no PEM private key in file (%s)", tls_err_string(ebuf, sizeof(ebuf)));
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		ERR_clear_error();
		CERR(cc->key, "key does not match the certificate in %s", cc->cert);
		goto out;
	}
	if ((t = key_type(key, tc->kind, sizeof(tc->kind))) < 0) {
		CERR(cc->cert, "a %s key; sluice serves RSA, ECDSA P-256, ECDSA P-384 and "
		     "Ed25519", tc->kind);
		goto out;
	}
	tc->type = (enum tls_key_type)t;
	tc->bits = (unsigned)EVP_PKEY_get_bits(key);
	if (tc->type == TLS_KEY_RSA && tc->bits < 2048) {
		CERR(cc->cert, "a %u-bit RSA key; at least 2048 bits", tc->bits);
		goto out;
	}
	tc->sig_nid = X509_get_signature_nid(leaf);
	tc->self_signed = (X509_get_extension_flags(leaf) & EXFLAG_SS) != 0;
	tc->not_before = asn1_time(X509_get0_notBefore(leaf));
	tc->not_after = asn1_time(X509_get0_notAfter(leaf));
	if (tc->not_after && tc->not_after < now) {
		fmt_time(tc->not_after, when, sizeof(when));
		CERR(cc->cert, "expired on %s", when);
		goto out;
	}
	if (tc->not_before > now) {
		fmt_time(tc->not_before, when, sizeof(when));
		CERR(cc->cert, "not valid before %s", when);
		goto out;
	}
	if ((bad = chain_out_of_order(leaf, chain))) {
		CERR(cc->cert, "the chain is not in order: certificate %d of the file does not "
		     "sign the one before it (put the leaf first, then each issuer)", bad + 1);
		goto out;
	}
	if (leaf_names(leaf, tc) < 0) {
		CERR(cc->cert, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return rc;
}

/* PEM-encode a key or certificate into a malloc'd string. */
static char *bio_to_string(BIO *b)
{
	char *data, *s;
	long n = BIO_get_mem_data(b, &data);

	s = malloc((size_t)n + 1);
	if (s) {
		memcpy(s, data, (size_t)n);
		s[n] = 0;
	}
	return s;
}

/* A self-signed certificate for hostname with key k, valid one year. */
static int make_selfsigned(EVP_PKEY *k, const char *hostname, struct tls_cert *tc)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext = NULL;
	X509V3_CTX v3;
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	BIO *b = NULL;
	char san[300];
	int rc = -EINVAL;

	if (!x || RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto out;
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
	X509_set_pubkey(x, k);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
				   (const unsigned char *)hostname, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	snprintf(san, sizeof(san), "DNS:%s", hostname);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (!ext || !X509_add_ext(x, ext, -1))
		goto out;
	if (!X509_sign(x, k, EVP_sha256()))
		goto out;

	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_X509(b, x))
		goto out;
	tc->cert_pem = bio_to_string(b);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	if (!b || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		goto out;
	tc->key_pem = bio_to_string(b);
	if (!tc->cert_pem || !tc->key_pem)
		goto out;
	tc->type = (enum tls_key_type)key_type(k, tc->kind, sizeof(tc->kind));
	tc->bits = (unsigned)EVP_PKEY_get_bits(k);
	tc->sig_nid = X509_get_signature_nid(x);
	tc->self_signed = true;
	tc->not_before = asn1_time(X509_get0_notBefore(x));
	tc->not_after = asn1_time(X509_get0_notAfter(x));
	snprintf(tc->source, sizeof(tc->source), "generated");
	if (add_name(tc, hostname, strlen(hostname)) < 0)
		goto out;
	rc = 0;
out:
	BIO_free(b);
	BN_free(bn);
	X509_EXTENSION_free(ext);
	X509_free(x);
	return rc;
}

/* The TLS signature scheme (RFC 8446 4.2.3) of an X.509 signature
 * algorithm, for the signature_algorithms_cert checks; 0 if none. */
static uint16_t sig_scheme(int nid)
{
	switch (nid) {
	case NID_sha1WithRSAEncryption:      return 0x0201;
	case NID_sha256WithRSAEncryption:    return 0x0401;
	case NID_sha384WithRSAEncryption:    return 0x0501;
	case NID_sha512WithRSAEncryption:    return 0x0601;
	case NID_ecdsa_with_SHA1:            return 0x0203;
	case NID_ecdsa_with_SHA256:          return 0x0403;
	case NID_ecdsa_with_SHA384:          return 0x0503;
	case NID_ecdsa_with_SHA512:          return 0x0603;
	case NID_ED25519:                    return 0x0807;
	case NID_ED448:                      return 0x0808;
	case NID_rsassaPss:                  return 0x0804;
	default:                             return 0;
	}
}

/* Fill set->order: the configured preference, then the default
 * (cheapest signer first: the enum's order), for the types present. */
static void set_order(struct tls_certset *set, char *const *prefer, unsigned n_prefer)
{
	bool used[TLS_CERTS_MAX] = { false };
	unsigned k = 0;

	for (unsigned p = 0; p < n_prefer; p++)
		for (unsigned i = 0; i < set->n; i++)
			if (!used[i] && !strcmp(prefer[p], key_type_names[set->cert[i].type])) {
				used[i] = true;
				set->order[k++] = (uint8_t)i;
			}
	for (unsigned t = 0; t < TLS_KEY__COUNT; t++)
		for (unsigned i = 0; i < set->n; i++)
			if (!used[i] && set->cert[i].type == t) {
				used[i] = true;
				set->order[k++] = (uint8_t)i;
			}
	/* What tls/certsel knows of each: it chooses by explicit preference,
	 * then by signing cost; an explicit order here is the preference. */
	for (unsigned i = 0; i < set->n; i++) {
		const struct tls_cert *tc = &set->cert[i];
		static const uint8_t keys[TLS_KEY__COUNT] = {
			[TLS_KEY_ECDSA_P256] = CERTSEL_KEY_P256, [TLS_KEY_ED25519] = CERTSEL_KEY_ED25519,
			[TLS_KEY_ECDSA_P384] = CERTSEL_KEY_P384, [TLS_KEY_RSA] = CERTSEL_KEY_RSA,
		};
		struct certsel_cert *c = &set->sel[i];

		memset(c, 0, sizeof(*c));
		snprintf(set->cert[i].label, sizeof(set->cert[i].label), "%s %s", tc->kind,
			 tc->source);
		c->label = tc->label;
		c->key = keys[tc->type];
		c->bits = (uint16_t)tc->bits;
		c->issuer_sig = sig_scheme(tc->sig_nid);
		c->self_signed = tc->self_signed;
		c->is_default = true;
		c->names = (const char *const *)set->names;
		c->n_names = set->n_names;
		c->not_before = tc->not_before;
		c->not_after = tc->not_after;
	}
	for (unsigned p = 0; n_prefer && p < set->n; p++)
		set->sel[set->order[p]].pref = (uint8_t)(p + 1);
}

static int dup_names(struct tls_certset *set, char *const *names, unsigned n)
{
	if (!n)
		return 0;
	if (!(set->names = calloc(n, sizeof(*set->names))))
		return -ENOMEM;
	for (unsigned i = 0; i < n; i++) {
		if (!(set->names[i] = strdup(names[i])))
			return -ENOMEM;
		set->n_names = i + 1;
	}
	return 0;
}

/* Without configured names, a set answers every name of its certificates. */
static int names_from_certs(struct tls_certset *set)
{
	for (unsigned i = 0; i < set->n; i++)
		for (unsigned j = 0; j < set->cert[i].n_names; j++) {
			const char *n = set->cert[i].names[j];
			char **v;

			if (tls_certset_matches(set, n) && strncmp(n, "*.", 2))
				continue;
			v = realloc(set->names, (set->n_names + 1) * sizeof(*v));
			if (!v)
				return -ENOMEM;
			set->names = v;
			if (!(v[set->n_names] = strdup(n)))
				return -ENOMEM;
			set->n_names++;
		}
	return 0;
}

/* Load entries certs[0, n) of at into set, with every check. */
static int load_certs(const struct cert_at *at, const struct cfg_cert *certs, unsigned n,
		      char *const *names, unsigned n_names, struct tls_certset *set,
		      char *err, size_t errlen)
{
	unsigned i, j;
	int rc;

	if (n > TLS_CERTS_MAX) {
		const struct cfg_cert *cc = &certs[TLS_CERTS_MAX];

		i = TLS_CERTS_MAX;
		CERR(cc->cert, "at most %d certificates, one per key type (RSA, ECDSA P-256, "
		     "ECDSA P-384, Ed25519)", TLS_CERTS_MAX);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		const struct cfg_cert *cc = &certs[i];

		set->n = i + 1;
		if ((rc = check_cert(at, cc, i, &set->cert[i], err, errlen)) < 0)
			return rc;
		for (j = 0; j < i; j++) {
			if (set->cert[j].type != set->cert[i].type)
				continue;
			CERR(cc->cert, "a second %s certificate (the first is %s); a cert set "
			     "holds one per key type", key_type_names[set->cert[i].type],
			     set->cert[j].source);
			return -EINVAL;
		}
		for (j = 0; j < n_names; j++) {
			if (cert_covers(&set->cert[i], names[j]))
				continue;
			CERR(cc->cert, "does not cover the name %s of its cert set (it names %s%s)",
			     names[j], set->cert[i].n_names ? set->cert[i].names[0] : "nothing",
			     set->cert[i].n_names > 1 ? ", ..." : "");
			return -EINVAL;
		}
	}
	return 0;
}

int tls_certset_load(const struct cfg *c, const struct cfg_cert_set *cs,
		     struct tls_certset *set, char *err, size_t errlen)
{
	unsigned si = (unsigned)(cs - c->cert_sets);
	char key[48];
	struct cert_at at = { c, key };
	int rc;

	memset(set, 0, sizeof(*set));
	snprintf(set->name, sizeof(set->name), "%s", cs->name);
	snprintf(key, sizeof(key), "cert_sets[%u].certs", si);
	if ((rc = load_certs(&at, cs->certs, cs->n_certs, cs->names, cs->n_names, set,
			     err, errlen)) < 0)
		goto fail;
	rc = cs->n_names ? dup_names(set, cs->names, cs->n_names) : names_from_certs(set);
	if (rc < 0) {
		snprintf(err, errlen, "%s:%u: cert_sets[%u]: out of memory", c->path, cs->line, si);
		goto fail;
	}
	set_order(set, cs->prefer, cs->n_prefer);
	return 0;
fail:
	tls_certset_free(set);
	return rc;
}

int tls_certset_load_listener(const struct cfg *c, const struct cfg_listener *l,
			      struct tls_certset *set, char *err, size_t errlen)
{
	unsigned li = (unsigned)(l - c->listeners);
	char key[48], ebuf[160];
	struct cert_at at = { c, key };
	unsigned i;
	int rc;

	memset(set, 0, sizeof(*set));
	snprintf(set->name, sizeof(set->name), "listener %s", l->name);
	snprintf(key, sizeof(key), "listeners[%u].certs", li);
	if (l->n_certs) {
		if ((rc = load_certs(&at, l->certs, l->n_certs, NULL, 0, set, err, errlen)) < 0)
			goto fail;
	} else {
		/* Port 25 senders accept any certificate, and a listener
		 * without one would have to hide STARTTLS (rule 2.5). */
		static const struct { const char *alg, *param; } gen[] = {
			{ "EC", "P-256" }, { "RSA", NULL },
		};
		set->generated = true;
		for (i = 0; i < 2; i++) {
			EVP_PKEY *k = gen[i].param ? EVP_PKEY_Q_keygen(NULL, NULL, gen[i].alg, gen[i].param)
						   : EVP_PKEY_Q_keygen(NULL, NULL, gen[i].alg, (size_t)2048);

			set->n = i + 1;
			rc = k ? make_selfsigned(k, l->hostname, &set->cert[i]) : -ENOMEM;
			EVP_PKEY_free(k);
			if (rc < 0) {
				snprintf(err, errlen, "%s:%u: listeners[%u]: cannot generate a %s "
					 "certificate: %s", c->path, l->line, li, gen[i].alg,
					 tls_err_string(ebuf, sizeof(ebuf)));
				goto fail;
			}
		}
	}
	if ((rc = names_from_certs(set)) < 0) {
		snprintf(err, errlen, "%s:%u: listeners[%u]: out of memory", c->path, l->line, li);
		goto fail;
	}
	set_order(set, NULL, 0);
	return 0;
fail:
	tls_certset_free(set);
	return rc;
}

void tls_certset_free(struct tls_certset *set)
{
	unsigned i, j;

	for (i = 0; i < set->n; i++) {
		free(set->cert[i].cert_pem);
		OPENSSL_clear_free(set->cert[i].key_pem,
				   set->cert[i].key_pem ? strlen(set->cert[i].key_pem) : 0);
		for (j = 0; j < set->cert[i].n_names; j++)
			free(set->cert[i].names[j]);
		free(set->cert[i].names);
	}
	for (i = 0; i < set->n_names; i++)
		free(set->names[i]);
	free(set->names);
	memset(set, 0, sizeof(*set));
}

/* Put certificate tc into ctx. */
static int use_cert(SSL_CTX *ctx, OSSL_LIB_CTX *libctx, const struct tls_cert *tc,
		    char *err, size_t errlen)
{
	X509 *leaf;
	STACK_OF(X509) *chain;
	EVP_PKEY *key = parse_key(libctx, tc->key_pem);
	char ebuf[160];
	int ok;

	if (!key || parse_certs(libctx, tc->cert_pem, &leaf, &chain) < 0) {
		EVP_PKEY_free(key);
		snprintf(err, errlen, "%s: cannot parse again: %s", tc->source,
			 tls_err_string(ebuf, sizeof(ebuf)));
		return -EINVAL;
	}
	ok = SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	if (ok != 1) {
		snprintf(err, errlen, "%s: not usable: %s", tc->source,
			 tls_err_string(ebuf, sizeof(ebuf)));
		return -EINVAL;
	}
	return 0;
}

SSL_CTX *tls_ctx_new(OSSL_LIB_CTX *libctx, const struct tls_certset *set, unsigned cert,
		     enum cfg_policy policy, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
	char ebuf[160];
	bool ec = false;

	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_err_string(ebuf, sizeof(ebuf)));
		return NULL;
	}
	SSL_CTX_set_max_proto_version(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
			    /* mail clients often close without close_notify;
			     * SMTP, IMAP and POP3 frame their own data */
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Tickets under keys every worker shares, and the shared session-ID
	 * cache: resumption works whichever worker takes the handshake. */
	if (tls_resume_setup(ctx) < 0) {
		snprintf(err, errlen, "session tickets: %s", tls_err_string(ebuf, sizeof(ebuf)));
		goto fail;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (policy_apply(ctx, tls_policy(policy), ebuf, sizeof(ebuf)) < 0) {
		snprintf(err, errlen, "cipher policy %s: %s", cfg_policy_name(policy), ebuf);
		goto fail;
	}
	if (cert != TLS_CERT_ANY) {
		if (cert >= set->n || use_cert(ctx, libctx, &set->cert[cert], err, errlen) < 0)
			goto fail;
		return ctx;
	}
	for (unsigned k = 0; k < set->n; k++) {
		const struct tls_cert *tc = &set->cert[set->order[k]];
		bool is_ec = tc->type == TLS_KEY_ECDSA_P256 || tc->type == TLS_KEY_ECDSA_P384;

		if (is_ec && ec)
			continue; /* OpenSSL holds one EC key per SSL_CTX */
		ec = ec || is_ec;
		if (use_cert(ctx, libctx, tc, err, errlen) < 0)
			goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
