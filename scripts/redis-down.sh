# shellcheck shell=bash
# Stops the Redis servers started by scripts/redis-up.sh and removes their directories.
#
#   source scripts/redis-down.sh    # also unsets the KINDE_TEST_REDIS_* variables
#   scripts/redis-down.sh DIR       # or run it with the KINDE_TEST_REDIS_ROOT directory
#
# Only servers whose pid files are under that directory are touched, by PID: all are sent
# SIGTERM (a clean shutdown, TLS or not), then, after a bounded wait (5 s), SIGKILL whatever is
# left. Safe to run twice, or when a test left a server stopped or killed. Safe under
# `set -euo pipefail`.

# Whether pid $1 runs (a zombie does not: in a container whose init does not reap, a stopped
# server can stay one).
_kinde_redis_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null || true)
    [[ $stat != *") Z "* ]]
}

_kinde_redis_down() {
    local root=${1:-${KINDE_TEST_REDIS_ROOT:-}}
    if [[ -z $root || ! -d $root ]]; then
        echo "redis-down: nothing to stop" >&2
        return 0
    fi
    case $root in
    */kinde-redis.*) ;;
    *)
        echo "redis-down: $root is not a directory made by redis-up.sh; leaving it alone" >&2
        return 1
        ;;
    esac
    local dir pid comm i pids=() left=()
    for dir in "$root"/*/; do
        dir=${dir%/}
        [[ -f $dir/port ]] || continue
        pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
        if [[ -z $pid ]] || ! _kinde_redis_alive "$pid"; then
            continue # not running (never started, or stopped or killed by a test)
        fi
        # Our pid file, and the process is still a redis-server (not a recycled pid).
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || ps -o comm= -p "$pid" 2>/dev/null || true)
        [[ $comm == *redis* ]] || continue
        kill -TERM "$pid" 2>/dev/null || true
        pids+=("$pid")
    done
    for ((i = 0; i < 50; i++)); do
        left=()
        for pid in "${pids[@]}"; do
            _kinde_redis_alive "$pid" && left+=("$pid")
        done
        ((${#left[@]} == 0)) && break
        sleep 0.1
    done
    for pid in "${left[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf -- "$root"
    echo "redis-down: stopped ${#pids[@]} redis-server(s) (${#left[@]} with SIGKILL), removed $root" >&2
    return 0
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    _kinde_redis_down "${1:-}"
    exit $?
else
    _kinde_redis_down
    unset -f _kinde_redis_down _kinde_redis_alive
    unset KINDE_TEST_REDIS_URL KINDE_TEST_REDIS_STOP_CMD KINDE_TEST_REDIS_START_CMD \
        KINDE_TEST_REDIS_CLUSTER_URLS KINDE_TEST_REDIS_NODE_CMD KINDE_TEST_REDIS_TLS_URL \
        KINDE_TEST_REDIS_MTLS_URL KINDE_TEST_REDIS_TLS_CLUSTER_URLS KINDE_TEST_REDIS_TLS_CA \
        KINDE_TEST_REDIS_TLS_CLIENT_CERT KINDE_TEST_REDIS_TLS_CLIENT_KEY \
        KINDE_TEST_REDIS_TLS_OTHER_CA KINDE_TEST_REDIS_ROOT
fi
