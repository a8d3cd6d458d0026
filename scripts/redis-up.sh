# shellcheck shell=bash
# Starts throw-away Redis servers for kinde-core's Redis tests
# (`cargo test -p kinde-core --features redis --test redis_store --test redis_tls_provider`).
#
#   source scripts/redis-up.sh      # in bash: starts them and exports the variables below
#   ...run the tests...
#   source scripts/redis-down.sh    # stops them (by PID) and removes their directories
#
# (Run directly instead of sourced, it prints the `export` lines: eval "$(scripts/redis-up.sh)".)
#
# Started on 127.0.0.1, on free ports <= 55535 (a cluster node's bus port is port + 10000), each
# server in its own directory under one temporary directory, without RDB snapshots:
#   1. a single server with AOF (`appendonly yes`, `appendfsync always`), which the tests stop and
#      start again on the same port and directory (its data survives);
#   2. a Redis Cluster as people run it: 3 masters with 1 replica each, `cluster-node-timeout
#      1000`, which the tests may fail over (by killing a master) and reshard;
#   3. with TLS (certificates generated here with openssl: a CA, a server certificate for
#      IP:127.0.0.1, a client certificate, and an unrelated CA): a TLS-only server, a TLS-only
#      server that requires client certificates (mutual TLS), and a TLS-only cluster of 3 masters
#      with 1 replica each (`tls-cluster yes`, `tls-replication yes`).
# It returns once every server answers, both clusters say cluster_state:ok on every node, and
# every replica is in sync with its master (about 6 s for the 15 servers on a quiet machine).
#
# Exports (the *_CMD variables are commands for `sh -c`):
#   KINDE_TEST_REDIS_URL               redis://127.0.0.1:P           the single server
#   KINDE_TEST_REDIS_STOP_CMD          sh command: stops the single server (waits until it is gone)
#   KINDE_TEST_REDIS_START_CMD         sh command: starts it again (waits until it answers PING)
#   KINDE_TEST_REDIS_CLUSTER_URLS      redis://127.0.0.1:P1,...,P6   the cluster's six nodes
#                                      (masters and replicas; which is which changes on failover)
#   KINDE_TEST_REDIS_NODE_CMD          sh command (scripts/redis-node.sh ROOT) + `kill PORT`
#                                      (SIGKILL, waits until it is gone) or `start PORT` (same
#                                      config and directory, waits for PING), any cluster node
#   KINDE_TEST_REDIS_TLS_URL           rediss://127.0.0.1:P          TLS, no client certificate needed
#   KINDE_TEST_REDIS_MTLS_URL          rediss://127.0.0.1:P          TLS, client certificate required
#   KINDE_TEST_REDIS_TLS_CLUSTER_URLS  rediss://127.0.0.1:P1,...,P6  the TLS cluster's six nodes
#   KINDE_TEST_REDIS_TLS_CA            PEM file: the CA of every server's and the client's certificate
#                                      (its directory also holds server.crt and server.key, the
#                                      servers' certificate and key)
#   KINDE_TEST_REDIS_TLS_CLIENT_CERT   PEM file: the client certificate (signed by that CA)
#   KINDE_TEST_REDIS_TLS_CLIENT_KEY    PEM file: its private key (PKCS#8)
#   KINDE_TEST_REDIS_TLS_OTHER_CA      PEM file: an unrelated CA, which signed nothing here
#   KINDE_TEST_REDIS_ROOT              the temporary directory holding everything (for redis-down.sh)
#
# Needs redis-server and redis-cli >= 7.0 (and, for the TLS servers, openssl and a redis-server
# built with TLS, as Debian's is). If redis is missing and we are root with apt-get, it is
# installed (`apt-get install -y redis-server`); otherwise the script says how to install it,
# exports nothing (the Redis tests then skip) and returns 0 -- or 1 when KINDE_REQUIRE_REDIS=1.
# Without openssl or TLS support only the TLS variables are missing (the TLS tests skip, or
# fail with KINDE_REQUIRE_REDIS=1). Every wait is bounded. Safe under `set -euo pipefail`;
# leaves the caller's options alone.

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

# redis-cli for the server in directory $1 (TLS flags from its cli-flags file), then args.
_kinde_redis_cli() {
    local dir=$1 flags=()
    shift
    if [[ -s $dir/cli-flags ]]; then
        read -r -a flags <"$dir/cli-flags"
    fi
    redis-cli "${flags[@]}" -p "$(cat "$dir/port")" "$@"
}

# Waits (at most ~10 s) until the server in directory $1 answers PING.
_kinde_redis_wait_ping() {
    local i out
    for ((i = 0; i < 100; i++)); do
        out=$(_kinde_redis_cli "$1" ping 2>/dev/null || true)
        [[ $out == *PONG* ]] && return 0
        sleep 0.1
    done
    return 1
}

# Starts a server in a new directory under $1, named $2-PORT, with the config lines $4... (in
# which @PORT@ is its port and @DIR@ its directory); $3 is its redis-cli flags ("" for none).
# Retries on another port if the chosen one was taken meanwhile. Prints "port dir".
_kinde_redis_start() {
    local root=$1 kind=$2 cli_flags=$3 attempt port dir line
    shift 3
    for ((attempt = 0; attempt < 5; attempt++)); do
        port=$(_kinde_redis_pick_port) || return 1
        dir="$root/$kind-$port"
        mkdir -p "$dir"
        {
            echo "bind 127.0.0.1"
            echo "dir $dir"
            echo "daemonize yes"
            echo "pidfile $dir/redis.pid"
            echo "logfile $dir/redis.log"
            echo 'save ""'
            for line in "$@"; do
                line=${line//@PORT@/$port}
                echo "${line//@DIR@/$dir}"
            done
        } >"$dir/redis.conf"
        echo "$port" >"$dir/port"
        echo "$cli_flags" >"$dir/cli-flags"
        if redis-server "$dir/redis.conf" >/dev/null 2>&1 && _kinde_redis_wait_ping "$dir"; then
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

# Creates a cluster of the six nodes whose directories are $2..$7 (the first three become
# masters, each of the others a replica), with redis-cli flags $1, and waits until every node
# says cluster_state:ok and every replica is in sync. Logs into $root/$8.log.
_kinde_redis_cluster() {
    local cli_line=$1 log=$8 dirs=("${@:2:6}") nodes=() d create i ok out masters synced
    local -a cli_flags=()
    read -r -a cli_flags <<<"$cli_line"
    for d in "${dirs[@]}"; do
        nodes+=("127.0.0.1:$(cat "$d/port")")
    done
    create=(redis-cli "${cli_flags[@]}" --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes)
    if command -v timeout >/dev/null 2>&1; then
        create=(timeout 60 "${create[@]}")
    fi
    if ! "${create[@]}" >"$log" 2>&1; then
        _kinde_redis_log "redis-cli --cluster create failed (log: $log)"
        cat "$log" >&2
        return 1
    fi
    # Every node: the cluster is ok and knows all six; three masters with an online replica
    # each; three replicas with their link up and no sync in progress.
    for ((i = 0; i < 300; i++)); do
        ok=1 masters=0 synced=0
        for d in "${dirs[@]}"; do
            out=$(_kinde_redis_cli "$d" cluster info 2>/dev/null || true)
            [[ $out == *cluster_state:ok* && $out == *cluster_known_nodes:6* ]] || ok=0
            out=$(_kinde_redis_cli "$d" info replication 2>/dev/null || true)
            if [[ $out == *role:master* && $out == *connected_slaves:1* && $out == *state=online* ]]; then
                masters=$((masters + 1))
            elif [[ $out == *role:slave* && $out == *master_link_status:up* && $out == *master_sync_in_progress:0* ]]; then
                synced=$((synced + 1))
            fi
        done
        ((ok == 1 && masters == 3 && synced == 3)) && return 0
        sleep 0.2
    done
    _kinde_redis_log "the cluster ($log) did not reach cluster_state:ok with 3 synced replicas within 60 s"
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
    if ! single=$(_kinde_redis_start "$root" single "" "port @PORT@" "appendonly yes" "appendfsync always"); then
        _kinde_redis_log "could not start the single redis-server"
        _kinde_redis_cleanup_failed
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

    # 2. The cluster: six nodes, three masters with a replica each.
    local ports=() dirs=() node i
    for i in 1 2 3 4 5 6; do
        if ! node=$(_kinde_redis_start "$root" node "" "port @PORT@" "appendonly no" \
            "cluster-enabled yes" "cluster-config-file nodes.conf" "cluster-node-timeout 1000" \
            "repl-diskless-sync-delay 0"); then
            _kinde_redis_log "could not start cluster node $i"
            _kinde_redis_cleanup_failed
            return 1
        fi
        ports+=("${node%% *}")
        dirs+=("${node#* }")
    done
    if ! _kinde_redis_cluster "" "${dirs[@]}" "$root/cluster-create.log"; then
        _kinde_redis_cleanup_failed
        return 1
    fi

    export KINDE_TEST_REDIS_URL="redis://127.0.0.1:$sport"
    export KINDE_TEST_REDIS_STOP_CMD="sh '$sdir/stop.sh'"
    export KINDE_TEST_REDIS_START_CMD="sh '$sdir/start.sh'"
    KINDE_TEST_REDIS_CLUSTER_URLS=$(printf 'redis://127.0.0.1:%s,' "${ports[@]}")
    export KINDE_TEST_REDIS_CLUSTER_URLS=${KINDE_TEST_REDIS_CLUSTER_URLS%,}
    local scripts
    scripts=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    export KINDE_TEST_REDIS_NODE_CMD="bash '$scripts/redis-node.sh' '$root'"

    # 3. TLS (scripts/redis-tls.sh). Missing TLS is only fatal when every Redis test must run.
    # shellcheck source=scripts/redis-tls.sh
    source "$scripts/redis-tls.sh"
    local _kinde_tls_url _kinde_mtls_url _kinde_tls_cluster_urls _kinde_tls_certs
    if _kinde_redis_tls_up "$root"; then
        export KINDE_TEST_REDIS_TLS_URL=$_kinde_tls_url
        export KINDE_TEST_REDIS_MTLS_URL=$_kinde_mtls_url
        export KINDE_TEST_REDIS_TLS_CLUSTER_URLS=$_kinde_tls_cluster_urls
        export KINDE_TEST_REDIS_TLS_CA="$_kinde_tls_certs/ca.crt"
        export KINDE_TEST_REDIS_TLS_CLIENT_CERT="$_kinde_tls_certs/client.crt"
        export KINDE_TEST_REDIS_TLS_CLIENT_KEY="$_kinde_tls_certs/client.key"
        export KINDE_TEST_REDIS_TLS_OTHER_CA="$_kinde_tls_certs/other-ca.crt"
        _kinde_redis_log "TLS: $KINDE_TEST_REDIS_TLS_URL; mTLS: $KINDE_TEST_REDIS_MTLS_URL; TLS cluster: $KINDE_TEST_REDIS_TLS_CLUSTER_URLS"
    elif ((fail == 1)); then
        _kinde_redis_log "KINDE_REQUIRE_REDIS=1 and the TLS servers could not be started"
        _kinde_redis_cleanup_failed
        return 1
    fi
    _kinde_redis_log "single server $KINDE_TEST_REDIS_URL; cluster $KINDE_TEST_REDIS_CLUSTER_URLS (redis $version, in $root)"
    return 0
}

# Stops whatever was started after a failure, and unsets the variables.
_kinde_redis_cleanup_failed() {
    local here
    here=$(dirname "${BASH_SOURCE[0]}")
    # shellcheck source=scripts/redis-down.sh
    source "$here/redis-down.sh" || true
}

_kinde_redis_vars=(KINDE_TEST_REDIS_URL KINDE_TEST_REDIS_STOP_CMD KINDE_TEST_REDIS_START_CMD
    KINDE_TEST_REDIS_CLUSTER_URLS KINDE_TEST_REDIS_NODE_CMD KINDE_TEST_REDIS_TLS_URL
    KINDE_TEST_REDIS_MTLS_URL KINDE_TEST_REDIS_TLS_CLUSTER_URLS KINDE_TEST_REDIS_TLS_CA
    KINDE_TEST_REDIS_TLS_CLIENT_CERT KINDE_TEST_REDIS_TLS_CLIENT_KEY KINDE_TEST_REDIS_TLS_OTHER_CA
    KINDE_TEST_REDIS_ROOT)

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    # Executed, not sourced: print the exports for eval.
    if _kinde_redis_up; then
        for _kinde_redis_var in "${_kinde_redis_vars[@]}"; do
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
    unset -f _kinde_redis_log _kinde_redis_port_free _kinde_redis_pick_port _kinde_redis_cli \
        _kinde_redis_wait_ping _kinde_redis_start _kinde_redis_certs _kinde_redis_cluster \
        _kinde_redis_tls_up _kinde_redis_up _kinde_redis_cleanup_failed
    unset _kinde_redis_vars
    return "$_kinde_redis_status"
fi
