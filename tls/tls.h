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
 * core touches neither until the job comes back. With workers: 0 the core runs
 * the job itself at the end of its pass (tlsw_kick), through the same code
 * and the same rings, and takes it back in that pass. After the handshake the SSL
 * object stays with the core for the rest of the session: OpenSSL's record
 * layer (SSL_read/SSL_write) over the same BIO.
 *
 * The same rings carry sluice's client handshakes to its backends
 * (TLSJ_CLIENT): the core makes the SSL object (tls/client.h, from the
 * default library context, its BIO over the session's backend buffers),
 * and the worker only runs SSL_do_handshake on it. OpenSSL's error queue
 * is per thread, so the worker keeps what a failure needs (ssl_error,
 * err) in the job; the core classifies from those.
 */
#ifndef SLUICE_TLS_H
#define SLUICE_TLS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "certsel.h"
#include "config.h"
#include "hello.h"
#include "policy.h"

/* The key types a cert set holds one each of (DESIGN.md section 4). */
enum tls_key_type {
	TLS_KEY_ECDSA_P256,
	TLS_KEY_ED25519,
	TLS_KEY_ECDSA_P384,
	TLS_KEY_RSA,
	TLS_KEY__COUNT
};

/* One certificate with its chain and key, as PEM, plus what it is. */
struct tls_cert {
	char *cert_pem;   /* leaf, then chain */
	char *key_pem;
	enum tls_key_type type;
	unsigned bits;    /* key size (RSA: modulus) */
	int sig_nid;      /* the signature on the leaf (its issuer's algorithm) */
	bool self_signed;
	char kind[24];    /* "ecdsa-p256", "rsa-2048", ... */
	char source[160]; /* file name, or "generated" */
	char label[190];  /* "ecdsa-p256 /etc/sluice/mail.pem" for explain */
	char **names;     /* DNS names of the leaf (subjectAltName, else CN) */
	unsigned n_names;
	long long not_before, not_after; /* validity, seconds since the epoch */
};

#define TLS_CERTS_MAX 4
#define TLS_CERT_ANY  0xff /* job.cert: the set's combined SSL_CTX */

/* A cert set: certificates for the same names, one per key type. */
struct tls_certset {
	char name[64];        /* the configuration's name, or "listener NAME" */
	unsigned n;
	struct tls_cert cert[TLS_CERTS_MAX];
	char **names;         /* SNI names it answers (configured, else every
				 name of its certificates); may hold "*.x" */
	unsigned n_names;
	uint8_t order[TLS_CERTS_MAX]; /* cert indexes, preferred (cheapest
				 signer) first */
	struct certsel_cert sel[TLS_CERTS_MAX]; /* what tls/certsel knows of
				 each certificate (names point into this set) */
	bool generated;       /* self-signed, made at start-up */
	uint8_t policies;     /* bit per enum cfg_policy some listener uses */
};

/*
 * Load and check the certificates of a named cert set, or of a listener
 * (its own certs:, or a self-signed ECDSA P-256 + RSA-2048 pair for its
 * hostname when it names none). Checks: readable, PEM, the key matches the
 * certificate, the chain is in order (each certificate signed by the next),
 * valid now, one per key type of RSA, ECDSA P-256/P-384 and Ed25519, and
 * every configured name covered by each certificate. On error writes
 * "FILE:LINE: KEY: PATH: reason" to err and returns <0; nothing is kept.
 */
int tls_certset_load(const struct cfg *c, const struct cfg_cert_set *cs,
		     struct tls_certset *set, char *err, size_t errlen);
int tls_certset_load_listener(const struct cfg *c, const struct cfg_listener *l,
			      struct tls_certset *set, char *err, size_t errlen);
void tls_certset_free(struct tls_certset *set);

/* Does the set answer SNI name host (exact, or "*.x" for one more label)? */
bool tls_certset_matches(const struct tls_certset *set, const char *host);
/* Which of sets[0, n) the client's SNI picks: the first that names it
 * exactly, else the first whose wildcard covers it, else 0 (the default). */
unsigned tls_certset_for_sni(struct tls_certset *const *sets, unsigned n, const struct hello *h);
/* The policy table entry (tls/policy.def) of a configured policy. */
const struct policy *tls_policy(enum cfg_policy p);

/*
 * A server SSL_CTX in libctx (NULL: default) for set under policy: the
 * certificate cert of the set alone, or with TLS_CERT_ANY every certificate
 * OpenSSL can hold at once (one EC key: the preferred one). The protocol and
 * cipher settings are explicit, never openssl.cnf's.
 */
SSL_CTX *tls_ctx_new(OSSL_LIB_CTX *libctx, const struct tls_certset *set, unsigned cert,
		     enum cfg_policy policy, char *err, size_t errlen);

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

/* Which side of a TLS handshake sluice is in a job. */
enum tls_job_kind {
	TLSJ_SERVER,      /* a client's handshake: the worker makes the SSL
			     object from ctxs on the first step */
	TLSJ_CLIENT,      /* sluice's to a backend: the SSL object is the
			     core's (ssl set), the worker runs the steps */
};

struct tlsw_ctxs;

struct tls_job {
	void *owner;        /* the session; the worker never looks inside */
	void (*done)(struct tls_job *); /* the core's handler for a job that is
				       not a session's own handshake (an FTP
				       data connection's); NULL: the session's */
	SSL *ssl;           /* TLSJ_SERVER: NULL on the first post, the worker
			       creates it; TLSJ_CLIENT: always set */
	uint8_t kind;       /* enum tls_job_kind */
	struct tls_io *io;
	const struct tlsw_ctxs *ctxs; /* the SSL_CTXs of the session's snapshot
				       (the session keeps it alive) */
	const char *sid;    /* session ID context: the listener's name */
	uint16_t set;       /* which cert set (index into the sets the ctxs
			       were built from) */
	uint8_t cert;       /* which certificate of it, or TLS_CERT_ANY */
	uint8_t policy;     /* enum cfg_policy */
	uint16_t core;      /* which core to return to */
	uint8_t status;     /* enum tls_job_status, set by the worker */
	bool skipped;       /* set by the worker: cancelled, not run */
	_Atomic bool cancelled; /* set by the core while the job is out: the
			       client is gone (closed, timed out); the worker
			       skips the step (no signature for nobody) */
	char reason[120];   /* on TLSJ_FAIL */
	int16_t peer_alert; /* on TLSJ_FAIL: the alert the peer sent
			       (tls/alerts.def), or -1 */
	int ssl_error;      /* set by the worker: SSL_get_error of the step
			       (SSL_ERROR_NONE when done) */
	unsigned long err;  /* set by the worker: the first error OpenSSL
			       queued in the step (ERR_peek_error), or 0; the
			       worker's queue is its own thread's */
};

/*
 * The worker pool. tlsw_start() creates n_workers threads, each with its own
 * OSSL_LIB_CTX, and a ring pair per (core, worker). With n_workers 0 no
 * thread starts: each core gets an OSSL_LIB_CTX and a ring pair of its own
 * and runs its handshake steps inline (tlsw_kick). The SSL_CTXs come
 * from tlsw_ctxs_build(), once per configuration snapshot: for every cert
 * set and every policy it is used with, one SSL_CTX per certificate and
 * one combined, in every worker's (inline: every core's) own library
 * context (built by the caller's thread, never a core's). A job names its
 * table.
 */
int tlsw_start(unsigned n_workers, unsigned n_cores, char *err, size_t errlen);
/* workers: 0, the cores run the handshake steps themselves. */
bool tlsw_inline(void);
/* On core's own thread, before its first and after its last step: inline,
 * the thread's ticket ciphers in the core's library context (0 or
 * -ENOENT); nothing with workers. */
int tlsw_core_enter(unsigned core);
void tlsw_core_leave(unsigned core);
struct tlsw_ctxs *tlsw_ctxs_build(struct tls_certset *const *sets, unsigned n_sets,
				  char *err, size_t errlen);
/* SSL objects made from them keep their SSL_CTX alive (OpenSSL counts). */
void tlsw_ctxs_free(struct tlsw_ctxs *t);
/* Stop the workers (after the cores); every job still on a ring, posted
 * or done, goes to orphan (may be NULL), which then owns it. */
void tlsw_stop(void (*orphan)(struct tls_job *));
/* Free the library contexts and rings, after every tlsw_ctxs is freed. */
void tlsw_fini(void);
/* Post a job from core; false if every ring of that core is full (the
 * caller keeps the job). */
bool tlsw_post(unsigned core, struct tls_job *job);
/* Wake the workers that core posted to since the last call; inline, run
 * up to a batch of core's posted steps (they come back on tlsw_poll).
 * Returns the steps run inline (0 with workers). */
unsigned tlsw_kick(unsigned core);
/* Inline: core has steps posted or run and not yet polled (its next pass
 * must not wait). Always false with workers, whose eventfd wakes it. */
bool tlsw_pending(unsigned core);
/* Next finished job for core, or NULL. */
struct tls_job *tlsw_poll(unsigned core);
/* eventfd that becomes readable when jobs come back to core. */
int tlsw_core_fd(unsigned core);
/* How full core's rings to the workers are, in percent of what it may
 * have out (accepting slows down near 100). Core's own thread. */
unsigned tlsw_fill(unsigned core);

#endif
