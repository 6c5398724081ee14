//! Write [remedy](https://github.com/remedy-sh/remedy) plugins in ordinary Rust.
//!
//! A plugin looks at the world through read-only host interfaces ([`fs`],
//! [`proc`], [`netns`], [`kmod`], [`nomad`], [`docker`], [`kube`], [`http`], [`prometheus`],
//! [`grants`], [`node`], [`params`], [`log`]; each module shows an example) and
//! answers each incident with a [`Plan`]: the checks it
//! made and the actions it proposes. remedy, not the plugin, checks every
//! action against the operator's grants and executes it, so a plugin cannot
//! change anything by itself, and a dry-run shows exactly what would happen.
//!
//! Implement [`Plugin`] and call [`export_plugin!`] once:
//!
//! ```
//! use remedy_sdk::{Check, Error, Incident, Plan, Plugin, PluginInfo};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("hello", "0.1.0", "Says what it would do.")
//!             .param("greeting", "What to say.", Some("hi"))
//!     }
//!
//!     fn plan(incident: Incident) -> Result<Plan, Error> {
//!         let greeting = incident.param("greeting").unwrap_or("hi");
//!         let instance = incident.label("instance").ok_or_else(|| {
//!             Error::Invalid("the alert has no `instance` label".into())
//!         })?;
//!         Ok(Plan::new(format!("{greeting}, {instance}"))
//!             .check(Check::pass("instance", instance)))
//!     }
//! }
//!
//! remedy_sdk::export_plugin!(Hello);
//!
//! // Plugins are plain Rust, so their planning logic is testable natively:
//! let incident = Incident::for_test(&[("instance", "node-1")], &[("greeting", "hello")]);
//! let plan = Hello::plan(incident).unwrap();
//! assert_eq!(plan.summary, "hello, node-1");
//! assert!(plan.actions.is_empty());
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`; the `.wasm` file
//! is the plugin. Only the host interfaces the code actually calls end up as
//! imports of the component, so a plugin needs grants for just those.

// The generated code names the SDK by its crate path, also inside the SDK itself.
extern crate self as remedy_sdk;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_world_plugin",
        default_bindings_module: "::remedy_sdk::bindings",
        runtime_path: "::remedy_sdk::__wit_bindgen::rt",
        additional_derives: [PartialEq, Clone],
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use bindings::remedy::plugin::types::{
    Action, ActionResult, ActionStatus, Alert, AlertStatus, Check, CheckStatus, DockerPrune,
    DockerPruneTarget, DockerRestartContainer, Error, FileIdentity, Incident, K8sDeletePod,
    K8sDeploymentRef, K8sRestartDeployment, K8sRollbackDeployment, KmodLoad, NbdDisconnect,
    NetnsDelete, NomadAllocRef, NomadClientGc, NomadEvaluateJob, NomadRestartAlloc, NomadRevertJob,
    NomadStopAlloc, ParamInfo, PastAction, Plan, PluginInfo, ProcessSignal, RemovePath,
};

pub mod docker;
pub mod fs;
pub mod grants;
pub mod http;
pub mod kmod;
pub mod kube;
pub mod log;
pub mod netns;
pub mod node;
pub mod nomad;
pub mod params;
pub mod proc;
pub mod prometheus;
pub mod watch;

mod helpers;
pub use helpers::{parse_count, parse_duration, parse_percent};
/// A byte count as remedy shows it everywhere: `1.5 KiB`, `3.0 GiB`.
pub use remedy_contract::format_bytes;

/// A remedy plugin. Both functions are called by the host, each in a fresh
/// instance with a deadline and a memory cap.
pub trait Plugin {
    /// Name, version, parameters and the action kinds this plugin may propose.
    fn describe() -> PluginInfo;

    /// Look at the world and propose what to do about `incident`.
    fn plan(incident: Incident) -> Result<Plan, Error>;
}

/// Export a [`Plugin`] implementation as the component's `describe` and `plan`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        #[doc(hidden)]
        pub struct __RemedyExport;

        impl $crate::bindings::Guest for __RemedyExport {
            fn describe() -> $crate::PluginInfo {
                <$plugin as $crate::Plugin>::describe()
            }
            fn plan(incident: $crate::Incident) -> ::core::result::Result<$crate::Plan, $crate::Error> {
                <$plugin as $crate::Plugin>::plan(incident)
            }
        }

        $crate::bindings::__export_world_plugin!(__RemedyExport with_types_in $crate::bindings);
    };
}
