/*
 * tls/rl: sluice's own TLS record layer for a session after its handshake.
 *
 * When the handshake is done, OpenSSL's SSL object (about 15 KiB in
 * OpenSSL 3.0, most of it idle state for a mail client that sends a
 * command every few minutes) is freed, and the session keeps only the
 * traffic keys and sequence numbers (a few hundred bytes): records are
 * sealed and opened here with EVP's AEAD, for the suites every modern
 * client negotiates: AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305, in
 * TLS 1.2 (RFC 5288, RFC 7905) and TLS 1.3 (RFC 8446 5.2, 5.3, 7.1-7.3).
 * Anything else (CBC suites, TLS 1.0/1.1, bytes OpenSSL already read
 * ahead) stays with OpenSSL: tls_rl_new() says no.
 *
 * The keys come from the handshake: TLS 1.3 traffic secrets through
 * OpenSSL's key log callback, TLS 1.2's master secret from the session;
 * the write sequence number from counting the records OpenSSL sealed with
 * the application keys (TLS 1.3 NewSessionTicket). tls_rl_ctx_setup()
 * installs those callbacks; the SSL object's app data must point to the
 * session's struct tls_rl_keys.
 *
 * Cipher contexts are made on first use and freed by tls_rl_idle(), so an
 * idle session holds no key schedule.
 */
#ifndef SLUICE_RL_H
#define SLUICE_RL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"

/* Filled by the callbacks during the handshake (owned by the session). */
struct tls_rl_keys {
	uint8_t csec[48], ssec[48];  /* TLS 1.3 client/server application
					traffic secrets */
	uint8_t sec_len;             /* 32 or 48 once both were logged */
	uint8_t got;                 /* bit 0 client, bit 1 server secret */
	uint8_t tickets13;           /* TLS 1.3 records the server sealed with
					its application keys (NewSessionTicket) */
};

struct tls_rl;

enum tls_rl_result {
	TLS_RL_WANT = 0,      /* need more input, or more output room */
	TLS_RL_EOF = -1,      /* close_notify received */
	TLS_RL_ERROR = -2,    /* bad record, bad MAC, unexpected message */
};

/* Install the key-log and message callbacks on a server SSL_CTX. */
void tls_rl_ctx_setup(SSL_CTX *ctx);

/*
 * After SSL_do_handshake() returned 1: a record layer that carries on from
 * ssl with the keys k, or NULL when this session stays with OpenSSL (its
 * protocol or suite, or read-ahead data OpenSSL holds). On success the
 * caller frees ssl, marked shut down first (SSL_set_shutdown), or OpenSSL
 * drops its session from the cache as a broken one.
 */
struct tls_rl *tls_rl_new(SSL *ssl, const struct tls_rl_keys *k);
void tls_rl_free(struct tls_rl *rl);

/* For tests and fuzzing: a record layer from raw keys. version
 * TLS1_2_VERSION or TLS1_3_VERSION; suite an AEAD suite's code point;
 * secret (TLS 1.3, sec_len bytes) or key_block (TLS 1.2: client key,
 * server key, client IV, server IV) as the server sees them; server false
 * gives the client's view (the directions swapped). NULL if unusable. */
struct tls_rl *tls_rl_from_keys(int version, uint16_t suite, const uint8_t *csec,
				const uint8_t *ssec, unsigned sec_len, const uint8_t *key_block,
				bool server);
/* Seal one record of content type with p[0, len) (tests: any type). */
int tls_rl_seal(struct tls_rl *rl, uint8_t type, const uint8_t *p, size_t len, struct buf *out);

/*
 * Open whole records from in (consumed as they are opened) into out[0,
 * cap). Protocol answers (a TLS 1.3 KeyUpdate the peer asked for) go to
 * wire. Returns the plaintext bytes (> 0), or a tls_rl_result; err gets
 * the reason of TLS_RL_ERROR.
 */
int tls_rl_read(struct tls_rl *rl, struct buf *in, uint8_t *out, size_t cap,
		struct buf *wire, char *err, size_t errlen);

/* Seal p[0, len) into records appended to out. Returns bytes taken (> 0),
 * TLS_RL_WANT when out has no room, or TLS_RL_ERROR. */
int tls_rl_write(struct tls_rl *rl, const uint8_t *p, size_t len, struct buf *out);

/* Append a close_notify alert. Returns 0 or TLS_RL_WANT/ERROR. */
int tls_rl_close_notify(struct tls_rl *rl, struct buf *out);

/* Nothing in flight: drop the cipher contexts (made again on next use). */
void tls_rl_idle(struct tls_rl *rl);

#endif
