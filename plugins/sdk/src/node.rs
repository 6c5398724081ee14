//! The node this plugin runs on (always available, no grant).

pub use crate::bindings::remedy::plugin::node::name;
