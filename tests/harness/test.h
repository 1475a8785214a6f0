/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A kselftest-style test harness for zmesh.
 *
 * TEST(name) { ... }                     a plain test
 * FIXTURE(f) { fields };                 per-test state, reached as `self`
 * FIXTURE_SETUP(f) { ... }               runs before each TEST_F(f, ...)
 * FIXTURE_TEARDOWN(f) { ... }            runs after it, even when an ASSERT failed
 * TEST_F(f, name) { ... }                a test using fixture f
 *
 * ASSERT_*(...) records a failure and ends the test body at once (teardown
 * and deferred cleanups still run). EXPECT_*(...) records a failure and goes
 * on. Both evaluate to true when the check passed, so they can steer control
 * flow: `if (!EXPECT_OK(rc)) goto out;`.
 * SKIP(fmt, ...) ends the test as skipped with a reason (missing root,
 * missing kernel feature).
 * test_defer(fn, arg) registers a cleanup; cleanups run in reverse order after
 * the body and the teardown, whatever happened.
 *
 * Each test runs in a forked child in its own process group, so a crash or a
 * hang (timeout, default 120 s, ZM_TEST_TIMEOUT overrides) fails that test
 * alone and its children are killed with it. Output is TAP 13; the last line
 * is "# N passed, N failed, N skipped". Exit status is 1 when any test failed.
 * Arguments: -t NAME runs the tests whose name contains NAME; -l lists them.
 */
#ifndef ZM_TEST_H
#define ZM_TEST_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct zm_test {
	const char *name;
	void (*fn)(struct zm_test *t);
	void (*setup)(void *self);
	void (*teardown)(void *self);
	size_t self_size;
	void *self;		/* fixture instance, set by the runner */
	struct zm_test *next;
};

void zm_test_register(struct zm_test *t);
bool zm_test_check(bool ok, bool fatal, const char *file, int line,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void zm_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void test_defer(void (*fn)(void *arg), void *arg);
/* Log a diagnostic line ("# ...") inside a test. */
void test_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * Run a shell command (printf-style), capture up to @outsz-1 bytes of its
 * stdout+stderr into @out (may be NULL), return its exit status (or -1).
 */
int test_sh(char *out, size_t outsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The build directory (where zmeshctl, echoapp... are), from /proc/self/exe. */
const char *test_build_dir(void);
/*
 * Find @rel (a path inside the checkout, e.g. "tests/fuzz/jwt/corpus") by
 * walking up from the build dir (build/ or build/<variant>/); writes it to
 * @out. Returns 0, or -ENOENT when no ancestor holds it.
 */
int test_src_path(const char *rel, char *out, size_t outsz);
/* Read a whole file, NUL-terminated (malloc'd; *len excludes the NUL), or NULL. */
char *test_slurp(const char *path, size_t *len);
/* Write @text to @path (created or truncated); 0, or -1. */
int test_write_file(const char *path, const char *text);
/* The value in kB of line @field ("VmRSS", "VmHWM") of /proc/@pid/status, or -1. */
long test_proc_kib(int pid, const char *field);
/*
 * Replay every file of tests/fuzz/<target>/corpus through @fn, the fuzz
 * target's entry: a regression suite for seeds and past crashers without
 * libFuzzer (a target abort()s on a broken invariant, which fails the test).
 * Returns the number of files replayed, or a negative errno.
 */
int test_replay_corpus(const char *target, int (*fn)(const uint8_t *data, size_t size));
/* True when running as root (most BPF and netns tests need it). */
bool test_is_root(void);
/* Skip unless root. */
#define REQUIRE_ROOT() do { if (!test_is_root()) SKIP("needs root"); } while (0)

#define SKIP(...) zm_test_skip(__VA_ARGS__)

#define TEST(tn)                                                        \
	static void zm_test_fn_##tn(struct zm_test *_t);                \
	static struct zm_test zm_test_##tn = {                          \
		.name = #tn, .fn = zm_test_fn_##tn };                 \
	__attribute__((constructor)) static void zm_test_reg_##tn(void) \
	{ zm_test_register(&zm_test_##tn); }                            \
	static void zm_test_fn_##tn(struct zm_test *_t __attribute__((unused)))

#define FIXTURE(f) struct zm_fixture_##f
#define FIXTURE_SETUP(f) \
	static void zm_fixture_setup_##f(struct zm_fixture_##f *self)
#define FIXTURE_TEARDOWN(f) \
	static void zm_fixture_teardown_##f(struct zm_fixture_##f *self)

#define TEST_F(f, tn)                                                    \
	static void zm_test_body_##f##_##tn(struct zm_fixture_##f *self); \
	static void zm_test_fn_##f##_##tn(struct zm_test *_t)            \
	{ zm_test_body_##f##_##tn((struct zm_fixture_##f *)_t->self); } \
	static struct zm_test zm_test_##f##_##tn = {                      \
		.name = #f "." #tn, .fn = zm_test_fn_##f##_##tn,       \
		.setup = (void (*)(void *))zm_fixture_setup_##f,            \
		.teardown = (void (*)(void *))zm_fixture_teardown_##f,      \
		.self_size = sizeof(struct zm_fixture_##f) };               \
	__attribute__((constructor)) static void zm_test_reg_##f##_##tn(void) \
	{ zm_test_register(&zm_test_##f##_##tn); }                        \
	static void zm_test_body_##f##_##tn(struct zm_fixture_##f *self)

#define ZM_CMP_(fatal, a, op, b)                                               \
	({ long long _a = (long long)(a), _b = (long long)(b);                 \
	   zm_test_check(_a op _b, fatal, __FILE__, __LINE__,                  \
			 "%s %s %s: %lld vs %lld", #a, #op, #b, _a, _b); })
#define ZM_TRUE_(fatal, c) \
	zm_test_check(!!(c), fatal, __FILE__, __LINE__, "%s is false", #c)
#define ZM_FALSE_(fatal, c) \
	zm_test_check(!(c), fatal, __FILE__, __LINE__, "%s is true", #c)
#define ZM_OK_(fatal, rc)                                                       \
	({ long long _r = (long long)(rc);                                      \
	   zm_test_check(_r >= 0, fatal, __FILE__, __LINE__, "%s failed: %lld (%s)", \
			 #rc, _r, _r < 0 && _r > -4096 ? strerror((int)-_r) : "");   \
	})
#define ZM_OK_PTR_(fatal, p) \
	zm_test_check((p) != NULL, fatal, __FILE__, __LINE__, "%s is NULL", #p)
#define ZM_STREQ_(fatal, a, b)                                                  \
	({ const char *_a = (a), *_b = (b);                                     \
	   zm_test_check(_a && _b && !strcmp(_a, _b), fatal, __FILE__, __LINE__, \
			 "%s == %s: \"%s\" vs \"%s\"", #a, #b, _a ? _a : "(null)",  \
			 _b ? _b : "(null)"); })
#define ZM_STRSTR_(fatal, hay, needle)                                          \
	({ const char *_h = (hay), *_n = (needle);                              \
	   zm_test_check(_h && _n && strstr(_h, _n), fatal, __FILE__, __LINE__,  \
			 "%s contains \"%s\": got \"%.400s\"", #hay, _n ? _n : "", \
			 _h ? _h : "(null)"); })

#define ASSERT_EQ(a, b) ZM_CMP_(true, a, ==, b)
#define ASSERT_NE(a, b) ZM_CMP_(true, a, !=, b)
#define ASSERT_LT(a, b) ZM_CMP_(true, a, <, b)
#define ASSERT_LE(a, b) ZM_CMP_(true, a, <=, b)
#define ASSERT_GT(a, b) ZM_CMP_(true, a, >, b)
#define ASSERT_GE(a, b) ZM_CMP_(true, a, >=, b)
#define ASSERT_TRUE(c) ZM_TRUE_(true, c)
#define ASSERT_FALSE(c) ZM_FALSE_(true, c)
#define ASSERT_OK(rc) ZM_OK_(true, rc)
#define ASSERT_OK_PTR(p) ZM_OK_PTR_(true, p)
#define ASSERT_STREQ(a, b) ZM_STREQ_(true, a, b)
#define ASSERT_STRSTR(h, n) ZM_STRSTR_(true, h, n)

#define EXPECT_EQ(a, b) ZM_CMP_(false, a, ==, b)
#define EXPECT_NE(a, b) ZM_CMP_(false, a, !=, b)
#define EXPECT_LT(a, b) ZM_CMP_(false, a, <, b)
#define EXPECT_LE(a, b) ZM_CMP_(false, a, <=, b)
#define EXPECT_GT(a, b) ZM_CMP_(false, a, >, b)
#define EXPECT_GE(a, b) ZM_CMP_(false, a, >=, b)
#define EXPECT_TRUE(c) ZM_TRUE_(false, c)
#define EXPECT_FALSE(c) ZM_FALSE_(false, c)
#define EXPECT_OK(rc) ZM_OK_(false, rc)
#define EXPECT_OK_PTR(p) ZM_OK_PTR_(false, p)
#define EXPECT_STREQ(a, b) ZM_STREQ_(false, a, b)
#define EXPECT_STRSTR(h, n) ZM_STRSTR_(false, h, n)

#endif /* ZM_TEST_H */
