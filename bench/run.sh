#!/usr/bin/env bash
# End-to-end load benchmark on 127.0.0.1, one command:
#   bash bench/run.sh           the end-to-end table (every receiver, one after the other)
#   bash bench/run.sh scaling   req/s and p99 at 16/64/256 connections, 1 and 64 JWKS keys,
#                               Redis with 1 and 2 receivers
# Receivers:
#   ours-memory   the axum receiver example, in-memory store, as users run it: `cargo build
#                 --release -p axum-receiver`, default env (no RUST_LOG: info)
#   ours-memory-warn  the same with RUST_LOG=warn (the span disabled; not in the default set)
#   ours-redis    the same with REDIS_URL (a redis-server this script starts, flushed per run)
#   ours-redis-2  two of those sharing the Redis, each with its own wrk (half the connections,
#                 disjoint tokens)
#   jwt-floor     axum + jsonwebtoken, keys loaded once, a set, the stdout line (bench-only)
#   raw-floor     axum + aws-lc-rs, keys parsed once, claims read once, a set, the line
#   node          node:http + decodeWebhook from @kinde/webhooks (npm, into a temp dir)
# Each run gets its own local issuer (to count its JWKS fetches) and the same pre-signed unique
# user.created tokens (a different one per request). stdout goes to a file per receiver, whose
# `handled` lines are counted. Everything started is stopped on exit.
# Env: DURATION (s, default 10), CONNECTIONS (64), THREADS (2), TOKENS (800000), KEYS (JWKS
# keys, 1), RECEIVERS (default "ours-memory jwt-floor raw-floor ours-redis ours-redis-2 node"),
# ENTRY_BYTES (the in-memory store's bytes per entry, from `cargo bench --bench store_memory`,
# to subtract the store's entries from the receiver's RSS; default 157).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
MODE=${1:-table}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
TOKENS=${TOKENS:-800000}
KEYS=${KEYS:-1}
ENTRY_BYTES=${ENTRY_BYTES:-157}
RECEIVERS=${RECEIVERS:-"ours-memory jwt-floor raw-floor ours-redis ours-redis-2 node"}
[ "$MODE" = scaling ] && RECEIVERS=${SCALING_RECEIVERS:-"ours-memory ours-redis ours-redis-2 raw-floor"}
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
case " $RECEIVERS " in *" node "*) need node "the Node.js runtime"; need npm "the Node.js package manager" ;; esac

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench: nothing listens on port $1" >&2; exit 1
}

echo "== building (release, as users build it)"
cargo build --release -q -p axum-receiver
cargo build --release -q -p kinde-bench --bins
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
REDIS_PID=""
case " $RECEIVERS " in *" ours-redis"*)
    need redis-server "apt-get install -y redis-server"
    need redis-cli "apt-get install -y redis-tools"
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" --logfile "$WORK/redis.log" &
    REDIS_PID=$!
    PIDS+=($REDIS_PID)
    wait_port "$REDIS_PORT"
;; esac

# start_receiver NAME DOMAIN PORT OUT ERR: starts one receiver process; its pid in RPID.
start_receiver() {
    local name=$1 domain=$2 port=$3 out=$4 err=$5
    case $name in
        ours-memory) env -u RUST_LOG KINDE_DOMAIN="$domain" BIND="127.0.0.1:$port" "$BIN/axum-receiver" >"$out" 2>"$err" & ;;
        ours-memory-warn) RUST_LOG=warn KINDE_DOMAIN="$domain" BIND="127.0.0.1:$port" "$BIN/axum-receiver" >"$out" 2>"$err" & ;;
        ours-redis*) env -u RUST_LOG KINDE_DOMAIN="$domain" BIND="127.0.0.1:$port" \
            REDIS_URL="redis://127.0.0.1:$REDIS_PORT" "$BIN/axum-receiver" >"$out" 2>"$err" & ;;
        node) KINDE_DOMAIN="$domain" BIND_PORT="$port" node "$WORK/receiver.mjs" >"$out" 2>"$err" & ;;
        jwt-floor|raw-floor) KINDE_DOMAIN="$domain" BIND="127.0.0.1:$port" "$BIN/$name" >"$out" 2>"$err" & ;;
        *) echo "bench: unknown receiver $name" >&2; exit 2 ;;
    esac
    RPID=$!
}

# CPU time (utime + stime, in clock ticks) of a process so far.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; } # fields after "(comm) "
TICK_US=$((1000000 / $(getconf CLK_TCK)))

declare -A RPS P50 P99 NON2XX SOCK FETCH RSS REQS WRAPS LINES ERRBYTES LOAD CPU RCPU
# run_one LABEL NAME CONNECTIONS KEYS: one measured run; results under LABEL.
run_one() {
    local label=$1 name=$2 conns=$3 keys=$4
    local procs=1
    [ "$name" = ours-redis-2 ] && procs=2
    [ -n "$REDIS_PORT" ] && redis-cli -p "$REDIS_PORT" flushall >/dev/null
    local issuer_port
    issuer_port=$(free_port)
    "$BIN/bench-issuer" serve "$issuer_port" "$WORK/fetches-$label" "$keys" &
    local issuer_pid=$!
    PIDS+=($issuer_pid)
    wait_port "$issuer_port"
    local domain="http://127.0.0.1:$issuer_port"
    local ports=() rpids=()
    for i in $(seq 1 $procs); do
        local port
        port=$(free_port)
        ports+=("$port")
        start_receiver "$name" "$domain" "$port" "$WORK/$label.out.$i" "$WORK/$label.err.$i"
        rpids+=("$RPID")
        PIDS+=("$RPID")
    done
    for port in "${ports[@]}"; do wait_port "$port"; done
    LOAD[$label]=$(cut -d' ' -f1 /proc/loadavg)
    echo "== $label: wrk -t$THREADS -c$conns -d${DURATION}s x $procs (load before: ${LOAD[$label]})"
    local cpu0=0 rcpu0=0
    for rpid in "${rpids[@]}"; do cpu0=$((cpu0 + $(cpu_ticks "$rpid"))); done
    [ -n "$REDIS_PID" ] && rcpu0=$(cpu_ticks "$REDIS_PID")
    local i=0 wrks=()
    for port in "${ports[@]}"; do
        WRK_THREADS=$THREADS TOKENS=$TOKEN_FILE TOKEN_SHARDS=$procs TOKEN_SHARD=$i \
            wrk -t"$THREADS" -c"$((conns / procs))" -d"${DURATION}s" -s bench/post.lua \
            "http://127.0.0.1:$port/kinde/webhook" >"$WORK/$label.wrk.$i" &
        wrks+=($!)
        i=$((i + 1))
    done
    for w in "${wrks[@]}"; do wait "$w"; done
    # Sum over the wrk processes; p50/p99 the worst of them.
    local sum
    sum=$(grep -h '^RESULT' "$WORK/$label".wrk.* | tr ' ' '\n' | awk -F= '
        $1=="rps"||$1=="requests"||$1=="non2xx"||$1=="token_wraps" {s[$1]+=$2}
        $1=="connect"||$1=="read"||$1=="write"||$1=="timeout" {s["sock"]+=$2}
        $1=="p50_us"||$1=="p99_us" {if ($2>s[$1]) s[$1]=$2}
        END {printf "%d %d %d %d %d %d %d", s["rps"], s["p50_us"], s["p99_us"], s["requests"], s["non2xx"], s["sock"], s["token_wraps"]}')
    read -r RPS[$label] P50[$label] P99[$label] REQS[$label] NON2XX[$label] SOCK[$label] WRAPS[$label] <<<"$sum"
    grep -h '^RESULT' "$WORK/$label".wrk.* | sed 's/^/   /'
    local cpu1=0 rcpu1=0
    for rpid in "${rpids[@]}"; do cpu1=$((cpu1 + $(cpu_ticks "$rpid"))); done
    [ -n "$REDIS_PID" ] && rcpu1=$(cpu_ticks "$REDIS_PID")
    # CPU per answered request, in µs: the receiver process(es), and redis-server.
    CPU[$label]=$(awk -v t=$((cpu1 - cpu0)) -v u=$TICK_US -v r="${REQS[$label]}" 'BEGIN{printf "%.1f", t*u/r}')
    RCPU[$label]="-"
    [[ "$name" = ours-redis* ]] && RCPU[$label]=$(awk -v t=$((rcpu1 - rcpu0)) -v u=$TICK_US -v r="${REQS[$label]}" 'BEGIN{printf "%.1f", t*u/r}')
    local rss=0
    for rpid in "${rpids[@]}"; do
        rss=$((rss + $(awk '/VmHWM/ {print $2}' "/proc/$rpid/status")))
    done
    RSS[$label]=$((rss / procs))
    for rpid in "${rpids[@]}"; do kill "$rpid"; wait "$rpid" 2>/dev/null || true; done
    kill "$issuer_pid"; wait "$issuer_pid" 2>/dev/null || true
    FETCH[$label]=$(cat "$WORK/fetches-$label")
    LINES[$label]=$(cat "$WORK/$label".out.* | grep -c '^handled ' || true)
    ERRBYTES[$label]=$(cat "$WORK/$label".err.* | wc -c)
    rm -f "$WORK/$label".out.*
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else printf "-" }'; }
ms() { awk -v u="$1" 'BEGIN{printf "%.2f", u/1000}'; }
header() {
    echo
    echo "date: $(date -u +%Y-%m-%dT%H:%MZ); machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); wrk -t$THREADS -d${DURATION}s on the same machine; $TOKENS tokens"
}

if [ "$MODE" = table ]; then
    for name in $RECEIVERS; do run_one "$name" "$name" "$CONNECTIONS" "$KEYS"; done
    header
    echo "connections: $CONNECTIONS; JWKS keys: $KEYS"
    FMT='| %-12s | %7s | %6s | %6s | %7s | %8s | %5s | %8s | %8s | %9s | %9s | %7s | %7s | %6s | %6s | %6s | %5s |\n'
    printf "$FMT" receiver "req/s" "p50 ms" "p99 ms" non-2xx "sock err" "JWKS" "handled" "stderr B" "peak RSS" "RSS-store" "CPU µs" "Redis µs" "x jwt" "x raw" "x Node" "load"
    printf '|%s|\n' "--------------|---------|--------|--------|---------|----------|-------|----------|----------|-----------|-----------|---------|---------|--------|--------|--------|-------"
    for name in $RECEIVERS; do
        rss_mib=$(awk -v k="${RSS[$name]}" 'BEGIN{printf "%.1f", k/1024}')
        net="-"
        [ "$name" = ours-memory ] && net=$(awk -v k="${RSS[$name]}" -v n="${LINES[$name]}" -v b="$ENTRY_BYTES" 'BEGIN{printf "%.1f", (k*1024 - n*b)/1048576}')
        [[ "$name" = ours-redis* ]] && net=$rss_mib
        lines=${LINES[$name]}
        [ "$name" = node ] && lines="-"
        printf "$FMT" "$name" "${RPS[$name]}" \
            "$(ms "${P50[$name]}")" "$(ms "${P99[$name]}")" "${NON2XX[$name]}" "${SOCK[$name]}" "${FETCH[$name]}" \
            "$lines" "${ERRBYTES[$name]}" "$rss_mib MiB" "$net MiB" "${CPU[$name]}" "${RCPU[$name]}" \
            "$(ratio "${RPS[$name]}" "${RPS[jwt-floor]:-0}")" "$(ratio "${RPS[$name]}" "${RPS[raw-floor]:-0}")" \
            "$(ratio "${RPS[$name]}" "${RPS[node]:-0}")" "${LOAD[$name]}"
        [ "${WRAPS[$name]}" != "0" ] && echo "   note: $name used the token file ${WRAPS[$name]} more time(s): raise TOKENS" || true
    done
    [ -n "${RPS[ours-memory]:-}" ] && for r in ours-redis ours-redis-2; do
        [ -n "${RPS[$r]:-}" ] && echo "$r / ours-memory: $(ratio "${RPS[$r]}" "${RPS[ours-memory]}")"
    done
    echo "(non-2xx: wrk's count of answers >= 400; sock err: wrk's connect+read+write+timeout errors; JWKS: fetches counted by the issuer, for all the run's receiver processes; handled: 'handled' lines on stdout; stderr B: bytes logged; RSS: peak (VmHWM), per process; RSS-store: ours-memory's peak less handled x $ENTRY_BYTES B, ours-redis's peak as is; CPU µs: receiver CPU time (user+sys) per answered request, all its processes; Redis µs: redis-server's)"
else
    declare -A CELL
    for conns in 16 64 256; do
        for name in $RECEIVERS; do
            for keys in 1 64; do
                [ "$keys" = 64 ] && [ "$name" != ours-memory ] && continue
                label="$name-k$keys-c$conns"
                run_one "$label" "$name" "$conns" "$keys"
                CELL[$name-k$keys-$conns]="${RPS[$label]} / $(ms "${P99[$label]}") ms / ${NON2XX[$label]}+${SOCK[$label]} / ${LOAD[$label]}"
            done
        done
    done
    header
    echo "each cell: req/s / p99 / non-2xx+socket errors / load average before the run"
    printf '| %-24s | %-32s | %-32s | %-32s |\n' "receiver (JWKS keys)" "16 connections" "64 connections" "256 connections"
    printf '|%s|\n' "--------------------------|----------------------------------|----------------------------------|----------------------------------"
    for name in $RECEIVERS; do
        for keys in 1 64; do
            [ "$keys" = 64 ] && [ "$name" != ours-memory ] && continue
            printf '| %-24s | %-32s | %-32s | %-32s |\n' "$name ($keys)" "${CELL[$name-k$keys-16]}" "${CELL[$name-k$keys-64]}" "${CELL[$name-k$keys-256]}"
        done
    done
fi
