/*
 * Certificates: loading and checking the operator's files, generating the
 * self-signed pair a listener gets when it names none, and building the
 * server SSL_CTX a worker serves them from.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

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

/* Read a whole file into a NUL-terminated string. Returns 0 or -errno. */
static int read_file(const char *path, char **out)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (cap - n < 4096) {
			char *q;

			if (cap > (1u << 24)) { /* a PEM file is never 16 MiB */
				rc = -EFBIG;
				goto out;
			}
			q = realloc(p, cap ? cap * 2 : 8192);
			if (!q) {
				rc = -ENOMEM;
				goto out;
			}
			p = q;
			cap = cap ? cap * 2 : 8192;
		}
		size_t r = fread(p + n, 1, cap - n - 1, f);

		n += r;
		if (r == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
out:
	fclose(f);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p[n] = 0;
	*out = p;
	return 0;
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

/* Check one operator certificate; fill cert->kind. */
static int check_cert(const struct cfg *c, const struct cfg_listener *l, unsigned i,
		      struct tls_cert *tc, char *err, size_t errlen)
{
	const struct cfg_cert *cc = &l->certs[i];
	unsigned li = (unsigned)(l - c->listeners);
	char ebuf[160];
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	int rc;

#define CERR(file_, ...)                                                             \
	do {                                                                        \
		int o_ = snprintf(err, errlen, "%s:%u: listeners[%u].certs[%u]: %s: ", \
				  c->path, cc->line, li, i, file_);                \
		if (o_ > 0 && (size_t)o_ < errlen)                                  \
			snprintf(err + o_, errlen - o_, __VA_ARGS__);               \
	} while (0)

	if ((rc = read_file(cc->cert, &tc->cert_pem)) < 0) {
		CERR(cc->cert, "cannot read certificate: %s", strerror(-rc));
		return rc;
	}
	if ((rc = read_file(cc->key, &tc->key_pem)) < 0) {
		CERR(cc->key, "cannot read key: %s", strerror(-rc));
		return rc;
	}
	if (parse_certs(NULL, tc->cert_pem, &leaf, &chain) < 0) {
		CERR(cc->cert, "no PEM certificate in file (%s)", tls_err_string(ebuf, sizeof(ebuf)));
		rc = -EINVAL;
		goto out;
	}
	if (!(key = parse_key(NULL, tc->key_pem))) {
		CERR(cc->key, "no PEM private key in file (%s)", tls_err_string(ebuf, sizeof(ebuf)));
		rc = -EINVAL;
		goto out;
	}
	if (X509_check_private_key(leaf, key) != 1) {
		ERR_clear_error();
		CERR(cc->key, "key does not match the certificate in %s", cc->cert);
		rc = -EINVAL;
		goto out;
	}
	tls_key_kind(key, tc->kind, sizeof(tc->kind));
	snprintf(tc->source, sizeof(tc->source), "%s", cc->cert);
	rc = 0;
out:
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(key);
	return rc;
#undef CERR
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
	tls_key_kind(k, tc->kind, sizeof(tc->kind));
	snprintf(tc->source, sizeof(tc->source), "generated");
	rc = 0;
out:
	BIO_free(b);
	BN_free(bn);
	X509_EXTENSION_free(ext);
	X509_free(x);
	return rc;
}

int tls_certset_load(const struct cfg *c, const struct cfg_listener *l,
		     struct tls_certset *set, char *err, size_t errlen)
{
	unsigned li = (unsigned)(l - c->listeners);
	char ebuf[160];
	unsigned i, j;
	int rc;

	memset(set, 0, sizeof(*set));
	if (l->n_certs > TLS_CERTS_MAX) {
		snprintf(err, errlen, "%s:%u: listeners[%u].certs: at most %d certificates",
			 c->path, l->line, li, TLS_CERTS_MAX);
		return -EINVAL;
	}
	for (i = 0; i < l->n_certs; i++) {
		rc = check_cert(c, l, i, &set->cert[i], err, errlen);
		set->n = i + 1;
		if (rc < 0)
			goto fail;
		for (j = 0; j < i; j++) {
			if (strcmp(set->cert[j].kind, set->cert[i].kind))
				continue;
			snprintf(err, errlen, "%s:%u: listeners[%u].certs[%u]: %s: a second %s "
				 "certificate; a listener serves one per key type",
				 c->path, l->certs[i].line, li, i, l->certs[i].cert,
				 set->cert[i].kind);
			rc = -EINVAL;
			goto fail;
		}
	}
	if (l->n_certs == 0) {
		/* Port 25 senders accept any certificate, and a listener
		 * without one would have to hide STARTTLS (rule 2.5). */
		static const struct { const char *alg, *param; } gen[] = {
			{ "EC", "P-256" }, { "RSA", NULL },
		};
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
	return 0;
fail:
	tls_certset_free(set);
	return rc;
}

void tls_certset_free(struct tls_certset *set)
{
	unsigned i;

	for (i = 0; i < set->n; i++) {
		free(set->cert[i].cert_pem);
		OPENSSL_clear_free(set->cert[i].key_pem,
				   set->cert[i].key_pem ? strlen(set->cert[i].key_pem) : 0);
	}
	memset(set, 0, sizeof(*set));
}

/*
 * The interim cipher policy until per-listener policies exist: TLS 1.2 and
 * 1.3, ECDHE with AEAD ciphers (Mozilla "intermediate"), set here so that
 * the system openssl.cnf never decides.
 */
static const char tls12_ciphers[] =
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

SSL_CTX *tls_ctx_new(OSSL_LIB_CTX *libctx, const struct tls_certset *set,
		     char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(libctx, NULL, TLS_server_method());
	char ebuf[160];
	unsigned i;

	if (!ctx) {
		snprintf(err, errlen, "SSL_CTX_new: %s", tls_err_string(ebuf, sizeof(ebuf)));
		return NULL;
	}
	SSL_CTX_set_security_level(ctx, 1);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
			    SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
			    /* mail clients often close without close_notify;
			     * SMTP, IMAP and POP3 frame their own data */
			    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Resumption comes with shared ticket keys; until then no tickets,
	 * which a per-worker SSL_CTX could not honour on another worker. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(ctx, tls12_ciphers) ||
	    !SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384")) {
		snprintf(err, errlen, "cipher policy: %s", tls_err_string(ebuf, sizeof(ebuf)));
		goto fail;
	}
	for (i = 0; i < set->n; i++) {
		X509 *leaf;
		STACK_OF(X509) *chain;
		EVP_PKEY *key = parse_key(libctx, set->cert[i].key_pem);
		int ok;

		if (!key || parse_certs(libctx, set->cert[i].cert_pem, &leaf, &chain) < 0) {
			EVP_PKEY_free(key);
			snprintf(err, errlen, "%s: cannot parse again: %s", set->cert[i].source,
				 tls_err_string(ebuf, sizeof(ebuf)));
			goto fail;
		}
		ok = SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1);
		X509_free(leaf);
		sk_X509_pop_free(chain, X509_free);
		EVP_PKEY_free(key);
		if (ok != 1) {
			snprintf(err, errlen, "%s: not usable: %s", set->cert[i].source,
				 tls_err_string(ebuf, sizeof(ebuf)));
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}
