#!/usr/bin/env bash
# End-to-end load benchmark on 127.0.0.1, one command: `bash bench/run.sh`.
# Receivers, one after the other, same wrk connections and duration:
#   ours-memory  the axum receiver example, in-memory store
#   ours-redis   the same with REDIS_URL (a redis-server this script starts)
#   node         node:http + decodeWebhook from @kinde/webhooks (npm, installed into a temp dir)
#   floor        axum + jsonwebtoken, signature check only (bench-only)
# Each receiver gets its own local issuer (to count its JWKS fetches) and the same pre-signed
# unique user.created tokens. Prints a table; everything started is stopped on exit.
# Env: DURATION (s, default 10), CONNECTIONS (64), THREADS (2), TOKENS (400000), RECEIVERS
# (default "ours-memory ours-redis node floor").
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-400000}
RECEIVERS=${RECEIVERS:-"ours-memory ours-redis node floor"}
WORK=$(mktemp -d /tmp/kinde-bench.XXXXXX)
PIDS=()

cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench: $1 is missing ($2)" >&2; exit 1; }; }
need wrk "apt-get install -y wrk"
need node "the Node.js runtime"
need npm "the Node.js package manager"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench: nothing listens on port $1" >&2; exit 1
}

echo "== building (release)"
cargo build --release -q -p axum-receiver -p kinde-bench
BIN=$ROOT/target/release

TOKEN_FILE=$ROOT/target/bench-tokens-$TOKENS.txt
if [ ! -f "$TOKEN_FILE" ] || [ -n "$(find "$TOKEN_FILE" -mmin +600)" ]; then
    echo "== signing $TOKENS unique tokens (kept in $TOKEN_FILE for 10 h)"
    "$BIN/bench-issuer" sign "$TOKENS" "$TOKEN_FILE"
fi

case " $RECEIVERS " in *" node "*)
    echo "== installing @kinde/webhooks with npm"
    cp bench/node/package.json bench/node/receiver.mjs "$WORK/"
    (cd "$WORK" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
;; esac

REDIS_PORT=""
case " $RECEIVERS " in *" ours-redis "*)
    need redis-server "apt-get install -y redis-server"
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" --logfile "$WORK/redis.log" &
    PIDS+=($!)
    wait_port "$REDIS_PORT"
;; esac

declare -A RPS P50 P99 NON200 FETCH RSS REQS WRAPS
for name in $RECEIVERS; do
    ISSUER_PORT=$(free_port)
    PORT=$(free_port)
    "$BIN/bench-issuer" serve "$ISSUER_PORT" "$WORK/fetches-$name" &
    ISSUER_PID=$!
    PIDS+=($ISSUER_PID)
    wait_port "$ISSUER_PORT"
    DOMAIN="http://127.0.0.1:$ISSUER_PORT"
    case $name in
        ours-memory) KINDE_DOMAIN=$DOMAIN BIND=127.0.0.1:$PORT RUST_LOG=warn "$BIN/axum-receiver" >/dev/null 2>"$WORK/$name.log" & ;;
        ours-redis) KINDE_DOMAIN=$DOMAIN BIND=127.0.0.1:$PORT RUST_LOG=warn REDIS_URL=redis://127.0.0.1:$REDIS_PORT "$BIN/axum-receiver" >/dev/null 2>"$WORK/$name.log" & ;;
        node) KINDE_DOMAIN=$DOMAIN BIND_PORT=$PORT node "$WORK/receiver.mjs" >/dev/null 2>"$WORK/$name.log" & ;;
        floor) KINDE_DOMAIN=$DOMAIN BIND=127.0.0.1:$PORT "$BIN/floor-receiver" >/dev/null 2>"$WORK/$name.log" & ;;
        *) echo "bench: unknown receiver $name" >&2; exit 2 ;;
    esac
    RPID=$!
    PIDS+=($RPID)
    wait_port "$PORT"
    echo "== $name: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"
    OUT=$(WRK_THREADS=$THREADS TOKENS=$TOKEN_FILE wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        -s bench/post.lua "http://127.0.0.1:$PORT/kinde/webhook")
    LINE=$(echo "$OUT" | grep '^RESULT')
    echo "   $LINE"
    val() { echo "$LINE" | tr ' ' '\n' | grep "^$1=" | cut -d= -f2; }
    RPS[$name]=$(val rps); P50[$name]=$(val p50_us); P99[$name]=$(val p99_us)
    NON200[$name]=$(val non200); REQS[$name]=$(val requests); WRAPS[$name]=$(val token_wraps)
    RSS[$name]=$(awk '/VmHWM/ {print $2}' "/proc/$RPID/status")
    kill "$RPID"; wait "$RPID" 2>/dev/null || true
    kill "$ISSUER_PID"; wait "$ISSUER_PID" 2>/dev/null || true
    FETCH[$name]=$(cat "$WORK/fetches-$name")
done

NODE_RPS=${RPS[node]:-}
FLOOR_RPS=${RPS[floor]:-}
echo
echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s on the same machine"
printf '| %-12s | %9s | %8s | %8s | %8s | %12s | %13s | %9s | %7s | %9s |\n' receiver "req/s" "p50 ms" "p99 ms" "non-200" "JWKS fetches" "fetches/req" "peak RSS" "x Node" "x floor"
printf '|%s|\n' "--------------|-----------|----------|----------|----------|--------------|---------------|-----------|---------|-----------"
for name in $RECEIVERS; do
    ratio_node="-"; ratio_floor="-"
    [ -n "$NODE_RPS" ] && ratio_node=$(awk -v a="${RPS[$name]}" -v b="$NODE_RPS" 'BEGIN{printf "%.1f", a/b}')
    [ -n "$FLOOR_RPS" ] && ratio_floor=$(awk -v a="${RPS[$name]}" -v b="$FLOOR_RPS" 'BEGIN{printf "%.0f %%", 100*a/b}')
    printf '| %-12s | %9s | %8s | %8s | %8s | %12s | %13s | %6s MiB | %7s | %9s |\n' "$name" "${RPS[$name]}" \
        "$(awk -v u="${P50[$name]}" 'BEGIN{printf "%.2f", u/1000}')" "$(awk -v u="${P99[$name]}" 'BEGIN{printf "%.2f", u/1000}')" \
        "${NON200[$name]}" "${FETCH[$name]}" "$(awk -v f="${FETCH[$name]}" -v r="${REQS[$name]}" 'BEGIN{printf "%.4f", f/r}')" \
        "$(awk -v k="${RSS[$name]}" 'BEGIN{printf "%.1f", k/1024}')" "$ratio_node" "$ratio_floor"
    [ "${WRAPS[$name]}" != "0" ] && echo "   note: $name used the token file ${WRAPS[$name]} more time(s): raise TOKENS" || true
done
