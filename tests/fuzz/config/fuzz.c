// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the config model end to end. Bytes -> YAML tree ->
 * typed objects -> cross-document validation -> JSON -> read back. Besides
 * memory errors (ASan/UBSan), it checks one property: an object that reads
 * clean writes out as JSON that reads back clean to the same JSON.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zmesh/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct zm_cfg_obj *o)
{
	struct zm_cfg_set again;
	json_t *a = zm_cfg_obj_to_json(o), *b = NULL;
	char *text;

	if (!a)
		return;
	text = json_dumps(a, JSON_SORT_KEYS);
	if (!text) {
		json_decref(a);
		return;
	}
	zm_cfg_set_init(&again);
	if (zm_cfg_load_buf(&again, "again.json", text, strlen(text)) != 0 || again.nobjs != 1) {
		fprintf(stderr, "round trip: %s\n%s\n", text,
			again.nerrs ? again.errs[0].text : "(no object)");
		abort();
	}
	b = zm_cfg_obj_to_json(again.objs[0]);
	if (b && !json_equal(a, b)) {
		char *t2 = json_dumps(b, JSON_SORT_KEYS);

		fprintf(stderr, "round trip differs:\n%s\n%s\n", text, t2 ? t2 : "");
		abort();
	}
	json_decref(b);
	zm_cfg_set_free(&again);
	free(text);
	json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zm_cfg_set s;
	char *str;

	zm_cfg_set_init(&s);
	zm_cfg_load_buf(&s, "fuzz.yaml", (const char *)data, size);
	zm_cfg_validate(&s, NULL);
	zm_cfg_sort_errors(&s);
	if (s.nerrs == 0)
		for (size_t i = 0; i < s.nobjs; i++)
			round_trip(s.objs[i]);
	zm_cfg_set_free(&s);

	/* The value checkers on raw text too (short inputs only: they are
	 * linear, this just keeps the run fast). */
	if (size < 4096 && (str = malloc(size + 1))) {
		int64_t ns;

		memcpy(str, data, size);
		str[size] = 0;
		(void)zm_regex_check(str);
		(void)zm_duration_parse(str, &ns);
		(void)zm_host_check(str, true);
		(void)zm_cidr_check(str);
		free(str);
	}
	return 0;
}
