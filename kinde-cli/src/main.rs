//! `kinde-webhooks`: operate Kinde webhooks from the command line — a local issuer, signed test
//! events (`sign`, `send`), `decode`, `verify`, and a `doctor` for a tenant's JWKS and a deployed
//! receiver. Run `kinde-webhooks --help`.
//!
//! Exit status: 0 success, 1 the check failed, 2 bad usage or unreadable input.

mod cli;
mod doctor;
mod input;
mod issuer;
mod jws;
mod keys;
mod overrides;
mod send;
mod verify;

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};

/// An error that stops the command with status 2 (bad usage or unreadable input), printed as
/// `error: <message>` on stderr.
#[derive(Debug)]
pub struct Fatal(pub String);

/// An error and its sources, `outer: inner: root`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut why = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        // Some errors repeat their source in their own message.
        if !why.contains(&s_text) {
            why = format!("{why}: {s_text}");
        }
        source = s.source();
    }
    why
}

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's own status for them); --help and --version exit 0.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            input::note(&format!("error: cannot start the runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    let status = runtime.block_on(async {
        match cli.command {
            Command::Issuer(args) => issuer::run(args).await,
            Command::Sign(args) => send::sign(args),
            Command::Send(args) => send::send(args).await,
            Command::Decode(args) => verify::decode(args),
            Command::Verify(args) => verify::verify(args).await,
            Command::Doctor(args) => doctor::run(args).await,
        }
    });
    // Do not wait for stray tasks (a connection still open) on the way out.
    runtime.shutdown_background();
    match status {
        Ok(code) => ExitCode::from(code),
        Err(Fatal(message)) => {
            input::note(&format!("error: {message}"));
            ExitCode::from(2)
        }
    }
}
