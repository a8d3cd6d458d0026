//! The harness checks itself: the oracle's verdicts on known bodies, `judge` refusing each kind
//! of broken promise, and `check` on the seeds through the real receiver.

use std::collections::HashSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kinde_core::testing::{TestEvent, TestKey};
use serde_json::{json, Value};

use crate::oracle::{judge, Call, Observed, Signature, Verdict};
use crate::{check, splice, target};

/// A token with this header JSON and these claims, signed by the issuer.
fn signed_with(header: &Value, claims: &Value) -> Vec<u8> {
    signed_raw(header.to_string().as_bytes(), claims)
}

/// The same with the header's bytes as given.
fn signed_raw(header: &[u8], claims: &Value) -> Vec<u8> {
    let t = target();
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    format!("{message}.{}", t.sign(message.as_bytes())).into_bytes()
}

fn header() -> Value {
    json!({"alg": "RS256", "kid": target().issuer.signer().kid(), "typ": "JWT"})
}

fn signed(claims: &Value) -> Vec<u8> {
    signed_with(&header(), claims)
}

fn event(id: &str) -> TestEvent {
    TestEvent::sample("user.deleted")
        .event_id(id)
        .timestamp(crate::now())
}

fn verdict(body: &[u8]) -> Verdict {
    target().oracle().verdict(body)
}

fn codes(v: &Verdict) -> Vec<&'static str> {
    v.allowed.codes.iter().copied().collect()
}

#[test]
fn a_token_the_issuer_signed_must_be_taken() {
    let v = verdict(&signed(&event("event_oracle_valid").into_claims()));
    assert_eq!(v.signature, Signature::Valid);
    assert!(!v.allowed.refused && v.allowed.codes.is_empty(), "{v:?}");
    assert_eq!(v.event.as_ref().unwrap().event_id, "event_oracle_valid");
}

#[test]
fn a_forgery_or_a_spliced_payload_must_be_refused_at_the_signature() {
    let claims = event("event_oracle_forged").into_claims();
    let forged = TestKey::attacker()
        .with_kid(target().issuer.signer().kid())
        .sign(&claims);
    let v = verdict(forged.as_bytes());
    assert_eq!(v.signature, Signature::Invalid);
    assert!(v.allowed.refused);
    assert_eq!(codes(&v), ["invalid_signature", "malformed_token"]);
    // A valid signature moved onto other claims is no signature.
    let a = String::from_utf8(signed(&claims)).unwrap();
    let b = String::from_utf8(signed(&event("event_oracle_other").into_claims())).unwrap();
    let (a_parts, b_parts): (Vec<_>, Vec<_>) = (a.split('.').collect(), b.split('.').collect());
    let moved = format!("{}.{}.{}", a_parts[0], b_parts[1], a_parts[2]);
    assert_eq!(verdict(moved.as_bytes()).signature, Signature::Invalid);
}

#[test]
fn padding_on_the_signature_is_valid_only_if_lenient_and_whitespace_around_is_fine() {
    let mut body = signed(&event("event_oracle_padded").into_claims());
    body.extend_from_slice(b"==");
    let v = verdict(&body);
    assert_eq!(v.signature, Signature::ValidIfLenient);
    assert!(!v.allowed.refused && v.allowed.codes.contains("malformed_token"));
    let mut body = signed(&event("event_oracle_newline").into_claims());
    body.push(b'\n');
    assert_eq!(verdict(&body).signature, Signature::Valid);
}

#[test]
fn signed_but_not_a_webhook_in_the_window_must_be_refused_with_its_reason() {
    let cases = [
        (event("e1").claim("exp", json!(crate::NOW)), "token_expired"),
        (
            event("e2").claim("nbf", json!(crate::NOW + 1)),
            "token_not_yet_valid",
        ),
        (event("e3").claim("aud", json!("api")), "wrong_token_kind"),
        (event("e4").without("timestamp"), "wrong_token_kind"),
        (event("e5").claim("event_id", json!("")), "invalid_event_id"),
        (event("e6").claim("source", json!(1)), "invalid_claims"),
        (
            event("e7").claim("timestamp", json!(true)),
            "invalid_timestamp",
        ),
        (
            event("e8").claim("timestamp", json!(crate::NOW - 48 * 3600 - 1)),
            "stale_event",
        ),
        (
            event("e9").claim("timestamp", json!(crate::NOW + 301)),
            "future_event",
        ),
    ];
    for (ev, code) in cases {
        let v = verdict(&signed(&ev.into_claims()));
        assert!(v.allowed.refused, "{code}: {v:?}");
        assert!(v.allowed.codes.contains(code), "{code}: {v:?}");
    }
    // A repeated claim is an error, whichever value a parser would keep.
    let payload =
        r#"{"type":"user.deleted","event_id":"a","event_id":"b","timestamp":1714176000,"data":{}}"#;
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header().to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let body = format!("{message}.{}", target().sign(message.as_bytes()));
    assert_eq!(codes(&verdict(body.as_bytes())), ["invalid_claims"]);
}

#[test]
fn a_header_must_name_rs256_and_the_issuers_kid_and_no_critical_extension() {
    let claims = event("event_oracle_header").into_claims();
    let kid = target().issuer.signer().kid().to_owned();
    for (h, code) in [
        (json!({"alg": "HS256", "kid": kid}), "unsupported_algorithm"),
        (json!({"kid": kid}), "unsupported_algorithm"),
        (json!({"alg": "RS256"}), "missing_kid"),
        (json!({"alg": "RS256", "kid": "other"}), "unknown_kid"),
        (
            json!({"alg": "RS256", "kid": kid, "crit": ["exp"]}),
            "unsupported_crit",
        ),
        (
            json!({"alg": "RS256", "kid": kid, "b64": false}),
            "unsupported_crit",
        ),
    ] {
        let v = verdict(&signed_with(&h, &claims));
        assert_eq!(v.signature, Signature::Valid);
        assert!(
            v.allowed.refused && v.allowed.codes.contains(code),
            "{h}: {v:?}"
        );
    }
    // Only the presence of `crit` counts, whatever bytes its value holds; `typ` may be unread.
    let kid_json = serde_json::to_string(&kid).unwrap();
    let crit = [
        &br#"{"alg":"RS256","kid":"#[..],
        kid_json.as_bytes(),
        br#","crit":[""#,
        b"\xff",
        br#""]}"#,
    ]
    .concat();
    let v = verdict(&signed_raw(&crit, &claims));
    assert!(
        v.allowed.refused && v.allowed.codes.contains("unsupported_crit"),
        "{v:?}"
    );
    let typ = [
        &br#"{"alg":"RS256","kid":"#[..],
        kid_json.as_bytes(),
        br#","typ":""#,
        b"\xff",
        br#""}"#,
    ]
    .concat();
    let v = verdict(&signed_raw(&typ, &claims));
    assert!(
        !v.allowed.refused && v.allowed.codes.contains("malformed_token"),
        "{v:?}"
    );
    // Mode 6 splices parameters into the template's header, signed.
    let spliced = splice::body(target(), b"\x06\"crit\":[\"exp\"]").unwrap();
    let v = verdict(&spliced);
    assert_eq!(v.signature, Signature::Valid);
    assert!(
        v.allowed.refused && v.allowed.codes.contains("unsupported_crit"),
        "{v:?}"
    );
    // A field the receiver may not understand: either answer is allowed.
    let v = verdict(&signed_with(
        &json!({"alg": "RS256", "kid": kid, "x5u": "https://example.com"}),
        &claims,
    ));
    assert!(!v.allowed.refused && v.allowed.codes.contains("malformed_token"));
}

fn handled_call(id: &str) -> Vec<Call> {
    vec![Call {
        event_id: id.into(),
        event_type: "user.deleted".into(),
    }]
}

#[test]
fn judge_refuses_each_broken_promise() {
    let valid = verdict(&signed(&event("event_judge").into_claims()));
    let forged = verdict(
        TestKey::attacker()
            .with_kid(target().issuer.signer().kid())
            .sign(&event("event_judge").into_claims())
            .as_bytes(),
    );
    let none = HashSet::new();
    let seen: HashSet<String> = ["event_judge".to_owned()].into();
    let calls = handled_call("event_judge");
    let obs = |code, status, calls| Observed {
        code,
        status,
        calls,
    };
    // What is right passes.
    assert_eq!(
        judge(&valid, &none, true, &obs("handled", 200, &calls)),
        Ok(Some("event_judge".into()))
    );
    assert_eq!(
        judge(&valid, &seen, true, &obs("duplicate", 200, &[])),
        Ok(None)
    );
    assert_eq!(
        judge(&forged, &none, true, &obs("invalid_signature", 401, &[])),
        Ok(None)
    );
    // A forgery taken, or a handler run for it.
    assert!(judge(&forged, &none, true, &obs("handled", 200, &calls)).is_err());
    assert!(judge(&forged, &none, true, &obs("duplicate", 200, &[])).is_err());
    assert!(judge(&forged, &none, true, &obs("invalid_signature", 401, &calls)).is_err());
    // A second run for one id; two runs in one delivery; a duplicate never handled.
    assert!(judge(&valid, &seen, true, &obs("handled", 200, &calls)).is_err());
    let twice = [calls.clone(), calls.clone()].concat();
    assert!(judge(&valid, &none, true, &obs("handled", 200, &twice)).is_err());
    assert!(judge(&valid, &none, true, &obs("duplicate", 200, &[])).is_err());
    // Once the store may have evicted the id, a second run is allowed (documented).
    assert!(judge(&valid, &seen, false, &obs("handled", 200, &calls)).is_ok());
    // The handler got another event.
    let other = handled_call("event_other");
    assert!(judge(&valid, &none, true, &obs("handled", 200, &other)).is_err());
    // Answers that cannot occur here, and a status off the table.
    for (code, status) in [
        ("in_progress", 409),
        ("store_unavailable", 503),
        ("ignored", 200),
        ("handler_failed", 500),
        ("invalid_signature", 401),
        ("no_such_code", 400),
    ] {
        assert!(
            judge(&valid, &none, true, &obs(code, status, &[])).is_err(),
            "{code}"
        );
    }
    assert!(judge(&forged, &none, true, &obs("invalid_signature", 400, &[])).is_err());
}

#[test]
fn the_seeds_go_through_the_real_receiver_as_the_spec_says() {
    let t = target();
    let mut got = Vec::new();
    for (target_name, name, input) in splice::seeds(t) {
        let body = match target_name {
            "spliced" => splice::body(t, &input).expect("a seed has a mode byte"),
            _ => input,
        };
        got.push((format!("{target_name}/{name}"), check(&body)));
    }
    let got: Vec<(&str, &str)> = got.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    assert_eq!(
        got,
        [
            ("spliced/5-created", "handled"),
            ("spliced/5-deleted", "handled"),
            ("spliced/5-untyped", "handled"),
            ("spliced/5-unparseable", "unparseable_event"),
            ("spliced/5-numeric-timestamp", "handled"),
            ("spliced/5-access-token", "wrong_token_kind"),
            ("spliced/6-header", "duplicate"),
            ("spliced/6-param", "duplicate"),
            ("spliced/6-header-extra", "duplicate"),
            ("spliced/3-header", "duplicate"),
            ("spliced/4-payload", "invalid_signature"),
            ("spliced/0-segment", "duplicate"),
            ("spliced/1-segment", "duplicate"),
            ("spliced/2-segment", "duplicate"),
            ("spliced/7-token", "duplicate"),
            ("entry_point/created", "duplicate"),
            ("entry_point/deleted", "duplicate"),
            ("entry_point/untyped", "duplicate"),
            ("entry_point/unparseable", "unparseable_event"),
            ("entry_point/numeric-timestamp", "duplicate"),
            ("entry_point/access-token", "wrong_token_kind"),
            ("entry_point/forged", "invalid_signature"),
            ("entry_point/template-newline", "duplicate"),
        ]
    );
}

#[test]
fn a_signed_event_is_handled_once_then_answered_duplicate() {
    let body = signed(&event("event_check_twice").into_claims());
    assert_eq!(check(&body), "handled");
    assert_eq!(check(&body), "duplicate");
    assert!(crate::handled_count() >= 1);
}

/// Fuzzer finding (oracle side): the oracle refused, as not UTF-8, claims whose bad bytes sat in
/// a claim nobody reads; the receiver skips such a claim unread, and takes the event.
#[test]
fn bytes_that_are_not_utf8_in_a_claim_nobody_reads_are_allowed() {
    let payload = [
        &br#"{"type":"user.deleted","event_id":"event_fuzz_utf8","timestamp":"2024-04-27T00:00:00Z","#[..],
        br#""data":{"user":{"id":"kp_1"}},"tioestamp":"00"#,
        b"\xb6\xb6",
        br#""}"#,
    ]
    .concat();
    let body = splice::body(target(), &[&[5u8][..], &payload].concat()).unwrap();
    let v = verdict(&body);
    assert!(!v.allowed.refused, "{v:?}");
    assert_eq!(check(&body), "handled");
}

/// Fuzzer finding (oracle side): the same for an audience claim, which only counts as present.
#[test]
fn an_audience_claim_with_bytes_that_are_not_utf8_still_makes_a_wrong_token_kind() {
    let payload = [
        &br#"{"aud":["https://api.exa"#[..],
        b"\xed",
        br#"ple.com"],"sub":"kp_1"}"#,
    ]
    .concat();
    let body = splice::body(target(), &[&[5u8][..], &payload].concat()).unwrap();
    let v = verdict(&body);
    assert!(
        v.allowed.refused && v.allowed.codes.contains("wrong_token_kind"),
        "{v:?}"
    );
    assert_eq!(check(&body), "wrong_token_kind");
}

/// The oracle's memory of signatures answers as a full RSA check does.
#[test]
fn remembered_signatures_answer_as_the_rsa_check_does() {
    let t = target();
    let fresh = || {
        crate::oracle::Oracle::new(
            t.issuer.signer().public_pem(),
            t.issuer.signer().kid(),
            crate::now(),
            kinde_core::ReplayWindow::default(),
            crate::BODY_LIMIT,
        )
    };
    let a = String::from_utf8(signed(&event("event_memory_a").into_claims())).unwrap();
    let b = String::from_utf8(signed(&event("event_memory_b").into_claims())).unwrap();
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for body in [
        a.join("."),
        format!("{}.{}.{}", a[0], b[1], a[2]),
        format!("{}.{}.{}", a[0], a[1], b[2]),
        b.join("."),
    ] {
        let remembered = t.oracle().verdict(body.as_bytes()).signature;
        assert_eq!(
            remembered,
            fresh().verdict(body.as_bytes()).signature,
            "{body}"
        );
    }
    assert_eq!(
        t.oracle().verdict(a.join(".").as_bytes()).signature,
        Signature::Valid
    );
    let moved = format!("{}.{}.{}", a[0], b[1], a[2]);
    assert_eq!(
        t.oracle().verdict(moved.as_bytes()).signature,
        Signature::Invalid
    );
}
