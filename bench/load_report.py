#!/usr/bin/env python3
"""Parse the raw wrk outputs written by bench/load.sh, print the summary table and write the JSON.

Input layout (--raw DIR): r<round>-<target>.txt (wrk --latency output) and
r<round>-<target>.rss_kb (peak RSS in kB after that measurement).
Exit status: 1 if any run had socket errors or non-2xx/3xx responses, or
(with --strict 1) if a target is FAIL; otherwise 0.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
RSS_LIMIT_MB = 50.0


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", value)
    if not m:
        raise ValueError(f"unrecognised wrk latency value {value!r}")
    return float(m.group(1)) * UNIT_MS[m.group(2)]


def parse_wrk(text: str) -> dict:
    """Extract req/s, latency percentiles and error counts from `wrk --latency` output."""
    out: dict = {}
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    if not m:
        raise ValueError("no 'Requests/sec' line in wrk output")
    out["rps"] = float(m.group(1))
    m = re.search(r"^\s*(\d+) requests in ([0-9.]+\w+),", text, re.M)
    out["requests"] = int(m.group(1)) if m else None
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
    return "-" if v is None else format(v, spec)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True, type=Path)
    ap.add_argument("--json", required=True, type=Path)
    ap.add_argument("--rounds", required=True, type=int)
    ap.add_argument("--targets", required=True, help="space-separated, in measurement order")
    ap.add_argument("--strict", default="0")
    ap.add_argument("--meta", nargs="*", default=[], help="key=value pairs for the JSON")
    args = ap.parse_args()

    targets = args.targets.split()
    meta = dict(kv.split("=", 1) for kv in args.meta)
    runs = []
    for rnd in range(1, args.rounds + 1):
        for t in targets:
            raw_file = args.raw / f"r{rnd}-{t}.txt"
            raw = raw_file.read_text()
            try:
                parsed = parse_wrk(raw)
            except ValueError as e:
                print(f"[load] ERROR: {raw_file}: {e}\n{raw}", file=sys.stderr)
                return 1
            rss_file = args.raw / f"r{rnd}-{t}.rss_kb"
            rss_kb = int(rss_file.read_text().strip() or 0) if rss_file.exists() else 0
            runs.append({"round": rnd, "target": t, **parsed, "peak_rss_kb": rss_kb, "wrk_output": raw})

    summary = {}
    for t in targets:
        rs = [r for r in runs if r["target"] == t]
        summary[t] = {
            "rps": statistics.median(r["rps"] for r in rs),
            "p50_ms": statistics.median(r["p50_ms"] for r in rs),
            "p99_ms": statistics.median(r["p99_ms"] for r in rs),
            # Processes live for the whole run and VmHWM only grows: max = peak over all rounds.
            "peak_rss_mb": max(r["peak_rss_kb"] for r in rs) / 1024.0,
            "errors": sum(r["errors"] for r in rs),
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
          + (f"proxy on CPU {m.get('proxy_cpus')}, wrk+upstream on CPU {m.get('load_cpus')}"
             if m.get("pin") == "1" else "unpinned"))
    print()
    hdr = (f"{'target':<19} {'req/s':>11} {'spread':>7} {'p50 ms':>9} {'p99 ms':>9} "
           f"{'peak RSS MB':>12} {'errors':>7}")
    print(hdr)
    print("-" * len(hdr))
    for t in targets:
        s = summary[t]
        rss = "-" if t == "upstream" else fmt(s["peak_rss_mb"], ".1f")
        spread = (max(s["rps_all"]) - min(s["rps_all"])) / s["rps"] if s["rps"] else 0.0
        print(f"{t:<19} {s['rps']:>11,.0f} {spread:>7.0%} {s['p50_ms']:>9.3f} {s['p99_ms']:>9.3f} "
              f"{rss:>12} {s['errors']:>7}")
    print("(spread = (max - min) / median of req/s over rounds; "
          "peak RSS = VmHWM; gatehouse: its process; nginx: master + workers summed)")
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
    # Each gatehouse scenario is judged against its nginx counterpart
    # (gatehouse-rr4 vs nginx-rr4, gatehouse-https vs nginx-https); scenarios
    # without one (plain, plugins) against plain nginx.
    def reference(t):
        own = "nginx" + t[len("gatehouse"):]
        return own if own in summary else "nginx"

    for t in targets:
        if not t.startswith("gatehouse") or reference(t) not in summary:
            continue
        ref = reference(t)
        ng = summary[ref]
        g = summary[t]
        c = {
            "reference": ref,
            "throughput_ratio": g["rps"] / ng["rps"] if ng["rps"] else None,
            "p99_ratio": g["p99_ms"] / ng["p99_ms"] if ng["p99_ms"] else None,
            "peak_rss_mb": g["peak_rss_mb"],
        }
        c["checks"] = {
            "throughput_ge_nginx": c["throughput_ratio"] is not None and c["throughput_ratio"] >= 1.0,
            "p99_le_nginx": c["p99_ratio"] is not None and c["p99_ratio"] <= 1.0,
            f"rss_lt_{RSS_LIMIT_MB:g}mb": g["peak_rss_mb"] < RSS_LIMIT_MB,
            "no_errors": g["errors"] == 0,
        }
        comparisons[t] = c
    if comparisons:
        print()
        print(f"{'vs nginx':<19} {'reference':<13} {'req/s ratio':>12} {'p99 ratio':>10}   targets")
        for t, c in comparisons.items():
            ck = c["checks"]
            marks = "  ".join(
                f"{label} {'PASS' if ok else 'FAIL'}"
                for label, ok in (
                    ("thr>=nginx", ck["throughput_ge_nginx"]),
                    ("p99<=nginx", ck["p99_le_nginx"]),
                    (f"RSS<{RSS_LIMIT_MB:g}MB", ck[f"rss_lt_{RSS_LIMIT_MB:g}mb"]),
                )
            )
            print(f"{t:<19} {c['reference']:<13} {fmt(c['throughput_ratio'], '>12.3f')} "
                  f"{fmt(c['p99_ratio'], '>10.3f')}   {marks}")
            failed = failed or not all(ck.values())
        print("(ratios = gatehouse / its nginx reference; the plugins scenario is compared with plain nginx)")

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
            thr = g["rps"] / b["rps"] if b["rps"] else None
            p99 = g["p99_ms"] / b["p99_ms"] if b["p99_ms"] else None
            comparisons.setdefault(n, {})["vs_baseline"] = {"throughput_ratio": thr, "p99_ratio": p99}
            print(f"{n:<19} {o:<17} {fmt(thr, '>12.3f')} {fmt(p99, '>10.3f')}")
        print("(ratios = this build / BASELINE_BIN, measured in the same rounds)")

    # Warn when the load side, not the proxy, is the likely bottleneck.
    if "upstream" in summary:
        up = summary["upstream"]["rps"]
        for t in targets:
            if t != "upstream" and up and summary[t]["rps"] > 0.8 * up:
                print(f"WARNING: {t} reached {summary[t]['rps'] / up:.0%} of the direct-upstream rate; "
                      "wrk/upstream may be the bottleneck, so the proxy comparison is compressed.")

    total_errors = sum(s["errors"] for s in summary.values())
    doc = {"meta": meta, "summary": summary, "comparisons": comparisons, "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print()
    print(f"raw results: {args.json}")

    if total_errors:
        print()
        print("!" * 72, file=sys.stderr)
        for r in runs:
            if r["errors"]:
                print(f"ERROR: round {r['round']} {r['target']}: socket errors {r['socket_errors']}, "
                      f"non-2xx/3xx {r['non_2xx_3xx']}", file=sys.stderr)
        print("The numbers above are not valid: requests failed.", file=sys.stderr)
        print("!" * 72, file=sys.stderr)
        return 1
    if failed and args.strict == "1":
        print("STRICT=1: a target FAILED", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
