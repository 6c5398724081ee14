//! Tell the host a parameter took its value from elsewhere than the params
//! passed in (always available, no grant); see `Incident::label_or_param`.

pub use crate::bindings::remedy::plugin::params::used;
