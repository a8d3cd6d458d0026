//! The command line (a contract: scripts depend on it).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use time::OffsetDateTime;

use crate::overrides::{parse_time, Overrides};

const AFTER_HELP: &str = "\
Exit status: 0 success; 1 the check failed (a delivery not answered 200, an invalid token, a failed
doctor check or probe); 2 bad usage or unreadable input.

Every option takes `--opt VALUE` or `--opt=VALUE`; values may start with `-` (--timestamp -49h).

Local development: `kinde-webhooks issuer --keys ./keys` prints `issuer http://127.0.0.1:PORT`;
start your receiver with that as its issuer (KINDE_DOMAIN=http://127.0.0.1:PORT), then
`kinde-webhooks send user.created --to http://127.0.0.1:3000/kinde/webhook --keys ./keys`.";

/// Operate Kinde webhooks: a local issuer, signed test events, decoding, verification and a
/// doctor for a tenant's keys and a deployed receiver.
#[derive(Debug, Parser)]
#[command(name = "kinde-webhooks", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a local Kinde issuer: serves the JWKS of every key in DIR at /.well-known/jwks and
    /// /.well-known/jwks.json until SIGINT or SIGTERM.
    ///
    /// DIR is created, with one new 2048-bit RSA key, if it holds no key (*.pem). Keys are read
    /// again on every request: a key added to DIR is published at once. The first line on
    /// standard output is `issuer http://127.0.0.1:PORT`, printed once the port is listening.
    Issuer(IssuerArgs),
    /// Prints one signed token (an RS256 JWT, as Kinde sends) for an event of TYPE.
    Sign(SignArgs),
    /// Signs an event of TYPE and POSTs it like Kinde does; prints `STATUS BODY` per delivery.
    ///
    /// The request carries `Content-Type: application/jwt` and a `webhook-id` header (the same
    /// on every repeat). Redirects are not followed; each delivery waits up to 30 s. A delivery
    /// that gets no answer prints `000 <why>`. Exits 0 only if every delivery got 200.
    Send(SendArgs),
    /// Prints a token's header and payload as one JSON document, {"header":…,"payload":…},
    /// WITHOUT verifying anything.
    Decode(DecodeArgs),
    /// Verifies a token as a receiver does, against the issuer's live JWKS: signature, token
    /// kind, claims and the replay window.
    ///
    /// Valid: prints {"event_id","type","timestamp","data"} and exits 0. Invalid: prints the
    /// receiver's error code (invalid_signature, unknown_kid, stale_event, wrong_token_kind,
    /// jwks_unavailable, …) on the first line, then a sentence, and exits 1.
    Verify(VerifyArgs),
    /// Checks a tenant's JWKS and, with --endpoint, probes a deployed receiver with forged
    /// deliveries it must refuse; prints `PASS name` or `FAIL name: what and how to fix` each.
    ///
    /// Probes: alg none; HS256 keyed with the issuer's public key; the issuer's kid with a
    /// foreign key's signature; an unknown kid; a truncated signature; garbage; a GET. A probe
    /// passes on any non-2xx answer (a 503 with a note); a 2xx means the endpoint accepts forged
    /// events. Every probe carries a fresh event id and fails verification, so a correct
    /// receiver runs no handler. Exits 1 if any check or probe fails.
    Doctor(DoctorArgs),
}

/// `issuer`.
#[derive(Debug, Args)]
pub struct IssuerArgs {
    /// The keys directory (created with one key if it holds none).
    #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
    pub keys: PathBuf,
    /// The loopback address to listen on (port 0: any free port, printed).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:0",
        allow_hyphen_values = true
    )]
    pub bind: SocketAddr,
}

/// The event to sign: its type, the keys and the overrides.
#[derive(Debug, Args)]
pub struct EventArgs {
    /// The event type: the 16 documented types (user.created, organization.updated, …) get
    /// realistic sample data, any other type `{}` unless --data or --set gives it.
    #[arg(value_name = "TYPE")]
    pub event_type: String,
    /// The keys directory; the newest key (by file modification time) signs.
    #[arg(long, value_name = "DIR", allow_hyphen_values = true)]
    pub keys: PathBuf,
    /// The claims' overrides.
    #[command(flatten)]
    pub overrides: Overrides,
}

/// `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The event.
    #[command(flatten)]
    pub event: EventArgs,
}

/// `send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The event.
    #[command(flatten)]
    pub event: EventArgs,
    /// The receiver's webhook URL (http or https).
    #[arg(long, value_name = "URL", value_parser = parse_url, allow_hyphen_values = true)]
    pub to: url::Url,
    /// The `webhook-id` header (default: a fresh `msg_<32 hex>`, the same for every repeat).
    #[arg(long, value_name = "ID", value_parser = parse_header_value, allow_hyphen_values = true)]
    pub webhook_id: Option<String>,
    /// Sends the same token N times (to watch deduplication).
    #[arg(long, value_name = "N", default_value_t = 1, allow_hyphen_values = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// At most C deliveries in flight (1: one after the other, lines in order).
    #[arg(long, value_name = "C", default_value_t = 1, allow_hyphen_values = true,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
}

/// `decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The token; read from standard input when absent or `-`.
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token; read from standard input when absent or `-`.
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,
    /// The issuer: `<tenant>.kinde.com`, `https://<tenant>.kinde.com`, a custom domain, or a
    /// local issuer's `http://127.0.0.1:PORT`.
    #[arg(long, value_name = "DOMAIN", allow_hyphen_values = true)]
    pub issuer: String,
    /// Evaluates the replay window at T instead of now: RFC 3339, or relative to now (-49h,
    /// +10m, -30s, -2d).
    #[arg(long, value_name = "T", value_parser = parse_time, allow_hyphen_values = true)]
    pub at: Option<OffsetDateTime>,
}

/// `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The issuer whose JWKS to check (as for verify).
    #[arg(long, value_name = "DOMAIN", allow_hyphen_values = true)]
    pub issuer: String,
    /// The deployed receiver's webhook URL, to probe with forged deliveries.
    #[arg(long, value_name = "URL", value_parser = parse_url, allow_hyphen_values = true)]
    pub endpoint: Option<url::Url>,
}

/// An http(s) URL with a host.
pub fn parse_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "`{s}` is not an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// A value an HTTP header can carry.
fn parse_header_value(s: &str) -> Result<String, String> {
    kinde_core::testing::http::HeaderValue::from_str(s)
        .map(|_| s.to_owned())
        .map_err(|_| format!("`{s}` cannot be sent as an HTTP header value"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_take_both_forms_and_values_may_start_with_a_dash() {
        let cli = Cli::try_parse_from([
            "kinde-webhooks",
            "send",
            "user.created",
            "--keys=./k",
            "--to",
            "http://127.0.0.1:1/h",
            "--timestamp",
            "-49h",
            "--event-id=-odd-",
            "--set",
            "data.user.id=-1",
            "--repeat=3",
        ])
        .unwrap();
        let Command::Send(send) = cli.command else {
            panic!("not send")
        };
        assert_eq!(send.event.keys, PathBuf::from("./k"));
        assert_eq!(send.event.overrides.event_id.as_deref(), Some("-odd-"));
        assert_eq!(send.event.overrides.set[0].value, serde_json::json!(-1));
        assert_eq!(send.repeat, 3);
        assert_eq!(send.concurrency, 1);
        let ts = send.event.overrides.timestamp.unwrap();
        let age = OffsetDateTime::now_utc() - ts;
        assert!(age > time::Duration::hours(48) && age < time::Duration::hours(50));
    }

    #[test]
    fn usage_errors_are_exit_status_2() {
        for args in [
            vec!["kinde-webhooks"],
            vec!["kinde-webhooks", "nonsense"],
            vec!["kinde-webhooks", "sign", "user.created"],
            vec![
                "kinde-webhooks",
                "sign",
                "user.created",
                "--keys",
                "k",
                "--timestamp",
                "soon",
            ],
            vec![
                "kinde-webhooks",
                "send",
                "x",
                "--keys",
                "k",
                "--to",
                "ftp://h/",
            ],
            vec![
                "kinde-webhooks",
                "send",
                "x",
                "--keys",
                "k",
                "--to",
                "http://h/",
                "--repeat",
                "0",
            ],
            vec![
                "kinde-webhooks",
                "sign",
                "x",
                "--keys",
                "k",
                "--set",
                "novalue",
            ],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        let help = Cli::try_parse_from(["kinde-webhooks", "--help"]).unwrap_err();
        assert_eq!(help.exit_code(), 0);
    }
}
