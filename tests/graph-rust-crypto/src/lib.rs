//! A dependency-graph proof for kinde-webhooks: no library code, only the test in `tests/`, run
//! on its own with `cargo test -p <this package>` (its features differ from the workspace's on
//! purpose). See `scripts/test.sh`.
