/*
 * The line reader shared by the protocol engines: finds command lines in a
 * byte buffer without copying, enforces the protocol's line limit, and
 * resumes across reads. A line over the limit is discarded up to its LF and
 * reported once, so a client cannot make sluice buffer without bound.
 */
#ifndef SLUICE_LINEREADER_H
#define SLUICE_LINEREADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lr_event {
	LR_NEED_MORE, /* no complete line yet */
	LR_LINE,      /* *line holds one line */
	LR_TOO_LONG,  /* a line over the limit ended (its bytes are gone) */
	LR_LITERAL,   /* bytes of a literal were consumed (never a line) */
};

struct linereader {
	uint32_t max;     /* longest line accepted, CRLF included */
	bool discarding;  /* inside an overlong line, waiting for its LF */
	uint64_t literal; /* bytes of an announced literal still to come (IMAP
			     {n}): they are data, not lines, whatever they hold */
};

struct lr_line {
	const char *p;    /* first byte; not NUL-terminated */
	size_t len;       /* without CR LF */
	bool crlf;        /* ended in CR LF (false: bare LF) */
	bool has_nul;     /* contains a NUL byte */
};

static inline void lr_init(struct linereader *lr, uint32_t max)
{
	lr->max = max;
	lr->discarding = false;
	lr->literal = 0;
}

/* The next n bytes are a literal: skip them as data (RFC 9051 4.3). */
static inline void lr_literal(struct linereader *lr, uint64_t n)
{
	lr->literal = n;
}

/*
 * Look at buf[0, len). Returns the event; *consumed is how many bytes the
 * caller must drop from its buffer (the line and its terminator, the
 * discarded part of an overlong line, or literal bytes). On LR_LINE, line
 * points into buf. After LR_LITERAL, call again.
 */
enum lr_event lr_next(struct linereader *lr, const uint8_t *buf, size_t len,
		      struct lr_line *line, size_t *consumed);

#endif
