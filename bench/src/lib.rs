//! Tools for `bench/run.sh`, the end-to-end load benchmark (see `BENCHMARKS.md`).
