//! apiconform: a contract conformance test harness for HTTP JSON APIs.
//!
//! This crate is the installed binary: its flags ([`flags`], as typed), their checked form
//! ([`config::RunConfig`]), and [`run()`], the one entry point that turns a configuration into
//! a run and its exit code, for the binary and the tests alike. The engine (suites, checks,
//! the client, the runner, reports) is the `apiconform-engine` crate, re-exported here module
//! by module; [`reference`] is the embedded reference server, an independent implementation
//! of the contract in the `apiconform-reference` crate.

pub use apiconform_engine::*;
pub use apiconform_reference as reference;

pub mod cli;
pub mod config;
mod config_file;
mod flags;
mod json_events;
mod run;
mod serve;
mod stdout;

pub use run::run;
