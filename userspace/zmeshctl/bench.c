// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshctl bench: the benchmark run of issue 7 (scripts/bench.sh, which this
 * build finds beside its build directory): options become the script's
 * environment, so `sudo make bench` and this command run the same thing.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

static const char usage[] =
	"usage: zmeshctl bench [--modes M[,M]...] [--placements cross-node,same-node]\n"
	"                      [--duration S] [--rate R] [--name LAB]\n"
	"modes: none ambient-l4 ambient-l4-nofastpath ambient-l7 sidecar sidecar-haproxy (default: all)\n"
	"Markdown table on stdout; build/bench/results.json and PNG plots (docs/benchmarks.md).\n";

/* "a,b" -> "a b" (the script's list form); NULL for anything but [a-z0-9.,-]. */
static char *list(const char *v)
{
	char *s = strdup(v);

	for (char *p = s; p && *p; p++) {
		if (*p == ',')
			*p = ' ';
		else if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			return free(s), NULL;
	}
	return s;
}

static int cmd_bench(int argc, char **argv)
{
	static const struct { const char *opt, *env; } map[] = {
		{ "--modes", "BENCH_MODES" }, { "--placements", "BENCH_PLACEMENTS" },
		{ "--duration", "BENCH_DURATION" }, { "--rate", "BENCH_RATE" }, { "--name", "BENCH_LAB" },
	};
	char self[PATH_MAX], script[PATH_MAX + 32], *slash;
	ssize_t n;

	for (int i = 1; i < argc; i += 2) {
		size_t k;
		char *v;

		for (k = 0; k < sizeof(map) / sizeof(map[0]) && strcmp(argv[i], map[k].opt); k++)
			;
		if (k == sizeof(map) / sizeof(map[0]) || i + 1 >= argc || !(v = list(argv[i + 1]))) {
			fputs(usage, stderr);
			return 2;
		}
		setenv(map[k].env, v, 1);
		free(v);
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		fprintf(stderr, "zmeshctl bench: /proc/self/exe: %s\n", strerror(errno));
		return 1;
	}
	self[n] = 0;
	slash = strrchr(self, '/');
	if (slash)
		*slash = 0;
	/* build/zmeshctl (or build/clang/zmeshctl): the script is in ../scripts. */
	setenv("ZMESH_BIN", self, 1);
	for (int up = 1; up <= 2; up++) {
		snprintf(script, sizeof(script), "%s/%s/scripts/bench.sh", self, up == 1 ? ".." : "../..");
		if (access(script, X_OK) == 0) {
			execl(script, "bench.sh", (char *)NULL);
			fprintf(stderr, "zmeshctl bench: %s: %s\n", script, strerror(errno));
			return 1;
		}
	}
	fprintf(stderr, "zmeshctl bench: no scripts/bench.sh beside %s\n", self);
	return 1;
}

ZM_CMD(bench, cmd_bench, "bench [--modes M,..] [--duration S]  all data-plane modes side by side on the lab");
