//! The node this plugin runs on (always available, no grant).
//!
//! ```no_run
//! use remedy_sdk::{Incident, node};
//!
//! /// Whether the alert is about the node this plugin runs on.
//! fn about_this_node(incident: &Incident) -> bool {
//!     incident.label("node") == Some(node::name().as_str())
//! }
//! ```

pub use crate::bindings::remedy::plugin::node::name;
