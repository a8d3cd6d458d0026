//! The fuzz input spliced into an otherwise valid token (see `kinde_fuzz::splice` for the
//! modes), so the fuzzer gets past the header, the key lookup and, in modes 5 and 6, the
//! signature; `kinde_fuzz::check` asserts the promises on every body.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Some(body) = kinde_fuzz::splice::body(kinde_fuzz::target(), input) {
        kinde_fuzz::check(&body);
    }
});
