/*
 * cryptobound: the two references every server figure is divided by,
 * measured with the OpenSSL this run links.
 *
 *   cryptobound --ec-cert C --ec-key K --rsa-cert C --rsa-key K [--seconds S]
 *
 * (a) The crypto bound: what a server cannot avoid per handshake, one
 *     signature (ECDSA P-256, or RSA-2048 PSS) and its half of the key
 *     exchange (X25519 key generation and derivation); per MiB, AES-128-GCM
 *     in 16 KiB records.
 * (b) OpenSSL's floor: a whole handshake between a client and a server SSL
 *     object over a BIO pair in memory, no sockets, timed on the server
 *     object only (SSL_new, handshake, SSL_free); the same resumed; and the
 *     server's SSL_read cost per MiB.
 *
 * (c) The TSC's rate (tsc_hz), to turn CPU time into cycles beside the
 *     native stack's busy cycles, which it counts with the TSC.
 *
 * Each figure is the 10th percentile of the means of many small batches
 * (a shared machine disturbs some), in microseconds of one thread. Prints
 * one JSON object.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#define MAX_BATCHES 400

static double seconds_per_figure = 1.0;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The 10th percentile: on a shared machine other work only ever adds time,
 * so a low quantile estimates the undisturbed cost; not the minimum, which
 * would pick one lucky batch. */
static double low_quantile(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n ? v[n / 10] : 0;
}

static void die(const char *what)
{
	fprintf(stderr, "cryptobound: %s: ", what);
	ERR_print_errors_fp(stderr);
	fputc('\n', stderr);
	exit(1);
}

/* A benchmark body: does one operation, returns the microseconds to count
 * (its own timing for the floor, which times the server side only). */
typedef double (*op_fn)(void *arg);

/* Run fn in batches for about seconds_per_figure; the low quantile of the
 * batch means, in microseconds per op. */
static double measure(op_fn fn, void *arg, unsigned batch)
{
	double per[MAX_BATCHES], t_end = now_us() + seconds_per_figure * 1e6;
	unsigned nb = 0;

	fn(arg);        /* warm: first-use allocations and fetches */
	while (nb < MAX_BATCHES && (nb < 3 || now_us() < t_end)) {
		double sum = 0;
		unsigned i;

		for (i = 0; i < batch; i++)
			sum += fn(arg);
		per[nb++] = sum / batch;
	}
	return low_quantile(per, nb);
}

/* ------------------------------------------------------ primitives --- */

struct sign_arg {
	EVP_PKEY *key;
	EVP_PKEY_CTX *ctx;
	bool pss;
	unsigned char sig[512];
};

/* One signature of a TLS 1.3 CertificateVerify (RFC 8446 §4.4.3: 64
 * spaces, a context string and the transcript hash, 130 bytes, hashed with
 * SHA-256) with a signing context set up once: the signature itself and
 * the hash, none of OpenSSL's per-call set-up. */
static double op_sign(void *p)
{
	struct sign_arg *a = p;
	static const unsigned char tbs[130] = { 0x20 };
	unsigned char md[32];
	size_t len = sizeof(a->sig);
	double t0 = now_us();

	SHA256(tbs, sizeof(tbs), md);
	if (EVP_PKEY_sign(a->ctx, a->sig, &len, md, sizeof(md)) != 1)
		die("sign");
	return now_us() - t0;
}

static void sign_setup(struct sign_arg *a)
{
	if (!(a->ctx = EVP_PKEY_CTX_new(a->key, NULL)) || EVP_PKEY_sign_init(a->ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(a->ctx, EVP_sha256()) != 1 ||
	    (a->pss && (EVP_PKEY_CTX_set_rsa_padding(a->ctx, RSA_PKCS1_PSS_PADDING) != 1 ||
			EVP_PKEY_CTX_set_rsa_pss_saltlen(a->ctx, RSA_PSS_SALTLEN_DIGEST) != 1)))
		die("sign set-up");
}

struct kex_arg {
	EVP_PKEY_CTX *gen;      /* X25519 key generation, set up once */
	EVP_PKEY *peer;         /* the client's share */
};

/* The server's half of an X25519 exchange: a fresh key, then the secret
 * with the client's share. */
static double op_x25519(void *p)
{
	struct kex_arg *a = p;
	EVP_PKEY *mine = NULL;
	EVP_PKEY_CTX *ctx;
	unsigned char secret[32];
	size_t len = sizeof(secret);
	double t0 = now_us();

	if (EVP_PKEY_keygen(a->gen, &mine) != 1 ||
	    !(ctx = EVP_PKEY_CTX_new(mine, NULL)) || EVP_PKEY_derive_init(ctx) != 1 ||
	    EVP_PKEY_derive_set_peer(ctx, a->peer) != 1 || EVP_PKEY_derive(ctx, secret, &len) != 1)
		die("x25519");
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(mine);
	return now_us() - t0;
}

/* 1 MiB through AES-128-GCM in 16 KiB records, each with its own nonce and
 * tag, as TLS does. */
static double op_gcm_mib(void *p)
{
	EVP_CIPHER_CTX *ctx = p;
	static unsigned char in[16384], out[16384 + 16], key[16], iv[12], tag[16];
	double t0 = now_us();
	unsigned r;
	int len;

	for (r = 0; r < 64; r++) {
		iv[11] = (unsigned char)r;
		if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv) != 1 ||
		    EVP_EncryptUpdate(ctx, NULL, &len, iv, 5) != 1 ||     /* the AAD */
		    EVP_EncryptUpdate(ctx, out, &len, in, sizeof(in)) != 1 ||
		    EVP_EncryptFinal_ex(ctx, out + len, &len) != 1 ||
		    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
			die("aes-128-gcm");
	}
	return now_us() - t0;
}

/* ----------------------------------------------------------- floor --- */

struct floor_arg {
	SSL_CTX *server, *client;
	SSL_SESSION *session;   /* resumed: the session to offer */
	bool resume;
};

/* Move bytes both ways until both sides finished; the server's time
 * (including SSL_new and SSL_free) is returned, so the client's work does
 * not count. */
static double op_handshake(void *p)
{
	struct floor_arg *a = p;
	SSL *c = SSL_new(a->client), *s;
	BIO *bc, *bs;
	double ts = 0, t0;
	int rc = 0, rs = 0, rounds = 0;
	char byte;

	if (!c || !BIO_new_bio_pair(&bc, 0, &bs, 0))
		die("client SSL_new");
	SSL_set_bio(c, bc, bc);
	SSL_set_connect_state(c);
	if (a->resume && a->session)
		SSL_set_session(c, a->session);
	t0 = now_us();
	if (!(s = SSL_new(a->server)))
		die("server SSL_new");
	SSL_set_bio(s, bs, bs);
	SSL_set_accept_state(s);
	ts += now_us() - t0;
	while ((rc != 1 || rs != 1) && rounds++ < 20) {
		if (rc != 1)
			rc = SSL_do_handshake(c);
		t0 = now_us();
		if (rs != 1)
			rs = SSL_do_handshake(s);
		ts += now_us() - t0;
	}
	if (rc != 1 || rs != 1)
		die("in-memory handshake");
	/* one byte from the server carries the TLS 1.3 tickets to the client */
	t0 = now_us();
	if (SSL_write(s, "x", 1) != 1)
		die("server write");
	ts += now_us() - t0;
	if (SSL_read(c, &byte, 1) != 1)
		die("client read");
	if (a->resume) {
		if (a->session && !SSL_session_reused(c))
			die("the floor's resumption did not resume");
		SSL_SESSION_free(a->session);
		a->session = SSL_get1_session(c);
	}
	/* freed without a shutdown, OpenSSL takes a session for bad and
	 * marks it not resumable: say both sides closed */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	t0 = now_us();
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(s);
	ts += now_us() - t0;
	SSL_free(c);
	return ts;
}

struct bulk_arg {
	SSL *c, *s;
	unsigned char buf[16384];
};

/* 1 MiB written by the client and read by the server, in 16 KiB records:
 * the server's SSL_read time. */
static double op_bulk_mib(void *p)
{
	struct bulk_arg *a = p;
	double ts = 0, t0;
	unsigned r;

	for (r = 0; r < 64; r++) {
		if (SSL_write(a->c, a->buf, sizeof(a->buf)) != (int)sizeof(a->buf))
			die("bulk write");
		t0 = now_us();
		{
			int got = 0;

			while (got < (int)sizeof(a->buf)) {
				int n = SSL_read(a->s, a->buf, (int)sizeof(a->buf) - got);

				if (n <= 0)
					die("bulk read");
				got += n;
			}
		}
		ts += now_us() - t0;
	}
	return ts;
}

static EVP_PKEY *load_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

	if (f)
		fclose(f);
	if (!k)
		die(path);
	return k;
}

/* The server context of the floor: the policy sluice and the peers are
 * given (TLS 1.2+, ECDHE with AEAD), one certificate; tickets only for the
 * resumed figure. */
static SSL_CTX *server_ctx(const char *cert, const char *key, bool tickets)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx || SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die("server context");
	SSL_CTX_set_security_level(ctx, 1);
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384");
	SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
				"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384");
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			    (tickets ? 0 : SSL_OP_NO_TICKET));
	SSL_CTX_set_num_tickets(ctx, tickets ? 1 : 0);
	SSL_CTX_set_session_cache_mode(ctx, tickets ? SSL_SESS_CACHE_SERVER : SSL_SESS_CACHE_OFF);
	return ctx;
}

/* The client context: the loadgen's pinning (version, X25519, sigalg). */
static SSL_CTX *client_ctx(int version, bool rsa)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		die("client context");
	SSL_CTX_set_security_level(ctx, 1);
	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (!SSL_CTX_set1_groups_list(ctx, "X25519") ||
	    !SSL_CTX_set1_sigalgs_list(ctx, rsa ? "rsa_pss_rsae_sha256" : "ECDSA+SHA256") ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") ||
	    !SSL_CTX_set_cipher_list(ctx, rsa ? "ECDHE-RSA-AES128-GCM-SHA256"
					      : "ECDHE-ECDSA-AES128-GCM-SHA256"))
		die("client policy");
	return ctx;
}

/* Server-side floor of one (version, cert) full or resumed handshake. */
static double floor_of(const char *cert, const char *key, int version, bool rsa, bool resume)
{
	struct floor_arg a = { server_ctx(cert, key, resume), client_ctx(version, rsa), NULL, resume };
	double us;

	op_handshake(&a);       /* a session to resume, when resuming */
	us = measure(op_handshake, &a, 20);
	SSL_SESSION_free(a.session);
	SSL_CTX_free(a.server);
	SSL_CTX_free(a.client);
	return us;
}

static double floor_bulk(const char *cert, const char *key)
{
	static struct bulk_arg b;
	SSL_CTX *sc = server_ctx(cert, key, false), *cc = client_ctx(TLS1_3_VERSION, false);
	BIO *bc, *bs;
	double us;
	int rc = 0, rs = 0, i;

	b.c = SSL_new(cc);
	b.s = SSL_new(sc);
	if (!b.c || !b.s || !BIO_new_bio_pair(&bc, 1 << 20, &bs, 1 << 20))
		die("bulk set-up");
	SSL_set_bio(b.c, bc, bc);
	SSL_set_bio(b.s, bs, bs);
	SSL_set_connect_state(b.c);
	SSL_set_accept_state(b.s);
	for (i = 0; i < 20 && (rc != 1 || rs != 1); i++) {
		if (rc != 1)
			rc = SSL_do_handshake(b.c);
		if (rs != 1)
			rs = SSL_do_handshake(b.s);
	}
	if (rc != 1 || rs != 1)
		die("bulk handshake");
	us = measure(op_bulk_mib, &b, 2);
	SSL_free(b.c);
	SSL_free(b.s);
	SSL_CTX_free(sc);
	SSL_CTX_free(cc);
	return us;
}

static double raw_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The TSC's ticks per second: TSC ticks over CLOCK_MONOTONIC_RAW across
 * 100 ms sleeps, the median of five (a tick and a clock read that a
 * preemption separates skew one sample, not the median). The invariant TSC
 * runs at a fixed rate whatever the core's clock does, so these are
 * reference cycles. 0 where there is no TSC. */
static double tsc_hz(void)
{
#if defined(__x86_64__) || defined(__i386__)
	struct timespec nap = { 0, 100 * 1000 * 1000 };
	double v[5];

	for (unsigned i = 0; i < 5; i++) {
		double t0 = raw_seconds();
		unsigned long long c0 = __rdtsc();

		nanosleep(&nap, NULL);
		v[i] = (double)(__rdtsc() - c0) / (raw_seconds() - t0);
	}
	qsort(v, 5, sizeof(v[0]), cmp_double);
	return v[2];
#else
	return 0;
#endif
}

int main(int argc, char **argv)
{
	const char *ec_cert = NULL, *ec_key = NULL, *rsa_cert = NULL, *rsa_key = NULL;
	struct sign_arg ecdsa = { 0 }, rsa = { 0 };
	double ec_us, rsa_us, x_us, gcm_us;
	EVP_CIPHER_CTX *gcm;
	struct kex_arg kex = { 0 };
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--ec-cert"))
			ec_cert = argv[i + 1];
		else if (!strcmp(argv[i], "--ec-key"))
			ec_key = argv[i + 1];
		else if (!strcmp(argv[i], "--rsa-cert"))
			rsa_cert = argv[i + 1];
		else if (!strcmp(argv[i], "--rsa-key"))
			rsa_key = argv[i + 1];
		else if (!strcmp(argv[i], "--seconds"))
			seconds_per_figure = atof(argv[i + 1]);
		else
			break;
	}
	if (i != argc || !ec_cert || !ec_key || !rsa_cert || !rsa_key || seconds_per_figure <= 0) {
		fprintf(stderr, "usage: cryptobound --ec-cert C --ec-key K --rsa-cert C "
			"--rsa-key K [--seconds S]\n");
		return 2;
	}
	OPENSSL_init_ssl(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);

	ecdsa.key = load_key(ec_key);
	rsa.key = load_key(rsa_key);
	rsa.pss = true;
	sign_setup(&ecdsa);
	sign_setup(&rsa);
	ec_us = measure(op_sign, &ecdsa, 50);
	rsa_us = measure(op_sign, &rsa, 5);
	if (!(kex.peer = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) ||
	    !(kex.gen = EVP_PKEY_CTX_new_from_name(NULL, "X25519", NULL)) ||
	    EVP_PKEY_keygen_init(kex.gen) != 1)
		die("x25519 set-up");
	x_us = measure(op_x25519, &kex, 50);
	if (!(gcm = EVP_CIPHER_CTX_new()) ||
	    EVP_EncryptInit_ex(gcm, EVP_aes_128_gcm(), NULL, NULL, NULL) != 1)
		die("aes-128-gcm");
	gcm_us = measure(op_gcm_mib, gcm, 2);

	printf("{\"openssl\": \"%s\", \"seconds_per_figure\": %.2f, \"tsc_hz\": %.0f,\n",
	       OpenSSL_version(OPENSSL_VERSION), seconds_per_figure, tsc_hz());
	printf(" \"primitives_us\": {\"ecdsa_p256_sign\": %.2f, \"rsa2048_pss_sign\": %.2f, "
	       "\"x25519_keygen_derive\": %.2f, \"aes128gcm_per_mib\": %.2f},\n",
	       ec_us, rsa_us, x_us, gcm_us);
	printf(" \"bound_us\": {\"tls13_ecdsa\": %.2f, \"tls12_rsa\": %.2f, \"tls13_rsa\": %.2f, "
	       "\"resume_tls13\": %.2f, \"aes128gcm_per_mib\": %.2f},\n",
	       ec_us + x_us, rsa_us + x_us, rsa_us + x_us, x_us, gcm_us);
	fflush(stdout);
	printf(" \"floor_us\": {\"tls13_ecdsa\": %.2f, ", floor_of(ec_cert, ec_key, TLS1_3_VERSION, false, false));
	printf("\"tls12_rsa\": %.2f, ", floor_of(rsa_cert, rsa_key, TLS1_2_VERSION, true, false));
	printf("\"tls13_rsa\": %.2f, ", floor_of(rsa_cert, rsa_key, TLS1_3_VERSION, true, false));
	printf("\"resume_tls13\": %.2f, ", floor_of(ec_cert, ec_key, TLS1_3_VERSION, false, true));
	printf("\"read_per_mib\": %.2f}}\n", floor_bulk(ec_cert, ec_key));

	EVP_CIPHER_CTX_free(gcm);
	EVP_PKEY_free(kex.peer);
	EVP_PKEY_CTX_free(kex.gen);
	EVP_PKEY_CTX_free(ecdsa.ctx);
	EVP_PKEY_CTX_free(rsa.ctx);
	EVP_PKEY_free(ecdsa.key);
	EVP_PKEY_free(rsa.key);
	return 0;
}
