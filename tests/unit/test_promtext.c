/*
 * Unit tests for dataplane/promtext.c (issue 13): label values and HELP
 * lines escaped as the text exposition format 0.0.4 says, and a text that
 * would pass its bound is marked failed, never cut silently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "promtext.h"

/* Backslash, double quote and newline in a label value: escaped; nothing
 * else is touched (UTF-8 passes as it is). */
static void test_label_value(void **state)
{
	struct ptext t;

	(void)state;
	pt_init(&t, 1 << 20);
	pt_printf(&t, "m{l=\"");
	pt_label_value(&t, "a\\b\"c\nd é");
	pt_printf(&t, "\"} 1\n");
	assert_false(t.failed);
	assert_string_equal(t.p, "m{l=\"a\\\\b\\\"c\\nd é\"} 1\n");
	pt_free(&t);
}

/* HELP escapes backslash and newline, not double quotes. */
static void test_family(void **state)
{
	struct ptext t;

	(void)state;
	pt_init(&t, 1 << 20);
	pt_family(&t, "sluice_x_total", "counter", "a \"b\" c\\d\ne");
	assert_string_equal(t.p, "# HELP sluice_x_total a \"b\" c\\\\d\\ne\n"
				 "# TYPE sluice_x_total counter\n");
	pt_free(&t);
}

/* pt_escape into a fixed buffer: escaped, cut to fit, never a half escape. */
static void test_escape_fixed(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(pt_escape(out, sizeof(out), "ab\"cd"), 6);
	assert_string_equal(out, "ab\\\"cd");
	assert_int_equal(pt_escape(out, sizeof(out), "abcdef\""), 6);
	assert_string_equal(out, "abcdef");
	assert_int_equal(pt_escape(out, 1, "x"), 0);
	assert_string_equal(out, "");
}

/* Over the bound: failed, and the text stays what it was. */
static void test_bound(void **state)
{
	struct ptext t;

	(void)state;
	pt_init(&t, 64);
	pt_printf(&t, "%s", "0123456789");
	assert_false(t.failed);
	for (int i = 0; i < 10; i++)
		pt_printf(&t, "%s", "0123456789");
	assert_true(t.failed);
	assert_true(t.len <= 64);
	pt_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_label_value),
		cmocka_unit_test(test_family),
		cmocka_unit_test(test_escape_fixed),
		cmocka_unit_test(test_bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
