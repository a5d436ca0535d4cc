/*
 * Drain: where the engines let sluice say goodbye (proto_goodbye, each
 * engine's ->goodbye). A scenario is a relayed conversation, step by step:
 * client bytes through the c2b tracker, then backend bytes through the b2c
 * tracker, then the question "goodbye now?" with the answer expected: not
 * yet, or the protocol's goodbye for the client and exactly these bytes
 * for the backend (NULL: none, the backend is only closed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

struct gstep {
	const char *client;     /* through ->c2b_scan (all of it must pass) */
	const char *backend;    /* through ->b2c_scan */
	bool safe;              /* goodbye now? */
	const char *to_backend; /* when safe: the backend's polite end, or NULL */
};

/* Client and backend bytes, then: no goodbye yet. */
#define NOT_YET(c, b)  { .client = (c), .backend = (b), .safe = false }
/* ... then: the goodbye, and these bytes for the backend (NULL: none). */
#define BYE(c, b, tb)  { .client = (c), .backend = (b), .safe = true, .to_backend = (tb) }

static const struct proto_env env = {
	.hostname = "mx.test",
	.tls_mode = CFG_TLS_STARTTLS,
	.tls_available = true,
};

/* Play the relayed scenario t on a fresh session inside TLS; the goodbye,
 * when expected, starts with word. */
static void play(enum cfg_proto p, const struct gstep *t, size_t n, const char *word)
{
	const struct proto_ops *ops = proto_get(p);
	struct proto_sess ps;

	memset(&ps, 0, sizeof(ps));
	ops->tls_started(&ps);
	for (size_t i = 0; i < n; i++) {
		struct proto_out o;
		uint8_t buf[512];
		size_t len = strlen(t[i].client);
		bool safe;

		memcpy(buf, t[i].client, len);
		assert_int_equal(ops->c2b_scan(&ps, buf, len), len);
		ops->b2c_scan(&ps, (const uint8_t *)t[i].backend, strlen(t[i].backend));
		po_reset(&o);
		safe = proto_goodbye(ops, &env, &ps, true, &o);
		if (safe != t[i].safe)
			fail_msg("%s step %zu: goodbye %s, expected %s", ops->name, i,
				 safe ? "said" : "refused", t[i].safe ? "said" : "refused");
		if (!safe) {
			assert_int_equal(o.reply_len, 0);
			assert_int_equal(o.to_backend_len, 0);
			continue;
		}
		assert_true(o.flags & PO_CLOSE);
		assert_int_equal(o.counter, CTR_drain_goodbye);
		o.reply[o.reply_len] = 0;
		assert_true(!strncmp(o.reply, word, strlen(word)));
		assert_non_null(strstr(o.reply, "mx.test"));
		assert_true(o.reply_len >= 2 && !memcmp(o.reply + o.reply_len - 2, "\r\n", 2));
		if (!t[i].to_backend) {
			assert_int_equal(o.to_backend_len, 0);
		} else {
			assert_int_equal(o.to_backend_len, strlen(t[i].to_backend));
			assert_memory_equal(o.to_backend, t[i].to_backend, o.to_backend_len);
		}
		return; /* said: the session ends there */
	}
}

#define PLAY(p, t, word) play(p, t, sizeof(t) / sizeof(t[0]), word)

/* In sluice's own dialogue every engine may say goodbye between lines. */
static void test_dialogue(void **state)
{
	static const enum cfg_proto all[] = { CFG_PROTO_SMTP, CFG_PROTO_IMAP, CFG_PROTO_POP3 };
	static const char *const word[] = { "421 4.3.2 mx.test ", "* BYE mx.test ",
					    "-ERR [SYS/TEMP] mx.test " };

	for (unsigned i = 0; i < 3; i++) {
		const struct proto_ops *ops = proto_get(all[i]);
		struct proto_sess ps;
		struct proto_out o;

		memset(&ps, 0, sizeof(ps));
		po_reset(&o);
		assert_true(proto_goodbye(ops, &env, &ps, false, &o));
		o.reply[o.reply_len] = 0;
		assert_true(!strncmp(o.reply, word[i], strlen(word[i])));
		assert_int_equal(o.to_backend_len, 0); /* no backend yet */
		assert_true(o.flags & PO_CLOSE);
	}
}

/* SMTP: never inside MAIL .. end of data, never with a reply in flight. */
static void test_smtp_transaction(void **state)
{
	static const struct gstep t[] = {
		NOT_YET("MAIL FROM:<a@b.example>\r\n", ""),    /* its reply due */
		NOT_YET("", "250 2.1.0 Ok\r\n"),                /* in the transaction */
		NOT_YET("RCPT TO:<c@test.local>\r\nDATA\r\n", "250 2.1.5 Ok\r\n354 go\r\n"),
		NOT_YET("Subject: x\r\n\r\n.line\r\n", ""),      /* the body */
		NOT_YET(".\r\n", ""),                           /* end of data: its reply due */
		BYE("", "250 2.0.0 Ok: queued as 1234\r\n", "QUIT\r\n"),
	};

	PLAY(CFG_PROTO_SMTP, t, "421 4.3.2 mx.test ");
}

static void test_smtp_idle_and_rset(void **state)
{
	static const struct gstep idle[] = {
		BYE("", "", "QUIT\r\n"),
	};
	static const struct gstep rset[] = {
		NOT_YET("MAIL FROM:<a@b.example>\r\n", "250 2.1.0 Ok\r\n"),
		NOT_YET("RSET\r\n", ""),
		BYE("", "250 2.0.0 Ok\r\n", "QUIT\r\n"),     /* RSET ended it */
	};
	static const struct gstep refused_mail[] = {
		BYE("MAIL FROM:<a@b.example>\r\n", "553 5.7.1 no\r\n", "QUIT\r\n"),
	};
	/* A reply line half-relayed, a command half-sent: not yet. */
	static const struct gstep halves[] = {
		NOT_YET("NOOP\r\n", "250 2.0"),
		BYE("", ".0 Ok\r\n", "QUIT\r\n"),
	};
	static const struct gstep bdat[] = {
		NOT_YET("MAIL FROM:<a@b.example>\r\n", "250 Ok\r\n"),
		NOT_YET("RCPT TO:<c@test.local>\r\n", "250 Ok\r\n"),
		NOT_YET("BDAT 5 LAST\r\nhello", ""),
		BYE("", "250 2.0.0 Ok: queued\r\n", "QUIT\r\n"),
	};

	PLAY(CFG_PROTO_SMTP, idle, "421 4.3.2 ");
	PLAY(CFG_PROTO_SMTP, rset, "421 4.3.2 ");
	PLAY(CFG_PROTO_SMTP, refused_mail, "421 4.3.2 ");
	PLAY(CFG_PROTO_SMTP, halves, "421 4.3.2 ");
	PLAY(CFG_PROTO_SMTP, bdat, "421 4.3.2 ");
}

/* IMAP: no command in flight, no literal half-relayed; LOGOUT ends the
 * backend. */
static void test_imap(void **state)
{
	static const struct gstep selected[] = {
		NOT_YET("a1 SELECT INBOX\r\n", "* 3 EXISTS\r\n"),  /* untagged only */
		BYE("", "a1 OK [READ-WRITE] Select completed.\r\n", "b LOGOUT\r\n"),
	};
	static const struct gstep literal[] = {
		NOT_YET("a2 FETCH 1 BODY[]\r\n", "* 1 FETCH (BODY[] {7}\r\nhel"),
		NOT_YET("", "lo\r\n)\r\n"),                   /* the response goes on */
		BYE("", "a2 OK Fetch completed.\r\n", "b LOGOUT\r\n"),
	};
	/* IDLE waits on the client: once its "+" came, BYE may come (RFC
	 * 2177), and the backend is told DONE, then LOGOUT. */
	static const struct gstep idle[] = {
		NOT_YET("a3 IDLE\r\n", ""),                        /* its "+" due */
		BYE("", "+ idling\r\n", "DONE\r\nb LOGOUT\r\n"),
	};
	static const struct gstep idle_untagged[] = {
		NOT_YET("a3 IDLE\r\n", "+ idling\r\n* 4 EXI"),     /* half a line */
		BYE("", "STS\r\n", "DONE\r\nb LOGOUT\r\n"),
	};
	/* DONE sent: IDLE's reply is due, even if its "+" comes after. */
	static const struct gstep idle_done[] = {
		NOT_YET("a3 IDLE\r\nDONE\r\n", "+ idling\r\n"),
		BYE("", "a3 OK Idle completed.\r\n", "b LOGOUT\r\n"),
	};
	/* An earlier command's reply is not IDLE's: the "+" still counts. */
	static const struct gstep idle_pipelined[] = {
		NOT_YET("a4 NOOP\r\na5 IDLE\r\n", "a4 OK NOOP completed.\r\n"),
		BYE("", "+ idling\r\n", "DONE\r\nb LOGOUT\r\n"),
	};

	PLAY(CFG_PROTO_IMAP, selected, "* BYE mx.test ");
	PLAY(CFG_PROTO_IMAP, literal, "* BYE ");
	PLAY(CFG_PROTO_IMAP, idle, "* BYE ");
	PLAY(CFG_PROTO_IMAP, idle_untagged, "* BYE ");
	PLAY(CFG_PROTO_IMAP, idle_done, "* BYE ");
	PLAY(CFG_PROTO_IMAP, idle_pipelined, "* BYE ");
}

/* POP3: never inside a multi-line answer; after login no QUIT to the
 * backend (it would commit the client's DELEs). */
static void test_pop3(void **state)
{
	static const struct gstep before_login[] = {
		NOT_YET("USER bob\r\n", ""),
		BYE("", "+OK\r\n", "QUIT\r\n"),
	};
	static const struct gstep logged_in[] = {
		BYE("USER bob\r\nPASS secret\r\n", "+OK\r\n+OK Logged in.\r\n", NULL),
	};
	static const struct gstep pass_in_flight[] = {
		NOT_YET("PASS secret\r\n", ""),
		BYE("", "+OK Logged in.\r\n", NULL),
	};
	static const struct gstep retr_body[] = {
		NOT_YET("RETR 1\r\n", "+OK 20 octets\r\nSubject: x\r\n"),
		NOT_YET("", "\r\nbody\r\n"),
		BYE("", ".\r\n", "QUIT\r\n"),               /* (never logged in here) */
	};

	PLAY(CFG_PROTO_POP3, before_login, "-ERR [SYS/TEMP] mx.test ");
	PLAY(CFG_PROTO_POP3, logged_in, "-ERR ");
	PLAY(CFG_PROTO_POP3, pass_in_flight, "-ERR ");
	PLAY(CFG_PROTO_POP3, retr_body, "-ERR ");
}

/* A STARTTLS held in the plaintext relay (rule 2.7) waits for the session:
 * no goodbye over it. */
static void test_held_starttls(void **state)
{
	const struct proto_ops *ops = proto_get(CFG_PROTO_SMTP);
	struct proto_sess ps;
	struct proto_out o;
	uint8_t b[] = "STARTTLS\r\n";

	memset(&ps, 0, sizeof(ps));
	assert_int_equal(ops->c2b_scan(&ps, b, sizeof(b) - 1), 0);
	assert_true(ps.tls_held);
	po_reset(&o);
	assert_false(proto_goodbye(ops, &env, &ps, true, &o));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dialogue),
		cmocka_unit_test(test_smtp_transaction),
		cmocka_unit_test(test_smtp_idle_and_rset),
		cmocka_unit_test(test_imap),
		cmocka_unit_test(test_pop3),
		cmocka_unit_test(test_held_starttls),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
