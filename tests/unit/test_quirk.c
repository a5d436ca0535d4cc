/*
 * The quirk table and the engines' "STARTTLS again" detectors: which lines
 * after the STARTTLS OK are Outlook mobile's repeat (answered with the same
 * OK) and which are not (the session closes). And the protocol table that
 * names the engines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"
#include "quirk/quirk.h"

struct again_case {
	enum cfg_proto proto;
	const char *line;     /* CR LF stripped */
	const char *reply;    /* NULL: not a repeat */
};

static const struct again_case cases[] = {
	{ CFG_PROTO_SMTP, "STARTTLS", "220 2.0.0 Ready to start TLS\r\n" },
	{ CFG_PROTO_SMTP, "starttls", "220 2.0.0 Ready to start TLS\r\n" },
	{ CFG_PROTO_SMTP, "STARTTLS ", NULL },
	{ CFG_PROTO_SMTP, "STARTTLS x", NULL },
	{ CFG_PROTO_SMTP, "MAIL FROM:<a@b>", NULL },
	{ CFG_PROTO_SMTP, "", NULL },
	{ CFG_PROTO_IMAP, "a STARTTLS", "a OK Begin TLS negotiation now.\r\n" },
	{ CFG_PROTO_IMAP, "A0002 starttls", "A0002 OK Begin TLS negotiation now.\r\n" },
	{ CFG_PROTO_IMAP, "STARTTLS", NULL },
	{ CFG_PROTO_IMAP, "a STARTTLS x", NULL },
	{ CFG_PROTO_IMAP, "a  STARTTLS", NULL },
	{ CFG_PROTO_IMAP, "* STARTTLS", NULL },
	{ CFG_PROTO_IMAP, "a LOGIN bob secret", NULL },
	{ CFG_PROTO_POP3, "STLS", "+OK Begin TLS negotiation now.\r\n" },
	{ CFG_PROTO_POP3, "stls", "+OK Begin TLS negotiation now.\r\n" },
	{ CFG_PROTO_POP3, "STLS ", NULL },
	{ CFG_PROTO_POP3, "USER bob", NULL },
};

static void test_starttls_again(void **state)
{
	struct proto_env env = { "mx.test", CFG_TLS_STARTTLS, true, NULL, 0, NULL, false };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct proto_ops *ops = proto_get(cases[i].proto);
		struct proto_sess ps;
		struct proto_out o;
		bool again;

		memset(&ps, 0, sizeof(ps));
		po_reset(&o);
		assert_non_null(ops->starttls_again);
		again = ops->starttls_again(&env, &ps, cases[i].line, strlen(cases[i].line), &o);
		if (again != (cases[i].reply != NULL))
			fail_msg("%s \"%s\": repeat %d, want %d", ops->name, cases[i].line, again,
				 cases[i].reply != NULL);
		if (cases[i].reply) {
			assert_int_equal(o.reply_len, strlen(cases[i].reply));
			assert_memory_equal(o.reply, cases[i].reply, o.reply_len);
		} else {
			assert_int_equal(o.reply_len, 0);
		}
		assert_int_equal(o.flags, 0);
	}
}

static void test_quirk_list(void **state)
{
	char buf[160];

	assert_string_equal(quirk_list(0, buf, sizeof(buf)), "-");
	assert_string_equal(quirk_list(1u << QUIRK_second_starttls, buf, sizeof(buf)),
			    "second-starttls");
	assert_string_equal(quirk_list((1u << QUIRK_second_starttls) |
				       (1u << QUIRK_not_tls_after_starttls), buf, sizeof(buf)),
			    "second-starttls,not-tls-after-starttls");
	/* Every quirk has its own word, and words for a log line's reason. */
	for (unsigned i = 0; i < QUIRK__COUNT; i++)
		assert_true(quirk_reasons[i] && quirk_reasons[i][0]);
	for (unsigned i = 0; i < QUIRK__COUNT; i++)
		for (unsigned j = i + 1; j < QUIRK__COUNT; j++)
			assert_string_not_equal(quirk_words[i], quirk_words[j]);
	/* A short buffer stays terminated. */
	assert_true(strlen(quirk_list(~0u, buf, 12)) < 12);
}

/* The greeting hold for a ClientHello first: about two round trips,
 * clamped to [QUIRK_HOLD_MIN_MS, detect_implicit_ms]. */
static void test_hold_window(void **state)
{
	static const struct { uint32_t rtt_us; unsigned max_ms, want; } holds[] = {
		{ 0,       200, 200 },  /* no measurement: the whole window */
		{ 30,      200, QUIRK_HOLD_MIN_MS },  /* loopback */
		{ 1000,    200, QUIRK_HOLD_MIN_MS },  /* a LAN: 2 ms, below the floor */
		{ 4999,    200, QUIRK_HOLD_MIN_MS },
		{ 5001,    200, 11 },   /* 10.002 ms, rounded up */
		{ 20000,   200, 40 },   /* 20 ms across a country */
		{ 80000,   200, 160 },
		{ 150000,  200, 200 },  /* a satellite link: the maximum */
		{ 150000, 5000, 300 },
		{ 30,        3, 3 },    /* a maximum below the floor is honoured */
		{ 30,        0, 0 },    /* 0: no hold */
		{ 0,         0, 0 },
		{ UINT32_MAX, 5000, 5000 },
	};

	for (size_t i = 0; i < sizeof(holds) / sizeof(holds[0]); i++) {
		unsigned got = quirk_hold_ms(holds[i].rtt_us, holds[i].max_ms);

		if (got != holds[i].want)
			fail_msg("rtt %u us, max %u ms: hold %u ms, want %u", holds[i].rtt_us,
				 holds[i].max_ms, got, holds[i].want);
	}
}

/* The protocol table (proto.def) gives the config's names and the engines:
 * each name the config accepts has the engine that calls itself so. */
static void test_proto_table(void **state)
{
	static const enum cfg_proto all[] = {
#define P(e, name, ops) CFG_PROTO_##e,
#include "proto/proto.def"
#undef P
	};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		const struct proto_ops *ops = proto_get(all[i]);

		assert_non_null(ops);
		assert_string_equal(ops->name, cfg_proto_name(all[i]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_starttls_again),
		cmocka_unit_test(test_quirk_list),
		cmocka_unit_test(test_proto_table),
		cmocka_unit_test(test_hold_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
