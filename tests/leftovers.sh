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
for cg in /sys/fs/cgroup/unified/zmesh*; do
	[ -d "$cg" ] || continue
	echo "cgroup $cg"
	[ $clean = 1 ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
done
# Zombies do not count: their parent (often init, after the lab's zmeshctl
# exited) reaps them in its own time.
live() { ps -eo stat=,comm= | awk -v c="$1" '$2 == c && $1 !~ /^Z/' | grep -q .; }
for p in ztunnel waypoint zmeshd echoapp; do
	if live "$p"; then
		echo "process $p"
		[ $clean = 1 ] && pkill -9 -x "$p"
	fi
done
exit 0
