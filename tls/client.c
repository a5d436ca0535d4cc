/*
 * sluice as a TLS client of its backends: contexts, verification, the
 * conservative hello and the failure classes (client.h). Settings are
 * explicit, never openssl.cnf's (the process loads none).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "client.h"
#include "tls.h"

int tls_spki_sha256(X509 *x, unsigned char out[32])
{
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int n = x ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : -1;
	int rc;

	if (n <= 0)
		return -1;
	rc = EVP_Digest(der, (size_t)n, out, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32
	     ? 0 : -1;
	OPENSSL_free(der);
	return rc;
}

/* One server's last session for resumption. */
struct tls_client_slot {
	pthread_mutex_t mu;
	SSL_SESSION *sess;      /* owned; NULL: none yet */
};

/* The SSL ex_data index that names a connection's slot. */
static int slot_idx = -1;
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void slot_idx_init(void)
{
	slot_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* SSL_CTX_sess_set_new_cb: a copy of a session (TLS 1.3: a
 * NewSessionTicket read after the handshake; TLS 1.2: at its end)
 * replaces the slot's. A copy: a connection freed without its
 * close_notify marks its own session not resumable (SSL_free, RFC 5246
 * 7.2.1's old rule), and a backend that just closes is common. Returns 0:
 * the connection keeps its own. */
static int slot_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_client_slot *sl = slot_idx >= 0 ? SSL_get_ex_data(ssl, slot_idx) : NULL;
	SSL_SESSION *old;

	if (!sl || !SSL_SESSION_is_resumable(sess) || !(sess = SSL_SESSION_dup(sess)))
		return 0;
	pthread_mutex_lock(&sl->mu);
	old = sl->sess;
	sl->sess = sess;
	pthread_mutex_unlock(&sl->mu);
	SSL_SESSION_free(old);
	return 0;
}

/* Offer a copy of sl's session on ssl if it has not expired; 0 or -1. */
static int slot_offer(struct tls_client_slot *sl, SSL *ssl)
{
	int rc = 0;

	pthread_mutex_lock(&sl->mu);
	if (sl->sess) {
		time_t now = time(NULL);

		if (SSL_SESSION_get_time(sl->sess) + SSL_SESSION_get_timeout(sl->sess) > now) {
			/* a copy again: the connection's fate is its own */
			SSL_SESSION *d = SSL_SESSION_dup(sl->sess);

			rc = d && SSL_set_session(ssl, d) == 1 ? 0 : -1;
			SSL_SESSION_free(d);
		} else {
			SSL_SESSION_free(sl->sess);
			sl->sess = NULL;
		}
	}
	pthread_mutex_unlock(&sl->mu);
	return rc;
}

/* SSL_CTX_set_cert_verify_callback with a pin: the leaf's key must hash to
 * it (RFC 7469 2.4); the chain and the names are not looked at (RFC 7671
 * 5.1, DANE-EE). */
static int pin_verify(X509_STORE_CTX *xs, void *arg)
{
	const struct cfg_backend_tls *cfg = arg;
	unsigned char h[32];

	if (tls_spki_sha256(X509_STORE_CTX_get0_cert(xs), h) == 0 &&
	    CRYPTO_memcmp(h, cfg->pin, sizeof(h)) == 0) {
		X509_STORE_CTX_set_error(xs, X509_V_OK);
		return 1;
	}
	X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

static const int tls_versions[] = {
	[CFG_TLS_V1_0] = TLS1_VERSION, [CFG_TLS_V1_1] = TLS1_1_VERSION,
	[CFG_TLS_V1_2] = TLS1_2_VERSION, [CFG_TLS_V1_3] = TLS1_3_VERSION,
};

/* One client context; conservative: TLS 1.2 only, no tickets, no
 * encrypt-then-MAC, two groups, a short list of signature algorithms. */
static SSL_CTX *client_ctx(const struct cfg_backend_tls *cfg, bool conservative, char *err,
			   size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new_ex(NULL, NULL, TLS_client_method());
	int min = tls_versions[cfg->min_version];
	char ebuf[160];

	if (!ctx)
		goto fail;
	/* TLS 1.0/1.1 sign with SHA-1: OpenSSL 3 wants level 0 for them. */
	if (SSL_CTX_set_cipher_list(ctx, cfg->min_version < CFG_TLS_V1_2
				    ? "HIGH:!aNULL:!MD5:!RC4:@SECLEVEL=0"
				    : "HIGH:!aNULL:!MD5:!RC4:!3DES") != 1 ||
	    !SSL_CTX_set_min_proto_version(ctx, conservative && min < TLS1_2_VERSION
					   ? TLS1_2_VERSION : min) ||
	    !SSL_CTX_set_max_proto_version(ctx, conservative ? TLS1_2_VERSION : 0) ||
	    SSL_CTX_set1_groups_list(ctx, conservative ? "P-256:P-384"
				     : "X25519:P-256:P-384") != 1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_IGNORE_UNEXPECTED_EOF |
			    (conservative ? SSL_OP_NO_TICKET | SSL_OP_NO_ENCRYPT_THEN_MAC : 0));
	if (conservative &&
	    SSL_CTX_set1_sigalgs_list(ctx, "ECDSA+SHA256:RSA+SHA256:ECDSA+SHA384:RSA+SHA384:"
				      "rsa_pss_rsae_sha256") != 1)
		goto fail;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	if (!conservative) {
		/* Resumption from the slots: OpenSSL's own client cache stays
		 * off (it would need a lookup by server of its own). A session
		 * is offered for an hour at most, whatever the server's hint. */
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
					       SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(ctx, slot_new_session);
		SSL_CTX_set_timeout(ctx, 3600);
	}
	if (cfg->has_pin) {
		SSL_CTX_set_cert_verify_callback(ctx, pin_verify, (void *)cfg);
	} else if (SSL_CTX_load_verify_file(ctx, cfg->ca_file) != 1) {
		snprintf(err, errlen, "ca_file %s: %s", cfg->ca_file,
			 tls_err_string(ebuf, sizeof(ebuf)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cfg->client_cert &&
	    (SSL_CTX_use_certificate_chain_file(ctx, cfg->client_cert) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, cfg->client_key, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_check_private_key(ctx) != 1)) {
		snprintf(err, errlen, "client_cert %s: %s", cfg->client_cert,
			 tls_err_string(ebuf, sizeof(ebuf)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
fail:
	snprintf(err, errlen, "client SSL_CTX: %s", tls_err_string(ebuf, sizeof(ebuf)));
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_client_init(struct tls_client *t, const struct cfg_backend_tls *cfg, unsigned n_servers,
		    char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	t->cfg = cfg;
	pthread_once(&slot_once, slot_idx_init);
	if (slot_idx < 0) {
		snprintf(err, errlen, "client SSL_CTX: no ex_data index");
		return -ENOMEM;
	}
	if (n_servers && !(t->slots = calloc(n_servers, sizeof(*t->slots)))) {
		snprintf(err, errlen, "client SSL_CTX: out of memory");
		return -ENOMEM;
	}
	for (; t->n_slots < n_servers; t->n_slots++)
		pthread_mutex_init(&t->slots[t->n_slots].mu, NULL);
	if (!(t->normal = client_ctx(cfg, false, err, errlen))) {
		tls_client_free(t);
		return -EINVAL;
	}
	/* No conservative hello below min_version: with TLS 1.3 required
	 * there is none. */
	if (cfg->min_version <= CFG_TLS_V1_2 &&
	    !(t->conservative = client_ctx(cfg, true, err, errlen))) {
		tls_client_free(t);
		return -EINVAL;
	}
	return 0;
}

void tls_client_free(struct tls_client *t)
{
	SSL_CTX_free(t->normal);
	SSL_CTX_free(t->conservative);
	t->normal = t->conservative = NULL;
	for (unsigned i = 0; i < t->n_slots; i++) {
		SSL_SESSION_free(t->slots[i].sess);
		pthread_mutex_destroy(&t->slots[i].mu);
	}
	free(t->slots);
	t->slots = NULL;
	t->n_slots = 0;
}

SSL *tls_client_ssl(const struct tls_client *t, bool conservative, int server)
{
	SSL_CTX *ctx = conservative ? t->conservative : t->normal;
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;

	if (!ssl)
		return NULL;
	if (!conservative && server >= 0 && (unsigned)server < t->n_slots) {
		struct tls_client_slot *sl = &t->slots[server];

		if (SSL_set_ex_data(ssl, slot_idx, sl) != 1 || slot_offer(sl, ssl) < 0) {
			SSL_free(ssl);
			return NULL;
		}
	}
	if (t->cfg->server_name &&
	    (SSL_set_tlsext_host_name(ssl, t->cfg->server_name) != 1 ||
	     /* with a pin the name is not checked (pin_verify) */
	     (!t->cfg->has_pin && SSL_set1_host(ssl, t->cfg->server_name) != 1))) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

enum tls_client_fail tls_client_classify(SSL *ssl, int ssl_error, unsigned long err, char *why,
					 size_t wlen)
{
	long vr = SSL_get_verify_result(ssl);
	int reason = ERR_GET_LIB(err) == ERR_LIB_SSL ? ERR_GET_REASON(err) : 0;
	int alert = reason >= SSL_AD_REASON_OFFSET && reason <= SSL_AD_REASON_OFFSET + 255
		    ? reason - SSL_AD_REASON_OFFSET : -1;
	bool before_sh = SSL_get_state(ssl) == TLS_ST_CW_CLNT_HELLO;

	if (vr != X509_V_OK || reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
		snprintf(why, wlen, "certificate verification failed: %s",
			 vr == X509_V_ERR_APPLICATION_VERIFICATION
			 ? "its public key is not the pinned one (pin_sha256)"
			 : X509_verify_cert_error_string(vr));
		return TLSC_FAIL_VERIFY;
	}
	if (before_sh && (alert == SSL_AD_PROTOCOL_VERSION || alert == SSL_AD_HANDSHAKE_FAILURE)) {
		snprintf(why, wlen, "%s alert before any ServerHello",
			 SSL_alert_desc_string_long(alert));
		return TLSC_FAIL_INTOLERANT;
	}
	if (before_sh && (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN ||
			  reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		snprintf(why, wlen, "connection closed after the ClientHello");
		return TLSC_FAIL_INTOLERANT;
	}
	if (err)
		snprintf(why, wlen, "%s", ERR_reason_error_string(err) ? ERR_reason_error_string(err)
								     : "TLS error");
	else
		snprintf(why, wlen, "handshake failed");
	return TLSC_FAIL_OTHER;
}
