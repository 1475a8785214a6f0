#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Prints what zmesh tests or labs left on this machine (one line each);
# prints nothing when clean. --clean removes it as well.
set -u
clean=0
[ "${1:-}" = "--clean" ] && clean=1

for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^zm' ); do
	echo "netns $ns"
	[ $clean = 1 ] && ip netns delete "$ns"
done
for d in /etc/netns/zm*; do
	[ -e "$d" ] || continue
	echo "netns config $d"
	[ $clean = 1 ] && rm -rf "$d"
done
if [ -d /sys/fs/bpf/zmesh ] && [ -n "$(ls -A /sys/fs/bpf/zmesh 2>/dev/null)" ]; then
	echo "bpf pins under /sys/fs/bpf/zmesh"
	[ $clean = 1 ] && rm -rf /sys/fs/bpf/zmesh
fi
if [ -d /run/zmesh/bpf ] && [ -n "$(ls -A /run/zmesh/bpf 2>/dev/null)" ]; then
	echo "loader notes under /run/zmesh/bpf"
	[ $clean = 1 ] && rm -rf /run/zmesh/bpf
fi
for cg in /sys/fs/cgroup/unified/zmesh*; do
	[ -d "$cg" ] || continue
	echo "cgroup $cg"
	[ $clean = 1 ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
done
# Zombies do not count: their parent (often init, after the lab's zmeshctl
# exited) reaps them in its own time.
# Only binaries of this checkout: another checkout's tests on the same machine
# are not ours to judge or kill.
top=$(cd "$(dirname "$0")/.." && pwd)
for p in ztunnel waypoint zmeshd echoapp nodeagent; do
	for pid in $(pgrep -x "$p"); do
		st=$(ps -o stat= -p "$pid" 2>/dev/null) || continue
		case "$st" in Z*) continue ;; esac
		exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || continue
		case "$exe" in "$top"/*) ;; *) continue ;; esac
		echo "process $p ($pid)"
		[ $clean = 1 ] && kill -9 "$pid"
	done
done
exit 0
