//! ews-probe: tells whether a mailbox can be used over Exchange Web Services, feature by
//! feature, and why not. See ARCHITECTURE.md for the map of the pipeline.

pub mod app;
pub mod auth;
pub mod cli;
pub mod diagnose;
pub mod discover;
pub mod evidence;
pub mod ews;
pub mod fleet;
pub mod probe;
pub mod report;
pub mod session;
pub mod switch;
pub mod target;
pub mod transport;
pub mod util;
