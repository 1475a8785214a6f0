#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs every test binary given, sums their results and checks that nothing
# was left behind (network namespaces, BPF pins, cgroups, processes).
# The last line is "N passed, N failed, N skipped"; exit 1 on any failure.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
pass=0 fail=0 skip=0
failed_bins=()

for t in "$@"; do
	[ -x "$t" ] || continue
	echo "# ==== $t"
	out=$(mktemp)
	"$t" 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^# [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n1)
	if [ -n "$line" ]; then
		read -r p f s <<<"$(echo "$line" | sed -E 's/^# ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/')"
		pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	fi
	if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
		failed_bins+=("$t")
		[ -z "$line" ] && fail=$((fail + 1)) && echo "# $t: exited $rc without a summary"
	fi
	rm -f "$out"
done

# Leftovers: every test must clean up after itself, even when it fails.
left=$("$top/tests/leftovers.sh")
if [ -n "$left" ]; then
	echo "# left behind by the tests:"
	echo "$left" | sed 's/^/#   /'
	fail=$((fail + 1))
	failed_bins+=("leftovers")
	"$top/tests/leftovers.sh" --clean >/dev/null 2>&1
fi

[ ${#failed_bins[@]} -gt 0 ] && echo "# failed: ${failed_bins[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
