/*
 * The session-ID cache (RFC 5246 7.4.1.2) that every worker shares, so that
 * a TLS 1.2 client without tickets resumes whichever worker takes its next
 * handshake. OpenSSL's own cache is per SSL_CTX, and every worker has its
 * own SSL_CTXs; so the internal cache is off and these callbacks keep
 * DER-encoded sessions here.
 *
 * Two-way set-associative: a session ID hashes to a set of two slots; a new
 * session takes the empty or the older slot. Memory is bounded by the
 * configured entries and the size of a session (a few hundred bytes).
 * A lock per group of sets keeps workers apart.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "resident.h"
#include "resume.h"

#define SC_LOCKS 64
#define SC_DER_MAX 4096   /* a session without a client certificate */

struct sc_entry {
	unsigned char id[SSL_MAX_SSL_SESSION_ID_LENGTH];
	unsigned id_len;          /* 0: empty */
	long long expires;
	long long stored;
	unsigned char *der;
	size_t der_len;
};

static struct {
	struct sc_entry *e;       /* n_sets * 2 */
	size_t n_sets;
	pthread_mutex_t lock[SC_LOCKS];
} SC;

int sesscache_init(unsigned entries)
{
	if (!entries)
		return 0;
	SC.n_sets = (entries + 1) / 2;
	SC.e = calloc_resident(SC.n_sets * 2, sizeof(*SC.e)); /* RSS fixed from the start */
	if (!SC.e)
		return -ENOMEM;
	for (unsigned i = 0; i < SC_LOCKS; i++)
		pthread_mutex_init(&SC.lock[i], NULL);
	return 0;
}

void sesscache_fini(void)
{
	for (size_t i = 0; SC.e && i < SC.n_sets * 2; i++)
		OPENSSL_clear_free(SC.e[i].der, SC.e[i].der_len);
	free(SC.e);
	SC.e = NULL;
	SC.n_sets = 0;
}

/* FNV-1a over the ID: IDs are random, so any mix will do. */
static size_t sc_set(const unsigned char *id, unsigned len)
{
	uint64_t h = 1469598103934665603ull;

	for (unsigned i = 0; i < len; i++)
		h = (h ^ id[i]) * 1099511628211ull;
	return (size_t)(h % SC.n_sets);
}

/* OpenSSL made a session: keep it. Returns 0: OpenSSL keeps its own reference. */
static int sc_new(SSL *ssl, SSL_SESSION *sess)
{
	unsigned len;
	const unsigned char *id = SSL_SESSION_get_id(sess, &len);
	unsigned char *der, *p;
	size_t set;
	struct sc_entry *e;
	int n;

	(void)ssl;
	/* OpenSSL tells the external cache of every TLS 1.3 session too, "for
	 * applications that want to know" (ssl_update_cache), with a dummy ID:
	 * its tickets are stateless (and with tickets off none is sent), so no
	 * client can ever resume one by ID. Kept, they pushed out the TLS 1.2
	 * sessions this cache is for, and grew its memory with every
	 * handshake (the soak's RSS drift). */
	if (SSL_SESSION_get_protocol_version(sess) >= TLS1_3_VERSION)
		return 0;
	n = i2d_SSL_SESSION(sess, NULL);
	if (!len || len > SSL_MAX_SSL_SESSION_ID_LENGTH || n <= 0 || n > SC_DER_MAX)
		return 0;
	if (!(der = malloc((size_t)n)))
		return 0;
	p = der;
	i2d_SSL_SESSION(sess, &p);
	set = sc_set(id, len);
	pthread_mutex_lock(&SC.lock[set % SC_LOCKS]);
	e = &SC.e[set * 2];
	if (e[0].id_len && (!e[1].id_len || e[1].stored < e[0].stored))
		e++; /* the empty or the older slot */
	OPENSSL_clear_free(e->der, e->der_len);
	memcpy(e->id, id, len);
	e->id_len = len;
	e->stored = clock_real_s();
	e->expires = (long long)SSL_SESSION_get_time(sess) + SSL_SESSION_get_timeout(sess);
	e->der = der;
	e->der_len = (size_t)n;
	pthread_mutex_unlock(&SC.lock[set % SC_LOCKS]);
	return 0;
}

static struct sc_entry *sc_find(const unsigned char *id, unsigned len, size_t set)
{
	for (unsigned k = 0; k < 2; k++) {
		struct sc_entry *e = &SC.e[set * 2 + k];

		if (e->id_len == len && !CRYPTO_memcmp(e->id, id, len))
			return e;
	}
	return NULL;
}

static void sc_clear(struct sc_entry *e)
{
	OPENSSL_clear_free(e->der, e->der_len);
	memset(e, 0, sizeof(*e));
}

/* A client offers session ID id: the session, or NULL. */
static SSL_SESSION *sc_get(SSL *ssl, const unsigned char *id, int len, int *copy)
{
	SSL_SESSION *sess = NULL;
	struct sc_entry *e;
	size_t set;

	(void)ssl;
	*copy = 0; /* the caller owns what we return */
	if (len <= 0 || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return NULL;
	set = sc_set(id, (unsigned)len);
	pthread_mutex_lock(&SC.lock[set % SC_LOCKS]);
	e = sc_find(id, (unsigned)len, set);
	if (e && e->expires < clock_real_s()) {
		sc_clear(e);
	} else if (e) {
		const unsigned char *p = e->der;

		sess = d2i_SSL_SESSION(NULL, &p, (long)e->der_len);
	}
	pthread_mutex_unlock(&SC.lock[set % SC_LOCKS]);
	return sess;
}

/* OpenSSL drops a session: expired, a fatal alert, or an SSL object freed
 * without a shutdown (the dataplane marks cleanly ended sessions shut down
 * before SSL_free, sess_tls_release(), so that they stay). */
static void sc_remove(SSL_CTX *ctx, SSL_SESSION *sess)
{
	unsigned len;
	const unsigned char *id = SSL_SESSION_get_id(sess, &len);
	struct sc_entry *e;
	size_t set;

	(void)ctx;
	if (!SC.n_sets || !len || len > SSL_MAX_SSL_SESSION_ID_LENGTH)
		return;
	set = sc_set(id, len);
	pthread_mutex_lock(&SC.lock[set % SC_LOCKS]);
	if ((e = sc_find(id, len, set)))
		sc_clear(e);
	pthread_mutex_unlock(&SC.lock[set % SC_LOCKS]);
}

/* The entries held and their DER bytes (for `status`): the control
 * thread walks the sets under their locks, a few microseconds a thousand. */
void sesscache_stat(size_t *entries, size_t *bytes)
{
	size_t n = 0, b = 0;

	for (size_t set = 0; set < SC.n_sets; set++) {
		pthread_mutex_lock(&SC.lock[set % SC_LOCKS]);
		for (unsigned k = 0; k < 2; k++)
			if (SC.e[set * 2 + k].id_len) {
				n++;
				b += SC.e[set * 2 + k].der_len;
			}
		pthread_mutex_unlock(&SC.lock[set % SC_LOCKS]);
	}
	*entries = n;
	*bytes = b;
}

void sesscache_setup(SSL_CTX *ctx)
{
	if (!SC.n_sets) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		return;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL |
					    SSL_SESS_CACHE_NO_AUTO_CLEAR);
	SSL_CTX_sess_set_new_cb(ctx, sc_new);
	SSL_CTX_sess_set_get_cb(ctx, sc_get);
	SSL_CTX_sess_set_remove_cb(ctx, sc_remove);
}
