//! TLS to Redis beyond the public web roots: a private CA to trust and a
//! client certificate for servers that ask for one (`tls-auth-clients`).
//! The files are named in `[redis.tls]`; the binary reads them (libraries
//! read no files) and hands the PEM text to [`RedisSettings::with_tls`].

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::RedisSettings;
use crate::error::{QueueError, Result};

/// `[redis.tls]` as written in the config file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisTlsConfig {
    /// A CA certificate (PEM) to trust besides the public web roots, for
    /// servers with a private CA.
    pub ca_file: Option<PathBuf>,
    /// This client's certificate (PEM), for servers that check clients.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
}

impl RedisTlsConfig {
    /// Whether any file is named.
    pub fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// Checks the combination: a certificate needs its key and the other
    /// way round.
    pub fn check(&self) -> Result<()> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(QueueError::InvalidConfig(
                "[redis.tls] cert_file and key_file go together: give both or neither".into(),
            ));
        }
        Ok(())
    }
}

/// The PEM text of the files of [`RedisTlsConfig`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsPem {
    /// The CA certificate to trust.
    pub ca: Option<Vec<u8>>,
    /// The client certificate.
    pub cert: Option<Vec<u8>>,
    /// The client key.
    pub key: Option<Vec<u8>>,
}

// By hand so a private key never reaches a log.
impl fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPem")
            .field("ca", &self.ca.is_some())
            .field("cert", &self.cert.is_some())
            .field("key", &self.key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl RedisSettings {
    /// These settings with TLS material; the URL (or every cluster node)
    /// must be `rediss://`.
    pub fn with_tls(mut self, pem: TlsPem) -> Result<Self> {
        let plain = if self.cluster_nodes.is_empty() {
            !self.url.starts_with("rediss://")
        } else {
            self.cluster_nodes
                .iter()
                .any(|n| !n.starts_with("rediss://"))
        };
        if plain {
            return Err(QueueError::InvalidConfig(
                "[redis.tls] is set, so the Redis URL (and every cluster node) must be rediss://"
                    .into(),
            ));
        }
        self.tls = Some(pem);
        Ok(self)
    }

    /// The TLS material, if any.
    pub(crate) fn tls(&self) -> Option<&TlsPem> {
        self.tls.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_needs_its_certificate_and_tls_needs_rediss() {
        let half = RedisTlsConfig {
            cert_file: Some("c.pem".into()),
            ..RedisTlsConfig::default()
        };
        assert!(half.check().is_err());
        let plain = RedisSettings::for_url("redis://127.0.0.1:6379").unwrap();
        assert!(plain.with_tls(TlsPem::default()).is_err());
        let tls = RedisSettings::for_url("rediss://127.0.0.1:6380").unwrap();
        let pem = TlsPem {
            key: Some(b"-----BEGIN PRIVATE KEY-----secret".to_vec()),
            ..TlsPem::default()
        };
        let settings = tls.with_tls(pem).unwrap();
        assert!(!format!("{settings:?}").contains("secret"));
    }
}
