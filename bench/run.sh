#!/usr/bin/env bash
# mamori benchmark: the gateway side by side with calling the mock provider directly, in one run.
#
#   bench/run.sh                 build (own target dir) and run everything, ~1 minute plus the build
#
# Environment (all optional):
#   MAMORI_BIN=PATH     use this binary instead of building
#   REUSE_RELEASE=1     use target/release/mamori instead of building
#   MOCK_BIN=PATH       run the mock provider from this binary (default: the same one)
#   PASSTHROUGH_BIN=PATH  the bare pass-through proxy (examples/passthrough.rs), measured as a
#                       third side for reference (default: built, or found beside MAMORI_BIN's
#                       target dir; skipped if absent)
#   PIN=split|none      CPU placement on a 2-core machine (default split: load generator on CPU 0,
#                       mock and gateway on CPU 1; direct and gateway runs get the same placement)
#   ROUNDS=5            direct and gateway load is run in ROUNDS alternating slices (direct,
#                       gateway, gateway, direct, ...) so a burst of outside load hits both sides
#   N_C1=5000           requests per side at c=1, over all rounds (after WARM_C1 warm-up requests)
#   WARM_C1=500
#   SLICE_C32=2         seconds per c=32 slice: each side runs ROUNDS x SLICE_C32 seconds
#   WARM_C32=2s
#   STREAM_N=200        sequential streaming rounds (each: one direct, one via the gateway)
#   DB_DIR=DIR          put the SQLite log in DIR instead of the temp dir (diagnosis only, e.g.
#                       /dev/shm to take the disk's fsync out of the picture)
#   RESULTS=DIR         where to copy the summary (default bench/results)
#   CLEAN_TEXTS=N       the gateway's `[redaction] clean_texts` (default: the shipped 4096); 0
#                       scans every prompt as new (the benchmark sends one prompt again and
#                       again, which a remembered clean text answers without a scan)
#   KEEP=1              keep the temp dir (config, database, logs, raw results)
#   QUIET_WAIT=300      wait up to this many seconds for the machine to be idle (other builds
#                       distort every figure on 2 cores); 0 to start at once
#
# Writes raw results and a summary into a temp dir, copies the summary to bench/results/, and
# prints the table. Everything listens on 127.0.0.1 only; every wait is bounded; processes are
# stopped on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
PIN="${PIN:-split}"
ROUNDS="${ROUNDS:-5}"
N_C1="${N_C1:-5000}"
WARM_C1="${WARM_C1:-500}"
SLICE_C32="${SLICE_C32:-2}"
WARM_C32="${WARM_C32:-2s}"
STREAM_N="${STREAM_N:-200}"
KEEP="${KEEP:-0}"
RESULTS="${RESULTS:-$HERE/results}"
QUIET_WAIT="${QUIET_WAIT:-300}"

log() { printf '[bench] %s\n' "$*" >&2; }

# --- tools -------------------------------------------------------------------------------------
OHA="$(command -v oha || true)"
if [[ -z "$OHA" && -x "$HOME/.cargo/bin/oha" ]]; then OHA="$HOME/.cargo/bin/oha"; fi
if [[ -z "$OHA" ]]; then
    log "oha not found; installing it with cargo install oha --locked"
    cargo install oha --locked
    OHA="$HOME/.cargo/bin/oha"
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is required" >&2; exit 1; }

# --- binary ------------------------------------------------------------------------------------
if [[ -n "${MAMORI_BIN:-}" ]]; then
    BIN="$MAMORI_BIN"
elif [[ "${REUSE_RELEASE:-0}" == 1 ]]; then
    BIN="$ROOT/target/release/mamori"
else
    log "building the release binary (CARGO_TARGET_DIR=$ROOT/target/bench)"
    (cd "$ROOT" && CARGO_TARGET_DIR="$ROOT/target/bench" cargo build --release --quiet --bin mamori --example passthrough)
    BIN="$ROOT/target/bench/release/mamori"
fi
PT_BIN="${PASSTHROUGH_BIN:-$(dirname "$BIN")/examples/passthrough}"
if [[ ! -x "$PT_BIN" ]]; then
    log "no pass-through proxy at $PT_BIN (cargo build --release --example passthrough); skipping that reference"
    PT_BIN=""
fi
[[ -x "$BIN" ]] || { echo "no mamori binary at $BIN" >&2; exit 1; }
MOCK_BIN="${MOCK_BIN:-$BIN}"
if [[ -n "${MAMORI_BIN:-}" || "${REUSE_RELEASE:-0}" == 1 ]]; then
    SOURCE_DIGEST="not built by this run"
else
    SOURCE_DIGEST="$(cd "$ROOT" && find src migrations Cargo.toml Cargo.lock -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)"
fi

# --- a quiet machine ---------------------------------------------------------------------------
busy_pct() { # CPU busy % over one second, from /proc/stat
    python3 - <<'PY'
import time
def snap():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f), f[3] + f[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print(round(100.0 * (1 - (i1 - i0) / max(1, t1 - t0))))
PY
}
BUSY_AT_START="$(busy_pct)"
waited=0
while [[ "$BUSY_AT_START" -gt 10 && "$waited" -lt "$QUIET_WAIT" ]]; do
    if [[ "$waited" == 0 ]]; then
        log "the machine is ${BUSY_AT_START}% busy; waiting up to ${QUIET_WAIT}s for it to be idle"
    fi
    sleep 4
    waited=$((waited + 5))
    BUSY_AT_START="$(busy_pct)"
done
if [[ "$BUSY_AT_START" -gt 10 ]]; then
    log "warning: the machine is ${BUSY_AT_START}% busy before the run; figures will be distorted"
fi

# --- CPU placement -----------------------------------------------------------------------------
NCPU="$(nproc)"
STARTED_UTC="$(date -u +%FT%TZ)"
LOAD_PIN=() SERVER_PIN=()
if [[ "$PIN" == split && "$NCPU" -ge 2 ]] && command -v taskset >/dev/null; then
    LOAD_PIN=(taskset -c 0)
    SERVER_PIN=(taskset -c 1)
else
    PIN=none
fi

# --- temp dir, ports, cleanup ------------------------------------------------------------------
WORK="$(mktemp -d /tmp/mamori-bench.XXXXXX)"
DB_DIR="${DB_DIR:-$WORK}"
if [[ "$DB_DIR" != "$WORK" ]]; then
    DB_DIR="$(mktemp -d "$DB_DIR/mamori-bench-db.XXXXXX")"
fi
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [[ "$KEEP" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    if [[ "$DB_DIR" != "$WORK" ]]; then
        rm -rf "$DB_DIR"
    fi
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
MOCK_PORT="$(free_port)"
GW_PORT="$(free_port)"
while [[ "$GW_PORT" == "$MOCK_PORT" ]]; do GW_PORT="$(free_port)"; done
PT_PORT="$(free_port)"
while [[ "$PT_PORT" == "$MOCK_PORT" || "$PT_PORT" == "$GW_PORT" ]]; do PT_PORT="$(free_port)"; done

mkdir -p "$WORK/providers-src" "$WORK/out"
cat >"$WORK/config.toml" <<EOF
listen = "127.0.0.1:$GW_PORT"
database_url = "sqlite://$DB_DIR/mamori.db"

[log]
filter = "warn"
EOF
if [[ -n "${CLEAN_TEXTS:-}" ]]; then
    printf '\n[redaction]\nclean_texts = %s\n' "$CLEAN_TEXTS" >>"$WORK/config.toml"
fi
sed "s#http://127.0.0.1:9999/v1#http://127.0.0.1:$MOCK_PORT/v1#" "$ROOT/examples/local-mock.toml" >"$WORK/providers-src/local-mock.toml"
sed "s#http://127.0.0.1:9999/v1#http://127.0.0.1:$MOCK_PORT/v1#" "$ROOT/examples/local-mock-anthropic.toml" >"$WORK/providers-src/local-mock-anthropic.toml"
grep -q "127.0.0.1:$MOCK_PORT" "$WORK/providers-src/local-mock.toml" || { echo "could not set the mock port in the registration" >&2; exit 1; }

# --- prompts -----------------------------------------------------------------------------------
python3 "$HERE/make_prompt.py" "$HERE" 2>"$WORK/prompt-sizes.txt"
PROMPT="$HERE/prompt-ja.json"
PROMPT_STREAM="$HERE/prompt-ja-stream.json"
PROMPT_ASTREAM="$HERE/prompt-ja-anthropic-stream.json"

# --- set-up with the CLI -----------------------------------------------------------------------
M() { "$BIN" --config "$WORK/config.toml" "$@"; }
M provider register "$WORK/providers-src/local-mock.toml" >/dev/null
M provider register "$WORK/providers-src/local-mock-anthropic.toml" >/dev/null
M contract create bench --title "benchmark" --client "ベンチマーク株式会社" >/dev/null
M staff add bench-staff --name "ベンチ 太郎" --trained-on "$(date -u +%F)" >/dev/null
KEY="$(M --json key issue --staff bench-staff --contract bench --purpose "benchmark" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

# --- start the mock and the gateway ------------------------------------------------------------
"${SERVER_PIN[@]}" "$MOCK_BIN" mock-provider --listen "127.0.0.1:$MOCK_PORT" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
(cd "$WORK" && exec "${SERVER_PIN[@]}" "$BIN" --config "$WORK/config.toml" serve) >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")

wait_up() { # url
    local i
    for i in $(seq 1 100); do
        if curl -s -o /dev/null -m 1 "$1"; then return 0; fi
        sleep 0.1
    done
    echo "nothing answered at $1 after 10 s" >&2
    cat "$WORK/gateway.log" "$WORK/mock.log" >&2
    return 1
}
if [[ -n "$PT_BIN" ]]; then
    "${SERVER_PIN[@]}" "$PT_BIN" "127.0.0.1:$PT_PORT" "http://127.0.0.1:$MOCK_PORT" >"$WORK/passthrough.log" 2>&1 &
    PIDS+=("$!")
fi
wait_up "http://127.0.0.1:$MOCK_PORT/v1/models"
wait_up "http://127.0.0.1:$GW_PORT/readyz"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

sleep 2
IDLE_START_KB="$(rss_kb "$GW_PID")"
MOCK_IDLE_KB="$(rss_kb "$MOCK_PID")"
log "gateway idle RSS after start: ${IDLE_START_KB} kB"

# A sanity request through the gateway; it must answer 200 with the mock's echo.
code="$(curl -s -o "$WORK/out/sanity.json" -w '%{http_code}' -m 5 "http://127.0.0.1:$GW_PORT/v1/chat/completions" \
    -H "authorization: Bearer $KEY" -H 'content-type: application/json' --data-binary "@$PROMPT")"
if [[ "$code" != 200 ]]; then
    echo "sanity request via the gateway answered $code:" >&2
    cat "$WORK/out/sanity.json" >&2
    exit 1
fi
DIRECT="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
GATEWAY="http://127.0.0.1:$GW_PORT/v1/chat/completions"
PASSTHROUGH="http://127.0.0.1:$PT_PORT/v1/chat/completions"
SIDES_EXTRA=()
if [[ -n "$PT_BIN" ]]; then
    for _ in $(seq 1 50); do
        if curl -s -o /dev/null -m 1 -X POST "$PASSTHROUGH" -H 'content-type: application/json' --data-binary "@$PROMPT"; then break; fi
        sleep 0.1
    done
    SIDES_EXTRA=(passthrough)
fi
GW_SENT=1

run_oha() { # name url extra-args...
    local name="$1" url="$2"
    shift 2
    "${LOAD_PIN[@]}" "$OHA" --no-tui --output-format json "$@" -m POST -T application/json \
        -H "authorization: Bearer $KEY" -D "$PROMPT" "$url" >"$WORK/out/$name.json"
}
# One measurement, interleaved: ROUNDS slices per side, alternating which side goes first.
# Each slice writes its oha JSON and (--db-url) every successful request's latency.
run_pair() { # c slice-args...
    local c="$1" r first second
    shift
    mkdir -p "$WORK/out/slices"
    for r in $(seq 1 "$ROUNDS"); do
        if ((r % 2)); then first=direct second=gateway; else first=gateway second=direct; fi
        for side in "$first" "$second" "${SIDES_EXTRA[@]}"; do
            local url="$DIRECT"
            if [[ "$side" == gateway ]]; then url="$GATEWAY"; fi
            if [[ "$side" == passthrough ]]; then url="$PASSTHROUGH"; fi
            "${LOAD_PIN[@]}" "$OHA" --no-tui --output-format json -c "$c" "$@" -m POST -T application/json \
                -H "authorization: Bearer $KEY" -D "$PROMPT" --db-url "$WORK/out/slices/$side-c$c-r$r.db" "$url" \
                >"$WORK/out/slices/$side-c$c-r$r.json" 2>"$WORK/out/slices/$side-c$c-r$r.err"
        done
    done
    python3 "$HERE/aggregate.py" "$WORK/out/slices" "direct-c$c" >"$WORK/out/oha-direct-c$c.json"
    python3 "$HERE/aggregate.py" "$WORK/out/slices" "gateway-c$c" >"$WORK/out/oha-gateway-c$c.json"
    if [[ -n "$PT_BIN" ]]; then
        python3 "$HERE/aggregate.py" "$WORK/out/slices" "passthrough-c$c" >"$WORK/out/oha-passthrough-c$c.json"
    fi
}
count_sent() { # file (oha JSON)
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(sum(int(v) for v in (j.get("statusCodeDistribution") or {}).values()))' "$1"
}

# --- concurrency 1 -----------------------------------------------------------------------------
PER_C1=$(((N_C1 + ROUNDS - 1) / ROUNDS))
log "c=1: warm-up, then $ROUNDS alternating slices of $PER_C1 requests per side"
run_oha warm-direct-c1 "$DIRECT" -c 1 -n "$WARM_C1"
run_oha warm-gateway-c1 "$GATEWAY" -c 1 -n "$WARM_C1"
# The pass-through reference is warmed like the gateway: its first slice would otherwise open
# its upstream connections and fault in its code inside the measurement.
if [[ -n "$PT_BIN" ]]; then run_oha warm-passthrough-c1 "$PASSTHROUGH" -c 1 -n "$WARM_C1"; fi
run_pair 1 -n "$PER_C1"

# --- concurrency 32 ----------------------------------------------------------------------------
log "c=32: warm-up, then $ROUNDS alternating slices of ${SLICE_C32}s per side"
run_oha warm-direct-c32 "$DIRECT" -c 32 -z "$WARM_C32" -w
run_oha warm-gateway-c32 "$GATEWAY" -c 32 -z "$WARM_C32" -w
if [[ -n "$PT_BIN" ]]; then run_oha warm-passthrough-c32 "$PASSTHROUGH" -c 32 -z "$WARM_C32" -w; fi
run_pair 32 -z "${SLICE_C32}s" -w
GW_SENT=$((GW_SENT + $(count_sent "$WORK/out/warm-gateway-c1.json") + $(count_sent "$WORK/out/warm-gateway-c32.json")))
for f in "$WORK"/out/slices/gateway-*.json; do
    GW_SENT=$((GW_SENT + $(count_sent "$f")))
done

# --- streaming ---------------------------------------------------------------------------------
log "streaming: $STREAM_N rounds direct vs gateway, then concurrent integrity checks"
stream_rc=0
"${LOAD_PIN[@]}" python3 "$HERE/stream_ttfb.py" --api openai --direct-port "$MOCK_PORT" --gateway-port "$GW_PORT" \
    --key "$KEY" --body "$PROMPT_STREAM" --requests "$STREAM_N" >"$WORK/out/stream-openai.json" || stream_rc=1
"${LOAD_PIN[@]}" python3 "$HERE/stream_ttfb.py" --api anthropic --direct-port "$MOCK_PORT" --gateway-port "$GW_PORT" \
    --key "$KEY" --body "$PROMPT_ASTREAM" --requests "$STREAM_N" >"$WORK/out/stream-anthropic.json" || stream_rc=1
# Confidential values in the prompt: the provider streams placeholders back and the gateway
# restores them across events (issue 3). The events differ from direct by design; the text must not.
"${LOAD_PIN[@]}" python3 "$HERE/stream_ttfb.py" --api openai --direct-port "$MOCK_PORT" --gateway-port "$GW_PORT" \
    --key "$KEY" --body "$HERE/prompt-ja-pii-stream.json" --compare text --requests "$STREAM_N" \
    >"$WORK/out/stream-openai-pii.json" || stream_rc=1
# Each stream run sends via the gateway: 20 warm-up + STREAM_N measured + 400 concurrent.
GW_SENT=$((GW_SENT + 3 * (20 + STREAM_N + 400)))

# --- memory after the load ---------------------------------------------------------------------
sleep 3
IDLE_AFTER_KB="$(rss_kb "$GW_PID")"
PEAK_KB="$(hwm_kb "$GW_PID")"
log "gateway idle RSS after the load: ${IDLE_AFTER_KB} kB (peak ${PEAK_KB} kB)"
cat >"$WORK/out/rss.json" <<EOF
{"idle_after_start_kb": $IDLE_START_KB, "idle_after_load_kb": $IDLE_AFTER_KB, "peak_kb": $PEAK_KB, "mock_idle_kb": $MOCK_IDLE_KB}
EOF

# --- the log really was written ----------------------------------------------------------------
LOG_RECORDS="$(python3 -c '
import sqlite3, sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(c.execute("SELECT count(*) FROM log_records").fetchone()[0])' "$DB_DIR/mamori.db")"
log "log records: $LOG_RECORDS (requests sent via the gateway: $GW_SENT)"

# --- metadata and report -----------------------------------------------------------------------
python3 - "$WORK/out/meta.json" <<EOF
import json, platform, subprocess, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((l.split(":", 1)[1].strip() for l in open("/proc/meminfo") if l.startswith("MemTotal")), "?")
oha_v = subprocess.run(["$OHA", "--version"], capture_output=True, text=True).stdout.strip()
meta = {
    "nproc": $NCPU, "cpu_model": cpu, "mem_total": mem, "kernel": platform.release(),
    "python": platform.python_version(), "oha": oha_v, "pin": "$PIN",
    "clean_texts": "${CLEAN_TEXTS:-default}",
    "rounds": $ROUNDS, "n_c1": $((PER_C1 * ROUNDS)), "warm_c1": $WARM_C1, "seconds_c32": $((SLICE_C32 * ROUNDS)), "stream_n": $STREAM_N,
    "prompt_bytes": $(wc -c <"$PROMPT"), "binary": "$BIN", "mock_binary": "$MOCK_BIN",
    "loadavg_at_end": open("/proc/loadavg").read().split()[:3],
    "cpu_busy_pct_before_run": $BUSY_AT_START,
    "binary_sha256": "$(sha256sum "$BIN" | cut -c1-16)",
    "source_digest": "$SOURCE_DIGEST", "db_dir": "$DB_DIR",
    "started_utc": "$STARTED_UTC",
    "log_records": $LOG_RECORDS, "gateway_requests_sent": $GW_SENT,
}
json.dump(meta, open(sys.argv[1], "w"), indent=2)
EOF
python3 "$HERE/report.py" "$WORK/out"
mkdir -p "$RESULTS"
cp "$WORK/out/results.json" "$WORK/out/results.md" "$RESULTS/"
for f in oha-direct-c1 oha-gateway-c1 oha-direct-c32 oha-gateway-c32 oha-passthrough-c1 oha-passthrough-c32 stream-openai stream-anthropic stream-openai-pii rss meta; do
    if [[ -f "$WORK/out/$f.json" ]]; then cp "$WORK/out/$f.json" "$RESULTS/$f.json"; fi
done
log "summary copied to $RESULTS (results.md, results.json, raw oha/stream JSON)"
if [[ "$stream_rc" != 0 ]]; then
    log "a streaming check failed (events differed or a stream errored): see bench/results/stream-*.json"
fi
