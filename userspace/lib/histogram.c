// SPDX-License-Identifier: Apache-2.0
/* Log-linear histogram; see include/zmesh/histogram.h. */
#include <math.h>
#include <string.h>

#include "zmesh/histogram.h"

#define SUB (1u << ZM_HIST_SUB_BITS)

void zm_hist_init(struct zm_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

size_t zm_hist_index(uint64_t v)
{
	unsigned int e, shift;

	if (v < SUB)
		return (size_t)v;
	e = 63u - (unsigned int)__builtin_clzll(v);	/* >= SUB_BITS */
	shift = e - (ZM_HIST_SUB_BITS - 1);
	/* v >> shift is in [HALF, 2*HALF): the top SUB_BITS bits of v. */
	return SUB + (size_t)(e - ZM_HIST_SUB_BITS) * ZM_HIST_HALF +
	       (size_t)((v >> shift) - ZM_HIST_HALF);
}

uint64_t zm_hist_bucket_lo(size_t idx)
{
	size_t k;
	unsigned int e;

	if (idx < SUB)
		return idx;
	k = idx - SUB;
	e = (unsigned int)(k / ZM_HIST_HALF) + ZM_HIST_SUB_BITS;
	return (uint64_t)(ZM_HIST_HALF + k % ZM_HIST_HALF) << (e - (ZM_HIST_SUB_BITS - 1));
}

uint64_t zm_hist_bucket_hi(size_t idx)
{
	if (idx < SUB)
		return idx;
	if (idx + 1 >= ZM_HIST_BUCKETS)
		return UINT64_MAX;
	return zm_hist_bucket_lo(idx + 1) - 1;
}

void zm_hist_record_n(struct zm_hist *h, uint64_t v, uint64_t n)
{
	if (!n)
		return;
	h->counts[zm_hist_index(v)] += n;
	h->count += n;
	h->sum += v * n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void zm_hist_record(struct zm_hist *h, uint64_t v)
{
	zm_hist_record_n(h, v, 1);
}

void zm_hist_merge(struct zm_hist *dst, const struct zm_hist *src)
{
	if (!src->count)
		return;
	for (size_t i = 0; i < ZM_HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t zm_hist_percentile(const struct zm_hist *h, double p)
{
	uint64_t rank, seen = 0, lo, hi, mid;

	if (!h->count)
		return 0;
	if (!(p > 0))	/* also NaN */
		return h->min;
	if (p >= 100)
		return h->max;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	if (rank > h->count)
		rank = h->count;
	for (size_t i = 0; i < ZM_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen < rank)
			continue;
		lo = zm_hist_bucket_lo(i);
		hi = zm_hist_bucket_hi(i);
		mid = lo + (hi - lo) / 2 + ((hi - lo) & 1);
		if (mid < h->min)
			mid = h->min;
		if (mid > h->max)
			mid = h->max;
		return mid;
	}
	return h->max;
}

double zm_hist_mean(const struct zm_hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}

uint64_t zm_hist_count_ge(const struct zm_hist *h, uint64_t v)
{
	uint64_t n = 0;
	size_t i = zm_hist_index(v);

	/* The bucket holding v counts only when v is its first value. */
	if (zm_hist_bucket_lo(i) < v)
		i++;
	for (; i < ZM_HIST_BUCKETS; i++)
		n += h->counts[i];
	return n;
}
