#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# make bench / zmeshctl bench: the same load through each data-plane mode, side by
# side, in one run on the lab (docs/benchmarks.md has the method).
#
#   BENCH_MODES       modes to run, in order (default: all of them below)
#   BENCH_PLACEMENTS  "cross-node same-node" (default both)
#   BENCH_DURATION    seconds per measurement (default 3; 7 measurements per
#                     mode and placement: the default run takes about 6 minutes)
#   BENCH_RATE        open-loop rate for the latency figures, req/s (default 2000)
#   BENCH_LAB         lab name (default bench)
#   BENCH_OUT         output directory (default build/bench)
#
# Modes: none (no mesh), ambient-l4 (BPF capture + ztunnel per node, sockmap fast
# path on), ambient-l4-nofastpath, ambient-l7 (through a waypoint: skipped with a
# note while there is no waypoint binary), sidecar (our ztunnel as a per-pod
# sidecar behind iptables REDIRECT), sidecar-haproxy (HAProxy per pod, mTLS).
#
# Output: a Markdown table on stdout; build/bench/results.json; PNG plots in
# build/bench/ (gnuplot); every loadgen answer in build/bench/raw/.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${ZMESH_BIN:-$top/build}
ctl="$bin/zmeshctl"
out=${BENCH_OUT:-$top/build/bench}
dur=${BENCH_DURATION:-3}
rate=${BENCH_RATE:-2000}
lab=${BENCH_LAB:-bench}
modes=${BENCH_MODES:-none ambient-l4 ambient-l4-nofastpath ambient-l7 sidecar sidecar-haproxy}
placements=${BENCH_PLACEMENTS:-cross-node same-node}

[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 1; }
[ -x "$bin/loadgen" ] || { echo "bench: no $bin/loadgen (make first)" >&2; exit 1; }
rm -rf "$out/raw"
mkdir -p "$out/raw"
: > "$out/notes.txt"
cgroot=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)

cleanup() { "$ctl" lab down --name "$lab" >/dev/null 2>&1 || true; }
trap cleanup EXIT

note() { echo "$*" >> "$out/notes.txt"; echo "bench: $*" >&2; }

cluster() {
	cat <<YAML
apiVersion: v1
kind: Node
metadata: {name: bn1}
---
apiVersion: v1
kind: Node
metadata: {name: bn2}
---
apiVersion: v1
kind: Namespace
metadata:
  name: b
  labels: {istio.io/dataplane-mode: ambient}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: b}
spec:
  nodeName: bn1
  containers: [{name: c, command: [sleep, "36000"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: far, namespace: b, labels: {app: far}}
spec:
  nodeName: bn2
  containers: [{name: c, command: [echoapp, serve, --http, "8080", --tcp, "9000"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: near, namespace: b, labels: {app: near}}
spec:
  nodeName: bn1
  containers: [{name: c, command: [echoapp, serve, --http, "8080", --tcp, "9000"]}]
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: b}
spec:
  selector: {app: far}
  ports: [{name: http, port: 8080, targetPort: 8080}, {name: tcp, port: 9000, targetPort: 9000}]
  clusterIP: 10.96.0.10
---
apiVersion: v1
kind: Service
metadata: {name: near, namespace: b}
spec:
  selector: {app: near}
  ports: [{name: http, port: 8080, targetPort: 8080}, {name: tcp, port: 9000, targetPort: 9000}]
  clusterIP: 10.96.0.11
YAML
}

in_client() { "$ctl" lab exec client -n b --name "$lab" -- "$@"; }

# Summed VmRSS (KiB) of every process under cgroup directory $1.
cg_rss() {
	local t=0 p r
	for p in $(find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null); do
		r=$(awk '/^VmRSS/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
		t=$((t + ${r:-0}))
	done
	echo $t
}

# lg NAME LOADGEN-ARGS...: one loadgen run from the client pod, JSON to raw/.
lg() {
	local name=$1
	shift
	timeout $((${dur%.*} + 40)) "$ctl" lab exec client -n b --name "$lab" -- \
		loadgen "$@" --duration "${lgdur:-$dur}" --warmup 0.5 -o json ${watch:+--watch-cgroup "$watch"} \
		${watch2:+--watch-cgroup "$watch2"} \
		> "$out/raw/$name.json" 2> "$out/raw/$name.err" || true
	[ -s "$out/raw/$name.json" ] || echo '{}' > "$out/raw/$name.json"
}

lab_up() {	# $1: mode
	cluster > "$out/cluster.yaml"
	case $1 in
	none) "$ctl" lab up --no-mesh -f "$out/cluster.yaml" --name "$lab" >/dev/null || return 1; watch= watch2= ;;
	sidecar | sidecar-haproxy)
		"$ctl" lab up --mode "$1" -f "$out/cluster.yaml" --name "$lab" >/dev/null || return 1
		watch="$cgroot/zmesh/$lab/sidecars" watch2= ;;
	*)
		"$ctl" lab up -f "$out/cluster.yaml" --name "$lab" >/dev/null || return 1
		watch="$cgroot/zmesh/$lab/nodes" watch2=
		for n in bn1 bn2; do
			for _ in $(seq 1 50); do
				"$ctl" lab exec --node $n --name "$lab" -- curl -sf localhost:15021/healthz/ready >/dev/null 2>&1 && break
				sleep 0.1
			done
		done
		if [ "$1" = ambient-l4 ]; then
			"$ctl" bpf fastpath on --name "$lab" --node bn1 >/dev/null
			"$ctl" bpf fastpath on --name "$lab" --node bn2 >/dev/null
		fi
		# ambient-l7: a waypoint for the namespace; service traffic goes
		# through it (its CPU and memory count with the ztunnels').
		if [ "$1" = ambient-l7 ]; then
			"$ctl" waypoint apply -n b --enroll-namespace --lab "$lab" >/dev/null || return 1
			watch2="$cgroot/zmesh/$lab/pods/b_waypoint"
			for _ in $(seq 1 100); do
				in_client curl -s -m 2 http://10.96.0.10:8080/ 2>/dev/null | grep -q x-request-id && break
				sleep 0.1
			done
		fi ;;
	esac
	# The servers answer through the mesh before anything is measured.
	local targets="10.244.1.2 10.244.0.3"
	[ "$1" = ambient-l7 ] && targets="10.96.0.10 10.96.0.11"
	for ip in $targets; do
		for _ in $(seq 1 50); do
			in_client echoapp client "tcp://$ip:9000" -n 1 >/dev/null 2>&1 && break
			sleep 0.1
		done
	done
}

for mode in $modes; do
	if [ "$mode" = ambient-l7 ] && [ ! -x "$bin/waypoint" ]; then
		note "ambient-l7 skipped: no waypoint binary in this build (issue 6)"
		continue
	fi
	case $mode in
	none | ambient-l4 | ambient-l4-nofastpath | ambient-l7 | sidecar | sidecar-haproxy) ;;
	*) echo "bench: unknown mode $mode" >&2; exit 2 ;;
	esac
	if [ "$mode" = sidecar-haproxy ] && ! command -v haproxy >/dev/null; then
		note "sidecar-haproxy skipped: no haproxy (make deps)"
		continue
	fi
	echo "bench: $mode" >&2
	if ! lab_up "$mode"; then
		note "$mode skipped: zmeshctl lab up failed"
		continue
	fi
	for place in $placements; do
		case $place in
		cross-node) ip=10.244.1.2 ;;
		same-node) ip=10.244.0.3 ;;
		*) echo "bench: unknown placement $place" >&2; exit 2 ;;
		esac
		# Waypoints serve service traffic: ambient-l7 dials the Services.
		[ "$mode" = ambient-l7 ] && { [ "$place" = cross-node ] && ip=10.96.0.10 || ip=10.96.0.11; }
		k="$mode@$place"
		# Syscalls and context switches of the proxies over the closed-loop
		# run's window (perf stat): the "why" behind CPU per request.
		perfpid=
		if [ -n "$watch" ] && command -v perf >/dev/null; then
			ppids=$(find "$watch" -name cgroup.procs -exec cat {} + | paste -sd,)
			pwin=$(python3 -c "print(max($dur - 0.4, 0.5))")
			echo "$pwin" > "$out/raw/$k@rr.perfwin"
			(sleep 0.7; perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$ppids" \
				-o "$out/raw/$k@rr.perf" -- sleep "$pwin") >/dev/null 2>&1 &
			perfpid=$!
		fi
		lg "$k@rr" --target "$ip:9000" --proto tcp-rr --size 1024 --conns 16
		[ -z "$perfpid" ] || wait "$perfpid" || true
		lg "$k@lat" --target "$ip:9000" --proto tcp-rr --size 1024 --conns 8 --rate "$rate"
		lg "$k@http1" --target "$ip:8080" --proto http1 --conns 16
		lg "$k@http2" --target "$ip:8080" --proto http2 --conns 4 --streams 10
		lg "$k@conn" --target "$ip:9000" --proto tcp-connect --size 1024 --conns 16 --linger0
		lg "$k@bulk" --target "$ip:9000" --proto bulk --conns 1
	done
	"$ctl" lab down --name "$lab" >/dev/null
	[ "$mode" = none ] && continue
	# Memory, in a fresh lab per placement (freed buffers of the runs above would
	# stay in RSS): the proxies' RSS idle, then with 1000 connections held open
	# at a trickle (read at the window's end), long enough for 1000 tunnels to
	# come up at a few hundred handshakes/s.
	for place in $placements; do
		case $place in
		cross-node) ip=10.244.1.2 ;;
		same-node) ip=10.244.0.3 ;;
		esac
		[ "$mode" = ambient-l7 ] && { [ "$place" = cross-node ] && ip=10.96.0.10 || ip=10.96.0.11; }
		k="$mode@$place"
		lab_up "$mode" || { note "$mode $place: no memory figures (lab up failed)"; continue; }
		sleep 1
		echo "{\"rss_kib\": $(( $(cg_rss "$watch") + $( [ -n "$watch2" ] && cg_rss "$watch2" || echo 0) )), \"proxies\": $(find "$watch" ${watch2:+"$watch2"} -name cgroup.procs -exec cat {} + | wc -l)}" \
			> "$out/raw/$k@idle0.json"
		lgdur=8 lg "$k@idle" --target "$ip:9000" --proto tcp-rr --size 16 --conns 1000 --rate 10 --timeout 10
		"$ctl" lab down --name "$lab" >/dev/null
	done
done

commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
python3 "$top/scripts/bench_report.py" "$out" "$dur" "$rate" "$commit"
