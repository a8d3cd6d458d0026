#!/usr/bin/env bash
# Bounded soak run (5 minutes of stream by default, then a drain of up to 150 s; not part of
# `cargo test`): the axum receiver with the Redis store on 127.0.0.1, a mixed stream of valid
# unique events, duplicates, forged tokens and oversized bodies, and redis-server restarted once
# in the middle (AOF on, same --dir, as a production Redis keeps its data). Reports
# lost = delivered - handled (distinct valid events sent vs distinct ids in the receiver's
# `handled` lines), doubled handler calls, RSS at start and end, and 5xx outside the restart;
# exits non-zero on any loss or double, a failed Redis stop/start, a panicked or stuck driver
# worker, or a receiver that died. Env: SOAK_SECS (300), CONCURRENCY (8), SOAK_DRAIN_SECS (150:
# longer than the receiver's 120 s processing TTL), SOAK_DOWN_SECS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=$(mktemp -d /tmp/kinde-soak.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    [ -n "${REDIS_PORT:-}" ] && redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
command -v redis-server >/dev/null || { echo "soak: redis-server is missing (apt-get install -y redis-server)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "soak: nothing listens on port $1" >&2; exit 1
}

cargo build --release -q -p axum-receiver -p kinde-bench
BIN=$ROOT/target/release
REDIS_PORT=$(free_port); ISSUER_PORT=$(free_port); PORT=$(free_port)
mkdir -p "$WORK/redis"
REDIS_START="redis-server --port $REDIS_PORT --bind 127.0.0.1 --dir $WORK/redis --appendonly yes --appendfsync always --save '' --daemonize yes --logfile $WORK/redis.log"
sh -c "$REDIS_START"
wait_port "$REDIS_PORT"
"$BIN/bench-issuer" serve "$ISSUER_PORT" "$WORK/fetches" & PIDS+=($!)
wait_port "$ISSUER_PORT"
KINDE_DOMAIN=http://127.0.0.1:$ISSUER_PORT BIND=127.0.0.1:$PORT REDIS_URL=redis://127.0.0.1:$REDIS_PORT RUST_LOG=warn \
    "$BIN/axum-receiver" >"$WORK/handled.txt" 2>"$WORK/receiver.log" &
RPID=$!; PIDS+=($RPID)
wait_port "$PORT"

RECEIVER_URL=http://127.0.0.1:$PORT/kinde/webhook RECEIVER_PID=$RPID HANDLED_FILE=$WORK/handled.txt \
SOAK_STOP_CMD="timeout 30 redis-cli -p $REDIS_PORT shutdown >/dev/null && timeout 30 sh -c 'while redis-cli -p $REDIS_PORT ping >/dev/null 2>&1; do sleep 0.1; done'" \
SOAK_START_CMD="timeout 30 $REDIS_START && timeout 30 sh -c 'until redis-cli -p $REDIS_PORT ping >/dev/null 2>&1; do sleep 0.1; done'" \
    "$BIN/soak-driver" || rc=$?
echo "JWKS fetches during the soak: $(cat "$WORK/fetches")"
if ! kill -0 "$RPID" 2>/dev/null; then
    echo "soak: FAIL: the receiver exited during the soak; its log:" >&2
    tail -n 20 "$WORK/receiver.log" >&2
    rc=1
fi
exit "${rc:-0}"
