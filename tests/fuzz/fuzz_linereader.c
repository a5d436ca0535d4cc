/*
 * libFuzzer target: the line reader, differentially.
 *
 * Input: a 2-byte header, then the stream. Header byte 0: the line limit
 * (1 + byte 0, so 1 to 256 bytes with the CRLF); byte 1: the seed of the
 * read sizes. The stream is fed to lr_next() in reads of varying size, the
 * way sess_dialogue() feeds it (unconsumed bytes stay in front of the next
 * read), and separately walked at once by a reference written from the
 * contract in linereader.h:
 *   - a line is the bytes up to an LF; if it fits in the limit (LF
 *     included) it is reported with its CR stripped, else it is reported
 *     once as too long, its bytes gone;
 *   - after a line that ends in "{N}" (N up to 9999) the next N bytes are a
 *     literal: data, never lines, whatever they hold (IMAP, RFC 9051 4.3).
 * Both must give the same events with the same line bytes, and the reader
 * must never consume more than it was given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/linereader.h"

#define EV_MAX 4096

struct ev {
	uint8_t kind;         /* LR_LINE, LR_TOO_LONG, LR_LITERAL */
	bool crlf, has_nul;
	size_t off, len;      /* line bytes in the input (LR_LINE); literal
				 byte count (LR_LITERAL) */
};

struct evlist {
	struct ev e[EV_MAX];
	size_t n;
	bool full;
};

static void add(struct evlist *l, struct ev e)
{
	/* Literal bytes come in as many pieces as reads: one event. */
	if (e.kind == LR_LITERAL && l->n && l->e[l->n - 1].kind == LR_LITERAL &&
	    l->e[l->n - 1].off + l->e[l->n - 1].len == e.off) {
		l->e[l->n - 1].len += e.len;
		return;
	}
	if (l->n == EV_MAX) {
		l->full = true;
		return;
	}
	l->e[l->n++] = e;
}

/* "{N}" at the end of a line: N, else 0. */
static uint64_t literal_of(const uint8_t *p, size_t len)
{
	uint64_t n = 0, mul = 1;
	size_t i;

	if (len < 3 || p[len - 1] != '}')
		return 0;
	for (i = len - 1; i-- > 0;) {
		if (p[i] == '{')
			return i + 2 < len ? n : 0;
		if (p[i] < '0' || p[i] > '9' || mul > 1000)
			return 0;
		n += (uint64_t)(p[i] - '0') * mul;
		mul *= 10;
	}
	return 0;
}

static void reference(const uint8_t *d, size_t len, uint32_t max, struct evlist *out)
{
	size_t at = 0;

	while (at < len) {
		const uint8_t *lf = memchr(d + at, '\n', len - at);
		size_t end, l;
		uint64_t lit;

		if (!lf)
			return;
		end = (size_t)(lf - d);
		if (end - at + 1 > max) {
			add(out, (struct ev){ .kind = LR_TOO_LONG });
			at = end + 1;
			continue;
		}
		l = end - at;
		struct ev e = { .kind = LR_LINE, .off = at };
		e.crlf = l > 0 && d[end - 1] == '\r';
		e.len = e.crlf ? l - 1 : l;
		e.has_nul = memchr(d + at, 0, e.len) != NULL;
		add(out, e);
		at = end + 1;
		lit = literal_of(d + e.off, e.len);
		if (lit) {
			size_t n = lit < len - at ? (size_t)lit : len - at;

			if (n)
				add(out, (struct ev){ .kind = LR_LITERAL, .off = at, .len = n });
			at += n;
		}
	}
}

static void chunked(const uint8_t *d, size_t len, uint32_t max, uint32_t seed,
		    struct evlist *out)
{
	struct linereader lr;
	size_t fed = 0, head = 0; /* d[head, fed) is the session's buffer */

	lr_init(&lr, max);
	while (fed < len) {
		size_t step;

		seed = seed * 1103515245u + 12345u;
		step = 1 + (seed >> 16) % 300;
		fed = fed + step < len ? fed + step : len;
		for (;;) {
			struct lr_line line;
			size_t used;
			enum lr_event ev = lr_next(&lr, d + head, fed - head, &line, &used);

			if (used > fed - head)
				abort();
			if (ev == LR_LINE) {
				if ((const uint8_t *)line.p != d + head || line.len + 1 > used)
					abort();
				add(out, (struct ev){ .kind = LR_LINE, .off = head, .len = line.len,
						      .crlf = line.crlf, .has_nul = line.has_nul });
				head += used;
				uint64_t lit = literal_of((const uint8_t *)line.p, line.len);
				if (lit)
					lr_literal(&lr, lit);
				continue;
			}
			if (ev == LR_LITERAL) {
				add(out, (struct ev){ .kind = LR_LITERAL, .off = head, .len = used });
				head += used;
				continue;
			}
			if (ev == LR_TOO_LONG) {
				add(out, (struct ev){ .kind = LR_TOO_LONG });
				head += used;
				continue;
			}
			head += used; /* LR_NEED_MORE: discarded bytes of a long line */
			/* A buffer that holds max bytes and no LF is never left
			 * waiting: the session's buffer is bigger than the limit. */
			if (!lr.literal && !lr.discarding && fed - head >= max)
				abort();
			break;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct evlist a, b;
	uint32_t max;
	size_t i;

	if (size < 2)
		return 0;
	max = 1u + data[0];
	a.n = b.n = 0;
	a.full = b.full = false;
	reference(data + 2, size - 2, max, &a);
	chunked(data + 2, size - 2, max, data[1], &b);
	if (a.full || b.full)
		return 0;
	if (a.n != b.n)
		abort();
	for (i = 0; i < a.n; i++) {
		const struct ev *x = &a.e[i], *y = &b.e[i];

		if (x->kind != y->kind)
			abort();
		if (x->kind == LR_LINE && (x->off != y->off || x->len != y->len ||
					   x->crlf != y->crlf || x->has_nul != y->has_nul))
			abort();
		if (x->kind == LR_LITERAL && (x->off != y->off || x->len != y->len))
			abort();
	}
	return 0;
}
