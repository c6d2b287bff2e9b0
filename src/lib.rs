//! apiconform: a contract conformance test harness for HTTP JSON APIs.
//!
//! This crate is the installed binary and its command line ([`cli`]). The engine (suites,
//! checks, the client, the runner, reports) is the `apiconform-engine` crate, re-exported
//! here module by module; [`reference`] is the embedded reference server, an independent
//! implementation of the contract in the `apiconform-reference` crate.

pub use apiconform_engine::*;
pub use apiconform_reference as reference;

pub mod cli;
