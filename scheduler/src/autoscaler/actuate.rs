//! The kubernetes actuator's side of a tick: read each Deployment's scale
//! before deciding, set its replicas after the fenced write succeeded.

use queue_core::autoscale::{Actuator, Policy};
use tracing::info;

use super::Autoscaler;
use super::kubernetes::Scale;
use super::memory::Leading;
use super::tick::Effective;

fn namespace<'a>(a: &'a Autoscaler, policy: &'a Policy) -> Option<&'a str> {
    policy
        .namespace
        .as_deref()
        .or_else(|| a.kube.as_ref().map(|k| k.default_namespace()))
}

pub(super) async fn read_scale(a: &Autoscaler, policy: &Policy) -> Option<Scale> {
    let Some(kube) = &a.kube else {
        a.survived(
            "kubernetes",
            &"a policy uses the kubernetes actuator but no Kubernetes API is configured",
        );
        return None;
    };
    let (ns, deployment) = (namespace(a, policy)?, policy.deployment.as_deref()?);
    match kube.get_scale(ns, deployment).await {
        Ok(scale) => Some(scale),
        Err(e) => {
            a.survived("kubernetes", &e);
            None
        }
    }
}

/// Sets each kubernetes-actuated Deployment whose replicas differ from
/// the desired count just published.
pub(super) async fn actuate_kubernetes(a: &Autoscaler, lead: &Leading, policies: &Effective) {
    let Some(kube) = &a.kube else { return };
    for (queue, (_, policy, _)) in policies {
        if policy.actuator != Actuator::Kubernetes {
            continue;
        }
        let Some(control) = lead.queues.get(queue) else {
            continue;
        };
        let (Some(desired), Some(scale)) = (control.desired, &control.scale) else {
            continue;
        };
        let (Some(ns), Some(deployment)) = (namespace(a, policy), policy.deployment.as_deref())
        else {
            continue;
        };
        if scale.desired == desired {
            continue;
        }
        match kube
            .set_replicas(ns, deployment, desired, scale.resource_version.as_deref())
            .await
        {
            Ok(()) => {
                info!(queue = %queue, deployment, from = scale.desired, to = desired, "autoscaler: deployment scaled")
            }
            Err(e) => a.survived("kubernetes", &e),
        }
    }
}
