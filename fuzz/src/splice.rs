//! The `spliced` target's input format, and seed inputs for both targets.
//!
//! The first byte of a `spliced` input selects the mode (modulo 8), the rest is the data:
//!
//! | mode | the body is |
//! |---|---|
//! | 0, 1, 2 | the template token with its header, payload or signature segment replaced by the data as is |
//! | 3 | the data as the header JSON (base64url-encoded), the template's payload and signature |
//! | 4 | the data as the payload JSON (base64url-encoded), the template's signature: never valid |
//! | 5 | the data as the payload JSON, **signed** with the issuer's key under the template's header |
//! | 6 | the data as the header JSON, **signed** with the issuer's key over the template's payload; data not starting with `{` is spliced into the template's header object as more parameters (`{"typ":"JWT","alg":"RS256","kid":…,<data>}`), so a parameter such as `crit` is a few mutations away |
//! | 7 | the data as is |
//!
//! Modes 5 and 6 get past the signature, so the claims, the timestamps, the event types, the
//! typed `data` and the header rules are fuzzed on tokens the issuer really signed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kinde_core::testing::{access_token_claims, TestEvent, TestKey};
use serde_json::{json, Value};

use crate::Target;

/// The template's event id.
pub const TEMPLATE_ID: &str = "event_fuzz_template";

/// The claims of the template token: a `user.created` sample at [`crate::NOW`].
pub fn template_claims() -> Value {
    TestEvent::sample("user.created")
        .event_id(TEMPLATE_ID)
        .timestamp(crate::now())
        .into_claims()
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// The body a `spliced` input stands for (`None` for an empty input).
pub fn body(t: &Target, input: &[u8]) -> Option<Vec<u8>> {
    let (&mode, data) = input.split_first()?;
    let [header, payload, signature] = &t.parts;
    let join = |parts: [&[u8]; 3]| parts.join(&b'.');
    let signed = |header: &str, payload: &str| {
        let message = format!("{header}.{payload}");
        let sig = t.sign(message.as_bytes());
        format!("{message}.{sig}").into_bytes()
    };
    Some(match mode % 8 {
        0 => join([data, payload.as_bytes(), signature.as_bytes()]),
        1 => join([header.as_bytes(), data, signature.as_bytes()]),
        2 => join([header.as_bytes(), payload.as_bytes(), data]),
        3 => join([
            b64(data).as_bytes(),
            payload.as_bytes(),
            signature.as_bytes(),
        ]),
        4 => join([
            header.as_bytes(),
            b64(data).as_bytes(),
            signature.as_bytes(),
        ]),
        5 => signed(header, &b64(data)),
        6 if data.first() == Some(&b'{') => signed(&b64(data), payload),
        6 => {
            let header = [&t.header_json[..t.header_json.len() - 1], b",", data, b"}"].concat();
            signed(&b64(&header), payload)
        }
        _ => data.to_vec(),
    })
}

/// A tenant access token's claims at [`crate::NOW`]: signed by the issuer, but not a webhook.
fn access_token() -> Value {
    let mut claims = access_token_claims();
    claims["iat"] = json!(crate::NOW);
    claims["exp"] = json!(crate::NOW + 3600);
    claims
}

/// A seed: the target it is for, a file name, and the input.
pub type Seed = (&'static str, String, Vec<u8>);

/// Seed inputs: for `spliced`, each mode from the template (and signed claims of several kinds);
/// for `entry_point`, whole tokens (valid, forged, wrong kind). Deterministic (RS256 PKCS#1 v1.5
/// signatures are), so a corpus seeded twice holds the same files.
pub fn seeds(t: &Target) -> Vec<Seed> {
    let header_json = URL_SAFE_NO_PAD
        .decode(&t.parts[0])
        .expect("the template header is base64url");
    let claims = |c: Value| serde_json::to_vec(&c).expect("claims serialise");
    let at_now = |ev: TestEvent| ev.timestamp(crate::now());
    let signed_payloads = [
        ("created", claims(template_claims())),
        (
            "deleted",
            claims(
                at_now(TestEvent::sample("user.deleted").event_id("event_fuzz_deleted"))
                    .into_claims(),
            ),
        ),
        (
            "untyped",
            claims(
                at_now(TestEvent::sample("organization.updated").event_id("event_fuzz_org"))
                    .into_claims(),
            ),
        ),
        (
            "unparseable",
            claims(
                at_now(
                    TestEvent::raw("user.created", json!({"user": 5})).event_id("event_fuzz_bad"),
                )
                .into_claims(),
            ),
        ),
        (
            "numeric-timestamp",
            claims(
                TestEvent::sample("user.deleted")
                    .event_id("event_fuzz_epoch")
                    .claim("timestamp", json!(crate::NOW))
                    .claim("exp", json!(crate::NOW + 60))
                    .into_claims(),
            ),
        ),
        ("access-token", claims(access_token())),
    ];
    let mut seeds: Vec<Seed> = Vec::new();
    for (name, payload) in &signed_payloads {
        seeds.push((
            "spliced",
            format!("5-{name}"),
            [&[5u8][..], payload].concat(),
        ));
    }
    seeds.push((
        "spliced",
        "6-header".into(),
        [&[6u8][..], &header_json].concat(),
    ));
    seeds.push((
        "spliced",
        "6-param".into(),
        [
            &[6u8][..],
            br#""jku":"https://acme.kinde.com/.well-known/jwks""#,
        ]
        .concat(),
    ));
    // A header with one more parameter (real ones carry `jku`, `x5t`, …): room to fuzz names.
    let mut extra: Value =
        serde_json::from_slice(&header_json).expect("the template header is JSON");
    extra["jku"] = json!("https://acme.kinde.com/.well-known/jwks");
    seeds.push((
        "spliced",
        "6-header-extra".into(),
        [&[6u8][..], &claims(extra)].concat(),
    ));
    seeds.push((
        "spliced",
        "3-header".into(),
        [&[3u8][..], &header_json].concat(),
    ));
    seeds.push((
        "spliced",
        "4-payload".into(),
        [&[4u8][..], &signed_payloads[1].1].concat(),
    ));
    for (mode, part) in t.parts.iter().enumerate() {
        seeds.push((
            "spliced",
            format!("{mode}-segment"),
            [&[mode as u8][..], part.as_bytes()].concat(),
        ));
    }
    let template = t.parts.join(".").into_bytes();
    seeds.push((
        "spliced",
        "7-token".into(),
        [&[7u8][..], &template].concat(),
    ));

    let whole = |payload: &[u8]| {
        let message = format!("{}.{}", t.parts[0], b64(payload));
        let sig = t.sign(message.as_bytes());
        format!("{message}.{sig}").into_bytes()
    };
    for (name, payload) in &signed_payloads {
        seeds.push(("entry_point", name.to_string(), whole(payload)));
    }
    let forged = TestKey::attacker()
        .with_kid(t.issuer.signer().kid())
        .sign(&template_claims());
    seeds.push(("entry_point", "forged".into(), forged.into_bytes()));
    seeds.push((
        "entry_point",
        "template-newline".into(),
        [&template[..], b"\n"].concat(),
    ));
    seeds
}
