#!/usr/bin/env python3
"""Turns one bench/run.sh run directory into a summary: results.json and results.md (a table of
direct vs gateway figures with pass/fail against the goals). Standard library only.

Usage: report.py RUN_DIR
RUN_DIR holds oha-{direct,gateway}-c{1,32}.json (from aggregate.py), stream-openai.json, stream-anthropic.json,
rss.json and meta.json, as written by run.sh.
"""
import json
import os
import sys

# The goals (from the issue).
C1_ADDED_P50_MS = 0.15
C1_TOTAL_P99_MS = 1.0
C32_MIN_SHARE = 0.25
STREAM_MAX_DELAY_MS = 1.0
IDLE_RSS_MB = 30.0


def load(d, name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p, encoding="utf-8") as f:
        return json.load(f)


def oha(d, name):
    """A side's load figures, as aggregate.py wrote them."""
    return load(d, name)


def verdict(ok):
    return "**pass**" if ok else "**FAIL**"


def f3(x):
    return "n/a" if x is None else f"{x:.3f}"


def main():
    d = sys.argv[1]
    meta = load(d, "meta.json") or {}
    dc1, gc1 = oha(d, "oha-direct-c1.json"), oha(d, "oha-gateway-c1.json")
    dc32, gc32 = oha(d, "oha-direct-c32.json"), oha(d, "oha-gateway-c32.json")
    so, sa = load(d, "stream-openai.json"), load(d, "stream-anthropic.json")
    sp = load(d, "stream-openai-pii.json")
    rss = load(d, "rss.json") or {}

    res = {"meta": meta, "goals": {}}
    rows = []

    if dc1 and gc1:
        added = gc1["p50_ms"] - dc1["p50_ms"]
        g1 = added <= C1_ADDED_P50_MS
        g2 = gc1["p99_ms"] < C1_TOTAL_P99_MS
        res["goals"]["c1_added_p50"] = {"direct_ms": dc1["p50_ms"], "gateway_ms": gc1["p50_ms"], "added_ms": added, "target_ms": C1_ADDED_P50_MS, "pass": g1}
        res["goals"]["c1_total_p99"] = {"direct_ms": dc1["p99_ms"], "gateway_ms": gc1["p99_ms"], "target_ms": C1_TOTAL_P99_MS, "pass": g2}
        rows.append(("c=1: p50 latency (gateway adds ≤ 0.15 ms)", f"{f3(dc1['p50_ms'])} ms", f"{f3(gc1['p50_ms'])} ms", f"+{f3(added)} ms", verdict(g1)))
        rows.append(("c=1: p99 latency (gateway total < 1 ms)", f"{f3(dc1['p99_ms'])} ms", f"{f3(gc1['p99_ms'])} ms", f"+{f3(gc1['p99_ms'] - dc1['p99_ms'])} ms", verdict(g2)))
        rows.append(("c=1: throughput (info)", f"{dc1['rps']:.0f} req/s", f"{gc1['rps']:.0f} req/s", "", ""))
        rows.append(("c=1: errors (info)", f"{dc1['errors']} / {dc1['requests']}", f"{gc1['errors']} / {gc1['requests']}", "", ""))
    if dc32 and gc32:
        share = gc32["rps"] / dc32["rps"] if dc32["rps"] else 0.0
        g3 = share >= C32_MIN_SHARE and gc32["errors"] == 0
        res["goals"]["c32_throughput"] = {"direct_rps": dc32["rps"], "gateway_rps": gc32["rps"], "share": share, "gateway_errors": gc32["errors"], "target_share": C32_MIN_SHARE, "pass": g3}
        rows.append(("c=32: throughput (gateway ≥ 25% of direct)", f"{dc32['rps']:.0f} req/s", f"{gc32['rps']:.0f} req/s", f"{share * 100:.1f}%", verdict(share >= C32_MIN_SHARE)))
        shares = [g / dd for g, dd in zip(gc32.get("rps_per_slice", []), dc32.get("rps_per_slice", [])) if dd]
        if shares:
            res["goals"]["c32_throughput"]["share_per_round"] = [round(x, 3) for x in shares]
            rows.append(("c=32: share per round, min–max (info)", "", "", f"{min(shares) * 100:.1f}–{max(shares) * 100:.1f}%", ""))
        rows.append(("c=32: errors (zero)", f"{dc32['errors']} / {dc32['requests']}", f"{gc32['errors']} / {gc32['requests']}", "", verdict(gc32["errors"] == 0)))
        rows.append(("c=32: p50 / p99 latency (info)", f"{f3(dc32['p50_ms'])} / {f3(dc32['p99_ms'])} ms", f"{f3(gc32['p50_ms'])} / {f3(gc32['p99_ms'])} ms", "", ""))
    pc1, pc32 = oha(d, "oha-passthrough-c1.json"), oha(d, "oha-passthrough-c32.json")
    if pc1 and dc1:
        rows.append(("reference: bare pass-through proxy, same stack, c=1 p50 (info)", f"{f3(dc1['p50_ms'])} ms", f"{f3(pc1['p50_ms'])} ms (pass-through)", f"+{f3(pc1['p50_ms'] - dc1['p50_ms'])} ms", ""))
    if pc32 and dc32 and dc32["rps"]:
        rows.append(("reference: bare pass-through proxy, same stack, c=32 (info)", f"{dc32['rps']:.0f} req/s", f"{pc32['rps']:.0f} req/s (pass-through)", f"{pc32['rps'] / dc32['rps'] * 100:.1f}%", ""))
        res["reference_passthrough"] = {"c1_p50_ms": pc1["p50_ms"] if pc1 else None, "c32_rps": pc32["rps"]}
    for s in (so, sa, sp):
        if not s:
            continue
        api = s["api"] + ("_pii" if s.get("compare") == "text" else "")
        dev, gev = s["direct"]["first_event"], s["gateway"]["first_event"]
        dh, gh = s["direct"]["headers"], s["gateway"]["headers"]
        delay = gev["p50_ms"] - dev["p50_ms"]
        g4 = delay <= STREAM_MAX_DELAY_MS
        conc = s["concurrent"]
        g5 = s["sequential_identical"] and conc["ok"] == conc["requests"] and not s["mismatches"]
        res["goals"][f"stream_{api}_first_event"] = {"direct_p50_ms": dev["p50_ms"], "gateway_p50_ms": gev["p50_ms"], "added_p50_ms": delay, "direct_p99_ms": dev["p99_ms"], "gateway_p99_ms": gev["p99_ms"], "target_ms": STREAM_MAX_DELAY_MS, "pass": g4}
        res["goals"][f"stream_{api}_integrity"] = {"sequential_identical": s["sequential_identical"], "concurrent": conc, "pass": g5}
        label = {"openai": "chat.completions", "anthropic": "messages", "openai_pii": "chat.completions, 5 pseudonyms restored"}[api]
        rows.append((f"stream ({label}): first event, p50 (≤ +1 ms)", f"{f3(dev['p50_ms'])} ms", f"{f3(gev['p50_ms'])} ms", f"+{f3(delay)} ms", verdict(g4)))
        rows.append((f"stream ({label}): first event, p99 (info)", f"{f3(dev['p99_ms'])} ms", f"{f3(gev['p99_ms'])} ms", f"+{f3(gev['p99_ms'] - dev['p99_ms'])} ms", ""))
        rows.append((f"stream ({label}): response headers, p50 (info)", f"{f3(dh['p50_ms'])} ms", f"{f3(gh['p50_ms'])} ms", f"+{f3(gh['p50_ms'] - dh['p50_ms'])} ms", ""))
        rows.append((f"stream ({label}): whole stream, p50 (info)", f"{f3(s['direct']['total']['p50_ms'])} ms", f"{f3(s['gateway']['total']['p50_ms'])} ms", "", ""))
        same_what = "restored text identical to direct" if s.get("compare") == "text" else "events identical, in order"
        rows.append((
            f"stream ({label}): {same_what} ({s['events_per_stream']} events/stream)",
            "reference",
            f"{s['requests']} sequential + {conc['ok']}/{conc['requests']} at c={conc['concurrency']}",
            "",
            verdict(g5),
        ))
    if rss:
        idle = rss.get("idle_after_start_kb")
        after = rss.get("idle_after_load_kb")
        hwm = rss.get("peak_kb")
        g6s = idle is not None and idle / 1024.0 < IDLE_RSS_MB
        g6a = after is None or after / 1024.0 < IDLE_RSS_MB
        g6 = g6s and g6a
        res["goals"]["idle_rss"] = {"after_start_mb": idle and idle / 1024.0, "after_load_mb": after and after / 1024.0, "peak_mb": hwm and hwm / 1024.0, "target_mb": IDLE_RSS_MB, "pass": g6}
        mock = rss.get("mock_idle_kb")
        rows.append(("idle RSS after start (< 30 MiB)", f"{mock / 1024.0:.1f} MiB (mock)" if mock else "", f"{idle / 1024.0:.1f} MiB" if idle else "n/a", "", verdict(g6s)))
        if after:
            rows.append(("idle RSS after all the load (< 30 MiB)", "", f"{after / 1024.0:.1f} MiB", "", verdict(g6a)))
        if hwm:
            rows.append(("peak RSS during the run (info)", "", f"{hwm / 1024.0:.1f} MiB", "", ""))
    logc = meta.get("log_records")
    if logc is not None:
        rows.append(("log records written by the gateway (info)", "", f"{logc} (sent {meta.get('gateway_requests_sent', '?')})", "", ""))

    lines = ["| measure (goal) | direct to mock | via mamori | difference | verdict |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    md = "\n".join(lines) + "\n"
    res["all_pass"] = all(g["pass"] for g in res["goals"].values())
    with open(os.path.join(d, "results.json"), "w", encoding="utf-8") as f:
        json.dump(res, f, indent=2, ensure_ascii=False)
    with open(os.path.join(d, "results.md"), "w", encoding="utf-8") as f:
        f.write(md)
    print(md)
    failed = [k for k, g in res["goals"].items() if not g["pass"]]
    print("all goals met" if not failed else "goals missed: " + ", ".join(failed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
