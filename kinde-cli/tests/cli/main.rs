//! The `kinde-webhooks` CLI's contract (command line, output lines, exit status), checked by
//! running the real binary against real servers on 127.0.0.1.

mod common;
mod doctor;
mod issuer;
mod send;
mod sign_decode;
mod verify;
