/*
 * Resumption shared by every core and worker: session ticket keys and the
 * session-ID cache. See resume.c (the key ring, its windows, the ticket
 * callback), ticket_file.c (the key files) and sesscache.c.
 *
 * Where the keys come from, in order of precedence:
 *  - sluice-control pushes a ring (tls_resume_push, the dataplane command
 *    `tickets`): its keys rule until they expire;
 *  - tickets.key_file: a file a fleet shares (HAProxy's tls-ticket-keys
 *    format, or nginx's 80-byte binary keys), re-read when it changes;
 *  - otherwise the dataplane makes its own (at start-up, rotated every
 *    tickets.rotate), and again when a pushed ring has expired.
 */
#ifndef SLUICE_RESUME_H
#define SLUICE_RESUME_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "config.h"

#define TLS_TICKET_KEYS_MAX 16
#define TLS_TICKET_TOKEN_LEN 16 /* the token each ticket carries (resume.c) */

/* One ticket key. RFC 5077 4's recommended construction: a 16-byte name
 * that the ticket carries in clear, AES-CBC (128 or 256) and HMAC-SHA256. */
struct tls_ticket_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
	unsigned char hmac_len;   /* 16 or 32 */
	unsigned char aes_len;    /* 16: AES-128-CBC, 32: AES-256-CBC */
	long long not_before;     /* seconds since the epoch: may seal from then */
	long long not_after;      /* opens tickets (and seals) until then; 0: no end */
};

/* What tickets_show says of a key: never the key itself. */
struct tls_ticket_info {
	unsigned char name[16];
	long long not_before, not_after;
	bool sealing;             /* the key new tickets are sealed with now */
};

enum tls_ticket_source {
	TLS_TICKETS_OFF,          /* tickets.enabled: false */
	TLS_TICKETS_SELF,         /* made by the dataplane */
	TLS_TICKETS_FILE,         /* tickets.key_file */
	TLS_TICKETS_CONTROL,      /* pushed by sluice-control */
};
const char *tls_ticket_source_name(enum tls_ticket_source s);

/* At start-up, before the workers: keys from c->tickets (the key file read
 * and checked, or a first key made), the session cache sized. log: where
 * rotation and key-file changes are reported (syslog priorities). 0, or <0
 * with "FILE:LINE: tickets.key_file: reason" in err. */
int tls_resume_init(const struct cfg *c, void (*log)(int, const char *, ...),
		    char *err, size_t errlen);
/* Once a second or so from the main thread: drop expired keys, rotate the
 * dataplane's own keys when due (or make one when a pushed ring has no key
 * left that may seal), re-read the key file when it changed. now: seconds
 * since the epoch. */
void tls_resume_tick(long long now);
/* A new sealing key of the dataplane's own now (SIGUSR2). -EPERM (and
 * nothing changes) when the keys come from a key file or sluice-control:
 * they are rotated there. */
int tls_resume_rotate_now(void);

/*
 * Replace the whole ring with keys[0..n) (sluice-control's, newest first),
 * atomically for the workers; the old keys are wiped. The key that seals is
 * the first with not_before <= now < not_after; every key opens tickets
 * until its not_after, and a ticket opened with a key that does not seal
 * is renewed. 0, or -EINVAL with the reason in err (nothing changes).
 */
int tls_resume_push(const struct tls_ticket_key *keys, unsigned n, long long now,
		    char *err, size_t errlen);
/* The ring as it is at now: up to max keys into out, in ring order; the
 * count. *src: where they come from; *pushed: when sluice-control last
 * pushed (0: never). */
unsigned tls_resume_show(struct tls_ticket_info *out, unsigned max, long long now,
			 enum tls_ticket_source *src, long long *pushed);

/* The key that seals at now in keys[0..n), or -1: the first with
 * not_before <= now < not_after (0: no end). */
int tls_ticket_sealing(const struct tls_ticket_key *keys, unsigned n, long long now);
/* The key named name that may open a ticket at now, or -1. */
int tls_ticket_opening(const struct tls_ticket_key *keys, unsigned n,
		       const unsigned char name[16], long long now);

/* Per worker thread: fetch the ticket ciphers from its library context. */
int tls_resume_thread_init(OSSL_LIB_CTX *libctx);
void tls_resume_thread_fini(void);
/* Tickets and the shared cache for a server SSL_CTX. 0 or -EINVAL. */
int tls_resume_setup(SSL_CTX *ctx);

/*
 * The key file c->tickets.key_file (read through c->files when set, else
 * from the disk) into keys, in ring order (the sealing key first); the
 * count, or <0 with "PATH: reason" in err. Refused: a file group or others
 * may use (mode & 077), a malformed one. The formats (ticket_file.c):
 * HAProxy's tls-ticket-keys (base64 lines of 48 or 80 bytes; at least
 * control.ticket_keys of them, the last control.ticket_keys kept, the
 * penultimate seals) or nginx's (binary, 80 bytes per key, the first seals).
 * now: their not_before. st_out (may be NULL): the file's stat when read
 * from the disk.
 */
struct stat;
int tls_ticket_file_read(const struct cfg *c, struct tls_ticket_key *keys, long long now,
			 struct stat *st_out, char *err, size_t errlen);
/* The key file of c, if any, belongs to c->user (who re-reads it once root
 * is dropped) and every folder above it lets that user through; 0, or <0
 * with "FILE:LINE: tickets.key_file: reason and the fix" in err. */
int tls_ticket_file_owner_check(const struct cfg *c, char *err, size_t errlen);
/* For sluice-control's checks of a reload: the key file of c, if any, is
 * readable and well-formed; 0, or <0 with "FILE:LINE: tickets.key_file:
 * reason" in err. */
int tls_ticket_file_check(const struct cfg *c, char *err, size_t errlen);

/* Re-reads of tickets.key_file that failed since start (each is logged
 * once, loudly: rotation has stopped until the file is readable). */
unsigned long long tls_resume_file_errors(void);

/* For the unit tests: the ring's storage, every slot (used or not), to
 * check that a retired key left no byte behind. */
const void *tls_resume_store(size_t *len);

int sesscache_init(unsigned entries);
void sesscache_fini(void);
void sesscache_setup(SSL_CTX *ctx);
void sesscache_stat(size_t *entries, size_t *bytes);

#endif
