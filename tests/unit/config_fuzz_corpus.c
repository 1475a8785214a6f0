// SPDX-License-Identifier: Apache-2.0
/* The config fuzz corpus (examples and past crashers), replayed through the
 * fuzz target's entry point: a regression suite without libFuzzer. */
#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../harness/test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#include "../fuzz/config/fuzz.c"

static const char *corpus_dir(void)
{
	static char probe[PATH_MAX + 64];
	char dir[PATH_MAX];
	struct stat st;

	/* build/ or build/clang/: walk up to the checkout. */
	snprintf(dir, sizeof(dir), "%s", test_build_dir());
	for (int i = 0; i < 4; i++) {
		char *slash;

		snprintf(probe, sizeof(probe), "%s/tests/fuzz/config/corpus", dir);
		if (stat(probe, &st) == 0)
			return probe;
		slash = strrchr(dir, '/');
		if (!slash)
			break;
		*slash = 0;
	}
	return "tests/fuzz/config/corpus";
}

TEST(config_corpus)
{
	char path[PATH_MAX + 300];
	struct dirent *de;
	DIR *d;
	int n = 0;

	d = opendir(corpus_dir());
	ASSERT_OK_PTR(d);
	while ((de = readdir(d))) {
		FILE *f;
		char *buf;
		long len;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", corpus_dir(), de->d_name);
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
	EXPECT_GE(n, 10);
	test_log("%d corpus files replayed", n);
}
