/*
 * Unit tests for the SMTP engine (dataplane/proto/smtp.c).
 *
 * Each scenario is a transcript: what the client (or, while the backend is
 * being opened, the backend) sends, and what sluice must answer: the start
 * of its reply (or all of it, for the exact multi-line ones), the exact
 * PO_ flags, and the exact bytes it makes for the backend. The engine does
 * no I/O, so the transcript is the whole test.
 *
 * Every client line is handed over in a buffer of exactly its length, with
 * no NUL after it, as the session does (the line points into its buffer):
 * valgrind sees any read past the end.
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

#include "proto/proto.h"
#include "transcript.h"

/* ---- the engine under test (transcript.h runs the tables) -------------- */

/* A typical Postfix EHLO reply, keywords only. */
static const char *const postfix_caps[] = {
	"PIPELINING", "SIZE 10240000", "AUTH PLAIN LOGIN", "STARTTLS", "8BITMIME", NULL
};

static const struct setup starttls_caps = { CFG_TLS_STARTTLS, true, postfix_caps };
static const struct setup starttls_nocaps = { CFG_TLS_STARTTLS, true, NULL };
static const struct setup required_caps = { CFG_TLS_REQUIRED, true, postfix_caps };

/*
 * Whatever the client gets is one or more complete replies (RFC 5321
 * 4.2.1): lines "NNN-text" or "NNN text" ending in CR LF, the last one with
 * a space: otherwise the client waits for the rest of a reply forever.
 */
static bool reply_well_formed(const char *r, size_t len, bool need_final)
{
	const char *end = r + len, *line = r;
	bool final = false;

	if (!len)
		return false;
	while (line < end) {
		const char *crlf = memmem(line, (size_t)(end - line), "\r\n", 2);
		size_t ll;

		if (!crlf)
			return false;
		ll = (size_t)(crlf - line);
		if (ll < 4 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' || (line[3] != ' ' && line[3] != '-'))
			return false;
		final = line[3] == ' ';
		line = crlf + 2;
	}
	return final || !need_final;
}

/* The backend's EHLO reply inside TLS streams through line by line:
 * complete lines, and a final one once it is relayed or failed. */
static bool smtp_well_formed(const struct step *st, const struct proto_out *o)
{
	return reply_well_formed(o->reply, o->reply_len,
				 st->kind != S_BACKEND || (o->flags & (PO_RELAY | PO_FAIL)));
}

static const struct transcript_proto TP = {
	.proto = CFG_PROTO_SMTP, .name = "smtp", .line_max = 512,
	.unit = "a complete SMTP reply", .well_formed = smtp_well_formed,
};

/* ---- before TLS: what sluice answers itself ------------------------------ */

static void test_banner(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test ESMTP\r\n"),
	};

	RUN(&starttls_caps, t);
}

/*
 * EHLO lists the backend's keywords, never AUTH (not before TLS) and never
 * the backend's own STARTTLS, and adds sluice's STARTTLS as the last line.
 */
static void test_ehlo_lists_backend_caps(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test ESMTP\r\n"),
		CX("EHLO client.example",
		   "250-mx.test\r\n"
		   "250-PIPELINING\r\n"
		   "250-SIZE 10240000\r\n"
		   "250-8BITMIME\r\n"
		   "250 STARTTLS\r\n", 0),
		/* A second EHLO is answered the same way. */
		CX("ehlo other.example",
		   "250-mx.test\r\n"
		   "250-PIPELINING\r\n"
		   "250-SIZE 10240000\r\n"
		   "250-8BITMIME\r\n"
		   "250 STARTTLS\r\n", 0),
	};

	RUN(&starttls_caps, t);
}

/* Backend not known yet: the host line and STARTTLS only. */
static void test_ehlo_without_caps(void **state)
{
	static const struct step t[] = {
		CX("EHLO client.example", "250-mx.test\r\n250 STARTTLS\r\n", 0),
	};

	RUN(&starttls_nocaps, t);
}

static void test_helo(void **state)
{
	static const struct step t[] = {
		CX("HELO client.example", "250 mx.test\r\n", 0),
		CX("helo client.example", "250 mx.test\r\n", 0),
	};

	RUN(&starttls_caps, t);
}

static void test_ehlo_helo_need_a_name(void **state)
{
	static const struct step t[] = {
		C("EHLO", "501 5.5.4 ", 0),
		C("EHLO   ", "501 5.5.4 ", 0),  /* blanks are no name */
		C("HELO", "501 5.5.4 ", 0),
		/* Without a greeting, mail commands are still too early. */
		C("MAIL FROM:<a@example.org>", "503 5.5.1 ", 0),
	};

	RUN(&starttls_caps, t);
}

static void test_starttls(void **state)
{
	static const struct step t[] = {
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("STARTTLS now", "501 5.5.4 ", 0),      /* RFC 3207 4: no parameters */
		CX("STARTTLS", "220 2.0.0 Ready to start TLS\r\n", PO_STARTTLS),
	};
	static const struct step lower[] = {
		C("starttls  ", "220 ", PO_STARTTLS),      /* case and trailing blanks */
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, lower);
}

/* No usable certificate: STARTTLS is neither advertised nor accepted. */
static void test_starttls_not_available(void **state)
{
	static const struct setup nocert = { CFG_TLS_STARTTLS, false, postfix_caps };
	static const struct setup nocert_nocaps = { CFG_TLS_STARTTLS, false, NULL };
	static const struct step t[] = {
		CX("EHLO client.example",
		   "250-mx.test\r\n"
		   "250-PIPELINING\r\n"
		   "250-SIZE 10240000\r\n"
		   "250 8BITMIME\r\n", 0),
		C("STARTTLS", "454 4.7.0 ", 0),
	};
	static const struct step bare[] = {
		CX("EHLO client.example", "250 mx.test\r\n", 0),
		C("STARTTLS", "454 4.7.0 ", 0),
	};

	RUN(&nocert, t);
	RUN(&nocert_nocaps, bare);
}

/* tls: off: a plaintext listener knows no STARTTLS. */
static void test_tls_off(void **state)
{
	static const struct setup off = { CFG_TLS_OFF, true, postfix_caps };
	static const struct step t[] = {
		CX("EHLO client.example",
		   "250-mx.test\r\n"
		   "250-PIPELINING\r\n"
		   "250-SIZE 10240000\r\n"
		   "250 8BITMIME\r\n", 0),
		C("STARTTLS", "502 5.5.1 ", 0),
		/* Plaintext relay is what this listener is for. */
		C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
	};

	RUN(&off, t);
}

static void test_simple_commands(void **state)
{
	static const struct step t[] = {
		C("NOOP", "250 2.0.0 ", 0),
		C("RSET", "250 2.0.0 ", 0),
		C("HELP", "214 ", 0),
		C("noop", "250 2.0.0 ", 0),           /* verbs are case-insensitive */
		C("Rset", "250 2.0.0 ", 0),
		C("NOOP   ", "250 2.0.0 ", 0),        /* trailing blanks change nothing */
		C("RSET\t", "250 2.0.0 ", 0),
		C("NOOP some argument", "250 2.0.0 ", 0),
		C("XYZZY", "502 5.5.2 ", 0),
		C("NOOPS", "502 5.5.2 ", 0),          /* a verb is a whole word */
		C("MAI", "502 5.5.2 ", 0),
		C("QUIT", "221 2.0.0 ", PO_CLOSE),
	};
	static const struct step lower_quit[] = {
		C("quit", "221 ", PO_CLOSE),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, lower_quit);
}

/* Lines that are not commands at all. */
static void test_bad_lines(void **state)
{
	static const struct step t[] = {
		CNUL("NOOP\0", "500 5.5.2 ", 0),
		CNUL("MAIL FROM:<a\0@example.org>", "500 5.5.2 ", 0),
		CNUL("\0", "500 5.5.2 ", 0),
		TOO_LONG("500 5.5.2 ", 0),
		C("", "500 5.5.2 ", 0),
		/* And the session goes on. */
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("NOOP", "250 ", 0),
	};

	RUN(&starttls_caps, t);
}

/* tls: required (DESIGN.md 2.6): mail and auth refused before TLS. */
static void test_required_refuses_before_tls(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test ESMTP\r\n"),
		C("MAIL FROM:<a@example.org>", "530 5.7.0 ", 0),  /* before EHLO too */
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("MAIL FROM:<a@example.org>", "530 5.7.0 ", 0),
		C("RCPT TO:<b@example.org>", "530 5.7.0 ", 0),
		C("DATA", "530 5.7.0 ", 0),
		C("BDAT 100 LAST", "530 5.7.0 ", 0),
		C("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "530 5.7.0 ", 0),
		C("mail from:<a@example.org>", "530 5.7.0 ", 0),
		C("STARTTLS", "220 ", PO_STARTTLS),
		TLS_UP,
		/* Inside TLS the EHLO goes to the backend. */
		C("EHLO client.example", NULL, PO_BACKEND),
	};

	RUN(&required_caps, t);
}

/* tls: starttls: AUTH is still never carried in plaintext. */
static void test_starttls_mode_auth_before_tls(void **state)
{
	static const struct step t[] = {
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("AUTH LOGIN", "530 5.7.0 ", 0),
	};

	RUN(&starttls_caps, t);
}

static void test_mail_before_ehlo(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test ESMTP\r\n"),
		C("MAIL FROM:<a@example.org>", "503 5.5.1 ", 0),
		C("RCPT TO:<b@example.org>", "503 5.5.1 ", 0),
		C("DATA", "503 5.5.1 ", 0),
	};

	RUN(&starttls_caps, t);
}

/* ---- the plaintext path (RFC 7435): MAIL opens the backend --------------- */

/*
 * The first MAIL hands the session to the backend: its greeting is
 * swallowed, the client's EHLO replayed, the EHLO reply swallowed, and only
 * then do the held client bytes (the MAIL line) go through.
 */
static void test_plaintext_backend_opening(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test ESMTP\r\n"),
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
		BT("220-backend.test ESMTP Postfix", NULL, 0, NULL),
		BT("220 backend.test continued", NULL, 0, "EHLO client.example\r\n"),
		BT("250-backend.test", NULL, 0, NULL),
		BT("250-PIPELINING", NULL, 0, NULL),
		BT("250-SIZE 10240000", NULL, 0, NULL),
		BT("250 8BITMIME", NULL, PO_FLUSH_HELD | PO_RELAY, NULL),
	};
	/* Lowercase verb and trailing blanks: the replay is clean. */
	static const struct step lower[] = {
		C("ehlo client.example  ", "250-mx.test\r\n", 0),
		C("mail from:<a@example.org>", NULL, PO_BACKEND),
		BT("220 backend.test ESMTP", NULL, 0, "EHLO client.example\r\n"),
		BT("250 backend.test", NULL, PO_FLUSH_HELD | PO_RELAY, NULL),
	};
	/* HELO is replayed as HELO; the last greeting wins. */
	static const struct step helo[] = {
		C("EHLO first.example", "250-mx.test\r\n", 0),
		C("HELO client.example", "250 mx.test\r\n", 0),
		C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
		BT("220 backend.test ESMTP", NULL, 0, "HELO client.example\r\n"),
		BT("250 backend.test", NULL, PO_FLUSH_HELD | PO_RELAY, NULL),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, lower);
	RUN(&starttls_caps, helo);
}

/* A backend that refuses: the client gets 421 4.4.2 and is closed. */
static void test_backend_greeting_refused(void **state)
{
	static const struct step busy[] = {
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
		BT("421 4.3.2 backend.test busy", "421 4.4.2 ", PO_FAIL | PO_CLOSE, NULL),
	};
	static const struct step refused[] = {
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
		BT("554-backend.test", NULL, 0, NULL),
		BT("554 no SMTP service here", "421 4.4.2 ", PO_FAIL | PO_CLOSE, NULL),
	};
	static const struct step ehlo_refused[] = {
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
		BT("220 backend.test ESMTP", NULL, 0, "EHLO client.example\r\n"),
		BT("550 5.7.1 go away", "421 4.4.2 ", PO_FAIL | PO_CLOSE, NULL),
	};

	RUN(&starttls_caps, busy);
	RUN(&starttls_caps, refused);
	RUN(&starttls_caps, ehlo_refused);
}

/* Anything that is not "NNN", "NNN-..." or "NNN ..." ends the opening. */
static void test_backend_malformed(void **state)
{
	static const char *const bad[] = {
		"hello", "22", "", "220x backend.test", "2x0 backend.test", "-220 x",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct step greeting[] = {
			C("EHLO client.example", "250-mx.test\r\n", 0),
			C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
			BT(bad[i], "421 4.4.2 ", PO_FAIL | PO_CLOSE, NULL),
		};
		const struct step reply[] = {
			C("EHLO client.example", "250-mx.test\r\n", 0),
			C("MAIL FROM:<a@example.org>", NULL, PO_BACKEND),
			BT("220 backend.test ESMTP", NULL, 0, "EHLO client.example\r\n"),
			BT("250-backend.test", NULL, 0, NULL),
			BT(bad[i], "421 4.4.2 ", PO_FAIL | PO_CLOSE, NULL),
		};

		RUN(&starttls_caps, greeting);
		RUN(&starttls_caps, reply);
	}
}

/* ---- inside TLS ---------------------------------------------------------- */

/*
 * After the handshake the client's EHLO goes to the backend; the backend's
 * reply reaches the client with AUTH (now allowed) and without STARTTLS
 * (DESIGN.md 2.2), here in the middle of the list.
 */
static void test_tls_ehlo_filters_starttls_middle(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test ESMTP\r\n"),
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("STARTTLS", "220 ", PO_STARTTLS),
		TLS_UP,
		C("EHLO client.example", NULL, PO_BACKEND),
		/* The client's own EHLO is the held line: nothing replayed. */
		BT("220 backend.test ESMTP Postfix", NULL, PO_FLUSH_HELD, NULL),
		/* Lines go on one behind, so the last can still be fixed. */
		BT("250-backend.test", NULL, 0, NULL),
		BX("250-PIPELINING", "250-backend.test\r\n", 0),
		BT("250-STARTTLS", NULL, 0, NULL),
		BX("250-AUTH PLAIN LOGIN", "250-PIPELINING\r\n", 0),
		BX("250 8BITMIME",
		   "250-AUTH PLAIN LOGIN\r\n"
		   "250 8BITMIME\r\n", PO_RELAY),
	};

	RUN(&starttls_caps, t);
}

/* STARTTLS as the last line: the line before it becomes the final one. */
static void test_tls_ehlo_filters_starttls_last(void **state)
{
	static const struct step t[] = {
		C("STARTTLS", "220 ", PO_STARTTLS),
		TLS_UP,
		C("EHLO client.example", NULL, PO_BACKEND),
		BT("220-backend.test ESMTP", NULL, 0, NULL),
		BT("220 ready", NULL, PO_FLUSH_HELD, NULL),
		BT("250-backend.test", NULL, 0, NULL),
		BX("250-PIPELINING", "250-backend.test\r\n", 0),
		BX("250-AUTH PLAIN LOGIN", "250-PIPELINING\r\n", 0),
		BX("250 STARTTLS", "250 AUTH PLAIN LOGIN\r\n", PO_RELAY),
	};
	/* Any case, trailing blanks; a lone host line survives. */
	static const struct step lower[] = {
		TLS_UP,
		C("ehlo client.example", NULL, PO_BACKEND),
		BT("220 ready", NULL, PO_FLUSH_HELD, NULL),
		BT("250-backend.test", NULL, 0, NULL),
		BX("250 starttls ", "250 backend.test\r\n", PO_RELAY),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, lower);
}

/* A second STARTTLS inside TLS gets a clean error (DESIGN.md 2.2). */
static void test_tls_second_starttls(void **state)
{
	static const struct step t[] = {
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("STARTTLS", "220 ", PO_STARTTLS),
		TLS_UP,
		C("STARTTLS", "554 5.5.1 ", 0),
		C("starttls", "554 5.5.1 ", 0),
		C("NOOP", "250 ", 0),
	};

	RUN(&starttls_caps, t);
}

/* Implicit TLS: nothing before EHLO reaches the mail system. */
static void test_tls_mail_before_ehlo(void **state)
{
	static const struct setup implicit = { CFG_TLS_IMPLICIT, true, postfix_caps };
	static const struct step t[] = {
		TLS_UP,
		GREETING("220 mx.test ESMTP\r\n"),
		C("MAIL FROM:<a@example.org>", "503 5.5.1 ", 0),
		C("RCPT TO:<b@example.org>", "503 5.5.1 ", 0),
		C("AUTH PLAIN AGFsaWNlAHNlY3JldA==", "503 5.5.1 ", 0),
		C("EHLO client.example", NULL, PO_BACKEND),
	};

	RUN(&implicit, t);
}

/*
 * DESIGN.md 2.2: the EHLO from before TLS is forgotten. MAIL right after the
 * handshake is too early, and the backend gets only what the client says
 * inside TLS, no replay of the plaintext EHLO.
 */
static void test_tls_forgets_ehlo(void **state)
{
	static const struct step t[] = {
		C("EHLO plain.example", "250-mx.test\r\n", 0),
		C("STARTTLS", "220 ", PO_STARTTLS),
		TLS_UP,
		C("MAIL FROM:<a@example.org>", "503 5.5.1 ", 0),
		C("EHLO secret.example", NULL, PO_BACKEND),
		BT("220 backend.test ESMTP", NULL, PO_FLUSH_HELD, NULL),
		BX("250 backend.test", "250 backend.test\r\n", PO_RELAY),
	};

	RUN(&starttls_caps, t);
}

/*
 * A long EHLO reply from the backend (more than PO_REPLY_MAX bytes) must
 * still reach the client as one complete reply, its last line final;
 * otherwise the client waits for the rest of it and the session is stuck.
 */
static void test_tls_ehlo_long_reply_stays_complete(void **state)
{
	enum { KW = 40 };
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, NULL, false };
	struct proto_sess ps;
	struct proto_out o;
	static char all[16384];
	size_t alen = 0;
	char kw[128];

	memset(&ps, 0, sizeof(ps));
	ops->tls_started(&ps);
	po_reset(&o);
	ops->client_line(&env, &ps, "EHLO c", 6, false, &o);
	assert_int_equal(o.flags, PO_BACKEND);
	po_reset(&o);
	ops->backend_line(&env, &ps, "220 backend.test", 16, &o);
	assert_int_equal(o.flags, PO_FLUSH_HELD);
	for (int i = -1; i <= KW; i++) {
		if (i < 0)
			snprintf(kw, sizeof(kw), "250-backend.test");
		else if (i == KW)
			snprintf(kw, sizeof(kw), "250 8BITMIME");
		else
			snprintf(kw, sizeof(kw), "250-X-VENDOR-EXTENSION-%02d "
				 "with-a-long-parameter-list-aaaaaaaaaaaaaaaaaaaa", i);
		po_reset(&o);
		ops->backend_line(&env, &ps, kw, strlen(kw), &o);
		assert_true(reply_well_formed(o.reply, o.reply_len, i == KW) || o.reply_len == 0);
		assert_int_equal(o.flags, i == KW ? PO_RELAY : 0);
		assert_true(alen + o.reply_len < sizeof(all));
		memcpy(all + alen, o.reply, o.reply_len);
		alen += o.reply_len;
	}
	/* Everything arrived, in order, and the whole is one complete reply. */
	assert_true(reply_well_formed(all, alen, true));
	assert_int_equal(memcmp(all, "250-backend.test\r\n", 18), 0);
	assert_int_equal(memcmp(all + alen - 14, "250 8BITMIME\r\n", 14), 0);
	assert_non_null(memmem(all, alen, "EXTENSION-39 ", 13));
	ops->fini(&ps);
}

/*
 * The same for sluice's own EHLO reply: however many keywords the probe
 * learned, the reply is complete and STARTTLS is still offered, last.
 */
static void test_ehlo_many_caps_reply_stays_complete(void **state)
{
	struct proto_out o;
	static const char tail[] = "\r\n250 STARTTLS\r\n";

	transcript_many_caps(&TP, " with-a-long-parameter-list-aaaaaaaaaaaaaaaaaaaa",
			     "EHLO client.example", NULL, &o);
	if (!reply_well_formed(o.reply, o.reply_len, true))
		fail_msg("EHLO reply of %zu bytes is not a complete reply; it ends \"%.*s\"",
			 o.reply_len, 60, o.reply_len > 60 ? o.reply + o.reply_len - 60 : o.reply);
	assert_true(o.reply_len > sizeof(tail));
	assert_memory_equal(o.reply + o.reply_len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
}

/* ---- sluice's own endings ------------------------------------------------ */

/* As Postfix's smtpd_hard_error_limit: the 20th error also gets 421. */
static void test_too_many_errors(void **state)
{
	struct step t[21];
	unsigned n = 0;

	for (int i = 0; i < 19; i++) {
		struct step s;

		switch (i % 4) {
		case 0: s = (struct step)C("XYZZY", "502 5.5.2 ", 0); break;
		case 1: s = (struct step)CNUL("NO\0OP", "500 5.5.2 ", 0); break;
		case 2: s = (struct step)TOO_LONG("500 5.5.2 ", 0); break;
		default: s = (struct step)C("EHLO", "501 5.5.4 ", 0); break;
		}
		t[n++] = s;
		if (i == 9) /* good commands do not reset the count */
			t[n++] = (struct step)C("NOOP", "250 ", 0);
	}
	t[n++] = (struct step)CX("XYZZY",
				  "502 5.5.2 Error: command not recognized\r\n"
				  "421 4.7.0 mx.test Error: too many errors\r\n",
				  PO_CLOSE | PO_ERROR);
	assert_int_equal(n, 21);
	transcript_run(&TP, &starttls_caps, t, n);
}

static void test_too_many_errors_too_long(void **state)
{
	struct step t[20];

	for (int i = 0; i < 19; i++)
		t[i] = (struct step)TOO_LONG("500 5.5.2 ", 0);
	t[19] = (struct step)TOO_LONG("500 5.5.2 Error: line too long\r\n"
				      "421 4.7.0 mx.test Error: too many errors\r\n",
				      PO_CLOSE | PO_ERROR);
	t[19].exact = true;
	transcript_run(&TP, &starttls_caps, t, 20);
}

static void test_timeout(void **state)
{
	static const struct step t[] = {
		GREETING("220 mx.test ESMTP\r\n"),
		C("EHLO client.example", "250-mx.test\r\n", 0),
		TIMEOUT_STARTS("421 4.4.2 mx.test ", PO_CLOSE),
	};

	RUN(&starttls_caps, t);
}

/*
 * The backend vanished mid-relay: a 421 where the client still waits for
 * an answer, nothing after the backend's own 221 or 421.
 */
static void test_backend_lost(void **state)
{
	static const struct {
		const char *last;
		const char *reply;  /* NULL: none */
	} cases[] = {
		{ "250 2.1.0 Ok",                 "421 4.4.2 " },
		{ "354 End data with <CR><LF>.<CR><LF>", "421 4.4.2 " },
		{ "",                             "421 4.4.2 " },
		{ "221 2.0.0 Bye",                NULL },
		{ "421 4.3.2 backend.test shutting down", NULL },
	};
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, NULL, false };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct proto_sess ps;
		struct proto_out o;
		size_t len = strlen(cases[i].last);
		char *last = malloc(len ? len : 1);

		assert_non_null(last);
		memcpy(last, cases[i].last, len);
		memset(&ps, 0, sizeof(ps));
		po_reset(&o);
		ops->lost(&env, &ps, last, len, &o);
		if (!cases[i].reply) {
			if (o.reply_len)
				fail_msg("after \"%s\": unexpected reply \"%.*s\"", cases[i].last,
					 (int)o.reply_len, o.reply);
		} else if (o.reply_len < strlen(cases[i].reply) ||
			   memcmp(o.reply, cases[i].reply, strlen(cases[i].reply)) ||
			   memcmp(o.reply + o.reply_len - 2, "\r\n", 2)) {
			fail_msg("after \"%s\": reply \"%.*s\", want \"%s...\"", cases[i].last,
				 (int)o.reply_len, o.reply, cases[i].reply);
		}
		assert_int_equal(o.to_backend_len, 0);
		ops->fini(&ps);
		free(last);
	}
}

/* ---- the relay tracker (client -> backend inside TLS) -------------------- */

/*
 * Segments of client bytes on their way to the backend, each with the
 * start of the backend's last complete line at that moment (what the
 * session keeps in ps->last_reply), run by TRACK (transcript.h). A
 * STARTTLS command must never reach the backend as a command; STARTTLS
 * inside message content is content.
 */
static void test_relay_tracker(void **state)
{
	static const struct seg starttls[] = {
		{ "", "STARTTLS\r\n", "XTLSDENY\r\n" },
		{ "454 no\r\n", "starttls\r\nNOOP\r\n", "XTLSDENY\r\nNOOP\r\n" },
		{ "502 no\r\n250 ok\r\n", "STARTTLS", "" },   /* unfinished: waits */
		{ "502 no\r\n", "\r\n", "XTLSDENY\r\n" },
	};
	static const struct seg data_body[] = {
		{ "", "DATA\r\n", "DATA\r\n" },
		{ "354 go\r\n", "Subject: x\r\n\r\nSTARTTLS\r\n.\r\n",
				   "Subject: x\r\n\r\nSTARTTLS\r\n.\r\n" },
		{ "250 queued\r\n", "STARTTLS\r\n", "XTLSDENY\r\n" },
	};
	static const struct seg data_refused[] = {
		{ "", "DATA\r\n", "DATA\r\n" },
		{ "554 no valid recipients\r\n", "STARTTLS\r\n", "XTLSDENY\r\n" },
	};
	/* Pipelined MAIL RCPT DATA: DATA's reply is the third. */
	static const struct seg pipelined[] = {
		{ "", "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
		      "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" },
		{ "250 ok\r\n250-multi\r\n250 line\r\n354 go\r\n", "STARTTLS\r\n.\r\n",
		  "STARTTLS\r\n.\r\n" },
	};
	static const struct seg bdat[] = {
		{ "", "BDAT 10\r\nSTARTTLS\r\n", "BDAT 10\r\nSTARTTLS\r\n" },
		{ "250 ok\r\n", "STARTTLS\r\n", "XTLSDENY\r\n" },
	};

	TRACK(starttls);
	TRACK(data_body);
	TRACK(data_refused);
	TRACK(pipelined);
	TRACK(bdat);
}

/*
 * A client that does not wait for DATA's reply (RFC 2920 forbids it, an
 * attacker does it anyway): after one message, it sends the end of the
 * body, a new transaction whose RCPT the backend refuses, DATA, and
 * STARTTLS, all in one segment. The backend answers that DATA with 554 and
 * would read STARTTLS as a command. The bytes after DATA wait until DATA's
 * own reply is known, then go as what it makes them.
 */
static void test_relay_tracker_data_not_awaited(void **state)
{
	static const struct seg bypass[] = {
		{ "", "DATA\r\n", "DATA\r\n" },
		{ "354 go\r\n", "x\r\n.\r\nMAIL FROM:<a@example.org>\r\n"
			 "RCPT TO:<nobody@example.org>\r\nDATA\r\nSTARTTLS\r\n",
			 "x\r\n.\r\nMAIL FROM:<a@example.org>\r\n"
			 "RCPT TO:<nobody@example.org>\r\nDATA\r\n" },
		/* queued, MAIL ok, RCPT refused: still not DATA's reply */
		{ "250 queued\r\n250 ok\r\n550 no such user\r\n", "", "" },
		{ "554 5.5.1 no valid recipients\r\n", "", "XTLSDENY\r\n" },
	};

	TRACK(bypass);
}

/* ---- the capability probe ------------------------------------------------ */

/* Greeting, then the EHLO reply: its keywords (not the host line) are kept. */
static void test_probe(void **state)
{
	static const struct probe_step t[] = {
		{ "220-backend.test ESMTP Postfix", 0 },
		{ "220 backend.test", 1 },               /* send the EHLO now */
		{ "250-backend.test", 0 },
		{ "250-PIPELINING", 0 },
		{ "250-SIZE 10240000", 0 },
		{ "250-AUTH PLAIN LOGIN", 0 },
		{ "250-STARTTLS", 0 },
		{ "250 8BITMIME", 2 },                   /* complete */
	};
	static const char *const want[] = {
		"PIPELINING", "SIZE 10240000", "AUTH PLAIN LOGIN", "STARTTLS", "8BITMIME",
	};
	struct proto_caps *caps = transcript_probe(&TP, t, sizeof(t) / sizeof(t[0]));
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, caps, 0, NULL, false };
	struct proto_sess ps;
	struct proto_out o;

	assert_int_equal(caps->n, 5);
	for (unsigned i = 0; i < 5; i++)
		assert_string_equal(caps->item[i], want[i]);

	/* And what the client is told from them. */
	memset(&ps, 0, sizeof(ps));
	po_reset(&o);
	ops->client_line(&env, &ps, "EHLO client.example", 19, false, &o);
	assert_int_equal(o.reply_len, strlen("250-mx.test\r\n250-PIPELINING\r\n"
					     "250-SIZE 10240000\r\n250-8BITMIME\r\n"
					     "250 STARTTLS\r\n"));
	assert_memory_equal(o.reply, "250-mx.test\r\n250-PIPELINING\r\n"
			    "250-SIZE 10240000\r\n250-8BITMIME\r\n250 STARTTLS\r\n",
			    o.reply_len);
	ops->fini(&ps);
	caps_free(caps);
}

/* A one-line EHLO reply: no keywords, complete. */
static void test_probe_no_keywords(void **state)
{
	static const struct probe_step t[] = {
		{ "220 backend.test ESMTP", 1 },
		{ "250 backend.test", 2 },
	};
	struct proto_caps *caps = transcript_probe(&TP, t, sizeof(t) / sizeof(t[0]));

	assert_int_equal(caps->n, 0);
	caps_free(caps);
}

/* A backend that refuses (or speaks something else) gives -1. */
static void test_probe_refused(void **state)
{
	static const struct probe_step greeting554[] = {
		{ "554 5.3.2 backend.test no service", -1 },
	};
	static const struct probe_step greeting554_multi[] = {
		{ "554-backend.test", -1 },
	};
	static const struct probe_step ehlo_refused[] = {
		{ "220 backend.test ESMTP", 1 },
		{ "502 5.5.2 Error: command not recognized", -1 },
	};
	static const struct probe_step garbage[] = {
		{ "* OK IMAP4rev1 ready", -1 },
	};

	assert_int_equal(PROBE_COUNT(greeting554), 0);
	PROBE_COUNT(greeting554_multi);
	assert_int_equal(PROBE_COUNT(ehlo_refused), 0);
	PROBE_COUNT(garbage);
}

/*
 * The message-content scan against the plain byte-by-byte reading of
 * RFC 5321 4.5.2 (lines framed by LF, as Postfix frames them): for random
 * bodies rich in dots, CRs and LFs, cut into random pieces, the scan ends
 * the content exactly where the reference finds the line ".", and not
 * before.
 */
static int ref_body_end(int st, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = b[i];

		switch (st) {
		case 0: st = c == '\n'; break;
		case 1: st = c == '.' ? 2 : c == '\n'; break;
		case 2: if (c == '\n') return (int)i + 1; st = c == '\r' ? 3 : 0; break;
		default: if (c == '\n') return (int)i + 1; st = 0; break;
		}
	}
	return -1;
}

static void test_body_scan_matches_bytewise(void **state)
{
	static const char alphabet[] = "aaaaaaaabbbbZ....\r\r\n\n\n";
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	unsigned long long seed = 0x9e3779b97f4a7c15ull;
	unsigned ended = 0;

	for (unsigned round = 0; round < 4000; round++) {
		struct proto_sess ps;
		uint8_t body[700], pre[8] = "DATA\r\n";
		size_t n, off = 0;
		int start, end;
		uint64_t cmds;

#define RND() (seed = seed * 6364136223846793005ull + 1442695040888963407ull, (unsigned)(seed >> 33))
		n = RND() % sizeof(body);
		for (size_t i = 0; i < n; i++)
			body[i] = (uint8_t)alphabet[RND() % (sizeof(alphabet) - 1)];
		memset(&ps, 0, sizeof(ps));
		assert_int_equal(ops->c2b_scan(&ps, pre, 6), 6);
		ops->b2c_scan(&ps, (const uint8_t *)"354 go\r\n", 8);
		/* Into the content, inside a line or at a line start. */
		start = (int)(RND() % 2);
		pre[0] = start ? '\n' : 'x';
		assert_int_equal(ops->c2b_scan(&ps, pre, 1), 1);
		cmds = ps.cmds; /* the end of the content is one more command */
		end = ref_body_end(start, body, n);
		while (off < (end >= 0 ? (size_t)end : n)) {
			size_t lim = end >= 0 ? (size_t)end : n;
			size_t k = 1 + RND() % 97, went;

			if (k > lim - off)
				k = lim - off;
			went = ops->c2b_scan(&ps, body + off, k);
			assert_int_equal(went, k);
			off += k;
			if (off < lim && ps.cmds != cmds)
				fail_msg("round %u: content ended at %zu, the reference at %d",
					 round, off, end);
		}
		if (end >= 0) {
			if (ps.cmds != cmds + 1)
				fail_msg("round %u: content not ended at %d", round, end);
			ended++;
		} else if (ps.cmds != cmds) {
			fail_msg("round %u: content ended, the reference never ends it", round);
		}
		ops->fini(&ps);
#undef RND
	}
	/* The draw ends the content often, and not always. */
	assert_in_range(ended, 400, 3600);
}

/* ---- STARTTLS in the plaintext relay (DESIGN.md rule 2.7) --------------- */

#define LATE_OK "220 2.0.0 Ready to start TLS\r\n"
#define IN_TXN  "503 5.5.1 Error: MAIL transaction in progress\r\n"
#define UNTRACKED "421 4.7.0 mx.test Error: STARTTLS after a command that could not be followed\r\n"

/*
 * Port 25 after plaintext commands went to Postfix: the tracker holds the
 * STARTTLS line; once every earlier command has its reply, it is allowed
 * outside a mail transaction (RFC 3207 4.2: the backend gets QUIT, the
 * client sluice's 220) and refused with Postfix's 503 inside one, after the
 * replies before it; the relay goes on behind the refusal.
 */
static void test_late_starttls_transaction(void **state)
{
	static const struct relay_step rset[] = {
		R("", "MAIL FROM:<a@b.example>\r\n", "MAIL FROM:<a@b.example>\r\n"),
		RH("250 2.1.0 Ok\r\n", "RSET\r\nSTARTTLS\r\nNOOP\r\n", "RSET\r\n"),
		RA("250 2.0.0 Ok\r\n", "", "", LATE_OK, PO_STARTTLS, "QUIT\r\n"),
	};
	static const struct relay_step in_txn[] = {
		RH("", "MAIL FROM:<a@b.example>\r\nSTARTTLS\r\nRCPT TO:<c@test.local>\r\n", "MAIL FROM:<a@b.example>\r\n"),
		RA("250 2.1.0 Ok\r\n", "", "", IN_TXN, 0, NULL),
		R("", "", "RCPT TO:<c@test.local>\r\n"),
		RH("250 2.1.5 Ok\r\n", "RSET\r\nSTARTTLS\r\n", "RSET\r\n"),
		RA("250 2.0.0 Ok\r\n", "", "", LATE_OK, PO_STARTTLS, "QUIT\r\n"),
	};
	/* A refused MAIL starts nothing. */
	static const struct relay_step refused_mail[] = {
		RH("", "MAIL FROM:<a@b.example>\r\nSTARTTLS\r\n", "MAIL FROM:<a@b.example>\r\n"),
		RA("553 5.1.8 Sender address rejected\r\n", "", "", LATE_OK, PO_STARTTLS,
		  "QUIT\r\n"),
	};
	/* The end of data ends it, whatever its reply; a STARTTLS in the
	 * content is content. */
	static const struct relay_step after_data[] = {
		R("", "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@test.local>\r\nDATA\r\n", "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@test.local>\r\nDATA\r\n"),
		RH("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data\r\n", "STARTTLS\r\n.\r\nSTARTTLS\r\n", "STARTTLS\r\n.\r\n"),
		RA("554 5.7.1 Rejected\r\n", "", "", LATE_OK, PO_STARTTLS, "QUIT\r\n"),
	};
	/* EHLO ends it too (RFC 5321 4.1.4); a multi-line reply is one. */
	static const struct relay_step ehlo[] = {
		R("", "MAIL FROM:<a@b.example>\r\n", "MAIL FROM:<a@b.example>\r\n"),
		RH("250 2.1.0 Ok\r\n", "EHLO c\r\nSTARTTLS\r\n", "EHLO c\r\n"),
		RH("250-backend.test\r\n", "", ""),
		RA("250 PIPELINING\r\n", "", "", LATE_OK, PO_STARTTLS, "QUIT\r\n"),
	};
	/* BDAT ... LAST ends it (RFC 3030). */
	static const struct relay_step bdat[] = {
		RH("", "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@test.local>\r\nBDAT 5 LAST\r\nhello"
		  "STARTTLS\r\n", "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@test.local>\r\n"
		  "BDAT 5 LAST\r\nhello"),
		RH("250 Ok\r\n250 Ok\r\n", "", ""),
		RA("250 2.0.0 Ok: queued\r\n", "", "", LATE_OK, PO_STARTTLS, "QUIT\r\n"),
	};
	/* With an argument: the syntax error, in its turn. */
	static const struct relay_step arg[] = {
		RH("", "NOOP\r\nSTARTTLS now\r\nNOOP\r\n", "NOOP\r\n"),
		RA("250 2.0.0 Ok\r\n", "", "", "501 5.5.4 Syntax: STARTTLS\r\n", 0, NULL),
		R("", "", "NOOP\r\n"),
	};
	/* tls: off: there is no STARTTLS here. */
	static const struct setup off = { CFG_TLS_OFF, false, postfix_caps };
	static const struct relay_step off_steps[] = {
		RH("", "NOOP\r\nSTARTTLS\r\n", "NOOP\r\n"),
		RA("250 2.0.0 Ok\r\n", "", "", "502 5.5.1 Error: command not implemented\r\n",
		  0, NULL),
	};

	RELAY(&starttls_caps, rset);
	RELAY(&starttls_caps, in_txn);
	RELAY(&starttls_caps, refused_mail);
	RELAY(&starttls_caps, after_data);
	RELAY(&starttls_caps, ehlo);
	RELAY(&starttls_caps, bdat);
	RELAY(&starttls_caps, arg);
	RELAY(&off, off_steps);
}

/* A hundred recipients pipelined take no room in the tracker: after the
 * transaction ends, STARTTLS is allowed as usual. */
static void test_late_starttls_many_recipients(void **state)
{
	static char rcpts[100 * 32], replies[100 * 16];
	size_t rl = 0, pl = 0;

	for (int i = 0; i < 100; i++) {
		rl += (size_t)snprintf(rcpts + rl, sizeof(rcpts) - rl, "RCPT TO:<r%d@test.local>\r\n", i);
		pl += (size_t)snprintf(replies + pl, sizeof(replies) - pl, "250 2.1.5 Ok\r\n");
	}
	const struct relay_step t[] = {
		R("", "MAIL FROM:<a@b.example>\r\n", "MAIL FROM:<a@b.example>\r\n"),
		R("250 2.1.0 Ok\r\n", rcpts, rcpts),
		RA(replies, "STARTTLS\r\n", "", IN_TXN, 0, NULL),
		RH("", "RSET\r\nSTARTTLS\r\n", "RSET\r\n"),
		RA("250 2.0.0 Ok\r\n", "", "", LATE_OK, PO_STARTTLS, "QUIT\r\n"),
	};

	RELAY(&starttls_caps, t);
}

/* Inside TLS nothing is held: the tracker rewrites, the backend answers. */
static void test_late_starttls_not_in_tls(void **state)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	struct proto_sess ps;
	uint8_t b[] = "NOOP\r\nSTARTTLS\r\n";

	memset(&ps, 0, sizeof(ps));
	ops->tls_started(&ps);
	assert_int_equal(ops->c2b_scan(&ps, b, sizeof(b) - 1), sizeof(b) - 1);
	assert_memory_equal(b, "NOOP\r\nXTLSDENY\r\n", sizeof(b) - 1);
	assert_false(ps.tls_held);
	assert_int_equal(ps.cmds, 2);
	ops->fini(&ps);
}

/* ---- limits.junk_commands and the idle timeout's silence ------------------ */

#define JUNK "421 4.7.0 mx.test Error: too many commands without progress\r\n"

/*
 * Commands that make no progress (NOOP, RSET, HELP, unknown verbs,
 * errors; EHLO/HELO past PROTO_REPEATS_FREE) are counted, good ones do
 * not reset the count, and the one past the limit is refused and closed.
 */
static void test_junk_limit(void **state)
{
	static const struct step t[] = {
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("NOOP", "250 2.0.0 Ok", 0),
		C("RSET", "250 2.0.0 Ok", 0),
		C("HELP", "214 ", 0),
		CXK("NOOP", JUNK, PO_CLOSE | PO_ERROR, CTR_junk_refused),
	};
	static const struct step unknown[] = {
		C("XYZZY", "502 5.5.2 ", 0),
		C("EHLO", "501 5.5.4 ", 0),  /* an error: no progress either */
		C("HELP", "214 ", 0),
		CXK("XYZZY", "502 5.5.2 Error: command not recognized\r\n" JUNK,
		    PO_CLOSE | PO_ERROR, CTR_junk_refused),
	};
	/* EHLO again and again: free PROTO_REPEATS_FREE times in all. */
	static const struct step ehlo[] = {
		C("EHLO a", "250-mx.test\r\n", 0),
		C("HELO b", "250 mx.test\r\n", 0),
		C("EHLO c", "250-mx.test\r\n", 0),
		C("EHLO d", "250-mx.test\r\n", 0),
		C("EHLO e", "250-mx.test\r\n", 0), /* junk 1 */
		C("EHLO f", "250-mx.test\r\n", 0), /* junk 2 */
		C("EHLO g", "250-mx.test\r\n", 0), /* junk 3 */
		CXK("EHLO h", JUNK, PO_CLOSE | PO_ERROR, CTR_junk_refused),
	};
	/* A client that makes progress is not held up by the count: the
	 * budget survives STARTTLS (as the error count does). */
	static const struct step progress[] = {
		C("NOOP", "250 ", 0),
		C("NOOP", "250 ", 0),
		C("EHLO client.example", "250-mx.test\r\n", 0),
		C("STARTTLS", "220 ", PO_STARTTLS),
		TLS_UP,
		C("NOOP", "250 ", 0),
		CXK("RSET", JUNK, PO_CLOSE | PO_ERROR, CTR_junk_refused),
	};

	transcript_junk_limit = 3;
	RUN(&starttls_caps, t);
	RUN(&starttls_caps, unknown);
	RUN(&starttls_caps, ehlo);
	RUN(&starttls_caps, progress);
	transcript_junk_limit = 0;
}

/* limits.junk_commands: 0 is no limit at all. */
static void test_junk_unlimited(void **state)
{
	static struct step t[300];

	for (unsigned i = 0; i < 300; i++)
		t[i] = (struct step)C("NOOP", "250 2.0.0 Ok", 0);
	transcript_junk_limit = 0;
	transcript_run(&TP, &starttls_caps, t, 300);
}

/* The relay's idle timeout (proto_timeout): a 421 between replies, even
 * in a mail transaction, but nothing inside a multi-line reply or a line
 * half-relayed (RFC 5321 4.2.1): there only the close. */
static void test_idle_timeout_mid_reply(void **state)
{
	static const struct idle_step t[] = {
		{ "", true },
		{ "250-backend.test\r\n250-PIPELINING\r\n", false },
		{ "250 8BITMIME\r\n", true },
		{ "250 2.1.0 O", false },  /* half a line */
		{ "k\r\n", true },
		{ "354 End data with <CR><LF>.<CR><LF>\r\n", true },
	};

	IDLE_TIMEOUT(false, NULL, "421 4.4.2 mx.test ", t);
}

/*
 * Finding 10: "BDAT 10x" is no chunk announcement (RFC 3030 2); the tracker
 * must not skip 10 bytes on a guess: those were "STARTTLS\r\n", which would
 * have gone to the backend unseen. It stops trusting the stream: the
 * STARTTLS behind it is refused and the session closed.
 */
static void test_relay_bdat_strict(void **state)
{
	static const struct relay_step bad_size[] = {
		RH("", "EHLO c\r\nBDAT 10x\r\nSTARTTLS\r\n", "EHLO c\r\nBDAT 10x\r\n"),
		/* in pipelining order: once BDAT has its reply */
		RH("250 mx.test\r\n", "", ""),
		RA("501 5.5.4 Syntax: BDAT count [LAST]\r\n", "", "", UNTRACKED,
		   PO_CLOSE | PO_ERROR, NULL),
	};
	static const struct relay_step huge[] = {
		RH("", "BDAT 99999999999999999999 LAST\r\nSTARTTLS\r\n",
		   "BDAT 99999999999999999999 LAST\r\n"),
		RA("501 5.5.4 Syntax error\r\n", "", "", UNTRACKED, PO_CLOSE | PO_ERROR, NULL),
	};
	static const struct relay_step no_size[] = {
		RH("", "BDAT\r\nNOOP\r\nSTARTTLS\r\n", "BDAT\r\nNOOP\r\n"),
		RA("501 5.5.4 Syntax error\r\n250 2.0.0 Ok\r\n", "", "", UNTRACKED,
		   PO_CLOSE | PO_ERROR, NULL),
	};
	/* Good ones still skip their chunk, LAST in any case, blanks around. */
	static const struct relay_step good[] = {
		R("", "BDAT 10 last \r\nSTARTTLS\r\n", "BDAT 10 last \r\nSTARTTLS\r\n"),
		R("", "BDAT 0 LAST\r\n", "BDAT 0 LAST\r\n"),
		RA("250 Ok\r\n250 Ok\r\n", "STARTTLS\r\n", "", LATE_OK, PO_STARTTLS, "QUIT\r\n"),
	};

	RELAY(&starttls_caps, bad_size);
	RELAY(&starttls_caps, huge);
	RELAY(&starttls_caps, no_size);
	RELAY(&starttls_caps, good);
}

/* ---- the trace header (listeners[].trace_header) ------------------------ */

/* The session's c2b pump (session/relay.c) in small: segments of client
 * bytes, each after the backend bytes it answers; what the tracker
 * approves goes to out, and where it stops for the engine's bytes,
 * c2b_inject's go first, replacing what it says. */
struct tstep {
	const char *backend, *in;
};

static size_t trace_run(struct proto_sess *ps, const struct proto_env *env,
			const struct tstep *t, size_t n, char *out, size_t room)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	static uint8_t buf[8192];
	size_t held = 0, o = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(t[i].in);

		if (t[i].backend)
			ops->b2c_scan(ps, (const uint8_t *)t[i].backend, strlen(t[i].backend));
		memcpy(buf + held, t[i].in, len);
		len += held;
		for (;;) {
			size_t went = ops->c2b_scan(ps, buf, len), skip = 0, w;

			assert_true(o + went < room);
			memcpy(out + o, buf, went);
			o += went;
			memmove(buf, buf + went, len - went);
			len -= went;
			if (!ps->inject_due)
				break;
			w = ops->c2b_inject(env, ps, buf, len, (uint8_t *)out + o, room - o, &skip);
			assert_false(ps->inject_due);
			o += w;
			memmove(buf, buf + skip, len - skip);
			len -= skip;
		}
		held = len;
	}
	out[o] = 0;
	return o;
}

#define TRACE_TLS "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\r\n" \
		  "\t key-exchange X25519"
#define TRACE_LINE(proto) \
	"Received: from client.example ([198.51.100.7])\r\n" \
	"\t(" TRACE_TLS ")\r\n" \
	"\tby mx.test (sluice) with " proto ";\r\n" \
	"\tSat, 05 Dec 2026 11:30:00 +0000\r\n"

static void test_trace_header(void **state)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	const struct proto_trace tr = { "198.51.100.7", TRACE_TLS, 1796470200LL };
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, &tr, false };
	struct proto_sess ps;
	static char out[16384], want[16384];
	/* Two messages by DATA (dot-stuffed lines stay as they are), then one
	 * by BDAT in two chunks after an AUTH: ESMTPSA, only the first chunk's
	 * line rewritten, and the tracker still knows where commands start. */
	static const struct tstep t[] = {
		{ NULL, "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\n"
			"RCPT TO:<b@test.local>\r\nDATA\r\n" },
		{ "250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n",
		  "Subject: one\r\n\r\n..leading dot\r\n.\r\n" },
		{ "250 queued\r\n", "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@test.local>\r\nDATA\r\n" },
		{ "250 ok\r\n250 ok\r\n354 go\r\n", "Subject: two\r\n\r\nbody\r\n.\r\n" },
		{ "250 queued\r\n", "AUTH PLAIN AGIAYw==\r\n" },
		{ "235 2.7.0 Authentication successful\r\n",
		  "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@test.local>\r\nBDAT 10\r\n0123456789"
		  "BDAT 4 LAST\r\nabcdSTARTTLS\r\n" },
	};
	size_t n;

	(void)state;
	memset(&ps, 0, sizeof(ps));
	ps.in_tls = true;
	ps.trace = true;
	n = trace_run(&ps, &env, t, sizeof(t) / sizeof(t[0]), out, sizeof(out));
	snprintf(want, sizeof(want), "%s%s%s%s%s%s%s%s%s%zu%s%s",
		 "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@test.local>\r\n"
		 "DATA\r\n",
		 TRACE_LINE("ESMTPS"), "Subject: one\r\n\r\n..leading dot\r\n.\r\n",
		 "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@test.local>\r\nDATA\r\n",
		 TRACE_LINE("ESMTPS"), "Subject: two\r\n\r\nbody\r\n.\r\n",
		 "AUTH PLAIN AGIAYw==\r\n",
		 "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@test.local>\r\n", "BDAT ",
		 10 + strlen(TRACE_LINE("ESMTPSA")), "\r\n",
		 TRACE_LINE("ESMTPSA") "0123456789BDAT 4 LAST\r\nabcdXTLSDENY\r\n");
	assert_string_equal(out, want);
	assert_int_equal(n, strlen(want));
	ops->fini(&ps);
}

/* Off (the default), nothing is added; a HELO client without TLS gets
 * "SMTP", and a name that could break the header is made safe. */
static void test_trace_header_plain(void **state)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	const struct proto_trace tr = { "IPv6:2001:db8::7", "", 1796470200LL };
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, &tr, false };
	struct proto_sess ps;
	static char out[4096];
	static const struct tstep t[] = {
		{ NULL, "HELO bad(name)\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" },
		{ "250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n", "x\r\n.\r\n" },
	};

	(void)state;
	memset(&ps, 0, sizeof(ps));
	ps.in_tls = true;
	trace_run(&ps, &env, t, 2, out, sizeof(out));
	assert_string_equal(out, "HELO bad(name)\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n");
	ops->fini(&ps);

	memset(&ps, 0, sizeof(ps));
	ps.in_tls = true;
	ps.trace = true;
	trace_run(&ps, &env, t, 2, out, sizeof(out));
	assert_string_equal(out, "HELO bad(name)\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"
			    "Received: from bad?name? ([IPv6:2001:db8::7])\r\n"
			    "\tby mx.test (sluice) with SMTP;\r\n"
			    "\tSat, 05 Dec 2026 11:30:00 +0000\r\nx\r\n.\r\n");
	ops->fini(&ps);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_banner),
		cmocka_unit_test(test_trace_header),
		cmocka_unit_test(test_trace_header_plain),
		cmocka_unit_test(test_ehlo_lists_backend_caps),
		cmocka_unit_test(test_ehlo_without_caps),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_ehlo_helo_need_a_name),
		cmocka_unit_test(test_starttls),
		cmocka_unit_test(test_starttls_not_available),
		cmocka_unit_test(test_tls_off),
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_required_refuses_before_tls),
		cmocka_unit_test(test_starttls_mode_auth_before_tls),
		cmocka_unit_test(test_mail_before_ehlo),
		cmocka_unit_test(test_plaintext_backend_opening),
		cmocka_unit_test(test_backend_greeting_refused),
		cmocka_unit_test(test_backend_malformed),
		cmocka_unit_test(test_tls_ehlo_filters_starttls_middle),
		cmocka_unit_test(test_tls_ehlo_filters_starttls_last),
		cmocka_unit_test(test_tls_second_starttls),
		cmocka_unit_test(test_tls_mail_before_ehlo),
		cmocka_unit_test(test_tls_forgets_ehlo),
		cmocka_unit_test(test_tls_ehlo_long_reply_stays_complete),
		cmocka_unit_test(test_ehlo_many_caps_reply_stays_complete),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_too_many_errors_too_long),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_backend_lost),
		cmocka_unit_test(test_relay_tracker),
		cmocka_unit_test(test_body_scan_matches_bytewise),
		cmocka_unit_test(test_relay_tracker_data_not_awaited),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_probe_no_keywords),
		cmocka_unit_test(test_probe_refused),
		cmocka_unit_test(test_junk_limit),
		cmocka_unit_test(test_junk_unlimited),
		cmocka_unit_test(test_idle_timeout_mid_reply),
		cmocka_unit_test(test_relay_bdat_strict),
		cmocka_unit_test(test_late_starttls_transaction),
		cmocka_unit_test(test_late_starttls_not_in_tls),
		cmocka_unit_test(test_late_starttls_many_recipients),
	};

	return cmocka_run_group_tests_name("smtp", tests, NULL, NULL);
}
