/*
 * Unit tests for the POP3 engine (dataplane/proto/pop3.c).
 *
 * Each scenario is a transcript: what the client (or, while the backend is
 * being opened, the backend) sends, and what sluice must answer: the start
 * of its reply (or all of it), the exact PO_ flags, and where it matters
 * the counter. The engine does no I/O, so the transcript is the whole test.
 *
 * Every line is handed over in a buffer of exactly its length, with no NUL
 * after it, as the session does: valgrind sees any read past the end.
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

#define POP3_LINE_MAX 512

/* ---- the engine under test (transcript.h runs the tables) -------------- */

static const char *const dovecot_caps[] = {
	"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", "USER",
	"SASL PLAIN LOGIN", NULL
};

#define CAPA_HEAD "+OK Capability list follows\r\n"
#define CAPA_BASE "CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n"
#define CAPA_AUTH "USER\r\nSASL PLAIN LOGIN\r\n"
#define ERR_AUTH "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n"
#define ERR_UNKNOWN "-ERR Unknown command.\r\n"
#define STLS_OK "+OK Begin TLS negotiation now.\r\n"

static const struct setup starttls_caps = { CFG_TLS_STARTTLS, true, dovecot_caps };
static const struct setup starttls_nocaps = { CFG_TLS_STARTTLS, true, NULL };
static const struct setup required_caps = { CFG_TLS_REQUIRED, true, dovecot_caps };
static const struct setup required_nocaps = { CFG_TLS_REQUIRED, true, NULL };
static const struct setup off_caps = { CFG_TLS_OFF, true, dovecot_caps };
static const struct setup implicit_caps = { CFG_TLS_IMPLICIT, true, dovecot_caps };
static const struct setup nocert_caps = { CFG_TLS_STARTTLS, false, dovecot_caps };

/*
 * A POP3 reply (RFC 1939 3): lines ending in CR LF, the first "+OK" or
 * "-ERR"; a multi-line one (CAPA) ends with "." alone. A reply cut short by
 * its buffer fails here. Two single-line replies (an error, then the
 * closing -ERR) are allowed.
 */
static bool reply_well_formed(const char *r, size_t len)
{
	const char *end = r + len, *line = r;
	bool multi = len >= 29 && !memcmp(r, "+OK Capability list follows\r\n", 29);

	if (!len || len >= PO_REPLY_MAX - 1 || memcmp(r + len - 2, "\r\n", 2))
		return false;
	if (multi)
		return len >= 3 + 29 && !memcmp(r + len - 5, "\r\n.\r\n", 5);
	while (line < end) {
		const char *crlf = memmem(line, (size_t)(end - line), "\r\n", 2);

		if (!crlf)
			return false;
		if (strncmp(line, "+OK", 3) && strncmp(line, "-ERR", 4))
			return false;
		line = crlf + 2;
	}
	return true;
}

static bool pop3_well_formed(const struct step *st, const struct proto_out *o)
{
	(void)st;
	return reply_well_formed(o->reply, o->reply_len);
}

static const struct transcript_proto TP = {
	.proto = CFG_PROTO_POP3, .name = "pop3", .line_max = POP3_LINE_MAX,
	.unit = "a whole POP3 reply", .well_formed = pop3_well_formed,
	.probe_request = "CAPA\r\n",
	.probe_quit = "QUIT\r\n",
};

/* ---- greeting and CAPA ----------------------------------------------------- */

static void test_greeting(void **state)
{
	static const struct step t[] = {
		GREETING("+OK mx.test POP3 ready.\r\n"),
	};
	static const struct step implicit[] = {
		TLS_UP,
		GREETING("+OK mx.test POP3 ready.\r\n"),
	};

	RUN(&starttls_caps, t);
	RUN(&required_nocaps, t);
	RUN(&implicit_caps, implicit);
}

/*
 * Before TLS: the backend's list without its STLS, STLS added at the end;
 * where TLS is required, USER and SASL hidden. After TLS: no STLS, USER and
 * SASL shown, in every mode.
 */
static void test_capa(void **state)
{
	static const struct step starttls[] = {
		CX("CAPA", CAPA_HEAD CAPA_BASE CAPA_AUTH "STLS\r\n.\r\n", 0),
		CX("capa", CAPA_HEAD CAPA_BASE CAPA_AUTH "STLS\r\n.\r\n", 0),
		CX("STLS", STLS_OK, PO_STARTTLS),
		TLS_UP,
		CX("CAPA", CAPA_HEAD CAPA_BASE CAPA_AUTH ".\r\n", 0),
	};
	static const struct step required[] = {
		CX("CAPA", CAPA_HEAD CAPA_BASE "STLS\r\n.\r\n", 0),
		CX("STLS", STLS_OK, PO_STARTTLS),
		TLS_UP,
		CX("CAPA", CAPA_HEAD CAPA_BASE CAPA_AUTH ".\r\n", 0),
	};
	static const struct step nocaps[] = {
		CX("CAPA", CAPA_HEAD "STLS\r\n.\r\n", 0),
		CX("STLS", STLS_OK, PO_STARTTLS),
		TLS_UP,
		CX("CAPA", CAPA_HEAD ".\r\n", 0),
	};
	static const struct step implicit[] = {
		TLS_UP,
		CX("CAPA", CAPA_HEAD CAPA_BASE CAPA_AUTH ".\r\n", 0),
	};
	static const struct step off[] = {
		CX("CAPA", CAPA_HEAD CAPA_BASE CAPA_AUTH ".\r\n", 0),
	};
	static const struct step nocert[] = {
		CX("CAPA", CAPA_HEAD CAPA_BASE CAPA_AUTH ".\r\n", 0),
	};
	/* Trailing blanks change nothing; an argument makes it unknown. */
	static const struct step blanks[] = {
		CX("CAPA  ", CAPA_HEAD CAPA_BASE CAPA_AUTH "STLS\r\n.\r\n", 0),
		CXK("CAPA x", ERR_UNKNOWN, 0, CTR_unknown_command),
	};

	RUN(&starttls_caps, starttls);
	RUN(&required_caps, required);
	RUN(&starttls_nocaps, nocaps);
	RUN(&required_nocaps, nocaps);
	RUN(&implicit_caps, implicit);
	RUN(&off_caps, off);
	RUN(&nocert_caps, nocert);
	RUN(&starttls_caps, blanks);
}

/* ---- what sluice answers itself ------------------------------------------ */

static void test_stls(void **state)
{
	static const struct step t[] = {
		CXK("STLS now", ERR_UNKNOWN, 0, CTR_unknown_command),  /* RFC 2595 4: no arguments */
		CX("STLS", STLS_OK, PO_STARTTLS),
	};
	static const struct step lower[] = {
		CX("stls  ", STLS_OK, PO_STARTTLS),
	};
	/* DESIGN.md 2.2: a second STLS inside TLS gets a clean error. */
	static const struct step inside[] = {
		CX("STLS", STLS_OK, PO_STARTTLS),
		TLS_UP,
		CXK("STLS", "-ERR Command not permitted when TLS active.\r\n", 0, CTR_starttls_in_tls),
		CXK("stls", "-ERR Command not permitted when TLS active.\r\n", 0, CTR_starttls_in_tls),
		CX("NOOP", "+OK\r\n", 0),
	};
	static const struct step implicit[] = {
		TLS_UP,
		CXK("STLS", "-ERR Command not permitted when TLS active.\r\n", 0, CTR_starttls_in_tls),
	};
	static const struct step off[] = {
		CXK("STLS", ERR_UNKNOWN, 0, CTR_unknown_command),
		C("USER bob", NULL, PO_BACKEND),
	};
	static const struct step nocert[] = {
		CX("STLS", "-ERR [SYS/TEMP] TLS is not available.\r\n", 0),
		CX("NOOP", "+OK\r\n", 0),
	};

	RUN(&starttls_caps, t);
	RUN(&required_caps, lower);
	RUN(&starttls_caps, inside);
	RUN(&required_caps, inside);
	RUN(&implicit_caps, implicit);
	RUN(&off_caps, off);
	RUN(&nocert_caps, nocert);
}

static void test_simple_commands(void **state)
{
	static const struct step t[] = {
		CX("NOOP", "+OK\r\n", 0),
		CX("noop", "+OK\r\n", 0),
		CX("NoOp", "+OK\r\n", 0),
		CX("NOOP   ", "+OK\r\n", 0),           /* trailing blanks change nothing */
		CX("NOOP \t", "+OK\r\n", 0),
		CXK("NOOP x", ERR_UNKNOWN, 0, CTR_unknown_command),
		CX("QUIT", "+OK Logging out.\r\n", PO_CLOSE),
	};
	static const struct step lower_quit[] = {
		CX("quit ", "+OK Logging out.\r\n", PO_CLOSE),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, lower_quit);
}

/*
 * A tab right after the verb is a trailing blank too: pop3.c trims " " and
 * "\t" at the end ("Trailing blanks after a verb change nothing"), but only
 * after it has refused a verb followed by anything other than a space.
 */
static void test_trailing_tab(void **state)
{
	static const struct step t[] = {
		CX("NOOP\t", "+OK\r\n", 0),
		CX("STLS\t", STLS_OK, PO_STARTTLS),
	};

	RUN(&starttls_caps, t);
}

static void test_unknown_and_bad_lines(void **state)
{
	static const struct step t[] = {
		CXK("XYZZY", ERR_UNKNOWN, 0, CTR_unknown_command),
		CXK("STLSX", ERR_UNKNOWN, 0, CTR_unknown_command),
		CXK("RETR 1", ERR_UNKNOWN, 0, CTR_unknown_command),     /* TRANSACTION state */
		CXK("LIST", ERR_UNKNOWN, 0, CTR_unknown_command),
		CXK("", ERR_UNKNOWN, 0, CTR_bad_syntax),                /* empty line */
		CXK(" NOOP", ERR_UNKNOWN, 0, CTR_bad_syntax),
		CXK("NO1OP", ERR_UNKNOWN, 0, CTR_bad_syntax),
		CXK("ABCDEFGHIJKLMNOPQRSTUVWXYZ", ERR_UNKNOWN, 0, CTR_bad_syntax),
		CX("NOOP", "+OK\r\n", 0),
	};
	static const struct step nul[] = {
		CXK("", ERR_UNKNOWN, 0, CTR_bad_syntax),
		CNUL("NOOP\0", "-ERR Bad command syntax.\r\n", 0),
		CNUL("\0", "-ERR Bad command syntax.\r\n", 0),
		CNUL("USER b\0b", "-ERR Bad command syntax.\r\n", 0),
		CNUL("STLS\0", "-ERR Bad command syntax.\r\n", 0),
		{ .kind = S_TOO_LONG, .expect_reply_prefix = "-ERR Command line too long.\r\n",
		  .exact = true, .check_ctr = true, .ctr = CTR_line_too_long },
		CX("NOOP", "+OK\r\n", 0),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, nul);
}

/* ---- login ------------------------------------------------------------------ */

/* tls: required (DESIGN.md 2.6): USER, PASS, APOP, AUTH refused before TLS. */
static void test_login_required(void **state)
{
	static const struct step t[] = {
		GREETING("+OK mx.test POP3 ready.\r\n"),
		CXK("USER bob", ERR_AUTH, 0, CTR_refused_before_tls),
		CXK("PASS secret", ERR_AUTH, 0, CTR_refused_before_tls),
		CXK("APOP bob c4c9334bac560ecc979e58001b3e22fb", ERR_AUTH, 0, CTR_refused_before_tls),
		CXK("AUTH PLAIN", ERR_AUTH, 0, CTR_refused_before_tls),
		CXK("AUTH PLAIN AGJvYgBzZWNyZXQ=", ERR_AUTH, 0, CTR_refused_before_tls),
		CXK("user bob", ERR_AUTH, 0, CTR_refused_before_tls),
		CXK("AUTH", ERR_AUTH, 0, CTR_refused_before_tls),
		CX("STLS", STLS_OK, PO_STARTTLS),
		TLS_UP,
		C("USER bob", NULL, PO_BACKEND),
	};
	static const char *const after[] = { "PASS secret", "APOP bob x", "AUTH PLAIN", "auth" };

	RUN(&required_caps, t);
	RUN(&required_nocaps, t);
	for (size_t i = 0; i < sizeof(after) / sizeof(after[0]); i++) {
		const struct step s[] = {
			TLS_UP,
			C(after[i], NULL, PO_BACKEND),
		};

		RUN(&required_caps, s);
		RUN(&implicit_caps, s);
	}
}

/* tls: starttls (RFC 7435): the backend takes the login, in or out of TLS. */
static void test_login_starttls_mode(void **state)
{
	static const char *const cmds[] = {
		"USER bob", "user bob", "PASS secret", "APOP bob c4c9334bac560ecc979e58001b3e22fb",
		"AUTH PLAIN", "AUTH PLAIN AGJvYgBzZWNyZXQ=", "AUTH",
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const struct step plain[] = {
			C(cmds[i], NULL, PO_BACKEND),
		};
		const struct step in_tls[] = {
			CX("STLS", STLS_OK, PO_STARTTLS),
			TLS_UP,
			C(cmds[i], NULL, PO_BACKEND),
		};

		RUN(&starttls_caps, plain);
		RUN(&starttls_caps, in_tls);
		RUN(&off_caps, plain);
	}
}

/* ---- errors -------------------------------------------------------------- */

static void test_too_many_errors(void **state)
{
	struct step t[11];
	unsigned n = 0;

	for (int i = 0; i < 9; i++) {
		struct step s;

		switch (i % 4) {
		case 0: s = (struct step)C("XYZZY", "-ERR ", 0); break;
		case 1: s = (struct step)CNUL("NO\0OP", "-ERR ", 0); break;
		case 2: s = (struct step)TOO_LONG("-ERR ", 0); break;
		default: s = (struct step)C("", "-ERR ", 0); break;
		}
		t[n++] = s;
		if (i == 4) /* good commands do not reset the count */
			t[n++] = (struct step)CX("NOOP", "+OK\r\n", 0);
	}
	t[n++] = (struct step)CXK("XYZZY", ERR_UNKNOWN "-ERR Too many bad commands.\r\n",
				   PO_CLOSE | PO_ERROR, CTR_too_many_errors);
	transcript_run(&TP, &starttls_caps, t, n);
}

/* Refused logins count too: the tenth closes. */
static void test_too_many_errors_logins(void **state)
{
	struct step t[10];

	for (int i = 0; i < 9; i++)
		t[i] = (struct step)CXK("USER bob", ERR_AUTH, 0, CTR_refused_before_tls);
	t[9] = (struct step)CXK("USER bob", ERR_AUTH "-ERR Too many bad commands.\r\n",
				PO_CLOSE | PO_ERROR, CTR_too_many_errors);
	transcript_run(&TP, &required_caps, t, 10);
}

/* ---- the backend's opening and sluice's own endings -------------------------- */

static void test_backend_opening(void **state)
{
	static const struct step t[] = {
		GREETING("+OK mx.test POP3 ready.\r\n"),
		C("USER bob", NULL, PO_BACKEND),
		/* The backend's greeting is swallowed; the held USER goes. */
		B("+OK Dovecot ready. <1896.697170952@dbc.mtview.ca.us>", NULL,
		  PO_FLUSH_HELD | PO_RELAY),
	};
	static const struct step bare[] = {
		TLS_UP,
		C("AUTH PLAIN", NULL, PO_BACKEND),
		B("+OK", NULL, PO_FLUSH_HELD | PO_RELAY),
	};

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, bare);
}

static void test_backend_refused(void **state)
{
	static const char *const bad[] = {
		"-ERR [SYS/TEMP] Server busy", "-ERR", "* OK IMAP4rev1 ready", "220 smtp ESMTP",
		"+O", "", "garbage",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct step t[] = {
			C("USER bob", NULL, PO_BACKEND),
			BXK(bad[i], "-ERR [SYS/TEMP] mx.test backend not available, try again later.\r\n",
			    PO_FAIL | PO_CLOSE, CTR_backend_refused),
		};

		RUN(&starttls_caps, t);
	}
}

static void test_timeout_unavailable_lost(void **state)
{
	static const struct step t[] = {
		GREETING("+OK mx.test POP3 ready.\r\n"),
		TIMEOUT("-ERR Disconnected for inactivity.\r\n", PO_CLOSE),
	};
	static const struct step unavailable[] = {
		C("USER bob", NULL, PO_BACKEND),
		UNAVAILABLE("-ERR [SYS/TEMP] mx.test backend not available, try again later.\r\n",
			    PO_CLOSE),
	};
	static const char *const lasts[] = { "+OK 2 320", "+OK 120 octets", "" };

	RUN(&starttls_caps, t);
	RUN(&starttls_caps, unavailable);
	/* A lost backend gets no words: the client may be inside RETR. */
	transcript_lost_is_silent(&TP, lasts, sizeof(lasts) / sizeof(lasts[0]));
}

/*
 * A backend with a long CAPA (the probe keeps 32 lines of up to 8 KiB):
 * the answer must still end with ".", or the client waits for it for ever.
 */
static void test_capa_long_list_stays_whole(void **state)
{
	struct proto_out o;

	transcript_many_caps(&TP, " with a long parameter list "
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "CAPA", NULL, &o);
	if (!reply_well_formed(o.reply, o.reply_len))
		fail_msg("CAPA answer of %zu bytes does not end with \".\"; it ends \"%.*s\"",
			 o.reply_len, 60, o.reply_len > 60 ? o.reply + o.reply_len - 60 : o.reply);
}

/* ---- the relay tracker (client -> backend) --------------------------------- */

/* Segments of client bytes for TRACK (transcript.h); no backend bytes
 * between them (NULL): the POP3 tracker reads only the client's. */
static void test_relay_tracker(void **state)
{
	static const struct seg stls[] = {
		{ NULL, "STLS\r\n", "XTLS\r\n" },
		{ NULL, "stls\r\nNOOP\r\n", "XTLS\r\nNOOP\r\n" },
		{ NULL, "Stls\n", "XTLS\n" },                    /* bare LF */
		{ NULL, "USER bob\r\nSTLS\r\nPASS x\r\n", "USER bob\r\nXTLS\r\nPASS x\r\n" },
	};
	/* Not STLS commands. */
	static const struct seg others[] = {
		{ NULL, "STLSX\r\n", "STLSX\r\n" },
		{ NULL, "XSTLS\r\n", "XSTLS\r\n" },
		{ NULL, "STL\r\n", "STL\r\n" },
		{ NULL, "USER STLS\r\n", "USER STLS\r\n" },
		{ NULL, "RETR 1\r\n", "RETR 1\r\n" },
	};
	/* An unfinished line is held back until its end is known. */
	static const struct seg held[] = {
		{ NULL, "NOOP\r\nST", "NOOP\r\n" },
		{ NULL, "L", "" },
		{ NULL, "S", "" },
		{ NULL, "\r", "" },
		{ NULL, "\n", "XTLS\r\n" },
		{ NULL, "LIST\r\nSTLS", "LIST\r\n" },
		{ NULL, "\r\n", "XTLS\r\n" },
	};

	TRACK(stls);
	TRACK(others);
	TRACK(held);
}

/* A line over the limit without its end passes as it comes; then lines again. */
static void test_relay_tracker_long_line(void **state)
{
	static char longline[700];
	struct seg t[4];

	memset(longline, 'a', sizeof(longline) - 1);
	memcpy(longline, "AUTH ", 5);
	t[0] = (struct seg){ NULL, longline, longline };
	t[1] = (struct seg){ NULL, "STLS", "STLS" };        /* still the long line */
	t[2] = (struct seg){ NULL, "\r\nSTLS\r\n", "\r\nXTLS\r\n" };
	t[3] = (struct seg){ NULL, "NOOP\r\n", "NOOP\r\n" };
	transcript_track(&TP, "long line", t, 4);
}

/*
 * Dovecot's pop3-login reads the command name up to the first blank and
 * runs cmd_stls() whatever follows (src/pop3-login/client.c,
 * client_read_cmd_name): "STLS x" and "STLS " start TLS with the backend.
 * sluice's own engine takes "STLS " as STLS too. Rewriting them is harmless
 * for any server: STLS takes no arguments (RFC 2595 4).
 */
static void test_relay_tracker_stls_with_arguments(void **state)
{
	static const struct seg args[] = {
		{ NULL, "STLS foo\r\n", "XTLS foo\r\n" },
	};
	static const struct seg blank[] = {
		{ NULL, "STLS \r\n", "XTLS \r\n" },
	};

	TRACK(args);
	TRACK(blank);
}

/* ---- the capability probe ---------------------------------------------------- */

static void test_probe(void **state)
{
	static const struct probe_step t[] = {
		{ "+OK Dovecot ready.", 1 },
		{ "+OK", 0 },
		{ "CAPA", 0 }, { "TOP", 0 }, { "UIDL", 0 }, { "RESP-CODES", 0 },
		{ "PIPELINING", 0 }, { "AUTH-RESP-CODE", 0 }, { "STLS", 0 }, { "USER", 0 },
		{ "SASL PLAIN LOGIN", 0 },
		{ ".", 2 },
	};
	struct proto_caps *caps = transcript_probe(&TP, t, sizeof(t) / sizeof(t[0]));
	const struct proto_ops *ops = proto_get(CFG_PROTO_POP3);
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, caps, 0, NULL, false };
	struct proto_sess ps;
	struct proto_out o;
	static const char want[] = CAPA_HEAD CAPA_BASE CAPA_AUTH "STLS\r\n.\r\n";

	assert_int_equal(caps->n, 9);
	for (unsigned i = 0; i < 9; i++)
		assert_string_equal(caps->item[i], dovecot_caps[i]);
	/* And what the client is told from them. */
	memset(&ps, 0, sizeof(ps));
	po_reset(&o);
	ops->client_line(&env, &ps, "CAPA", 4, false, &o);
	if (ops->fini)
		ops->fini(&ps);
	assert_int_equal(o.reply_len, strlen(want));
	assert_memory_equal(o.reply, want, o.reply_len);
	caps_free(caps);
}

/* A server without CAPA: complete, nothing learned. */
static void test_probe_no_capa(void **state)
{
	static const struct probe_step t[] = {
		{ "+OK POP3 server ready", 1 },
		{ "-ERR Unknown command", 2 },
	};
	struct proto_caps *caps = transcript_probe(&TP, t, 2);

	assert_int_equal(caps->n, 0);
	caps_free(caps);
}

static void test_probe_limits(void **state)
{
	struct probe_step t[CAPS_MAX + 8];
	static char lines[CAPS_MAX + 4][16];
	size_t n = 0;
	struct proto_caps *caps;

	t[n++] = (struct probe_step){ "+OK ready", 1 };
	t[n++] = (struct probe_step){ "+OK Capability list follows", 0 };
	t[n++] = (struct probe_step){ "", 0 };           /* an empty line: kept out */
	for (int i = 0; i < CAPS_MAX + 4; i++) {
		snprintf(lines[i], sizeof(lines[i]), "X-CAP-%02d", i);
		t[n++] = (struct probe_step){ lines[i], 0 };
	}
	t[n++] = (struct probe_step){ ".", 2 };
	caps = transcript_probe(&TP, t, n);
	assert_int_equal(caps->n, CAPS_MAX);
	assert_string_equal(caps->item[0], "X-CAP-00");
	assert_string_equal(caps->item[CAPS_MAX - 1], "X-CAP-31");
	caps_free(caps);
}

static void test_probe_refused(void **state)
{
	static const struct probe_step err[] = { { "-ERR [SYS/TEMP] busy", -1 } };
	static const struct probe_step imap[] = { { "* OK IMAP4rev1", -1 } };
	static const struct probe_step empty[] = { { "", -1 } };

	assert_int_equal(PROBE_COUNT(err), 0);
	PROBE_COUNT(imap);
	PROBE_COUNT(empty);
}

/* ---- STLS in the plaintext relay (DESIGN.md rule 2.7) -------------------- */

#define AUTHED "-ERR STLS is not valid after login.\r\n"

/*
 * USER went to Dovecot in plaintext: the tracker holds the STLS; once every
 * earlier command has its answer it is allowed in the AUTHORIZATION state
 * (RFC 2595 4: the backend gets QUIT, the client sluice's +OK) and refused
 * with -ERR after a +OK to PASS, APOP or AUTH. Multi-line answers are read
 * to their "." (a body line "+OK" is no answer).
 */
static void test_late_stls(void **state)
{
	static const struct relay_step refused_user[] = {
		RH("", "USER bob\r\nSTLS\r\nCAPA\r\n", "USER bob\r\n"),
		RA("-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) "
		  "connections.\r\n", "", "", STLS_OK, PO_STARTTLS, "QUIT\r\n"),
	};
	static const struct relay_step after_pass[] = {
		R("", "USER bob\r\nPASS secret\r\n", "USER bob\r\nPASS secret\r\n"),
		RA("+OK\r\n+OK Logged in.\r\n", "STLS\r\nSTAT\r\n", "", AUTHED, 0, NULL),
		R("", "", "STAT\r\n"),
	};
	static const struct relay_step multiline[] = {
		RH("", "CAPA\r\nUSER bob\r\nSTLS\r\n", "CAPA\r\nUSER bob\r\n"),
		RH("+OK\r\n+OK not an answer\r\n-ERR nor this\r\n.\r\n", "", ""),
		RA("+OK\r\n", "", "", STLS_OK, PO_STARTTLS, "QUIT\r\n"),
	};
	static const struct relay_step sasl[] = {
		R("", "AUTH PLAIN\r\n", "AUTH PLAIN\r\n"),
		R("+ \r\n", "AGJvYgBzZWNyZXQ=\r\n", "AGJvYgBzZWNyZXQ=\r\n"),
		RA("+OK Logged in.\r\n", "STLS\r\n", "", AUTHED, 0, NULL),
	};
	/* With an initial response: no STLS behind it before its answer (the
	 * line would be a SASL response); after a failure, STLS works. */
	static const struct relay_step sasl_failed[] = {
		R("", "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n"),
		RA("-ERR [AUTH] Authentication failed.\r\n", "STLS\r\n", "", STLS_OK,
		  PO_STARTTLS, "QUIT\r\n"),
	};

	RELAY(&starttls_caps, refused_user);
	RELAY(&starttls_caps, after_pass);
	RELAY(&starttls_caps, multiline);
	RELAY(&starttls_caps, sasl);
	RELAY(&starttls_caps, sasl_failed);
}

/* ---- limits.junk_commands and the idle timeout ---------------------------- */

#define JUNK "-ERR Too many commands without progress.\r\n"

static void test_junk_limit(void **state)
{
	static const struct step t[] = {
		C("CAPA", "+OK", 0),
		C("NOOP", "+OK", 0),
		C("STAT", "-ERR ", 0),  /* unknown before login: junk */
		C("NOOP", "+OK", 0),
		CXK("NOOP", JUNK, PO_CLOSE | PO_ERROR, CTR_junk_refused),
	};

	transcript_junk_limit = 3;
	RUN(&starttls_caps, t);
	transcript_junk_limit = 0;
}

/* Finding 9: the relay's idle timeout says -ERR between responses only,
 * never inside a RETR's multi-line answer (it would be message data). */
static void test_idle_timeout_mid_retr(void **state)
{
	static const struct idle_step t[] = {
		{ "", true },
		{ "+OK 40 octets\r\n", false },
		{ "Subject: hello\r\n\r\nbody\r\n", false },
		{ ".\r\n", true },
		{ "+OK half", false },
	};

	IDLE_TIMEOUT(true, "RETR 1\r\n", "-ERR ", t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting),
		cmocka_unit_test(test_capa),
		cmocka_unit_test(test_stls),
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_trailing_tab),
		cmocka_unit_test(test_unknown_and_bad_lines),
		cmocka_unit_test(test_login_required),
		cmocka_unit_test(test_login_starttls_mode),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_too_many_errors_logins),
		cmocka_unit_test(test_backend_opening),
		cmocka_unit_test(test_backend_refused),
		cmocka_unit_test(test_timeout_unavailable_lost),
		cmocka_unit_test(test_capa_long_list_stays_whole),
		cmocka_unit_test(test_relay_tracker),
		cmocka_unit_test(test_relay_tracker_long_line),
		cmocka_unit_test(test_relay_tracker_stls_with_arguments),
		cmocka_unit_test(test_probe),
		cmocka_unit_test(test_probe_no_capa),
		cmocka_unit_test(test_probe_limits),
		cmocka_unit_test(test_probe_refused),
		cmocka_unit_test(test_late_stls),
		cmocka_unit_test(test_junk_limit),
		cmocka_unit_test(test_idle_timeout_mid_retr),
	};

	return cmocka_run_group_tests_name("pop3", tests, NULL, NULL);
}
