/*
 * Resumption that works on any core and any worker (DESIGN.md section 4):
 *
 *  - session tickets (RFC 5077 for TLS 1.2, RFC 8446 4.6.1 for TLS 1.3)
 *    sealed with a ring of keys this module holds for the whole process.
 *    Each key has a window: it may seal from not_before, and it opens
 *    tickets (and may still seal) until not_after. The first key of the
 *    ring inside its window seals; every key not past its not_after opens;
 *    a ticket opened with another key than the sealing one is renewed.
 *    The ring comes from sluice-control (pushed, newest first), from a key
 *    file a fleet shares (ticket_file.c), or from the dataplane itself: a
 *    key made at start-up and rotated every tickets.rotate, and made again
 *    when sluice-control's keys have all expired (it died and nobody
 *    restarted it);
 *  - a session-ID cache shared by every worker, for TLS 1.2 clients that do
 *    not take tickets: two-way set-associative, bounded, DER-encoded
 *    sessions, locks sharded by set (sesscache.c).
 *
 * Ticket callbacks run on the workers; ticks run on the main thread, pushes
 * on the control thread: both change the ring under the writer lock, the
 * callbacks read it under a reader lock per handshake. Keys that leave the
 * ring are wiped (OPENSSL_cleanse).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "clock.h"
#include "resume.h"
#include "secmem.h"

/* The keys themselves: locked in RAM, out of core dumps (secmem.h). */
static SECMEM_PAGES(struct tls_ticket_key, TLS_TICKET_KEYS_MAX) tk_store;

static struct {
	pthread_rwlock_t lock;
	struct tls_ticket_key *key; /* tk_store.v, ring order: see the top */
	unsigned n;
	enum tls_ticket_source src;
	long long pushed;        /* when sluice-control last pushed; 0: never */
	/* what the ticks need of the configuration (copied: it may be freed) */
	struct cfg fc;           /* path, tickets, control.ticket_keys; files NULL */
	struct stat file_st;     /* of the key file's version loaded */
	/* Re-reads of the key file that failed (main thread only; read by
	 * the control thread: atomic), and whether the failure was logged. */
	_Atomic unsigned long long file_errors;
	bool file_err_said;
	bool file_stale_said;     /* "no key of the file may seal" logged */
	unsigned rotate, lifetime;
} TK = { .lock = PTHREAD_RWLOCK_INITIALIZER, .key = tk_store.v };

/* Algorithms fetched once per worker thread from its own library context. */
static __thread EVP_CIPHER *tk_aes128, *tk_aes256;

static void tk_log_default(int prio, const char *fmt, ...)
{
	(void)prio;
	(void)fmt;
}

static void (*tk_log)(int prio, const char *fmt, ...) = tk_log_default;

const char *tls_ticket_source_name(enum tls_ticket_source s)
{
	switch (s) {
	case TLS_TICKETS_OFF:     return "off";
	case TLS_TICKETS_SELF:    return "sluice";
	case TLS_TICKETS_FILE:    return "key_file";
	case TLS_TICKETS_CONTROL: return "sluice-control";
	}
	return "?";
}

int tls_ticket_sealing(const struct tls_ticket_key *keys, unsigned n, long long now)
{
	for (unsigned i = 0; i < n; i++)
		if (keys[i].not_before <= now && (!keys[i].not_after || now < keys[i].not_after))
			return (int)i;
	return -1;
}

int tls_ticket_opening(const struct tls_ticket_key *keys, unsigned n,
		       const unsigned char name[16], long long now)
{
	for (unsigned i = 0; i < n; i++)
		if (!CRYPTO_memcmp(name, keys[i].name, 16))
			return !keys[i].not_after || now < keys[i].not_after ? (int)i : -1;
	return -1;
}

/* A key of the dataplane's own: seals for tickets.rotate from now, opens
 * for tickets.lifetime after that. */
static int tk_new_key(struct tls_ticket_key *k, long long now)
{
	memset(k, 0, sizeof(*k));
	k->hmac_len = k->aes_len = 32;
	k->not_before = now;
	k->not_after = now + (long long)TK.rotate + (long long)TK.lifetime;
	return RAND_priv_bytes(k->name, sizeof(k->name)) == 1 &&
	       RAND_priv_bytes(k->hmac, sizeof(k->hmac)) == 1 &&
	       RAND_priv_bytes(k->aes, sizeof(k->aes)) == 1 ? 0 : -EIO;
}

/* Replace the ring with keys[0..n) and wipe what it held. Writer lock held. */
static void tk_swap_locked(const struct tls_ticket_key *keys, unsigned n)
{
	OPENSSL_cleanse(tk_store.v, sizeof(tk_store.v));
	memcpy(TK.key, keys, n * sizeof(keys[0]));
	TK.n = n;
}

/* Drop the keys past their not_after (wiped); how many went. Writer lock. */
static unsigned tk_drop_expired_locked(long long now)
{
	unsigned i, j, gone = 0;

	for (i = j = 0; i < TK.n; i++) {
		if (TK.key[i].not_after && now >= TK.key[i].not_after) {
			gone++;
			continue;
		}
		if (i != j)
			TK.key[j] = TK.key[i];
		j++;
	}
	if (gone)
		OPENSSL_cleanse(&TK.key[j], (TK.n - j) * sizeof(TK.key[0]));
	TK.n = j;
	return gone;
}

/* Put k first (it seals), keep at most keep keys; the rest is wiped.
 * Writer lock held. */
static void tk_prepend_locked(const struct tls_ticket_key *k, unsigned keep)
{
	if (keep > TLS_TICKET_KEYS_MAX)
		keep = TLS_TICKET_KEYS_MAX;
	if (TK.n >= keep)
		OPENSSL_cleanse(&TK.key[keep - 1], (TK.n - keep + 1) * sizeof(TK.key[0]));
	TK.n = TK.n < keep ? TK.n : keep - 1;
	memmove(&TK.key[1], &TK.key[0], TK.n * sizeof(TK.key[0]));
	TK.key[0] = *k;
	TK.n++;
}

/* How many keys of its own the dataplane keeps: the sealing one and those
 * that may have sealed a ticket still alive. */
static unsigned tk_self_keep(void)
{
	unsigned keep = TK.lifetime / TK.rotate + 2;

	return keep > TLS_TICKET_KEYS_MAX ? TLS_TICKET_KEYS_MAX : keep;
}

int tls_resume_init(const struct cfg *c, void (*log)(int, const char *, ...),
		    char *err, size_t errlen)
{
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	long long now = clock_real_s();
	int n;

	if (log)
		tk_log = log;
	if ((n = secmem_protect(&tk_store, sizeof(tk_store))) < 0)
		tk_log(4 /* LOG_WARNING */, "tickets: cannot lock the keys in memory (%s): they "
		       "may be swapped out", strerror(-n));
	TK.rotate = c->tickets.rotate ? c->tickets.rotate : 3600;
	TK.lifetime = c->tickets.lifetime ? c->tickets.lifetime : 7200;
	free(TK.fc.path);
	free(TK.fc.tickets.key_file);
	memset(&TK.fc, 0, sizeof(TK.fc));
	TK.fc.tickets = c->tickets;
	TK.fc.control.ticket_keys = c->control.ticket_keys;
	TK.fc.files = c->files;
	if (!(TK.fc.path = strdup(c->path ? c->path : "")) ||
	    (c->tickets.key_file && !(TK.fc.tickets.key_file = strdup(c->tickets.key_file)))) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((n = sesscache_init(c->session_cache)) < 0) {
		snprintf(err, errlen, "session cache: out of memory");
		return n;
	}
	if (!c->tickets.enabled) {
		pthread_rwlock_wrlock(&TK.lock);
		tk_swap_locked(keys, 0);
		TK.src = TLS_TICKETS_OFF;
		pthread_rwlock_unlock(&TK.lock);
		return 0;
	}
	if (c->tickets.key_file) {
		char e[512];

		/* Read as root now, re-read as user: later: that user's file. */
		if (!c->files && geteuid() == 0 && (n = tls_ticket_file_owner_check(c, err, errlen)) < 0)
			return n;
		if ((n = tls_ticket_file_read(c, keys, now, &TK.file_st, e, sizeof(e))) < 0) {
			snprintf(err, errlen, "%s:%u: tickets.key_file: %s", c->path,
				 c->tickets.key_file_line, e);
			OPENSSL_cleanse(keys, sizeof(keys));
			return n;
		}
	} else {
		n = 1;
		if (tk_new_key(&keys[0], now) < 0) {
			snprintf(err, errlen, "cannot make a ticket key: no randomness");
			return -EIO;
		}
	}
	TK.fc.files = NULL; /* the ticks re-read the disk */
	pthread_rwlock_wrlock(&TK.lock);
	tk_swap_locked(keys, (unsigned)n);
	TK.src = c->tickets.key_file ? TLS_TICKETS_FILE : TLS_TICKETS_SELF;
	TK.pushed = 0;
	pthread_rwlock_unlock(&TK.lock);
	OPENSSL_cleanse(keys, sizeof(keys));
	return 0;
}

/* A re-read of the key file failed: counted every time, said once (and
 * again after a success or a change), loudly: rotation has stopped. */
static void tk_file_error(const char *why)
{
	atomic_fetch_add(&TK.file_errors, 1);
	if (TK.file_err_said)
		return;
	TK.file_err_said = true;
	tk_log(3 /* LOG_ERR */, "tickets: %s:%u: tickets.key_file: cannot re-read it as uid %u: "
	       "%s; key rotation has stopped, the keys loaded before stay (the file must "
	       "belong to the user: sluice runs as, mode 600)", TK.fc.path,
	       TK.fc.tickets.key_file_line, (unsigned)geteuid(), why);
}

unsigned long long tls_resume_file_errors(void)
{
	return atomic_load(&TK.file_errors);
}

/* The key file changed on disk: read it again; a bad version is reported
 * once and the keys loaded before stay. */
static void tk_tick_file(long long now)
{
	struct tls_ticket_key keys[TLS_TICKET_KEYS_MAX];
	struct stat st;
	char e[512];
	int n;

	/* A file with windows (sluice's format) runs out when nobody renews
	 * it: said once, and again after it was renewed and ran out again. */
	pthread_rwlock_rdlock(&TK.lock);
	bool stale = tls_ticket_sealing(TK.key, TK.n, now) < 0;
	pthread_rwlock_unlock(&TK.lock);
	if (stale && !TK.file_stale_said)
		tk_log(4 /* LOG_WARNING */, "tickets: no key of %s may seal now (their windows "
		       "are over, or not begun: check the clocks); no new tickets until the file "
		       "is renewed", TK.fc.tickets.key_file);
	TK.file_stale_said = stale;
	if (stat(TK.fc.tickets.key_file, &st) < 0) {
		snprintf(e, sizeof(e), "%s: %s", TK.fc.tickets.key_file, strerror(errno));
		tk_file_error(e);
		return;
	}
	if ((st.st_ino == TK.file_st.st_ino && st.st_size == TK.file_st.st_size &&
	     st.st_mode == TK.file_st.st_mode &&
	     st.st_mtim.tv_sec == TK.file_st.st_mtim.tv_sec &&
	     st.st_mtim.tv_nsec == TK.file_st.st_mtim.tv_nsec))
		return;
	if ((n = tls_ticket_file_read(&TK.fc, keys, now, NULL, e, sizeof(e))) < 0) {
		TK.file_st = st; /* once per change */
		TK.file_err_said = false;
		tk_file_error(e);
		OPENSSL_cleanse(keys, sizeof(keys));
		return;
	}
	TK.file_err_said = false;
	pthread_rwlock_wrlock(&TK.lock);
	if (TK.src == TLS_TICKETS_FILE)
		tk_swap_locked(keys, (unsigned)n);
	pthread_rwlock_unlock(&TK.lock);
	TK.file_st = st;
	OPENSSL_cleanse(keys, sizeof(keys));
	tk_log(6 /* LOG_INFO */, "tickets: %d key%s loaded from %s", n, n == 1 ? "" : "s",
	       TK.fc.tickets.key_file);
}

void tls_resume_tick(long long now)
{
	struct tls_ticket_key k;
	bool made = false, fell_back = false;
	long long pushed = 0;
	unsigned n = 0, gone;

	pthread_rwlock_rdlock(&TK.lock);
	enum tls_ticket_source src = TK.src;
	pthread_rwlock_unlock(&TK.lock);
	if (src == TLS_TICKETS_OFF)
		return;
	if (src == TLS_TICKETS_FILE) {
		tk_tick_file(now);
		return;
	}
	pthread_rwlock_wrlock(&TK.lock);
	gone = tk_drop_expired_locked(now);
	if (TK.src == TLS_TICKETS_CONTROL) {
		/* sluice-control's keys rule while one of them may seal; after
		 * that (it died, or lost the dataplane), keys of our own. */
		if (tls_ticket_sealing(TK.key, TK.n, now) < 0 && tk_new_key(&k, now) == 0) {
			tk_prepend_locked(&k, tk_self_keep());
			TK.src = TLS_TICKETS_SELF;
			made = fell_back = true;
			pushed = TK.pushed;
		}
	} else if (TK.src == TLS_TICKETS_SELF) {
		/* A new sealing key every tickets.rotate; the old ones open
		 * tickets for as long as a ticket they sealed can live. */
		if ((!TK.n || now - TK.key[0].not_before >= (long long)TK.rotate) &&
		    tk_new_key(&k, now) == 0) {
			tk_prepend_locked(&k, tk_self_keep());
			made = true;
		}
	}
	n = TK.n;
	pthread_rwlock_unlock(&TK.lock);
	OPENSSL_cleanse(&k, sizeof(k));
	if (fell_back)
		tk_log(4, "tickets: no key from sluice-control may seal any more (last pushed "
		       "%llds ago); sealing with a key of our own until it pushes again",
		       pushed ? now - pushed : 0);
	else if (made)
		tk_log(6, "tickets: new key; %u in use", n);
	else if (gone)
		tk_log(6, "tickets: %u expired key%s wiped; %u in use", gone, gone == 1 ? "" : "s",
		       n);
}

const void *tls_resume_store(size_t *len)
{
	*len = sizeof(tk_store.v);
	return tk_store.v;
}

int tls_resume_rotate_now(void)
{
	struct tls_ticket_key k;
	long long now = clock_real_s();
	int rc = 0;
	unsigned n;

	if (tk_new_key(&k, now) < 0)
		return -EIO;
	pthread_rwlock_wrlock(&TK.lock);
	if (TK.src == TLS_TICKETS_SELF)
		tk_prepend_locked(&k, tk_self_keep());
	else
		rc = -EPERM;
	n = TK.n;
	pthread_rwlock_unlock(&TK.lock);
	OPENSSL_cleanse(&k, sizeof(k));
	if (!rc)
		tk_log(6, "tickets: new key; %u in use", n);
	return rc;
}

int tls_resume_push(const struct tls_ticket_key *keys, unsigned n, long long now,
		    char *err, size_t errlen)
{
	unsigned i, j;
	int rc = 0;

	if (n == 0 || n > TLS_TICKET_KEYS_MAX) {
		snprintf(err, errlen, "%u keys; 1 to %d", n, TLS_TICKET_KEYS_MAX);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		const struct tls_ticket_key *k = &keys[i];

		if ((k->aes_len != 16 && k->aes_len != 32) ||
		    (k->hmac_len != 16 && k->hmac_len != 32)) {
			snprintf(err, errlen, "keys[%u]: aes and hmac are 16 or 32 bytes", i);
			return -EINVAL;
		}
		if (k->not_after && k->not_after <= k->not_before) {
			snprintf(err, errlen, "keys[%u]: not_after %lld is not after not_before %lld",
				 i, k->not_after, k->not_before);
			return -EINVAL;
		}
		for (j = 0; j < i; j++)
			if (!memcmp(k->name, keys[j].name, 16)) {
				snprintf(err, errlen, "keys[%u]: the same name as keys[%u]", i, j);
				return -EINVAL;
			}
	}
	if (tls_ticket_sealing(keys, n, now) < 0) {
		snprintf(err, errlen, "no key may seal at %lld (now): check the clocks", now);
		return -EINVAL;
	}
	pthread_rwlock_wrlock(&TK.lock);
	if (TK.src == TLS_TICKETS_OFF) {
		snprintf(err, errlen, "tickets are off (tickets.enabled: false)");
		rc = -EPERM;
	} else if (TK.src == TLS_TICKETS_FILE) {
		snprintf(err, errlen, "the keys come from tickets.key_file %s",
			 TK.fc.tickets.key_file);
		rc = -EPERM;
	} else {
		tk_swap_locked(keys, n);
		TK.src = TLS_TICKETS_CONTROL;
		TK.pushed = now;
	}
	pthread_rwlock_unlock(&TK.lock);
	if (!rc)
		tk_log(6, "tickets: %u key%s from sluice-control", n, n == 1 ? "" : "s");
	return rc;
}

unsigned tls_resume_show(struct tls_ticket_info *out, unsigned max, long long now,
			 enum tls_ticket_source *src, long long *pushed)
{
	unsigned i, n;
	int seal;

	pthread_rwlock_rdlock(&TK.lock);
	seal = tls_ticket_sealing(TK.key, TK.n, now);
	n = TK.n < max ? TK.n : max;
	for (i = 0; i < n; i++) {
		memcpy(out[i].name, TK.key[i].name, 16);
		out[i].not_before = TK.key[i].not_before;
		out[i].not_after = TK.key[i].not_after;
		out[i].sealing = (int)i == seal;
	}
	if (src)
		*src = TK.src;
	if (pushed)
		*pushed = TK.pushed;
	pthread_rwlock_unlock(&TK.lock);
	return n;
}

/*
 * OpenSSL's ticket key callback (SSL_CTX_set_tlsext_ticket_key_evp_cb):
 * enc 1 seals with the sealing key (0: none, no ticket); enc 0 finds the
 * key by name: 1 opened, 2 opened and to be renewed (not the sealing key,
 * or any TLS 1.3 ticket), 0 not ours or past its window (full handshake).
 */
static int tk_cb(SSL *s, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
		 EVP_MAC_CTX *hctx, int enc)
{
	const struct tls_ticket_key *k = NULL;
	long long now = clock_real_s();
	OSSL_PARAM params[3];
	int rc = 0, i, seal;

	if (!tk_aes128 || !tk_aes256)
		return -1;
	pthread_rwlock_rdlock(&TK.lock);
	seal = tls_ticket_sealing(TK.key, TK.n, now);
	if (enc) {
		if (seal >= 0 && RAND_bytes(iv, 16) == 1) {
			k = &TK.key[seal];
			memcpy(name, k->name, 16);
			rc = 1;
		} else {
			rc = seal < 0 ? 0 : -1;
		}
	} else if ((i = tls_ticket_opening(TK.key, TK.n, name, now)) >= 0) {
		k = &TK.key[i];
		/* 2: a new ticket goes back. In TLS 1.3 always: OpenSSL sends
		 * none after a resumption otherwise, and clients that use a
		 * ticket once (RFC 8446 C.4) would resume every other time. */
		rc = i != seal || SSL_version(s) == TLS1_3_VERSION ? 2 : 1;
	}
	if (k) {
		params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
							      (void *)k->hmac, k->hmac_len);
		params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
		params[2] = OSSL_PARAM_construct_end();
		EVP_CIPHER *ciph = k->aes_len == 16 ? tk_aes128 : tk_aes256;

		if (!EVP_MAC_CTX_set_params(hctx, params) ||
		    !(enc ? EVP_EncryptInit_ex2(cctx, ciph, k->aes, iv, NULL)
			  : EVP_DecryptInit_ex2(cctx, ciph, k->aes, iv, NULL)))
			rc = -1;
	}
	pthread_rwlock_unlock(&TK.lock);
	return rc;
}

int tls_resume_thread_init(OSSL_LIB_CTX *libctx)
{
	if (!tk_aes128)
		tk_aes128 = EVP_CIPHER_fetch(libctx, "AES-128-CBC", NULL);
	if (!tk_aes256)
		tk_aes256 = EVP_CIPHER_fetch(libctx, "AES-256-CBC", NULL);
	return tk_aes128 && tk_aes256 ? 0 : -ENOENT;
}

void tls_resume_thread_fini(void)
{
	EVP_CIPHER_free(tk_aes128);
	EVP_CIPHER_free(tk_aes256);
	tk_aes128 = tk_aes256 = NULL;
}

/*
 * A ticket is being issued (SSL_CTX_set_session_ticket_cb): the session
 * it seals gets a random token of its own unless it has one, which a
 * session resumed from a ticket keeps (ssl_session_dup copies it). So
 * every ticket of one line of sessions carries the token of the full
 * handshake that began it, and sluice can tell that an FTP data
 * connection resumed its control connection's session and not another
 * (dataplane/session/ftp_data.c). OpenSSL seals it inside the ticket.
 */
static int tk_gen_cb(SSL *ssl, void *arg)
{
	SSL_SESSION *ss = SSL_get0_session(ssl) ? SSL_get1_session(ssl) : NULL;
	unsigned char tok[TLS_TICKET_TOKEN_LEN];
	void *have = NULL;
	size_t n = 0;
	int ok = 1;

	(void)arg;
	if (!ss)
		return 1;
	if (SSL_SESSION_get0_ticket_appdata(ss, &have, &n) != 1 || n == 0) {
		if (RAND_bytes(tok, sizeof(tok)) != 1 ||
		    SSL_SESSION_set1_ticket_appdata(ss, tok, sizeof(tok)) != 1)
			ok = 0;
	}
	SSL_SESSION_free(ss);
	return ok;
}

int tls_resume_setup(SSL_CTX *ctx)
{
	SSL_CTX_set_timeout(ctx, TK.lifetime ? TK.lifetime : 7200);
	if (TK.src != TLS_TICKETS_OFF) {
		SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
		/* One ticket per TLS 1.3 handshake: a mail client holds one
		 * connection per account. */
		SSL_CTX_set_num_tickets(ctx, 1);
		if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tk_cb) != 1 ||
		    SSL_CTX_set_session_ticket_cb(ctx, tk_gen_cb, NULL, NULL) != 1)
			return -EINVAL;
	} else {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	sesscache_setup(ctx);
	return 0;
}
