/*
 * Unit tests for the shared command rules (dataplane/proto/proto.c): the
 * classes of enum proto_class decided once for every protocol (DESIGN.md
 * §2), each engine answering in its own words, and the error limit.
 *
 * A table of cases, run against every engine of proto.def: the listener's
 * tls mode and certificate, whether TLS is up, the command's class and
 * argument, and what must come of it (the word, the flags, the counter; or
 * nothing: the engine's own handler goes on).
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

static const enum cfg_proto protos[] = {
#define P(e, name, ops) CFG_PROTO_##e,
#include "proto/proto.def"
#undef P
};

#define NONE (-1) /* not answered: the engine goes on */

static const struct dispatch_case {
	enum cfg_tls mode;
	bool cert;              /* a usable certificate is loaded */
	bool in_tls;
	enum proto_class cls;
	const char *arg;
	int word;               /* enum proto_word, or NONE */
	unsigned flags;
	int ctr;                /* a CTR_, or -1 */
} cases[] = {
	/* STARTTLS: rules 2.2, 2.5 and the command's own syntax */
	{ CFG_TLS_STARTTLS, true,  false, PC_STARTTLS, "",  PW_STARTTLS_OK,      PO_STARTTLS, -1 },
	{ CFG_TLS_REQUIRED, true,  false, PC_STARTTLS, "",  PW_STARTTLS_OK,      PO_STARTTLS, -1 },
	{ CFG_TLS_STARTTLS, true,  true,  PC_STARTTLS, "",  PW_STARTTLS_IN_TLS,  0, CTR_starttls_in_tls },
	{ CFG_TLS_IMPLICIT, true,  true,  PC_STARTTLS, "",  PW_STARTTLS_IN_TLS,  0, CTR_starttls_in_tls },
	{ CFG_TLS_OFF,      false, false, PC_STARTTLS, "",  PW_STARTTLS_OFF,     0, CTR_unknown_command },
	{ CFG_TLS_STARTTLS, false, false, PC_STARTTLS, "",  PW_STARTTLS_NO_CERT, 0, -1 },
	{ CFG_TLS_STARTTLS, true,  false, PC_STARTTLS, "x", PW_STARTTLS_SYNTAX,  0, CTR_bad_syntax },
	/* rule 2.6: tls: required refuses what goes to the backend */
	{ CFG_TLS_REQUIRED, true,  false, PC_TLS_FIRST, "bob secret", PW_TLS_FIRST, 0,
	  CTR_refused_before_tls },
	{ CFG_TLS_REQUIRED, true,  false, PC_BACKEND, "",  PW_TLS_FIRST, 0, CTR_refused_before_tls },
	{ CFG_TLS_REQUIRED, true,  true,  PC_TLS_FIRST, "", NONE, 0, -1 },
	{ CFG_TLS_REQUIRED, true,  true,  PC_BACKEND,   "", NONE, 0, -1 },
	{ CFG_TLS_STARTTLS, true,  false, PC_TLS_FIRST, "", NONE, 0, -1 },
	{ CFG_TLS_STARTTLS, true,  false, PC_BACKEND,   "", NONE, 0, -1 },
	{ CFG_TLS_OFF,      false, false, PC_TLS_FIRST, "", NONE, 0, -1 },
	/* answered locally: the engine's business */
	{ CFG_TLS_REQUIRED, true,  false, PC_LOCAL,     "", NONE, 0, -1 },
	{ CFG_TLS_STARTTLS, true,  true,  PC_LOCAL,     "", NONE, 0, -1 },
};

/* The engine's word w for tag "t1" as proto_say must write it. */
static void expected(const struct proto_ops *ops, enum proto_word w, char *buf, size_t cap)
{
	int n = 0;

	if (ops->tagged && w != PW_TOO_MANY_ERRORS)
		n = snprintf(buf, cap, "t1 ");
	n += snprintf(buf + n, cap - (size_t)n, ops->words[w], "mx.test");
	snprintf(buf + n, cap - (size_t)n, "\r\n");
}

static void test_dispatch_classes(void **state)
{
	for (size_t p = 0; p < sizeof(protos) / sizeof(protos[0]); p++) {
		const struct proto_ops *ops = proto_get(protos[p]);

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			const struct dispatch_case *c = &cases[i];
			struct proto_env env = { "mx.test", c->mode, c->cert, NULL, 0, NULL, false };
			struct proto_line pl = { .tag = "t1", .verb = "X", .arg = c->arg,
						 .arg_len = strlen(c->arg) };
			struct proto_sess ps;
			struct proto_out o;
			char want[512];
			bool answered;

			memset(&ps, 0, sizeof(ps));
			ps.in_tls = c->in_tls;
			po_reset(&o);
			answered = proto_dispatch(ops, &env, &ps, &pl, c->cls, &o);
			if (answered != (c->word != NONE))
				fail_msg("%s case %zu: %sanswered", ops->name, i, answered ? "" : "not ");
			if (!answered) {
				assert_int_equal(o.reply_len, 0);
				continue;
			}
			expected(ops, (enum proto_word)c->word, want, sizeof(want));
			if (o.reply_len != strlen(want) || memcmp(o.reply, want, o.reply_len))
				fail_msg("%s case %zu: \"%.*s\", want \"%s\"", ops->name, i,
					 (int)o.reply_len, o.reply, want);
			if (o.flags != c->flags || o.counter != c->ctr)
				fail_msg("%s case %zu: flags 0x%x counter %d, want 0x%x %d", ops->name,
					 i, o.flags, o.counter, c->flags, c->ctr);
			assert_int_equal(ps.errors, c->ctr >= 0 ? 1 : 0);
		}
	}
}

/* Every engine says every word, as whole lines without their CRLF. */
static void test_every_word_said(void **state)
{
	for (size_t p = 0; p < sizeof(protos) / sizeof(protos[0]); p++) {
		const struct proto_ops *ops = proto_get(protos[p]);

		assert_non_null(ops->words);
		assert_non_null(ops->parse);
		assert_true(ops->max_errors > 0);
		for (int w = 0; w < PW__COUNT; w++) {
			if (!ops->words[w])
				fail_msg("%s: word %d missing", ops->name, w);
			if (strchr(ops->words[w], '\r') || strchr(ops->words[w], '\n'))
				fail_msg("%s: word %d holds a line end", ops->name, w);
		}
	}
}

/* The error limit, the same for all: the last error says the engine's
 * too-many word (untagged) and closes. */
static void test_error_limit(void **state)
{
	for (size_t p = 0; p < sizeof(protos) / sizeof(protos[0]); p++) {
		const struct proto_ops *ops = proto_get(protos[p]);
		struct proto_env env = { "mx.test", CFG_TLS_REQUIRED, true, NULL, 0, NULL, false };
		struct proto_line pl = { .tag = "t1", .verb = "X", .arg = "" };
		struct proto_sess ps;
		struct proto_out o;
		char want[512], bye[256];

		memset(&ps, 0, sizeof(ps));
		for (unsigned i = 1; i <= ops->max_errors; i++) {
			po_reset(&o);
			assert_true(proto_dispatch(ops, &env, &ps, &pl, PC_TLS_FIRST, &o));
			if (i < ops->max_errors) {
				assert_int_equal(o.flags, 0);
				continue;
			}
			expected(ops, PW_TLS_FIRST, want, sizeof(want));
			expected(ops, PW_TOO_MANY_ERRORS, bye, sizeof(bye));
			strcat(want, bye);
			assert_int_equal(o.flags, PO_CLOSE | PO_ERROR);
			assert_int_equal(o.counter, CTR_too_many_errors);
			if (o.reply_len != strlen(want) || memcmp(o.reply, want, o.reply_len))
				fail_msg("%s: \"%.*s\", want \"%s\"", ops->name, (int)o.reply_len,
					 o.reply, want);
		}
	}
}

/* The grammars: tag, verb and argument as each protocol writes them. */
static void test_parse(void **state)
{
	static const struct {
		enum cfg_proto proto;
		const char *line, *tag, *verb, *arg;
	} t[] = {
		{ CFG_PROTO_SMTP, "STARTTLS", "", "STARTTLS", "" },
		{ CFG_PROTO_SMTP, "starttls \t", "", "starttls", "" },
		{ CFG_PROTO_SMTP, "MAIL  FROM:<a@b>", "", "MAIL", "FROM:<a@b>" },
		{ CFG_PROTO_IMAP, "a1 STARTTLS", "a1", "STARTTLS", "" },
		{ CFG_PROTO_IMAP, "x.7 login bob secret ", "x.7", "login", "bob secret" },
		{ CFG_PROTO_POP3, "STLS", "", "STLS", "" },
		{ CFG_PROTO_POP3, "USER  bob", "", "USER", "bob" },
	};
	static const struct {
		enum cfg_proto proto;
		const char *line;
	} bad[] = {
		{ CFG_PROTO_SMTP, "" }, { CFG_PROTO_IMAP, "STARTTLS" }, { CFG_PROTO_IMAP, "a 1x" },
		{ CFG_PROTO_IMAP, "(a NOOP" }, { CFG_PROTO_POP3, "" }, { CFG_PROTO_POP3, "US3R bob" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const struct proto_ops *ops = proto_get(t[i].proto);
		struct proto_line pl;

		assert_true(ops->parse(t[i].line, strlen(t[i].line), &pl) >= 0);
		assert_string_equal(pl.tag, t[i].tag);
		assert_string_equal(pl.verb, t[i].verb);
		assert_int_equal(pl.arg_len, strlen(t[i].arg));
		assert_memory_equal(pl.arg, t[i].arg, pl.arg_len);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proto_line pl;

		if (proto_get(bad[i].proto)->parse(bad[i].line, strlen(bad[i].line), &pl) >= 0)
			fail_msg("\"%s\" parsed", bad[i].line);
	}
}

/* Every table has one STARTTLS command, left to the shared rules, and a
 * handler for every other; lookups ignore case, and a command that takes
 * no arguments is found only alone. */
static void test_tables(void **state)
{
	for (size_t p = 0; p < sizeof(protos) / sizeof(protos[0]); p++) {
		const struct proto_ops *ops = proto_get(protos[p]);
		unsigned starttls = 0;

		assert_true(ops->n_cmds > 0);
		for (size_t i = 0; i < ops->n_cmds; i++) {
			const struct proto_cmd *c = &ops->cmds[i];
			struct proto_line pl = { .arg = "", .arg_len = 0 };

			if (c->cls == PC_STARTTLS) {
				starttls++;
				assert_null(c->fn);
			} else if (!c->fn) {
				fail_msg("%s %s: no handler", ops->name, c->verb);
			}
			for (size_t k = 0; c->verb[k]; k++)
				pl.verb[k] = (char)(c->verb[k] | 0x20); /* lower case */
			assert_ptr_equal(proto_find(ops, &pl), c);
			pl.arg = "x";
			pl.arg_len = 1;
			assert_ptr_equal(proto_find(ops, &pl), c->args ? c : NULL);
		}
		assert_int_equal(starttls, 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_classes),
		cmocka_unit_test(test_every_word_said),
		cmocka_unit_test(test_error_limit),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_tables),
	};

	return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
