/*
 * sluice-loadgen's TLS client: what it offers (--tls-version, --sig, --pin)
 * and what it checks (--verify, --ca, --servername). By default it offers
 * what OpenSSL offers (TLS 1.2 and 1.3) and verifies nothing: a load
 * generator measures the server, and test servers carry self-signed
 * certificates. The summary says so.
 */
#include <string.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "lg.h"

/* The client context; NULL on failure (the reason on OpenSSL's queue).
 * With --pin: one version, X25519 only, AES-128-GCM and the one signature
 * algorithm of --sig, so that the run measures exactly the handshake it
 * names whatever the server would prefer (the benchmark rig's client). */
SSL_CTX *lg_client_ctx(const struct lg *g)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	bool rsa = g->sig && !strcmp(g->sig, "rsa");

	if (!ctx)
		return NULL;
	SSL_CTX_set_security_level(ctx, 1);
	SSL_CTX_set_min_proto_version(ctx, g->tls_version ? g->tls_version : TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, g->tls_version ? g->tls_version : TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
				       SSL_SESS_CACHE_NO_INTERNAL_STORE);
	if (g->verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (g->ca_file ? !SSL_CTX_load_verify_locations(ctx, g->ca_file, NULL)
			       : !SSL_CTX_set_default_verify_paths(ctx))
			goto fail;
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (g->sig && !SSL_CTX_set1_sigalgs_list(ctx, rsa ? "rsa_pss_rsae_sha256"
							 : "ECDSA+SHA256"))
		goto fail;
	if (g->pin &&
	    (!SSL_CTX_set1_groups_list(ctx, "X25519") ||
	     !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") ||
	     !SSL_CTX_set_cipher_list(ctx, rsa ? "ECDHE-RSA-AES128-GCM-SHA256"
					       : "ECDHE-ECDSA-AES128-GCM-SHA256")))
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* A new client SSL: the server name it sends (SNI), the session it offers
 * (--resume) and, with --verify, the name the certificate must carry
 * (--servername, else the --host address). 0, or -1. */
int lg_tls_prepare(struct lg *g, SSL *ssl)
{
	if (g->servername && !SSL_set_tlsext_host_name(ssl, g->servername))
		return -1;
	if (g->resume && g->session && !SSL_set_session(ssl, g->session))
		return -1;
	if (!g->verify)
		return 0;
	if (g->servername)
		return SSL_set1_host(ssl, g->servername) ? 0 : -1;
	return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), inet_ntoa(g->dst.sin_addr))
		? 0 : -1;
}
