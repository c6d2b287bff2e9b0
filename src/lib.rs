//! apiconform: a contract conformance test harness for HTTP JSON APIs.
//!
//! A suite ([`suite`]) instantiates check kinds ([`checks`]) that talk to the target through
//! one client ([`client`]); the runner ([`runner`]) records everything in a [`record::RunRecord`]
//! and renders it as libtest output. [`reference`] is the embedded reference server.

pub mod burst;
pub mod checks;
pub mod cli;
pub mod client;
pub mod context;
pub mod error;
pub mod hints;
pub mod jobs;
pub mod links;
pub mod oracle;
pub mod pacing;
pub mod record;
pub mod reference;
pub mod report;
pub mod runner;
pub mod schemas;
pub mod secrets;
pub mod suite;
