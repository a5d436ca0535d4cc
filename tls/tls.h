/*
 * TLS glue shared by the dataplane cores and the handshake workers.
 *
 * Certificates are read and checked once at start-up into PEM blobs (struct
 * tls_certset); every worker then builds its own SSL_CTX from them inside its
 * own OSSL_LIB_CTX, so that no two threads share a library context.
 *
 * A handshake is a job (struct tls_job) that a core posts to a worker over a
 * single-producer/single-consumer ring. While the job is out, the worker owns
 * the SSL object and the session's two TLS byte buffers (struct tls_io); the
 * core touches neither until the job comes back. After the handshake the SSL
 * object stays with the core, which runs the record layer itself over the
 * same BIO.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "config.h"

/* One certificate with its chain and key, as PEM, plus what it is. */
struct tls_cert {
	char *cert_pem;   /* leaf, then chain */
	char *key_pem;
	char kind[24];    /* "ecdsa-p256", "rsa-2048", ... */
	char source[160]; /* file name, or "generated" */
};

#define TLS_CERTS_MAX 4
struct tls_certset {
	unsigned n;
	struct tls_cert cert[TLS_CERTS_MAX];
};

/*
 * Load the certificates of a listener and check them (readable, PEM, key
 * matching certificate, one per key type), or generate a self-signed
 * ECDSA P-256 + RSA-2048 pair for hostname when the listener names none.
 * On error writes "FILE:LINE: KEY: PATH: reason" to err and returns <0.
 */
int tls_certset_load(const struct cfg *c, const struct cfg_listener *l,
		     struct tls_certset *set, char *err, size_t errlen);
void tls_certset_free(struct tls_certset *set);

/* A server SSL_CTX in libctx (NULL: default) serving every cert of set.
 * The protocol and cipher settings are explicit, never openssl.cnf's. */
SSL_CTX *tls_ctx_new(OSSL_LIB_CTX *libctx, const struct tls_certset *set,
		     char *err, size_t errlen);

/* The two byte buffers a session's SSL object reads and writes. */
struct tls_io {
	struct buf *in;   /* ciphertext from the client */
	struct buf *out;  /* ciphertext to the client */
	bool in_eof;      /* the client closed its side: reads return 0 */
};

/* A BIO over a struct tls_io (io stays owned by the session). */
BIO *tls_bio_new(struct tls_io *io);
int tls_bio_init(void);
void tls_bio_fini(void);

/* "ecdsa-p256", "rsa-2048", ... for a key. */
void tls_key_kind(const EVP_PKEY *k, char *out, size_t len);

/* The first error of OpenSSL's queue in words (clears the queue). */
const char *tls_err_string(char *buf, size_t len);

enum tls_job_status {
	TLSJ_DONE,        /* handshake complete */
	TLSJ_WANT_READ,   /* needs more bytes from the client */
	TLSJ_WANT_WRITE,  /* out buffer full: flush, then post again */
	TLSJ_FAIL,        /* failed; reason says why, alerts may be in out */
};

struct tls_job {
	void *owner;        /* the session; the worker never looks inside */
	SSL *ssl;           /* NULL on the first post: the worker creates it */
	struct tls_io *io;
	uint16_t listener;  /* index of the listener: which SSL_CTX */
	uint16_t core;      /* which core to return to */
	uint8_t status;     /* enum tls_job_status, set by the worker */
	char reason[120];   /* on TLSJ_FAIL */
};

/*
 * The worker pool. tlsw_start() creates n_workers threads, each with its own
 * OSSL_LIB_CTX and one SSL_CTX per entry of sets (NULL entries: listener
 * without TLS), and a ring pair per (core, worker).
 */
int tlsw_start(unsigned n_workers, unsigned n_cores, struct tls_certset *const *sets,
	       unsigned n_sets, char *err, size_t errlen);
void tlsw_stop(void);
/* Post a job from core; false if every ring of that core is full (the
 * caller keeps the job). */
bool tlsw_post(unsigned core, struct tls_job *job);
/* Wake the workers that core posted to since the last call. */
void tlsw_kick(unsigned core);
/* Next finished job for core, or NULL. */
struct tls_job *tlsw_poll(unsigned core);
/* eventfd that becomes readable when jobs come back to core. */
int tlsw_core_fd(unsigned core);

#endif
