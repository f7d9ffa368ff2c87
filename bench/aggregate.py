#!/usr/bin/env python3
"""Combines the interleaved oha slices of one measurement into one summary. Standard library only.

Usage: aggregate.py SLICE_DIR NAME
Reads SLICE_DIR/NAME-r*.json (oha --output-format json) and SLICE_DIR/NAME-r*.db (oha --db-url:
one row per successful request) and prints one JSON object: totals over every slice, latency
percentiles over every successful request of every slice (exact, not an average of percentiles),
and the per-slice throughput so the spread between slices is visible.
"""
import glob
import json
import os
import sqlite3
import sys


def pct(sorted_xs, p):
    if not sorted_xs:
        return 0.0
    k = max(0, min(len(sorted_xs) - 1, int(round(p / 100.0 * len(sorted_xs) + 0.5)) - 1))
    return sorted_xs[k]


def main():
    d, name = sys.argv[1], sys.argv[2]
    files = sorted(glob.glob(os.path.join(d, f"{name}-r*.json")), key=lambda p: int(p.rsplit("-r", 1)[1].split(".")[0]))
    if not files:
        print(f"no slices for {name} in {d}", file=sys.stderr)
        return 1
    ok = errors = 0
    wall = 0.0
    kinds = {}
    per_slice = []
    durations = []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            j = json.load(fh)
        codes = j.get("statusCodeDistribution") or {}
        errs = j.get("errorDistribution") or {}
        s_ok = int(codes.get("200", 0))
        s_err = sum(int(v) for k, v in codes.items() if k != "200") + sum(int(v) for v in errs.values())
        for k, v in errs.items():
            kinds[k] = kinds.get(k, 0) + int(v)
        for k, v in codes.items():
            if k != "200":
                kinds[f"http_{k}"] = kinds.get(f"http_{k}", 0) + int(v)
        total = float(j["summary"].get("total") or 0.0)
        ok += s_ok
        errors += s_err
        wall += total
        per_slice.append(round(s_ok / total, 1) if total else 0.0)
        db = f[:-5] + ".db"
        if os.path.exists(db):
            c = sqlite3.connect(db)
            durations.extend(r[0] for r in c.execute("SELECT duration FROM oha WHERE status = 200"))
            c.close()
    durations.sort()
    ms = lambda x: x * 1000.0  # noqa: E731
    out = {
        "name": name,
        "slices": len(files),
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "error_kinds": kinds,
        "seconds": round(wall, 3),
        "rps": ok / wall if wall else 0.0,
        "rps_per_slice": per_slice,
        "latencies": len(durations),
        "p50_ms": ms(pct(durations, 50)),
        "p90_ms": ms(pct(durations, 90)),
        "p99_ms": ms(pct(durations, 99)),
        "p999_ms": ms(pct(durations, 99.9)),
        "max_ms": ms(durations[-1]) if durations else 0.0,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
