//! The fuzz input, as is, is the body of a delivery.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|body: &[u8]| {
    common::deliver(body);
});
