/*
 * A log-bucket latency histogram in the manner of HdrHistogram: 32 linear
 * sub-buckets per power of two, so any recorded value is reported within
 * 1/32 (about 3 %) of itself, in constant memory, with O(1) recording.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 5
#define HIST_SUB      (1u << HIST_SUB_BITS)
/* values below 2*HIST_SUB are exact; above, 32 buckets per power of two */
#define HIST_BUCKETS  ((64 - HIST_SUB_BITS) * HIST_SUB + 2 * HIST_SUB)

struct hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t n;             /* values recorded */
	uint64_t max;           /* largest value recorded, exact */
	double sum;             /* for the mean */
};

void hist_record(struct hist *h, uint64_t v);
/* The value at quantile q (0..1): the midpoint of the bucket holding it,
 * clamped to the exact maximum; 0 for an empty histogram. */
uint64_t hist_quantile(const struct hist *h, double q);
double hist_mean(const struct hist *h);
/* Bucket index of v and the lowest value of bucket i (exported for tests). */
unsigned hist_index(uint64_t v);
uint64_t hist_lower(unsigned i);

#endif
