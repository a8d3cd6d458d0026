//! The probes: deliveries a correct receiver must refuse. Each carries a fresh event id and
//! fails verification, so a correct receiver never runs a handler for one; any 2xx answer means
//! the endpoint accepts forged events.

use kinde_core::testing::{kinde_timestamp, TestKey};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::jwks::IssuerKey;
use super::Report;
use crate::jws;

/// What a probe sends.
enum Probe {
    /// A POST of this body as `application/jwt`.
    Post(String),
    /// A GET with no body.
    Get,
}

fn hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Claims a handler would act on if the receiver did not verify: a realistic `user.created`
/// for a user the doctor names, under a fresh event id.
fn claims() -> Value {
    json!({
        "data": {"user": {
            "id": "kp_kinde_webhooks_doctor", "email": "doctor-probe@example.invalid",
            "first_name": "Doctor", "last_name": "Probe", "username": null, "phone": null,
            "is_password_reset_requested": false, "is_suspended": false, "organizations": []
        }},
        "event_id": format!("event_doctor_{}", hex(16)),
        "source": "admin",
        "timestamp": kinde_timestamp(OffsetDateTime::now_utc()),
        "type": "user.created",
    })
}

/// A kid shaped like Kinde's (16 colon-separated hex pairs) that no issuer publishes.
fn unknown_kid() -> String {
    (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs every probe against `endpoint`, in a fixed order.
pub async fn run(
    client: &reqwest::Client,
    endpoint: &url::Url,
    key: Option<&IssuerKey>,
    report: &mut Report,
) {
    let kid = key.map_or_else(unknown_kid, |k| k.kid.clone());
    let foreign = TestKey::attacker().with_kid(&kid).sign(&claims());
    // Its own event id: every probe carries a fresh one.
    let whole = TestKey::attacker().with_kid(&kid).sign(&claims());
    let truncated = match whole.rsplit_once('.') {
        Some((input, sig)) => format!("{input}.{}", sig.get(..sig.len() / 2).unwrap_or_default()),
        None => whole.clone(),
    };
    // (name, what it is, the request: None when it needs the issuer's key and there is none)
    let probes: Vec<(&str, &str, Option<Probe>)> = vec![
        (
            "probe-alg-none",
            "an unsigned token (alg none)",
            Some(Probe::Post(jws::unsigned(
                &json!({"alg": "none", "typ": "JWT", "kid": kid}),
                &claims(),
            ))),
        ),
        (
            "probe-hs256-public-key",
            "an HS256 token keyed with the issuer's public key (key confusion)",
            key.map(|k| {
                let header = json!({"alg": "HS256", "typ": "JWT", "kid": k.kid});
                Probe::Post(jws::hs256(&header, &claims(), k.public_pem.as_bytes()))
            }),
        ),
        (
            "probe-foreign-key",
            "a token under the issuer's real kid, signed by another key",
            key.map(|_| Probe::Post(foreign.clone())),
        ),
        (
            "probe-unknown-kid",
            "a token under a kid the issuer does not publish",
            Some(Probe::Post(
                TestKey::attacker().with_kid(&unknown_kid()).sign(&claims()),
            )),
        ),
        (
            "probe-truncated-signature",
            "a token with half its signature cut off",
            Some(Probe::Post(truncated)),
        ),
        (
            "probe-garbage",
            "a body that is not a token",
            Some(Probe::Post(format!(
                "kinde-webhooks doctor: not a token {}",
                hex(8)
            ))),
        ),
        ("probe-get", "a GET with no token", Some(Probe::Get)),
    ];
    let mut silent: Option<&str> = None;
    for (name, what, request) in probes {
        match (request, silent) {
            (_, Some(first)) => report.fail(
                name,
                format!("not run: {endpoint} did not answer {first} (see above)"),
            ),
            (None, None) => report.fail(
                name,
                "not run: it needs the issuer's signing key, and the JWKS checks above failed",
            ),
            (Some(request), None) => {
                if !probe(client, endpoint, report, name, what, request).await {
                    silent = Some(name);
                }
            }
        }
    }
}

/// Sends one probe and reports it; false when the endpoint did not answer at all.
async fn probe(
    client: &reqwest::Client,
    endpoint: &url::Url,
    report: &mut Report,
    name: &str,
    what: &str,
    probe: Probe,
) -> bool {
    let request = match probe {
        Probe::Post(body) => client
            .post(endpoint.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/jwt")
            .header("webhook-id", format!("msg_doctor_{}", hex(16)))
            .body(body),
        Probe::Get => client.get(endpoint.clone()),
    };
    let resp = match request.send().await {
        Ok(resp) => resp,
        Err(e) => {
            let why = crate::send::no_answer(endpoint, &e);
            report.fail(name, format!("{why}; check that --endpoint is the receiver's webhook URL and reachable from here"));
            return false;
        }
    };
    let status = resp.status().as_u16();
    let code = error_code(resp).await;
    let answered = match &code {
        Some(code) => format!("{status} {code}"),
        None => status.to_string(),
    };
    match status {
        200..=299 => report.fail(
            name,
            format!("answered {answered} to {what}: the endpoint accepts forged events. Verify every delivery's RS256 signature against the issuer's JWKS before acting on it (kinde-core's Webhooks does, and answers 4xx to a forgery), and answer only a verified POST with 2xx"),
        ),
        503 => report.pass(
            name,
            Some(format!("{answered}: refused, but as `try again later`: a receiver answers 503 when it cannot check a token right now (its JWKS unreachable, its store down); a forgery it can check gets 4xx")),
        ),
        300..=399 => report.pass(
            name,
            Some(format!("{answered}: a redirect; note that Kinde's deliveries would be redirected too: register the final URL")),
        ),
        500..=599 => report.pass(
            name,
            Some(format!("{answered}: refused, but with a server error; a receiver that verifies answers a forgery 4xx: check its logs")),
        ),
        _ => report.pass(name, Some(answered)),
    }
    true
}

/// The `error` code of a JSON answer such as kinde-core's `{"error":"invalid_signature"}`.
async fn error_code(mut resp: reqwest::Response) -> Option<String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.ok()? {
        body.extend_from_slice(&chunk);
        if body.len() > 4096 {
            return None;
        }
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    v.get("error")?.as_str().map(str::to_owned)
}
