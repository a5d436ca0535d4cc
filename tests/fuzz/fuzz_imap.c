/*
 * libFuzzer target: the IMAP engine as a session drives it, through the
 * shared driver (engine_driver.h: the input format, the parts, the
 * invariants). Here: whole IMAP response lines in every reply ("* ", "+ "
 * or a tag), no bytes for the backend from the engine, literals up to
 * IMAP_LITERAL_MAX, TLS only on a "tag STARTTLS" line, and the tracker
 * turning STARTTLS into XTLSDENY.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_driver.h"
#include "proto/proto.h"

#define IMAP_LITERAL_MAX 65536

static bool tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c);
}

static void check_out(const struct proto_out *o)
{
	const char *r = o->reply, *end = o->reply + o->reply_len;

	if (o->reply_len >= sizeof(o->reply) || o->to_backend_len)
		abort();
	if (!o->reply_len)
		return;
	if (o->reply_len < 2 || memcmp(end - 2, "\r\n", 2))
		abort();
	/* Whole response lines: "* ", "+ " or "tag ". */
	while (r < end) {
		const char *crlf = memmem(r, (size_t)(end - r), "\r\n", 2);
		size_t ll = (size_t)(crlf - r), t = 0;

		if (!crlf)
			abort();
		if (!(ll >= 2 && (r[0] == '*' || r[0] == '+') && r[1] == ' ')) {
			while (t < ll && tag_char((unsigned char)r[t]))
				t++;
			if (!t || t >= ll || r[t] != ' ')
				abort();
		}
		r = crlf + 2;
	}
	if ((o->flags & PO_FAIL) && !(o->flags & PO_CLOSE))
		abort();
}

/* Is this line "tag STARTTLS" (any case, blanks after)? */
static bool is_starttls(const char *l, size_t len)
{
	size_t t = 0, i;

	while (t < len && tag_char((unsigned char)l[t]))
		t++;
	if (!t || t >= len || l[t] != ' ')
		return false;
	i = t;
	while (i < len && l[i] == ' ')
		i++;
	if (len - i < 8 || strncasecmp(l + i, "STARTTLS", 8))
		return false;
	for (i += 8; i < len; i++)
		if (l[i] != ' ')
			return false;
	return true;
}

static const char *const dovecot[] = { "IMAP4rev1", "SASL-IR", "ID", "IDLE", "LITERAL+",
				       "STARTTLS", "LOGINDISABLED", "AUTH=PLAIN" };

static const struct fz_engine imap = {
	.proto = CFG_PROTO_IMAP,
	.fixed_caps = dovecot,
	.n_fixed = sizeof(dovecot) / sizeof(dovecot[0]),
	.check_out = check_out,
	.is_tls_verb = is_starttls,
	.literal_max = IMAP_LITERAL_MAX,
	.verb = "STARTTLS",
	.denied = "XTLSDENY",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fz_run(&imap, data, size);
}
