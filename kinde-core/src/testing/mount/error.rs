//! [`MountError`]: what answered the probe instead of kinde-webhooks, and why that matters.

use std::fmt;

use http::StatusCode;

/// The mount proof failed: kinde-webhooks did not answer the probe. Its message (`Display`,
/// and `Debug` too, so `.unwrap()` shows it) says what answered instead and how to fix the
/// mounting.
#[derive(Clone)]
pub struct MountError(pub(super) Box<Failure>);

#[derive(Clone)]
pub(super) struct Failure {
    pub(super) path: String,
    pub(super) what: What,
    pub(super) advice: String,
}

#[derive(Debug, Clone)]
pub(super) enum What {
    Answered {
        status: StatusCode,
        content_type: Option<String>,
        body: String,
        ours_code: Option<String>,
    },
    NoAnswer(String),
}

impl MountError {
    /// The status that answered the probe instead of kinde-webhooks (`None`: no answer at all).
    pub fn status(&self) -> Option<StatusCode> {
        match &self.0.what {
            What::Answered { status, .. } => Some(*status),
            What::NoAnswer(_) => None,
        }
    }
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = &self.0.path;
        write!(
            f,
            "kinde-webhooks is not mounted at POST {path}: the mount probe (a malformed token, \
             which kinde-webhooks answers `400 {{\"error\":\"malformed_token\"}}`) "
        )?;
        match &self.0.what {
            What::NoAnswer(why) => write!(f, "got no answer: {why}.")?,
            What::Answered {
                status,
                content_type,
                body,
                ours_code,
            } => {
                let ct = content_type.as_deref().unwrap_or("no content-type");
                write!(f, "was answered `{status}` ({ct}), body {body:?}. That is ")?;
                let why = diagnose(*status, ours_code.as_deref());
                write!(f, "{why}")?;
                if status.is_success() {
                    write!(
                        f,
                        " Kinde would count every delivery as delivered while none reaches \
                         your handlers: deliveries would be lost silently."
                    )?;
                } else {
                    write!(
                        f,
                        " Every real delivery would get the same answer: Kinde would retry it \
                         for about 36 hours, then give up."
                    )?;
                }
            }
        }
        write!(f, "\n{}", self.0.advice)
    }
}

/// What the answer suggests.
fn diagnose(status: StatusCode, ours_code: Option<&str>) -> String {
    if let Some(code) = ours_code {
        return format!(
            "a JSON error `{code}` — if that is kinde-webhooks' answer, something on the way \
             changed the probe (its method, size or body) before it reached the webhook."
        );
    }
    let s = status.as_u16();
    match s {
        404 => "the app's own 404 or fallback: no route of the app took the path, and no \
                webhook layer or middleware saw it."
            .to_owned(),
        405 => "a route at the path that does not take POST (a method router such as `get(..)` \
                or `post(..)` of the app's own?): the webhook endpoint takes every method itself."
            .to_owned(),
        401 | 403 => "a refusal by something in front of the webhook (an auth layer?): Kinde's \
                      deliveries carry no credentials of the app; mount the webhook outside it."
            .to_owned(),
        _ if status.is_success() => {
            "a success from the app's own handler or fallback, not kinde-webhooks.".to_owned()
        }
        _ if status.is_server_error() => {
            "a server error from the app, not kinde-webhooks.".to_owned()
        }
        _ => "an answer that is not kinde-webhooks'.".to_owned(),
    }
}

impl fmt::Debug for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for MountError {}
