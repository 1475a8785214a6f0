#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make deps: install what is missing from Debian's packages, mount bpffs.
# Idempotent and quiet when everything is already there.
set -euo pipefail

pkgs=(
	make gcc clang llvm pkg-config
	libbpf-dev bpftool libelf-dev zlib1g-dev
	liburing-dev libmnl-dev libyaml-dev libssl-dev openssl
	libnghttp2-dev nghttp2-client node-llhttp libjansson-dev libpcre2-dev
	libclang-rt-14-dev
	iproute2 nftables iptables curl procps psmisc python3 wrk
	tcpdump tshark prometheus haproxy gnuplot-nox
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing ${missing[*]}; run 'sudo make deps'" >&2
		exit 1
	fi
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# BPF pins live under /sys/fs/bpf/zmesh/<key>/.
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
exit 0
