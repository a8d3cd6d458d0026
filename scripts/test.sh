#!/usr/bin/env bash
# Runs the whole test suite on this machine, the way CI does:
#   - starts a single redis-server and a 3-master Redis Cluster on free loopback ports
#     (installing redis-server first when it is missing and we are root with apt-get);
#   - runs every test of the workspace with the default crypto backend (aws-lc-rs),
#     then kinde-core's tests with the pure-Rust backend alone, and with both backends enabled;
#   - runs each dependency-graph proof (tests/graph-*) alone: their graphs enable jsonwebtoken's
#     backends the way apps do, so they stay out of the workspace run;
#   - stops everything it started.
# Without Redis the Redis tests are skipped with a printed reason; KINDE_REQUIRE_REDIS=1 (set by
# .ci/run) turns any such skip into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f scripts/redis-up.sh ]; then
    # shellcheck source=scripts/redis-up.sh
    source scripts/redis-up.sh
    trap 'source scripts/redis-down.sh' EXIT
fi

GRAPH_PROOFS=(kinde-graph-rust-crypto kinde-graph-both-backends kinde-graph-pure-rust)

echo "== cargo test (workspace, aws-lc-rs backend, Redis store)"
cargo test --workspace --features kinde-core/redis "${GRAPH_PROOFS[@]/#/--exclude=}"

echo "== cargo test (kinde-core, rust-crypto backend only)"
cargo test -p kinde-core --no-default-features --features rust-crypto,http-jwks

echo "== cargo test (kinde-core, both backends enabled: aws-lc-rs is preferred, nothing panics)"
cargo test -p kinde-core --features rust-crypto --test delivery --test bad_input

for proof in "${GRAPH_PROOFS[@]}"; do
    echo "== cargo test -p $proof (a dependency graph of its own)"
    cargo test -p "$proof"
done
