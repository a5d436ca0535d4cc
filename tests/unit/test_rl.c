/*
 * tls/rl against OpenSSL: a server handshake in memory, then the server's
 * SSL object is freed and tls/rl carries on; a real OpenSSL client must
 * read what it seals and it must open what the client sends. For TLS 1.2
 * and 1.3, every AEAD suite, with and without session tickets, fresh and
 * resumed sessions; plus KeyUpdate both ways, close_notify both ways, a
 * tampered record, and the suites tls/rl leaves to OpenSSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "rl.h"

static SSL_CTX *server_ctx(const char *keyalg, int tickets)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *k = !strcmp(keyalg, "RSA") ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
					     : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	assert_int_equal(SSL_CTX_use_certificate(ctx, x), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, k), 1);
	X509_free(x);
	EVP_PKEY_free(k);
	SSL_CTX_set_num_tickets(ctx, (size_t)tickets);
	if (!tickets)
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"t", 1);
	tls_rl_ctx_setup(ctx);
	return ctx;
}

struct pair {
	SSL *s, *c;
	BIO *s_in, *s_out, *c_in, *c_out;
	struct tls_rl_keys keys;
};

static void pump(BIO *from, BIO *to)
{
	char b[65536];
	int n;

	while ((n = BIO_read(from, b, sizeof(b))) > 0)
		BIO_write(to, b, n);
}

/* A handshake between a server of sctx and a client of cctx (resuming
 * sess if given). */
static void handshake(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *sess)
{
	memset(p, 0, sizeof(*p));
	p->s = SSL_new(sctx);
	p->c = SSL_new(cctx);
	p->s_in = BIO_new(BIO_s_mem());
	p->s_out = BIO_new(BIO_s_mem());
	p->c_in = BIO_new(BIO_s_mem());
	p->c_out = BIO_new(BIO_s_mem());
	SSL_set_bio(p->s, p->s_in, p->s_out);
	SSL_set_bio(p->c, p->c_in, p->c_out);
	SSL_set_app_data(p->s, &p->keys);
	SSL_set_accept_state(p->s);
	SSL_set_connect_state(p->c);
	if (sess)
		SSL_set_session(p->c, sess);
	for (int i = 0; i < 20 && (!SSL_is_init_finished(p->s) || !SSL_is_init_finished(p->c)); i++) {
		SSL_do_handshake(p->c);
		pump(p->c_out, p->s_in);
		SSL_do_handshake(p->s);
		pump(p->s_out, p->c_in);
	}
	assert_true(SSL_is_init_finished(p->s));
	assert_true(SSL_is_init_finished(p->c));
}

/* What the client sent, into a struct buf as the core's cin would hold it,
 * opened by rl; returns the plaintext. */
static size_t rl_take(struct tls_rl *rl, struct pair *p, struct buf *in, struct buf *wire,
		      uint8_t *out, size_t cap, int *last)
{
	char b[4096], err[128];
	size_t got = 0;
	int n;

	for (;;) {
		uint8_t *dst;
		uint32_t room;

		if (buf_space(in, &dst, &room) == 0 && room) {
			n = BIO_read(p->c_out, dst, room > sizeof(b) ? (int)sizeof(b) : (int)room);
			if (n > 0)
				in->tail += (uint32_t)n;
		}
		n = tls_rl_read(rl, in, out + got, cap - got, wire, err, sizeof(err));
		if (n < 0 && n != TLS_RL_EOF)
			print_message("# rl_read: %d %s (got %zu)\n", n, err, got);
		*last = n;
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n < 0 || BIO_pending(p->c_out) == 0)
			return got;
	}
}

/* What rl wrote, to the client. */
static void to_client(struct pair *p, struct buf *wire)
{
	BIO_write(p->c_in, buf_head(wire), (int)buf_len(wire));
	buf_consume(wire, buf_len(wire));
}

static void exercise(SSL_CTX *sctx, SSL_CTX *cctx, bool resume, int expect_version)
{
	static uint8_t big[100000], back[100000];
	struct pair p;
	struct tls_rl *rl;
	struct buf in = { 0 }, wire = { 0 };
	char rd[64];
	int last, n;
	SSL_SESSION *sess = NULL;

	if (resume) {
		handshake(&p, sctx, cctx, NULL);
		/* the client takes its tickets with a read */
		SSL_write(p.s, "x", 1);
		pump(p.s_out, p.c_in);
		assert_int_equal(SSL_read(p.c, rd, sizeof(rd)), 1);
		sess = SSL_get1_session(p.c);
		/* Shut down, or OpenSSL drops the session as a broken one. */
		SSL_set_shutdown(p.s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_set_shutdown(p.c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(p.s);
		SSL_free(p.c);
	}
	handshake(&p, sctx, cctx, sess);
	if (resume)
		assert_int_equal(SSL_session_reused(p.s), 1);
	SSL_SESSION_free(sess);
	assert_int_equal(SSL_version(p.s), expect_version);
	rl = tls_rl_new(p.s, &p.keys);
	assert_non_null(rl);
	SSL_set_shutdown(p.s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(p.s);

	/* server -> client: the greeting, then bulk */
	assert_int_equal(tls_rl_write(rl, (const uint8_t *)"220 hello\r\n", 11, &wire), 11);
	to_client(&p, &wire);
	assert_int_equal(SSL_read(p.c, rd, sizeof(rd)), 11);
	assert_memory_equal(rd, "220 hello\r\n", 11);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7 + 3);
	for (size_t off = 0; off < sizeof(big);) {
		n = tls_rl_write(rl, big + off, sizeof(big) - off, &wire);
		assert_true(n > 0);
		off += (size_t)n;
		to_client(&p, &wire);
	}
	for (size_t got = 0; got < sizeof(back);) {
		n = SSL_read(p.c, back + got, (int)(sizeof(back) - got));
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(big, back, sizeof(big));

	/* client -> server */
	memset(back, 0, sizeof(back));
	assert_int_equal(SSL_write(p.c, big, sizeof(big)), (int)sizeof(big));
	assert_int_equal(rl_take(rl, &p, &in, &wire, back, sizeof(back), &last), sizeof(big));
	assert_memory_equal(big, back, sizeof(big));

	if (expect_version == TLS1_3_VERSION) {
		/* The client updates its keys and asks for ours (RFC 8446 4.6.3). */
		assert_int_equal(SSL_key_update(p.c, SSL_KEY_UPDATE_REQUESTED), 1);
		assert_int_equal(SSL_write(p.c, "after", 5), 5);
		assert_int_equal(rl_take(rl, &p, &in, &wire, back, sizeof(back), &last), 5);
		assert_memory_equal(back, "after", 5);
		assert_int_equal(tls_rl_write(rl, (const uint8_t *)"new keys", 8, &wire), 8);
		to_client(&p, &wire);
		assert_int_equal(SSL_read(p.c, rd, sizeof(rd)), 8);
		assert_memory_equal(rd, "new keys", 8);
	}

	/* idle: contexts dropped, and made again */
	tls_rl_idle(rl);
	assert_int_equal(SSL_write(p.c, "more", 4), 4);
	assert_int_equal(rl_take(rl, &p, &in, &wire, back, sizeof(back), &last), 4);

	/* a tampered record is refused */
	{
		struct buf t = { 0 };
		uint8_t *dst = NULL;
		uint32_t room;
		char rec[256], err[128];
		int rn;

		assert_int_equal(SSL_write(p.c, "tamper", 6), 6);
		rn = BIO_read(p.c_out, rec, sizeof(rec));
		assert_true(rn > 10);
		rec[rn - 3] ^= 1;
		/* on a copy of rl's state: the real one must go on */
		buf_space(&t, &dst, &room);
		memcpy(dst, rec, (size_t)rn);
		t.tail += (uint32_t)rn;
		assert_int_equal(tls_rl_read(rl, &t, back, sizeof(back), &wire, err, sizeof(err)),
				 TLS_RL_ERROR);
		assert_string_equal(err, "bad record MAC");
		buf_free(&t);
	}
	tls_rl_free(rl);
	SSL_free(p.c);
	buf_free(&in);
	buf_free(&wire);
}

/* close_notify both ways, on a fresh pair. */
static void closes(SSL_CTX *sctx, SSL_CTX *cctx)
{
	struct pair p;
	struct tls_rl *rl;
	struct buf in = { 0 }, wire = { 0 };
	uint8_t back[64];
	char rd[16];
	int last;

	handshake(&p, sctx, cctx, NULL);
	rl = tls_rl_new(p.s, &p.keys);
	assert_non_null(rl);
	SSL_free(p.s);
	assert_int_equal(tls_rl_close_notify(rl, &wire), 0);
	to_client(&p, &wire);
	assert_int_equal(SSL_read(p.c, rd, sizeof(rd)), 0);
	assert_int_equal(SSL_get_error(p.c, 0), SSL_ERROR_ZERO_RETURN);
	SSL_shutdown(p.c);
	assert_int_equal(rl_take(rl, &p, &in, &wire, back, sizeof(back), &last), 0);
	assert_int_equal(last, TLS_RL_EOF);
	tls_rl_free(rl);
	SSL_free(p.c);
	buf_free(&in);
	buf_free(&wire);
}

static SSL_CTX *client_ctx(int version, const char *suite)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	if (version == TLS1_3_VERSION)
		SSL_CTX_set_ciphersuites(ctx, suite);
	else
		SSL_CTX_set_cipher_list(ctx, suite);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	return ctx;
}

static const struct {
	int version;
	const char *suite, *key;
} suites[] = {
	{ TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256", "EC" },
	{ TLS1_3_VERSION, "TLS_AES_256_GCM_SHA384", "EC" },
	{ TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256", "RSA" },
	{ TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", "EC" },
	{ TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", "RSA" },
	{ TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", "EC" },
	{ TLS1_2_VERSION, "AES128-GCM-SHA256", "RSA" },
};

static void test_every_aead_suite(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		for (int tickets = 0; tickets <= 2; tickets++) {
			SSL_CTX *s = server_ctx(suites[i].key, tickets);
			SSL_CTX *c = client_ctx(suites[i].version, suites[i].suite);

			print_message("# %s, %d ticket(s)\n", suites[i].suite, tickets);
			exercise(s, c, false, suites[i].version);
			if (tickets || suites[i].version == TLS1_2_VERSION)
				exercise(s, c, tickets > 0, suites[i].version);
			closes(s, c);
			SSL_CTX_free(s);
			SSL_CTX_free(c);
		}
	}
}

/* Resumption by session ID (TLS 1.2, the server's own cache). */
static void test_resumed_by_session_id(void **state)
{
	SSL_CTX *s = server_ctx("EC", 0), *c = client_ctx(TLS1_2_VERSION,
							   "ECDHE-ECDSA-AES128-GCM-SHA256");

	(void)state;
	SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_SERVER);
	exercise(s, c, true, TLS1_2_VERSION);
	SSL_CTX_free(s);
	SSL_CTX_free(c);
}

/* CBC suites and TLS 1.0 stay with OpenSSL. */
static void test_what_stays_with_openssl(void **state)
{
	static const struct { int v; const char *suite; } keep[] = {
		{ TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA" },
		{ TLS1_VERSION, "ECDHE-ECDSA-AES128-SHA" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		SSL_CTX *s = server_ctx("EC", 1), *c = client_ctx(keep[i].v, keep[i].suite);
		struct pair p;

		SSL_CTX_set_security_level(s, 0);
		SSL_CTX_set_min_proto_version(s, TLS1_VERSION);
		SSL_CTX_set_cipher_list(s, "ALL:@SECLEVEL=0");
		SSL_CTX_set_cipher_list(c, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0");
		handshake(&p, s, c, NULL);
		assert_null(tls_rl_new(p.s, &p.keys));
		SSL_free(p.s);
		SSL_free(p.c);
		SSL_CTX_free(s);
		SSL_CTX_free(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_aead_suite),
		cmocka_unit_test(test_resumed_by_session_id),
		cmocka_unit_test(test_what_stays_with_openssl),
	};

	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
