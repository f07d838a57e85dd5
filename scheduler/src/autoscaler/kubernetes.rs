//! The kubernetes actuator: reads and sets a Deployment's replicas through
//! its scale subresource (`/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`),
//! as HPA does. A change is a JSON merge patch that carries the
//! `resourceVersion` just read, so a concurrent writer (another
//! autoscaler that still thinks it leads, a person with `kubectl scale`)
//! makes it fail with 409 instead of being overwritten; the next tick
//! reads again.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

/// Where a bearer token comes from (a service-account token rotates; the
/// binary re-reads its file).
pub trait TokenSource: Send + Sync + fmt::Debug {
    /// The token to send now, if any.
    fn token(&self) -> Option<String>;
}

/// How to reach the Kubernetes API.
#[derive(Debug, Clone)]
pub struct KubeTarget {
    /// The API server's base URL, e.g. `https://10.0.0.1:443`.
    pub api_url: String,
    /// The namespace of Deployments whose policy names none.
    pub namespace: String,
    /// The bearer token, when the server needs one.
    pub token: Option<Arc<dyn TokenSource>>,
    /// The API server's CA certificates (PEM); none: the web's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// What went wrong talking to Kubernetes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    /// The target is unusable (a bad URL or CA file).
    #[error("kubernetes settings: {0}")]
    Config(String),
    /// The request did not get an answer.
    #[error("kubernetes API unreachable: {0}")]
    Transport(String),
    /// Someone changed the scale between our read and our write.
    #[error("the deployment's scale changed meanwhile; retrying at the next tick")]
    Conflict,
    /// Any other refusal (404 no such Deployment, 403 missing RBAC, ...).
    #[error("kubernetes API answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// A Deployment's scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    /// Replicas asked for (`spec.replicas`).
    pub desired: u32,
    /// Replicas there are (`status.replicas`).
    pub current: u32,
    /// For the optimistic-concurrency precondition of a change.
    pub resource_version: Option<String>,
}

#[derive(Deserialize)]
struct ScaleJson {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
    #[serde(default)]
    status: Status,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Meta {
    resource_version: Option<String>,
}

#[derive(Deserialize, Default)]
struct Spec {
    #[serde(default)]
    replicas: u32,
}

#[derive(Deserialize, Default)]
struct Status {
    #[serde(default)]
    replicas: u32,
}

/// A client of the scale subresource.
#[derive(Debug, Clone)]
pub struct KubeClient {
    http: reqwest::Client,
    target: KubeTarget,
}

impl KubeClient {
    /// A client for `target`.
    pub fn new(target: KubeTarget) -> Result<Self, KubeError> {
        let mut roots = rustls::RootCertStore::empty();
        match &target.ca_pem {
            Some(pem) => {
                use rustls::pki_types::CertificateDer;
                use rustls::pki_types::pem::PemObject;
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| KubeError::Config(format!("CA file: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| KubeError::Config(format!("CA file: {e}")))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| KubeError::Config(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| KubeError::Config(e.to_string()))?;
        Ok(Self { http, target })
    }

    /// The namespace used when a policy names none.
    pub fn default_namespace(&self) -> &str {
        &self.target.namespace
    }

    fn url(&self, namespace: &str, deployment: &str) -> String {
        format!(
            "{}/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}/scale",
            self.target.api_url.trim_end_matches('/')
        )
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.target.token.as_ref().and_then(|t| t.token()) {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// Reads the Deployment's scale.
    pub async fn get_scale(&self, namespace: &str, deployment: &str) -> Result<Scale, KubeError> {
        let res = self
            .authorize(self.http.get(self.url(namespace, deployment)))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| KubeError::Transport(e.to_string()))?;
        let body = answer(res).await?;
        let scale: ScaleJson = serde_json::from_str(&body).map_err(|e| KubeError::Status {
            status: 200,
            body: format!("not a Scale: {e}"),
        })?;
        Ok(Scale {
            desired: scale.spec.replicas,
            current: scale.status.replicas,
            resource_version: scale.metadata.resource_version,
        })
    }

    /// Sets the Deployment's replicas, on condition that its scale is
    /// still at `resource_version`.
    pub async fn set_replicas(
        &self,
        namespace: &str,
        deployment: &str,
        replicas: u32,
        resource_version: Option<&str>,
    ) -> Result<(), KubeError> {
        let mut patch = serde_json::json!({ "spec": { "replicas": replicas } });
        if let Some(v) = resource_version {
            patch["metadata"] = serde_json::json!({ "resourceVersion": v });
        }
        let res = self
            .authorize(self.http.patch(self.url(namespace, deployment)))
            .header("content-type", "application/merge-patch+json")
            .header("accept", "application/json")
            .body(patch.to_string())
            .send()
            .await
            .map_err(|e| KubeError::Transport(e.to_string()))?;
        answer(res).await.map(|_| ())
    }
}

async fn answer(res: reqwest::Response) -> Result<String, KubeError> {
    let status = res.status().as_u16();
    let body = res
        .text()
        .await
        .map_err(|e| KubeError::Transport(e.to_string()))?;
    match status {
        200..=299 => Ok(body),
        409 => Err(KubeError::Conflict),
        _ => Err(KubeError::Status {
            status,
            body: body.chars().take(300).collect(),
        }),
    }
}
