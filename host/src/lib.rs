//! remedy: alert-driven auto-remediation.
//!
//! An alert selects a plugin; the plugin, a sandboxed WebAssembly component,
//! looks at the world through read-only, grant-scoped interfaces and answers
//! with a plan; the [`executor`] checks every action against the operator's
//! grants and the object's identity, records it, and only then acts.
//!
//! Map of the crate: [`contract`] (the WIT types), [`engine`] (wasmtime),
//! [`caps`] (one module per capability), [`executor`] (the only code that
//! changes the world), [`node`] (which node a run is for), [`run`] (rounds of
//! plan and execute), [`store`] (SQLite), [`config`], [`alert`], [`builtin`],
//! [`cli`].

pub mod alert;
pub mod builtin;
pub mod caps;
pub mod cli;
pub mod config;
pub mod confirm;
pub mod contract;
pub mod engine;
pub mod executor;
pub mod json;
pub mod matcher;
pub mod node;
pub mod router;
pub mod run;
pub mod server;
pub mod store;
pub mod sys;
pub mod text;
pub mod world;
