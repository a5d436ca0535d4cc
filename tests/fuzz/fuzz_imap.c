/*
 * libFuzzer target: the IMAP engine as a session drives it.
 *
 * Input: a 5-byte header, then three parts. Header byte 0: bits 0-1 the
 * listener's tls mode, bit 2 a certificate is loaded, bit 3 the
 * capabilities come from the probe (else a fixed Dovecot list), bits 4-7
 * the seed of the read sizes; bytes 1-2 and 3-4 (big-endian) the lengths of
 * the first two parts (clamped).
 *  1. what the client sends before the backend is needed, in reads of
 *     varying size, through the real line reader, honouring out.literal
 *     with lr_literal() exactly as sess_dialogue() does; STARTTLS is
 *     followed by ->tls_started() and a fresh line reader, what followed it
 *     in the same read discarded (rule 2.1);
 *  2. what the backend sends: first as the capability probe's answer (its
 *     caps, when header bit 3 says so, are what the dialogue advertises),
 *     then as the backend's opening;
 *  3. what the client sends in the relay, through the tracker, fed in
 *     pieces of varying size, held bytes offered again.
 * Invariants checked, besides the sanitizers': replies fit their buffer, end
 * in CRLF and are whole IMAP response lines; the engine never makes bytes
 * for the backend; the line reader never consumes more than it was given;
 * a literal to skip is never over IMAP_LITERAL_MAX; TLS starts only on a
 * "tag STARTTLS" line; the tracker never approves more than it was given and
 * changes nothing but STARTTLS into XTLSDENY.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/linereader.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_IMAP);
	static char *items[] = { "IMAP4rev1", "SASL-IR", "ID", "IDLE", "LITERAL+", "STARTTLS",
				 "LOGINDISABLED", "AUTH=PLAIN" };
	struct proto_caps fixed = { .n = 8 };
	struct proto_caps *probed = NULL;
	struct proto_env env = { "fuzz.test", CFG_TLS_STARTTLS, true, &fixed };
	struct proto_sess ps = { 0 };
	struct proto_out o;
	struct linereader lr;
	size_t a, b, off, end, used;
	unsigned seed;
	uint8_t *buf;

	if (size < 5)
		return 0;
	memcpy(fixed.item, items, sizeof(items));
	env.tls_mode = (enum cfg_tls)(data[0] & 3);
	env.tls_available = data[0] & 4;
	seed = data[0] >> 4;
	a = 5 + ((size_t)data[1] << 8 | data[2]);
	if (a > size)
		a = size;
	b = a + ((size_t)data[3] << 8 | data[4]);
	if (b > size)
		b = size;
	buf = malloc(size + 1);
	if (!buf)
		return 0;

	/* 0. the probe, over the backend's part */
	if (data[0] & 8) {
		int st = 0, rc = 1;

		probed = calloc(1, sizeof(*probed));
		if (!probed) {
			free(buf);
			return 0;
		}
		off = a;
		while (off < b && (rc == 0 || rc == 1)) {
			const uint8_t *lf = memchr(data + off, '\n', b - off);
			size_t ll;

			if (!lf)
				break;
			ll = (size_t)(lf - (data + off));
			{
				size_t l2 = ll && data[off + ll - 1] == '\r' ? ll - 1 : ll;
				char *line = malloc(l2 ? l2 : 1);

				if (!line)
					abort();
				memcpy(line, data + off, l2);
				rc = ops->probe_line(&st, line, l2, probed);
				free(line);
			}
			off += ll + 1;
			if (probed->n > CAPS_MAX)
				abort();
		}
		env.caps = probed;
	}

	/* 1. the dialogue, in reads of varying size */
	lr_init(&lr, ops->line_max);
	po_reset(&o);
	ops->greeting(&env, &ps, &o);
	check_out(&o);
	off = 5;
	end = 5;
	while (end < a) {
		bool stop = false;
		/* the next read arrives: bytes [off, end) are what is held */
		size_t step = 1 + (size_t)((data[end] ^ seed * 37) % 113);

		end = end + step > a ? a : end + step;
		while (off < end) {
			struct lr_line line;
			enum lr_event ev = lr_next(&lr, data + off, end - off, &line, &used);

			if (used > end - off)
				abort();
			if (ev == LR_NEED_MORE) {
				off += used;
				break;
			}
			if (ev == LR_LITERAL) { /* data of a literal, not a line */
				off += used;
				continue;
			}
			po_reset(&o);
			if (ev == LR_TOO_LONG) {
				ops->too_long(&env, &ps, &o);
			} else {
				char *l = malloc(line.len ? line.len : 1);

				if (!l)
					abort();
				memcpy(l, line.p, line.len); /* exactly the line: ASan sees overreads */
				ops->client_line(&env, &ps, l, line.len, line.has_nul, &o);
				if ((o.flags & PO_STARTTLS) &&
				    (line.has_nul || !is_starttls(l, line.len) || ps.in_tls))
					abort();
				free(l);
			}
			check_out(&o);
			if (o.literal > IMAP_LITERAL_MAX || (o.literal && ev != LR_LINE) ||
			    (o.literal && (o.flags & (PO_CLOSE | PO_BACKEND | PO_STARTTLS))))
				abort();
			if (!(o.flags & PO_BACKEND))
				off += used;
			if (o.literal)
				lr_literal(&lr, o.literal);
			if (o.flags & (PO_BACKEND | PO_CLOSE)) {
				stop = true;
				break;
			}
			if (o.flags & PO_STARTTLS) {
				/* rule 2.1: the rest of this read is gone */
				off = end;
				ops->tls_started(&ps);
				lr_init(&lr, ops->line_max);
				break;
			}
		}
		if (stop)
			break;
	}

	/* 2. the backend's opening */
	lr_init(&lr, BACKEND_LINE_MAX);
	off = a;
	while (off < b) {
		struct lr_line line;
		enum lr_event ev = lr_next(&lr, data + off, b - off, &line, &used);
		char *l;

		if (used > b - off)
			abort();
		if (ev != LR_LINE)
			break;
		l = malloc(line.len ? line.len : 1);
		if (!l)
			abort();
		memcpy(l, line.p, line.len);
		po_reset(&o);
		ops->backend_line(&env, &ps, l, line.len, &o);
		free(l);
		check_out(&o);
		off += used;
		if (o.flags & (PO_RELAY | PO_FAIL))
			break;
	}
	po_reset(&o);
	ops->timeout(&env, &ps, &o);
	check_out(&o);

	/* 3. the relay tracker, in pieces; held bytes are offered again */
	memcpy(buf, data + b, size - b);
	{
		size_t start = 0, n = size - b;

		end = 0;
		while (end < n) {
			size_t step = 1 + ((buf[end] ^ seed) % 97), ok, len;
			uint8_t *before;

			end = end + step > n ? n : end + step;
			len = end - start;
			before = malloc(len ? len : 1);
			if (!before)
				abort();
			memcpy(before, buf + start, len);
			ok = ops->c2b_scan(&ps, buf + start, len);
			if (ok > len)
				abort();
			/* Only STARTTLS -> XTLSDENY, in place. */
			for (size_t i = 0; i < len; i++) {
				size_t j;
				bool fine = false;

				if (before[i] == buf[start + i])
					continue;
				for (j = i >= 7 ? i - 7 : 0; j <= i && !fine; j++)
					fine = j + 8 <= len && !memcmp(buf + start + j, "XTLSDENY", 8) &&
					       !strncasecmp((const char *)before + j, "STARTTLS", 8);
				if (!fine)
					abort();
			}
			free(before);
			start += ok;
		}
	}
	free(buf);
	ops->fini(&ps);
	if (ps.replay)
		abort();
	caps_free(probed);
	return 0;
}
