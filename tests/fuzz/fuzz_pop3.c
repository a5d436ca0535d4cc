/*
 * libFuzzer target: the POP3 engine as a session drives it.
 *
 * Input: a 5-byte header, then three parts. Header byte 0: bits 0-1 the
 * listener's tls mode, bit 2 a certificate is loaded, bit 3 the
 * capabilities come from the probe (else a fixed Dovecot list), bits 4-7
 * the seed of the read sizes; bytes 1-2 and 3-4 (big-endian) the lengths of
 * the first two parts (clamped).
 *  1. what the client sends before the backend is needed, in reads of
 *     varying size, through the real line reader as sess_dialogue() does;
 *     STLS is followed by ->tls_started() and a fresh line reader, what
 *     followed it in the same read discarded (rule 2.1);
 *  2. what the backend sends: first as the capability probe's answer (its
 *     caps, when header bit 3 says so, are what CAPA shows), then as the
 *     backend's opening;
 *  3. what the client sends in the relay, through the tracker, fed in
 *     pieces of varying size, held bytes offered again.
 * Invariants checked, besides the sanitizers': replies fit their buffer,
 * end in CRLF and are whole POP3 replies (+OK/-ERR lines; CAPA ends with
 * "."); the engine never makes bytes for the backend nor asks for a
 * literal; the line reader never consumes more than it was given; TLS
 * starts only on an "STLS" line; the tracker never approves more than it
 * was given and changes nothing but STLS into XTLS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/linereader.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_POP3);
	static char *items[] = { "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "STLS", "USER",
				 "SASL PLAIN LOGIN" };
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

	/* 0. the probe, over the backend's part */
	if (data[0] & 8) {
		int st = 0, rc = 1;

		probed = calloc(1, sizeof(*probed));
		if (!probed)
			return 0;
		off = a;
		while (off < b && (rc == 0 || rc == 1)) {
			const uint8_t *lf = memchr(data + off, '\n', b - off);
			size_t ll, l2;
			char *line;

			if (!lf)
				break;
			ll = (size_t)(lf - (data + off));
			l2 = ll && data[off + ll - 1] == '\r' ? ll - 1 : ll;
			line = malloc(l2 ? l2 : 1);
			if (!line)
				abort();
			memcpy(line, data + off, l2); /* exactly the line: ASan sees overreads */
			rc = ops->probe_line(&st, line, l2, probed);
			free(line);
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
			if (ev == LR_LITERAL) /* POP3 never asks for one */
				abort();
			po_reset(&o);
			if (ev == LR_TOO_LONG) {
				ops->too_long(&env, &ps, &o);
			} else {
				char *l = malloc(line.len ? line.len : 1);

				if (!l)
					abort();
				memcpy(l, line.p, line.len);
				ops->client_line(&env, &ps, l, line.len, line.has_nul, &o);
				if ((o.flags & PO_STARTTLS) &&
				    (line.has_nul || !is_stls(l, line.len) || ps.in_tls))
					abort();
				free(l);
			}
			check_out(&o);
			if (!(o.flags & PO_BACKEND))
				off += used;
			if (o.flags & (PO_BACKEND | PO_CLOSE)) {
				stop = true;
				break;
			}
			if (o.flags & PO_STARTTLS) {
				off = end; /* rule 2.1 */
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
	buf = malloc(size - b + 1);
	if (!buf)
		abort();
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
			/* Only STLS -> XTLS, in place. */
			for (size_t i = 0; i < len; i++) {
				bool fine = false;

				if (before[i] == buf[start + i])
					continue;
				for (size_t j = i >= 3 ? i - 3 : 0; j <= i && !fine; j++)
					fine = j + 4 <= len && !memcmp(buf + start + j, "XTLS", 4) &&
					       !strncasecmp((const char *)before + j, "STLS", 4);
				if (!fine)
					abort();
			}
			free(before);
			start += ok;
		}
	}
	free(buf);
	if (ops->fini)
		ops->fini(&ps);
	caps_free(probed);
	return 0;
}
