//! The table: every case once, for every adapter. A case may act on its server first
//! (`before`), builds its request from the server's issuer, and says what must come back.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, Header};
use kinde_core::testing::{access_token_claims, sign_hs256, TestEvent, TestKey};
use serde_json::json;
use time::OffsetDateTime;

use super::client::{Body, Req, Resp};
use super::servers::{Server, FAILING, PANICKING_ASYNC, PANICKING_SYNC, TIGHT_PATH};

/// Something done to the server before the case's request.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// The issuer publishes a new key and signs with it from now on.
    RotateKey,
    StopJwks,
    ResumeJwks,
    /// Waits out the JWKS refetch cooldown, so the next unknown kid is fetched.
    PassCooldown,
    /// Switches the idempotency store off (every call fails), and on again.
    StoreOff,
    StoreOn,
    /// Starts a delivery of a gated event in the background and waits until its handler runs;
    /// then lets it through and checks it was answered `200 handled`.
    StartGated,
    ReleaseGated,
    /// Takes the tight receiver's one permit with a stalled upload; then lets it go.
    HoldTight,
    ReleaseTight,
}

/// What a case remembers for a later one (per server).
#[derive(Debug, Default)]
pub struct Memo {
    /// The token of the first delivery (for its duplicates).
    pub delivered: Option<String>,
    /// A token refused while the keys could not be fetched (for its retry).
    pub held: Option<String>,
    /// A token refused while the store was off (for its retry).
    pub store_held: Option<String>,
    /// A token whose handler failed (for its retry).
    pub failed: Option<String>,
    /// Tokens whose handler panicked, before its future and inside it (for their retries).
    pub panicked: Option<String>,
    pub panicked_async: Option<String>,
    /// The gated delivery's token, and its answer once let through.
    pub gated: Option<String>,
    pub gated_answer: Option<tokio::task::JoinHandle<Resp>>,
    /// The upload holding the tight receiver's permit.
    pub tight_holder: Option<tokio::net::TcpStream>,
}

/// The expected body.
#[derive(Debug, Clone, Copy)]
pub enum Expected {
    /// kinde-core's JSON answer with this code (`{"status":…}` on 2xx, `{"error":…}` otherwise),
    /// sent as `application/json`.
    Code(&'static str),
    /// Exactly this text (an app route).
    Text(&'static str),
    /// The request's own body (the app's echo route: the payload reached it unread).
    Echo,
}

pub struct Expect {
    pub status: u16,
    pub body: Expected,
    /// Whether exactly one handler call happens (otherwise none).
    pub handled: bool,
    /// The `Allow` header, if one must be sent.
    pub allow: Option<&'static str>,
    /// Whether the answer says `Connection: close` and the server closes (sent keep-alive).
    pub closes: bool,
}

/// Builds a case's request from its server (and what earlier cases remembered).
pub type MakeRequest = Box<dyn Fn(&Server, &mut Memo) -> Req + Send + Sync>;

pub struct Case {
    pub name: &'static str,
    pub before: &'static [Action],
    /// Done after the answer was read.
    pub after: &'static [Action],
    pub request: MakeRequest,
    pub expect: Expect,
}

fn case(
    name: &'static str,
    expect: Expect,
    request: impl Fn(&Server, &mut Memo) -> Req + Send + Sync + 'static,
) -> Case {
    Case {
        name,
        before: &[],
        after: &[],
        request: Box::new(request),
        expect,
    }
}

impl Case {
    fn before(mut self, actions: &'static [Action]) -> Self {
        self.before = actions;
        self
    }

    fn after(mut self, actions: &'static [Action]) -> Self {
        self.after = actions;
        self
    }

    fn allow(mut self, allow: &'static str) -> Self {
        self.expect.allow = Some(allow);
        self
    }

    fn closes(mut self) -> Self {
        self.expect.closes = true;
        self
    }
}

/// 200 with this code; `handled`: whether the handler runs.
fn answered(code: &'static str, handled: bool) -> Expect {
    Expect {
        status: 200,
        body: Expected::Code(code),
        handled,
        allow: None,
        closes: false,
    }
}

/// Failed with this status and code after the handler ran once.
fn failed(status: u16, code: &'static str) -> Expect {
    Expect {
        handled: true,
        ..refused(status, code)
    }
}

/// Refused with this status and code; no handler runs.
fn refused(status: u16, code: &'static str) -> Expect {
    Expect {
        status,
        body: Expected::Code(code),
        handled: false,
        allow: None,
        closes: false,
    }
}

/// The app's own answer; no handler runs.
fn app(status: u16, body: Expected) -> Expect {
    Expect {
        status,
        body,
        handled: false,
        allow: None,
        closes: false,
    }
}

/// Every case, in the order run.
pub fn table() -> Vec<Case> {
    use Action::*;
    use Expected::{Echo, Text};
    let malformed = || refused(400, "malformed_token");
    vec![
        // Deliveries and their duplicates.
        case(
            "a signed delivery is handled",
            answered("handled", true),
            first_delivery,
        ),
        case(
            "the same token again",
            answered("duplicate", false),
            |s, m| deliver(s, m.delivered.clone().expect("delivered first")),
        ),
        case(
            "the same token, a new webhook-id",
            answered("duplicate", false),
            |s, m| {
                let token = m.delivered.clone().expect("delivered first");
                with_webhook_id(deliver(s, token), "msg_2")
            },
        ),
        case(
            "a delivery sent chunked",
            answered("handled", true),
            chunked_delivery,
        ),
        case(
            "the path with a query string",
            answered("handled", true),
            |s, _| {
                let mut req = deliver(s, fresh(s));
                req.path.push_str("?source=kinde");
                req
            },
        ),
        // Signatures and keys.
        case(
            "forged: attacker key, issuer's kid",
            refused(401, "invalid_signature"),
            forged,
        ),
        // Past the cooldown, the receiver refetches and the issuer's keys lack it: 401.
        case("unknown kid", refused(401, "unknown_kid"), |s, _| {
            deliver(s, TestKey::attacker().sign(&claims()))
        })
        .before(&[PassCooldown]),
        case(
            "tampered payload",
            refused(401, "invalid_signature"),
            tampered,
        ),
        case(
            "truncated signature",
            refused(401, "invalid_signature"),
            |s, _| {
                let t = fresh(s);
                deliver(s, &t[..t.len() - 10])
            },
        ),
        case("missing kid", refused(401, "missing_kid"), |s, _| {
            let header = Header::new(Algorithm::RS256);
            deliver(s, s.issuer.signer().sign_with_header(&header, &claims()))
        }),
        case("alg none", malformed(), alg_none),
        case(
            "a critical header extension",
            refused(401, "unsupported_crit"),
            |s, _| {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(s.issuer.signer().kid().to_owned());
                header.crit = Some(vec!["exp".into()]);
                deliver(s, s.issuer.signer().sign_with_header(&header, &claims()))
            },
        ),
        case(
            "a type with a newline in it",
            refused(400, "invalid_claims"),
            |s, _| {
                let c = TestEvent::sample("user.created")
                    .claim("type", json!("user.created\nhandled user.created event_x"))
                    .into_claims();
                deliver(s, s.issuer.sign(&c))
            },
        ),
        case(
            "HS256, the public key as secret",
            refused(401, "unsupported_algorithm"),
            hs256,
        ),
        case(
            "RS512, the issuer's key",
            refused(401, "unsupported_algorithm"),
            |s, _| {
                let mut header = Header::new(Algorithm::RS512);
                header.kid = Some(s.issuer.signer().kid().to_owned());
                deliver(s, s.issuer.signer().sign_with_header(&header, &claims()))
            },
        ),
        // Not a token at all.
        case("empty body", malformed(), |s, _| deliver(s, "")),
        case("not three segments", malformed(), |s, _| deliver(s, "a.b")),
        case("four segments", malformed(), |s, _| deliver(s, "a.b.c.d")),
        case("bad base64", malformed(), |s, _| deliver(s, "!!!.@@@.###")),
        case("binary garbage", malformed(), |s, _| {
            deliver(s, b"\xff\xfe.\x00.\x80".to_vec())
        }),
        case("deeply nested JSON header", malformed(), |s, _| {
            let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
            deliver(s, format!("{}.{}.sig", b64(deep.as_bytes()), b64(b"{}")))
        }),
        // Signed by the issuer, but not an acceptable webhook.
        case(
            "an access token of the issuer",
            refused(401, "wrong_token_kind"),
            |s, _| deliver(s, s.issuer.sign(&access_token_claims())),
        ),
        case("stale timestamp", refused(401, "stale_event"), |s, _| {
            deliver(s, signed_at(s, now() - time::Duration::hours(49)))
        }),
        case("future timestamp", refused(401, "future_event"), |s, _| {
            deliver(s, signed_at(s, now() + time::Duration::minutes(6)))
        }),
        case("expired token", refused(401, "token_expired"), |s, _| {
            let exp = now().unix_timestamp() - 10;
            let ev = TestEvent::sample("user.created").claim("exp", json!(exp));
            deliver(s, s.issuer.sign(&ev.into_claims()))
        }),
        case(
            "an event id with a space",
            refused(400, "invalid_event_id"),
            |s, _| {
                let ev = TestEvent::sample("user.created").event_id("event with space");
                deliver(s, s.issuer.sign(&ev.into_claims()))
            },
        ),
        case(
            "webhook-id of 10 000 chars",
            refused(400, "invalid_webhook_id"),
            |s, _| with_webhook_id(deliver(s, fresh(s)), &"w".repeat(10_000)),
        ),
        case(
            "webhook-id with a space",
            refused(400, "invalid_webhook_id"),
            |s, _| with_webhook_id(deliver(s, fresh(s)), "msg 1"),
        ),
        // Method and size, answered before verification.
        case(
            "GET on the path",
            refused(405, "method_not_allowed"),
            |s, _| Req::new("GET", &s.path),
        )
        .allow("POST"),
        case(
            "PUT on the path, a valid token",
            refused(405, "method_not_allowed"),
            |s, _| {
                let mut req = deliver(s, fresh(s));
                req.method = "PUT";
                req
            },
        )
        .allow("POST"),
        // HEAD: the same 405 and headers, no body.
        case("HEAD on the path", app(405, Text("")), |s, _| {
            Req::new("HEAD", &s.path)
        })
        .allow("POST"),
        case(
            "declared Content-Length 4 MiB",
            refused(413, "payload_too_large"),
            |s, _| deliver(s, "").body(Body::Declared(4 * 1024 * 1024)),
        ),
        case(
            "chunked, limit + 1, never ends",
            refused(413, "payload_too_large"),
            past_limit,
        ),
        case(
            "a body of exactly the limit is read",
            malformed(),
            |s, _| deliver(s, vec![b'a'; kinde_core::DEFAULT_BODY_LIMIT]),
        ),
        // Verified, then: no handler, a failing handler, data its type does not allow.
        case(
            "a verified type with no handler",
            answered("ignored", false),
            |s, _| {
                let ev = TestEvent::sample("organization.updated");
                deliver(s, s.issuer.sign(&ev.into_claims()))
            },
        ),
        case(
            "a handler that fails",
            failed(500, "handler_failed"),
            |s, m| {
                let token = s
                    .issuer
                    .sign(&TestEvent::raw(FAILING, json!({})).into_claims());
                m.failed = Some(token.clone());
                deliver(s, token)
            },
        ),
        case(
            "the failed event's retry runs the handler again",
            failed(500, "handler_failed"),
            |s, m| deliver(s, m.failed.clone().expect("failed first")),
        ),
        case(
            "a handler that panics before its future exists",
            refused(500, "handler_failed"),
            |s, m| {
                let token = s
                    .issuer
                    .sign(&TestEvent::raw(PANICKING_SYNC, json!({})).into_claims());
                m.panicked = Some(token.clone());
                deliver(s, token)
            },
        ),
        case(
            "its retry: the claim was released (500 again, never 409)",
            refused(500, "handler_failed"),
            |s, m| deliver(s, m.panicked.clone().expect("panicked first")),
        ),
        case(
            "a handler whose future panics",
            refused(500, "handler_failed"),
            |s, m| {
                let token = s
                    .issuer
                    .sign(&TestEvent::raw(PANICKING_ASYNC, json!({})).into_claims());
                m.panicked_async = Some(token.clone());
                deliver(s, token)
            },
        ),
        case(
            "its retry too: released (500 again, never 409)",
            refused(500, "handler_failed"),
            |s, m| deliver(s, m.panicked_async.clone().expect("panicked first")),
        ),
        case(
            "data its typed handler cannot parse",
            refused(500, "unparseable_event"),
            |s, _| {
                let ev = TestEvent::sample("user.created").claim("data", json!({"user": 7}));
                deliver(s, s.issuer.sign(&ev.into_claims()))
            },
        ),
        // The same event while its handler runs, and after.
        case(
            "the same event while its handler runs",
            refused(409, "in_progress"),
            |s, m| deliver(s, m.gated.clone().expect("gated delivery started")),
        )
        .before(&[StartGated])
        .after(&[ReleaseGated]),
        case(
            "the same event once handled",
            answered("duplicate", false),
            |s, m| deliver(s, m.gated.clone().expect("gated delivery started")),
        ),
        // The idempotency store goes down, then comes back.
        case(
            "the store is unreachable",
            refused(503, "store_unavailable"),
            |s, m| {
                let token = fresh(s);
                m.store_held = Some(token.clone());
                deliver(s, token)
            },
        )
        .before(&[StoreOff])
        .after(&[StoreOn]),
        case(
            "store back, the retry",
            answered("handled", true),
            |s, m| deliver(s, m.store_held.clone().expect("held while down")),
        ),
        // The bounds, on the tight receiver (one delivery in flight, a 1 s body deadline).
        case(
            "a body that stops (the body deadline)",
            refused(408, "body_timeout"),
            |s, _| {
                let token = fresh(s);
                let started = token.as_bytes()[..20].to_vec();
                let mut req = deliver(s, "").body(Body::Partial {
                    declared: token.len() as u64,
                    sent: started,
                });
                req.path = TIGHT_PATH.into();
                req.keep_alive()
            },
        )
        .closes(),
        case(
            "past the deliveries in flight",
            refused(503, "too_many_deliveries"),
            |s, _| {
                let mut req = deliver(s, fresh(s));
                req.path = TIGHT_PATH.into();
                req
            },
        )
        .before(&[HoldTight])
        .after(&[ReleaseTight]),
        // Everything else is the app's.
        case("GET /health", app(200, Text("ok")), |_, _| {
            Req::new("GET", "/health")
        }),
        case(
            "a POST to the app keeps its body",
            app(200, Echo),
            |s, _| {
                let mut req = deliver(s, fresh(s));
                req.path = "/echo".into();
                req
            },
        ),
        case("a near miss of the path", app(404, Text("")), |s, _| {
            let mut req = deliver(s, fresh(s));
            req.path.push('/');
            req
        }),
        // The path policy: exact. Each near miss carries a valid delivery, so a form that
        // took it would show a handled 200.
        near_miss("a trailing slash", "/kinde/webhook/"),
        near_miss("a leading double slash", "//kinde/webhook"),
        near_miss("a double slash inside", "/kinde//webhook"),
        near_miss("a dot segment", "/kinde/./webhook"),
        near_miss("a dot-dot segment", "/kinde/../kinde/webhook"),
        near_miss("a percent-encoded letter", "/kinde/%77ebhook"),
        near_miss("a percent-encoded first segment", "/%6Binde/webhook"),
        near_miss("a percent-encoded slash", "/kinde%2Fwebhook"),
        near_miss("a ;param", "/kinde/webhook;v=1"),
        near_miss("upper case", "/KINDE/WEBHOOK"),
        near_miss("mixed case", "/Kinde/Webhook"),
        // The issuer's JWKS goes down while a new key is in use, then comes back.
        case(
            "JWKS down, a new kid",
            refused(503, "jwks_unavailable"),
            |s, m| {
                let token = fresh(s);
                m.held = Some(token.clone());
                deliver(s, token)
            },
        )
        .before(&[RotateKey, StopJwks, PassCooldown]),
        case("JWKS back, the retry", answered("handled", true), |s, m| {
            deliver(s, m.held.clone().expect("held while down"))
        })
        .before(&[ResumeJwks, PassCooldown]),
    ]
}

/// A valid delivery to `path`, a near miss of the webhook's: the app's 404, no handler.
fn near_miss(name: &'static str, path: &'static str) -> Case {
    case(name, app(404, Expected::Text("")), move |s, _| at(s, path))
}

/// A fresh, valid delivery sent to `path`.
fn at(s: &Server, path: &str) -> Req {
    let mut req = deliver(s, fresh(s));
    req.path = path.to_owned();
    req
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn claims() -> serde_json::Value {
    TestEvent::sample("user.created").into_claims()
}

/// A new event, signed by the issuer's current key.
fn fresh(s: &Server) -> String {
    s.issuer.sign(&claims())
}

fn signed_at(s: &Server, t: OffsetDateTime) -> String {
    let ev = TestEvent::sample("user.created").timestamp(t);
    s.issuer.sign(&ev.into_claims())
}

/// A delivery of `body` as Kinde sends it.
pub fn deliver(s: &Server, body: impl Into<Vec<u8>>) -> Req {
    Req::new("POST", &s.path)
        .header("content-type", "application/jwt")
        .header("webhook-id", "msg_1")
        .body(Body::Full(body.into()))
}

fn with_webhook_id(mut req: Req, id: &str) -> Req {
    req.headers.retain(|(k, _)| k != "webhook-id");
    req.header("webhook-id", id)
}

fn first_delivery(s: &Server, m: &mut Memo) -> Req {
    let token = fresh(s);
    m.delivered = Some(token.clone());
    deliver(s, token)
}

fn chunked_delivery(s: &Server, _: &mut Memo) -> Req {
    let chunks = fresh(s)
        .as_bytes()
        .chunks(100)
        .map(<[u8]>::to_vec)
        .collect();
    let body = Body::Chunked {
        chunks,
        finish: true,
    };
    deliver(s, "").body(body)
}

fn forged(s: &Server, _: &mut Memo) -> Req {
    let kid = s.issuer.signer().kid().to_owned();
    deliver(s, TestKey::attacker().with_kid(&kid).sign(&claims()))
}

fn tampered(s: &Server, _: &mut Memo) -> Req {
    let good = fresh(s);
    let parts: Vec<&str> = good.split('.').collect();
    let mut evil = claims();
    evil["data"]["user"]["id"] = json!("kp_attacker");
    let payload = b64(evil.to_string().as_bytes());
    deliver(s, format!("{}.{payload}.{}", parts[0], parts[2]))
}

fn alg_none(s: &Server, _: &mut Memo) -> Req {
    let header = br#"{"alg":"none","typ":"JWT","kid":"test-primary"}"#;
    let payload = b64(claims().to_string().as_bytes());
    deliver(s, format!("{}.{payload}.", b64(header)))
}

fn hs256(s: &Server, _: &mut Memo) -> Req {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(s.issuer.signer().kid().to_owned());
    let secret = s.issuer.signer().public_pem().as_bytes().to_vec();
    deliver(s, sign_hs256(&header, &claims(), &secret))
}

/// The limit plus one byte, chunked, and the upload never ends: only a server that stops
/// reading at the limit can answer. Nothing is sent past that byte, so a server closing right
/// after its answer leaves no unread bytes behind to turn its close into a reset.
fn past_limit(s: &Server, _: &mut Memo) -> Req {
    let limit = kinde_core::DEFAULT_BODY_LIMIT;
    let mut chunks = vec![vec![b'a'; 16 * 1024]; limit / (16 * 1024)];
    chunks.push(vec![b'a'; limit % (16 * 1024) + 1]);
    deliver(s, "").body(Body::Chunked {
        chunks,
        finish: false,
    })
}
