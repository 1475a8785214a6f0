#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench_report.py OUT DURATION RATE COMMIT: turn scripts/bench.sh's raw loadgen
answers (OUT/raw/<mode>@<placement>@<run>.json) into OUT/results.json, a Markdown
table on stdout and gnuplot PNGs in OUT/."""
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time

out, dur, rate, commit = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
MODES = ["none", "ambient-l4", "ambient-l4-nofastpath", "ambient-l7", "sidecar", "sidecar-haproxy"]
PLACES = ["cross-node", "same-node"]


def load(mode, place, run):
    try:
        with open(os.path.join(out, "raw", f"{mode}@{place}@{run}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def num(d, key, nd=1):
    v = d.get(key)
    return round(v, nd) if isinstance(v, (int, float)) else None


def watched(d, key, nd=4):
    w = d.get("watch") or {}
    v = w.get(key)
    return round(v, nd) if w.get("ok") and isinstance(v, (int, float)) else None


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def perf_per_req(mode, place, rps):
    """syscalls and context switches per request of the proxies (perf stat)."""
    base = os.path.join(out, "raw", f"{mode}@{place}@rr")
    try:
        win = float(open(base + ".perfwin").read())
        counts = {}
        for line in open(base + ".perf"):
            f = line.strip().split(",")
            if len(f) > 2 and f[0].replace(".", "").isdigit():
                counts[f[2]] = float(f[0])
    except (OSError, ValueError):
        return None, None
    if not rps:
        return None, None
    per = lambda ev: round(counts[ev] / win / rps, 1) if ev in counts else None
    return per("raw_syscalls:sys_enter"), per("context-switches")


rows = []
for mode in MODES:
    for place in PLACES:
        rr = load(mode, place, "rr")
        if not rr and not load(mode, place, "lat"):
            continue
        lat, h1, h2 = load(mode, place, "lat"), load(mode, place, "http1"), load(mode, place, "http2")
        conn, bulk, idle = load(mode, place, "conn"), load(mode, place, "bulk"), load(mode, place, "idle")
        idle0 = load(mode, place, "idle0")
        idle_rss = watched(idle, "rss_kib", 0)
        per_1k = None
        if idle_rss is not None and "rss_kib" in idle0 and idle.get("connects", 0) >= 500:
            per_1k = round((idle_rss - idle0["rss_kib"]) * 1000 / idle["connects"])
        sys_req, cs_req = perf_per_req(mode, place, rr.get("rps"))
        rows.append({
            "mode": mode, "placement": place,
            "rps": num(rr, "rps"),
            "p50_us": num(lat, "p50_us"), "p90_us": num(lat, "p90_us"),
            "p99_us": num(lat, "p99_us"), "p999_us": num(lat, "p999_us"),
            "gbps": num(bulk, "gbps", 3) if bulk.get("gbps") else None,
            "conn_per_s": num(conn, "conn_per_s"),
            "cpu_s_per_10k_req": watched(rr, "cpu_s_per_10k_req"),
            "cpu_s_per_gb": watched(bulk, "cpu_s_per_gb"),
            "proxy_rss_kib": watched(rr, "rss_kib", 0),
            # Beyond the schema: the other workloads and the memory figures.
            "http1_rps": num(h1, "rps"), "http2_rps": num(h2, "rps"),
            "proxy_syscalls_per_req": sys_req, "proxy_ctxsw_per_req": cs_req,
            "errors": {k: d.get("errors") for k, d in
                       (("rr", rr), ("lat", lat), ("http1", h1), ("http2", h2), ("conn", conn), ("bulk", bulk), ("idle", idle))
                       if d.get("errors")},
            "lat_unsent": lat.get("unsent"),
            "proxies": idle0.get("proxies"),
            "proxy_rss_idle_kib": idle0.get("rss_kib"),
            "rss_kib_per_1k_idle_conns": per_1k,
        })

machine = {
    "kernel": platform.release(),
    "cpu_model": cpu_model(),
    "cores": os.cpu_count(),
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "commit": commit,
    "duration_s": dur,
    "open_loop_rate": rate,
    "note": "shared machine: load generator, servers and proxies on the same cores; indicative numbers",
}
notes = open(os.path.join(out, "notes.txt")).read().split("\n") if os.path.exists(os.path.join(out, "notes.txt")) else []
notes = [n for n in notes if n]
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump({"machine": machine, "results": rows, "notes": notes}, f, indent=1)


def fmt(v, nd=0):
    if v is None:
        return "-"
    return f"{v:.{nd}f}"


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


base = {r["placement"]: r for r in rows if r["mode"] == "none"}
print(f"Machine: {machine['cpu_model']}, {machine['cores']} cores, Linux {machine['kernel']}; "
      f"commit {commit}, {dur:g} s per measurement, latency open loop at {rate} req/s.\n")
print("| mode | placement | req/s tcp 1KiB | HTTP/1.1 req/s | HTTP/2 req/s | p50 us | p90 us | p99 us | p99.9 us "
      "| Gbit/s | conn/s | CPU s/10k req | syscalls/req | CPU s/GB | proxy RSS MiB | idle RSS MiB per proxy | KiB per 1k idle conns "
      "| req/s vs none | p50 added us | Gbit/s vs none | conn/s vs none |")
print("|" + "---|" * 21)
for r in rows:
    b = base.get(r["placement"], {})
    added = r["p50_us"] - b["p50_us"] if r["p50_us"] is not None and b.get("p50_us") is not None else None
    rss = r["proxy_rss_kib"] / 1024 if r["proxy_rss_kib"] else None
    idle = r["proxy_rss_idle_kib"] / r["proxies"] / 1024 if r["proxy_rss_idle_kib"] and r["proxies"] else None
    print(f"| {r['mode']} | {r['placement']} | {fmt(r['rps'])} | {fmt(r['http1_rps'])} | {fmt(r['http2_rps'])} "
          f"| {fmt(r['p50_us'])} | {fmt(r['p90_us'])} | {fmt(r['p99_us'])} | {fmt(r['p999_us'])} "
          f"| {fmt(r['gbps'], 2) if r['gbps'] is not None else 'failed'} | {fmt(r['conn_per_s'])} "
          f"| {fmt(r['cpu_s_per_10k_req'], 3)} | {fmt(r['proxy_syscalls_per_req'], 1)} | {fmt(r['cpu_s_per_gb'], 2)} | {fmt(rss, 1)} | {fmt(idle, 1)} "
          f"| {fmt(r['rss_kib_per_1k_idle_conns'])} | {ratio(r['rps'], b.get('rps'))} "
          f"| {('+' if added >= 0 else '') + fmt(added) if added is not None else '-'} "
          f"| {ratio(r['gbps'], b.get('gbps'))} | {ratio(r['conn_per_s'], b.get('conn_per_s'))} |")
for n in notes:
    print(f"\n- {n}")
bad = [r for r in rows if r["errors"]]
for r in bad:
    print(f"- errors in {r['mode']} {r['placement']}: {r['errors']}")

# Plots: latency distributions (open loop, from loadgen's histogram buckets)
# and throughput per mode.
if not shutil.which("gnuplot"):
    print("\n(no gnuplot: no plots; make deps installs gnuplot-nox)", file=sys.stderr)
    sys.exit(0)
for place in PLACES:
    series = []
    for r in rows:
        if r["placement"] != place:
            continue
        b = load(r["mode"], place, "lat").get("buckets") or []
        total = sum(c for _, c in b)
        if not total:
            continue
        path = os.path.join(out, f"lat-{r['mode']}-{place}.dat")
        acc = 0
        with open(path, "w") as f:
            for up, c in b:
                acc += c
                f.write(f"{up} {acc / total}\n")
        series.append((r["mode"], path))
    if not series:
        continue
    plot = ", ".join(f"'{p}' using 1:2 with steps lw 2 title '{m}'" for m, p in series)
    script = (f"set terminal pngcairo size 900,520 noenhanced\nset output '{out}/latency-{place}.png'\n"
              f"set title 'tcp-rr 1 KiB, open loop {rate} req/s, {place}: latency CDF'\n"
              "set logscale x\nset xlabel 'latency (us, from the intended send time)'\n"
              "set ylabel 'fraction of requests'\nset key bottom right\nset grid\n"
              f"plot {plot}\n")
    subprocess.run(["gnuplot"], input=script, text=True, check=False)

dat = os.path.join(out, "throughput.dat")
with open(dat, "w") as f:
    f.write("# mode rps_cross rps_same gbps_cross gbps_same\n")
    for mode in MODES:
        by = {r["placement"]: r for r in rows if r["mode"] == mode}
        if not by:
            continue
        g = lambda p, k: (by.get(p) or {}).get(k) or 0
        f.write(f"{mode} {g('cross-node', 'rps')} {g('same-node', 'rps')} "
                f"{g('cross-node', 'gbps')} {g('same-node', 'gbps')}\n")
for what, cols, label in (("rps", "2:xtic(1) title 'cross-node', '' using 3 title 'same-node'", "req/s (tcp-rr 1 KiB, 16 conns, closed loop)"),
                          ("gbps", "4:xtic(1) title 'cross-node', '' using 5 title 'same-node'", "Gbit/s (bulk, 1 conn, echo)")):
    script = (f"set terminal pngcairo size 900,520 noenhanced\nset output '{out}/{what}.png'\n"
              f"set title '{label}'\nset style data histograms\nset style histogram clustered\n"
              "set style fill solid 0.8 border -1\nset boxwidth 0.9\nset xtics rotate by -20\nset grid ytics\n"
              f"set key top right\nset yrange [0:*]\nplot '{dat}' using {cols}\n")
    subprocess.run(["gnuplot"], input=script, text=True, check=False)
