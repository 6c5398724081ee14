//! HTTP GET and HEAD of the URLs the operator granted (`http_urls`), and a
//! Prometheus scrape of a `/metrics` page. The host follows no redirect and
//! bounds the time and the body.

pub use crate::bindings::remedy::plugin::http::{Header, Response, Sample, get, head, scrape};
