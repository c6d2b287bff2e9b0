//! The engine of apiconform, a contract conformance test harness for HTTP JSON APIs.
//!
//! A run flows like this:
//! 1. [`suite::Suite`] loads a TOML suite (settings, schema paths, `[[check]]` tables) and
//!    [`schemas::SchemaSet`] compiles its JSON Schemas once.
//! 2. [`checks::build`] turns each `[[check]]` into a [`checks::Check`] of its kind.
//! 3. [`runner::Plan`] holds them with a [`context::RunContext`]: the one [`client::HttpClient`]
//!    (credentials, pacing, budgets, retries, masking), the run's job and burst. The burst
//!    against an `http://` target goes on [`lanes`], one HTTP/1.1 connection each. The
//!    `webhooks::*` checks share one [`webhooks::WebhookReport`]: the run listens for the
//!    deliveries of a job it creates ([`webhooks::Receiver`]).
//! 4. Each check runs as a libtest trial; every exchange, wait and outcome lands in the
//!    [`record::RunRecord`], already masked by [`secrets::Secrets`], which tells each as an
//!    [`events::RunEvent`] to the run's sinks as it happens (the `--format json` stream).
//! 5. [`report::build`] turns the record into one [`report::Report`], which each format
//!    (console summary, JUnit, JSON, Markdown) renders; none reads the record itself. The
//!    report files are a sink too ([`report::ReportFiles`]): the run's end writes them.
//!
//! A suite's schemas may come from an OpenAPI document ([`openapi`]), which can also make a
//! whole suite by itself (`--openapi`). Checks return [`finding::Finding`]s; fields a response
//! carries that its schema does not declare are drift, kept apart from them.
//!
//! The reference server the engine is proven against lives in another crate and shares no
//! code with it.

mod burst;
pub mod checks;
pub mod client;
pub mod context;
pub mod error;
pub mod events;
pub mod finding;
mod hints;
pub mod interrupt;
pub mod jobs;
pub mod lanes;
mod links;
pub mod openapi;
mod oracle;
mod pacing;
mod progress;
pub mod record;
pub mod report;
pub mod runner;
pub mod schemas;
pub mod secrets;
pub mod suite;
pub mod tls;
mod video;
pub mod webhooks;

/// The tool's name, as reports and the User-Agent give it.
pub const TOOL_NAME: &str = "apiconform";
/// The tool's version (every crate of the workspace shares it).
pub const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");
