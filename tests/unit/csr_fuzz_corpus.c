// SPDX-License-Identifier: Apache-2.0
/* The csr fuzz corpus, replayed through its target (a regression suite in
 * `make test`), and what its seeds must give. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../harness/test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#include "../fuzz/csr/fuzz.c"

static DIR *corpus_dir(char *dir, size_t sz)
{
	static const char rel[] = "/tests/fuzz/csr/corpus";
	DIR *d;

	/* build/ or build/clang/: walk up to the checkout. */
	snprintf(dir, sz, "%s/..%s", test_build_dir(), rel);
	d = opendir(dir);
	for (int up = 0; up < 3 && !d; up++) {
		size_t l = strlen(dir) - strlen(rel);

		snprintf(dir + l, sz - l, "/..%s", rel);
		d = opendir(dir);
	}
	return d;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (!fseek(f, 0, SEEK_END) && (n = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = 0;
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

TEST(csr_corpus)
{
	char dir[4200], path[4500];
	struct dirent *de;
	DIR *d = corpus_dir(dir, sizeof(dir));
	int n = 0;

	ASSERT_OK_PTR(d);
	while ((de = readdir(d))) {
		size_t len;
		char *buf;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		buf = slurp(path, &len);
		if (buf)
			LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
		n++;
	}
	closedir(d);
	EXPECT_GE(n, 10);
	test_log("%d corpus files replayed", n);
}

TEST(csr_seeds_mean_what_they_say)
{
	static const struct { const char *file; int rc; const char *why; } cases[] = {
		{ "seed-pem-workload", 0, "" },
		{ "seed-pem-two-uris", -EINVAL, "exactly one URI SAN, found 2" },
		{ "seed-pem-dns-only", -EINVAL, "exactly one URI SAN, found 0" },
		{ "seed-pem-node-id", -EINVAL, "not a SPIFFE workload ID" },
		{ "seed-garbage", -EINVAL, "not a PEM certificate request" },
	};
	char dir[4200], path[4500], why[256];
	DIR *d = corpus_dir(dir, sizeof(dir));

	ASSERT_OK_PTR(d);
	closedir(d);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct zm_spiffe_id id;
		size_t len;
		char *buf;

		snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
		buf = slurp(path, &len);
		ASSERT_OK_PTR(buf);
		why[0] = 0;
		EXPECT_EQ(zm_ca_csr_identity(buf + 1, len - 1, &id, why, sizeof(why)), cases[i].rc);
		EXPECT_STRSTR(why, cases[i].why);
		if (cases[i].rc == 0) {
			EXPECT_STREQ(id.ns, "shop");
			EXPECT_STREQ(id.sa, "web");
		}
		free(buf);
	}
}
