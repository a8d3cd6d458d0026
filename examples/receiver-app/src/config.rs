//! Configuration from environment variables.

use std::net::SocketAddr;

/// A setting that is missing or invalid; the message names the variable and says why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("{0} is required (e.g. KINDE_DOMAIN=https://<tenant>.kinde.com)")]
    Missing(&'static str),
    /// A variable has an invalid value.
    #[error("{name} is invalid: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        why: String,
    },
    /// The receiver could not be built from otherwise valid settings.
    #[error("cannot build the receiver: {0}")]
    Webhooks(#[source] kinde_core::BuildError),
}

/// The receiver's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// `KINDE_DOMAIN`: `https://<tenant>.kinde.com` (or `http://127.0.0.1:<port>` locally).
    pub kinde_domain: String,
    /// `KINDE_JWKS_URL`: overrides `{KINDE_DOMAIN}/.well-known/jwks`.
    pub jwks_url: Option<String>,
    /// `BIND`: the listen address (default `127.0.0.1:3000`).
    pub bind: SocketAddr,
    /// `WEBHOOK_PATH`: the intercepted path (default `/kinde/webhook`).
    pub webhook_path: String,
    /// `REDIS_URL`: one `redis://host:port` (a single server) or a comma-separated list (a
    /// cluster); the in-memory store when unset.
    pub redis_url: Option<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let kinde_domain = get("KINDE_DOMAIN").ok_or(ConfigError::Missing("KINDE_DOMAIN"))?;
        kinde_core::verify::normalize_issuer(&kinde_domain).map_err(|e| ConfigError::Invalid {
            name: "KINDE_DOMAIN",
            why: e.to_string(),
        })?;
        let jwks_url = get("KINDE_JWKS_URL");
        if let Some(url) = &jwks_url {
            kinde_core::verify::check_url(url).map_err(|e| ConfigError::Invalid {
                name: "KINDE_JWKS_URL",
                why: e.to_string(),
            })?;
        }
        let bind = match get("BIND") {
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
            Some(b) => b.parse().map_err(|_| ConfigError::Invalid {
                name: "BIND",
                why: format!("`{b}` is not an address like 127.0.0.1:3000"),
            })?,
        };
        let webhook_path =
            get("WEBHOOK_PATH").unwrap_or_else(|| kinde_core::DEFAULT_PATH.to_owned());
        if !webhook_path.starts_with('/') {
            return Err(ConfigError::Invalid {
                name: "WEBHOOK_PATH",
                why: format!("`{webhook_path}` must start with /"),
            });
        }
        let redis_url = get("REDIS_URL");
        if let Some(urls) = &redis_url {
            for u in urls.split(',').map(str::trim) {
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    return Err(ConfigError::Invalid {
                        name: "REDIS_URL",
                        why: format!("`{u}` is not a redis:// URL"),
                    });
                }
            }
        }
        Ok(Self {
            kinde_domain,
            jwks_url,
            bind,
            webhook_path,
            redis_url,
        })
    }
}

/// The store `REDIS_URL` asks for, if any: one URL is a single server, a comma-separated list
/// a cluster. Nothing connects here: a receiver starts while Redis is down and answers 503 until
/// it is reachable.
pub(crate) fn redis_store(
    config: &Config,
) -> Result<Option<kinde_core::store::RedisStore>, ConfigError> {
    let Some(urls) = &config.redis_url else {
        return Ok(None);
    };
    let urls: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    kinde_core::store::RedisStore::new(kinde_core::store::RedisStoreConfig::from_urls(urls))
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            name: "REDIS_URL",
            why: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[("KINDE_DOMAIN", "https://acme.kinde.com")]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(c.webhook_path, "/kinde/webhook");
        assert_eq!(c.redis_url, None);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "KINDE_DOMAIN is required"),
            (
                &[("KINDE_DOMAIN", "http://acme.kinde.com")],
                "KINDE_DOMAIN is invalid",
            ),
            (
                &[("KINDE_DOMAIN", "acme.kinde.com"), ("BIND", "nope")],
                "BIND is invalid",
            ),
            (
                &[("KINDE_DOMAIN", "acme.kinde.com"), ("WEBHOOK_PATH", "hook")],
                "WEBHOOK_PATH is invalid",
            ),
            (
                &[
                    ("KINDE_DOMAIN", "acme.kinde.com"),
                    ("REDIS_URL", "localhost:6379"),
                ],
                "REDIS_URL is invalid",
            ),
            (
                &[
                    ("KINDE_DOMAIN", "acme.kinde.com"),
                    ("KINDE_JWKS_URL", "ftp://x"),
                ],
                "KINDE_JWKS_URL is invalid",
            ),
        ];
        for (pairs, expected) in cases {
            let err = cfg(pairs).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
            assert!(!err.contains('\n'));
        }
    }
}
