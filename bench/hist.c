/*
 * Log-bucket histogram (see hist.h).
 */
#include "hist.h"

/* Bucket of v: exact below 2*HIST_SUB; else the power of two of v picks a
 * group of HIST_SUB buckets and the next HIST_SUB_BITS bits the bucket. */
unsigned hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	return ((shift) << HIST_SUB_BITS) + (unsigned)(v >> shift);
}

/* Lowest value that falls in bucket i: the inverse of hist_index. */
uint64_t hist_lower(unsigned i)
{
	unsigned shift;

	if (i < 2 * HIST_SUB)
		return i;
	shift = (i >> HIST_SUB_BITS) - 1;
	return (uint64_t)(HIST_SUB + (i & (HIST_SUB - 1))) << shift;
}

/* Record one value. */
void hist_record(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	h->n++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
}

/* The value at quantile q: walks the buckets to the ceil(q*n)-th value. */
uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;
	unsigned i;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)h->n + 0.999999);
	if (want < 1)
		want = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want) {
			uint64_t lo = hist_lower(i), width = hist_lower(i + 1) - lo;
			uint64_t mid = lo + width / 2;

			return mid > h->max ? h->max : mid;
		}
	}
	return h->max;
}

double hist_mean(const struct hist *h)
{
	return h->n ? h->sum / (double)h->n : 0.0;
}
