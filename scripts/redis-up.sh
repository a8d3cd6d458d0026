# shellcheck shell=bash
# Starts throw-away Redis servers for kinde-core's Redis tests (`--features redis --test redis_store`).
#
#   source scripts/redis-up.sh      # in bash: starts them and exports the variables below
#   ...run the tests...
#   source scripts/redis-down.sh    # stops them and removes their directories
#
# (Run directly instead of sourced, it prints the `export` lines: eval "$(scripts/redis-up.sh)".)
#
# Started on 127.0.0.1, on free ports <= 55535 (a cluster node's bus port is port + 10000), each
# server in its own temporary directory, without RDB snapshots:
#   1. a single server with AOF (`appendonly yes`, `appendfsync always`), which the tests stop and
#      start again on the same port and directory (its data survives);
#   2. a 3-master Redis Cluster (no replicas).
#
# Exports:
#   KINDE_TEST_REDIS_URL             redis://127.0.0.1:P            the single server
#   KINDE_TEST_REDIS_CLUSTER_URLS    redis://127.0.0.1:P1,...,P3    the cluster's nodes
#   KINDE_TEST_REDIS_STOP_CMD        sh command: stops the single server (waits until it is gone)
#   KINDE_TEST_REDIS_START_CMD       sh command: starts it again (waits until it answers PING)
#   KINDE_TEST_REDIS_ROOT            the temporary directory holding everything (for redis-down.sh)
#
# Needs redis-server and redis-cli >= 7.0. If they are missing and we are root with apt-get, they
# are installed (`apt-get install -y redis-server`); otherwise the script says how to install them,
# exports nothing (the Redis tests then skip) and returns 0 -- or 1 when KINDE_REQUIRE_REDIS=1.
# Every wait is bounded. Safe under `set -euo pipefail`; leaves the caller's options alone.

_kinde_redis_log() { echo "redis-up: $*" >&2; }

# Whether nothing listens on 127.0.0.1:$1.
_kinde_redis_port_free() {
    local p=$1 listening
    if command -v ss >/dev/null 2>&1; then
        listening=$(ss -Htln "sport = :$p" 2>/dev/null || true)
        [[ -z $listening ]] || return 1
    fi
    # A refused connection means free (bash's /dev/tcp; bounded by the kernel's quick RST).
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        return 1
    fi
    return 0
}

# Prints a random free port in [20000, 55000) whose port + 10000 is free too.
_kinde_redis_pick_port() {
    local i p
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 35000))
        if _kinde_redis_port_free "$p" && _kinde_redis_port_free $((p + 10000)); then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# Waits (at most ~10 s) until the server on port $1 answers PING.
_kinde_redis_wait_ping() {
    local i out
    for ((i = 0; i < 100; i++)); do
        out=$(redis-cli -p "$1" ping 2>/dev/null || true)
        [[ $out == *PONG* ]] && return 0
        sleep 0.1
    done
    return 1
}

# Starts a server in a new directory under $1 with extra config lines $3...; kind $2 = single|node.
# Retries on another port if the chosen one was taken meanwhile. Prints "port dir".
_kinde_redis_start() {
    local root=$1 kind=$2 attempt port dir
    shift 2
    for ((attempt = 0; attempt < 5; attempt++)); do
        port=$(_kinde_redis_pick_port) || return 1
        dir="$root/$kind-$port"
        mkdir -p "$dir"
        {
            echo "port $port"
            echo "bind 127.0.0.1"
            echo "dir $dir"
            echo "daemonize yes"
            echo "pidfile $dir/redis.pid"
            echo "logfile $dir/redis.log"
            echo 'save ""'
            local line
            for line in "$@"; do
                echo "${line//@PORT@/$port}"
            done
        } >"$dir/redis.conf"
        echo "$port" >"$dir/port"
        if redis-server "$dir/redis.conf" >/dev/null 2>&1 && _kinde_redis_wait_ping "$port"; then
            echo "$port $dir"
            return 0
        fi
        _kinde_redis_log "could not start redis-server on port $port (log: $dir/redis.log); trying another port"
        if [[ -f $dir/redis.pid ]]; then
            kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
        fi
    done
    return 1
}

_kinde_redis_up() {
    if [[ -n ${KINDE_TEST_REDIS_ROOT:-} && -d ${KINDE_TEST_REDIS_ROOT:-} ]]; then
        _kinde_redis_log "already running (KINDE_TEST_REDIS_ROOT=$KINDE_TEST_REDIS_ROOT)"
        return 0
    fi
    local fail=0
    [[ ${KINDE_REQUIRE_REDIS:-} == 1 ]] && fail=1

    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            _kinde_redis_log "redis-server not found: installing it with apt-get"
            if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2; }; then
                _kinde_redis_log "apt-get install redis-server failed; the Redis tests will skip"
                return "$fail"
            fi
        else
            _kinde_redis_log "redis-server/redis-cli (>= 7.0) not found; the Redis tests will skip."
            _kinde_redis_log "install them, e.g. 'sudo apt-get install redis-server' (Debian/Ubuntu) or 'brew install redis' (macOS)"
            return "$fail"
        fi
    fi
    local version major
    version=$(redis-server --version 2>/dev/null || true)
    version=${version#*v=}
    version=${version%% *}
    major=${version%%.*}
    if ! [[ $major =~ ^[0-9]+$ ]] || ((major < 7)); then
        _kinde_redis_log "redis-server ${version:-?} found, but the Redis store needs >= 7.0 (SET NX GET); the Redis tests will skip"
        return "$fail"
    fi

    local root
    root=$(mktemp -d "${TMPDIR:-/tmp}/kinde-redis.XXXXXX") || return 1
    export KINDE_TEST_REDIS_ROOT=$root

    # 1. The single server, durable across restarts.
    local single sport sdir
    if ! single=$(_kinde_redis_start "$root" single "appendonly yes" "appendfsync always"); then
        _kinde_redis_log "could not start the single redis-server"
        _kinde_redis_cleanup_failed "$root"
        return 1
    fi
    read -r sport sdir <<<"$single"
    cat >"$sdir/start.sh" <<EOF
#!/bin/sh
# Starts the single test server again: same port, same directory, same data.
redis-server '$sdir/redis.conf' >/dev/null || exit 1
i=0
while [ \$i -lt 100 ]; do
    case "\$(redis-cli -p $sport ping 2>/dev/null)" in *PONG*) exit 0 ;; esac
    sleep 0.1
    i=\$((i + 1))
done
echo "redis on port $sport did not come back" >&2
exit 1
EOF
    cat >"$sdir/stop.sh" <<EOF
#!/bin/sh
# Stops the single test server (AOF with appendfsync always: every acknowledged write is kept).
pid=\$(cat '$sdir/redis.pid' 2>/dev/null)
redis-cli -p $sport shutdown >/dev/null 2>&1
i=0
while [ \$i -lt 100 ]; do
    # Gone, or a zombie (stopped, not yet reaped).
    if [ -z "\$pid" ] || ! kill -0 "\$pid" 2>/dev/null; then
        exit 0
    fi
    case "\$(cat /proc/\$pid/stat 2>/dev/null)" in *") Z "*) exit 0 ;; esac
    sleep 0.1
    i=\$((i + 1))
done
echo "redis on port $sport did not stop" >&2
exit 1
EOF

    # 2. The cluster: three masters, then wait until every node says cluster_state:ok.
    local ports=() node nport ndir i
    for i in 1 2 3; do
        if ! node=$(_kinde_redis_start "$root" node "appendonly no" "cluster-enabled yes" \
            "cluster-config-file nodes-@PORT@.conf" "cluster-node-timeout 5000"); then
            _kinde_redis_log "could not start cluster node $i"
            _kinde_redis_cleanup_failed "$root"
            return 1
        fi
        read -r nport ndir <<<"$node"
        ports+=("$nport")
    done
    local create=(redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}"
        "127.0.0.1:${ports[2]}" --cluster-replicas 0 --cluster-yes)
    if command -v timeout >/dev/null 2>&1; then
        create=(timeout 60 "${create[@]}")
    fi
    if ! "${create[@]}" >"$root/cluster-create.log" 2>&1; then
        _kinde_redis_log "redis-cli --cluster create failed (log: $root/cluster-create.log)"
        cat "$root/cluster-create.log" >&2
        _kinde_redis_cleanup_failed "$root"
        return 1
    fi
    local ok p out
    for ((i = 0; i < 150; i++)); do
        ok=1
        for p in "${ports[@]}"; do
            out=$(redis-cli -p "$p" cluster info 2>/dev/null || true)
            [[ $out == *cluster_state:ok* ]] || ok=0
        done
        ((ok == 1)) && break
        sleep 0.2
    done
    if ((ok != 1)); then
        _kinde_redis_log "the cluster did not reach cluster_state:ok within 30 s"
        _kinde_redis_cleanup_failed "$root"
        return 1
    fi

    export KINDE_TEST_REDIS_URL="redis://127.0.0.1:$sport"
    export KINDE_TEST_REDIS_CLUSTER_URLS="redis://127.0.0.1:${ports[0]},redis://127.0.0.1:${ports[1]},redis://127.0.0.1:${ports[2]}"
    export KINDE_TEST_REDIS_STOP_CMD="sh '$sdir/stop.sh'"
    export KINDE_TEST_REDIS_START_CMD="sh '$sdir/start.sh'"
    _kinde_redis_log "single server $KINDE_TEST_REDIS_URL; cluster $KINDE_TEST_REDIS_CLUSTER_URLS (redis $version, in $root)"
    return 0
}

# Stops whatever was started after a failure, and unsets KINDE_TEST_REDIS_ROOT.
_kinde_redis_cleanup_failed() {
    local here
    here=$(dirname "${BASH_SOURCE[0]}")
    # shellcheck source=scripts/redis-down.sh
    source "$here/redis-down.sh" || true
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    # Executed, not sourced: print the exports for eval.
    if _kinde_redis_up; then
        for _kinde_redis_var in KINDE_TEST_REDIS_URL KINDE_TEST_REDIS_CLUSTER_URLS \
            KINDE_TEST_REDIS_STOP_CMD KINDE_TEST_REDIS_START_CMD KINDE_TEST_REDIS_ROOT; do
            if [[ -n ${!_kinde_redis_var:-} ]]; then
                printf 'export %s=%q\n' "$_kinde_redis_var" "${!_kinde_redis_var}"
            fi
        done
        exit 0
    fi
    exit 1
else
    _kinde_redis_status=0
    _kinde_redis_up || _kinde_redis_status=$?
    unset -f _kinde_redis_log _kinde_redis_port_free _kinde_redis_pick_port _kinde_redis_wait_ping \
        _kinde_redis_start _kinde_redis_up _kinde_redis_cleanup_failed
    return "$_kinde_redis_status"
fi
