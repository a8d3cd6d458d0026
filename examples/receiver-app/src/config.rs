//! Configuration from environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kinde_core::store::{FileStore, IdempotencyStore, RedisStore, RedisStoreConfig};
use kinde_core::{EntityOrdering, WebhooksBuilder};

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
    /// Two variables that exclude each other are both set.
    #[error("{0} and {1} are both set: choose one idempotency store (unset one of them)")]
    Conflict(&'static str, &'static str),
    /// The store a variable names cannot be opened (already in use, not a store file, ...).
    #[error("{name}: {source}")]
    Store {
        /// The variable.
        name: &'static str,
        /// Why.
        #[source]
        source: kinde_core::store::FileStoreError,
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
    /// cluster). With neither this nor `KINDE_STORE_PATH`, the in-memory store.
    pub redis_url: Option<String>,
    /// `KINDE_STORE_PATH`: the file of the durable store (created if missing; its directory must
    /// exist), which keeps handled events across restarts. One receiver process per file.
    /// Excludes `REDIS_URL`.
    pub store_path: Option<PathBuf>,
    /// `KINDE_ORDERING`: `1`/`true` turns ordering on (the latest event per entity wins);
    /// `0`/`false`/unset: off.
    pub ordering: bool,
    /// `KINDE_PARK_AFTER`: park an event after this many failed attempts (an integer ≥ 1);
    /// unset: parking off.
    pub park_after: Option<u32>,
    /// `METRICS_BIND`: serve Prometheus metrics at `http://<host:port>/metrics`; unset: none.
    pub metrics_bind: Option<SocketAddr>,
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
        if webhook_path == "/health" {
            return Err(ConfigError::Invalid {
                name: "WEBHOOK_PATH",
                why: "`/health` is the receiver's own health route".into(),
            });
        }
        if !webhook_path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
        {
            return Err(ConfigError::Invalid {
                name: "WEBHOOK_PATH",
                why: format!(
                    "`{webhook_path}` may hold only letters, digits and / - . _ ~ (it is matched exactly, as sent)"
                ),
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
        let store_path = get("KINDE_STORE_PATH").map(PathBuf::from);
        if store_path.is_some() && redis_url.is_some() {
            return Err(ConfigError::Conflict("KINDE_STORE_PATH", "REDIS_URL"));
        }
        let ordering = match get("KINDE_ORDERING").as_deref() {
            None | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "KINDE_ORDERING",
                    why: format!("`{other}` is not 1, true, 0 or false"),
                })
            }
        };
        let park_after = match get("KINDE_PARK_AFTER") {
            None => None,
            Some(n) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    return Err(ConfigError::Invalid {
                        name: "KINDE_PARK_AFTER",
                        why: format!("`{n}` is not an integer of at least 1"),
                    })
                }
            },
        };
        let metrics_bind = match get("METRICS_BIND") {
            None => None,
            Some(b) => Some(b.parse().map_err(|_| ConfigError::Invalid {
                name: "METRICS_BIND",
                why: format!("`{b}` is not an address like 127.0.0.1:9000"),
            })?),
        };
        Ok(Self {
            kinde_domain,
            jwks_url,
            bind,
            webhook_path,
            redis_url,
            store_path,
            ordering,
            park_after,
            metrics_bind,
        })
    }

    /// Applies the settings to a receiver's builder: the issuer (and `KINDE_JWKS_URL`), the
    /// path, the store, ordering and parking. The handlers are the caller's.
    pub fn configure<S: Clone + Send + Sync + 'static>(
        &self,
        builder: WebhooksBuilder<S>,
    ) -> Result<WebhooksBuilder<S>, ConfigError> {
        let mut builder = builder
            .issuer(self.kinde_domain.as_str())
            .path(self.webhook_path.as_str());
        if let Some(url) = &self.jwks_url {
            builder = builder.jwks_url(url.as_str());
        }
        if let Some(store) = store(self)? {
            builder = builder.store(store);
        }
        if self.ordering {
            builder = builder.ordering(EntityOrdering::latest_wins());
        }
        if let Some(n) = self.park_after {
            builder = builder.park_after(n);
        }
        Ok(builder)
    }
}

/// The store the configuration asks for: the file store for `KINDE_STORE_PATH` (opened here,
/// so a file held by another process is a start-up error), Redis for `REDIS_URL` (one URL is a
/// single server, a comma-separated list a cluster; nothing connects here: a receiver starts
/// while Redis is down and answers 503 until it is reachable), or `None` for the in-memory
/// store.
fn store(config: &Config) -> Result<Option<Arc<dyn IdempotencyStore>>, ConfigError> {
    if let Some(path) = &config.store_path {
        let store = FileStore::open(path).map_err(|source| ConfigError::Store {
            name: "KINDE_STORE_PATH",
            source,
        })?;
        return Ok(Some(Arc::new(store)));
    }
    let Some(urls) = &config.redis_url else {
        return Ok(None);
    };
    let urls: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    let store =
        RedisStore::new(RedisStoreConfig::from_urls(urls)).map_err(|e| ConfigError::Invalid {
            name: "REDIS_URL",
            why: e.to_string(),
        })?;
    Ok(Some(Arc::new(store)))
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
    fn ordering_parking_and_metrics() {
        let base = [("KINDE_DOMAIN", "acme.kinde.com")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            cfg(&pairs)
        };
        for (v, on) in [("1", true), ("true", true), ("0", false), ("false", false)] {
            assert_eq!(with(&[("KINDE_ORDERING", v)]).unwrap().ordering, on, "{v}");
        }
        assert!(!with(&[]).unwrap().ordering);
        assert_eq!(
            with(&[("KINDE_PARK_AFTER", "3")]).unwrap().park_after,
            Some(3)
        );
        assert_eq!(with(&[]).unwrap().park_after, None);
        assert_eq!(
            with(&[("METRICS_BIND", "127.0.0.1:9100")])
                .unwrap()
                .metrics_bind,
            Some("127.0.0.1:9100".parse().unwrap())
        );
        for (name, bad) in [
            ("KINDE_ORDERING", "yes"),
            ("KINDE_ORDERING", "2"),
            ("KINDE_PARK_AFTER", "0"),
            ("KINDE_PARK_AFTER", "-1"),
            ("KINDE_PARK_AFTER", "three"),
            ("METRICS_BIND", "localhost"),
        ] {
            let err = with(&[(name, bad)]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{name} is invalid")), "{err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn defaults() {
        let c = cfg(&[("KINDE_DOMAIN", "https://acme.kinde.com")]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:3000");
        assert_eq!(c.webhook_path, "/kinde/webhook");
        assert_eq!(c.redis_url, None);
        assert_eq!(c.store_path, None);
        assert!(store(&c).unwrap().is_none(), "the memory store");
    }

    #[test]
    fn kinde_store_path_opens_the_file_store_one_process_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kinde.redb");
        let path_str = path.to_str().unwrap();
        let c = cfg(&[
            ("KINDE_DOMAIN", "acme.kinde.com"),
            ("KINDE_STORE_PATH", path_str),
        ])
        .unwrap();
        assert_eq!(c.store_path.as_deref(), Some(path.as_path()));
        let held = store(&c).unwrap().expect("the file store");
        assert!(path.exists());
        // A second store on the same file (another receiver) is refused, naming the variable.
        let err = store(&c).err().expect("refused").to_string();
        assert!(err.starts_with("KINDE_STORE_PATH: "), "{err}");
        assert!(
            err.contains(path_str) && err.contains("already open"),
            "{err}"
        );
        assert!(!err.contains('\n'), "{err}");
        drop(held);
        assert!(
            store(&c).unwrap().is_some(),
            "free again once the first is gone"
        );
        // A directory that does not exist.
        let c = cfg(&[
            ("KINDE_DOMAIN", "acme.kinde.com"),
            ("KINDE_STORE_PATH", "/nonexistent-dir/kinde.redb"),
        ])
        .unwrap();
        let err = store(&c).err().expect("refused").to_string();
        assert!(err.starts_with("KINDE_STORE_PATH: "), "{err}");
    }

    #[test]
    fn kinde_store_path_with_redis_url_names_both() {
        let err = cfg(&[
            ("KINDE_DOMAIN", "acme.kinde.com"),
            ("KINDE_STORE_PATH", "/var/lib/kinde.redb"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("KINDE_STORE_PATH") && err.contains("REDIS_URL"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        // Empty counts as unset.
        let c = cfg(&[
            ("KINDE_DOMAIN", "acme.kinde.com"),
            ("KINDE_STORE_PATH", " "),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .unwrap();
        assert_eq!(c.store_path, None);
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
                    ("WEBHOOK_PATH", "/health"),
                ],
                "WEBHOOK_PATH is invalid",
            ),
            (
                &[
                    ("KINDE_DOMAIN", "acme.kinde.com"),
                    ("WEBHOOK_PATH", "/hooks/{id}"),
                ],
                "WEBHOOK_PATH is invalid",
            ),
            (
                &[("KINDE_DOMAIN", "acme.kinde.com"), ("WEBHOOK_PATH", "/a b")],
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
