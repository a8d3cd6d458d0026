#!/usr/bin/env bash
# Runs the whole test suite on this machine, the way CI does:
#   - starts a single redis-server, TLS servers and two 3-master Redis Clusters with a replica per
#     master (plain and TLS) on free loopback ports (installing redis-server first when it is
#     missing and we are root with apt-get);
#   - runs every test of the workspace with the default crypto backend (aws-lc-rs) and every
#     store, then its doctests;
#   - kinde-core's tests with the pure-Rust backend alone, and with both backends enabled;
#   - each dependency-graph proof (tests/graph-*) alone: their graphs enable jsonwebtoken's
#     backends the way apps do, so they stay out of the workspace run;
#   - stops everything it started.
# Tests run under cargo-nextest when it is installed (each test in its own process, and a hard
# per-test time limit from .config/nextest.toml, so nothing can hang), else under `cargo test`.
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
EXCLUDE=("${GRAPH_PROOFS[@]/#/--exclude=}")

if cargo nextest --version >/dev/null 2>&1; then
    run() { cargo nextest run --no-tests=pass "$@"; }
else
    echo "(cargo-nextest not found: running under cargo test, without its per-test time limit)"
    run() { cargo test "$@"; }
fi

echo "== tests (workspace, aws-lc-rs backend, every store)"
run --workspace --features kinde-core/redis "${EXCLUDE[@]}"

echo "== doctests (workspace)"
cargo test --workspace --features kinde-core/redis "${EXCLUDE[@]}" --doc

echo "== tests (kinde-core, rust-crypto backend only)"
run -p kinde-core --no-default-features --features rust-crypto,http-jwks

echo "== tests (kinde-core, both backends enabled: aws-lc-rs verifies, nothing panics, TLS providers checked)"
run -p kinde-core --features rust-crypto,redis --test delivery --test bad_input --test redis_tls_provider

for proof in "${GRAPH_PROOFS[@]}"; do
    echo "== tests -p $proof (a dependency graph of its own)"
    run -p "$proof"
done
