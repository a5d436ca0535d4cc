/*
 * Resumption that works on any core and any worker (DESIGN.md section 4):
 *
 *  - session tickets (RFC 5077 for TLS 1.2, RFC 8446 4.6.1 for TLS 1.3)
 *    sealed with keys this module holds for the whole process: made at
 *    start-up and rotated on a schedule, or read from a key file that a
 *    fleet of sluice boxes shares (80-byte keys as nginx's
 *    ssl_session_ticket_key: name 16, HMAC-SHA256 key 32, AES-256-CBC key
 *    32). The first key seals new tickets; every key still opens them, and a
 *    ticket opened with an older key is renewed;
 *  - a session-ID cache shared by every worker, for TLS 1.2 clients that do
 *    not take tickets: two-way set-associative, bounded, DER-encoded
 *    sessions, locks sharded by set.
 *
 * Ticket callbacks run on the workers; rotation runs on the main thread.
 * The key ring is small and read under a reader lock per handshake.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "resume.h"

struct tk_key {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
	long long made;          /* when it started sealing, for rotation */
};

static struct {
	pthread_rwlock_t lock;
	struct tk_key key[TLS_TICKET_KEYS_MAX]; /* [0] seals */
	unsigned n;
	bool enabled;
	const char *file;        /* NULL: keys made here */
	struct stat file_st;     /* of the version loaded */
	unsigned rotate, lifetime;
} TK = { .lock = PTHREAD_RWLOCK_INITIALIZER };

/* Algorithms fetched once per worker thread from its own library context. */
static __thread EVP_CIPHER *tk_cipher;

static void tk_log_default(int prio, const char *fmt, ...)
{
	(void)prio;
	(void)fmt;
}

static void (*tk_log)(int prio, const char *fmt, ...) = tk_log_default;

/* Read the key file into keys; the count or -errno, reason in err. */
static int tk_read_file(const char *path, struct tk_key *keys, struct stat *st,
			char *err, size_t errlen)
{
	unsigned char buf[TLS_TICKET_KEYS_MAX * 80 + 1];
	FILE *f = fopen(path, "rb");
	size_t n;
	int rc;

	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fileno(f), st) < 0) {
		rc = -errno;
		fclose(f);
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == 0 || n % 80 || n > TLS_TICKET_KEYS_MAX * 80) {
		snprintf(err, errlen, "%s: %zu bytes; expected 80 per key, 1 to %d keys "
			 "(make one with: openssl rand 80 > FILE)", path, n, TLS_TICKET_KEYS_MAX);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -EINVAL;
	}
	for (size_t i = 0; i < n / 80; i++) {
		memcpy(keys[i].name, buf + i * 80, 16);
		memcpy(keys[i].hmac, buf + i * 80 + 16, 32);
		memcpy(keys[i].aes, buf + i * 80 + 48, 32);
		keys[i].made = 0;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return (int)(n / 80);
}

static int tk_new_key(struct tk_key *k, long long now)
{
	k->made = now;
	return RAND_priv_bytes(k->name, sizeof(k->name)) == 1 &&
	       RAND_priv_bytes(k->hmac, sizeof(k->hmac)) == 1 &&
	       RAND_priv_bytes(k->aes, sizeof(k->aes)) == 1 ? 0 : -EIO;
}

int tls_resume_init(const struct cfg *c, void (*log)(int, const char *, ...),
		    char *err, size_t errlen)
{
	struct tk_key keys[TLS_TICKET_KEYS_MAX];
	int n;

	if (log)
		tk_log = log;
	TK.enabled = c->tickets.enabled;
	TK.rotate = c->tickets.rotate;
	TK.lifetime = c->tickets.lifetime;
	TK.file = c->tickets.key_file;
	if ((n = sesscache_init(c->session_cache)) < 0) {
		snprintf(err, errlen, "session cache: out of memory");
		return n;
	}
	if (!TK.enabled)
		return 0;
	if (TK.file) {
		char e[300];

		if ((n = tk_read_file(TK.file, keys, &TK.file_st, e, sizeof(e))) < 0) {
			snprintf(err, errlen, "%s: tickets.key_file: %s", c->path, e);
			return n;
		}
	} else {
		n = 1;
		if (tk_new_key(&keys[0], (long long)time(NULL)) < 0) {
			snprintf(err, errlen, "cannot make a ticket key: no randomness");
			return -EIO;
		}
	}
	pthread_rwlock_wrlock(&TK.lock);
	memcpy(TK.key, keys, sizeof(keys));
	TK.n = (unsigned)n;
	pthread_rwlock_unlock(&TK.lock);
	OPENSSL_cleanse(keys, sizeof(keys));
	return 0;
}

void tls_resume_tick(long long now)
{
	struct tk_key keys[TLS_TICKET_KEYS_MAX];
	char e[300];
	int n;

	if (!TK.enabled)
		return;
	if (TK.file) {
		struct stat st;

		/* Re-read only when the file changed (a fleet's cron wrote it). */
		if (stat(TK.file, &st) < 0 ||
		    (st.st_ino == TK.file_st.st_ino && st.st_size == TK.file_st.st_size &&
		     st.st_mtim.tv_sec == TK.file_st.st_mtim.tv_sec &&
		     st.st_mtim.tv_nsec == TK.file_st.st_mtim.tv_nsec))
			return;
		if ((n = tk_read_file(TK.file, keys, &st, e, sizeof(e))) < 0) {
			tk_log(4 /* LOG_WARNING */, "tickets: %s; the keys loaded before stay", e);
			TK.file_st = st; /* say it once per change */
			return;
		}
		pthread_rwlock_wrlock(&TK.lock);
		memcpy(TK.key, keys, sizeof(keys));
		TK.n = (unsigned)n;
		TK.file_st = st;
		pthread_rwlock_unlock(&TK.lock);
		OPENSSL_cleanse(keys, sizeof(keys));
		tk_log(6 /* LOG_INFO */, "tickets: %d key%s loaded from %s", n, n == 1 ? "" : "s",
		       TK.file);
		return;
	}
	if (now - TK.key[0].made < (long long)TK.rotate)
		return;
	/* A new sealing key; the old ones open tickets for as long as a ticket
	 * they sealed can live. */
	struct tk_key k;
	unsigned keep = TK.lifetime / TK.rotate + 2;

	if (tk_new_key(&k, now) < 0)
		return;
	if (keep > TLS_TICKET_KEYS_MAX)
		keep = TLS_TICKET_KEYS_MAX;
	pthread_rwlock_wrlock(&TK.lock);
	memmove(&TK.key[1], &TK.key[0], (TLS_TICKET_KEYS_MAX - 1) * sizeof(TK.key[0]));
	TK.key[0] = k;
	TK.n = TK.n + 1 < keep ? TK.n + 1 : keep;
	pthread_rwlock_unlock(&TK.lock);
	OPENSSL_cleanse(&k, sizeof(k));
	tk_log(6, "tickets: new key; %u in use", TK.n);
}

/* For tests: rotate now, whatever the schedule. */
void tls_resume_rotate_now(void)
{
	long long now = (long long)time(NULL);

	TK.key[0].made = now - (long long)TK.rotate;
	tls_resume_tick(now);
}

/*
 * OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb):
 * enc 1 seals with the first key; enc 0 finds the key by name: 1 opened,
 * 2 opened and to be renewed (an older key, or any TLS 1.3 ticket), 0 not
 * ours (full handshake).
 */
static int tk_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
		 EVP_MAC_CTX *hctx, int enc)
{
	const struct tk_key *k = NULL;
	OSSL_PARAM params[3];
	int rc = 0;
	unsigned i;

	if (!tk_cipher)
		return -1;
	pthread_rwlock_rdlock(&TK.lock);
	if (enc) {
		if (TK.n && RAND_bytes(iv, 16) == 1) {
			k = &TK.key[0];
			memcpy(name, k->name, 16);
			rc = 1;
		} else {
			rc = -1;
		}
	} else {
		for (i = 0; i < TK.n; i++)
			if (!CRYPTO_memcmp(name, TK.key[i].name, 16)) {
				k = &TK.key[i];
				/* 2: a new ticket goes back. In TLS 1.3 always:
				 * OpenSSL sends none after a resumption otherwise,
				 * and clients that use a ticket once (RFC 8446 C.4)
				 * would resume every other time only. */
				rc = i || SSL_version(s) == TLS1_3_VERSION ? 2 : 1;
				break;
			}
	}
	if (k) {
		params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
							      (void *)k->hmac, sizeof(k->hmac));
		params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[2] = OSSL_PARAM_construct_end();
		if (!EVP_MAC_CTX_set_params(hctx, params) ||
		    !(enc ? EVP_EncryptInit_ex2(cctx, tk_cipher, k->aes, iv, NULL)
			  : EVP_DecryptInit_ex2(cctx, tk_cipher, k->aes, iv, NULL)))
			rc = -1;
	}
	pthread_rwlock_unlock(&TK.lock);
	return rc;
}

int tls_resume_thread_init(OSSL_LIB_CTX *libctx)
{
	if (!tk_cipher)
		tk_cipher = EVP_CIPHER_fetch(libctx, "AES-256-CBC", NULL);
	return tk_cipher ? 0 : -ENOENT;
}

void tls_resume_thread_fini(void)
{
	EVP_CIPHER_free(tk_cipher);
	tk_cipher = NULL;
}

int tls_resume_setup(SSL_CTX *ctx)
{
	SSL_CTX_set_timeout(ctx, TK.lifetime ? TK.lifetime : 7200);
	if (TK.enabled) {
		SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
		/* One ticket per TLS 1.3 handshake: a mail client holds one
		 * connection per account. */
		SSL_CTX_set_num_tickets(ctx, 1);
		if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tk_cb) != 1)
			return -EINVAL;
	} else {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	sesscache_setup(ctx);
	return 0;
}
