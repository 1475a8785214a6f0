// SPDX-License-Identifier: Apache-2.0
/* Every fuzz corpus file, replayed through its target: a regression suite
 * that runs in `make test` without libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#include "../fuzz/yaml/fuzz.c"

TEST(yaml_corpus)
{
	char dir[4200], path[4500];
	struct dirent *de;
	DIR *d;
	int n = 0;

	/* build/ or build/clang/: walk up to the checkout. */
	snprintf(dir, sizeof(dir), "%s/../tests/fuzz/yaml/corpus", test_build_dir());
	d = opendir(dir);
	for (int up = 0; up < 3 && !d; up++) {
		size_t l = strlen(dir) - strlen("/tests/fuzz/yaml/corpus");

		snprintf(dir + l, sizeof(dir) - l, "/..%s", "/tests/fuzz/yaml/corpus");
		d = opendir(dir);
	}
	ASSERT_OK_PTR(d);
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
			LLVMFuzzerTestOneInput((const uint8_t *)buf, (size_t)len);
		free(buf);
		fclose(f);
		n++;
	}
	closedir(d);
	EXPECT_GE(n, 4);
	test_log("%d corpus files replayed", n);
}
