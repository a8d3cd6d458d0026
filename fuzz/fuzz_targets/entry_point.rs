//! The fuzz input, as is, is the body of a delivery; `kinde_fuzz::check` asserts the promises
//! (no 200 and no handler without the issuer's signature, at most one handler run per
//! `event_id`, a verified event answered as the spec says).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    kinde_fuzz::check(body);
});
