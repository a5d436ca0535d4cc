/*
 * The load generator's histogram: bucket bounds, and quantiles within the
 * promised 1/32 of the exact answer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "hist.h"

/* Every value lands in the bucket whose bounds hold it, over the whole
 * 64-bit range, and buckets are contiguous. */
static void test_bucket_bounds(void **state)
{
	static const uint64_t values[] = {
		0, 1, 31, 63, 64, 65, 95, 96, 127, 128, 1000, 4095, 4096,
		123456789, 1ull << 40, (1ull << 40) + 12345, UINT64_MAX / 2, UINT64_MAX,
	};
	unsigned i;

	(void)state;
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		uint64_t v = values[i];
		unsigned b = hist_index(v);

		assert_true(b < HIST_BUCKETS);
		assert_true(hist_lower(b) <= v);
		if (b + 1 < HIST_BUCKETS && hist_lower(b + 1) > hist_lower(b))
			assert_true(v < hist_lower(b + 1));
	}
	for (i = 0; i + 1 < 1919; i++)
		assert_int_equal(hist_index(hist_lower(i)), i);
}

/* 1..10000 recorded once each: p50 is about 5000, p99 about 9900, within
 * 1/32; the maximum is exact; an empty histogram answers 0. */
static void test_quantiles(void **state)
{
	static struct hist h, empty;
	uint64_t v, p50, p99;

	(void)state;
	for (v = 1; v <= 10000; v++)
		hist_record(&h, v);
	p50 = hist_quantile(&h, 0.50);
	p99 = hist_quantile(&h, 0.99);
	assert_in_range(p50, 5000 - 5000 / 32, 5000 + 5000 / 32);
	assert_in_range(p99, 9900 - 9900 / 32, 9900 + 9900 / 32);
	assert_int_equal(hist_quantile(&h, 1.0), 10000);
	assert_int_equal(h.max, 10000);
	assert_int_equal(hist_quantile(&empty, 0.5), 0);
}

/* A run with one slow outlier in a hundred: p50 stays fast, p99 is slow. */
static void test_outlier(void **state)
{
	static struct hist h;
	int i;

	(void)state;
	for (i = 0; i < 98; i++)
		hist_record(&h, 200);
	hist_record(&h, 90000);
	hist_record(&h, 90000);
	assert_in_range(hist_quantile(&h, 0.5), 194, 206);
	assert_in_range(hist_quantile(&h, 0.99), 90000 - 90000 / 32, 90000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_bounds),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_outlier),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
