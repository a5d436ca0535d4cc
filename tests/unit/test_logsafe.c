/*
 * Unit tests for lib/logsafe.h (issue 12, finding 1): client bytes in a
 * key=value log line can neither end the line nor add keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "logsafe.h"

static const char *name(const char *in, char *out, size_t outlen)
{
	return logsafe_name(in, strlen(in), out, outlen);
}

/* A host name is kept; anything else becomes hex, never a byte of it raw. */
static void test_name(void **state)
{
	char out[LOGSAFE_NAME_SIZE(128)];

	(void)state;
	assert_string_equal(name("mx1.example-mail.org", out, sizeof(out)), "mx1.example-mail.org");
	assert_string_equal(name("_dmarc.example", out, sizeof(out)), "_dmarc.example");
	assert_string_equal(name("", out, sizeof(out)), "-");
	/* LF, a quote, a space and '=': the forged line of the review. */
	assert_string_equal(name("a\n\" x=1", out, sizeof(out)), "hex:610a2220783d31");
	assert_string_equal(name("\xff\x01", out, sizeof(out)), "hex:ff01");
	assert_string_equal(name("sni=evil", out, sizeof(out)), "hex:736e693d6576696c");
}

/* Truncated to whole bytes, always terminated. */
static void test_name_truncated(void **state)
{
	char out[10];

	(void)state;
	memset(out, 'Z', sizeof(out));
	assert_string_equal(name("a b c d e", out, sizeof(out)), "hex:6120");
	assert_string_equal(name("abcdefghijklmnop", out, sizeof(out)), "abcdefghi");
}

/* Inside quotes: printable ASCII kept, quote, backslash and controls as \xHH. */
static void test_quoted(void **state)
{
	char out[128];

	(void)state;
	assert_string_equal(logsafe_quoted("handshake: no shared cipher", out, sizeof(out)),
			    "handshake: no shared cipher");
	assert_string_equal(logsafe_quoted("x\"\r\nconn=1 result=ok \\", out, sizeof(out)),
			    "x\\x22\\x0d\\x0aconn=1 result=ok \\x5c");
	assert_string_equal(logsafe_quoted("caf\xc3\xa9\t", out, sizeof(out)),
			    "caf\\xc3\\xa9\\x09");
	assert_null(strchr(logsafe_quoted("\n\n\"\"", out, sizeof(out)), '\n'));
}

/* Never half an escape. */
static void test_quoted_truncated(void **state)
{
	char out[8];

	(void)state;
	assert_string_equal(logsafe_quoted("ab\ncd", out, sizeof(out)), "ab\\x0ac");
	assert_string_equal(logsafe_quoted("abcde\n", out, sizeof(out)), "abcde");
	assert_string_equal(logsafe_quoted("abcdefghij", out, sizeof(out)), "abcdefg");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_name_truncated),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_quoted_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
