//! Settings from the environment, and where the signing keys come from.

use std::net::SocketAddr;

/// What the app is told by its environment.
#[derive(Debug)]
pub struct Config {
    /// `BIND` (default `127.0.0.1:3000`).
    pub bind: SocketAddr,
    /// `DATABASE_URL` (default `sqlite://user-sync.db`, created if missing).
    pub database_url: String,
    /// `KINDE_DOMAIN`: `<tenant>.kinde.com`, a custom domain, or a local issuer's
    /// `http://127.0.0.1:PORT`. Unset: a local issuer in process (feature `local-issuer`).
    pub kinde_domain: Option<String>,
    /// `DEV_KEYS_DIR` (default `user-sync-keys`): where the local issuer writes its key.
    #[cfg(feature = "local-issuer")]
    pub dev_keys_dir: std::path::PathBuf,
}

impl Config {
    /// Reads the environment; the error is one line for the operator.
    pub fn from_env() -> Result<Self, String> {
        let bind = var("BIND").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
        let bind: SocketAddr = bind
            .parse()
            .map_err(|_| format!("BIND={bind} is not an address like 127.0.0.1:3000"))?;
        let kinde_domain = var("KINDE_DOMAIN");
        if kinde_domain.is_none() && !bind.ip().is_loopback() {
            // Without KINDE_DOMAIN the keys are local ones: never trust them beyond loopback.
            return Err(format!(
                "KINDE_DOMAIN is required to listen on {bind} (beyond loopback): set it to your Kinde domain"
            ));
        }
        Ok(Self {
            bind,
            database_url: var("DATABASE_URL").unwrap_or_else(|| "sqlite://user-sync.db".to_owned()),
            kinde_domain,
            #[cfg(feature = "local-issuer")]
            dev_keys_dir: var("DEV_KEYS_DIR")
                .map_or_else(|| "user-sync-keys".into(), std::path::PathBuf::from),
        })
    }
}

/// A set, non-empty variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The issuer whose keys the receiver trusts; a local one runs for as long as this lives.
pub enum Issuer {
    /// `KINDE_DOMAIN`.
    Kinde(String),
    /// A local issuer in this process (no `KINDE_DOMAIN`).
    #[cfg(feature = "local-issuer")]
    Local(crate::local_issuer::LocalIssuer),
}

impl Issuer {
    /// `KINDE_DOMAIN`, or a local issuer started now.
    pub async fn from_config(config: &Config) -> Result<Self, String> {
        match &config.kinde_domain {
            Some(domain) => Ok(Self::Kinde(domain.clone())),
            #[cfg(feature = "local-issuer")]
            None => crate::local_issuer::start(&config.dev_keys_dir)
                .await
                .map(Self::Local),
            #[cfg(not(feature = "local-issuer"))]
            None => Err(
                "KINDE_DOMAIN is required (e.g. KINDE_DOMAIN=acme.kinde.com); \
                 the `local-issuer` feature runs a local one without it"
                    .to_owned(),
            ),
        }
    }

    /// The issuer to give `Webhooks::builder().issuer(..)`.
    pub fn url(&self) -> &str {
        match self {
            Self::Kinde(domain) => domain,
            #[cfg(feature = "local-issuer")]
            Self::Local(local) => &local.url,
        }
    }
}
