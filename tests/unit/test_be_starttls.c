/*
 * STARTTLS with the backend (proto/be_starttls.c), as transcripts: what
 * the backend says, and what sluice must answer or decide.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "proto/be_starttls.h"

struct step {
	const char *backend;        /* one line from the backend, no CRLF */
	enum bst_result want;
	const char *send;           /* on BST_SEND */
};

struct transcript {
	const char *what;
	enum cfg_proto proto;
	const char *greeting;       /* kept greeting, at the end */
	const char *why;            /* on a final BST_FAIL */
	struct step steps[12];
};

static const struct transcript cases[] = {
	{ "SMTP: multi-line greeting, STARTTLS offered", CFG_PROTO_SMTP, "220 mx ESMTP", NULL, {
		{ "220-mx.backend.test", BST_MORE, NULL },
		{ "220 mx ESMTP", BST_SEND, "EHLO front.test\r\n" },
		{ "250-mx.backend.test", BST_MORE, NULL },
		{ "250-PIPELINING", BST_MORE, NULL },
		{ "250-starttls", BST_MORE, NULL },
		{ "250 8BITMIME", BST_SEND, "STARTTLS\r\n" },
		{ "220 2.0.0 Ready to start TLS", BST_TLS, NULL },
	} },
	{ "SMTP: no STARTTLS", CFG_PROTO_SMTP, "220 mx", NULL, {
		{ "220 mx", BST_SEND, "EHLO front.test\r\n" },
		{ "250-mx", BST_MORE, NULL },
		{ "250-STARTTLSX", BST_MORE, NULL },
		{ "250 SIZE", BST_ABSENT, NULL },
	} },
	{ "SMTP: STARTTLS refused", CFG_PROTO_SMTP, "220 mx", "backend refused STARTTLS", {
		{ "220 mx", BST_SEND, "EHLO front.test\r\n" },
		{ "250 STARTTLS", BST_SEND, "STARTTLS\r\n" },
		{ "454 4.7.0 TLS not available", BST_FAIL, NULL },
	} },
	{ "SMTP: busy greeting", CFG_PROTO_SMTP, "", "backend greeting refused", {
		{ "554 5.3.2 busy", BST_FAIL, NULL },
	} },
	{ "IMAP: STARTTLS offered", CFG_PROTO_IMAP, "* OK [CAPABILITY IMAP4rev1] ready", NULL, {
		{ "* OK [CAPABILITY IMAP4rev1] ready", BST_SEND, "S1 CAPABILITY\r\n" },
		{ "* CAPABILITY IMAP4rev1 SASL-IR STARTTLS LOGINDISABLED", BST_MORE, NULL },
		{ "S1 OK Pre-login capabilities listed", BST_SEND, "S2 STARTTLS\r\n" },
		{ "S2 OK Begin TLS negotiation now.", BST_TLS, NULL },
	} },
	{ "IMAP: none offered", CFG_PROTO_IMAP, "* OK ready", NULL, {
		{ "* OK ready", BST_SEND, "S1 CAPABILITY\r\n" },
		{ "* CAPABILITY IMAP4rev1 XSTARTTLS", BST_MORE, NULL },
		{ "S1 OK done", BST_ABSENT, NULL },
	} },
	{ "IMAP: BYE", CFG_PROTO_IMAP, "", "backend greeting refused", {
		{ "* BYE too busy", BST_FAIL, NULL },
	} },
	{ "POP3: STLS offered", CFG_PROTO_POP3, "+OK Dovecot ready.", NULL, {
		{ "+OK Dovecot ready.", BST_SEND, "CAPA\r\n" },
		{ "+OK", BST_MORE, NULL },
		{ "CAPA", BST_MORE, NULL },
		{ "STLS", BST_MORE, NULL },
		{ "SASL PLAIN", BST_MORE, NULL },
		{ ".", BST_SEND, "STLS\r\n" },
		{ "+OK Begin TLS negotiation now.", BST_TLS, NULL },
	} },
	{ "POP3: no CAPA", CFG_PROTO_POP3, "+OK hi", NULL, {
		{ "+OK hi", BST_SEND, "CAPA\r\n" },
		{ "-ERR unknown command", BST_ABSENT, NULL },
	} },
	{ "POP3: STLS refused", CFG_PROTO_POP3, "+OK hi", "backend refused STLS", {
		{ "+OK hi", BST_SEND, "CAPA\r\n" },
		{ "+OK", BST_MORE, NULL },
		{ "STLS", BST_MORE, NULL },
		{ ".", BST_SEND, "STLS\r\n" },
		{ "-ERR no", BST_FAIL, NULL },
	} },
};

static void test_transcripts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct transcript *t = &cases[i];
		struct bst b;
		enum bst_result r = BST_MORE;

		bst_init(&b, t->proto);
		for (size_t j = 0; j < 12 && t->steps[j].backend; j++) {
			const struct step *st = &t->steps[j];
			char out[320];
			size_t n;

			r = bst_line(&b, "front.test", st->backend, strlen(st->backend), out,
				     sizeof(out), &n);
			if (r != st->want)
				fail_msg("%s, step %zu (%s): result %d, want %d", t->what, j,
					 st->backend, r, st->want);
			if (st->send && (n != strlen(st->send) || memcmp(out, st->send, n)))
				fail_msg("%s, step %zu: sent %.*s, want %s", t->what, j, (int)n, out,
					 st->send);
		}
		if (b.glen != strlen(t->greeting) || memcmp(b.greeting, t->greeting, b.glen))
			fail_msg("%s: greeting kept '%.*s'", t->what, (int)b.glen, b.greeting);
		if (t->why && (r != BST_FAIL || strcmp(b.why, t->why)))
			fail_msg("%s: why '%s'", t->what, b.why ? b.why : "");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transcripts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
