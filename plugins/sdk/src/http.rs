//! HTTP GET and HEAD of the URLs the operator granted (`http_urls`), and a
//! Prometheus scrape of a `/metrics` page. The host follows no redirect and
//! bounds the time and the body.
//!
//! ```no_run
//! use remedy_sdk::{Check, http};
//!
//! /// A health endpoint as a check: 200 passes, anything else fails.
//! fn health(url: &str) -> Check {
//!     match http::get(url, 4096) {
//!         Ok(answer) if answer.status == 200 => Check::pass(url, "status 200"),
//!         Ok(answer) => Check::fail(url, format!("status {}", answer.status)),
//!         Err(error) => Check::fail(url, error.describe()),
//!     }
//! }
//! ```

pub use crate::bindings::remedy::plugin::http::{Header, Response, Sample, get, head, scrape};
