/*
 * sluice as a TLS client of a backend (tls/client.c): real handshakes in
 * memory against an OpenSSL server, verified by pin and by CA file and
 * name, and how failures are classed: verification failures never look
 * like intolerance; a server that closes after the ClientHello, or sends
 * protocol_version before any ServerHello, does; a server's next
 * connection resumes the session it gave. The same handshakes as jobs of
 * kind TLSJ_CLIENT (tls/worker.c), run by a worker thread and inline
 * (workers: 0), classed here from what the job brought back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "client.h"
#include "tls.h"

static EVP_PKEY *key;
static X509 *crt;
static char ca_path[64];

/* A self-signed P-256 certificate for mx.example. */
static int setup(void **state)
{
	(void)state;
	X509_NAME *n;
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	FILE *f;
	int fd;

	key = EVP_EC_gen("P-256");
	crt = X509_new();
	X509_set_version(crt, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
	X509_gmtime_adj(X509_getm_notBefore(crt), -60);
	X509_gmtime_adj(X509_getm_notAfter(crt), 3600);
	X509_set_pubkey(crt, key);
	n = X509_get_subject_name(crt);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"mx.example", -1,
				   -1, 0);
	X509_set_issuer_name(crt, n);
	X509V3_set_ctx(&v3, crt, crt, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:mx.example");
	X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(crt, key, EVP_sha256());
	snprintf(ca_path, sizeof(ca_path), "/tmp/test_tls_client.XXXXXX");
	fd = mkstemp(ca_path);
	f = fdopen(fd, "w");
	PEM_write_X509(f, crt);
	fclose(f);
	return key && crt ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	unlink(ca_path);
	X509_free(crt);
	EVP_PKEY_free(key);
	return 0;
}

/* The server: TLS max_version (0: any), min_version (0: any). */
static SSL *server(int min, int max)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *s;

	SSL_CTX_use_certificate(ctx, crt);
	SSL_CTX_use_PrivateKey(ctx, key);
	SSL_CTX_set_min_proto_version(ctx, min);
	SSL_CTX_set_max_proto_version(ctx, max);
	s = SSL_new(ctx);
	SSL_CTX_free(ctx);
	SSL_set_accept_state(s);
	return s;
}

/* Run both sides until the client finishes or fails; the client's last
 * SSL_get_error (0: done) and the first error of its queue in *err. */
static int run(SSL *c, SSL *s, unsigned long *err)
{
	BIO *cb, *sb;

	BIO_new_bio_pair(&cb, 0, &sb, 0);
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	for (int i = 0; i < 20; i++) {
		int rc, e;

		ERR_clear_error();
		rc = SSL_do_handshake(c);
		e = rc == 1 ? 0 : SSL_get_error(c, rc);
		*err = ERR_peek_error();
		if (rc == 1 || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE))
			return e;
		SSL_do_handshake(s);
		ERR_clear_error();
	}
	return -1;
}

static struct cfg_backend_tls pin_cfg(void)
{
	struct cfg_backend_tls t = { .tls = CFG_BE_TLS_REQUIRED, .min_version = CFG_TLS_V1_2,
				     .has_pin = true, .server_name = "mx.example" };

	assert_int_equal(tls_spki_sha256(crt, t.pin), 0);
	return t;
}

static void test_pin(void **state)
{
	(void)state;
	struct cfg_backend_tls t = pin_cfg();
	struct tls_client tc;
	unsigned long err;
	char err_s[256], why[160];

	assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
	/* The right key: TLS 1.3, and the conservative hello gets TLS 1.2. */
	for (int cons = 0; cons < 2; cons++) {
		SSL *c = tls_client_ssl(&tc, cons, -1), *s = server(0, 0);

		assert_int_equal(run(c, s, &err), 0);
		assert_int_equal(SSL_version(c), cons ? TLS1_2_VERSION : TLS1_3_VERSION);
		SSL_free(c);
		SSL_free(s);
	}
	tls_client_free(&tc);

	/* Another key: a verification failure, never intolerance. */
	t.pin[0] ^= 1;
	assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
	SSL *c = tls_client_ssl(&tc, false, -1), *s = server(0, 0);
	int e = run(c, s, &err);

	assert_int_not_equal(e, 0);
	assert_int_equal(tls_client_classify(c, e, err, why, sizeof(why)), TLSC_FAIL_VERIFY);
	assert_non_null(strstr(why, "certificate verification failed"));
	SSL_free(c);
	SSL_free(s);
	tls_client_free(&tc);
}

static void test_ca_and_name(void **state)
{
	(void)state;
	struct cfg_backend_tls t = { .tls = CFG_BE_TLS_REQUIRED, .min_version = CFG_TLS_V1_2,
				     .ca_file = ca_path, .server_name = "mx.example" };
	struct tls_client tc;
	unsigned long err;
	char err_s[256], why[160];
	SSL *c, *s;
	int e;

	assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
	c = tls_client_ssl(&tc, false, -1);
	s = server(0, 0);
	assert_int_equal(run(c, s, &err), 0);
	SSL_free(c);
	SSL_free(s);
	tls_client_free(&tc);

	t.server_name = "other.example";
	assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
	c = tls_client_ssl(&tc, false, -1);
	s = server(0, 0);
	e = run(c, s, &err);
	assert_int_not_equal(e, 0);
	assert_int_equal(tls_client_classify(c, e, err, why, sizeof(why)), TLSC_FAIL_VERIFY);
	assert_non_null(strstr(why, "hostname mismatch"));
	SSL_free(c);
	SSL_free(s);
	tls_client_free(&tc);
}

/* A server that wants TLS 1.3 answers the conservative hello with
 * protocol_version before any ServerHello: that looks like intolerance. */
static void test_alert_before_server_hello(void **state)
{
	(void)state;
	struct cfg_backend_tls t = pin_cfg();
	struct tls_client tc;
	unsigned long err;
	char err_s[256], why[160];

	assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
	SSL *c = tls_client_ssl(&tc, true, -1), *s = server(TLS1_3_VERSION, 0);
	int e = run(c, s, &err);

	assert_int_not_equal(e, 0);
	assert_int_equal(tls_client_classify(c, e, err, why, sizeof(why)), TLSC_FAIL_INTOLERANT);
	assert_non_null(strstr(why, "protocol version"));
	SSL_free(c);
	SSL_free(s);
	tls_client_free(&tc);
}

/* The server closes after the ClientHello. */
static void test_close_after_hello(void **state)
{
	(void)state;
	struct cfg_backend_tls t = pin_cfg();
	struct tls_client tc;
	char err_s[256], why[160];
	BIO *cb, *sb;
	int rc, e;

	assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
	SSL *c = tls_client_ssl(&tc, false, -1);

	BIO_new_bio_pair(&cb, 0, &sb, 0);
	SSL_set_bio(c, cb, cb);
	assert_int_equal(SSL_get_error(c, SSL_do_handshake(c)), SSL_ERROR_WANT_READ);
	BIO_shutdown_wr(sb); /* the hello read by nobody, then EOF */
	ERR_clear_error();
	rc = SSL_do_handshake(c);
	e = SSL_get_error(c, rc);
	assert_int_equal(tls_client_classify(c, e, ERR_peek_error(), why, sizeof(why)),
			 TLSC_FAIL_INTOLERANT);
	assert_string_equal(why, "connection closed after the ClientHello");
	SSL_free(c);
	BIO_free(sb);
	tls_client_free(&tc);
}

/* min_version TLSv1.3 leaves no room for the conservative hello. */
static void test_no_fallback_below_min(void **state)
{
	(void)state;
	struct cfg_backend_tls t = pin_cfg();
	struct tls_client tc;
	char err_s[256];

	t.min_version = CFG_TLS_V1_3;
	assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
	assert_non_null(tc.normal);
	assert_null(tc.conservative);
	assert_null(tls_client_ssl(&tc, true, -1));
	tls_client_free(&tc);
}

/* After the client's handshake: the server finishes (TLS 1.3 sends its
 * tickets then) and the client reads what came. No close_notify, as with
 * a backend that just closes. */
static void settle(SSL *c, SSL *s)
{
	char b;

	SSL_do_handshake(s);
	SSL_read(c, &b, 1);
	ERR_clear_error();
}

/* One handshake of tc's (server slot, hello) against a server of sctx;
 * did it resume? */
static bool resumed(struct tls_client *tc, SSL_CTX *sctx, bool cons, int slot)
{
	SSL *c = tls_client_ssl(tc, cons, slot), *s = SSL_new(sctx);
	unsigned long err;
	bool r;

	SSL_set_accept_state(s);
	assert_int_equal(run(c, s, &err), 0);
	settle(c, s);
	r = SSL_session_reused(c);

	SSL_free(c);
	SSL_free(s);
	return r;
}

/* A server's slot: its next connection resumes the session it gave, on
 * TLS 1.3 (a ticket after the handshake) and TLS 1.2 (a ticket in it);
 * other slots, the probes' -1 and the conservative hello do not. */
static void test_resumption(void **state)
{
	(void)state;
	struct cfg_backend_tls t = pin_cfg();
	struct tls_client tc;
	char err_s[256];

	for (int v = 0; v < 2; v++) {
		SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());

		SSL_CTX_use_certificate(sctx, crt);
		SSL_CTX_use_PrivateKey(sctx, key);
		SSL_CTX_set_max_proto_version(sctx, v ? TLS1_2_VERSION : 0);
		assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
		assert_false(resumed(&tc, sctx, false, 0));     /* nothing to offer yet */
		assert_true(resumed(&tc, sctx, false, 0));      /* the session it gave */
		assert_true(resumed(&tc, sctx, false, 0));      /* and the next one's */
		assert_false(resumed(&tc, sctx, false, -1));    /* a probe: full */
		assert_false(resumed(&tc, sctx, true, 0));      /* conservative: full */
		assert_false(resumed(&tc, sctx, false, 1));     /* another server's slot */
		assert_true(resumed(&tc, sctx, false, 1));
		tls_client_free(&tc);
		/* a new configuration (a reload) starts with empty slots */
		assert_int_equal(tls_client_init(&tc, &t, 2, err_s, sizeof(err_s)), 0);
		assert_false(resumed(&tc, sctx, false, 0));
		tls_client_free(&tc);
		SSL_CTX_free(sctx);
	}
}

/* One step of c's handshake as a TLSJ_CLIENT job on core 0's rings: to a
 * worker (or inline, run by tlsw_kick), and back. */
static void job_step(struct tls_job *j)
{
	struct timespec ts = { 0, 1000000 };
	struct tls_job *back = NULL;

	atomic_store(&j->cancelled, false);
	assert_true(tlsw_post(0, j));
	tlsw_kick(0);
	for (int i = 0; i < 5000 && !(back = tlsw_poll(0)); i++)
		nanosleep(&ts, NULL);
	assert_ptr_equal(back, j);
}

/*
 * Client c against server s over two byte buffers, c's steps as jobs, s's
 * here; with eof_after_hello the server reads nothing and closes after
 * the client's first step. Returns the last job's status; the job in *j.
 */
static int job_run(SSL *c, SSL *s, struct tls_job *j, bool eof_after_hello)
{
	struct buf c2s = { 0 }, s2c = { 0 };
	struct tls_io cio = { .in = &s2c, .out = &c2s }, sio = { .in = &c2s, .out = &s2c };
	BIO *cb = tls_bio_new(&cio), *sb = tls_bio_new(&sio);

	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	memset(j, 0, sizeof(*j));
	j->kind = TLSJ_CLIENT;
	j->ssl = c;
	j->io = &cio;
	for (int i = 0; i < 20; i++) {
		job_step(j);
		/* The worker's error queue is its own, and it leaves it empty;
		 * inline it is this thread's, emptied the same. */
		assert_int_equal(ERR_peek_error(), 0);
		if (j->status == TLSJ_DONE || j->status == TLSJ_FAIL)
			break;
		if (eof_after_hello) {
			cio.in_eof = true;
			continue;
		}
		SSL_do_handshake(s);
		ERR_clear_error();
	}
	SSL_set_bio(c, NULL, NULL); /* frees both BIOs before the buffers */
	SSL_set_bio(s, NULL, NULL);
	buf_free(&c2s);
	buf_free(&s2c);
	return j->status;
}

/* Handshakes as worker jobs, with a worker thread and inline: done; a
 * wrong pin is a verification failure; a close after the ClientHello and
 * a protocol_version alert before any ServerHello look like intolerance,
 * all classed from the job's ssl_error and err. */
static void test_worker_jobs(void **state)
{
	(void)state;
	struct cfg_backend_tls t = pin_cfg(), tb = t; /* the contexts keep &t, &tb */
	struct tls_client tc, bad;
	struct tls_job j;
	char err_s[256], why[160];

	tb.pin[0] ^= 1; /* another key's */
	assert_int_equal(tls_bio_init(), 0);
	for (int workers = 1; workers >= 0; workers--) { /* a worker thread, then inline */
		assert_int_equal(tlsw_start((unsigned)workers, 1, err_s, sizeof(err_s)), 0);
		assert_int_equal(tlsw_inline(), workers == 0);
		assert_int_equal(tls_client_init(&tc, &t, 1, err_s, sizeof(err_s)), 0);
		assert_int_equal(tls_client_init(&bad, &tb, 1, err_s, sizeof(err_s)), 0);

		SSL *c = tls_client_ssl(&tc, false, 0), *s = server(0, 0);

		assert_int_equal(job_run(c, s, &j, false), TLSJ_DONE);
		assert_int_equal(SSL_version(c), TLS1_3_VERSION);
		SSL_free(c);
		SSL_free(s);

		c = tls_client_ssl(&bad, false, -1);
		s = server(0, 0);
		assert_int_equal(job_run(c, s, &j, false), TLSJ_FAIL);
		assert_int_equal(tls_client_classify(c, j.ssl_error, j.err, why, sizeof(why)),
				 TLSC_FAIL_VERIFY);
		assert_non_null(strstr(why, "certificate verification failed"));
		SSL_free(c);
		SSL_free(s);

		c = tls_client_ssl(&tc, false, -1);
		s = server(0, 0);
		assert_int_equal(job_run(c, s, &j, true), TLSJ_FAIL);
		assert_int_equal(tls_client_classify(c, j.ssl_error, j.err, why, sizeof(why)),
				 TLSC_FAIL_INTOLERANT);
		assert_string_equal(why, "connection closed after the ClientHello");
		SSL_free(c);
		SSL_free(s);

		c = tls_client_ssl(&tc, true, -1);
		s = server(TLS1_3_VERSION, 0);
		assert_int_equal(job_run(c, s, &j, false), TLSJ_FAIL);
		assert_int_not_equal(j.err, 0);
		assert_int_equal(tls_client_classify(c, j.ssl_error, j.err, why, sizeof(why)),
				 TLSC_FAIL_INTOLERANT);
		assert_non_null(strstr(why, "protocol version"));
		SSL_free(c);
		SSL_free(s);

		tls_client_free(&tc);
		tls_client_free(&bad);
		tlsw_stop(NULL);
		tlsw_fini();
	}
	tls_bio_fini();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pin),
		cmocka_unit_test(test_ca_and_name),
		cmocka_unit_test(test_alert_before_server_hello),
		cmocka_unit_test(test_close_after_hello),
		cmocka_unit_test(test_no_fallback_below_min),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_worker_jobs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
