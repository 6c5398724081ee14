//! `k8s-rollback-deployment`, `k8s-restart-deployment` and
//! `k8s-delete-pod`: the grant checks (by name, before any request), the
//! object re-read and compared with what the plugin saw, and writes the API
//! server itself refuses if the object changed since (`resourceVersion`,
//! delete preconditions).

use super::client::{KubeApi, KubeError};
use super::cluster::{REVISION, TEMPLATE_HASH, controlled_by, revision};
use super::read::granted_deployment;
use super::{KubeGrant, KubeRight};
use crate::caps::Refusal;
use crate::contract::{
    ApiError, K8sDeletePod, K8sDeploymentRef, K8sRestartDeployment, K8sRollbackDeployment,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Patch;
use serde_json::json;
use std::collections::BTreeMap;

/// A contract action that Kubernetes carries out.
pub enum KubeAction<'a> {
    Rollback(&'a K8sRollbackDeployment),
    Restart(&'a K8sRestartDeployment),
    DeletePod(&'a K8sDeletePod),
}

/// Annotations a rollback keeps from the deployment rather than taking
/// from the replica set, as `kubectl rollout undo` does.
const KEPT_ANNOTATIONS: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Why `action` is outside `grant`, if it is. Only names are compared, so
/// nothing is requested for an action the grant does not cover.
pub(super) fn check_grant(action: &KubeAction<'_>, grant: &KubeGrant) -> Result<(), String> {
    match action {
        KubeAction::Rollback(a) => {
            grant.check_right(KubeRight::Rollback)?;
            grant.check_name(&a.deployment.namespace, &a.deployment.name)
        }
        KubeAction::Restart(a) => {
            grant.check_right(KubeRight::Restart)?;
            grant.check_name(&a.deployment.namespace, &a.deployment.name)
        }
        KubeAction::DeletePod(a) => {
            grant.check_right(KubeRight::DeletePod)?;
            grant.check_name(&a.namespace, &a.deployment)
        }
    }
}

/// Re-read the object and, unless `dry_run`, write.
pub(super) fn perform(
    kube: &KubeApi,
    action: &KubeAction<'_>,
    grant: &KubeGrant,
    dry_run: bool,
) -> Result<String, Refusal> {
    match action {
        KubeAction::Rollback(a) => rollback(kube, a, grant, dry_run),
        KubeAction::Restart(a) => restart(kube, a, grant, dry_run),
        KubeAction::DeletePod(a) => delete_pod(kube, a, grant, dry_run),
    }
}

fn rollback(
    kube: &KubeApi,
    action: &K8sRollbackDeployment,
    grant: &KubeGrant,
    dry_run: bool,
) -> Result<String, Refusal> {
    let planned = &action.deployment;
    let deployment = as_planned(kube, grant, planned)?;
    let what = format!("deployment {}/{}", planned.namespace, planned.name);
    let sets = kube.replica_sets(&deployment).map_err(failed)?;
    let Some(target) = sets
        .iter()
        .find(|rs| rs.metadata.uid.as_deref() == Some(action.to_uid.as_str()))
    else {
        return Err(Refusal::Stale(format!(
            "{what} no longer owns replica set {} (revision {})",
            action.to_uid, action.to_revision
        )));
    };
    let target_name = target.metadata.name.clone().unwrap_or_default();
    if revision(&target.metadata) != action.to_revision {
        return Err(Refusal::Stale(format!(
            "replica set {target_name} is at revision {} now, not {}",
            revision(&target.metadata),
            action.to_revision
        )));
    }
    if action.to_revision == planned.revision {
        return Err(Refusal::Failed(format!(
            "{what} is already at revision {}",
            planned.revision
        )));
    }
    let Some(mut template) = target.spec.as_ref().and_then(|s| s.template.clone()) else {
        return Err(Refusal::Failed(format!(
            "replica set {target_name} has no pod template"
        )));
    };
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(TEMPLATE_HASH);
    }
    let done = format!(
        "{what} from revision {} to revision {} (replica set {target_name})",
        planned.revision, action.to_revision
    );
    if dry_run {
        return Ok(format!("would roll back {done}"));
    }
    let annotations = rollback_annotations(
        deployment.metadata.annotations.as_ref(),
        target.metadata.annotations.as_ref(),
    );
    let patch = json!([
        { "op": "replace", "path": "/metadata/resourceVersion", "value": planned.resource_version },
        { "op": "replace", "path": "/spec/template", "value": template },
        // `add` sets the member whether or not the deployment has one yet.
        { "op": "add", "path": "/metadata/annotations", "value": annotations },
    ]);
    let patch: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|e| Refusal::Failed(format!("cannot build the rollback patch: {e}")))?;
    write(kube.patch_deployment(&planned.namespace, &planned.name, &Patch::Json(patch)), &what)?;
    Ok(format!("rolled back {done}"))
}

/// The deployment's annotations after a rollback to a replica set with `from`.
fn rollback_annotations(
    deployment: Option<&BTreeMap<String, String>>,
    from: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let kept = deployment
        .into_iter()
        .flatten()
        .filter(|(k, _)| KEPT_ANNOTATIONS.contains(&k.as_str()));
    let taken = from
        .into_iter()
        .flatten()
        .filter(|(k, _)| !KEPT_ANNOTATIONS.contains(&k.as_str()));
    kept.chain(taken)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn restart(
    kube: &KubeApi,
    action: &K8sRestartDeployment,
    grant: &KubeGrant,
    dry_run: bool,
) -> Result<String, Refusal> {
    let planned = &action.deployment;
    as_planned(kube, grant, planned)?;
    let what = format!("deployment {}/{}", planned.namespace, planned.name);
    if dry_run {
        return Ok(format!("would restart the pods of {what} through a rollout"));
    }
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = json!({
        "metadata": { "resourceVersion": planned.resource_version },
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: now } } } },
    });
    write(kube.patch_deployment(&planned.namespace, &planned.name, &Patch::Merge(patch)), &what)?;
    Ok(format!("restarted the pods of {what} through a rollout"))
}

fn delete_pod(
    kube: &KubeApi,
    action: &K8sDeletePod,
    grant: &KubeGrant,
    dry_run: bool,
) -> Result<String, Refusal> {
    let what = format!("pod {}/{}", action.namespace, action.name);
    let pod: Pod = kube
        .get(&action.namespace, &action.name)
        .map_err(|e| gone_or_failed(e, &what))?;
    let meta = &pod.metadata;
    if meta.uid.as_deref() != Some(action.uid.as_str()) {
        return Err(Refusal::Stale(format!(
            "{what} was replaced since the plan (uid {}, planned {})",
            meta.uid.as_deref().unwrap_or("none"),
            action.uid
        )));
    }
    if meta.resource_version.as_deref() != Some(action.resource_version.as_str()) {
        return Err(Refusal::Stale(format!(
            "{what} changed since the plan (resourceVersion {}, planned {})",
            meta.resource_version.as_deref().unwrap_or("none"),
            action.resource_version
        )));
    }
    if meta.deletion_timestamp.is_some() {
        return Err(Refusal::Stale(format!("{what} is already terminating")));
    }
    let deployment = granted_deployment(kube, grant, &action.namespace, &action.deployment)
        .map_err(refused)?;
    let owned = kube
        .replica_sets(&deployment)
        .map_err(failed)?
        .iter()
        .any(|rs| controlled_by(meta, &rs.metadata));
    if !owned {
        return Err(Refusal::Denied(format!(
            "{what} does not belong to deployment {}/{}",
            action.namespace, action.deployment
        )));
    }
    if dry_run {
        return Ok(format!("would delete {what} (uid {})", action.uid));
    }
    let deleted = kube.delete_pod(
        &action.namespace,
        &action.name,
        &action.uid,
        &action.resource_version,
    );
    write(deleted, &what)?;
    Ok(format!("deleted {what} (uid {})", action.uid))
}

/// The deployment as it is now, if it is still the one the plugin saw.
fn as_planned(
    kube: &KubeApi,
    grant: &KubeGrant,
    planned: &K8sDeploymentRef,
) -> Result<Deployment, Refusal> {
    let deployment = granted_deployment(kube, grant, &planned.namespace, &planned.name)
        .map_err(refused)?;
    let what = format!("deployment {}/{}", planned.namespace, planned.name);
    if deployment.metadata.uid.as_deref() != Some(planned.uid.as_str()) {
        return Err(Refusal::Stale(format!(
            "{what} was replaced since the plan (uid {}, planned {})",
            deployment.metadata.uid.as_deref().unwrap_or("none"),
            planned.uid
        )));
    }
    let now = revision(&deployment.metadata);
    if now != planned.revision {
        return Err(Refusal::Stale(format!(
            "{what} is at revision {now} now, not {} as planned",
            planned.revision
        )));
    }
    Ok(deployment)
}

/// A write's outcome: a conflict or a failed precondition means the object
/// changed since the plan, and nothing was written.
fn write<T>(result: Result<T, KubeError>, what: &str) -> Result<T, Refusal> {
    result.map_err(|e| match e.code() {
        Some(409) => Refusal::Stale(format!("{what} changed since the plan, nothing written: {e}")),
        _ => gone_or_failed(e, what),
    })
}

fn gone_or_failed(error: KubeError, what: &str) -> Refusal {
    match error.code() {
        Some(404) => Refusal::Stale(format!("{what} is gone: {error}")),
        _ => Refusal::Failed(error.to_string()),
    }
}

fn failed(error: KubeError) -> Refusal {
    Refusal::Failed(error.to_string())
}

/// A read refused on the way to acting: outside the grant is a denial,
/// gone is stale.
fn refused(error: ApiError) -> Refusal {
    match error {
        ApiError::Denied(why) => Refusal::Denied(why),
        ApiError::NotFound(why) => Refusal::Stale(why),
        ApiError::Invalid(why) | ApiError::Unavailable(why) | ApiError::Internal(why) => {
            Refusal::Failed(why)
        }
    }
}
