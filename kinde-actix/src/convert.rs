//! The one place where actix-web's `http` 0.2 types meet kinde-core's `http` 1.x types.
//!
//! Names, values, methods and statuses are copied byte for byte: both `http` versions validate
//! them by the same rules, so nothing a client can send to actix-web is lost on the way.

use actix_web::http::header as actix_header;
use actix_web::http::{ConnectionType, Method as ActixMethod, StatusCode as ActixStatus};
use actix_web::HttpResponse;
use kinde_core::WebhookResponse;

/// The request's method, for [`kinde_core::adapter::precheck`].
pub(crate) fn method(method: &ActixMethod) -> http::Method {
    // Cannot fail (both crates accept the same tokens); were it to, any method other than POST
    // is answered 405 alike, and GET (the default) is one.
    http::Method::from_bytes(method.as_str().as_bytes()).unwrap_or_default()
}

/// Every request header, in order, repeated names kept.
pub(crate) fn request_headers(headers: &actix_header::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers.iter() {
        let converted = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        );
        if let (Ok(name), Ok(mut converted)) = converted {
            converted.set_sensitive(value.is_sensitive());
            out.append(name, converted);
        }
    }
    out
}

/// kinde-core's answer as an actix-web response: status, headers and body unchanged. When the
/// answer closes the connection (a 408: the body was not read to its end), the response head
/// says so: actix-web writes the `Connection` header from the head, not from the header map,
/// and closes the connection after the answer.
pub(crate) fn response(answer: &WebhookResponse) -> HttpResponse {
    let status = ActixStatus::from_u16(answer.status().as_u16())
        .unwrap_or(ActixStatus::INTERNAL_SERVER_ERROR);
    let mut resp = HttpResponse::with_body(status, answer.body());
    for (name, value) in answer.headers().iter() {
        if name == http::header::CONNECTION {
            continue; // the head's connection type, below
        }
        let name = actix_header::HeaderName::from_bytes(name.as_str().as_bytes());
        let value = actix_header::HeaderValue::from_bytes(value.as_bytes());
        if let (Ok(name), Ok(value)) = (name, value) {
            resp.headers_mut().append(name, value);
        }
    }
    if answer.closes_connection() {
        resp.head_mut().set_connection_type(ConnectionType::Close);
    }
    resp.map_into_boxed_body()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody as _;
    use actix_web::test::TestRequest;

    #[test]
    fn request_headers_are_copied_byte_for_byte() {
        let req = TestRequest::post()
            .insert_header(("webhook-id", "msg_2abc"))
            .append_header(("x-multi", "one"))
            .append_header(("x-multi", "two"))
            .insert_header((
                "x-obs-text",
                actix_header::HeaderValue::from_bytes(b"caf\xe9 \t!").unwrap(),
            ))
            .to_http_request();
        let out = request_headers(req.headers());
        assert_eq!(out["webhook-id"], "msg_2abc");
        let multi: Vec<_> = out.get_all("x-multi").iter().collect();
        assert_eq!(multi, ["one", "two"]);
        assert_eq!(out["x-obs-text"].as_bytes(), b"caf\xe9 \t!");
        assert_eq!(out.len(), req.headers().len());
    }

    #[test]
    fn methods() {
        assert_eq!(method(&ActixMethod::POST), http::Method::POST);
        assert_eq!(method(&ActixMethod::PATCH), http::Method::PATCH);
        let custom = ActixMethod::from_bytes(b"PURGE").unwrap();
        assert_eq!(method(&custom).as_str(), "PURGE");
    }

    fn webhooks() -> kinde_core::Webhooks {
        kinde_core::Webhooks::builder()
            .issuer("acme.kinde.com")
            .build()
            .unwrap()
    }

    #[test]
    fn the_response_keeps_status_headers_and_body() {
        let answer =
            kinde_core::adapter::precheck(&webhooks(), &http::Method::GET, &http::HeaderMap::new())
                .unwrap_err();
        let resp = response(&answer);
        assert!(!answer.closes_connection());
        assert_eq!(resp.head().connection_type(), ConnectionType::KeepAlive);
        assert_eq!(resp.status().as_u16(), answer.status().as_u16());
        for (name, value) in answer.headers().iter() {
            assert_eq!(
                resp.headers().get(name.as_str()).unwrap().as_bytes(),
                value.as_bytes()
            );
        }
        assert_eq!(resp.headers().get("allow").unwrap(), "POST");
        assert_eq!(resp.into_body().try_into_bytes().unwrap(), answer.body());
    }

    /// A 408 closes: actix-web ignores a `Connection` header in the map (it writes its own from
    /// the head), so the head must say it.
    #[actix_web::test]
    async fn a_body_timeout_closes_the_connection() {
        let webhooks = kinde_core::Webhooks::builder()
            .issuer("acme.kinde.com")
            .body_timeout(std::time::Duration::from_millis(1))
            .build()
            .unwrap();
        let stalled = futures_util::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        let answer = kinde_core::adapter::receive(
            &webhooks,
            &http::Method::POST,
            &http::HeaderMap::new(),
            stalled,
        )
        .await;
        assert_eq!(
            (answer.status().as_u16(), answer.outcome().code()),
            (408, "body_timeout")
        );
        assert!(answer.closes_connection());
        let resp = response(&answer);
        assert_eq!(resp.status().as_u16(), 408);
        assert_eq!(resp.head().connection_type(), ConnectionType::Close);
        assert!(!resp.keep_alive());
        assert!(resp.headers().get("connection").is_none());
    }
}
