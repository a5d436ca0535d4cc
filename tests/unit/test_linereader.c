/*
 * Unit tests for the shared line reader (dataplane/proto/linereader.c).
 *
 * The reader never copies: the caller keeps a buffer, calls lr_next() on
 * what it holds, and drops *consumed bytes from its front. struct feed
 * below is that caller: bytes arrive in reads of any size, unconsumed
 * bytes stay, and every event is recorded so a scenario reads as "these
 * reads in, these lines out".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/linereader.h"

#define SMTP_MAX 512   /* the SMTP engine's line_max, CRLF included */

/* ---- a caller with a growing buffer ------------------------------------- */

#define FEED_CAP 4096
#define EV_MAX 64

struct event {
	enum lr_event ev;
	char text[1024];      /* LR_LINE: the line, NUL-terminated copy */
	size_t len;
	bool crlf;
	bool has_nul;
};

struct feed {
	struct linereader lr;
	uint8_t buf[FEED_CAP];
	size_t len;           /* bytes held, unconsumed */
	size_t high;          /* most bytes ever held after a read was drained */
	unsigned n;           /* events other than LR_NEED_MORE */
	struct event ev[EV_MAX];
};

static void feed_init(struct feed *f, uint32_t max)
{
	memset(f, 0, sizeof(*f));
	lr_init(&f->lr, max);
}

/* One read of len bytes: append, then call lr_next until it wants more. */
static void feed_read(struct feed *f, const void *data, size_t len)
{
	assert_true(f->len + len <= sizeof(f->buf));
	memcpy(f->buf + f->len, data, len);
	f->len += len;

	for (;;) {
		struct lr_line line;
		size_t used = (size_t)-1;
		enum lr_event ev = lr_next(&f->lr, f->buf, f->len, &line, &used);

		assert_true(used <= f->len);
		if (ev == LR_LINE) {
			struct event *e;

			assert_true(f->n < EV_MAX);
			assert_true(line.len < sizeof(e->text));
			e = &f->ev[f->n++];
			/* The line points into the caller's buffer, at its front. */
			assert_ptr_equal(line.p, (const char *)f->buf);
			assert_true(line.len < used);
			e->ev = ev;
			memcpy(e->text, line.p, line.len);
			e->text[line.len] = 0;
			e->len = line.len;
			e->crlf = line.crlf;
			e->has_nul = line.has_nul;
		} else if (ev == LR_TOO_LONG) {
			assert_true(f->n < EV_MAX);
			f->ev[f->n++].ev = ev;
		} else {
			assert_int_equal(ev, LR_NEED_MORE);
		}
		memmove(f->buf, f->buf + used, f->len - used);
		f->len -= used;
		if (ev == LR_NEED_MORE)
			break;
	}
	if (f->len > f->high)
		f->high = f->len;
}

static void feed_str(struct feed *f, const char *s)
{
	feed_read(f, s, strlen(s));
}

/* Deliver s one byte per read. */
static void feed_bytes(struct feed *f, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		feed_read(f, s + i, 1);
}

static void assert_line(const struct feed *f, unsigned i, const char *text, bool crlf)
{
	assert_true(i < f->n);
	assert_int_equal(f->ev[i].ev, LR_LINE);
	assert_int_equal(f->ev[i].len, strlen(text));
	assert_string_equal(f->ev[i].text, text);
	assert_int_equal(f->ev[i].crlf, crlf);
	assert_false(f->ev[i].has_nul);
}

static void assert_too_long(const struct feed *f, unsigned i)
{
	assert_true(i < f->n);
	assert_int_equal(f->ev[i].ev, LR_TOO_LONG);
}

/* A line of total bytes, CRLF included: 'x' * (total - 2) CR LF. */
static char *make_line(size_t total)
{
	char *s = malloc(total + 1);

	assert_non_null(s);
	memset(s, 'x', total - 2);
	s[total - 2] = '\r';
	s[total - 1] = '\n';
	s[total] = 0;
	return s;
}

/* ---- scenarios ----------------------------------------------------------- */

/* "EHLO client.example\r\n" in one read: one line, nothing left over. */
static void test_line_in_one_read(void **state)
{
	struct feed f;

	feed_init(&f, SMTP_MAX);
	feed_str(&f, "EHLO client.example\r\n");
	assert_int_equal(f.n, 1);
	assert_line(&f, 0, "EHLO client.example", true);
	assert_int_equal(f.len, 0);
}

/* The same line one byte per read: nothing until the LF, then the line. */
static void test_line_byte_by_byte(void **state)
{
	static const char s[] = "MAIL FROM:<a@example.org>\r\n";
	struct feed f;

	feed_init(&f, SMTP_MAX);
	for (size_t i = 0; i < sizeof(s) - 1; i++) {
		feed_read(&f, s + i, 1);
		if (i < sizeof(s) - 2) {
			assert_int_equal(f.n, 0);
			assert_int_equal(f.len, i + 1); /* kept, unconsumed */
		}
	}
	assert_int_equal(f.n, 1);
	assert_line(&f, 0, "MAIL FROM:<a@example.org>", true);
	assert_int_equal(f.len, 0);
}

/* A line split at awkward places: between CR and LF, mid-word. */
static void test_line_split_between_cr_and_lf(void **state)
{
	struct feed f;

	feed_init(&f, SMTP_MAX);
	feed_str(&f, "RCPT TO:<b@exa");
	feed_str(&f, "mple.org>\r");
	assert_int_equal(f.n, 0);
	feed_str(&f, "\nQU");
	assert_int_equal(f.n, 1);
	assert_line(&f, 0, "RCPT TO:<b@example.org>", true);
	assert_int_equal(f.len, 2); /* "QU" waits for the rest */
	feed_str(&f, "IT\r\n");
	assert_int_equal(f.n, 2);
	assert_line(&f, 1, "QUIT", true);
}

/* CR LF and bare LF both end a line; the crlf flag tells them apart. */
static void test_crlf_and_bare_lf(void **state)
{
	static const struct {
		const char *in;
		const char *line;
		bool crlf;
	} cases[] = {
		{ "NOOP\r\n",    "NOOP",    true  },
		{ "NOOP\n",      "NOOP",    false },
		{ "NOOP\r\r\n",  "NOOP\r",  true  }, /* only the last CR is the terminator */
		{ "NO\rOP\n",    "NO\rOP",  false }, /* a lone CR is data */
		{ "\n",          "",        false },
		{ "\r\n",        "",        true  },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct feed f;

		feed_init(&f, SMTP_MAX);
		feed_str(&f, cases[i].in);
		if (f.n != 1 || f.ev[0].ev != LR_LINE ||
		    strcmp(f.ev[0].text, cases[i].line) || f.ev[0].crlf != cases[i].crlf)
			fail_msg("case %zu: got %u events, first \"%s\" crlf=%d", i, f.n,
				 f.n ? f.ev[0].text : "", f.n ? f.ev[0].crlf : -1);
		assert_int_equal(f.len, 0);
	}
}

/* A NUL inside a line is reported with has_nul; the line is whole. */
static void test_nul_inside_line(void **state)
{
	static const char in[] = "MAIL FROM:<a\0b@example.org>\r\nNOOP\r\n";
	static const char nul_last[] = "NOOP\0\r\n";
	struct feed f;

	feed_init(&f, SMTP_MAX);
	feed_read(&f, in, sizeof(in) - 1);
	assert_int_equal(f.n, 2);
	assert_int_equal(f.ev[0].ev, LR_LINE);
	assert_int_equal(f.ev[0].len, strlen("MAIL FROM:<a") + 1 + strlen("b@example.org>"));
	assert_memory_equal(f.ev[0].text, "MAIL FROM:<a\0b@example.org>", f.ev[0].len);
	assert_true(f.ev[0].has_nul);
	assert_true(f.ev[0].crlf);
	assert_line(&f, 1, "NOOP", true); /* the flag does not stick */

	/* NUL right before the CR LF still counts. */
	feed_init(&f, SMTP_MAX);
	feed_read(&f, nul_last, sizeof(nul_last) - 1);
	assert_int_equal(f.n, 1);
	assert_int_equal(f.ev[0].len, 5);
	assert_true(f.ev[0].has_nul);
}

/*
 * RFC 5321 4.5.3.1.4: 512 bytes including CRLF. Exactly 512 is a line; 513
 * is LR_TOO_LONG once, and the next line is read as usual.
 */
static void test_exact_limit_and_one_more(void **state)
{
	char *ok = make_line(SMTP_MAX), *big = make_line(SMTP_MAX + 1);
	struct feed f;

	feed_init(&f, SMTP_MAX);
	feed_str(&f, ok);
	assert_int_equal(f.n, 1);
	assert_int_equal(f.ev[0].ev, LR_LINE);
	assert_int_equal(f.ev[0].len, SMTP_MAX - 2);
	assert_true(f.ev[0].crlf);

	feed_str(&f, big);
	assert_int_equal(f.n, 2);
	assert_too_long(&f, 1);
	assert_int_equal(f.len, 0);

	feed_str(&f, "NOOP\r\n");
	assert_int_equal(f.n, 3);
	assert_line(&f, 2, "NOOP", true);

	/* The same with the overlong line and the next one in one read. */
	feed_init(&f, SMTP_MAX);
	{
		char both[SMTP_MAX + 1 + 6 + 1];

		snprintf(both, sizeof(both), "%sNOOP\r\n", big);
		feed_str(&f, both);
	}
	assert_int_equal(f.n, 2);
	assert_too_long(&f, 0);
	assert_line(&f, 1, "NOOP", true);
	free(ok);
	free(big);
}

/* The limit byte by byte: 512 accepted, 513 rejected once, then normal. */
static void test_limit_byte_by_byte(void **state)
{
	char *ok = make_line(SMTP_MAX), *big = make_line(SMTP_MAX + 1);
	struct feed f;

	feed_init(&f, SMTP_MAX);
	feed_bytes(&f, ok, SMTP_MAX);
	assert_int_equal(f.n, 1);
	assert_int_equal(f.ev[0].ev, LR_LINE);
	assert_int_equal(f.ev[0].len, SMTP_MAX - 2);

	feed_bytes(&f, big, SMTP_MAX + 1);
	assert_int_equal(f.n, 2);
	assert_too_long(&f, 1);
	assert_true(f.high <= SMTP_MAX);

	feed_bytes(&f, "QUIT\r\n", 6);
	assert_int_equal(f.n, 3);
	assert_line(&f, 2, "QUIT", true);
	free(ok);
	free(big);
}

/*
 * A 10 KiB line in 100-byte reads with its LF in a later read: the reader
 * consumes what it discards, so the caller never holds more than the limit
 * plus one read, and the line is reported once, at its LF.
 */
static void test_overlong_line_many_reads(void **state)
{
	char chunk[100];
	struct feed f;

	memset(chunk, 'A', sizeof(chunk));
	feed_init(&f, SMTP_MAX);
	for (int i = 0; i < 100; i++) {
		feed_read(&f, chunk, sizeof(chunk));
		assert_int_equal(f.n, 0);
		assert_true(f.len < SMTP_MAX); /* drained after every read */
	}
	assert_true(f.high < SMTP_MAX);
	feed_str(&f, "AAAA\r\nHELO client.example\r\n");
	assert_int_equal(f.n, 2);
	assert_too_long(&f, 0);
	assert_line(&f, 1, "HELO client.example", true);
	assert_int_equal(f.len, 0);

	/* Bigger reads than the limit, LF in the third one. */
	{
		char big[1500];

		memset(big, 'B', sizeof(big));
		feed_init(&f, SMTP_MAX);
		feed_read(&f, big, sizeof(big));
		assert_int_equal(f.len, 0);
		feed_read(&f, big, sizeof(big));
		assert_int_equal(f.len, 0);
		assert_int_equal(f.n, 0);
		feed_str(&f, "BB\nRSET\r\n");
		assert_int_equal(f.n, 2);
		assert_too_long(&f, 0);
		assert_line(&f, 1, "RSET", true);
	}
}

/* Pipelined commands (RFC 2920) in one read come out in order. */
static void test_pipelined_lines(void **state)
{
	struct feed f;

	feed_init(&f, SMTP_MAX);
	feed_str(&f, "MAIL FROM:<a@example.org>\r\n"
		     "RCPT TO:<b@example.org>\r\n"
		     "RCPT TO:<c@example.org>\n"
		     "DATA\r\n"
		     "partial");
	assert_int_equal(f.n, 4);
	assert_line(&f, 0, "MAIL FROM:<a@example.org>", true);
	assert_line(&f, 1, "RCPT TO:<b@example.org>", true);
	assert_line(&f, 2, "RCPT TO:<c@example.org>", false);
	assert_line(&f, 3, "DATA", true);
	assert_int_equal(f.len, strlen("partial"));
}

/* An empty line is a line of length 0, not "need more". */
static void test_empty_line(void **state)
{
	struct feed f;

	feed_init(&f, SMTP_MAX);
	feed_str(&f, "\r\n\r\nNOOP\r\n");
	assert_int_equal(f.n, 3);
	assert_line(&f, 0, "", true);
	assert_line(&f, 1, "", true);
	assert_line(&f, 2, "NOOP", true);
}

/* Nothing held: need more, nothing consumed. */
static void test_nothing_yet(void **state)
{
	struct linereader lr;
	struct lr_line line;
	size_t used = 99;
	const uint8_t buf[] = "NOO";

	lr_init(&lr, SMTP_MAX);
	assert_int_equal(lr_next(&lr, buf, 0, &line, &used), LR_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(lr_next(&lr, buf, 3, &line, &used), LR_NEED_MORE);
	assert_int_equal(used, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_in_one_read),
		cmocka_unit_test(test_line_byte_by_byte),
		cmocka_unit_test(test_line_split_between_cr_and_lf),
		cmocka_unit_test(test_crlf_and_bare_lf),
		cmocka_unit_test(test_nul_inside_line),
		cmocka_unit_test(test_exact_limit_and_one_more),
		cmocka_unit_test(test_limit_byte_by_byte),
		cmocka_unit_test(test_overlong_line_many_reads),
		cmocka_unit_test(test_pipelined_lines),
		cmocka_unit_test(test_empty_line),
		cmocka_unit_test(test_nothing_yet),
	};

	return cmocka_run_group_tests_name("linereader", tests, NULL, NULL);
}
