// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 engine's fuzz corpus (tests/fuzz/l7route/corpus) replayed through
 * the libFuzzer entry, so every seed and past crasher runs in `make test`.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"

#define LLVMFuzzerTestOneInput fuzz_l7route_one
#include "../fuzz/l7route/fuzz.c"
#undef LLVMFuzzerTestOneInput

TEST(l7route_corpus)
{
	static const char *const ups[] = { "/..", "/../.." };
	char dir[4200], path[4500];
	struct dirent *de;
	DIR *d = NULL;
	int n = 0;

	for (size_t i = 0; !d && i < sizeof(ups) / sizeof(ups[0]); i++) {
		snprintf(dir, sizeof(dir), "%s%s/tests/fuzz/l7route/corpus", test_build_dir(), ups[i]);
		d = opendir(dir);
	}
	ASSERT_TRUE(d != NULL);
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
			fuzz_l7route_one((const uint8_t *)buf, (size_t)len);
		free(buf);
		fclose(f);
		n++;
	}
	closedir(d);
	test_log("%d inputs", n);
	EXPECT_GE(n, 7);
}
