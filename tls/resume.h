/*
 * Resumption shared by every core and worker: session ticket keys (made and
 * rotated here, or read from a key file a fleet shares) and the session-ID
 * cache. See resume.c and sesscache.c.
 */
#ifndef SLUICE_RESUME_H
#define SLUICE_RESUME_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "config.h"

#define TLS_TICKET_KEYS_MAX 8

/* At start-up, before the workers: keys from c->tickets (the key file read,
 * or a first key made), the session cache sized. log: where rotation and
 * key-file changes are reported (syslog priorities). 0, or <0 with err. */
int tls_resume_init(const struct cfg *c, void (*log)(int, const char *, ...),
		    char *err, size_t errlen);
/* Once a second or so from the main thread: rotate the keys when due, or
 * re-read the key file when it changed. now: seconds since the epoch. */
void tls_resume_tick(long long now);
void tls_resume_rotate_now(void);
/* Per worker thread: fetch the ticket cipher from its library context. */
int tls_resume_thread_init(OSSL_LIB_CTX *libctx);
void tls_resume_thread_fini(void);
/* Tickets and the shared cache for a server SSL_CTX. 0 or -EINVAL. */
int tls_resume_setup(SSL_CTX *ctx);

int sesscache_init(unsigned entries);
void sesscache_fini(void);
void sesscache_setup(SSL_CTX *ctx);

#endif
