#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make fuzz: build every tests/fuzz/<target>/fuzz.c with libFuzzer + ASan + UBSan
# against the library sources and run it ZM_FUZZ_SECONDS (default 120) on its
# corpus; new crashers land in tests/fuzz/<target>/ as crash-*.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${ZM_FUZZ_SECONDS:-120}
out="$top/build/fuzz"
mkdir -p "$out"
make -C "$top" --no-print-directory all >/dev/null	# skeletons the library includes
for f in "$top"/tests/fuzz/*/fuzz.c; do
	t=$(basename "$(dirname "$f")")
	echo "== fuzz $t for ${secs}s"
	# A target may name sources outside the library (one path per line,
	# from the top): the waypoint's HTTP/1 parser is one.
	extra=()
	[ -f "$(dirname "$f")/sources" ] && mapfile -t extra < <(sed "s|^|$top/|" "$(dirname "$f")/sources")
	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I"$top/include" -I"$top/build" \
		-I/usr/share/include/llhttp -o "$out/$t" "$f" "${extra[@]}" "$top"/userspace/lib/*.c /usr/share/llhttp/*.c \
		-lbpf -lelf -lz -luring -lmnl -lyaml -lnghttp2 -ljansson -lpcre2-8 -lssl -lcrypto -lpthread -lm
	mkdir -p "$out/$t-corpus"
	(cd "$(dirname "$f")" && "$out/$t" -max_total_time="$secs" -max_len=65536 "$out/$t-corpus" corpus)
done
