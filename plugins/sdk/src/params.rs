//! Tell the host a parameter took its value from elsewhere than the params
//! passed in (always available, no grant); see `Incident::label_or_param`.
//!
//! ```no_run
//! use remedy_sdk::params;
//!
//! // The mount point came from the alert's `mountpoint` label, not the config:
//! // say so, and the run's record shows the value used.
//! params::used("mountpoint", "/data");
//! ```

pub use crate::bindings::remedy::plugin::params::used;
