//! The Kubernetes API target of the autoscaler's kubernetes actuator:
//! `[autoscaler.kubernetes]`, else the in-cluster service account. The
//! binary reads the environment and the files; the scheduler crate only
//! talks HTTP.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_scheduler::autoscaler::{
    AutoscalerSettings, KubeClient, KubeTarget, KubernetesConfig, TokenSource,
};
use queue_core::autoscale::Actuator;

use crate::exit::UsageError;

/// Where a pod's service account is mounted.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// A token file is read again after this (bound tokens rotate hourly).
const TOKEN_REREAD: Duration = Duration::from_secs(60);

/// A client when one is configured or the process runs in a cluster;
/// an error when a config-file policy needs one and there is none.
pub(crate) fn client(
    config: &KubernetesConfig,
    settings: &AutoscalerSettings,
) -> Result<Option<KubeClient>, UsageError> {
    let in_cluster = std::env::var("KUBERNETES_SERVICE_HOST")
        .ok()
        .zip(std::env::var("KUBERNETES_SERVICE_PORT").ok());
    let api_url = config.api_url.clone().or_else(|| {
        in_cluster
            .as_ref()
            .map(|(host, port)| format!("https://{host}:{port}"))
    });
    let needed = settings
        .queues
        .values()
        .chain(settings.default.iter())
        .any(|(_, p)| p.actuator == Actuator::Kubernetes);
    let Some(api_url) = api_url else {
        if needed {
            return Err(UsageError(
                "a policy uses the kubernetes actuator, but this is not a pod and \
                 [autoscaler.kubernetes] api_url is not set"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let account = Path::new(SERVICE_ACCOUNT);
    let token_file = config.token_file.clone().or_else(|| {
        in_cluster
            .as_ref()
            .map(|_| account.join("token"))
            .filter(|p| p.exists())
    });
    let ca_file = config.ca_file.clone().or_else(|| {
        in_cluster
            .as_ref()
            .map(|_| account.join("ca.crt"))
            .filter(|p| p.exists())
    });
    let ca_pem = ca_file
        .map(|f| {
            std::fs::read(&f).map_err(|e| {
                UsageError(format!(
                    "[autoscaler.kubernetes] ca_file {}: {e}",
                    f.display()
                ))
            })
        })
        .transpose()?;
    let namespace = config
        .namespace
        .clone()
        .or_else(|| std::fs::read_to_string(account.join("namespace")).ok())
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|| "default".into());
    let token = token_file.map(|path| Arc::new(TokenFile::new(path)) as Arc<dyn TokenSource>);
    KubeClient::new(KubeTarget {
        api_url,
        namespace,
        token,
        ca_pem,
    })
    .map(Some)
    .map_err(|e| UsageError(e.to_string()))
}

/// A token read from a file, re-read every [`TOKEN_REREAD`].
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<(Instant, String)>>,
}

impl TokenFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            cached: Mutex::new(None),
        }
    }
}

impl TokenSource for TokenFile {
    fn token(&self) -> Option<String> {
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, token)) = cached.as_ref() {
            if at.elapsed() < TOKEN_REREAD {
                return Some(token.clone());
            }
        }
        let token = std::fs::read_to_string(&self.path).ok()?.trim().to_string();
        *cached = Some((Instant::now(), token.clone()));
        Some(token)
    }
}
