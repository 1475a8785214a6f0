// SPDX-License-Identifier: Apache-2.0
/* The log-linear histogram against exact percentiles of known distributions. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "../harness/test.h"
#include "zmesh/histogram.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The exact sample of rank ceil(p/100*n) from sorted @v. */
static uint64_t exact(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)ceil(p / 100.0 * (double)n);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* The documented bound: within 1/256 of the exact value (+1 for integer rounding). */
static bool within(uint64_t got, uint64_t want)
{
	uint64_t d = got > want ? got - want : want - got;

	return d <= want / 256 + 1;
}

static const double pcts[] = { 0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100 };

static void check_dist(uint64_t *v, size_t n)
{
	struct zm_hist *h = malloc(sizeof(*h));
	long double sum = 0;

	ASSERT_OK_PTR(h);
	test_defer(free, h);
	zm_hist_init(h);
	for (size_t i = 0; i < n; i++) {
		zm_hist_record(h, v[i]);
		sum += v[i];
	}
	qsort(v, n, sizeof(*v), cmp_u64);
	EXPECT_EQ(h->count, n);
	EXPECT_EQ(h->min, v[0]);
	EXPECT_EQ(h->max, v[n - 1]);
	EXPECT_TRUE(fabs(zm_hist_mean(h) - (double)(sum / n)) < 1e-6 * (double)(sum / n) + 1e-9);
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		uint64_t got = zm_hist_percentile(h, pcts[i]), want = exact(v, n, pcts[i]);

		if (!EXPECT_TRUE(within(got, want)))
			test_log("p%g: got %llu, exact %llu", pcts[i], (unsigned long long)got,
				 (unsigned long long)want);
	}
}

/* xorshift: deterministic, no libc rand() state. */
static uint64_t rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

TEST(uniform_distribution)
{
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v)), s = 42;

	ASSERT_OK_PTR(v);
	test_defer(free, v);
	for (size_t i = 0; i < n; i++)
		v[i] = 1000 + rng(&s) % 10000000;	/* 1 us .. 10 ms in ns */
	check_dist(v, n);
}

TEST(exponential_distribution_with_long_tail)
{
	size_t n = 200000;
	uint64_t *v = malloc(n * sizeof(*v)), s = 7;

	ASSERT_OK_PTR(v);
	test_defer(free, v);
	for (size_t i = 0; i < n; i++) {
		double u = (double)(rng(&s) >> 11) / (double)(1ull << 53);

		v[i] = (uint64_t)(-log(1.0 - u) * 50000.0) + 20000;	/* mean 70 us */
	}
	check_dist(v, n);
}

TEST(small_values_are_exact)
{
	struct zm_hist *h = malloc(sizeof(*h));

	ASSERT_OK_PTR(h);
	test_defer(free, h);
	zm_hist_init(h);
	for (uint64_t x = 0; x < 256; x++)
		zm_hist_record(h, x);
	for (uint64_t x = 0; x < 256; x++) {
		EXPECT_EQ(zm_hist_index(x), x);
		/* rank x+1 of 256 is the value x */
		EXPECT_EQ(zm_hist_percentile(h, (double)(x + 1) * 100.0 / 256.0), x);
	}
}

TEST(edge_values)
{
	struct zm_hist *h = malloc(sizeof(*h));

	ASSERT_OK_PTR(h);
	test_defer(free, h);
	zm_hist_init(h);
	/* empty */
	EXPECT_EQ(zm_hist_percentile(h, 50), 0);
	EXPECT_TRUE(zm_hist_mean(h) == 0.0);
	EXPECT_EQ(zm_hist_count_ge(h, 0), 0);
	/* the extremes of the range land in the first and last bucket */
	EXPECT_EQ(zm_hist_index(0), 0);
	EXPECT_EQ(zm_hist_index(UINT64_MAX), ZM_HIST_BUCKETS - 1);
	EXPECT_EQ(zm_hist_bucket_hi(ZM_HIST_BUCKETS - 1), UINT64_MAX);
	zm_hist_record(h, 0);
	zm_hist_record(h, UINT64_MAX);
	EXPECT_EQ(h->count, 2);
	EXPECT_EQ(zm_hist_percentile(h, 0), 0);
	EXPECT_EQ(zm_hist_percentile(h, 50), 0);
	EXPECT_EQ(zm_hist_percentile(h, 100), UINT64_MAX);
	EXPECT_TRUE(within(zm_hist_percentile(h, 99), UINT64_MAX));	/* rank 2: the last bucket */
	EXPECT_EQ(zm_hist_percentile(h, 1000), UINT64_MAX);
	EXPECT_EQ(zm_hist_percentile(h, -5), 0);
	EXPECT_EQ(zm_hist_percentile(h, NAN), 0);
	/* a single value comes back exactly (clamped into [min, max]) */
	zm_hist_init(h);
	zm_hist_record(h, 123456789);
	EXPECT_EQ(zm_hist_percentile(h, 50), 123456789);
	EXPECT_EQ(zm_hist_percentile(h, 99.9), 123456789);
}

TEST(buckets_tile_the_range)
{
	/* Consecutive, no gaps or overlaps, each at most 1/128 of its lower bound wide. */
	for (size_t i = 0; i + 1 < ZM_HIST_BUCKETS; i++) {
		uint64_t lo = zm_hist_bucket_lo(i), hi = zm_hist_bucket_hi(i);

		if (!ASSERT_EQ(zm_hist_bucket_lo(i + 1), hi + 1))
			break;
		ASSERT_EQ(zm_hist_index(lo), i);
		ASSERT_EQ(zm_hist_index(hi), i);
		if (lo >= 256)
			ASSERT_LE(hi - lo + 1, lo / 128);
	}
}

TEST(merge_equals_recording_into_one)
{
	struct zm_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *all = malloc(sizeof(*all));
	uint64_t s = 99;

	ASSERT_TRUE(a && b && all);
	test_defer(free, a);
	test_defer(free, b);
	test_defer(free, all);
	zm_hist_init(a);
	zm_hist_init(b);
	zm_hist_init(all);
	for (int i = 0; i < 50000; i++) {
		uint64_t x = rng(&s) % 5000000;

		zm_hist_record(i % 3 ? a : b, x);
		zm_hist_record(all, x);
	}
	zm_hist_record_n(b, 77777, 10);
	zm_hist_record_n(all, 77777, 10);
	zm_hist_merge(a, b);
	EXPECT_EQ(a->count, all->count);
	EXPECT_EQ(a->sum, all->sum);
	EXPECT_EQ(a->min, all->min);
	EXPECT_EQ(a->max, all->max);
	EXPECT_EQ(memcmp(a->counts, all->counts, sizeof(a->counts)), 0);
	for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		EXPECT_EQ(zm_hist_percentile(a, pcts[i]), zm_hist_percentile(all, pcts[i]));
	/* merging an empty one changes nothing, min included */
	zm_hist_init(b);
	zm_hist_merge(a, b);
	EXPECT_EQ(a->min, all->min);
	EXPECT_EQ(a->count, all->count);
}

TEST(count_ge)
{
	struct zm_hist *h = malloc(sizeof(*h));

	ASSERT_OK_PTR(h);
	test_defer(free, h);
	zm_hist_init(h);
	for (uint64_t ms = 1; ms <= 200; ms++)
		zm_hist_record(h, ms * 1000000);
	/* 100..200 ms are >= 100 ms; the sample at exactly 100 ms may share a bucket with smaller values */
	EXPECT_LE(zm_hist_count_ge(h, 100000000), 101);
	EXPECT_GE(zm_hist_count_ge(h, 100000000), 100);
	EXPECT_EQ(zm_hist_count_ge(h, 0), 200);
	EXPECT_EQ(zm_hist_count_ge(h, 300000000), 0);
}
