/*
 * libFuzzer target: the FTP engine as a session drives it, through the
 * shared driver (engine_driver.h: the input format, the parts, the
 * invariants). Here: whole FTP replies (RFC 959 4.2: "NNN " lines, or a
 * multi-line reply from "NNN-" to "NNN "), never bytes for the backend nor
 * a literal from the engine, TLS only on an "AUTH TLS" (SSL, TLS-C) line,
 * the tracker turning AUTH into XUTH inside TLS, and the PASV/EPSV answers
 * rewritten whole (the driver's fz_b2c).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_driver.h"
#include "proto/proto.h"

static void check_out(const struct proto_out *o)
{
	const char *r = o->reply, *end = o->reply + o->reply_len;
	char code[4] = "";

	if (o->reply_len >= sizeof(o->reply) || o->to_backend_len || o->literal)
		abort();
	if ((o->flags & PO_FAIL) && !(o->flags & PO_CLOSE))
		abort();
	if (!o->reply_len)
		return;
	if (o->reply_len < 2 || memcmp(end - 2, "\r\n", 2))
		abort();
	while (r < end) {
		const char *crlf = memmem(r, (size_t)(end - r), "\r\n", 2);

		if (!crlf)
			abort();
		if (code[0]) {
			if (!strncmp(r, code, 3) && r[3] == ' ')
				code[0] = 0;
		} else {
			if (crlf - r < 4 || !isdigit((unsigned char)r[0]) || (r[3] != ' ' && r[3] != '-'))
				abort();
			if (r[3] == '-')
				memcpy(code, r, 3);
		}
		r = crlf + 2;
	}
	if (code[0])
		abort();
}

/* Is this line "AUTH TLS", "AUTH SSL" or "AUTH TLS-C" (any case, blanks
 * after)? */
static bool is_auth_tls(const char *l, size_t len)
{
	size_t i = 5, m;

	while (len && (l[len - 1] == ' ' || l[len - 1] == '\t'))
		len--;
	if (len < 5 || strncasecmp(l, "AUTH ", 5))
		return false;
	while (i < len && l[i] == ' ')
		i++;
	m = len - i;
	return (m == 3 && (!strncasecmp(l + i, "TLS", 3) || !strncasecmp(l + i, "SSL", 3))) ||
	       (m == 5 && !strncasecmp(l + i, "TLS-C", 5));
}

static const char *const vsftpd[] = { "EPRT", "EPSV", "MDTM", "PASV", "REST STREAM", "SIZE",
				      "TVFS" };

static const struct fz_engine ftp = {
	.proto = CFG_PROTO_FTP,
	.fixed_caps = vsftpd,
	.n_fixed = sizeof(vsftpd) / sizeof(vsftpd[0]),
	.check_out = check_out,
	.is_tls_verb = is_auth_tls,
	.literal_max = 0,
	.verb = "AUTH",
	.denied = "XUTH",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_run(&ftp, data, size);
}
