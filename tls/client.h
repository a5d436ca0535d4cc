/*
 * sluice as a TLS client of its backends (docs/configuration.md "Backend
 * TLS"): the client SSL_CTXs of a backend, the verification (a CA file and
 * the server name, or an SPKI pin), the conservative hello for intolerant
 * servers, and what a failed client handshake was. No I/O: the caller
 * drives the SSL object over its own buffers (tls_bio_new) or a socket.
 */
#ifndef SLUICE_TLS_CLIENT_H
#define SLUICE_TLS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

struct tls_client_slot;

/* A backend's two client contexts: the normal hello, and the
 * conservative one (TLS 1.2 only, fewer extensions; NULL when min_version
 * leaves no room for it); and per server, the last session it gave on the
 * normal hello, offered to resume (RFC 8446 2.2, RFC 5077): every core
 * shares them (a lock per server, taken twice per backend connection). */
struct tls_client {
	const struct cfg_backend_tls *cfg;
	SSL_CTX *normal;
	SSL_CTX *conservative;
	unsigned n_slots;
	struct tls_client_slot *slots;
};

/* What a failed client handshake was. */
enum tls_client_fail {
	TLSC_FAIL_OTHER,       /* anything else: no fallback */
	TLSC_FAIL_INTOLERANT,  /* reset/closed after the ClientHello, or a
				  protocol_version/handshake_failure alert,
				  before any ServerHello */
	TLSC_FAIL_VERIFY,      /* the certificate failed verification: an
				  attack or a mistake, never a fallback */
};

/* Build t's contexts from cfg (files read now), with a session slot for
 * each of n_servers. 0, or -EINVAL with err (-ENOMEM). */
int tls_client_init(struct tls_client *t, const struct cfg_backend_tls *cfg, unsigned n_servers,
		    char *err, size_t errlen);
void tls_client_free(struct tls_client *t);

/* A client SSL object for one connection: SNI and the name to verify
 * from cfg. With server >= 0 (and the normal hello) it offers that
 * server's last session, if one is still valid, and keeps the sessions
 * this connection is given in its slot; with -1 it makes a full handshake
 * (the probes: they check the certificate each time). NULL on out of
 * memory. The caller sets its BIO or fd. */
SSL *tls_client_ssl(const struct tls_client *t, bool conservative, int server);

/* Classify a handshake that failed (rc from SSL_do_handshake, the first
 * error of OpenSSL's queue taken before). Fills why[]. */
enum tls_client_fail tls_client_classify(SSL *ssl, int rc, unsigned long err, char *why,
					 size_t wlen);

/* base64(SHA-256(DER SubjectPublicKeyInfo)) of the certificate's key into
 * out[32]; 0 or -1. */
int tls_spki_sha256(X509 *x, unsigned char out[32]);

#endif
