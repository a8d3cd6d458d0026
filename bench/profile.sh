#!/usr/bin/env bash
# Where a receiver's CPU goes under the end-to-end load: `bash bench/profile.sh [RECEIVER]`
# (ours-memory, the default; ours-redis; jwt-floor; raw-floor). Starts the local issuer, the
# receiver (built as bench/run.sh builds it) and, for ours-redis, a redis-server; runs
# `wrk -t2 -c64` with a different pre-signed token per request and samples the receiver with
# `perf record -e cpu-clock` (a software clock: this machine's VM has no hardware counters, so
# `perf stat -e instructions` is not supported) for PERF_SECS (8) seconds after a 1 s warm-up.
# Prints the top entries by self time (PERF_TOP, 40), then by shared object; the raw data stays
# in PERF_DATA (default target/perf-RECEIVER.data). Run bench/run.sh once first (it builds and
# signs the tokens). Env: DURATION (s, 10), CONNECTIONS (64), TOKENS (800000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
NAME=${1:-ours-memory}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
TOKENS=${TOKENS:-800000}
PERF_SECS=${PERF_SECS:-8}
PERF_TOP=${PERF_TOP:-40}
PERF_DATA=${PERF_DATA:-$ROOT/target/perf-$NAME.data}
# PERF_CALLGRAPH=1: record call graphs (dwarf) too, and print the top entries by inclusive time.
PERF_CALLGRAPH=${PERF_CALLGRAPH:-}
BIN=$ROOT/target/release
TOKEN_FILE=$ROOT/target/bench-tokens-$TOKENS.txt
[ -f "$TOKEN_FILE" ] || { echo "profile: no $TOKEN_FILE: run bash bench/run.sh first" >&2; exit 1; }
command -v perf >/dev/null || { echo "profile: perf is missing (apt-get install -y linux-perf)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/kinde-profile.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "profile: nothing listens on port $1" >&2; exit 1
}

ISSUER_PORT=$(free_port)
"$BIN/bench-issuer" serve "$ISSUER_PORT" "$WORK/fetches" & PIDS+=($!)
wait_port "$ISSUER_PORT"
DOMAIN=http://127.0.0.1:$ISSUER_PORT
PORT=$(free_port)
case $NAME in
    ours-memory) env -u RUST_LOG KINDE_DOMAIN=$DOMAIN BIND=127.0.0.1:$PORT "$BIN/axum-receiver" >"$WORK/out" 2>"$WORK/err" & ;;
    ours-redis)
        REDIS_PORT=$(free_port)
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
            --logfile "$WORK/redis.log" & PIDS+=($!)
        wait_port "$REDIS_PORT"
        env -u RUST_LOG KINDE_DOMAIN=$DOMAIN BIND=127.0.0.1:$PORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT \
            "$BIN/axum-receiver" >"$WORK/out" 2>"$WORK/err" & ;;
    jwt-floor|raw-floor) KINDE_DOMAIN=$DOMAIN BIND=127.0.0.1:$PORT "$BIN/$NAME" >"$WORK/out" 2>"$WORK/err" & ;;
    *) echo "profile: unknown receiver $NAME" >&2; exit 2 ;;
esac
RPID=$!
PIDS+=($RPID)
wait_port "$PORT"
WRK_THREADS=2 TOKENS=$TOKEN_FILE wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/post.lua \
    "http://127.0.0.1:$PORT/kinde/webhook" >"$WORK/wrk" &
WRK=$!
# wrk reads the token file before it connects: wait for the first handled line.
for _ in $(seq 1 600); do [ -s "$WORK/out" ] && break; sleep 0.1; done
sleep 1
echo "== perf record -e cpu-clock -p $RPID for ${PERF_SECS}s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
if [ -n "$PERF_CALLGRAPH" ]; then
    perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 -p "$RPID" -o "$PERF_DATA" -- sleep "$PERF_SECS" 2>/dev/null
else
    perf record -q -e cpu-clock -F 4999 -p "$RPID" -o "$PERF_DATA" -- sleep "$PERF_SECS" 2>/dev/null
fi
wait "$WRK"
grep '^RESULT' "$WORK/wrk"
echo "== top $PERF_TOP symbols by self time ($NAME)"
perf report -i "$PERF_DATA" --stdio --no-children --sort symbol --percent-limit 0.3 2>/dev/null \
    | grep -v "^#" | grep -v "^$" | sed "s/  *$//" | head -n "$PERF_TOP"
if [ -n "$PERF_CALLGRAPH" ]; then
    echo "== top $PERF_TOP symbols by inclusive time ($NAME)"
    perf report -i "$PERF_DATA" --stdio --children --sort symbol --no-demangle -g none --percent-limit 1 2>/dev/null \
        | grep -v "^#" | grep -v "^$" | sed "s/  *$//" | head -n "$PERF_TOP"
fi
echo "== by shared object"
perf report -i "$PERF_DATA" --stdio --no-children --sort dso 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 12
