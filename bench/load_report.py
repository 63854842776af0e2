#!/usr/bin/env python3
"""Parse the raw outputs written by bench/load.sh, print the summary tables and write the JSON.

Input layout (--raw DIR): r<round>-<target>.txt (wrk --latency output, or
h2load output for targets of kind h2), r<round>-<target>.rss_kb (peak RSS in
kB after that measurement), r<round>-<target>.accepted (TCP connections the
kernel accepted during it), and r<round>-<idle target>.idle (key=value lines
of an idle-connection measurement).
Exit status: 1 if any run had socket errors or non-2xx/3xx responses (or an
idle connection failed or was closed), or (with --strict 1) if a target is
FAIL; otherwise 0.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
UNIT_BYTES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
RSS_LIMIT_MB = 50.0

# How each gatehouse scenario is judged (the issue's table): its nginx
# reference, the metric compared, the least acceptable gatehouse / nginx
# ratio, and whether p99 latency must also be <= the reference's.
SPECS = {
    "gatehouse": ("nginx", "rps", 1.0, True),
    "gatehouse-plugins": ("nginx", "rps", 0.9, False),
    "gatehouse-rr4": ("nginx-rr4", "rps", 1.0, True),
    "gatehouse-https": ("nginx-https", "rps", 1.0, True),
    "gatehouse-close": ("nginx-close", "rps", 1.0, False),
    "gatehouse-h2": ("nginx-h2", "rps", 1.0, False),
    "gatehouse-big": ("nginx-big", "bytes_per_s", 1.0, False),
}
# A new connection per request is only that if the kernel accepted (about)
# one connection per request during the measurement.
MIN_ACCEPTED_PER_REQUEST = 0.95


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", value)
    if not m:
        raise ValueError(f"unrecognised wrk latency value {value!r}")
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def to_bytes(value: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(B|KB|MB|GB|TB)", value)
    if not m:
        raise ValueError(f"unrecognised wrk transfer value {value!r}")
    return float(m.group(1)) * UNIT_BYTES[m.group(2)]


def parse_h2load(text: str) -> dict:
    """Extract req/s, bytes/s, mean/max request time and failures from h2load output.

    h2load prints no latency percentiles, only min/max/mean/sd of the request
    time, so p50/p99 are None for these runs.
    """
    out: dict = {"p50_ms": None, "p99_ms": None}
    m = re.search(r"^finished in ([0-9.]+)(\w+), ([0-9.]+) req/s, ([0-9.]+)(B|KB|MB|GB|TB)/s", text, re.M)
    if not m:
        raise ValueError("no 'finished in ..., N req/s' line in h2load output")
    out["rps"] = float(m.group(3))
    out["bytes_per_s"] = to_bytes(m.group(4) + m.group(5))
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text, re.M)
    if not m:
        raise ValueError("no 'requests:' line in h2load output")
    total, started, done, ok, failed, errored, timeout = map(int, m.groups())
    out["requests"] = done
    m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    bad_status = int(m.group(3)) + int(m.group(4)) if m else 0
    m = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if m:
        out["avg_ms"] = round(to_ms(m.group(3)), 4)
        out["max_ms"] = round(to_ms(m.group(2)), 4)
    out["socket_errors"] = {"failed": failed, "errored": errored, "timeout": timeout}
    out["non_2xx_3xx"] = bad_status
    out["errors"] = failed + bad_status
    return out


def parse_wrk(text: str) -> dict:
    """Extract req/s, latency percentiles and error counts from `wrk --latency` output."""
    out: dict = {}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not m:
        raise ValueError("no 'Requests/sec' line in wrk output")
    out["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", text, re.M)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"^Transfer/sec:\s+(\S+)", text, re.M)
    out["bytes_per_s"] = to_bytes(m.group(1)) if m else None
    start = text.find("Latency Distribution")
    if start < 0:
        raise ValueError("no 'Latency Distribution' block (was wrk run with --latency?)")
    for pct, val in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", text[start:], re.M):
        out[f"p{pct}_ms"] = round(to_ms(val), 4)
    for pct in ("p50_ms", "p99_ms"):
        if pct not in out:
            raise ValueError(f"no {pct[:-3]} line in the latency distribution")
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if m:
        out["avg_ms"] = round(to_ms(m.group(1)), 4)
        out["max_ms"] = round(to_ms(m.group(3)), 4)
    sock = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        sock = dict(zip(sock, map(int, m.groups())))
    out["socket_errors"] = sock
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx_3xx"] = int(m.group(1)) if m else 0
    out["errors"] = sum(sock.values()) + out["non_2xx_3xx"]
    return out


def fmt(v, spec):
    """format(v, spec), or "-" in the same width when v is None."""
    if v is None:
        width = re.match(r"[<>^]?(\d*)", spec).group(1)
        return format("-", f">{width}")
    return format(v, spec)


def median_or_none(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return a / b if a is not None and b else None


def read_kv(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition("=")
        try:
            out[k] = float(v) if "." in v else int(v)
        except ValueError:
            out[k] = v or None
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--rounds", required=True, type=int)
    ap.add_argument("--targets", required=True, help="space-separated, in measurement order")
    ap.add_argument("--kinds", default="", help="space-separated target=kind (wrk, key, close, h2)")
    ap.add_argument("--idle", default="", help="space-separated idle-connection targets")
    ap.add_argument("--strict", default="0")
    ap.add_argument("--meta", nargs="*", default=[], help="key=value pairs for the JSON")
    args = ap.parse_args()

    targets = args.targets.split()
    kinds = dict(kv.split("=", 1) for kv in args.kinds.split())
    idle_targets = args.idle.split()
    meta = dict(kv.split("=", 1) for kv in args.meta)
    runs = []
    for rnd in range(1, args.rounds + 1):
        for t in targets:
            raw_file = args.raw / f"r{rnd}-{t}.txt"
            raw = raw_file.read_text()
            try:
                parsed = parse_h2load(raw) if kinds.get(t) == "h2" else parse_wrk(raw)
            except ValueError as e:
                print(f"[load] ERROR: {raw_file}: {e}\n{raw}", file=sys.stderr)
                return 1
            rss_file = args.raw / f"r{rnd}-{t}.rss_kb"
            rss_kb = int(rss_file.read_text().strip() or 0) if rss_file.exists() else 0
            acc_file = args.raw / f"r{rnd}-{t}.accepted"
            accepted = int(acc_file.read_text().strip() or 0) if acc_file.exists() else None
            per_req = accepted / parsed["requests"] if accepted is not None and parsed.get("requests") else None
            runs.append({"round": rnd, "target": t, "kind": kinds.get(t, "wrk"), **parsed,
                         "peak_rss_kb": rss_kb, "accepted_connections": accepted,
                         "accepted_per_request": per_req, "output": raw})

    summary = {}
    for t in targets:
        rs = [r for r in runs if r["target"] == t]
        summary[t] = {
            "kind": kinds.get(t, "wrk"),
            "rps": statistics.median(r["rps"] for r in rs),
            "bytes_per_s": median_or_none(r.get("bytes_per_s") for r in rs),
            "p50_ms": median_or_none(r["p50_ms"] for r in rs),
            "p99_ms": median_or_none(r["p99_ms"] for r in rs),
            "avg_ms": median_or_none(r.get("avg_ms") for r in rs),
            # Processes live for the whole run and VmHWM only grows: max = peak over all rounds.
            "peak_rss_mb": max(r["peak_rss_kb"] for r in rs) / 1024.0,
            "errors": sum(r["errors"] for r in rs),
            "accepted_per_request": median_or_none(r["accepted_per_request"] for r in rs),
            "rps_all": [r["rps"] for r in rs],
            "p99_all_ms": [r["p99_ms"] for r in rs],
        }

    # ------------------------------------------------------------ table ---
    m = meta
    print()
    print(f"Gatehouse load benchmark  {m.get('timestamp', '')}  rev {m.get('git_rev', '?')}"
          f"{' (dirty tree)' if m.get('git_dirty') == '1' else ''}")
    print(f"wrk -t{m.get('wrk_threads')} -c{m.get('connections')} -d{m.get('duration')} GET "
          f"{m.get('req_path')}, {args.rounds} round(s), medians; proxy threads={m.get('threads')}, "
          + (f"proxy on CPU {m.get('proxy_cpus')}, load+upstream on CPU {m.get('load_cpus')}"
             if m.get("pin") == "1" else "unpinned"))
    print()
    hdr = (f"{'target':<19} {'kind':<5} {'req/s':>11} {'spread':>7} {'MB/s':>9} {'p50 ms':>9} {'p99 ms':>9} "
           f"{'conn/req':>8} {'peak RSS MB':>12} {'errors':>7}")
    print(hdr)
    print("-" * len(hdr))
    for t in targets:
        s = summary[t]
        rss = "-" if t == "upstream" else fmt(s["peak_rss_mb"], ".1f")
        spread = (max(s["rps_all"]) - min(s["rps_all"])) / s["rps"] if s["rps"] else 0.0
        mbs = None if s["bytes_per_s"] is None else s["bytes_per_s"] / 2**20
        print(f"{t:<19} {s['kind']:<5} {s['rps']:>11,.0f} {spread:>7.0%} {fmt(mbs, '>9,.1f')} "
              f"{fmt(s['p50_ms'], '>9.3f')} {fmt(s['p99_ms'], '>9.3f')} "
              f"{fmt(s['accepted_per_request'], '>8.3f')} {rss:>12} {s['errors']:>7}")
    print("(spread = (max - min) / median of req/s over rounds; MB/s = MiB/s received by the client; "
          "conn/req = TCP connections the kernel accepted per request during the run, upstream side "
          "included; peak RSS = VmHWM; gatehouse: its process; nginx: master + workers summed)")
    if any(s["kind"] == "h2" for s in summary.values()):
        print("(h2 = h2load, which reports no latency percentiles: p50/p99 are '-'; the JSON has its mean, avg_ms)")
    load = m.get("loadavg_start")
    if load:
        note = ""
        try:
            if float(load) >= 0.5:
                note = ": other jobs were running, expect noisy numbers"
        except ValueError:
            pass
        print(f"(1-min load average before the run: {load} on {m.get('nproc')} CPUs{note})")

    comparisons = {}
    failed = False
    invalid = []   # reasons the numbers cannot be trusted (exit 1, like errors)
    # Each gatehouse scenario is judged against its nginx reference (SPECS);
    # a scenario not listed there against its namesake, else plain nginx.
    for t in targets:
        if not t.startswith("gatehouse"):
            continue
        default_ref = "nginx" + t[len("gatehouse"):]
        ref, metric, min_ratio, judge_p99 = SPECS.get(
            t, (default_ref if default_ref in summary else "nginx", "rps", 1.0, True))
        if ref not in summary:
            continue
        ng, g = summary[ref], summary[t]
        c = {
            "reference": ref,
            "metric": metric,
            "min_ratio": min_ratio,
            "throughput_ratio": ratio(g[metric], ng[metric]),
            "p99_ratio": ratio(g["p99_ms"], ng["p99_ms"]),
            "peak_rss_mb": g["peak_rss_mb"],
        }
        checks = {
            "throughput": c["throughput_ratio"] is not None and c["throughput_ratio"] >= min_ratio,
        }
        if judge_p99:
            checks["p99_le_nginx"] = c["p99_ratio"] is not None and c["p99_ratio"] <= 1.0
        checks[f"rss_lt_{RSS_LIMIT_MB:g}mb"] = g["peak_rss_mb"] < RSS_LIMIT_MB
        checks["no_errors"] = g["errors"] == 0
        if g["kind"] == "close":
            for name in (t, ref):
                per = summary[name]["accepted_per_request"]
                if per is None or per < MIN_ACCEPTED_PER_REQUEST:
                    invalid.append(f"{name}: {fmt(per, '.3f')} connections accepted per request "
                                   f"(< {MIN_ACCEPTED_PER_REQUEST}): wrk did not reconnect for every request")
        if g["kind"] == "h2":
            c["mean_latency_ratio"] = ratio(g["avg_ms"], ng["avg_ms"])
        c["checks"] = checks
        comparisons[t] = c
    if comparisons:
        print()
        print(f"{'vs nginx':<19} {'reference':<13} {'metric':<11} {'ratio':>7} {'target':>7} {'p99 ratio':>10}   checks")
        for t, c in comparisons.items():
            ck = c["checks"]
            labels = {"throughput": f"{'req/s' if c['metric'] == 'rps' else 'bytes/s'}>={c['min_ratio']:g}x",
                      "p99_le_nginx": "p99<=nginx", f"rss_lt_{RSS_LIMIT_MB:g}mb": f"RSS<{RSS_LIMIT_MB:g}MB",
                      "no_errors": "no errors"}
            marks = "  ".join(f"{labels[k]} {'PASS' if ok else 'FAIL'}" for k, ok in ck.items())
            metric = "req/s" if c["metric"] == "rps" else "bytes/s"
            print(f"{t:<19} {c['reference']:<13} {metric:<11} {fmt(c['throughput_ratio'], '>7.3f')} "
                  f"{'>=' + format(c['min_ratio'], 'g'):>7} {fmt(c['p99_ratio'], '>10.3f')}   {marks}")
            failed = failed or not all(ck.values())
        print("(ratios = gatehouse / its nginx reference. gatehouse-plugins is compared with plain nginx, "
              "which does no plugin work (no key check, no CORS, no extra headers); its target is 0.9x. "
              "p99 is judged for the plain, rr4 and https scenarios and shown for the others; "
              "h2load gives no p99.)")
        for t, c in comparisons.items():
            if "mean_latency_ratio" in c:
                g, ng = summary[t], summary[c["reference"]]
                print(f"({t}: h2load mean request time {fmt(g['avg_ms'], '.2f')} ms vs "
                      f"{fmt(ng['avg_ms'], '.2f')} ms, ratio {fmt(c['mean_latency_ratio'], '.3f')}; "
                      "information only)")
        if "gatehouse-big" in comparisons and m.get("nginx_big_temp_file_warnings") not in (None, "", "0"):
            print(f"(nginx-big buffered {m['nginx_big_temp_file_warnings']} upstream responses to a "
                  "temporary file: stock proxy_buffering)")

    # ------------------------------------------------------------ idle ---
    idle = {}
    for t in idle_targets:
        rs = []
        for rnd in range(1, args.rounds + 1):
            f = args.raw / f"r{rnd}-{t}.idle"
            if not f.exists():
                invalid.append(f"{t}: round {rnd} has no measurement")
                continue
            r = read_kv(f)
            conns = r.get("conns") or 0
            r["kb_per_conn"] = ((r["rss_after_kb"] - r["rss_before_kb"]) / conns) if conns else None
            r["round"] = rnd
            rs.append(r)
            bad = (r.get("errors") or 0) or (r.get("opened") or 0) != conns or (r.get("still_open") or 0) != conns
            if bad:
                invalid.append(f"{t}: round {rnd}: {r.get('opened')} of {conns} connections opened "
                               f"({r.get('errors')} failed), {r.get('still_open')} still open at the end")
        if rs:
            idle[t] = {
                "conns": rs[0]["conns"],
                "kb_per_conn": median_or_none(r["kb_per_conn"] for r in rs),
                "rss_before_mb": statistics.median(r["rss_before_kb"] for r in rs) / 1024.0,
                "rss_after_mb": statistics.median(r["rss_after_kb"] for r in rs) / 1024.0,
                "open_seconds": median_or_none(r.get("open_seconds") for r in rs),
                "kb_per_conn_all": [r["kb_per_conn"] for r in rs],
                "rounds": rs,
            }
    if idle:
        print()
        print(f"{'idle connections':<19} {'conns':>7} {'RSS before MB':>14} {'RSS after MB':>13} {'KB/conn':>8}")
        for t, s in idle.items():
            print(f"{t:<19} {s['conns']:>7} {s['rss_before_mb']:>14.1f} {s['rss_after_mb']:>13.1f} "
                  f"{fmt(s['kb_per_conn'], '>8.2f')}")
        if "gatehouse-idle" in idle and "nginx-idle" in idle:
            g, n = idle["gatehouse-idle"]["kb_per_conn"], idle["nginx-idle"]["kb_per_conn"]
            ok = g is not None and n is not None and g <= n
            c = {"reference": "nginx-idle", "metric": "kb_per_conn", "ratio": ratio(g, n),
                 "checks": {"kb_per_conn_le_nginx": ok}}
            comparisons["gatehouse-idle"] = c
            print(f"gatehouse-idle / nginx-idle KB per connection: {fmt(c['ratio'], '.3f')}   "
                  f"KB/conn<=nginx {'PASS' if ok else 'FAIL'}")
            failed = failed or not ok
        print("(a fresh proxy per round; each connection did one GET and stays open, idle; "
              "KB/conn = (RSS after - RSS before) / conns, medians over rounds; RSS = VmRSS, nginx: "
              "master + workers. nginx allocates its worker_connections slots at start, so they are in "
              "'before'.)")

    # The same-work comparison: nginx told to do what gatehouse does by
    # default on every request (forwarding headers, Via, request id).
    if "nginx-equiv" in summary:
        ne = summary["nginx-equiv"]
        rows = []
        for t in ("gatehouse", "gatehouse-plugins"):
            if t in summary and ne["rps"] and ne["p99_ms"]:
                g = summary[t]
                rows.append((t, g["rps"] / ne["rps"], g["p99_ms"] / ne["p99_ms"]))
                comparisons.setdefault(t, {})["vs_nginx_equiv"] = {
                    "throughput_ratio": g["rps"] / ne["rps"],
                    "p99_ratio": g["p99_ms"] / ne["p99_ms"],
                }
        if rows:
            print()
            print(f"{'vs nginx-equiv':<19} {'req/s ratio':>12} {'p99 ratio':>10}")
            for t, thr, p99 in rows:
                print(f"{t:<19} {thr:>12.3f} {p99:>10.3f}")
            print("(nginx-equiv: nginx also setting X-Forwarded-For/-Proto/-Host/-Port, Forwarded, Via "
                  "and a generated X-Request-Id, as gatehouse does by default; information only)")

    # New build against an older one (BASELINE_BIN), same run, same machine.
    pairs = [("gatehouse", "baseline"), ("gatehouse-plugins", "baseline-plugins")]
    rows = [(n, o) for n, o in pairs if n in summary and o in summary]
    if rows:
        print()
        print(f"{'vs baseline':<19} {'baseline':<17} {'req/s ratio':>12} {'p99 ratio':>10}")
        for n, o in rows:
            g, b = summary[n], summary[o]
            thr = ratio(g["rps"], b["rps"])
            p99 = ratio(g["p99_ms"], b["p99_ms"])
            comparisons.setdefault(n, {})["vs_baseline"] = {"throughput_ratio": thr, "p99_ratio": p99}
            print(f"{n:<19} {o:<17} {fmt(thr, '>12.3f')} {fmt(p99, '>10.3f')}")
        print("(ratios = this build / BASELINE_BIN, measured in the same rounds)")

    # Warn when the load side, not the proxy, is the likely bottleneck (same
    # traffic as the direct-upstream target only: keep-alive, small bodies).
    if "upstream" in summary:
        up = summary["upstream"]["rps"]
        for t in targets:
            small = summary[t]["kind"] in ("wrk", "key") and not t.endswith("-big")
            if t != "upstream" and small and up and summary[t]["rps"] > 0.8 * up:
                print(f"WARNING: {t} reached {summary[t]['rps'] / up:.0%} of the direct-upstream rate; "
                      "wrk/upstream may be the bottleneck, so the proxy comparison is compressed.")

    total_errors = sum(s["errors"] for s in summary.values())
    doc = {"meta": meta, "summary": summary, "idle": idle, "comparisons": comparisons, "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(f"raw results: {args.json}")

    if total_errors or invalid:
        print()
        print("!" * 72, file=sys.stderr)
        for r in runs:
            if r["errors"]:
                print(f"ERROR: round {r['round']} {r['target']}: socket errors {r['socket_errors']}, "
                      f"non-2xx/3xx {r['non_2xx_3xx']}", file=sys.stderr)
        for why in invalid:
            print(f"ERROR: {why}", file=sys.stderr)
        print("The numbers above are not valid: requests or connections failed.", file=sys.stderr)
        print("!" * 72, file=sys.stderr)
        return 1
    if failed and args.strict == "1":
        print("STRICT=1: a target FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
