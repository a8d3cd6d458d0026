//! `decode` (reads a token, checks nothing) and `verify` (kinde-core's full verification against
//! the issuer's live JWKS, the replay window at a chosen time).

use kinde_core::verify::{jwks_url, normalize_issuer, JwksPath};
use kinde_core::{Clock, Outcome, ReplayWindow, VerifyError, Webhooks};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::cli::{DecodeArgs, VerifyArgs};
use crate::input::{self, line, note};
use crate::{jws, Fatal};

/// `decode`: one JSON document on stdout; a reminder on stderr that nothing was verified.
pub fn decode(args: DecodeArgs) -> Result<u8, Fatal> {
    let token = input::token(args.token.as_deref()).map_err(Fatal)?;
    let decoded = jws::decode(&token).map_err(Fatal)?;
    line(&json!({"header": decoded.header, "payload": decoded.payload}).to_string());
    note("decoded only: nothing was verified (not the signature, not the issuer, not the timestamp); `kinde-webhooks verify --issuer DOMAIN` checks it");
    Ok(0)
}

/// A clock stopped at `--at`.
struct At(OffsetDateTime);

impl Clock for At {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// `verify`: 0 and the event as JSON, or 1 and the receiver's error code and a sentence.
pub async fn verify(args: VerifyArgs) -> Result<u8, Fatal> {
    let token = input::token(args.token.as_deref()).map_err(Fatal)?;
    let mut builder = Webhooks::builder().issuer(args.issuer.as_str());
    if let Some(at) = args.at {
        builder = builder.clock(At(at));
    }
    let webhooks = builder
        .build()
        .map_err(|e| Fatal(format!("--issuer {}: {e}", args.issuer)))?;
    match webhooks.verify(token.as_bytes()).await {
        Ok(event) => {
            let timestamp = event
                .meta
                .timestamp
                .format(&Rfc3339)
                .unwrap_or_else(|_| event.meta.timestamp.to_string());
            line(
                &json!({
                    "event_id": event.meta.event_id.as_str(),
                    "type": event.meta.event_type,
                    "timestamp": timestamp,
                    "data": event.data,
                })
                .to_string(),
            );
            Ok(0)
        }
        Err(e) => {
            let at = args.at.unwrap_or_else(OffsetDateTime::now_utc);
            line(code(&e));
            line(&sentence(&e, &args.issuer, &token, at));
            Ok(1)
        }
    }
}

/// The code a receiver answers for this error (`invalid_signature`, `stale_event`, …).
pub fn code(e: &VerifyError) -> &'static str {
    Outcome::Rejected(e.clone()).code()
}

/// What the failure means, in one sentence; unverified details (kid, timestamp) come from the
/// token itself.
fn sentence(e: &VerifyError, issuer: &str, token: &str, at: OffsetDateTime) -> String {
    let decoded = jws::decode(token).ok();
    let header = |k: &str| -> String {
        decoded
            .as_ref()
            .and_then(|d| d.header.get(k))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_else(|| "?".into())
    };
    let claim = |k: &str| -> String {
        decoded
            .as_ref()
            .and_then(|d| d.payload.get(k))
            .map(|v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_else(|| "?".into())
    };
    let at = at.format(&Rfc3339).unwrap_or_default();
    let window = ReplayWindow::default();
    let jwks = normalize_issuer(issuer)
        .map(|u| jwks_url(&u, JwksPath::Jwks).to_string())
        .unwrap_or_else(|_| issuer.to_owned());
    if let VerifyError::Malformed(why) = e {
        return format!(
            "This is not a well-formed token ({why}): a delivery's body is one compact JWS, header.payload.signature in base64url."
        );
    }
    if let VerifyError::KeysUnavailable(why) = e {
        return format!(
            "The issuer's keys could not be fetched from {jwks} ({}), so nothing was decided; a receiver answers 503 and Kinde retries.",
            crate::error_chain(&**why)
        );
    }
    match code(e) {
        "unsupported_algorithm" => format!(
            "The token says alg {}; Kinde signs with RS256 only, so a receiver refuses it.",
            header("alg")
        ),
        "missing_kid" => "The token's header names no key (kid); Kinde's tokens always do.".into(),
        "unknown_kid" => format!(
            "No key in {jwks} has the token's kid {}: it was signed by another issuer, with a key since removed, or forged.",
            header("kid")
        ),
        "invalid_signature" => format!(
            "The signature does not verify with the key {} of {jwks}: the token was altered or forged.",
            header("kid")
        ),
        "invalid_claims" => format!("The signature is valid but the claims cannot be read: {e}."),
        "wrong_token_kind" => "The signature is valid but this is not a webhook (an access or ID token, say): it lacks type, event_id, timestamp or data, or carries aud, azp or scp.".into(),
        "invalid_event_id" => "The event_id is empty, longer than 256 bytes, or not visible ASCII.".into(),
        "invalid_timestamp" => format!("The timestamp claim ({}) is not a time.", claim("timestamp")),
        "stale_event" => format!(
            "The event's timestamp {} is more than {} h before {at}: a receiver refuses it as a replay (--at T evaluates the window at another time).",
            claim("timestamp"),
            window.max_age_allowed().as_secs() / 3600
        ),
        "future_event" => format!(
            "The event's timestamp {} is more than {} min after {at}: check the sender's clock (--at T evaluates the window at another time).",
            claim("timestamp"),
            window.max_future_allowed().as_secs() / 60
        ),
        "token_expired" => format!("The token's exp ({}) has passed at {at}.", claim("exp")),
        "token_not_yet_valid" => format!("The token's nbf ({}) is after {at}.", claim("nbf")),
        _ => format!("The token was refused: {e}."),
    }
}
