// SPDX-License-Identifier: Apache-2.0
/*
 * zmeshctl bench end to end, shortened: modes none, ambient-l7 (through a
 * waypoint) and sidecar, same-node, half-second runs. Checks the
 * outputs' shape and that every figure was measured, never their values.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/test.h"

static char dir[64];

static void rm_out(void *arg)
{
	(void)arg;
	test_sh(NULL, 0, "rm -rf %s", dir);
}

/* Every field of the schema, and the figures that must be measured. */
static const char check[] =
	"import json, sys\n"
	"d = json.load(open(sys.argv[1] + '/results.json'))\n"
	"m = d['machine']\n"
	"assert m['kernel'] and m['cpu_model'] and m['cores'] >= 1, m\n"
	"keys = ['mode', 'placement', 'rps', 'p50_us', 'p90_us', 'p99_us', 'p999_us', 'gbps', 'conn_per_s',\n"
	"        'cpu_s_per_10k_req', 'cpu_s_per_gb', 'proxy_rss_kib']\n"
	"rows = {r['mode']: r for r in d['results']}\n"
	"print(sorted(rows), [r['placement'] for r in d['results']])\n"
	"for r in d['results']:\n"
	"    assert all(k in r for k in keys), r\n"
	"    for k in ('rps', 'p50_us', 'p999_us', 'gbps', 'conn_per_s', 'http1_rps', 'http2_rps'):\n"
	"        assert r[k] and r[k] > 0, (r['mode'], k, r[k])\n"
	"s = rows['sidecar']\n"
	"for k in ('cpu_s_per_10k_req', 'cpu_s_per_gb', 'proxy_rss_kib', 'proxy_rss_idle_kib', 'rss_kib_per_1k_idle_conns'):\n"
	"    assert s[k] and s[k] > 0, (k, s[k])\n"
	"assert s['proxies'] == 3, s['proxies']\n"
	"assert rows['none']['cpu_s_per_10k_req'] is None\n"
	"print('notes', d['notes'])\n";

TEST(bench_runs_every_mode_and_writes_table_json_and_plots)
{
	static char out[65536];
	char py[128];
	FILE *f;

	REQUIRE_ROOT();
	snprintf(dir, sizeof(dir), "/tmp/zm-bench-%d", getpid());
	test_defer(rm_out, NULL);
	ASSERT_EQ(test_sh(NULL, 0, "mkdir -p %s", dir), 0);
	snprintf(py, sizeof(py), "%s/check.py", dir);
	f = fopen(py, "w");
	ASSERT_OK_PTR(f);
	fputs(check, f);
	fclose(f);
	ASSERT_EQ(test_sh(out, sizeof(out), "BENCH_OUT=%s %s/zmeshctl bench --modes none,ambient-l7,sidecar "
			  "--placements same-node --duration 0.5 --name bt%d 2>/dev/null",
			  dir, test_build_dir(), getpid() % 100000), 0);
	EXPECT_STRSTR(out, "| mode | placement | req/s tcp 1KiB |");
	EXPECT_STRSTR(out, "| none | same-node |");
	EXPECT_STRSTR(out, "| sidecar | same-node |");
	EXPECT_STRSTR(out, "| ambient-l7 | same-node |");
	ASSERT_EQ(test_sh(out, sizeof(out), "python3 %s %s 2>&1", py, dir), 0);
	EXPECT_STRSTR(out, "['ambient-l7', 'none', 'sidecar'] ['same-node', 'same-node', 'same-node']");
	if (!access("/usr/bin/gnuplot", X_OK)) {
		EXPECT_EQ(test_sh(NULL, 0, "test -s %s/latency-same-node.png && test -s %s/rps.png && test -s %s/gbps.png",
				  dir, dir, dir), 0);
	}
}
