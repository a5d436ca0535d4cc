/*
 * libFuzzer target: the POP3 engine as a session drives it, through the
 * shared driver (engine_driver.h: the input format, the parts, the
 * invariants). Here: whole POP3 replies (+OK/-ERR lines; CAPA ends with
 * "."), never bytes for the backend nor a literal from the engine, TLS only
 * on an "STLS" line, and the tracker turning STLS into XTLS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_driver.h"
#include "proto/proto.h"

static void check_out(const struct proto_out *o)
{
	const char *r = o->reply, *end = o->reply + o->reply_len;

	if (o->reply_len >= sizeof(o->reply) || o->to_backend_len || o->literal)
		abort();
	if ((o->flags & PO_FAIL) && !(o->flags & PO_CLOSE))
		abort();
	if (!o->reply_len)
		return;
	if (o->reply_len < 2 || memcmp(end - 2, "\r\n", 2))
		abort();
	if (o->reply_len >= 29 && !memcmp(r, "+OK Capability list follows\r\n", 29)) {
		/* multi-line: ends with "." alone */
		if (o->reply_len < 32 || memcmp(end - 5, "\r\n.\r\n", 5))
			abort();
		return;
	}
	while (r < end) {
		const char *crlf = memmem(r, (size_t)(end - r), "\r\n", 2);

		if (!crlf || (strncmp(r, "+OK", 3) && strncmp(r, "-ERR", 4)))
			abort();
		r = crlf + 2;
	}
}

/* Is this line "STLS" (any case, blanks after)? */
static bool is_stls(const char *l, size_t len)
{
	if (len < 4 || strncasecmp(l, "STLS", 4))
		return false;
	for (size_t i = 4; i < len; i++)
		if (l[i] != ' ' && l[i] != '\t')
			return false;
	return true;
}

static const char *const dovecot[] = { "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING",
				       "STLS", "USER", "SASL PLAIN LOGIN" };

static const struct fz_engine pop3 = {
	.proto = CFG_PROTO_POP3,
	.fixed_caps = dovecot,
	.n_fixed = sizeof(dovecot) / sizeof(dovecot[0]),
	.check_out = check_out,
	.is_tls_verb = is_stls,
	.literal_max = 0,
	.verb = "STLS",
	.denied = "XTLS",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_run(&pop3, data, size);
}
