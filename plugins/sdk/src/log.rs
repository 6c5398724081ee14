//! Lines for the run's record, shown by `remedy runs show`.
//!
//! ```no_run
//! use remedy_sdk::log;
//!
//! log::info("3 candidates below /var/log");
//! log::warn("/var/log/app.log.1 is held open; skipped");
//! ```

pub use crate::bindings::remedy::plugin::log::Level;
use crate::bindings::remedy::plugin::log::log;

pub fn debug(message: &str) {
    log(Level::Debug, message);
}
pub fn info(message: &str) {
    log(Level::Info, message);
}
pub fn warn(message: &str) {
    log(Level::Warn, message);
}
pub fn error(message: &str) {
    log(Level::Error, message);
}
