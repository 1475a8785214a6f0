// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the proxy's reader of zmeshd's config stream
 * (cfgclient.h). The input is a stream: lines separated by '\n', each fed
 * to a fresh, never-connected client with zm_cfgclient_feed(). The config
 * callback refuses odd versions, so both ACK and NACK paths run. Beyond
 * "no crash": the accepted config is always an array of objects that each
 * have a kind and a metadata.name, and its version only changes on an
 * accepted line.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/cfgclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_on_config(void *arg, uint64_t version, json_t *objects, char *why, size_t whysz)
{
	(void)arg;
	if (!json_is_array(objects))
		abort();
	if (version & 1) {
		strncpy(why, "odd versions are refused", whysz - 1);
		why[whysz - 1] = 0;
		return -22;
	}
	return 0;
}

static void fuzz_check(struct zm_cfgclient *c)
{
	json_t *cfg = zm_cfgclient_config(c), *o;
	size_t i;
	bool have;

	zm_cfgclient_version(c, &have);
	if (have != (cfg != NULL) || (cfg && !json_is_array(cfg)))
		abort();
	json_array_foreach(cfg, i, o)
		if (!json_is_string(json_object_get(o, "kind")) ||
		    !json_is_string(json_object_get(json_object_get(o, "metadata"), "name")))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zm_cfgclient_opts o = { .server = "127.0.0.1:1", .cred_dir = "/nonexistent",
				       .on_config = fuzz_on_config };
	struct zm_cfgclient *c = NULL;
	struct zm_error e;
	const char *p = (const char *)data, *end = p + size;

	if (zm_cfgclient_new(&o, &c, &e))
		abort();
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);
		uint64_t before, after;
		bool hb, ha;
		char why[256];
		int rc;

		before = zm_cfgclient_version(c, &hb);
		rc = zm_cfgclient_feed(c, p, len, why, sizeof(why));
		after = zm_cfgclient_version(c, &ha);
		if (rc && (ha != hb || after != before))
			abort();
		fuzz_check(c);
		p += len + 1;
	}
	zm_cfgclient_free(c);
	return 0;
}
