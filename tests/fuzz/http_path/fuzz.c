// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the path normalizer. The first byte picks the options,
 * the rest is the request-target. Besides "no crash", it checks what the
 * normalizer promises (http_path.h) and aborts when a promise breaks:
 * 3n+1 bytes of output always suffice, the output is printable ASCII with
 * no %00, starts with '/', has no dot segments (and no "//" when merging),
 * and normalizing the output again gives the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/http_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct zm_path_opts fuzz_path_opts(uint8_t sel)
{
	struct zm_path_opts o = zm_path_opts_istio((enum zm_istio_path_normalization)(sel & 3));

	if (sel & 4)
		o.escaped_slash = ZM_PATH_SLASH_REJECT;
	if (sel & 8)
		o.backslash_to_slash = !o.backslash_to_slash;
	return o;
}

static void fuzz_path_check(const char *out, const struct zm_path_result *r,
			    const struct zm_path_opts *o)
{
	if (r->len != strlen(out) || r->path_len > r->len)
		abort();
	if (r->len == 1 && out[0] == '*')
		return;
	if (out[0] != '/')
		abort();
	for (size_t i = 0; i < r->len; i++)
		if ((unsigned char)out[i] <= 0x20 || (unsigned char)out[i] >= 0x7f)
			abort();
	if (!o->normalize)
		return;
	for (size_t i = 0; i + 2 < r->path_len; i++)
		if (out[i] == '%' && out[i + 1] == '0' && out[i + 2] == '0')
			abort();
	for (size_t i = 0; i < r->path_len; i++) {
		size_t e = i + 1;

		if (out[i] != '/')
			continue;
		while (e < r->path_len && out[e] != '/')
			e++;
		if ((e - i == 2 && out[i + 1] == '.') ||
		    (e - i == 3 && out[i + 1] == '.' && out[i + 2] == '.'))
			abort();
		if (o->merge_slashes && e == i + 1 && e < r->path_len)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zm_path_opts o;
	struct zm_path_result r1, r2;
	char *o1, *o2;
	int rc;

	if (size < 1 || size > 8192)
		return 0;
	o = fuzz_path_opts(data[0]);
	data++;
	size--;
	o1 = malloc(3 * size + 1);
	o2 = malloc(3 * size + 1);
	if (!o1 || !o2)
		goto out;
	rc = zm_http_path_normalize((const char *)data, size, o1, 3 * size + 1, &o, &r1);
	if (rc == -ENOSPC)
		abort();
	if (rc)
		goto out;
	fuzz_path_check(o1, &r1, &o);
	if (o.normalize) {
		/* The output must be a fixed point. */
		if (zm_http_path_normalize(o1, r1.len, o2, 3 * size + 1, &o, &r2) ||
		    r2.len != r1.len || r2.path_len != r1.path_len || memcmp(o1, o2, r1.len))
			abort();
	}
out:
	free(o1);
	free(o2);
	return 0;
}
