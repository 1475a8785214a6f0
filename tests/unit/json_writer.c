// SPDX-License-Identifier: Apache-2.0
/* zm_json_*: output always parses (jansson) and round-trips valid UTF-8. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"
#include "zmesh/json.h"

static void buf_cleanup(void *arg)
{
	zm_buf_free(arg);
}

/* Parse b's content as a JSON string (with JSON_DECODE_ANY); NULL if invalid. */
static json_t *parse(struct zm_buf *b)
{
	return json_loadb(zm_buf_data(b), zm_buf_len(b), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

TEST(escapes_specials)
{
	static struct zm_buf b;
	const char in[] = "a\"b\\c\nd\te\x01" "f\x7f";

	test_defer(buf_cleanup, &b);
	ASSERT_OK(zm_json_str(&b, in, sizeof(in) - 1));
	ASSERT_STREQ(zm_buf_cstr(&b), "\"a\\\"b\\\\c\\nd\\te\\u0001f\\u007f\"");
	json_t *j = parse(&b);

	ASSERT_OK_PTR(j);
	EXPECT_EQ(json_string_length(j), sizeof(in) - 1);
	EXPECT_EQ(memcmp(json_string_value(j), in, sizeof(in) - 1), 0);
	json_decref(j);
}

TEST(utf8_kept_invalid_bytes_escaped)
{
	static struct zm_buf b;
	/* é, €, 😀 are valid; then a lone continuation, an overlong "/", a surrogate, a cut sequence. */
	const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82";

	test_defer(buf_cleanup, &b);
	ASSERT_OK(zm_json_str(&b, in, sizeof(in) - 1));
	EXPECT_STREQ(zm_buf_cstr(&b), "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80|\\u0080|\\u00c0\\u00af|"
				      "\\u00ed\\u00a0\\u0080|\\u00e2\\u0082\"");
	json_t *j = parse(&b);

	EXPECT_OK_PTR(j);
	json_decref(j);
}

TEST(random_bytes_always_valid_json)
{
	static struct zm_buf b;
	unsigned int seed = 1234;

	test_defer(buf_cleanup, &b);
	for (int round = 0; round < 2000; round++) {
		char in[64];
		size_t n = (size_t)(rand_r(&seed) % (int)sizeof(in));

		for (size_t i = 0; i < n; i++)
			in[i] = (char)rand_r(&seed);
		zm_buf_reset(&b);
		ASSERT_OK(zm_json_str(&b, in, n));
		json_t *j = parse(&b);

		if (!ASSERT_OK_PTR(j))
			break;
		json_decref(j);
	}
}

TEST(object_helpers)
{
	static struct zm_buf b;

	test_defer(buf_cleanup, &b);
	ASSERT_OK(zm_buf_puts(&b, "{"));
	ASSERT_OK(zm_json_kv_str(&b, 1, "pod", "order-v1"));
	ASSERT_OK(zm_json_kv_int(&b, 0, "n", -5));
	ASSERT_OK(zm_json_kv_str(&b, 0, "nil", NULL));
	ASSERT_OK(zm_buf_puts(&b, ",\"joined\":\""));
	ASSERT_OK(zm_json_escape(&b, "a\"", 2));
	ASSERT_OK(zm_json_escape(&b, ", b", 3));
	ASSERT_OK(zm_buf_puts(&b, "\"}"));
	ASSERT_STREQ(zm_buf_cstr(&b), "{\"pod\":\"order-v1\",\"n\":-5,\"nil\":\"\",\"joined\":\"a\\\", b\"}");
	json_t *j = parse(&b);

	ASSERT_OK_PTR(j);
	EXPECT_STREQ(json_string_value(json_object_get(j, "joined")), "a\", b");
	json_decref(j);
}
