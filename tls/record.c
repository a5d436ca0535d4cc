/*
 * The BIO under every client SSL object: OpenSSL reads ciphertext from the
 * session's input buffer and writes it to the session's output buffer, and
 * never sees a socket (as VPP's tls_bio.c). The same BIO serves the worker
 * during the handshake and the core afterwards, because both work on the
 * session's buffers.
 */
#include <errno.h>

#include <openssl/bio.h>

#include "tls.h"

static BIO_METHOD *tls_bio_meth;

static int bio_read(BIO *b, char *out, int len)
{
	struct tls_io *io = BIO_get_data(b);
	uint32_t n = buf_len(io->in);

	BIO_clear_retry_flags(b);
	if (n == 0) {
		if (io->in_eof)
			return 0;
		BIO_set_retry_read(b);
		return -1;
	}
	if (n > (uint32_t)len)
		n = (uint32_t)len;
	memcpy(out, buf_head(io->in), n);
	buf_consume(io->in, n);
	return (int)n;
}

static int bio_write(BIO *b, const char *in, int len)
{
	struct tls_io *io = BIO_get_data(b);
	uint32_t n;

	BIO_clear_retry_flags(b);
	n = buf_put(io->out, in, (uint32_t)len);
	if (n == 0) {
		BIO_set_retry_write(b);
		return -1;
	}
	return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_io *io = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_PENDING:
		return io ? (long)buf_len(io->in) : 0;
	case BIO_CTRL_WPENDING:
		return io ? (long)buf_len(io->out) : 0;
	case BIO_CTRL_EOF:
		return io && io->in_eof && buf_len(io->in) == 0;
	default:
		return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

int tls_bio_init(void)
{
	tls_bio_meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice");
	if (!tls_bio_meth)
		return -ENOMEM;
	BIO_meth_set_read(tls_bio_meth, bio_read);
	BIO_meth_set_write(tls_bio_meth, bio_write);
	BIO_meth_set_ctrl(tls_bio_meth, bio_ctrl);
	BIO_meth_set_create(tls_bio_meth, bio_create);
	return 0;
}

void tls_bio_fini(void)
{
	BIO_meth_free(tls_bio_meth);
	tls_bio_meth = NULL;
}

BIO *tls_bio_new(struct tls_io *io)
{
	BIO *b = BIO_new(tls_bio_meth);

	if (b)
		BIO_set_data(b, io);
	return b;
}
