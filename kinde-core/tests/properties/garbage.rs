//! Generators and plumbing for `properties.rs`: the runner, arbitrary JSON, and garbage and
//! near-JWT bodies.

use std::fmt::Debug;

use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use kinde_core::testing::TestEvent;
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseResult, TestRunner};
use serde_json::{json, Value};

/// Cases of the single-byte mutation property (one RSA verification each).
pub const MUTATION_CASES: u32 = 256;

/// A current-thread runtime driving the issuer's server and the receiver alike.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a property for `cases` cases; panics with the shrunk failing input.
pub fn run<S>(cases: u32, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, test) {
        panic!("{e}");
    }
}

// ---- garbage -------------------------------------------------------------------------------

/// Any JSON value, nested a little; numbers are integers or dyadic fractions (exact in JSON).
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1_000_000i64..1_000_000).prop_map(|n| Value::from(n as f64 / 8.0)),
        ".{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(".{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object of arbitrary members.
pub fn json_object() -> impl Strategy<Value = Value> {
    btree_map(".{0,8}", json_value(), 0..6).prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn encode(how: u8, bytes: &[u8]) -> String {
    match how % 4 {
        0 | 1 => URL_SAFE_NO_PAD.encode(bytes),
        2 => URL_SAFE.encode(bytes), // padded
        _ => STANDARD.encode(bytes), // `+` and `/`, padded
    }
}

/// Three segments that look like a JWT: a JSON header with a random `alg` and `kid`, a payload
/// (random bytes, random JSON or real webhook claims) and a random signature.
fn near_jwt() -> impl Strategy<Value = Vec<u8>> {
    // RS256 most of the time, so that enough bodies get as far as the key lookup for the
    // property's own check (a few per run) to hold on every run, not 19 in 20.
    let alg = prop_oneof![
        8 => Just(json!("RS256")),
        1 => Just(json!("HS256")),
        1 => Just(json!("none")),
        1 => Just(json!("ES256")),
        1 => Just(json!("PS256")),
        1 => Just(json!("RS512")),
        1 => "[A-Za-z0-9]{0,8}".prop_map(Value::from),
        1 => json_value(),
    ];
    let kid = option::of(prop_oneof![
        Just(json!("test-primary")),
        Just(json!("test-secondary")),
        ".{0,40}".prop_map(Value::from),
        json_value(),
    ]);
    let claims = TestEvent::sample("user.created").into_claims().to_string();
    let payload = prop_oneof![
        vec(any::<u8>(), 0..200),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        Just(claims.into_bytes()),
    ];
    let signature = prop_oneof![vec(any::<u8>(), 0..300), vec(any::<u8>(), 256)];
    let header = (alg, kid, any::<bool>(), json_object()).prop_map(|(alg, kid, typ, extra)| {
        let mut h = match extra {
            Value::Object(m) => m,
            _ => Default::default(),
        };
        h.insert("alg".into(), alg);
        if let Some(kid) = kid {
            h.insert("kid".into(), kid);
        }
        if typ {
            h.insert("typ".into(), json!("JWT"));
        }
        Value::Object(h).to_string().into_bytes()
    });
    let raw_header = vec(any::<u8>(), 0..80);
    (
        prop_oneof![4 => header, 1 => raw_header],
        payload,
        signature,
        any::<[u8; 3]>(),
    )
        .prop_map(|(h, p, s, how)| {
            format!(
                "{}.{}.{}",
                encode(how[0], &h),
                encode(how[1], &p),
                encode(how[2], &s)
            )
            .into_bytes()
        })
}

/// Bodies that are not valid webhooks: random bytes, base64-ish text, three random base64url
/// segments, and near-JWTs.
pub fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let seg = "[A-Za-z0-9_-]{0,120}";
    prop_oneof![
        1 => vec(any::<u8>(), 0..512),
        1 => "[A-Za-z0-9_.=+/ \t\r\n-]{0,200}".prop_map(String::into_bytes),
        1 => (seg, seg, seg).prop_map(|(a, b, c)| format!("{a}.{b}.{c}").into_bytes()),
        3 => near_jwt(),
    ]
}
