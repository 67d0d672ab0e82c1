//! ews-probe: tells whether a mailbox can be used over Exchange Web Services, feature by
//! feature, and why not. See ARCHITECTURE.md for the map of the pipeline.

pub mod ews;
pub mod target;
pub mod util;
pub mod transport;
pub mod auth;
pub mod evidence;
pub mod probe;
pub mod diagnose;
pub mod report;
pub mod app;
pub mod cli;
pub mod session;
