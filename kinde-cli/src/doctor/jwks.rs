//! The JWKS checks: the issuer URL, then its JWKS fetched as a receiver fetches it (no
//! credentials, no redirects), its status, content type and usable RS256 keys.

use std::sync::Arc;

use kinde_core::verify::{
    jwks_url, normalize_issuer, IssuerError, JwksCache, JwksConfig, JwksError, JwksPath,
    StaticKeySource,
};
use serde_json::Value;

use super::Report;
use crate::keys::public_pem_of_jwk;

/// The largest JWKS read (kinde-core's default bound on a JWKS response).
const MAX_JWKS_BYTES: usize = 128 * 1024;

/// The issuer key the probes impersonate: its kid and public key.
#[derive(Debug, Clone)]
pub struct IssuerKey {
    /// The kid of the first usable key of the JWKS.
    pub kid: String,
    /// Its SPKI PEM (the secret of an HS256 key-confusion forgery).
    pub public_pem: String,
}

const WHERE_THE_DOMAIN_IS: &str = "use the Domain shown on your Kinde application's details \
    page (https://<tenant>.kinde.com, or your custom domain)";

/// Runs the JWKS checks; the issuer's key when the JWKS holds a usable one.
pub async fn check(
    client: &reqwest::Client,
    issuer: &str,
    report: &mut Report,
) -> Option<IssuerKey> {
    let url = match normalize_issuer(issuer) {
        Ok(url) => url,
        Err(IssuerError::NotHttps(_)) => {
            report.fail(
                "issuer",
                format!("`{issuer}` is plain http: Kinde serves its keys over https, and receivers accept http only for a loopback issuer (a local `kinde-webhooks issuer`); {WHERE_THE_DOMAIN_IS}"),
            );
            return None;
        }
        Err(_) => {
            report.fail(
                "issuer",
                format!("`{issuer}` is not a domain or URL; {WHERE_THE_DOMAIN_IS}"),
            );
            return None;
        }
    };
    let loopback_http = url.scheme() == "http";
    let shown = url.as_str().trim_end_matches('/');
    report.pass(
        "issuer",
        Some(if loopback_http {
            format!("{shown}: a loopback issuer, plain http is accepted for local testing")
        } else {
            shown.to_owned()
        }),
    );

    let jwks = jwks_url(&url, JwksPath::Jwks);
    let resp = match client
        .get(jwks.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
    {
        Ok(resp) => resp,
        Err(e) => {
            let why = crate::send::no_answer(&jwks, &e);
            let fix = if loopback_http {
                "is the local issuer running (`kinde-webhooks issuer --keys DIR` prints its URL)?"
                    .to_owned()
            } else {
                format!("check the domain ({WHERE_THE_DOMAIN_IS}) and that this machine reaches it (DNS, proxy, firewall)")
            };
            report.fail("jwks-reachable", format!("{why}; {fix}"));
            return None;
        }
    };
    report.pass("jwks-reachable", Some(jwks.to_string()));

    let status = resp.status().as_u16();
    if (300..400).contains(&status) {
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(no Location)");
        report.fail(
            "jwks-no-redirect",
            format!("{jwks} answers {status}, a redirect to {to}: receivers never follow a JWKS redirect (kinde-core does not), so every delivery would be answered 503; set the issuer to the domain that serves the JWKS itself"),
        );
        return None;
    }
    report.pass("jwks-no-redirect", None);

    if status != 200 {
        report.fail("jwks-status", status_advice(&jwks, status));
        return None;
    }
    report.pass("jwks-status", Some("200".into()));

    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        report.pass("jwks-content-type", Some(content_type));
    } else {
        let shown = if content_type.is_empty() {
            "no content type".to_owned()
        } else {
            format!("`{content_type}`")
        };
        report.fail(
            "jwks-content-type",
            format!("{jwks} is served with {shown}, not JSON: this is likely not Kinde's JWKS but a login or error page, a proxy or a captive portal; {WHERE_THE_DOMAIN_IS}"),
        );
    }

    let body = match read_bounded(resp).await {
        Ok(body) => body,
        Err(why) => {
            report.fail("jwks-keys", format!("{jwks}: {why}"));
            return None;
        }
    };
    usable_keys(&jwks, body, report).await
}

fn status_advice(jwks: &url::Url, status: u16) -> String {
    match status {
        403 => format!(
            "{jwks} answers 403 Forbidden. The causes Kinde's documentation names: a wrong domain or region subdomain (a typo in the tenant name, or another region's domain: {WHERE_THE_DOMAIN_IS}); credentials sent with the request (the JWKS is public: remove any Authorization header or client secret your HTTP client or proxy adds); an IP allowlist or firewall rule blocking this network. This check sent no credentials, so the domain or the network is the likelier cause here"
        ),
        404 => format!("{jwks} answers 404: nothing is served there, so this is probably not a Kinde domain; {WHERE_THE_DOMAIN_IS}"),
        401 => format!("{jwks} answers 401: the JWKS is public and needs no credentials, so something between (a proxy, a gateway) asks for them; {WHERE_THE_DOMAIN_IS}"),
        500..=599 => format!("{jwks} answers {status}: the issuer (or a proxy in front of it) is failing right now; receivers answer 503 meanwhile and Kinde retries; try again later"),
        _ => format!("{jwks} answers {status}, not 200: receivers cannot fetch the keys; {WHERE_THE_DOMAIN_IS}"),
    }
}

async fn read_bounded(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("the body could not be read: {e}"))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "larger than {} KiB: receivers refuse a JWKS this large",
                MAX_JWKS_BYTES / 1024
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The keys kinde-core would use, by loading the document into its own key cache.
async fn usable_keys(jwks: &url::Url, body: Vec<u8>, report: &mut Report) -> Option<IssuerKey> {
    let doc: Option<Value> = serde_json::from_slice(&body).ok();
    let cache = JwksCache::new(Arc::new(StaticKeySource::new(body)), JwksConfig::default());
    if let Err(e) = cache.refresh().await {
        let fix = match &*e {
            JwksError::InvalidJson(_) => "it is not a JWKS document (a JSON object with a `keys` array): check the domain",
            JwksError::NoUsableKeys => "none is an RS256 signing key (kty RSA, use sig or absent, alg RS256 or absent, 2048 to 4096 bits, with a kid): receivers can verify nothing",
            JwksError::TooManyKeys { .. } => "receivers refuse a key set this large",
            _ => "receivers cannot use it",
        };
        report.fail("jwks-keys", format!("{jwks}: {e}; {fix}"));
        return None;
    }
    let usable = cache.cached_kids();
    let entries: Vec<Value> = doc
        .as_ref()
        .and_then(|d| d["keys"].as_array().cloned())
        .unwrap_or_default();
    // The first usable key in the document's order.
    let key = entries.iter().find_map(|k| {
        let kid = k["kid"].as_str()?;
        if !usable.iter().any(|u| u == kid) {
            return None;
        }
        let public_pem = public_pem_of_jwk(k["n"].as_str()?, k["e"].as_str()?)?;
        Some(IssuerKey {
            kid: kid.to_owned(),
            public_pem,
        })
    });
    let ignored = entries.len().saturating_sub(usable.len());
    let mut kids: Vec<&str> = entries
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .filter(|kid| usable.iter().any(|u| u == kid))
        .collect();
    kids.dedup();
    let mut note = format!("{} usable RS256 key(s): {}", usable.len(), kids.join(", "));
    if ignored > 0 {
        let entries = if ignored == 1 { "entry" } else { "entries" };
        note.push_str(&format!("; {ignored} other {entries} ignored"));
    }
    report.pass("jwks-keys", Some(note));
    key
}
