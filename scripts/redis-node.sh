#!/usr/bin/env bash
# Usage: redis-node.sh ROOT kill|start PORT -- a node of a test cluster started by
# scripts/redis-up.sh under ROOT (KINDE_TEST_REDIS_ROOT): SIGKILL it, as a crash, and wait until
# it is gone; or start it again with its config and directory and wait until it answers PING.
# (redis-up.sh exports KINDE_TEST_REDIS_NODE_CMD, this script with ROOT filled in.) Every wait
# is bounded (10 s).
set -euo pipefail
root=${1:?ROOT} action=${2:?kill|start} port=${3:?PORT}
dir=
for d in "$root"/node-"$port" "$root"/tlsnode-"$port"; do
    [[ -f $d/redis.conf ]] && dir=$d
done
if [[ -z $dir ]]; then
    echo "redis-node.sh: no cluster node on port $port under $root" >&2
    exit 2
fi
gone() { # pid $1 is gone, or a zombie (killed, not yet reaped)
    ! kill -0 "$1" 2>/dev/null || [[ $(cat "/proc/$1/stat" 2>/dev/null || true) == *") Z "* ]]
}
case $action in
kill)
    pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for ((i = 0; i < 100; i++)); do
        if [[ -z $pid ]] || gone "$pid"; then exit 0; fi
        sleep 0.1
    done
    echo "redis-node.sh: node $port did not die" >&2
    exit 1
    ;;
start)
    read -r -a flags <"$dir/cli-flags" || true
    redis-server "$dir/redis.conf" >/dev/null
    for ((i = 0; i < 100; i++)); do
        [[ $(redis-cli "${flags[@]}" -p "$port" ping 2>/dev/null || true) == *PONG* ]] && exit 0
        sleep 0.1
    done
    echo "redis-node.sh: node $port did not answer PING" >&2
    exit 1
    ;;
*)
    echo "usage: redis-node.sh ROOT kill|start PORT" >&2
    exit 2
    ;;
esac
