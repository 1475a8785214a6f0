/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A log-linear histogram in the manner of HdrHistogram, for latencies.
 *
 * Fixed memory (one struct, ~58 KiB, no allocation), the whole uint64_t
 * range, no configuration. Values are plain integers in whatever unit the
 * caller picks (the load generator records nanoseconds).
 *
 * Layout: values 0..255 each have their own bucket (exact). Above that,
 * every power-of-two range [2^e, 2^(e+1)) is split into 128 equal buckets,
 * so a bucket is at most 1/128 of its lower bound wide. A percentile is
 * reported as the middle of its bucket, hence within 1/256 (0.39%) of the
 * true sample at that rank; it is also clamped into [min, max], which are
 * kept exactly, as are the count and the sum (the mean is exact).
 *
 * Recording is O(1): a count-leading-zeros and an add. Nothing locks: keep
 * one histogram per thread and zm_hist_merge() them at the end.
 */
#ifndef ZMESH_HISTOGRAM_H
#define ZMESH_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define ZM_HIST_SUB_BITS 8	/* values below 2^8 are exact */
#define ZM_HIST_HALF (1u << (ZM_HIST_SUB_BITS - 1))	/* 128 buckets per power of two */
#define ZM_HIST_BUCKETS ((1u << ZM_HIST_SUB_BITS) + (64 - ZM_HIST_SUB_BITS) * ZM_HIST_HALF)

struct zm_hist {
	uint64_t count;		/* samples recorded */
	uint64_t sum;		/* their sum (wraps after 2^64: ~584 years of ns) */
	uint64_t min, max;	/* exact; min is UINT64_MAX while empty */
	uint64_t counts[ZM_HIST_BUCKETS];
};

/* Empty the histogram (also the way to initialise one). */
void zm_hist_init(struct zm_hist *h);

/* Record one sample / @n samples of value @v. */
void zm_hist_record(struct zm_hist *h, uint64_t v);
void zm_hist_record_n(struct zm_hist *h, uint64_t v, uint64_t n);

/* Add every sample of @src to @dst. */
void zm_hist_merge(struct zm_hist *dst, const struct zm_hist *src);

/*
 * The value at percentile @p (0..100): the sample of rank ceil(p/100 * count)
 * (rank 1 for p = 0), to within 1/256 relative, clamped into [min, max].
 * 0 for an empty histogram. p = 100 gives max exactly.
 */
uint64_t zm_hist_percentile(const struct zm_hist *h, double p);

/* Exact mean (0 when empty). */
double zm_hist_mean(const struct zm_hist *h);

/* Samples recorded in buckets whose values are all >= @v (an undercount by at most one bucket's share). */
uint64_t zm_hist_count_ge(const struct zm_hist *h, uint64_t v);

/* Bucket that holds @v, and the smallest / largest value a bucket holds (both inclusive). */
size_t zm_hist_index(uint64_t v);
uint64_t zm_hist_bucket_lo(size_t idx);
uint64_t zm_hist_bucket_hi(size_t idx);

#endif /* ZMESH_HISTOGRAM_H */
