//! Cross-crate integration tests live in `tests/tests/`. The README's examples are compiled here.

#[doc = include_str!("../../README.md")]
pub mod readme {}
