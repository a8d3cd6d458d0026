//! `doctor`: the issuer's JWKS checked the way a receiver fetches it, then (with `--endpoint`)
//! the deployed receiver probed with forged deliveries it must refuse.

mod jwks;
mod probes;

use std::time::Duration;

use crate::cli::DoctorArgs;
use crate::input::line;
use crate::Fatal;

/// How long one request of the doctor may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The `PASS`/`FAIL` lines, printed as they come.
#[derive(Debug, Default)]
pub struct Report {
    failed: bool,
}

impl Report {
    /// `PASS name`, or `PASS name (note)`.
    pub fn pass(&mut self, name: &str, note: Option<String>) {
        match note {
            Some(note) => line(&format!("PASS {name} ({note})")),
            None => line(&format!("PASS {name}")),
        }
    }

    /// `FAIL name: what and how to fix`.
    pub fn fail(&mut self, name: &str, why: impl std::fmt::Display) {
        self.failed = true;
        line(&format!("FAIL {name}: {why}"));
    }
}

/// A client that sends no credentials and follows no redirect (receivers follow none).
fn client() -> Result<reqwest::Client, Fatal> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("kinde-webhooks-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Fatal(format!("cannot start an HTTP client: {e}")))
}

/// Runs every check; 1 if any failed.
pub async fn run(args: DoctorArgs) -> Result<u8, Fatal> {
    let client = client()?;
    let mut report = Report::default();
    let key = jwks::check(&client, &args.issuer, &mut report).await;
    if let Some(endpoint) = &args.endpoint {
        probes::run(&client, endpoint, key.as_ref(), &mut report).await;
    }
    Ok(if report.failed { 1 } else { 0 })
}
