#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Run lab integration tests with a ThreadSanitizer build of ztunnel (make tsan-ztunnel).
# The lab starts the ztunnel next to zmeshctl, so this runs them from a scratch
# copy of build/ whose ztunnel is the TSan one; build/ itself is not touched.
#
#   scripts/tsan-ztunnel.sh ztunnel_workers [ztunnel ...]
#
# Reports land in $TSAN_DIR (default /tmp/zmesh-tsan): one file per ztunnel process.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${TSAN_DIR:-/tmp/zmesh-tsan}
[ -x "$top/build/tsan/ztunnel" ] || { echo "tsan-ztunnel: make tsan-ztunnel first" >&2; exit 1; }
[ $# -gt 0 ] || { echo "usage: $0 TEST..." >&2; exit 2; }
scratch=$(mktemp -d /tmp/zmesh-tsan-bin.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/tests/integration" "$out"
for b in zmeshctl zmeshd echoapp loadgen waypoint; do
	[ -x "$top/build/$b" ] && cp "$top/build/$b" "$scratch/"
done
cp "$top/build/tsan/ztunnel" "$scratch/ztunnel"
rc=0
for t in "$@"; do
	cp "$top/build/tests/integration/$t" "$scratch/tests/integration/"
	TSAN_OPTIONS="log_path=$out/ztunnel halt_on_error=0 second_deadlock_stack=1" \
		"$scratch/tests/integration/$t" || rc=1
done
n=$(cat "$out"/ztunnel.* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer' || true)
echo "tsan-ztunnel: $n ThreadSanitizer report(s) in $out"
exit $rc
