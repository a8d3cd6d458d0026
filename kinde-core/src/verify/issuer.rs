//! The issuer URL and where its JWKS lives.

use url::{Host, Url};

/// Why an issuer or JWKS URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// Not a URL or domain at all.
    #[error("`{0}` is not a valid domain or URL")]
    Invalid(String),
    /// `http://` for a host that is not loopback, or another scheme.
    #[error("`{0}` must use https (plain http is allowed only for loopback hosts)")]
    NotHttps(String),
}

/// Which of the two well-known JWKS paths Kinde serves to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JwksPath {
    /// `/.well-known/jwks` (Kinde's documentation; the default).
    #[default]
    Jwks,
    /// `/.well-known/jwks.json` (what Kinde's own validator fetches).
    JwksJson,
}

/// Normalises an issuer given as `tenant.kinde.com`, `https://tenant.kinde.com` or
/// `https://tenant.kinde.com/`: the scheme defaults to https, trailing slashes go.
pub fn normalize_issuer(input: &str) -> Result<Url, IssuerError> {
    let trimmed = input.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("https://{trimmed}")
    };
    let mut url = check_url(&with_scheme)?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The JWKS URL of a normalised issuer.
pub fn jwks_url(issuer: &Url, path: JwksPath) -> Url {
    let suffix = match path {
        JwksPath::Jwks => "/.well-known/jwks",
        JwksPath::JwksJson => "/.well-known/jwks.json",
    };
    let mut url = issuer.clone();
    url.set_path(&format!("{}{suffix}", issuer.path().trim_end_matches('/')));
    url
}

/// Parses a URL and requires https, or http to a loopback host.
pub fn check_url(input: &str) -> Result<Url, IssuerError> {
    let url = Url::parse(input).map_err(|_| IssuerError::Invalid(input.to_owned()))?;
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err(IssuerError::Invalid(input.to_owned()));
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(IssuerError::NotHttps(input.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_and_urls_normalise_to_the_same_issuer() {
        for input in [
            "acme.kinde.com",
            "https://acme.kinde.com",
            "https://acme.kinde.com/",
            " https://acme.kinde.com// ",
        ] {
            let url = normalize_issuer(input).unwrap();
            assert_eq!(
                jwks_url(&url, JwksPath::Jwks).as_str(),
                "https://acme.kinde.com/.well-known/jwks",
                "{input}"
            );
        }
        let url = normalize_issuer("acme.kinde.com").unwrap();
        assert_eq!(
            jwks_url(&url, JwksPath::JwksJson).as_str(),
            "https://acme.kinde.com/.well-known/jwks.json"
        );
    }

    #[test]
    fn http_only_for_loopback() {
        assert!(normalize_issuer("http://127.0.0.1:8080").is_ok());
        assert!(normalize_issuer("http://localhost:8080/").is_ok());
        assert!(normalize_issuer("http://[::1]:8080").is_ok());
        assert_eq!(
            normalize_issuer("http://acme.kinde.com"),
            Err(IssuerError::NotHttps("http://acme.kinde.com".into()))
        );
        assert!(matches!(
            normalize_issuer("ftp://acme.kinde.com"),
            Err(IssuerError::NotHttps(_))
        ));
        assert!(matches!(
            normalize_issuer("https://"),
            Err(IssuerError::Invalid(_))
        ));
        assert!(matches!(normalize_issuer(""), Err(IssuerError::Invalid(_))));
    }
}
