// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 fuzz corpora (path normalizer, JWT) replayed through the very entry
 * functions libFuzzer calls, so every seed and every past crasher is a
 * regression test in `make test`. The targets abort() when an invariant
 * breaks, which fails the test.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"

#define LLVMFuzzerTestOneInput fuzz_http_path_one
#include "../fuzz/http_path/fuzz.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_jwt_one
#include "../fuzz/jwt/fuzz.c"
#undef LLVMFuzzerTestOneInput

static int replay(const char *target, int (*fn)(const uint8_t *, size_t))
{
	char dir[4200], path[4500];
	struct dirent *de;
	DIR *d;
	int n = 0;

	/* The build dir is build/ or build/<variant>/ (B=build/clang). */
	static const char *const ups[] = { "/..", "/../.." };

	d = NULL;
	for (size_t i = 0; !d && i < sizeof(ups) / sizeof(ups[0]); i++) {
		snprintf(dir, sizeof(dir), "%s%s/tests/fuzz/%s/corpus", test_build_dir(), ups[i], target);
		d = opendir(dir);
	}
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		FILE *f;
		char *buf;
		long len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (!f)
			continue;
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc((size_t)len + 1);
		if (buf && fread(buf, 1, (size_t)len, f) == (size_t)len)
			fn((const uint8_t *)buf, (size_t)len);
		free(buf);
		fclose(f);
		n++;
	}
	closedir(d);
	return n;
}

TEST(http_path_corpus)
{
	int n = replay("http_path", fuzz_http_path_one);

	EXPECT_GE(n, 20);
	test_log("%d corpus files replayed", n);
}

TEST(jwt_corpus)
{
	int n = replay("jwt", fuzz_jwt_one);

	EXPECT_GE(n, 10);
	test_log("%d corpus files replayed", n);
}
