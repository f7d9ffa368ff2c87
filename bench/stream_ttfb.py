#!/usr/bin/env python3
"""Streaming benchmark for mamori: time to first byte, direct vs via the gateway, and event integrity.

Standard library only. For each of N rounds it sends the same streaming request once to the mock
directly and once through the gateway (alternating which goes first, so drift and cache effects hit
both sides equally), each on its own persistent HTTP/1.1 connection, and measures:

  * ttfb_headers: request sent -> status line and headers received;
  * ttfb_event:   request sent -> first complete SSE event (first `data:` line) received;
  * total:        request sent -> end of the stream.

Every stream's events (the list of SSE `event:`/`data:` lines) must equal the direct reference
exactly, in order, ending with the API's terminal event; the raw bytes are compared too. A second
phase runs CONCURRENCY streams at a time through the gateway and checks every one the same way.

Prints one JSON object on stdout; exits 1 if any stream differs or fails.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time

TIMEOUT = 10.0


def pct(xs, p):
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


class Client:
    """One persistent connection to host:port."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        return self.conn

    def stream(self, path, body, headers):
        conn = self._conn()
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        t_head = time.perf_counter()
        if resp.status != 200:
            data = resp.read()
            raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
        lines = []
        raw = bytearray()
        t_event = None
        # Bounded: the mock's streams are a few dozen events; the socket timeout bounds each read.
        for _ in range(100000):
            line = resp.readline()
            if not line:
                break
            raw += line
            if t_event is None and line.startswith(b"data:"):
                t_event = time.perf_counter()
            s = line.rstrip(b"\r\n")
            if s.startswith(b"data:") or s.startswith(b"event:"):
                lines.append(s.decode("utf-8"))
        t_end = time.perf_counter()
        if resp.will_close:
            conn.close()
            self.conn = None
        return {
            "head": t_head - t0,
            "event": (t_event or t_end) - t0,
            "total": t_end - t0,
            "lines": lines,
            "raw": bytes(raw),
        }


def terminal_ok(lines, api):
    if not lines:
        return False
    if api == "openai":
        return lines[-1] == "data: [DONE]"
    return lines[-1] == 'data: {"type":"message_stop"}'


def stream_text(lines, api):
    """The answer's text, put together from its deltas (what a client shows)."""
    out = []
    for l in lines:
        if not l.startswith("data: ") or l == "data: [DONE]":
            continue
        try:
            ev = json.loads(l[6:])
        except ValueError:
            continue
        if api == "openai":
            for ch in ev.get("choices") or []:
                piece = (ch.get("delta") or {}).get("content")
                if piece:
                    out.append(piece)
        elif ev.get("type") == "content_block_delta":
            piece = (ev.get("delta") or {}).get("text")
            if piece:
                out.append(piece)
    return "".join(out)


def summarize(xs):
    ms = [x * 1000.0 for x in xs]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 4),
        "p90_ms": round(pct(ms, 90), 4),
        "p99_ms": round(pct(ms, 99), 4),
        "mean_ms": round(statistics.fmean(ms), 4),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--direct-port", type=int, required=True)
    ap.add_argument("--gateway-port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--body", required=True, help="file with a streaming request body")
    ap.add_argument("--api", choices=["openai", "anthropic"], default="openai")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--concurrent-requests", type=int, default=400)
    ap.add_argument("--compare", choices=["events", "text"], default="events",
                    help="events: every SSE line and byte as direct (nothing to restore); text: the "
                         "answer's text as direct (pseudonyms restored: the provider saw placeholders, "
                         "so its events differ by design)")
    a = ap.parse_args()

    body = open(a.body, "rb").read()
    path = "/v1/chat/completions" if a.api == "openai" else "/v1/messages"
    base = {"content-type": "application/json", "accept": "text/event-stream"}
    if a.api == "anthropic":
        base["anthropic-version"] = "2023-06-01"
    direct_h = dict(base)
    gw_h = dict(base)
    if a.api == "openai":
        gw_h["authorization"] = "Bearer " + a.key
    else:
        gw_h["x-api-key"] = a.key

    direct, gw = Client(a.direct_port), Client(a.gateway_port)
    ref = direct.stream(path, body, direct_h)
    if not terminal_ok(ref["lines"], a.api):
        print(json.dumps({"error": "direct stream lacks its terminal event", "lines": ref["lines"][-3:]}))
        return 1

    ref_text = stream_text(ref["lines"], a.api)

    def same(r):
        if a.compare == "text":
            return terminal_ok(r["lines"], a.api) and stream_text(r["lines"], a.api) == ref_text
        return r["lines"] == ref["lines"] and r["raw"] == ref["raw"]

    mismatches = []
    for _ in range(a.warmup):
        direct.stream(path, body, direct_h)
        gw.stream(path, body, gw_h)

    d_head, d_event, d_total, g_head, g_event, g_total, deltas = [], [], [], [], [], [], []
    for i in range(a.requests):
        order = [("d", direct, direct_h), ("g", gw, gw_h)]
        if i % 2:
            order.reverse()
        got = {}
        for tag, cl, h in order:
            got[tag] = cl.stream(path, body, h)
        d, g = got["d"], got["g"]
        d_head.append(d["head"]); d_event.append(d["event"]); d_total.append(d["total"])
        g_head.append(g["head"]); g_event.append(g["event"]); g_total.append(g["total"])
        deltas.append(g["event"] - d["event"])
        for tag, r in got.items():
            if not same(r):
                mismatches.append({"phase": "sequential", "round": i, "side": tag, "events": len(r["lines"])})

    # Concurrent phase: CONCURRENCY threads, each with its own connection, bounded request count.
    per = max(1, a.concurrent_requests // max(1, a.concurrency))
    lock = threading.Lock()
    conc = {"ok": 0, "errors": 0, "mismatched": 0}

    def worker(wid):
        cl = Client(a.gateway_port)
        for j in range(per):
            try:
                r = cl.stream(path, body, gw_h)
            except Exception as e:  # noqa: BLE001 - any failure counts as an error
                with lock:
                    conc["errors"] += 1
                    if len(mismatches) < 20:
                        mismatches.append({"phase": "concurrent", "worker": wid, "req": j, "error": str(e)[:200]})
                cl = Client(a.gateway_port)
                continue
            with lock:
                if same(r):
                    conc["ok"] += 1
                else:
                    conc["mismatched"] += 1
                    if len(mismatches) < 20:
                        mismatches.append({"phase": "concurrent", "worker": wid, "req": j, "events": len(r["lines"])})

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    out = {
        "api": a.api,
        "compare": a.compare,
        "requests": a.requests,
        "events_per_stream": len(ref["lines"]) - sum(1 for l in ref["lines"] if l.startswith("event:")),
        "stream_bytes": len(ref["raw"]),
        "direct": {"headers": summarize(d_head), "first_event": summarize(d_event), "total": summarize(d_total)},
        "gateway": {"headers": summarize(g_head), "first_event": summarize(g_event), "total": summarize(g_total)},
        "first_event_delta_ms": {
            "p50": round(statistics.median(deltas) * 1000.0, 4),
            "p90": round(pct(deltas, 90) * 1000.0, 4),
            "p99": round(pct(deltas, 99) * 1000.0, 4),
        },
        "sequential_identical": not any(m["phase"] == "sequential" for m in mismatches),
        "concurrent": dict(conc, concurrency=a.concurrency, requests=per * a.concurrency),
        "mismatches": mismatches[:20],
    }
    print(json.dumps(out))
    return 0 if not mismatches and conc["ok"] == per * a.concurrency else 1


if __name__ == "__main__":
    sys.exit(main())
