/*
 * An OpenSSL BIO over a native TCP connection (net/net.h): SSL reads and
 * writes the connection's own buffers, with no socket and no copy layer
 * between (VPP's tls_bio.c does the same over its session FIFOs). No DPDK
 * here: the unit test runs it over the simulated link.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/bio.h>

#include "natio.h"

static BIO_METHOD *natio_method;

/* tcp_read: bytes, 0 at the peer's FIN (EOF), else -1 with retry (nothing
 * now) or an error (errno: the reset or timeout that ended it). */
static int nb_read(BIO *b, char *buf, int len)
{
	struct tcp_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (!c) {
		errno = ENOTCONN;
		return -1;
	}
	n = tcp_read(c, buf, (size_t)len);
	if (n > 0)
		return (int)n;
	if (n == 0) {
		if (tcp_eof(c))
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	errno = (int)-n;
	return -1;
}

/* tcp_send: bytes taken, else -1 with retry (the send buffer is full; the
 * writable() callback follows) or an error. */
static int nb_write(BIO *b, const char *buf, int len)
{
	struct tcp_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	if (!c) {
		errno = ENOTCONN;
		return -1;
	}
	n = tcp_send(c, buf, (size_t)len);
	if (n > 0)
		return (int)n;
	if (n == 0) {
		BIO_set_retry_write(b);
		return -1;
	}
	errno = (int)-n;
	return -1;
}

static int nb_puts(BIO *b, const char *s)
{
	size_t n = strlen(s);

	return nb_write(b, s, n > INT_MAX ? INT_MAX : (int)n);
}

static long nb_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tcp_conn *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:        /* the stack sends at its next pass */
		return 1;
	case BIO_CTRL_PENDING:
		return c ? (long)tcp_readable(c) : 0;
	case BIO_CTRL_WPENDING:
		return 0;
	case BIO_CTRL_EOF:
		return !c || tcp_eof(c);
	case BIO_CTRL_GET_CLOSE:
		return BIO_get_shutdown(b);
	case BIO_CTRL_SET_CLOSE:
		BIO_set_shutdown(b, (int)num);
		return 1;
	default:
		return 0;
	}
}

static int nb_create(BIO *b)
{
	BIO_set_init(b, 1);
	BIO_set_data(b, NULL);
	return 1;
}

/* The connection is not the BIO's: nothing to free. */
static int nb_destroy(BIO *b)
{
	BIO_set_data(b, NULL);
	return 1;
}

BIO *natio_bio_new(struct tcp_conn *c)
{
	BIO *b;

	if (!natio_method) {
		natio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "natio");
		if (!natio_method ||
		    !BIO_meth_set_write(natio_method, nb_write) ||
		    !BIO_meth_set_read(natio_method, nb_read) ||
		    !BIO_meth_set_puts(natio_method, nb_puts) ||
		    !BIO_meth_set_ctrl(natio_method, nb_ctrl) ||
		    !BIO_meth_set_create(natio_method, nb_create) ||
		    !BIO_meth_set_destroy(natio_method, nb_destroy)) {
			BIO_meth_free(natio_method);
			natio_method = NULL;
			return NULL;
		}
	}
	if (!(b = BIO_new(natio_method)))
		return NULL;
	BIO_set_data(b, c);
	return b;
}

void natio_bio_detach(BIO *b)
{
	if (b)
		BIO_set_data(b, NULL);
}
