//! What the operator's grants allow this plugin (always available, no
//! grant): plan within them, since one denied action stops the whole plan.
//!
//! ```no_run
//! use remedy_sdk::{Check, grants};
//!
//! /// Skip an optional tier the operator did not grant, saying so.
//! fn docker_tier() -> Option<Check> {
//!     (!grants::readable("docker") || !grants::allows("docker-prune"))
//!         .then(|| Check::skipped("docker", "not granted: docker = [\"read\", \"prune\"]"))
//! }
//! ```

pub use crate::bindings::remedy::plugin::grants::{allowed_actions, readable};

/// Whether the grants allow actions of `kind` (`nomad-client-gc`, ...) at all.
pub fn allows(kind: &str) -> bool {
    allowed_actions().iter().any(|allowed| allowed == kind)
}

/// The kinds among `actions` the grants do not allow, each named once. A
/// plan holding any of them is denied as a whole, so a plugin escalates
/// instead, naming them.
pub fn not_allowed(actions: &[crate::Action]) -> Vec<&'static str> {
    let allowed = allowed_actions();
    let mut missing: Vec<&'static str> = Vec::new();
    for kind in actions.iter().map(crate::Action::kind) {
        if !allowed.iter().any(|a| a == kind) && !missing.contains(&kind) {
            missing.push(kind);
        }
    }
    missing
}
