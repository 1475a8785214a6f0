#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# sudo make demo: the ecommerce example cluster with traffic between services.
# Brings the lab up, sends requests from pods to services, says who answered
# and on which node, and tears everything down on exit or Ctrl-C.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
ctl="$top/build/zmeshctl"
lab=${ZMESH_LAB:-demo}
manifest="$top/deploy/examples/ecommerce.yaml"

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: needs root (network namespaces, cgroups): sudo make demo" >&2
	exit 1
fi

cleanup() { "$ctl" lab down --name "$lab" >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== zmesh demo: lab '$lab' from deploy/examples/ecommerce.yaml"
"$ctl" lab up -f "$manifest" --name "$lab"
"$ctl" lab status --name "$lab" | sed -n '/^NAMESPACE *POD/,/^$/p'

# Which node each pod is on, for the summary lines.
declare -A node_of
while read -r ns pod node _; do node_of[$pod]=$node; done < <(
	"$ctl" lab status --name "$lab" | awk '/^NAMESPACE *POD/{p=1;next} /^$/{p=0} p{print $1, $2, $3}')

# Wait for the ztunnels and the echoapps.
for n in node-1 node-2; do
	for _ in $(seq 1 50); do
		"$ctl" lab exec --node "$n" --name "$lab" -- curl -sf localhost:15021/healthz/ready >/dev/null 2>&1 && break
		sleep 0.1
	done
done
for _ in $(seq 1 50); do
	"$ctl" lab exec user-v1 -n ecommerce --name "$lab" -- \
		echoapp client http://order-service:8080/ -n 1 >/dev/null 2>&1 && break
	sleep 0.1
done

mesh="ecommerce is in the mesh: BPF captures it, ztunnels carry it as HBONE (mTLS 1.3) between meshed pods"

# from-pod namespace url requests [extra client args]
traffic() {
	local from=$1 ns=$2 url=$3 n=$4; shift 4
	local out pods=""
	out=$("$ctl" lab exec "$from" -n "$ns" --name "$lab" -- echoapp client "$url" -n "$n" -o json "$@") || true
	for p in $(echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(f"{k}={v}" for k,v in sorted(d["pods"].items())))'); do
		pods+=" ${p%%=*} (${node_of[${p%%=*}]:-?}) x${p#*=},"
	done
	local errs
	errs=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"])')
	printf '  %-14s (%s) -> %-34s %s errors %s\n' "$from" "${node_of[$from]:-?}" "$url" "${pods%,}" "$errs"
}

echo
echo "== traffic ($mesh)"
traffic user-v1 ecommerce http://order-service:8080/orders 20
traffic user-v1 ecommerce http://payment-service:8080/pay 40 -c 8
traffic order-v1 ecommerce http://product-service.ecommerce:8080/items 10 --http2
traffic payment-v2 ecommerce http://user-service:8080/users 30 -c 3
traffic order-v1 ecommerce tcp://user-service:9000 6
traffic legacy-client legacy http://product-service.ecommerce.svc.cluster.local:8080/ 10

echo
echo "== what the mesh saw"
"$ctl" bpf status --name "$lab" --node node-1 | sed -n '1p;/^  counters:/p'
echo "  ztunnel on node-2, connections it received (Istio's metric):"
"$ctl" lab exec --node node-2 --name "$lab" -- curl -s localhost:15020/metrics |
	grep '^istio_tcp_connections_opened_total{reporter="destination"' |
	sed -E 's/.*source_workload="([^"]*)",source_workload_namespace="([^"]*)".*destination_workload="([^"]*)".*connection_security_policy="([^"]*)"\} ([0-9]+)/    \2\/\1 -> \3 (\4): \5/'

echo
echo "== one answer in full (user-v1 -> payment-service)"
"$ctl" lab exec user-v1 -n ecommerce --name "$lab" -- curl -s http://payment-service:8080/pay?id=7 |
	python3 -m json.tool

if [ -t 0 ] && [ -z "${CI:-}" ]; then
	echo
	echo "The lab stays up: try '$ctl lab exec user-v1 -n ecommerce --name $lab -- curl -s order-service:8080/'."
	echo "Press Enter or Ctrl-C to tear it down."
	read -r _ || true
fi
echo "== tearing down lab '$lab'"
