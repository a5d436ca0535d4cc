/*
 * natio's BIO (natio_bio.c): OpenSSL straight over the native stack's
 * connections, between two stacks on the simulated link (no DPDK, virtual
 * time, a seeded PRNG: the same run every time).
 *
 * Scenario: a TLS 1.3 handshake over a lossy link; the client sends 1 MiB
 * (more than the send buffer: SSL_write sees the BIO's retry and goes on
 * when the stack has room), the server reads it all, hashes match; the
 * client's close_notify reaches the server as SSL_ERROR_ZERO_RETURN; once
 * the connection is gone and the BIO detached, SSL calls fail cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "natio.h"
#include "net/simlink.h"

#define TOTAL (1u << 20)

struct end {
	struct tcp_conn *c;
	SSL *ssl;
	bool connected, hs_done, eof, closed;
	size_t moved;
	uint64_t hash;
};

static struct end cli, srv;
static SSL_CTX *sctx, *cctx;
static uint8_t payload[TOTAL];

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

/* A fresh self-signed P-256 certificate in the server context. */
static void make_ctxs(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(key);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)"bench.test",
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	sctx = SSL_CTX_new(TLS_server_method());
	cctx = SSL_CTX_new(TLS_client_method());
	assert_true(SSL_CTX_use_certificate(sctx, x) == 1);
	assert_true(SSL_CTX_use_PrivateKey(sctx, key) == 1);
	SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
	SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
	SSL_CTX_set_mode(cctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void on_closed(struct tcp_conn *c, void *ctx, int err)
{
	struct end *e = ctx;

	e->closed = true;
	e->c = NULL;
	natio_bio_detach(SSL_get_rbio(e->ssl));
}

static void on_connected(struct tcp_conn *c, void *ctx)
{
	((struct end *)ctx)->connected = true;
}

static const struct tcp_ops ops = { .connected = on_connected, .closed = on_closed };

static void bind_ssl(struct end *e, struct tcp_conn *c, SSL_CTX *ctx)
{
	BIO *b = natio_bio_new(c);

	assert_non_null(b);
	e->c = c;
	e->ssl = SSL_new(ctx);
	SSL_set_bio(e->ssl, b, b);
}

static int on_accept(void *lctx, struct tcp_conn *c)
{
	tcp_set_ops(c, &ops, &srv);
	bind_ssl(&srv, c, sctx);
	SSL_set_accept_state(srv.ssl);
	return 0;
}

/* An SSL call's result: progress, or only "not now" (no error). */
static void want_only(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);

	if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
		char buf[160];

		ERR_error_string_n(ERR_peek_last_error(), buf, sizeof(buf));
		fail_msg("SSL error %d: %s", e, buf);
	}
}

/* Both ends as far as they go; the run ends when the server has it all and
 * saw the close_notify. */
static bool step(void *arg)
{
	int r;

	if (cli.connected && !cli.hs_done) {   /* tcp_send refuses before */
		r = SSL_do_handshake(cli.ssl);
		if (r == 1)
			cli.hs_done = true;
		else
			want_only(cli.ssl, r);
	}
	if (srv.ssl && !srv.hs_done) {
		r = SSL_do_handshake(srv.ssl);
		if (r == 1)
			srv.hs_done = true;
		else
			want_only(srv.ssl, r);
	}
	while (cli.hs_done && cli.moved < TOTAL) {
		r = SSL_write(cli.ssl, payload + cli.moved, (int)(TOTAL - cli.moved));
		if (r <= 0) {
			want_only(cli.ssl, r);
			break;
		}
		cli.moved += (size_t)r;
		if (cli.moved == TOTAL)
			SSL_shutdown(cli.ssl);     /* close_notify after the data */
	}
	while (srv.hs_done && !srv.eof) {
		uint8_t buf[16384];

		r = SSL_read(srv.ssl, buf, sizeof(buf));
		if (r > 0) {
			srv.hash = fnv(srv.hash, buf, (size_t)r);
			srv.moved += (size_t)r;
			continue;
		}
		if (SSL_get_error(srv.ssl, r) == SSL_ERROR_ZERO_RETURN)
			srv.eof = true;
		else
			want_only(srv.ssl, r);
		break;
	}
	return srv.eof;
}

static void test_tls_over_native(void **state)
{
	struct simlink_params lp = { .delay_us = 1000, .loss_ppm = 10000, .rate_bps = 1000000000 };
	struct simlink *l = simlink_new(7, &lp, &lp);
	struct tcp_params tp = { .sndbuf = 64u << 10, .rcvbuf = 64u << 10 };
	struct tcp_connect_req req = { .rport = 465, .ops = &ops, .ctx = &cli };
	struct net_config ca, cb;
	struct net_stack *a, *b;
	struct tcp_listener *lst;
	struct tcp_conn *c;
	uint8_t junk[8];
	unsigned i;

	(void)state;
	for (i = 0; i < TOTAL; i++)
		payload[i] = (uint8_t)(i * 7 + (i >> 9));
	make_ctxs();
	srv.hash = 0xcbf29ce484222325ULL;
	memset(&ca, 0, sizeof(ca));
	memset(&cb, 0, sizeof(cb));
	ca.mac[5] = 1;
	cb.mac[5] = 2;
	ca.has_ip4 = cb.has_ip4 = true;
	memcpy(ca.ip4, (uint8_t[]){ 192, 0, 2, 1 }, 4);
	memcpy(cb.ip4, (uint8_t[]){ 192, 0, 2, 10 }, 4);
	ca.ip4_plen = cb.ip4_plen = 24;
	ca.secret[0] = 1;
	cb.secret[0] = 2;
	ca.tcp = cb.tcp = tp;
	ca.tx = cb.tx = simlink_tx;
	ca.tx_ctx = simlink_port(l, 0);
	cb.tx_ctx = simlink_port(l, 1);
	a = net_stack_new(&ca, 0);
	b = net_stack_new(&cb, 0);
	assert_non_null(a);
	assert_non_null(b);
	simlink_attach_stack(l, 0, a);
	simlink_attach_stack(l, 1, b);
	assert_int_equal(tcp_listen(b, NULL, 465, on_accept, NULL, &lst), 0);
	req.raddr.family = NET_AF4;
	memcpy(req.raddr.a, cb.ip4, 4);
	assert_int_equal(tcp_connect(a, &req, &c), 0);
	bind_ssl(&cli, c, cctx);
	SSL_set_connect_state(cli.ssl);

	assert_true(simlink_run(l, 60000000, step, NULL));
	assert_true(cli.hs_done && srv.hs_done);
	assert_int_equal(SSL_version(srv.ssl), TLS1_3_VERSION);
	assert_int_equal(srv.moved, TOTAL);
	assert_true(srv.hash == fnv(0xcbf29ce484222325ULL, payload, TOTAL));
	assert_true(simlink_stats(l, 0)->lost > 0);   /* the loss was exercised */

	/* The client's connection reset and gone: its BIO detached, SSL fails
	 * without touching the freed connection. */
	tcp_abort(cli.c);
	natio_bio_detach(SSL_get_rbio(cli.ssl));
	assert_true(SSL_read(cli.ssl, junk, sizeof(junk)) <= 0);
	assert_int_equal(BIO_write(SSL_get_wbio(cli.ssl), "x", 1), -1);
	assert_false(BIO_should_retry(SSL_get_wbio(cli.ssl)));
	/* the server's end learns of it from the stack */
	simlink_run(l, simlink_now(l) + 2000000, NULL, NULL);
	assert_true(srv.closed);
	assert_true(SSL_write(srv.ssl, "x", 1) <= 0);
	assert_int_equal(BIO_read(SSL_get_rbio(srv.ssl), junk, sizeof(junk)), -1);
	assert_false(BIO_should_retry(SSL_get_rbio(srv.ssl)));

	SSL_free(cli.ssl);
	SSL_free(srv.ssl);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	net_stack_free(a);
	net_stack_free(b);
	simlink_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls_over_native),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
