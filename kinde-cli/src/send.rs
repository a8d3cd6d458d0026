//! `sign` and `send`: an event signed by the newest key of a keys directory, printed or POSTed
//! the way Kinde delivers it.

use std::time::Duration;

use futures_util::stream::{self, StreamExt as _};

use crate::cli::{EventArgs, SendArgs, SignArgs};
use crate::input::line;
use crate::{keys, overrides, Fatal};

/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of a response body read (and shown, on one line).
const BODY_SHOWN: usize = 4096;

/// The signed token of the event described on the command line.
fn token(event: &EventArgs) -> Result<String, Fatal> {
    let signer = keys::signer(&event.keys).map_err(Fatal)?;
    let claims = overrides::claims(&event.event_type, &event.overrides).map_err(Fatal)?;
    Ok(signer.key.sign(&claims))
}

/// `sign`: prints the token.
pub fn sign(args: SignArgs) -> Result<u8, Fatal> {
    line(&token(&args.event)?);
    Ok(0)
}

/// `send`: POSTs the token `--repeat` times, at most `--concurrency` at once; 0 if every
/// delivery got 200, else 1.
pub async fn send(args: SendArgs) -> Result<u8, Fatal> {
    let token = token(&args.event)?;
    let webhook_id = args
        .webhook_id
        .clone()
        .unwrap_or_else(|| format!("msg_{:032x}", rand::random::<u128>()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(DELIVERY_TIMEOUT)
        .user_agent(concat!("kinde-webhooks-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Fatal(format!("cannot start an HTTP client: {e}")))?;
    let deliveries = (0..args.repeat).map(|_| deliver(&client, &args.to, &token, &webhook_id));
    let mut answers = stream::iter(deliveries).buffer_unordered(args.concurrency as usize);
    let mut all_ok = true;
    while let Some((status, body)) = answers.next().await {
        all_ok &= status == 200;
        // `STATUS BODY`; just `STATUS` when the body is empty.
        let shown = format!("{status:03} {body}");
        line(shown.trim_end());
    }
    Ok(if all_ok { 0 } else { 1 })
}

/// One POST: the status and the body on one line, or `0` and why there was no answer.
async fn deliver(
    client: &reqwest::Client,
    to: &url::Url,
    token: &str,
    webhook_id: &str,
) -> (u16, String) {
    let sent = client
        .post(to.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/jwt")
        .header("webhook-id", webhook_id)
        .body(token.to_owned())
        .send()
        .await;
    let mut resp = match sent {
        Ok(resp) => resp,
        Err(e) => return (0, no_answer(to, &e)),
    };
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > BODY_SHOWN {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => return (status, format!("(the body could not be read: {e})")),
        }
    }
    (status, one_line(&body))
}

/// Why a request got no answer, in a sentence.
pub fn no_answer(to: &url::Url, e: &reqwest::Error) -> String {
    let why = crate::error_chain(e);
    if e.is_timeout() {
        format!(
            "no answer from {to} within {}s: {why}",
            DELIVERY_TIMEOUT.as_secs()
        )
    } else {
        format!("no answer from {to}: {why}")
    }
}

/// A body shown on one line: control characters as spaces, at most [`BODY_SHOWN`] bytes.
fn one_line(body: &[u8]) -> String {
    let shown = &body[..body.len().min(BODY_SHOWN)];
    let mut s: String = String::from_utf8_lossy(shown)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > BODY_SHOWN {
        s.push('…');
    }
    s.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_shown_on_one_bounded_line() {
        assert_eq!(
            one_line(br#"{"status":"handled"}"#),
            r#"{"status":"handled"}"#
        );
        assert_eq!(
            one_line(b"<html>\r\n<body>x</body>\n</html>\n"),
            "<html>  <body>x</body> </html>"
        );
        let long = vec![b'a'; BODY_SHOWN + 10];
        let shown = one_line(&long);
        assert!(shown.ends_with('…'));
        assert_eq!(shown.chars().count(), BODY_SHOWN + 1);
        assert_eq!(one_line(b""), "");
    }
}
