//! `nomad`, `nomad_namespaces` and `nomad_jobs`: what a plugin may read and
//! do in Nomad, and in which namespaces and jobs.

use crate::sys::patterns::Patterns;
use serde::{Deserialize, Serialize};

/// What a plugin may do with Nomad (`nomad = [...]`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NomadRight {
    /// Link the `nomad` read interface.
    Read,
    /// `nomad-restart-alloc`.
    Restart,
    /// `nomad-stop-alloc`.
    Stop,
    /// `nomad-evaluate-job`.
    Evaluate,
    /// `nomad-revert-job`.
    Revert,
    /// `nomad-client-gc`.
    Gc,
}

impl NomadRight {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            NomadRight::Read => "read",
            NomadRight::Restart => "restart",
            NomadRight::Stop => "stop",
            NomadRight::Evaluate => "evaluate",
            NomadRight::Revert => "revert",
            NomadRight::Gc => "gc",
        }
    }
}

/// The part of a plugin's grants that concerns Nomad.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NomadGrant {
    /// `read` links the `nomad` interface; `restart`, `stop`, `evaluate`,
    /// `revert` and `gc` allow those actions.
    #[serde(default, rename = "nomad")]
    pub rights: Vec<NomadRight>,
    /// Namespaces the plugin may see and act in; none means `default` only.
    #[serde(default, rename = "nomad_namespaces")]
    pub namespaces: Vec<String>,
    /// Anchored regexes of job ids the plugin may see and act on; none means all.
    #[serde(default, rename = "nomad_jobs")]
    pub jobs: Patterns,
}

impl NomadGrant {
    pub(super) fn problems(&self) -> Vec<String> {
        if self.namespaces.iter().any(String::is_empty) {
            vec!["grants.nomad_namespaces names an empty namespace".into()]
        } else {
            Vec::new()
        }
    }

    pub fn namespaces(&self) -> Vec<String> {
        if self.namespaces.is_empty() {
            vec!["default".to_string()]
        } else {
            self.namespaces.clone()
        }
    }

    pub(super) fn allows(&self, namespace: &str, job: &str) -> bool {
        self.namespaces().iter().any(|n| n == namespace) && self.allows_job(job)
    }

    /// No `nomad_jobs` means every job.
    pub(super) fn allows_job(&self, job: &str) -> bool {
        self.jobs.is_empty() || self.jobs.matches(job)
    }

    pub(super) fn check_namespace(&self, namespace: &str) -> Result<(), String> {
        if self.namespaces().iter().any(|n| n == namespace) {
            Ok(())
        } else {
            Err(format!(
                "namespace {namespace:?} is not granted (nomad_namespaces = {:?})",
                self.namespaces()
            ))
        }
    }

    pub(super) fn check_job(&self, namespace: &str, job: &str) -> Result<(), String> {
        self.check_namespace(namespace)?;
        if self.allows_job(job) {
            Ok(())
        } else {
            Err(format!(
                "job {job:?} is not granted (nomad_jobs = {:?})",
                self.jobs.sources()
            ))
        }
    }

    pub(super) fn check_right(&self, right: NomadRight) -> Result<(), String> {
        if self.rights.contains(&right) {
            Ok(())
        } else {
            Err(format!(
                "no Nomad `{}` grant; the operator adds it to nomad = [...]",
                right.as_str()
            ))
        }
    }
}
