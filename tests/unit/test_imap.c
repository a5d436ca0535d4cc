/*
 * Unit tests for the IMAP engine (dataplane/proto/imap.c).
 *
 * Each scenario is a transcript: what the client (or, while the backend is
 * being opened, the backend) sends, and what sluice must answer: the start
 * of its reply (or all of it), the exact PO_ flags, the literal the session
 * must skip after the line, and where it matters the counter. The engine
 * does no I/O, so the transcript is the whole test.
 *
 * Every line is handed over in a buffer of exactly its length, with no NUL
 * after it, as the session does (the line points into its buffer):
 * valgrind sees any read past the end.
 *
 * A second runner (struct stream) drives the real line reader and the
 * engine together, exactly as dataplane/session/session.c sess_dialogue()
 * does (lr_next, client_line or too_long, lr_literal with out.literal), so
 * that literals are proven to be skipped as data, whatever they hold and
 * wherever the reads are cut.
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
#include "proto/proto.h"
#include "transcript.h"

#define IMAP_LINE_MAX 8192
#define IMAP_LITERAL_MAX 65536

/* ---- the engine under test (transcript.h runs the tables) -------------- */

static const char *const dovecot_caps[] = {
	"IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+",
	"AUTH=PLAIN", "AUTH=LOGIN", NULL
};
/* The same over plaintext with disable_plaintext_auth: STARTTLS, LOGINDISABLED. */
static const char *const dovecot_plain_caps[] = {
	"IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+",
	"STARTTLS", "LOGINDISABLED", "AUTH=PLAIN", "AUTH=LOGIN", NULL
};

#define DOVECOT_LIST "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
#define DOVECOT_AUTH "AUTH=PLAIN AUTH=LOGIN"

static const struct setup starttls_caps = { CFG_TLS_STARTTLS, true, dovecot_caps };
static const struct setup starttls_plain_caps = { CFG_TLS_STARTTLS, true, dovecot_plain_caps };
static const struct setup starttls_nocaps = { CFG_TLS_STARTTLS, true, NULL };
static const struct setup required_caps = { CFG_TLS_REQUIRED, true, dovecot_caps };
static const struct setup required_plain_caps = { CFG_TLS_REQUIRED, true, dovecot_plain_caps };
static const struct setup required_nocaps = { CFG_TLS_REQUIRED, true, NULL };
static const struct setup off_caps = { CFG_TLS_OFF, true, dovecot_caps };
static const struct setup implicit_caps = { CFG_TLS_IMPLICIT, true, dovecot_caps };
static const struct setup nocert_caps = { CFG_TLS_STARTTLS, false, dovecot_plain_caps };

/* A table for tls: starttls and one for tls: required, each run with the
 * backend's list as Dovecot gives it inside TLS and over plaintext (the
 * answers must not differ), and a table for each with no list learned. */
#define RUN_MODES(starttls, required, starttls_nocaps_t, required_nocaps_t) do { \
	RUN(&starttls_caps, starttls);                                        \
	RUN(&starttls_plain_caps, starttls);                                  \
	RUN(&required_caps, required);                                        \
	RUN(&required_plain_caps, required);                                  \
	RUN(&starttls_nocaps, starttls_nocaps_t);                             \
	RUN(&required_nocaps, required_nocaps_t);                             \
} while (0)

static bool tag_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("(){%*\"\\+", c);
}

/*
 * Whatever the client gets is whole IMAP response lines (RFC 9051 2.2.2):
 * each ends in CR LF and begins with "* " (untagged), "+ " (continuation)
 * or a tag and a space. A reply cut short by its buffer fails here.
 */
static bool reply_well_formed(const char *r, size_t len)
{
	const char *end = r + len, *line = r;

	if (!len || len >= PO_REPLY_MAX - 1)
		return false;
	while (line < end) {
		const char *crlf = memmem(line, (size_t)(end - line), "\r\n", 2);
		size_t ll, t = 0;

		if (!crlf)
			return false;
		ll = (size_t)(crlf - line);
		if (ll >= 2 && (line[0] == '*' || line[0] == '+') && line[1] == ' ') {
			line = crlf + 2;
			continue;
		}
		while (t < ll && tag_char((unsigned char)line[t]))
			t++;
		if (!t || t + 1 >= ll || line[t] != ' ')
			return false;
		line = crlf + 2;
	}
	return true;
}

static bool imap_well_formed(const struct step *st, const struct proto_out *o)
{
	(void)st;
	return reply_well_formed(o->reply, o->reply_len);
}

static const struct transcript_proto TP = {
	.proto = CFG_PROTO_IMAP, .name = "imap", .line_max = IMAP_LINE_MAX,
	.unit = "whole IMAP response lines", .well_formed = imap_well_formed,
	.probe_request = "a CAPABILITY\r\n",
};

/* ---- the stream runner: line reader + engine, as sess_dialogue ----------- */

struct stream {
	const struct proto_ops *ops;
	struct proto_caps *caps;
	struct proto_env env;
	struct proto_sess ps;
	struct linereader lr;
	uint8_t *buf;          /* client bytes received, not consumed */
	size_t len, cap;
	char reply[16384];     /* everything sluice said, in order */
	size_t reply_len;
	unsigned flags;        /* all flags seen */
	bool stopped;          /* PO_CLOSE, PO_STARTTLS or PO_BACKEND: dialogue over */
	char why[512];         /* first invariant broken, if any */
};

static void stream_init(struct stream *s, const struct setup *su, size_t cap)
{
	memset(s, 0, sizeof(*s));
	s->ops = proto_get(CFG_PROTO_IMAP);
	s->caps = caps_make(su->caps);
	s->env = (struct proto_env){ "mx.test", su->mode, su->tls_available, s->caps, 0, NULL, false };
	lr_init(&s->lr, s->ops->line_max);
	s->cap = cap;
	s->buf = malloc(cap ? cap : 1);
	assert_non_null(s->buf);
}

static void stream_fini(struct stream *s)
{
	if (s->ops->fini)
		s->ops->fini(&s->ps);
	free(s->buf);
	caps_free(s->caps);
}

static void stream_consume(struct stream *s, size_t n)
{
	memmove(s->buf, s->buf + n, s->len - n);
	s->len -= n;
}

/* One read from the client; then what sess_dialogue does with it. */
static void stream_read(struct stream *s, const void *data, size_t n)
{
	struct proto_out o;

	if (s->stopped)
		return; /* the session reads no more dialogue */
	assert_true(s->len + n <= s->cap);
	memcpy(s->buf + s->len, data, n);
	s->len += n;

	while (!s->stopped && s->len) {
		struct lr_line line;
		size_t used = (size_t)-1;
		enum lr_event ev = lr_next(&s->lr, s->buf, s->len, &line, &used);

		if (used > s->len) {
			snprintf(s->why, sizeof(s->why), "lr_next consumed %zu of %zu", used, s->len);
			s->stopped = true;
			return;
		}
		if (ev == LR_NEED_MORE) {
			stream_consume(s, used);
			break;
		}
		if (ev == LR_LITERAL) { /* data of a command's literal, not a line */
			stream_consume(s, used);
			continue;
		}
		po_reset(&o);
		if (ev == LR_TOO_LONG) {
			s->ops->too_long(&s->env, &s->ps, &o);
		} else {
			char *l = dup_exact(line.p, line.len);

			s->ops->client_line(&s->env, &s->ps, l, line.len, line.has_nul, &o);
			free(l);
		}
		if (!(o.flags & PO_BACKEND))
			stream_consume(s, used);
		if (o.literal)
			lr_literal(&s->lr, o.literal);
		if (o.reply_len && !reply_well_formed(o.reply, o.reply_len) && !s->why[0])
			snprintf(s->why, sizeof(s->why), "reply not whole lines: \"%.*s\"",
				 (int)o.reply_len, o.reply);
		assert_true(s->reply_len + o.reply_len <= sizeof(s->reply));
		memcpy(s->reply + s->reply_len, o.reply, o.reply_len);
		s->reply_len += o.reply_len;
		s->flags |= o.flags;
		if (o.flags & PO_STARTTLS) {
			/* Rule 2.1: what followed is discarded. */
			s->len = 0;
			s->stopped = true;
		}
		if (o.flags & (PO_CLOSE | PO_BACKEND))
			s->stopped = true;
	}
}

/*
 * Feed data cut at the given offsets (ascending) and check what sluice
 * said altogether, and the flags. Fails with the cuts in the message.
 */
static unsigned long stream_runs; /* how many streams were fed: every cut tried */

static void stream_expect(const struct setup *su, const char *data, size_t len,
			  const size_t *cuts, size_t ncuts,
			  const char *want_reply, unsigned want_flags)
{
	struct stream *s = malloc(sizeof(*s));
	char where[128] = "";
	size_t at = 0, wl = strlen(want_reply);
	bool ok;

	assert_non_null(s);
	stream_runs++;
	stream_init(s, su, len);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		stream_read(s, data + at, to - at);
		at = to;
	}
	for (size_t i = 0, n = 0; i < ncuts && n < sizeof(where) - 12; i++)
		n += (size_t)snprintf(where + n, sizeof(where) - n, " %zu", cuts[i]);
	ok = !s->why[0] && s->reply_len == wl && !memcmp(s->reply, want_reply, wl) &&
	     s->flags == want_flags && (s->stopped || s->len == 0);
	if (!ok) {
		char got[128], want[128];
		static char msg[20000];

		snprintf(msg, sizeof(msg),
			 "reads cut at [%s ]: %s\n  sluice said \"%.*s\"\n  want        \"%s\"\n"
			 "  flags %s, want %s; %zu bytes left unread",
			 where, s->why[0] ? s->why : "", (int)s->reply_len, s->reply, want_reply,
			 flag_names(s->flags, got, sizeof(got)),
			 flag_names(want_flags, want, sizeof(want)), s->len);
		stream_fini(s);
		free(s);
		fail_msg("%s", msg);
	}
	stream_fini(s);
	free(s);
}

/* The whole stream at once, byte by byte, and cut in two and in three at
 * every possible place. */
static void stream_all_cuts(const struct setup *su, const char *data, const char *want_reply,
			    unsigned want_flags)
{
	size_t len = strlen(data);
	static size_t every[1024]; /* no allocation: a failing run longjmps out */

	assert_true(len < sizeof(every) / sizeof(every[0]));
	stream_expect(su, data, len, NULL, 0, want_reply, want_flags);
	for (size_t i = 1; i < len; i++)
		every[i - 1] = i;
	stream_expect(su, data, len, every, len ? len - 1 : 0, want_reply, want_flags);
	for (size_t a = 1; a < len; a++) {
		size_t cut1[1] = { a };

		stream_expect(su, data, len, cut1, 1, want_reply, want_flags);
		for (size_t b = a + 1; b < len; b++) {
			size_t cut2[2] = { a, b };

			stream_expect(su, data, len, cut2, 2, want_reply, want_flags);
		}
	}
}

#define ID_DONE(tag) "* ID NIL\r\n" tag " OK ID completed.\r\n"
#define NOOP_DONE(tag) tag " OK NOOP completed.\r\n"
#define BAD_CMD(tag) tag " BAD Error in IMAP command received by server.\r\n"
#define NO_PRIVACY(tag) tag " NO [PRIVACYREQUIRED] Plaintext authentication disallowed " \
	"on non-secure (SSL/TLS) connections.\r\n"
#define CONT "+ Ready for literal data\r\n"

/* ---- greeting and CAPABILITY --------------------------------------------- */

static void test_greeting(void **state)
{
	static const struct step starttls[] = {
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " STARTTLS] "
			 "mx.test IMAP ready.\r\n"),
	};
	static const struct step required[] = {
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " STARTTLS LOGINDISABLED] "
			 "mx.test IMAP ready.\r\n"),
	};
	static const struct step nocaps[] = {
		GREETING("* OK [CAPABILITY IMAP4rev1 STARTTLS] mx.test IMAP ready.\r\n"),
	};
	static const struct step required_nocaps_t[] = {
		GREETING("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] mx.test IMAP ready.\r\n"),
	};
	/* Implicit TLS: the greeting comes after the handshake. */
	static const struct step implicit[] = {
		TLS_UP,
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " " DOVECOT_AUTH "] mx.test IMAP ready.\r\n"),
	};
	static const struct step off[] = {
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " " DOVECOT_AUTH "] mx.test IMAP ready.\r\n"),
	};

	RUN_MODES(starttls, required, nocaps, required_nocaps_t);
	RUN(&implicit_caps, implicit);
	RUN(&off_caps, off);
}

/*
 * Before TLS: the backend's list, its STARTTLS and LOGINDISABLED never
 * repeated, sluice's STARTTLS at the end; where TLS is required,
 * LOGINDISABLED and no AUTH=. After TLS: no STARTTLS, no LOGINDISABLED,
 * AUTH= shown, in every mode.
 */
static void test_capability(void **state)
{
	static const struct step starttls[] = {
		CX("a CAPABILITY",
		   "* CAPABILITY " DOVECOT_LIST " STARTTLS\r\n"
		   "a OK Capability completed.\r\n", 0),
		CX("b capability",
		   "* CAPABILITY " DOVECOT_LIST " STARTTLS\r\n"
		   "b OK Capability completed.\r\n", 0),
		CX("c STARTTLS", "c OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
		TLS_UP,
		CX("d CAPABILITY",
		   "* CAPABILITY " DOVECOT_LIST " " DOVECOT_AUTH "\r\n"
		   "d OK Capability completed.\r\n", 0),
	};
	static const struct step required[] = {
		CX("a CAPABILITY",
		   "* CAPABILITY " DOVECOT_LIST " STARTTLS LOGINDISABLED\r\n"
		   "a OK Capability completed.\r\n", 0),
		CX("b STARTTLS", "b OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
		TLS_UP,
		CX("c CAPABILITY",
		   "* CAPABILITY " DOVECOT_LIST " " DOVECOT_AUTH "\r\n"
		   "c OK Capability completed.\r\n", 0),
	};
	static const struct step nocaps[] = {
		CX("a CAPABILITY", "* CAPABILITY IMAP4rev1 STARTTLS\r\na OK Capability completed.\r\n", 0),
		CX("b STARTTLS", "b OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
		TLS_UP,
		CX("c CAPABILITY", "* CAPABILITY IMAP4rev1\r\nc OK Capability completed.\r\n", 0),
	};
	static const struct step required_nocaps_t[] = {
		CX("a CAPABILITY",
		   "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na OK Capability completed.\r\n", 0),
		CX("b STARTTLS", "b OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
		TLS_UP,
		CX("c CAPABILITY", "* CAPABILITY IMAP4rev1\r\nc OK Capability completed.\r\n", 0),
	};
	/* Trailing blanks change nothing; arguments make it another command. */
	static const struct step blanks[] = {
		C("a CAPABILITY  ", "* CAPABILITY ", 0),
		CK("b CAPABILITY now", "b BAD ", 0, CTR_unknown_command),
	};

	RUN_MODES(starttls, required, nocaps, required_nocaps_t);
	RUN(&starttls_caps, blanks);
}

/* No usable certificate: STARTTLS neither advertised nor accepted. */
static void test_starttls_not_available(void **state)
{
	static const struct step t[] = {
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " " DOVECOT_AUTH "] mx.test IMAP ready.\r\n"),
		CX("a CAPABILITY",
		   "* CAPABILITY " DOVECOT_LIST " " DOVECOT_AUTH "\r\na OK Capability completed.\r\n", 0),
		CX("b STARTTLS", "b NO [UNAVAILABLE] TLS is not available.\r\n", 0),
		CX("c NOOP", NOOP_DONE("c"), 0),
	};

	RUN(&nocert_caps, t);
}

/* tls: off: a plaintext listener knows no STARTTLS; LOGIN goes through. */
static void test_tls_off(void **state)
{
	static const struct step t[] = {
		CX("a CAPABILITY",
		   "* CAPABILITY " DOVECOT_LIST " " DOVECOT_AUTH "\r\na OK Capability completed.\r\n", 0),
		CXK("b STARTTLS", "b BAD Unknown command.\r\n", 0, CTR_unknown_command),
		C("c LOGIN bob secret", NULL, PO_BACKEND),
	};

	RUN(&off_caps, t);
}

/* ---- what sluice answers itself ------------------------------------------ */

static void test_simple_commands(void **state)
{
	static const struct step t[] = {
		CX("a NOOP", NOOP_DONE("a"), 0),
		CX("b noop", NOOP_DONE("b"), 0),
		CX("c NOOP  ", NOOP_DONE("c"), 0),
		CX("d ID", ID_DONE("d"), 0),
		CX("e ID NIL", ID_DONE("e"), 0),
		CX("f ID (\"name\" \"Thunderbird\" \"version\" \"115.0\")", ID_DONE("f"), 0),
		CX("g id (\"name\" \"x\")", ID_DONE("g"), 0),
		CXK("h NOOP now", "h BAD Command not permitted before login.\r\n", 0,
		    CTR_unknown_command),
		CX("i LOGOUT", "* BYE Logging out\r\ni OK Logout completed.\r\n", PO_CLOSE),
	};
	static const struct step lower_logout[] = {
		CX("z logout", "* BYE Logging out\r\nz OK Logout completed.\r\n", PO_CLOSE),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, lower_logout);
}

static void test_starttls(void **state)
{
	static const struct step t[] = {
		CXK("a STARTTLS now", "a BAD Command not permitted before login.\r\n", 0,
		    CTR_unknown_command),
		CX("b STARTTLS", "b OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
	};
	static const struct step lower[] = {
		CX("x1 starttls ", "x1 OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
	};
	/* DESIGN.md 2.2: a second STARTTLS inside TLS gets a clean error. */
	static const struct step inside[] = {
		CX("a STARTTLS", "a OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
		TLS_UP,
		CXK("b STARTTLS", "b BAD TLS is already active.\r\n", 0, CTR_starttls_in_tls),
		CXK("c starttls", "c BAD TLS is already active.\r\n", 0, CTR_starttls_in_tls),
		CX("d NOOP", NOOP_DONE("d"), 0),
	};
	static const struct step implicit[] = {
		TLS_UP,
		CXK("a STARTTLS", "a BAD TLS is already active.\r\n", 0, CTR_starttls_in_tls),
	};

	RUN(&starttls_caps, t);
	RUN(&required_caps, lower);
	RUN(&starttls_caps, inside);
	RUN(&required_caps, inside);
	RUN(&implicit_caps, implicit);
}

/* Tags are kept exactly, however odd, as long as they are tags. */
static void test_tags_kept(void **state)
{
	static const struct step t[] = {
		CX("A0001 NOOP", NOOP_DONE("A0001"), 0),
		CX("7 NOOP", NOOP_DONE("7"), 0),
		CX("a.b-c_d NOOP", NOOP_DONE("a.b-c_d"), 0),
		CX("x]y NOOP", NOOP_DONE("x]y"), 0),           /* resp-specials are allowed */
		CX("!#$&'-./:;<=>?@[]^_`|~ NOOP", NOOP_DONE("!#$&'-./:;<=>?@[]^_`|~"), 0),
		CX("NOOP NOOP", NOOP_DONE("NOOP"), 0),         /* a tag that looks like a verb */
		CX("LOGIN CAPABILITY",
		   "* CAPABILITY " DOVECOT_LIST " STARTTLS\r\n"
		   "LOGIN OK Capability completed.\r\n", 0),
		CX("q ID", ID_DONE("q"), 0),
		/* 64 characters: the longest tag sluice keeps. */
		CX("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa NOOP",
		   NOOP_DONE("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 0),
		CX("t  NOOP", NOOP_DONE("t"), 0),                /* two blanks */
	};

	RUN(&starttls_caps, t);
}

/* Lines that are not tagged commands. */
static void test_bad_lines(void **state)
{
	static const struct step t[] = {
		CXK("", BAD_CMD("*"), 0, CTR_bad_syntax),                 /* empty line */
		CXK("NOOP", BAD_CMD("NOOP"), 0, CTR_bad_syntax),          /* a tag alone */
		CXK("a", BAD_CMD("a"), 0, CTR_bad_syntax),
		CXK("a ", BAD_CMD("a"), 0, CTR_bad_syntax),
		CXK("a 123", BAD_CMD("a"), 0, CTR_bad_syntax),
		CXK("a NOOP1", BAD_CMD("a"), 0, CTR_bad_syntax),
		CX("z NOOP", NOOP_DONE("z"), 0),
	};
	/* (A run of its own: ten errors end the session.) */
	static const struct step bad_tags[] = {
		CXK("+a NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK("*a NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK("(a NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK("a{ NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK("a%b NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK("a\"b NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK("a\\b NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK(" a NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CXK("a\tNOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		CX("z NOOP", NOOP_DONE("z"), 0),
	};
	static const struct step long_tag[] = {
		CXK("a+b NOOP", BAD_CMD("*"), 0, CTR_bad_syntax),
		/* 65 characters: too long for a tag. */
		CXK("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa NOOP",
		    BAD_CMD("*"), 0, CTR_bad_syntax),
		/* And the session goes on. */
		CX("z NOOP", NOOP_DONE("z"), 0),
	};
	static const struct step nul[] = {
		CNUL("a NOOP\0", "* BAD ", 0),
		CNUL("a NO\0OP", "* BAD ", 0),
		CNUL("\0", "* BAD ", 0),
		CNUL("a STARTTLS\0", "* BAD ", 0),
		CX("b NOOP", NOOP_DONE("b"), 0),
	};
	/* A line over the limit may have taken a literal announcement with
	 * it: what follows cannot be told from commands, so the session ends. */
	static const struct step too_long[] = {
		{ .kind = S_TOO_LONG, .expect_reply_prefix = "* BYE Command line too long.\r\n",
		  .expect_flags = PO_CLOSE | PO_ERROR,
		  .exact = true, .check_ctr = true, .ctr = CTR_line_too_long },
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, bad_tags);
	RUN(&starttls_caps, long_tag);
	RUN(&starttls_caps, nul);
	RUN(&starttls_caps, too_long);
}

/* Only the not-authenticated commands are answered before login. */
static void test_commands_before_login(void **state)
{
	static const char *const cmds[] = {
		"a SELECT INBOX", "a EXAMINE INBOX", "a LIST \"\" *", "a FETCH 1 BODY[]",
		"a ENABLE UTF8=ACCEPT", "a IDLE", "a XYZZY", "a STATUS INBOX (MESSAGES)",
		"a CREATE x", "a APPEND INBOX", "a UID FETCH 1:* FLAGS", "a STARTTLSX",
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const struct step t[] = {
			CXK(cmds[i], "a BAD Command not permitted before login.\r\n", 0,
			    CTR_unknown_command),
		};

		RUN(&starttls_caps, t);
		RUN(&required_caps, t);
	}
}

/* tls: required (DESIGN.md 2.6): LOGIN and AUTHENTICATE refused before TLS. */
static void test_login_required(void **state)
{
	static const struct step t[] = {
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " STARTTLS LOGINDISABLED] "
			 "mx.test IMAP ready.\r\n"),
		CXK("a LOGIN bob secret", NO_PRIVACY("a"), 0, CTR_refused_before_tls),
		CXK("b AUTHENTICATE PLAIN", NO_PRIVACY("b"), 0, CTR_refused_before_tls),
		CXK("c authenticate plain AGJvYgBzZWNyZXQ=", NO_PRIVACY("c"), 0, CTR_refused_before_tls),
		CXK("d login \"bob\" \"secret\"", NO_PRIVACY("d"), 0, CTR_refused_before_tls),
		CXK("e LOGIN", NO_PRIVACY("e"), 0, CTR_refused_before_tls),
		CX("f STARTTLS", "f OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
		TLS_UP,
		/* Inside TLS the backend authenticates. */
		C("g LOGIN bob secret", NULL, PO_BACKEND),
	};
	static const struct step authenticate_in_tls[] = {
		TLS_UP,
		C("a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=", NULL, PO_BACKEND),
	};

	RUN(&required_caps, t);
	transcript_run(&TP, &required_nocaps, t + 1, 1);
	RUN(&required_caps, authenticate_in_tls);
}

/* tls: starttls (RFC 7435): the backend takes LOGIN, in or out of TLS. */
static void test_login_starttls_mode(void **state)
{
	static const struct step plain[] = {
		C("a LOGIN bob secret", NULL, PO_BACKEND),
	};
	static const struct step authenticate[] = {
		C("a AUTHENTICATE PLAIN", NULL, PO_BACKEND),
	};
	static const struct step in_tls[] = {
		CX("a STARTTLS", "a OK Begin TLS negotiation now.\r\n", PO_STARTTLS),
		TLS_UP,
		C("b login bob secret", NULL, PO_BACKEND),
	};
	/* The backend's literals are its business: no skip, no "+". */
	static const struct step literal[] = {
		{ .client = "a LOGIN {3}", .expect_flags = PO_BACKEND },
	};
	static const struct step literal_plus[] = {
		{ .client = "a LOGIN {3+}", .expect_flags = PO_BACKEND },
	};

	RUN(&starttls_caps, plain);
	RUN(&starttls_caps, authenticate);
	RUN(&starttls_caps, in_tls);
	RUN(&starttls_caps, literal);
	RUN(&starttls_caps, literal_plus);
	transcript_run(&TP, &implicit_caps, in_tls + 1, 2);
}

/* ---- errors -------------------------------------------------------------- */

/* As Dovecot's imap-login: too many bad commands end with BYE. */
static void test_too_many_errors(void **state)
{
	struct step t[12];
	unsigned n = 0;

	for (int i = 0; i < 9; i++) {
		struct step s;

		switch (i % 5) {
		case 0: s = (struct step)C("a XYZZY", "a BAD ", 0); break;
		case 1: s = (struct step)CNUL("a NO\0OP", "* BAD ", 0); break;
		case 2: s = (struct step)C("a STARTTLS x", "a BAD ", 0); break;
		case 3: s = (struct step)C("", "* BAD ", 0); break;
		default: s = (struct step)C("a", "a BAD ", 0); break;
		}
		t[n++] = s;
		if (i == 4) /* good commands do not reset the count */
			t[n++] = (struct step)CX("b NOOP", NOOP_DONE("b"), 0);
	}
	t[n++] = (struct step)CXK("c XYZZY",
				   "c BAD Command not permitted before login.\r\n"
				   "* BYE Too many invalid IMAP commands.\r\n",
				   PO_CLOSE | PO_ERROR, CTR_too_many_errors);
	transcript_run(&TP, &starttls_caps, t, n);
}

static void test_too_many_errors_too_long(void **state)
{
	/* One line over the limit is enough: BYE at once, whatever the count. */
	struct step t[2] = {
		C("a XYZZY", "a BAD ", 0),
		TOO_LONG("* BYE Command line too long.\r\n", PO_CLOSE | PO_ERROR),
	};

	t[1].exact = true;
	t[1].check_ctr = true;
	t[1].ctr = CTR_line_too_long;
	transcript_run(&TP, &starttls_caps, t, 2);
}

/* Refused logins count as errors: nine of them, then one bad line. */
static void test_too_many_errors_with_logins(void **state)
{
	struct step t[10];

	for (int i = 0; i < 9; i++)
		t[i] = (struct step)CXK("a LOGIN bob secret", NO_PRIVACY("a"), 0,
					CTR_refused_before_tls);
	t[9] = (struct step)CXK("b XYZZY",
				"b BAD Command not permitted before login.\r\n"
				"* BYE Too many invalid IMAP commands.\r\n",
				PO_CLOSE | PO_ERROR, CTR_too_many_errors);
	transcript_run(&TP, &required_caps, t, 10);
}

/* ---- literals, one line at a time ----------------------------------------- */

/*
 * A command line ending in {n+} is followed by n bytes of data: the
 * session skips them (out.literal), then the next line completes the
 * command. ID is answered at its end, with the tag of its first line.
 */
static void test_literal_id(void **state)
{
	static const struct step plus[] = {
		CL("a ID (\"name\" {5+}", NULL, 0, 5),
		/* (5 bytes skipped by the line reader) */
		CX(" \"version\" \"1.0\")", ID_DONE("a"), 0),
		CX("b NOOP", NOOP_DONE("b"), 0),
	};
	static const struct step odd_tag[] = {
		CL("x]y.1 ID (\"name\" {5+}", NULL, 0, 5),
		CX(")", ID_DONE("x]y.1"), 0),
	};
	/* A synchronizing literal on ID: sluice invites it. */
	static const struct step sync[] = {
		CL("a ID (\"name\" {5}", CONT, 0, 5),
		CX(")", ID_DONE("a"), 0),
	};
	/* Several literals in one command, both kinds. */
	static const struct step several[] = {
		CL("a ID ({4+}", NULL, 0, 4),
		CL(" {11}", CONT, 0, 11),
		CL(" \"version\" {3+}", NULL, 0, 3),
		CX(")", ID_DONE("a"), 0),
		CX("b ID", ID_DONE("b"), 0),
	};
	/* The largest literal sluice reads itself. */
	static const struct step largest[] = {
		CL("a ID (\"name\" {65536+}", NULL, 0, IMAP_LITERAL_MAX),
		CX(")", ID_DONE("a"), 0),
	};
	/* An empty literal: nothing to skip, the command goes on. */
	static const struct step empty[] = {
		CL("a ID (\"name\" {0}", CONT, 0, 0),
		CX(" \"x\" \"y\")", ID_DONE("a"), 0),
	};
	/* The ID pending before TLS is forgotten with it. */
	static const struct step forgotten[] = {
		CL("a ID (\"name\" {5+}", NULL, 0, 5),
		TLS_UP,
		CX("b NOOP", NOOP_DONE("b"), 0),
	};

	RUN(&starttls_caps, plus);
	RUN(&starttls_caps, odd_tag);
	RUN(&starttls_caps, sync);
	RUN(&required_caps, sync);
	RUN(&starttls_caps, several);
	RUN(&starttls_caps, largest);
	RUN(&starttls_caps, empty);
	RUN(&starttls_caps, forgotten);
}

/*
 * LOGIN refused where TLS is required: a synchronizing literal is never
 * sent (no "+"), so nothing is skipped; a non-synchronizing one comes
 * anyway and is skipped.
 */
static void test_literal_login_required(void **state)
{
	static const struct step sync[] = {
		{ .client = "a LOGIN {5}", .expect_reply_prefix = NO_PRIVACY("a"), .exact = true,
		  .check_ctr = true, .ctr = CTR_refused_before_tls },
		/* The next line is a new command, not the rest of LOGIN. */
		CX("b NOOP", NOOP_DONE("b"), 0),
	};
	static const struct step plus[] = {
		CL("a LOGIN {3+}", NO_PRIVACY("a"), 0, 3),
		CL(" {6+}", NULL, 0, 6),
		C("", NULL, 0),
		CX("b NOOP", NOOP_DONE("b"), 0),
	};

	RUN(&required_caps, sync);
	RUN(&required_caps, plus);
}

/* Literals on commands sluice does not take: answered at once. */
static void test_literal_rejected(void **state)
{
	/* Synchronizing: the client sends no literal after BAD. */
	static const struct step sync[] = {
		CXK("a FOO {999999999}", BAD_CMD("a"), 0, CTR_bad_syntax),
		CXK("b APPEND INBOX {5}", BAD_CMD("b"), 0, CTR_bad_syntax),
		CX("c NOOP", NOOP_DONE("c"), 0),
	};
	/* Non-synchronizing: it comes anyway and is skipped. */
	static const struct step plus[] = {
		CL("a APPEND INBOX {5+}", BAD_CMD("a"), 0, 5),
		C("", NULL, 0),
		CL("+x FOO {7+}", BAD_CMD("*"), 0, 7),
		C("", NULL, 0),
		CX("c NOOP", NOOP_DONE("c"), 0),
	};

	RUN(&starttls_caps, sync);
	RUN(&starttls_caps, plus);
}

/* RFC 7888 4: a non-synchronizing literal sluice will not read ends it all. */
static void test_literal_too_large(void **state)
{
	static const struct step id[] = {
		CXK("a ID (\"name\" {999999999+}", "* BYE Literal too large.\r\n",
		    PO_CLOSE | PO_ERROR, CTR_line_too_long),
	};
	static const struct step id_just_over[] = {
		CX("a ID (\"name\" {65537+}", "* BYE Literal too large.\r\n", PO_CLOSE | PO_ERROR),
	};
	static const struct step other[] = {
		{ .client = "a FOO {999999999+}", .expect_reply_prefix = BAD_CMD("a"),
		  .expect_flags = PO_CLOSE | PO_ERROR, .contains = "* BYE Literal too large.\r\n" },
	};
	static const struct step login[] = {
		{ .client = "a LOGIN {999999999+}", .expect_reply_prefix = NO_PRIVACY("a"),
		  .expect_flags = PO_CLOSE | PO_ERROR, .contains = "* BYE Literal too large.\r\n" },
	};
	static const struct step continued[] = {
		CL("a ID ({4+}", NULL, 0, 4),
		CX(" {999999999+}", "* BYE Literal too large.\r\n", PO_CLOSE | PO_ERROR),
	};
	/* 19 digits: the most the parser takes as a number. */
	static const struct step huge[] = {
		CX("a ID {9999999999999999999+}", "* BYE Literal too large.\r\n", PO_CLOSE | PO_ERROR),
	};

	RUN(&starttls_caps, id);
	RUN(&starttls_caps, id_just_over);
	RUN(&starttls_caps, other);
	RUN(&required_caps, login);
	RUN(&starttls_caps, continued);
	RUN(&starttls_caps, huge);
}

/*
 * A synchronizing literal sluice will not read must not be invited: RFC
 * 9051 7.5 ("+" means "ready for the rest of the command"). Sending "+"
 * and "* BYE" in the same breath makes the client start a 70000-byte
 * upload into a connection that is closing. Either a tagged NO/BAD (no
 * "+", no close) or a BYE without "+" is right.
 */
static void test_literal_sync_too_large_not_invited(void **state)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_IMAP);
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, NULL, false };
	static const char *const lines[] = { "a ID (\"name\" {70000}", "a ID {999999999}" };

	for (size_t i = 0; i < 2; i++) {
		struct proto_sess ps;
		struct proto_out o;
		char *l = dup_exact(lines[i], strlen(lines[i]));

		memset(&ps, 0, sizeof(ps));
		po_reset(&o);
		ops->client_line(&env, &ps, l, strlen(lines[i]), false, &o);
		free(l);
		if (ops->fini)
			ops->fini(&ps);
		if (memmem(o.reply, o.reply_len, "+ ", 2) == o.reply ||
		    memmem(o.reply, o.reply_len, "\r\n+ ", 4))
			fail_msg("\"%s\": sluice invites a literal it will not read: \"%.*s\" "
				 "(flags 0x%x)", lines[i], (int)o.reply_len, o.reply, o.flags);
		assert_int_equal(o.literal, 0);
	}
}

/* ---- literals through the real line reader -------------------------------- */

/*
 * DESIGN.md 2.1 and imap.c: a literal whose bytes read "x STARTTLS" is
 * data, never a command, whichever way the client's bytes are cut into
 * reads. The whole exchange is checked: what sluice said, and that it
 * never started TLS.
 */
static void test_stream_literal_never_a_command(void **state)
{
	unsigned long before = stream_runs;

	/* ID with a non-synchronizing literal. */
	stream_all_cuts(&starttls_caps,
			"a ID (\"name\" {12+}\r\nx STARTTLS\r\n)\r\nb NOOP\r\n",
			ID_DONE("a") NOOP_DONE("b"), 0);
	/* ID with a synchronizing literal: "+" first. */
	stream_all_cuts(&starttls_caps,
			"a ID (\"name\" {12}\r\nx STARTTLS\r\n)\r\nb NOOP\r\n",
			CONT ID_DONE("a") NOOP_DONE("b"), 0);
	/* Two literals, one of each kind. */
	stream_all_cuts(&starttls_caps,
			"a ID ({12+}\r\nx STARTTLS\r\n {12}\r\ny STARTTLS\r\n)\r\nb NOOP\r\n",
			CONT ID_DONE("a") NOOP_DONE("b"), 0);
	/* LOGIN refused where TLS is required. */
	stream_all_cuts(&required_caps,
			"a LOGIN {12+}\r\nx STARTTLS\r\n {6+}\r\nsecret\r\nb NOOP\r\n",
			NO_PRIVACY("a") NOOP_DONE("b"), 0);
	/* A command sluice rejects, and a line with a bad tag. */
	stream_all_cuts(&starttls_caps,
			"a FOO {12+}\r\nx STARTTLS\r\n\r\nb NOOP\r\n",
			BAD_CMD("a") NOOP_DONE("b"), 0);
	stream_all_cuts(&starttls_caps,
			"+x FOO {12+}\r\nx STARTTLS\r\n\r\nb NOOP\r\n",
			BAD_CMD("*") NOOP_DONE("b"), 0);
	/* After all that, a real STARTTLS works, and what follows it is gone. */
	stream_all_cuts(&starttls_caps,
			"a ID (\"name\" {12+}\r\nx STARTTLS\r\n)\r\nb STARTTLS\r\nc NOOP\r\n",
			ID_DONE("a") "b OK Begin TLS negotiation now.\r\n", PO_STARTTLS);
	/* Each stream whole, byte by byte, and cut in two and three everywhere. */
	assert_true(stream_runs - before > 7 * (1 + 1 + 40 * 41 / 2));
}

/*
 * RFC 9051 4.3: number = 1*DIGIT, so "{00000000000000000012+}" announces
 * 12 bytes, and Dovecot reads it so. sluice's parser gives up after 19
 * digits and reads the literal as commands: "x STARTTLS" inside it is
 * answered and TLS starts.
 */
static void test_stream_literal_leading_zeros(void **state)
{
	stream_all_cuts(&starttls_caps,
			"a ID (\"name\" {00000000000000000012+}\r\nx STARTTLS\r\n)\r\nb NOOP\r\n",
			ID_DONE("a") NOOP_DONE("b"), 0);
}

/*
 * A command sluice has already answered (BAD, or NO [PRIVACYREQUIRED])
 * goes on with a synchronizing literal after a non-synchronizing one.
 * sluice sends no "+" for it, and the client, which has its tagged answer,
 * sends no literal (RFC 9051 7.5): its next command must be read as one,
 * not skipped as 5 bytes of data.
 */
static void test_stream_sync_literal_after_answer(void **state)
{
	stream_all_cuts(&starttls_caps,
			"a FOO {3+}\r\nabc {5}\r\nb NOOP\r\n",
			BAD_CMD("a") NOOP_DONE("b"), 0);
	stream_all_cuts(&required_caps,
			"a LOGIN {3+}\r\nbob {6}\r\nb NOOP\r\n",
			NO_PRIVACY("a") NOOP_DONE("b"), 0);
}

static bool ends_with(const char *r, size_t len, const char *tail)
{
	size_t n = strlen(tail);

	return len >= n && !memcmp(r + len - n, tail, n);
}

/* Does a tagged answer for "a" come, and before anything for "b"? */
static bool a_answered_before_b(const char *r, size_t len)
{
	const char *a = len >= 2 && !memcmp(r, "a ", 2) ? r : memmem(r, len, "\r\na ", 4);
	const char *b = len >= 2 && !memcmp(r, "b ", 2) ? r : memmem(r, len, "\r\nb ", 4);

	return a && (!b || a < b);
}

/*
 * The rest of an ID command after its literal is over the line limit.
 * The client still waits for ID's tagged answer; its next command "b NOOP"
 * must be answered as such (or the session closed with BYE), not taken as
 * the end of ID, which leaves "b" unanswered for ever.
 */
static void test_stream_too_long_after_literal(void **state)
{
	static char data[12000];
	size_t n = 0;
	struct stream *s = malloc(sizeof(*s));

	assert_non_null(s);
	n += (size_t)snprintf(data + n, sizeof(data) - n, "a ID (\"name\" {4+}\r\nabcd ");
	memset(data + n, 'x', 9000);
	n += 9000;
	n += (size_t)snprintf(data + n, sizeof(data) - n, ")\r\nb NOOP\r\n");

	stream_init(s, &starttls_caps, n);
	stream_read(s, data, n);
	if (!(s->flags & PO_CLOSE) && !(a_answered_before_b(s->reply, s->reply_len) &&
					ends_with(s->reply, s->reply_len, NOOP_DONE("b")))) {
		static char msg[1024];

		snprintf(msg, sizeof(msg), "\"a ID (\\\"name\\\" {4+}\", its 9000-byte rest, then "
			 "\"b NOOP\": sluice said \"%.*s\" (flags 0x%x); want a tagged answer "
			 "for a when its line is refused, then \"b OK\" (or BYE and close)",
			 (int)s->reply_len, s->reply, s->flags);
		stream_fini(s);
		free(s);
		fail_msg("%s", msg);
	}
	stream_fini(s);
	free(s);
}

/*
 * A command line over the limit that ends in a non-synchronizing literal:
 * the line reader drops the line, and the literal that follows must still
 * not be read as commands ("x STARTTLS" in it answered, TLS started).
 */
static void test_stream_too_long_line_with_literal(void **state)
{
	static char data[12000];
	size_t n = 0;
	struct stream *s = malloc(sizeof(*s));
	bool bad;

	assert_non_null(s);
	n += (size_t)snprintf(data + n, sizeof(data) - n, "a ID (\"name\" \"");
	memset(data + n, 'x', 9000);
	n += 9000;
	n += (size_t)snprintf(data + n, sizeof(data) - n,
			      "\" \"os\" {12+}\r\nx STARTTLS\r\n)\r\nb NOOP\r\n");

	stream_init(s, &starttls_caps, n);
	stream_read(s, data, n);
	bad = (s->flags & PO_STARTTLS) || memmem(s->reply, s->reply_len, "\r\nx ", 4) ||
	      (s->reply_len > 2 && !memcmp(s->reply, "x ", 2));
	if (bad) {
		static char msg[1024];

		snprintf(msg, sizeof(msg), "9000-byte ID line ending in {12+}, literal "
			 "\"x STARTTLS\\r\\n\": sluice said \"%.*s\" (flags 0x%x)",
			 (int)s->reply_len, s->reply, s->flags);
		stream_fini(s);
		free(s);
		fail_msg("%s", msg);
	}
	stream_fini(s);
	free(s);
}

/* ---- the backend's opening ------------------------------------------------ */

static void test_backend_opening(void **state)
{
	static const struct step t[] = {
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " STARTTLS] "
			 "mx.test IMAP ready.\r\n"),
		C("a LOGIN bob secret", NULL, PO_BACKEND),
		/* The backend's greeting is swallowed; the held LOGIN goes. */
		B("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
		  "STARTTLS AUTH=PLAIN] Dovecot ready.", NULL, PO_FLUSH_HELD | PO_RELAY),
	};
	static const struct step bare[] = {
		C("a LOGIN bob secret", NULL, PO_BACKEND),
		B("* OK", NULL, PO_FLUSH_HELD | PO_RELAY),
	};
	static const struct step lower[] = {
		TLS_UP,
		C("a authenticate PLAIN", NULL, PO_BACKEND),
		B("* ok imap.example ready", NULL, PO_FLUSH_HELD | PO_RELAY),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, bare);
	RUN(&required_caps, lower);
}

/* Anything but "* OK" ends the session with a BYE the client understands. */
static void test_backend_refused(void **state)
{
	static const char *const bad[] = {
		"* BYE Server shutting down.", "* PREAUTH [CAPABILITY IMAP4rev1] logged in",
		"* NO go away", "* OKAY", "220 smtp.example ESMTP", "+OK pop3", "garbage", "",
		"*", "* O",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct step t[] = {
			C("a LOGIN bob secret", NULL, PO_BACKEND),
			BXK(bad[i], "* BYE [UNAVAILABLE] mx.test backend not available, "
			    "try again later.\r\n", PO_FAIL | PO_CLOSE, CTR_backend_refused),
		};

		RUN(&starttls_caps, t);
	}
}

static void test_timeout_unavailable_lost(void **state)
{
	static const struct step t[] = {
		GREETING("* OK [CAPABILITY " DOVECOT_LIST " STARTTLS] "
			 "mx.test IMAP ready.\r\n"),
		TIMEOUT("* BYE Disconnected for inactivity.\r\n", PO_CLOSE),
	};
	static const struct step in_literal[] = {
		CL("a ID (\"name\" {5+}", NULL, 0, 5),
		TIMEOUT("* BYE Disconnected for inactivity.\r\n", PO_CLOSE),
	};
	static const struct step unavailable[] = {
		C("a LOGIN bob secret", NULL, PO_BACKEND),
		UNAVAILABLE("* BYE [UNAVAILABLE] mx.test backend not available, try again later.\r\n",
			    PO_CLOSE),
	};
	static const char *const lasts[] = { "a OK LOGIN completed.", "* 1 FETCH (BODY[] {500}", "" };

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, in_literal);
	RUN(&starttls_caps, unavailable);
	/* A lost backend gets no words: the client may be inside a literal. */
	transcript_lost_is_silent(&TP, lasts, sizeof(lasts) / sizeof(lasts[0]));
}

/*
 * A backend with a long capability list (the probe takes lines of up to
 * 8 KiB and 32 items): the greeting and the CAPABILITY answer must still be
 * whole lines, or the client waits for their end for ever.
 */
static void test_capability_long_list_stays_whole(void **state)
{
	struct proto_out g, c;

	transcript_many_caps(&TP, "-WITH-A-LONG-NAME-"
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			     "a CAPABILITY", &g, &c);
	if (!reply_well_formed(g.reply, g.reply_len))
		fail_msg("greeting of %zu bytes is not a whole line; it ends \"%.*s\"",
			 g.reply_len, 60, g.reply_len > 60 ? g.reply + g.reply_len - 60 : g.reply);
	if (!reply_well_formed(c.reply, c.reply_len) || c.reply_len < 28 ||
	    memcmp(c.reply + c.reply_len - 28, "a OK Capability completed.\r\n", 28))
		fail_msg("CAPABILITY answer of %zu bytes is not whole; it ends \"%.*s\"",
			 c.reply_len, 60, c.reply_len > 60 ? c.reply + c.reply_len - 60 : c.reply);
}

/* ---- the relay tracker (client -> backend) --------------------------------- */

/*
 * Segments of client bytes on their way to the backend, each after what the
 * backend sent before them, run by TRACK (transcript.h). A STARTTLS command
 * must never reach the backend as a command; STARTTLS inside a literal is
 * data.
 */
static void test_relay_tracker(void **state)
{
	static const struct seg starttls[] = {
		{ "", "a STARTTLS\r\n", "a XTLSDENY\r\n" },
		{ "a BAD unknown\r\n", "b starttls\r\nc NOOP\r\n", "b XTLSDENY\r\nc NOOP\r\n" },
		{ "", "d StartTLS\n", "d XTLSDENY\n" },                 /* bare LF */
		{ "", "A1.b]c STARTTLS\r\n", "A1.b]c XTLSDENY\r\n" },   /* odd tag */
	};
	/* An unfinished line is held back until its end is known. */
	static const struct seg held[] = {
		{ "", "a NOOP\r\nb STAR", "a NOOP\r\n" },
		{ "", "TT", "" },
		{ "", "LS\r\n", "b XTLSDENY\r\n" },
		{ "", "c STARTTLS", "" },
		{ "", "\r", "" },
		{ "", "\n", "c XTLSDENY\r\n" },
	};
	/* Not STARTTLS commands. */
	static const struct seg others[] = {
		{ "", "STARTTLS\r\n", "STARTTLS\r\n" },                 /* no tag */
		{ "", "a STARTTLSX\r\n", "a STARTTLSX\r\n" },
		{ "", "a XSTARTTLS\r\n", "a XSTARTTLS\r\n" },
		{ "", "* STARTTLS\r\n", "* STARTTLS\r\n" },
		{ "", "+ STARTTLS\r\n", "+ STARTTLS\r\n" },
		{ "", "a SEARCH TEXT STARTTLS\r\n", "a SEARCH TEXT STARTTLS\r\n" },
	};
	/* IDLE and DONE pass as they are. */
	static const struct seg idle[] = {
		{ "", "a IDLE\r\n", "a IDLE\r\n" },
		{ "+ idling\r\n", "DONE\r\n", "DONE\r\n" },
		{ "a OK Idle completed.\r\n", "b STARTTLS\r\n", "b XTLSDENY\r\n" },
	};
	/* APPEND with a non-synchronizing literal: its bytes are data. */
	static const struct seg append_plus[] = {
		{ "", "a APPEND INBOX {12+}\r\nb STARTTLS\r\n\r\nc STARTTLS\r\n",
		      "a APPEND INBOX {12+}\r\nb STARTTLS\r\n\r\nc XTLSDENY\r\n" },
	};
	/* APPEND with a synchronizing literal, split across calls. */
	static const struct seg append_sync[] = {
		{ "", "a APPEND INBOX (\\Seen) {26}\r\n", "a APPEND INBOX (\\Seen) {26}\r\n" },
		{ "+ OK\r\n", "Subject: x\r\n\r\nb STARTT", "Subject: x\r\n\r\nb STARTT" },
		{ "", "LS\r\n", "LS\r\n" },
		{ "", "\r\nc STARTTLS\r\n", "\r\nc XTLSDENY\r\n" },
	};
	/* The announcement itself split. */
	static const struct seg announce_split[] = {
		{ "", "a APPEND INBOX {1", "" },
		{ "", "2+}", "" },
		{ "", "\r\nb STARTTLS\r\n", "a APPEND INBOX {12+}\r\nb STARTTLS\r\n" },
		{ "", "\r\nc STARTTLS\r\n", "\r\nc XTLSDENY\r\n" },
	};
	/* MULTIAPPEND: a literal, then the line goes on with another. */
	static const struct seg multiappend[] = {
		{ "", "a APPEND INBOX {12+}\r\nb STARTTLS\r\n {12+}\r\nc STARTTLS\r\n\r\n"
		      "d STARTTLS\r\n",
		      "a APPEND INBOX {12+}\r\nb STARTTLS\r\n {12+}\r\nc STARTTLS\r\n\r\n"
		      "d XTLSDENY\r\n" },
	};
	/* A literal one byte at a time. */
	static const struct seg bytewise[] = {
		{ "", "a LOGIN {3+}\r\n", "a LOGIN {3+}\r\n" },
		{ "", "b", "b" }, { "", "o", "o" }, { "", "b", "b" },
		{ "", " {12+}\r\nz STARTTLS\r\n\r\n", " {12+}\r\nz STARTTLS\r\n\r\n" },
		{ "", "y STARTTLS\r\n", "y XTLSDENY\r\n" },
	};

	TRACK(starttls);
	TRACK(held);
	TRACK(others);
	TRACK(idle);
	TRACK(append_plus);
	TRACK(append_sync);
	TRACK(announce_split);
	TRACK(multiappend);
	TRACK(bytewise);
}

/* A line over the hold limit without its end passes as it comes. */
static void test_relay_tracker_long_line(void **state)
{
	static char longline[1300];
	static char out2[64];
	struct seg t[3];

	memset(longline, 'x', sizeof(longline) - 1);
	memcpy(longline, "a SEARCH TEXT ", 14);
	snprintf(out2, sizeof(out2), "yy\r\nb XTLSDENY\r\n");
	t[0] = (struct seg){ "", longline, longline };
	t[1] = (struct seg){ "", "yy\r\nb STARTTLS\r\n", out2 };
	t[2] = (struct seg){ "", "c STARTTLS\r\n", "c XTLSDENY\r\n" };
	transcript_track(&TP, "long line", t, 3);
}

/*
 * The backend refused a synchronizing literal (RFC 7889: "a NO [TOOBIG]"
 * instead of "+"; or NO [TRYCREATE], BAD): the client sends no literal,
 * and its next line is a command. The tracker, which sees no backend
 * bytes, takes "b STARTTLS" for the 12 bytes of the literal and lets it
 * through: the backend starts TLS. With "+", the same bytes are data.
 */
static void test_relay_tracker_refused_sync_literal(void **state)
{
	static const struct seg accepted[] = {
		{ "", "a APPEND INBOX {12}\r\n", "a APPEND INBOX {12}\r\n" },
		{ "+ OK\r\n", "b STARTTLS\r\n", "b STARTTLS\r\n" },
		{ "", "\r\nc STARTTLS\r\n", "\r\nc XTLSDENY\r\n" },
	};
	static const struct seg toobig[] = {
		{ "", "a APPEND INBOX {12}\r\n", "a APPEND INBOX {12}\r\n" },
		{ "a NO [TOOBIG] Mail size is too large\r\n", "b STARTTLS\r\n", "b XTLSDENY\r\n" },
	};
	static const struct seg login_bad[] = {
		{ "", "a LOGIN {12}\r\n", "a LOGIN {12}\r\n" },
		{ "* BAD [ALERT] no\r\na BAD Invalid arguments.\r\n", "b STARTTLS\r\n",
		  "b XTLSDENY\r\n" },
	};

	TRACK(accepted);
	TRACK(toobig);
	TRACK(login_bad);
}

/*
 * Dovecot's imap-login runs STARTTLS whatever follows the command name
 * (cmd_starttls ignores its arguments). "a STARTTLS x" passes the tracker
 * as it is, and the backend starts TLS. A trailing blank, which sluice's
 * own engine accepts as STARTTLS, passes too. Rewriting these is harmless
 * for any server: STARTTLS takes no arguments.
 */
static void test_relay_tracker_starttls_with_arguments(void **state)
{
	static const struct seg args[] = {
		{ "", "a STARTTLS x\r\n", "a XTLSDENY x\r\n" },
	};
	static const struct seg blank[] = {
		{ "", "a STARTTLS \r\n", "a XTLSDENY \r\n" },
	};

	TRACK(args);
	TRACK(blank);
}

/*
 * A command line longer than the hold limit that ends in a literal: the
 * tracker lets the line pass in pieces and never sees its {6+}. The 6 bytes
 * of literal "z {12}" are then read as a line announcing 12 bytes, and the
 * real command after the APPEND, "b STARTTLS", passes as "data".
 */
static void test_relay_tracker_long_line_with_literal(void **state)
{
	static char first[1200];
	struct seg t[2];

	memset(first, 'x', sizeof(first) - 1);
	memcpy(first, "a APPEND INBOX (", 16);
	t[0] = (struct seg){ "", first, first };
	t[1] = (struct seg){ "", ") {6+}\r\nz {12}\r\nb STARTTLS\r\n",
			     ") {6+}\r\nz {12}\r\nb XTLSDENY\r\n" };
	transcript_track(&TP, "long line ending in a literal", t, 2);
}

/* The same with a literal size in 20 digits (leading zeros, RFC 9051 4.3). */
static void test_relay_tracker_literal_leading_zeros(void **state)
{
	static const struct seg zeros[] = {
		{ "", "a APPEND INBOX {00000000000000000006+}\r\nz {12}\r\nb STARTTLS\r\n",
		      "a APPEND INBOX {00000000000000000006+}\r\nz {12}\r\nb XTLSDENY\r\n" },
	};

	TRACK(zeros);
}

/* ---- the capability probe -------------------------------------------------- */

/* Greeting, then "a CAPABILITY": its tokens are the capabilities. */
static void test_probe(void **state)
{
	static const struct probe_step t[] = {
		{ "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
		  "STARTTLS AUTH=PLAIN] Dovecot ready.", 1 },
		{ "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
		  "STARTTLS AUTH=PLAIN AUTH=LOGIN", 0 },
		{ "a OK Pre-login capabilities listed, post-login capabilities have more.", 2 },
	};
	static const char *const want[] = {
		"IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "LITERAL+",
		"STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN",
	};
	struct proto_caps *caps = transcript_probe(&TP, t, sizeof(t) / sizeof(t[0]));
	const struct proto_ops *ops = proto_get(CFG_PROTO_IMAP);
	struct proto_env env = { "mx.test", CFG_TLS_REQUIRED, true, caps, 0, NULL, false };
	struct proto_sess ps;
	struct proto_out o;
	static const char cap[] = "* CAPABILITY " DOVECOT_LIST " STARTTLS LOGINDISABLED\r\n"
				  "a OK Capability completed.\r\n";

	assert_int_equal(caps->n, 10);
	for (unsigned i = 0; i < 10; i++)
		assert_string_equal(caps->item[i], want[i]);

	/* And what the client is told from them. */
	memset(&ps, 0, sizeof(ps));
	po_reset(&o);
	ops->client_line(&env, &ps, "a CAPABILITY", 12, false, &o);
	assert_int_equal(o.reply_len, strlen(cap));
	assert_memory_equal(o.reply, cap, o.reply_len);
	if (ops->fini)
		ops->fini(&ps);
	caps_free(caps);
}

/* Blanks between tokens, untagged lines in between, a bare "* OK". */
static void test_probe_tokens(void **state)
{
	static const struct probe_step t[] = {
		{ "* OK", 1 },
		{ "* ID NIL", 0 },
		{ "* CAPABILITY  IMAP4rev1   IDLE ", 0 },
		{ "* capability ID", 0 },
		{ "* CAPABILITY ", 0 },
		{ "a OK done", 2 },
	};
	struct proto_caps *caps = transcript_probe(&TP, t, sizeof(t) / sizeof(t[0]));

	assert_int_equal(caps->n, 3);
	assert_string_equal(caps->item[0], "IMAP4rev1");
	assert_string_equal(caps->item[1], "IDLE");
	assert_string_equal(caps->item[2], "ID");
	caps_free(caps);
}

/* At most CAPS_MAX are kept. */
static void test_probe_many(void **state)
{
	static char line[2048];
	struct probe_step t[3];
	size_t n = (size_t)snprintf(line, sizeof(line), "* CAPABILITY");
	struct proto_caps *caps;

	for (int i = 0; i < CAPS_MAX + 8; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, " X-CAP-%02d", i);
	t[0] = (struct probe_step){ "* OK ready", 1 };
	t[1] = (struct probe_step){ line, 0 };
	t[2] = (struct probe_step){ "a OK", 2 };
	caps = transcript_probe(&TP, t, 3);
	assert_int_equal(caps->n, CAPS_MAX);
	assert_string_equal(caps->item[0], "X-CAP-00");
	assert_string_equal(caps->item[CAPS_MAX - 1], "X-CAP-31");
	caps_free(caps);
}

static void test_probe_refused(void **state)
{
	static const struct probe_step bye[] = { { "* BYE Server shutting down.", -1 } };
	static const struct probe_step preauth[] = { { "* PREAUTH logged in", -1 } };
	static const struct probe_step smtp[] = { { "220 smtp.example ESMTP", -1 } };
	static const struct probe_step empty[] = { { "", -1 } };
	static const struct probe_step no[] = {
		{ "* OK ready", 1 },
		{ "a NO not now", -1 },
	};
	static const struct probe_step bad[] = {
		{ "* OK ready", 1 },
		{ "* CAPABILITY IMAP4rev1", 0 },
		{ "a BAD what", -1 },
	};

	assert_int_equal(PROBE_COUNT(bye), 0);
	PROBE_COUNT(preauth);
	PROBE_COUNT(smtp);
	PROBE_COUNT(empty);
	assert_int_equal(PROBE_COUNT(no), 0);
	PROBE_COUNT(bad);
}

/* ---- STARTTLS in the plaintext relay (DESIGN.md rule 2.7) --------------- */

#define LATE_OK(tag) tag " OK Begin TLS negotiation now.\r\n"
#define AUTHED(tag) tag " BAD STARTTLS is not valid in the authenticated state.\r\n"

/*
 * LOGIN went to Dovecot in plaintext: the tracker holds the STARTTLS; once
 * every earlier command has its tagged reply it is allowed before login
 * (RFC 9051 6.2.1: the backend gets LOGOUT, the client sluice's OK) and
 * refused with BAD after a tagged OK to LOGIN or AUTHENTICATE.
 */
static void test_late_starttls(void **state)
{
	static const struct relay_step refused_login[] = {
		RH("", "a LOGIN bob secret\r\nb STARTTLS\r\nc NOOP\r\n", "a LOGIN bob secret\r\n"),
		RH("* OK [ALERT] b OK is not for you\r\n", "", ""), /* untagged */
		RA("a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure "
		  "(SSL/TLS) connections.\r\n", "", "", LATE_OK("b"), PO_STARTTLS,
		  "b LOGOUT\r\n"),
	};
	static const struct relay_step logged_in[] = {
		R("", "a LOGIN bob secret\r\n", "a LOGIN bob secret\r\n"),
		RA("a OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n", "b STARTTLS\r\nc NOOP\r\n", "", AUTHED("b"), 0, NULL),
		R("", "", "c NOOP\r\n"),
		/* IDLE's DONE gets no tagged reply of its own */
		RH("c OK NOOP completed.\r\n", "d IDLE\r\nDONE\r\ne STARTTLS\r\n", "d IDLE\r\nDONE\r\n"),
		RA("+ idling\r\nd OK Idle completed.\r\n", "", "", AUTHED("e"), 0, NULL),
	};
	/* AUTHENTICATE: the SASL lines are no commands; its tagged reply decides. */
	static const struct relay_step sasl_failed[] = {
		R("", "a AUTHENTICATE PLAIN\r\n", "a AUTHENTICATE PLAIN\r\n"),
		R("+ \r\n", "AGJvYgBzZWNyZXQ=\r\n", "AGJvYgBzZWNyZXQ=\r\n"),
		RA("a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n", "b STARTTLS\r\n", "", LATE_OK("b"), PO_STARTTLS, "b LOGOUT\r\n"),
	};
	static const struct relay_step sasl_ok[] = {
		RH("", "a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\nb STARTTLS\r\n", "a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n"),
		RA("a OK Logged in\r\n", "", "", AUTHED("b"), 0, NULL),
	};
	/* A backend literal is data: a tagged-looking line inside it is not a
	 * reply. */
	static const struct relay_step literal[] = {
		RH("", "a LOGIN bob secret\r\nb ID NIL\r\nc STARTTLS\r\n", "a LOGIN bob secret\r\nb ID NIL\r\n"),
		RH("a NO no\r\n* ID (\"x\" {12}\r\nb OK fake\r\n)\r\n", "", ""),
		RA("b OK ID completed.\r\n", "", "", LATE_OK("c"), PO_STARTTLS, "b LOGOUT\r\n"),
	};

	RELAY(&starttls_caps, refused_login);
	RELAY(&starttls_caps, logged_in);
	RELAY(&starttls_caps, sasl_failed);
	RELAY(&starttls_caps, sasl_ok);
	RELAY(&starttls_caps, literal);
}

/* ---- limits.junk_commands, strict trackers, the idle timeout ------------- */

#define JUNK "* BYE Too many commands without progress.\r\n"

/* NOOP, errors and commands before login are junk; CAPABILITY and ID are
 * free PROTO_REPEATS_FREE times; the one past the limit gets BYE. */
static void test_junk_limit(void **state)
{
	static const struct step t[] = {
		C("a CAPABILITY", "* CAPABILITY ", 0),
		C("b NOOP", "b OK ", 0),
		C("c SELECT INBOX", "c BAD ", 0),
		C("d", "d BAD ", 0),
		CXK("e NOOP", JUNK, PO_CLOSE | PO_ERROR, CTR_junk_refused),
	};
	static const struct step caps[] = {
		C("a CAPABILITY", "* CAPABILITY ", 0),
		C("b ID NIL", "* ID NIL", 0),
		C("c CAPABILITY", "* CAPABILITY ", 0),
		C("d CAPABILITY", "* CAPABILITY ", 0),
		C("e CAPABILITY", "* CAPABILITY ", 0), /* junk 1 */
		C("f ID NIL", "* ID NIL", 0),          /* junk 2 */
		C("g CAPABILITY", "* CAPABILITY ", 0), /* junk 3 */
		CXK("h CAPABILITY", JUNK, PO_CLOSE | PO_ERROR, CTR_junk_refused),
	};

	transcript_junk_limit = 3;
	RUN(&starttls_caps, t);
	RUN(&starttls_caps, caps);
	transcript_junk_limit = 0;
}

/*
 * Finding 10: a synchronizing literal announced by a line without a tag
 * (or with one over IMAP_TAG_MAX) was taken as coming at once: the 12
 * bytes "b STARTTLS\r\n" were skipped as data and went to the backend
 * unseen. Now the tracker stops trusting the stream: the STARTTLS is held,
 * refused and the session closed at once.
 */
#define UNTRACKED(tag) tag " BAD STARTTLS after a command that could not be followed.\r\n"
#define TAG64 "t234567890123456789012345678901234567890123456789012345678901234"
#define TAG65 TAG64 "5"
static void test_relay_strict(void **state)
{
	static const struct relay_step untagged[] = {
		RA("", "{12}\r\nb STARTTLS\r\n", "{12}\r\n", UNTRACKED("b"), PO_CLOSE | PO_ERROR,
		   NULL),
	};
	static const struct relay_step long_tag_literal[] = {
		RH("", TAG65 " ID {12}\r\nb STARTTLS\r\n", TAG65 " ID {12}\r\n"),
		RA(TAG65 " BAD Error in IMAP command received by server.\r\n", "", "",
		   UNTRACKED("b"), PO_CLOSE | PO_ERROR, NULL),
	};
	/* A LOGIN with a tag too long to remember: its tagged OK was never
	 * matched, and STARTTLS went on after login (rule 2.7). */
	static const struct relay_step long_tag_login[] = {
		R("", TAG65 " LOGIN bob secret\r\n", TAG65 " LOGIN bob secret\r\n"),
		RA(TAG65 " OK Logged in\r\n", "b STARTTLS\r\n", "", UNTRACKED("b"),
		   PO_CLOSE | PO_ERROR, NULL),
	};
	/* A tag of exactly IMAP_TAG_MAX is still followed. */
	static const struct relay_step tag64[] = {
		R("", TAG65 "\r\n", TAG65 "\r\n"), /* no command, no literal: harmless */
		R("", TAG64 " LOGIN b s\r\n", TAG64 " LOGIN b s\r\n"),
		RA(TAG64 " OK in\r\n",
		   "b STARTTLS\r\n", "", AUTHED("b"), 0, NULL),
	};

	RELAY(&starttls_caps, untagged);
	RELAY(&starttls_caps, long_tag_literal);
	RELAY(&starttls_caps, long_tag_login);
	RELAY(&starttls_caps, tag64);
}

/* Finding 9: the relay's idle timeout says "* BYE" between responses only,
 * never inside a FETCH literal (it would be message data). */
static void test_idle_timeout_mid_literal(void **state)
{
	static const struct idle_step t[] = {
		{ "", true },
		{ "* 1 FETCH (BODY[] {40}\r\n", false },
		{ "Subject: hello\r\n\r\nbody li", false },  /* inside the literal */
		{ "ne 1\r\nline 2\r\n", false },            /* literal done, ")" due */
		{ ")\r\n", true },
		{ "a OK Fetch completed.\r\n", true },
		{ "* 2 EXISTS", false },                    /* half a line */
	};

	IDLE_TIMEOUT(true, "a FETCH 1 BODY[]\r\n", "* BYE ", t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_capability),
		cmocka_unit_test(test_starttls_not_available),
		cmocka_unit_test(test_tls_off),
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_tags_kept),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_commands_before_login),
		cmocka_unit_test(test_login_required),
		cmocka_unit_test(test_login_starttls_mode),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_too_many_errors_too_long),
		cmocka_unit_test(test_too_many_errors_with_logins),
		cmocka_unit_test(test_literal_id),
		cmocka_unit_test(test_literal_login_required),
		cmocka_unit_test(test_literal_rejected),
		cmocka_unit_test(test_literal_too_large),
		cmocka_unit_test(test_literal_sync_too_large_not_invited),
		cmocka_unit_test(test_stream_literal_never_a_command),
		cmocka_unit_test(test_stream_literal_leading_zeros),
		cmocka_unit_test(test_stream_sync_literal_after_answer),
		cmocka_unit_test(test_stream_too_long_after_literal),
		cmocka_unit_test(test_stream_too_long_line_with_literal),
		cmocka_unit_test(test_backend_opening),
		cmocka_unit_test(test_backend_refused),
		cmocka_unit_test(test_timeout_unavailable_lost),
		cmocka_unit_test(test_capability_long_list_stays_whole),
		cmocka_unit_test(test_relay_tracker),
		cmocka_unit_test(test_relay_tracker_long_line),
		cmocka_unit_test(test_relay_tracker_refused_sync_literal),
		cmocka_unit_test(test_relay_tracker_starttls_with_arguments),
		cmocka_unit_test(test_relay_tracker_long_line_with_literal),
		cmocka_unit_test(test_relay_tracker_literal_leading_zeros),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_probe_tokens),
		cmocka_unit_test(test_probe_many),
		cmocka_unit_test(test_probe_refused),
		cmocka_unit_test(test_late_starttls),
		cmocka_unit_test(test_junk_limit),
		cmocka_unit_test(test_relay_strict),
		cmocka_unit_test(test_idle_timeout_mid_literal),
	};

	return cmocka_run_group_tests_name("imap", tests, NULL, NULL);
}
