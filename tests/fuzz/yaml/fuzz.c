// SPDX-License-Identifier: Apache-2.0
/* libFuzzer target: the YAML reader and the lab's manifest reader on top. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "zmesh/lab.h"
#include "zmesh/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct zm_yfile f;
	struct zm_error e = { 0 };
	char path[64];
	FILE *out;

	if (zm_yaml_load_buf("fuzz.yaml", (const char *)data, size, &f, &e) == 0)
		zm_yaml_free(&f);
	/* The typed reader takes files: give it one. */
	snprintf(path, sizeof(path), "/tmp/zm-fuzz-%d.yaml", getpid());
	out = fopen(path, "w");
	if (out) {
		struct zm_lab lab = { 0 };
		const char *files[1] = { path };

		fwrite(data, 1, size, out);
		fclose(out);
		zm_lab_spec_load(&lab, files, 1, &e);
		zm_lab_free(&lab);
		unlink(path);
	}
	return 0;
}
