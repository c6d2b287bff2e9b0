//! The suite file ([`Suite`]): which checks run, with which paths, headers, schemas and levels.
//!
//! A suite is TOML. Everything vendor-specific lives here, not in Rust: another vendor with
//! other paths, header names or error shapes is reached with another suite file and schemas.
//! The default suite and its schemas are built into the binary (see [`BUNDLED_SUITE`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde::Deserialize;

use crate::error::{config_error, AppError};
use crate::record::Level;

/// The default suite, built in so an installed binary works from any directory.
pub const BUNDLED_SUITE: &str = include_str!("../../../suites/default.toml");
/// Where the bundled suite lives in the source tree; its schema paths are relative to it.
pub const BUNDLED_SUITE_PATH: &str = "suites/default.toml";
/// The bundled schemas, by their path relative to the bundled suite.
pub const BUNDLED_SCHEMAS: &[(&str, &str)] = &[
    (
        "../schemas/job.schema.json",
        include_str!("../../../schemas/job.schema.json"),
    ),
    (
        "../schemas/job-list.schema.json",
        include_str!("../../../schemas/job-list.schema.json"),
    ),
    (
        "../schemas/create-reply.schema.json",
        include_str!("../../../schemas/create-reply.schema.json"),
    ),
    (
        "../schemas/start-reply.schema.json",
        include_str!("../../../schemas/start-reply.schema.json"),
    ),
    (
        "../schemas/error.schema.json",
        include_str!("../../../schemas/error.schema.json"),
    ),
    (
        "../schemas/upload-reply.schema.json",
        include_str!("../../../schemas/upload-reply.schema.json"),
    ),
    (
        "../schemas/health.schema.json",
        include_str!("../../../schemas/health.schema.json"),
    ),
    (
        "../schemas/pricing.schema.json",
        include_str!("../../../schemas/pricing.schema.json"),
    ),
    (
        "../schemas/download.schema.json",
        include_str!("../../../schemas/download.schema.json"),
    ),
    (
        "../schemas/usage-summary.schema.json",
        include_str!("../../../schemas/usage-summary.schema.json"),
    ),
    (
        "../schemas/usage-events.schema.json",
        include_str!("../../../schemas/usage-events.schema.json"),
    ),
];

/// Placeholders a path template may use; anything else in braces is a configuration error.
pub const PLACEHOLDERS: &[&str] = &["job_id", "unknown_job_id", "malformed_id"];

/// Where a suite came from, for messages and for resolving its schema paths.
#[derive(Clone, Debug)]
pub enum SuiteSource {
    Bundled,
    File(PathBuf),
    /// Built by `apiconform --openapi` from the document at `origin` (a path or URL), whose
    /// text is the one file it names.
    Generated {
        origin: String,
        document: String,
    },
}

impl SuiteSource {
    /// How the suite is named in messages.
    pub fn display(&self) -> String {
        match self {
            SuiteSource::Bundled => format!("{BUNDLED_SUITE_PATH} (bundled)"),
            SuiteSource::File(path) => path.display().to_string(),
            SuiteSource::Generated { origin, .. } => format!("the suite generated from {origin}"),
        }
    }

    /// Read a file named relative to the suite (a schema).
    pub fn read_relative(&self, relative: &str) -> Result<String, AppError> {
        match self {
            SuiteSource::Bundled => BUNDLED_SCHEMAS
                .iter()
                .find(|(path, _)| *path == relative)
                .map(|(_, text)| text.to_string())
                .ok_or_else(|| {
                    config_error(format!(
                        "{}: no bundled schema at {relative}",
                        self.display()
                    ))
                }),
            SuiteSource::Generated { origin, document } if relative == origin => {
                Ok(document.clone())
            }
            SuiteSource::Generated { .. } => Err(config_error(format!(
                "{}: no file {relative}",
                self.display()
            ))),
            SuiteSource::File(suite_path) => {
                let dir = suite_path.parent().unwrap_or(Path::new("."));
                let path = dir.join(relative);
                std::fs::read_to_string(&path).map_err(|e| {
                    config_error(format!(
                        "{}: cannot read schema {}: {e}",
                        self.display(),
                        path.display()
                    ))
                })
            }
        }
    }
}

/// A loaded suite: settings shared by all checks, schema files, and check declarations.
#[derive(Clone, Debug)]
pub struct Suite {
    pub name: String,
    pub description: String,
    pub source: SuiteSource,
    pub settings: Settings,
    /// Schema name to path relative to the suite file.
    pub schemas: BTreeMap<String, String>,
    /// Schema name to a schema taken from the suite's OpenAPI document (`[openapi.schemas]`).
    pub openapi_schemas: BTreeMap<String, DerivedSchema>,
    pub checks: Vec<CheckDecl>,
}

/// A schema taken from an OpenAPI document, standalone, and where it came from.
#[derive(Clone, Debug)]
pub struct DerivedSchema {
    /// For messages: `getJob response 200 in openapi.json`.
    pub origin: String,
    pub schema: serde_json::Value,
}

/// `[openapi]`: a published document, and the schema names bound to its responses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOpenApi {
    /// Path relative to the suite file; never fetched.
    document: String,
    #[serde(default)]
    schemas: BTreeMap<String, crate::openapi::Selector>,
}

/// One `[[check]]` table: its common fields, and the kind's own parameters still as TOML.
#[derive(Clone, Debug)]
pub struct CheckDecl {
    pub name: String,
    pub level: Level,
    pub kind: String,
    pub params: toml::Table,
    /// Not run unless asked for (`--ignored`, `--include-ignored`): slow or costly checks.
    pub ignored: bool,
    /// Where the table starts in the suite file, for messages.
    pub line: usize,
    pub column: usize,
    /// Each key inside the table with its line and column, so a message about one (or about
    /// its value) points at its line.
    pub keys: Vec<(KeyAt, usize, usize)>,
}

impl CheckDecl {
    /// The part of the name before `::` (for example `auth`).
    pub fn area(&self) -> &str {
        self.name.split("::").next().unwrap_or(&self.name)
    }
}

/// Settings shared by all checks. Every default is the reading of docs/contract.md.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub target: TargetSettings,
    pub auth: AuthSettings,
    pub request_id: RequestIdSettings,
    pub errors: ErrorSettings,
    pub jobs: JobSettings,
    pub burst: BurstSettings,
    pub idempotency: IdempotencySettings,
    pub usage: UsageSettings,
    pub uploads: UploadSettings,
    pub pricing: PricingSettings,
    pub webhooks: WebhookSettings,
}

/// How webhooks are delivered and recorded (docs/contract.md section 6), for the
/// `webhooks::*` checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// The header naming the event.
    pub event_header: String,
    /// The header carrying the delivery's id, the same on each retry of one delivery.
    pub delivery_id_header: String,
    /// The header carrying the time the delivery was sent: Unix seconds (or milliseconds), or
    /// an RFC 3339 date-time.
    pub timestamp_header: String,
    /// The header carrying `signature_prefix` and the lowercase hex HMAC-SHA256 of
    /// `"<timestamp>.<raw body>"`.
    pub signature_header: String,
    pub signature_prefix: String,
    /// JSON pointer to the event's name in the body.
    pub event_pointer: String,
    /// Where the body may hold the job object, each tried in turn (the job's own fields are
    /// then read with `[jobs] id_pointer` and `status_pointer`).
    pub job_pointers: Vec<String>,
    /// The event sent when a job starts processing.
    pub started_event: String,
    /// The event sent when a job completes, and when it fails.
    pub completed_event: String,
    pub failed_event: String,
    /// JSON pointer to the job's record of its deliveries in the job object.
    pub events_pointer: String,
    /// How far a delivery's timestamp may be from the moment it arrived.
    pub timestamp_tolerance_seconds: f64,
    /// The longest the run waits, once the job has ended, for its deliveries (and the retry of
    /// the first) to arrive.
    pub timeout_seconds: f64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            event_header: "X-Webhook-Event".into(),
            delivery_id_header: "X-Webhook-Delivery-Id".into(),
            timestamp_header: "X-Webhook-Timestamp".into(),
            signature_header: "X-Webhook-Signature".into(),
            signature_prefix: "sha256=".into(),
            event_pointer: "/event".into(),
            job_pointers: vec!["/data".into(), "/data/job".into()],
            started_event: "job.started".into(),
            completed_event: "job.completed".into(),
            failed_event: "job.failed".into(),
            events_pointer: "/webhook_events".into(),
            timestamp_tolerance_seconds: 300.0,
            timeout_seconds: 60.0,
        }
    }
}

/// The published prices and how a job's charge follows from them (docs/contract.md section
/// 4), for the `pricing::*` checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricingSettings {
    /// The public price list (asked without a key).
    pub path: String,
    /// JSON pointer to the object of credits per minute by model in it.
    pub rates_pointer: String,
    /// The documented credits per minute of video, by model.
    pub rates: BTreeMap<String, f64>,
    /// JSON pointer, inside a job, to the video's length in seconds.
    pub duration_pointer: String,
    /// JSON pointer, inside a job, to its model; a job without one is taken to use
    /// `default_model`.
    pub model_pointer: String,
    /// The model a create that names none gets.
    pub default_model: String,
    /// How far a charge may be from rate x minutes (rounding), in credits.
    pub charge_tolerance_credits: f64,
}

impl Default for PricingSettings {
    fn default() -> Self {
        PricingSettings {
            path: "/api/pricing".into(),
            rates_pointer: "/model_pricing_credits_per_minute".into(),
            rates: [
                ("original", 60.0),
                ("light", 45.0),
                ("pro", 180.0),
                ("human", 45.0),
            ]
            .map(|(model, rate)| (model.to_string(), rate))
            .into(),
            duration_pointer: "/duration_seconds".into(),
            model_pointer: "/model".into(),
            default_model: "original".into(),
            charge_tolerance_credits: 1.0,
        }
    }
}

/// How files are uploaded (docs/contract.md section 2), for the `uploads::*` checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadSettings {
    /// Where a file is posted as multipart/form-data.
    pub path: String,
    /// The form field that carries the file.
    pub field: String,
    /// JSON pointer to the uploaded video's URL in the reply.
    pub video_url_pointer: String,
    /// The documented limit of one file, in bytes: a file one byte longer must be refused.
    pub max_file_bytes: u64,
    /// The most bytes any upload check sends in one file. A file over `max_file_bytes` is only
    /// sent when it fits; otherwise `uploads::oversize` is ignored rather than sending 500 MB.
    pub max_send_bytes: u64,
}

impl Default for UploadSettings {
    fn default() -> Self {
        UploadSettings {
            path: "/v1/uploads".into(),
            field: "file".into(),
            video_url_pointer: "/video_url".into(),
            max_file_bytes: 500 * 1024 * 1024,
            max_send_bytes: 1024 * 1024,
        }
    }
}

/// The rate-limit burst, shared by every `rate_limit::*` check (it runs once per run).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BurstSettings {
    /// The keyed request the burst repeats (default: the job status read).
    pub request: Option<RequestSpec>,
    /// At most this many requests; the burst stops at the first 429. At most [`MAX_BURST`].
    pub max_requests: u32,
    pub concurrency: u32,
    /// The error code a 429 must carry (judged when `[errors] code_pointer` is set).
    pub expect_code: String,
    /// Text the 429's error message must contain (at `[errors] message_pointer`).
    pub expect_message: Option<String>,
    /// Whether a 429 must carry Retry-After. A vendor that documents its wait through the
    /// RateLimit reset alone says false: the reset is then the hint that must be present.
    pub retry_after: bool,
    /// How many times recovery is tried after the first wait.
    pub recovery_attempts: u32,
}

/// The hard ceiling of a burst, whatever the suite says.
/// Bounded in time too: a burst never runs longer than a minute (the burst module says so).
pub const MAX_BURST: u32 = 100_000;

impl Default for BurstSettings {
    fn default() -> Self {
        BurstSettings {
            request: None,
            max_requests: 200,
            concurrency: 32,
            expect_code: "rate_limited".into(),
            expect_message: None,
            retry_after: true,
            recovery_attempts: 4,
        }
    }
}

/// How idempotency keys are sent (IETF draft "Idempotency-Key").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencySettings {
    pub header: String,
    /// Send the value as a structured-field string (`"key"`), as the draft says; false sends it bare.
    pub quoted: bool,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            header: "Idempotency-Key".into(),
            quoted: true,
        }
    }
}

impl IdempotencySettings {
    /// The header value for `key`.
    pub fn value(&self, key: &str) -> String {
        if self.quoted {
            format!("\"{key}\"")
        } else {
            key.to_string()
        }
    }
}

/// Where side effects can be observed: the tenant's jobs and its usage (charges).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsageSettings {
    /// A page of the tenant's jobs, newest first.
    pub jobs_path: String,
    /// JSON pointer to the array of jobs in that page.
    pub jobs_pointer: String,
    /// Recent usage events (charges), newest first.
    pub events_path: String,
    /// JSON pointer to the array of events.
    pub events_pointer: String,
    /// JSON pointer, inside a job, to its billing status.
    pub billing_status_pointer: String,
    /// JSON pointer, inside a usage event, to the job it is about.
    pub event_job_pointer: String,
    /// JSON pointer, inside a usage event, to the credits it charged.
    pub event_credits_pointer: String,
}

impl Default for UsageSettings {
    fn default() -> Self {
        UsageSettings {
            jobs_path: "/v1/jobs?limit=100".into(),
            jobs_pointer: "/jobs".into(),
            events_path: "/v1/usage/events?limit=100".into(),
            events_pointer: "/events".into(),
            billing_status_pointer: "/billing_status".into(),
            event_job_pointer: "/job_id".into(),
            event_credits_pointer: "/credits".into(),
        }
    }
}

/// How to talk to the target at all.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetSettings {
    /// Requested (without a key) before any check, to tell "unreachable" from "failing".
    pub probe_path: String,
    /// Client pacing for every check but the burst. Keep under the target's rate limit.
    pub requests_per_second: f64,
    pub timeout_seconds: f64,
    pub connect_timeout_seconds: f64,
    /// Response bodies are read up to this many bytes.
    pub max_body_bytes: usize,
    /// How long the harness will wait on a Retry-After before calling it a finding.
    pub max_retry_after_seconds: u64,
    /// How many times a request that got an unexpected 429 is retried after backing off.
    pub max_rate_limit_retries: u32,
    /// The run's wall-clock budget for waiting on 429s; once spent, requests that still get
    /// 429 end their check as errored instead of backing off again.
    pub max_rate_limit_wait_seconds: f64,
    /// After this many requests in a row time out, the target is taken to have stopped
    /// answering: nothing more is sent, and the remaining checks error saying so (0: never).
    pub max_consecutive_timeouts: u32,
}

impl Default for TargetSettings {
    fn default() -> Self {
        TargetSettings {
            probe_path: "/health".into(),
            requests_per_second: 5.0,
            timeout_seconds: 30.0,
            connect_timeout_seconds: 10.0,
            max_body_bytes: 1024 * 1024,
            max_retry_after_seconds: 60,
            max_rate_limit_retries: 4,
            max_rate_limit_wait_seconds: 180.0,
            max_consecutive_timeouts: 3,
        }
    }
}

/// How the key is sent.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    pub header: String,
    /// Put before the key in the header value, for example `"Bearer "`.
    pub prefix: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            header: "X-Api-Key".into(),
            prefix: String::new(),
        }
    }
}

/// Where responses carry their request id.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestIdSettings {
    /// Response headers that may carry the id, in order of preference.
    pub headers: Vec<String>,
    /// JSON pointer to the id in an error body.
    pub body_pointer: String,
}

impl Default for RequestIdSettings {
    fn default() -> Self {
        RequestIdSettings {
            headers: [
                "X-Request-Id",
                "Request-Id",
                "X-Correlation-Id",
                "traceparent",
            ]
            .map(String::from)
            .to_vec(),
            body_pointer: "/error/request_id".into(),
        }
    }
}

/// The shape of error replies.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorSettings {
    /// Name (in `[schemas]`) of the schema every non-2xx body must match.
    pub schema: String,
    /// JSON pointer to the error code in an error body; empty for an API whose errors carry
    /// no code (checks then tell errors apart by status and `expect_message`).
    pub code_pointer: String,
    /// JSON pointer to the human-readable message in an error body (for `expect_message`).
    pub message_pointer: String,
}

impl Default for ErrorSettings {
    fn default() -> Self {
        ErrorSettings {
            schema: "error".into(),
            code_pointer: "/error/code".into(),
            message_pointer: "/error/message".into(),
        }
    }
}

/// The job model: how jobs are created and read, and how their fields are named.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    pub create_path: String,
    pub read_path: String,
    pub start_path: String,
    /// The body of `POST create_path` used when the harness needs a job of its own.
    pub create_body: serde_json::Value,
    /// JSON pointer to the new job's id in the create reply.
    pub created_id_pointer: String,
    pub id_pointer: String,
    pub status_pointer: String,
    pub progress_pointer: String,
    pub output_pointer: String,
    pub error_pointer: String,
    /// The job state machine (`[jobs.states]`): every state, its moves and its role.
    pub states: StateMachine,
    /// How often a job is polled (the contract says every 2 to 5 seconds).
    pub poll_interval_seconds: f64,
    /// How long a job may take to reach a terminal state.
    pub deadline_seconds: f64,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            create_path: "/v1/jobs".into(),
            read_path: "/v1/jobs/{job_id}".into(),
            start_path: "/v1/jobs/{job_id}/start".into(),
            create_body: serde_json::json!({ "video_url": "https://example.com/apiconform-sample.mp4" }),
            created_id_pointer: "/id".into(),
            id_pointer: "/id".into(),
            status_pointer: "/status".into(),
            progress_pointer: "/progress".into(),
            output_pointer: "/output_url".into(),
            error_pointer: "/error".into(),
            states: StateMachine::contract_default(),
            poll_interval_seconds: 2.0,
            deadline_seconds: 300.0,
        }
    }
}

impl JobSettings {
    /// True for a state no job ever leaves.
    pub fn is_terminal(&self, status: &str) -> bool {
        self.states.get(status).is_some_and(|s| s.terminal)
    }

    /// Every state the suite knows, in the order it declares them.
    pub fn known_states(&self) -> impl Iterator<Item = &String> {
        self.states.names()
    }
}

/// One state of the job state machine, as `[jobs.states]` declares it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDecl {
    /// The states a job in this one may move to next (staying put is always allowed).
    #[serde(default)]
    pub moves: Vec<String>,
    /// No job ever leaves it.
    #[serde(default)]
    pub terminal: bool,
    /// A job waits here before processing starts (where `auto_start = false` leaves it).
    #[serde(default)]
    pub before_processing: bool,
    /// What a job in this terminal state must carry: its output or its error.
    #[serde(default)]
    pub carries: Option<Carries>,
}

/// What a terminal state carries (docs/contract.md section 3: output_url or error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Carries {
    Output,
    Error,
}

/// The job state machine: its states in the order the suite declares them. Judging moves,
/// terminal states and what each state carries reads this table and nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine(Vec<(String, StateDecl)>);

impl StateMachine {
    /// The machine of docs/contract.md section 3, for suites that do not declare one:
    /// pending or created -> processing or failed; processing -> completed or failed.
    pub fn contract_default() -> StateMachine {
        let state = |moves: &[&str], before_processing: bool, carries: Option<Carries>| StateDecl {
            moves: moves.iter().map(|m| m.to_string()).collect(),
            terminal: carries.is_some(),
            before_processing,
            carries,
        };
        StateMachine(vec![
            (
                "pending".into(),
                state(&["processing", "failed"], true, None),
            ),
            (
                "created".into(),
                state(&["processing", "failed"], true, None),
            ),
            (
                "processing".into(),
                state(&["completed", "failed"], false, None),
            ),
            ("completed".into(), state(&[], false, Some(Carries::Output))),
            ("failed".into(), state(&[], false, Some(Carries::Error))),
        ])
    }

    /// A machine from its states, in order (for tests and tools; suites declare theirs).
    pub fn from_states(states: Vec<(String, StateDecl)>) -> StateMachine {
        StateMachine(states)
    }

    /// The declaration of state `name`.
    pub fn get(&self, name: &str) -> Option<&StateDecl> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// Every state's name, in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(n, _)| n)
    }

    /// The states a job waits in before processing, in declaration order.
    pub fn before_processing(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, s)| s.before_processing)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// Whether a job seen in `from` may later be seen in `to`: the same state, or one reached
    /// by declared moves (a poll can miss a short state, so moves may skip ahead).
    pub fn can_reach(&self, from: &str, to: &str) -> bool {
        let mut seen = vec![from];
        let mut next = 0;
        while let Some(&state) = seen.get(next) {
            if state == to {
                return true;
            }
            for target in self.get(state).map(|s| s.moves.as_slice()).unwrap_or(&[]) {
                if !seen.contains(&target.as_str()) {
                    seen.push(target);
                }
            }
            next += 1;
        }
        false
    }

    /// Every rule the declaration breaks: the dotted key it is at, and why.
    fn problems(&self) -> Option<Invalid> {
        for (name, state) in &self.0 {
            let key = format!("jobs.states.{name}");
            if let Some(unknown) = state.moves.iter().find(|m| self.get(m).is_none()) {
                return Some(Invalid::at(
                    format!("{key}.moves"),
                    format!(
                        "[jobs.states] {name} moves to `{unknown}`, which is not a declared state"
                    ),
                ));
            }
            if state.terminal && !state.moves.is_empty() {
                return Some(Invalid::at(
                    format!("{key}.moves"),
                    format!(
                        "[jobs.states] {name} is terminal, so it has no moves out (it lists {})",
                        state.moves.join(", ")
                    ),
                ));
            }
            if state.terminal && state.carries.is_none() {
                return Some(Invalid::at(
                    key,
                    format!("[jobs.states] {name} is terminal: say what it carries, carries = \"output\" or \"error\""),
                ));
            }
            if !state.terminal && state.carries.is_some() {
                return Some(Invalid::at(
                    format!("{key}.carries"),
                    format!("[jobs.states] {name} carries the output or the error, which only a terminal state does"),
                ));
            }
            if state.terminal && state.before_processing {
                return Some(Invalid::at(
                    format!("{key}.before_processing"),
                    format!("[jobs.states] {name} cannot be both terminal and before processing"),
                ));
            }
            if !state.terminal && state.moves.is_empty() {
                return Some(Invalid::at(
                    key,
                    format!("[jobs.states] {name} is not terminal but has no moves: a job in it could never finish"),
                ));
            }
        }
        if !self.0.iter().any(|(_, s)| s.terminal) {
            return Some(Invalid::at(
                "jobs.states",
                "[jobs.states] declares no terminal state (terminal = true): no job could ever finish",
            ));
        }
        None
    }
}

impl<'de> Deserialize<'de> for StateMachine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StateMachine;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a table of job states, each with its moves and role")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StateMachine, A::Error> {
                let mut states = Vec::new();
                while let Some((name, state)) = map.next_entry::<String, StateDecl>()? {
                    states.push((name, state));
                }
                Ok(StateMachine(states))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Which credential a request carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// The key under test (`--key`).
    #[default]
    Valid,
    /// The second tenant's key (`--second-key`).
    Second,
    /// No auth header at all.
    Missing,
    /// A well-formed key the server cannot know.
    Invalid,
    /// A key of a tenant with no credits (`--broke-key`), for the 402 path.
    Broke,
}

/// A request a check sends, as written in the suite.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Parsed once, as the suite loads: a name that is not a method is an error at its line.
    #[serde(default = "get_method", deserialize_with = "http_method")]
    pub method: Method,
    pub path: PathTemplate,
    #[serde(default)]
    pub credential: Credential,
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// A body sent as written, not as JSON (input that is malformed on purpose); sent as
    /// `application/json` unless `headers` name another Content-Type.
    #[serde(default)]
    pub raw_body: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A request without a method is a GET.
fn get_method() -> Method {
    Method::GET
}

/// A method as a suite writes it, in any case (`get` is GET).
fn http_method<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Method, D::Error> {
    let name = String::deserialize(deserializer)?;
    Method::from_bytes(name.to_ascii_uppercase().as_bytes())
        .map_err(|_| serde::de::Error::custom(format!("`{name}` is not an HTTP method")))
}

impl RequestSpec {
    /// A GET with the valid key.
    pub fn get(path: &str) -> RequestSpec {
        RequestSpec {
            method: Method::GET,
            path: PathTemplate(path.into()),
            credential: Credential::Valid,
            body: None,
            raw_body: None,
            headers: BTreeMap::new(),
        }
    }

    /// True for methods with side effects (they need `--allow-writes`).
    pub fn writes(&self) -> bool {
        !self.method.is_safe()
    }

    /// How the request is described in messages, without secrets.
    pub fn describe(&self) -> String {
        let credential = match self.credential {
            Credential::Valid => "",
            Credential::Second => " with the second tenant's key",
            Credential::Missing => " without a key",
            Credential::Invalid => " with an invalid key",
            Credential::Broke => " with the key that has no credits",
        };
        format!("{} {}{credential}", self.method, self.path.0)
    }
}

/// A path with `{placeholder}`s, checked against [`PLACEHOLDERS`] when the suite is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathTemplate(pub String);

impl PathTemplate {
    /// The placeholders used, in order.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut found = Vec::new();
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            found.push(&rest[open + 1..open + close]);
            rest = &rest[open + close + 1..];
        }
        found
    }

    pub fn uses(&self, placeholder: &str) -> bool {
        self.placeholders().contains(&placeholder)
    }

    /// The path with each placeholder replaced; `value` is percent-encoded as a path segment.
    pub fn fill(&self, placeholder: &str, value: &str) -> PathTemplate {
        PathTemplate(
            self.0
                .replace(&format!("{{{placeholder}}}"), &encode_segment(value)),
        )
    }
}

impl<'de> Deserialize<'de> for PathTemplate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        check_path(&text).map_err(serde::de::Error::custom)?;
        let template = PathTemplate(text);
        if let Some(unknown) = template
            .placeholders()
            .into_iter()
            .find(|p| !PLACEHOLDERS.contains(p))
        {
            return Err(serde::de::Error::custom(format!(
                "path `{}` uses unknown placeholder `{{{unknown}}}` (known: {})",
                template.0,
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{p}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(template)
    }
}

/// A path a suite gives (a request's, the probe's, a job endpoint's): absolute, with every
/// `{placeholder}` closed, so nothing half-filled is ever sent.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("path `{path}` must start with `/`"));
    }
    let mut open = None;
    for (i, c) in path.char_indices() {
        match (c, open) {
            ('{', None) => open = Some(i),
            ('}', Some(_)) => open = None,
            ('{', Some(_)) | ('}', None) => {
                return Err(format!(
                "path `{path}` has a stray `{c}` at character {}: placeholders read `{{job_id}}`",
                i + 1
            ))
            }
            _ => {}
        }
    }
    match open {
        Some(i) => Err(format!(
            "path `{path}` has a `{{` at character {} that is never closed",
            i + 1
        )),
        None => Ok(()),
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters, so any id stays one segment.
pub fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Expected status codes: exact codes and classes, written `[401]`, `"2xx"` or `[400, 404]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSet(Vec<StatusMatch>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StatusMatch {
    Exact(u16),
    Class(u16),
}

impl StatusSet {
    pub fn success() -> StatusSet {
        StatusSet(vec![StatusMatch::Class(2)])
    }

    pub fn exactly(codes: &[u16]) -> StatusSet {
        StatusSet(codes.iter().map(|c| StatusMatch::Exact(*c)).collect())
    }

    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|m| match m {
            StatusMatch::Exact(code) => *code == status,
            StatusMatch::Class(class) => status / 100 == *class,
        })
    }
}

impl std::fmt::Display for StatusSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|m| match m {
                StatusMatch::Exact(code) => code.to_string(),
                StatusMatch::Class(class) => format!("{class}xx"),
            })
            .collect();
        f.write_str(&parts.join(" or "))
    }
}

impl<'de> Deserialize<'de> for StatusSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum One {
            Code(u16),
            Text(String),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<One>),
            One(One),
        }
        let items = match OneOrMany::deserialize(deserializer)? {
            OneOrMany::Many(items) => items,
            OneOrMany::One(item) => vec![item],
        };
        let mut set = Vec::new();
        for item in items {
            set.push(match item {
                One::Code(code) if (100..=599).contains(&code) => StatusMatch::Exact(code),
                One::Text(text) if text.len() == 3 && text[1..].eq_ignore_ascii_case("xx") => {
                    match text[..1].parse::<u16>() {
                        Ok(class) if (1..=5).contains(&class) => StatusMatch::Class(class),
                        _ => {
                            return Err(serde::de::Error::custom(format!(
                                "`{text}` is not a status class like \"2xx\""
                            )))
                        }
                    }
                }
                One::Text(text) => match text.parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => StatusMatch::Exact(code),
                    _ => {
                        return Err(serde::de::Error::custom(format!(
                            "`{text}` is not a status code or class like \"2xx\""
                        )))
                    }
                },
                One::Code(code) => {
                    return Err(serde::de::Error::custom(format!(
                        "{code} is not an HTTP status code"
                    )))
                }
            });
        }
        if set.is_empty() {
            return Err(serde::de::Error::custom(
                "expected at least one status code",
            ));
        }
        Ok(StatusSet(set))
    }
}

/// The file as written, before the checks are taken apart.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    target: TargetSettings,
    #[serde(default)]
    auth: AuthSettings,
    #[serde(default)]
    request_id: RequestIdSettings,
    #[serde(default)]
    errors: ErrorSettings,
    #[serde(default)]
    jobs: JobSettings,
    #[serde(default)]
    burst: BurstSettings,
    #[serde(default)]
    idempotency: IdempotencySettings,
    #[serde(default)]
    usage: UsageSettings,
    #[serde(default)]
    uploads: UploadSettings,
    #[serde(default)]
    pricing: PricingSettings,
    #[serde(default)]
    webhooks: WebhookSettings,
    #[serde(default)]
    schemas: BTreeMap<String, String>,
    openapi: Option<RawOpenApi>,
    #[serde(default, rename = "check")]
    checks: Vec<toml::Spanned<toml::Table>>,
}

impl Suite {
    /// Load a suite file from disk, or the bundled one when `path` is None.
    pub fn load(path: Option<&Path>) -> Result<Suite, AppError> {
        match path {
            None => Suite::parse(BUNDLED_SUITE, SuiteSource::Bundled),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    config_error(format!("cannot read suite {}: {e}", path.display()))
                })?;
                Suite::parse(&text, SuiteSource::File(path.to_path_buf()))
            }
        }
    }

    /// Parse suite text. Errors name the file, line and column.
    pub fn parse(text: &str, source: SuiteSource) -> Result<Suite, AppError> {
        let at = |offset: usize, message: &str| {
            let (line, column) = line_column(text, offset);
            config_error(format!("{}:{line}:{column}: {message}", source.display()))
        };
        let raw: RawSuite = toml::from_str(text)
            .map_err(|e| at(e.span().map(|s| s.start).unwrap_or(0), e.message().trim()))?;
        let offsets = KeyOffsets::of(text);
        let lines = LineStarts::of(text);
        let mut checks = Vec::new();
        for (index, spanned) in raw.checks.into_iter().enumerate() {
            let offset = spanned.span().start;
            let mut table = spanned.into_inner();
            let ignored_value = table.remove("ignored");
            let mut take_string = |field: &str| -> Result<Option<String>, AppError> {
                match table.remove(field) {
                    None => Ok(None),
                    Some(toml::Value::String(s)) => Ok(Some(s)),
                    Some(other) => Err(at(
                        offset,
                        &format!(
                            "check field `{field}` must be a string, found {}",
                            other.type_str()
                        ),
                    )),
                }
            };
            let name = take_string("name")?.ok_or_else(|| at(offset, "check without a `name`"))?;
            let kind = take_string("kind")?
                .ok_or_else(|| at(offset, &format!("check `{name}` has no `kind`")))?;
            let ignored = match ignored_value {
                None => false,
                Some(toml::Value::Boolean(b)) => b,
                Some(other) => {
                    return Err(at(
                        offset,
                        &format!(
                            "check `{name}`: `ignored` must be true or false, found {}",
                            other.type_str()
                        ),
                    ))
                }
            };
            let level = match take_string("level")?
                .as_deref()
                .map(str::to_ascii_uppercase)
                .as_deref()
            {
                None | Some("MUST") => Level::Must,
                Some("SHOULD") => Level::Should,
                Some(other) => {
                    return Err(at(
                        offset,
                        &format!("check `{name}`: level must be MUST or SHOULD, not `{other}`"),
                    ))
                }
            };
            if !name.contains("::") || name.starts_with("::") || name.ends_with("::") {
                return Err(at(
                    offset,
                    &format!("check name `{name}` must read `area::check`"),
                ));
            }
            if checks.iter().any(|c: &CheckDecl| c.name == name) {
                return Err(at(offset, &format!("check `{name}` is declared twice")));
            }
            let (line, column) = lines.line_column(text, offset);
            let keys = offsets
                .checks
                .get(index)
                .map(|keys| {
                    keys.iter()
                        .map(|k| {
                            let (line, column) = lines.line_column(text, k.offset);
                            (k.clone(), line, column)
                        })
                        .collect()
                })
                .unwrap_or_default();
            checks.push(CheckDecl {
                name,
                level,
                kind,
                params: table,
                ignored,
                line,
                column,
                keys,
            });
        }
        let mut jobs = raw.jobs;
        // The TOML reader hands tables over sorted; keep the states in the file's order.
        jobs.states
            .0
            .sort_by_key(|(name, _)| offsets.setting(&format!("jobs.states.{name}")));
        let settings = Settings {
            target: raw.target,
            auth: raw.auth,
            request_id: raw.request_id,
            errors: raw.errors,
            jobs,
            burst: raw.burst,
            idempotency: raw.idempotency,
            usage: raw.usage,
            uploads: raw.uploads,
            pricing: raw.pricing,
            webhooks: raw.webhooks,
        };
        validate_settings(&settings).map_err(|invalid| match offsets.setting(&invalid.key) {
            Some(offset) => at(offset, &invalid.message),
            None => config_error(format!("{}: {}", source.display(), invalid.message)),
        })?;
        let openapi_schemas = match raw.openapi {
            None => BTreeMap::new(),
            Some(openapi) => {
                let setting_at = |key: &str, message: &str| match offsets.setting(key) {
                    Some(offset) => at(offset, message),
                    None => config_error(format!("{}: {message}", source.display())),
                };
                let text = source.read_relative(&openapi.document)?;
                let document = crate::openapi::Document::parse(&text).map_err(|why| {
                    setting_at(
                        "openapi.document",
                        &format!("OpenAPI document {}: {why}", openapi.document),
                    )
                })?;
                let mut derived = BTreeMap::new();
                for (name, selector) in &openapi.schemas {
                    let key = format!("openapi.schemas.{name}");
                    if raw.schemas.contains_key(name) {
                        return Err(setting_at(
                            &key,
                            &format!(
                                "schema `{name}` is named in [schemas] too; give it one source"
                            ),
                        ));
                    }
                    let schema = document
                        .schema(selector)
                        .map_err(|why| setting_at(&key, &format!("schema `{name}`: {why}")))?;
                    let origin = match (&selector.component, document.operation(selector)) {
                        (Some(component), _) => format!("components/schemas/{component}"),
                        (None, Ok(operation)) => {
                            format!("{} response {}", operation.describe(), selector.status)
                        }
                        (None, Err(_)) => "an operation".into(),
                    };
                    derived.insert(
                        name.clone(),
                        DerivedSchema {
                            origin: format!("{origin} in {}", openapi.document),
                            schema,
                        },
                    );
                }
                derived
            }
        };
        Ok(Suite {
            name: raw.name,
            description: raw.description,
            source,
            settings,
            schemas: raw.schemas,
            openapi_schemas,
            checks,
        })
    }

    /// Whether the suite names schema `name`, in `[schemas]` or `[openapi.schemas]`.
    pub fn has_schema(&self, name: &str) -> bool {
        self.schemas.contains_key(name) || self.openapi_schemas.contains_key(name)
    }

    /// A message about check `decl`, located in the suite file: at the key the message names
    /// in backticks (`unknown field `expect_stat``), or whose value it quotes (`path
    /// `/v1/{job_id` ...`), else at the check's `[[check]]` header.
    pub fn located(&self, decl: &CheckDecl, message: &str) -> AppError {
        let names = |word: &str, k: &KeyAt| {
            k.key == word
                || k.key.rsplit('.').next() == Some(word)
                || k.written.as_deref() == Some(word)
        };
        let (line, column) = quoted_words(message)
            .find_map(|word| decl.keys.iter().find(|(k, _, _)| names(word, k)))
            .map(|(_, line, column)| (*line, *column))
            .unwrap_or((decl.line, decl.column));
        config_error(format!(
            "{}:{line}:{column}: check `{}`: {message}",
            self.source.display(),
            decl.name
        ))
    }
}

/// A setting that breaks a rule: the dotted key it is at (to point at its line), and why.
struct Invalid {
    key: String,
    message: String,
}

impl Invalid {
    fn at(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The `[table] key` words of a dotted key, for messages.
fn setting_name(key: &str) -> String {
    match key.split_once('.') {
        Some((table, field)) => format!("[{table}] {field}"),
        None => key.to_string(),
    }
}

fn validate_settings(settings: &Settings) -> Result<(), Invalid> {
    let target = &settings.target;
    let positive = |value: f64| value > 0.0 && value.is_finite();
    if !positive(target.requests_per_second) {
        return Err(Invalid::at(
            "target.requests_per_second",
            "[target] requests_per_second must be a positive number",
        ));
    }
    for (key, value) in [
        ("target.timeout_seconds", target.timeout_seconds),
        (
            "target.connect_timeout_seconds",
            target.connect_timeout_seconds,
        ),
        (
            "jobs.poll_interval_seconds",
            settings.jobs.poll_interval_seconds,
        ),
        ("jobs.deadline_seconds", settings.jobs.deadline_seconds),
        (
            "webhooks.timestamp_tolerance_seconds",
            settings.webhooks.timestamp_tolerance_seconds,
        ),
        (
            "webhooks.timeout_seconds",
            settings.webhooks.timeout_seconds,
        ),
        (
            "target.max_rate_limit_wait_seconds",
            target.max_rate_limit_wait_seconds,
        ),
    ] {
        if !(positive(value) && value < 1e7) {
            return Err(Invalid::at(
                key,
                format!("{} must be a positive number of seconds", setting_name(key)),
            ));
        }
    }
    for (key, header) in [
        ("auth.header", &settings.auth.header),
        ("idempotency.header", &settings.idempotency.header),
        ("webhooks.event_header", &settings.webhooks.event_header),
        (
            "webhooks.delivery_id_header",
            &settings.webhooks.delivery_id_header,
        ),
        (
            "webhooks.timestamp_header",
            &settings.webhooks.timestamp_header,
        ),
        (
            "webhooks.signature_header",
            &settings.webhooks.signature_header,
        ),
    ] {
        if header.trim().is_empty() {
            return Err(Invalid::at(
                key,
                format!("{} must name a header", setting_name(key)),
            ));
        }
    }
    for (key, event) in [
        ("webhooks.started_event", &settings.webhooks.started_event),
        (
            "webhooks.completed_event",
            &settings.webhooks.completed_event,
        ),
        ("webhooks.failed_event", &settings.webhooks.failed_event),
    ] {
        if event.trim().is_empty() {
            return Err(Invalid::at(
                key,
                format!("{} must name an event", setting_name(key)),
            ));
        }
    }
    for (key, pointer) in [
        ("request_id.body_pointer", &settings.request_id.body_pointer),
        ("errors.code_pointer", &settings.errors.code_pointer),
        ("errors.message_pointer", &settings.errors.message_pointer),
        ("jobs.created_id_pointer", &settings.jobs.created_id_pointer),
        ("jobs.id_pointer", &settings.jobs.id_pointer),
        ("jobs.status_pointer", &settings.jobs.status_pointer),
        ("jobs.progress_pointer", &settings.jobs.progress_pointer),
        ("jobs.output_pointer", &settings.jobs.output_pointer),
        ("jobs.error_pointer", &settings.jobs.error_pointer),
        ("usage.jobs_pointer", &settings.usage.jobs_pointer),
        ("usage.events_pointer", &settings.usage.events_pointer),
        (
            "usage.billing_status_pointer",
            &settings.usage.billing_status_pointer,
        ),
        (
            "uploads.video_url_pointer",
            &settings.uploads.video_url_pointer,
        ),
        ("usage.event_job_pointer", &settings.usage.event_job_pointer),
        (
            "usage.event_credits_pointer",
            &settings.usage.event_credits_pointer,
        ),
        ("pricing.rates_pointer", &settings.pricing.rates_pointer),
        (
            "pricing.duration_pointer",
            &settings.pricing.duration_pointer,
        ),
        ("pricing.model_pointer", &settings.pricing.model_pointer),
        ("webhooks.event_pointer", &settings.webhooks.event_pointer),
        ("webhooks.events_pointer", &settings.webhooks.events_pointer),
    ] {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(Invalid::at(
                key,
                format!(
                    "{} `{pointer}` is not a JSON pointer (it must start with `/`)",
                    setting_name(key)
                ),
            ));
        }
    }
    for (key, path) in [
        ("target.probe_path", &settings.target.probe_path),
        ("jobs.create_path", &settings.jobs.create_path),
        ("jobs.read_path", &settings.jobs.read_path),
        ("jobs.start_path", &settings.jobs.start_path),
        ("uploads.path", &settings.uploads.path),
        ("pricing.path", &settings.pricing.path),
    ] {
        check_path(path).map_err(|m| Invalid::at(key, format!("{}: {m}", setting_name(key))))?;
    }
    for (key, path) in [
        ("jobs.read_path", &settings.jobs.read_path),
        ("jobs.start_path", &settings.jobs.start_path),
    ] {
        if !path.contains("{job_id}") {
            return Err(Invalid::at(
                key,
                format!("{} must contain {{job_id}}", setting_name(key)),
            ));
        }
    }
    let burst = &settings.burst;
    if burst.max_requests == 0 || burst.max_requests > MAX_BURST {
        return Err(Invalid::at(
            "burst.max_requests",
            format!("[burst] max_requests must be between 1 and {MAX_BURST}"),
        ));
    }
    if burst.concurrency == 0 || burst.concurrency > 256 {
        return Err(Invalid::at(
            "burst.concurrency",
            "[burst] concurrency must be between 1 and 256",
        ));
    }
    if let Some(invalid) = settings.jobs.states.problems() {
        return Err(invalid);
    }
    let webhooks = &settings.webhooks;
    if webhooks.job_pointers.is_empty()
        || webhooks
            .job_pointers
            .iter()
            .any(|p| !p.is_empty() && !p.starts_with('/'))
    {
        return Err(Invalid::at(
            "webhooks.job_pointers",
            "[webhooks] job_pointers must list JSON pointers (each empty, for the whole body, or starting with `/`)",
        ));
    }
    let uploads = &settings.uploads;
    if uploads.field.trim().is_empty() {
        return Err(Invalid::at(
            "uploads.field",
            "[uploads] field must name a form field",
        ));
    }
    let pricing = &settings.pricing;
    if let Some((model, rate)) = pricing
        .rates
        .iter()
        .find(|(_, rate)| !(rate.is_finite() && **rate >= 0.0))
    {
        return Err(Invalid::at(
            "pricing.rates",
            format!(
                "[pricing] rates: `{model}` must be a number of credits of at least 0, not {rate}"
            ),
        ));
    }
    if !(pricing.charge_tolerance_credits.is_finite() && pricing.charge_tolerance_credits >= 0.0) {
        return Err(Invalid::at(
            "pricing.charge_tolerance_credits",
            "[pricing] charge_tolerance_credits must be a number of credits of at least 0",
        ));
    }
    let smallest = crate::video::MIN_SAMPLE_BYTES as u64;
    if uploads.max_send_bytes < smallest || uploads.max_file_bytes == 0 {
        return Err(Invalid::at(
            "uploads.max_send_bytes",
            format!("[uploads] max_send_bytes must be at least {smallest} (the sample video) and max_file_bytes positive"),
        ));
    }
    Ok(())
}

/// A key of a suite file: its dotted path (`request.path`), where it starts (a byte offset),
/// and its value as written when it is a plain value (a string without its quotes).
#[derive(Clone, Debug)]
pub struct KeyAt {
    pub key: String,
    pub offset: usize,
    pub written: Option<String>,
}

/// Where each key of a suite file is: the settings' keys (`target.requests_per_second`) and,
/// per `[[check]]` in order, the keys inside it. Errors found after parsing point at the
/// offending line with it.
#[derive(Debug, Default)]
struct KeyOffsets {
    settings: Vec<KeyAt>,
    checks: Vec<Vec<KeyAt>>,
}

impl KeyOffsets {
    /// The keys of `text`, which has parsed already (anything unreadable is left out).
    fn of(text: &str) -> KeyOffsets {
        let mut offsets = KeyOffsets::default();
        let Ok(document) = toml::de::DeTable::parse(text) else {
            return offsets;
        };
        for (key, value) in document.get_ref().iter() {
            if key.get_ref() == "check" {
                if let toml::de::DeValue::Array(checks) = value.get_ref() {
                    for check in checks {
                        let mut keys = Vec::new();
                        if let toml::de::DeValue::Table(table) = check.get_ref() {
                            collect_keys(text, table, "", &mut keys);
                        }
                        offsets.checks.push(keys);
                    }
                }
                continue;
            }
            offsets.settings.push(KeyAt {
                key: key.get_ref().to_string(),
                offset: key.span().start,
                written: None,
            });
            if let toml::de::DeValue::Table(table) = value.get_ref() {
                collect_keys(
                    text,
                    table,
                    &format!("{}.", key.get_ref()),
                    &mut offsets.settings,
                );
            }
        }
        offsets
    }

    /// Where setting `key` (dotted) is, or failing that the nearest table around it.
    fn setting(&self, key: &str) -> Option<usize> {
        let mut wanted = key;
        loop {
            if let Some(k) = self.settings.iter().find(|k| k.key == wanted) {
                return Some(k.offset);
            }
            wanted = wanted.rsplit_once('.')?.0;
        }
    }
}

/// Every key of `table` and of the tables in it, as `prefix` + dotted path, with where the
/// key starts and, for a plain value, its text (quotes trimmed) as written in `text`.
fn collect_keys(text: &str, table: &toml::de::DeTable<'_>, prefix: &str, out: &mut Vec<KeyAt>) {
    for (key, value) in table.iter() {
        let path = format!("{prefix}{}", key.get_ref());
        let written = match value.get_ref() {
            toml::de::DeValue::Table(_) | toml::de::DeValue::Array(_) => None,
            _ => text
                .get(value.span())
                .map(|raw| raw.trim_matches(|c| c == '"' || c == '\'').to_string()),
        };
        out.push(KeyAt {
            key: path.clone(),
            offset: key.span().start,
            written,
        });
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => collect_keys(text, inner, &format!("{path}."), out),
            toml::de::DeValue::Array(items) => {
                for item in items {
                    if let toml::de::DeValue::Table(inner) = item.get_ref() {
                        collect_keys(text, inner, &format!("{path}."), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The words in backticks of a message (`unknown field `expect_stat``: `expect_stat`), which
/// may name the key it is about.
fn quoted_words(message: &str) -> impl Iterator<Item = &str> {
    message.split('`').skip(1).step_by(2)
}

/// Where each line of a text starts, found once: the line of every key of a suite is then a
/// binary search, not a count from the top (which made parsing quadratic in the suite).
struct LineStarts(Vec<usize>);

impl LineStarts {
    fn of(text: &str) -> LineStarts {
        let after_breaks = text.match_indices('\n').map(|(i, _)| i + 1);
        LineStarts(std::iter::once(0).chain(after_breaks).collect())
    }

    /// 1-based line and column (in characters) of a byte offset, as [`line_column`].
    fn line_column(&self, text: &str, offset: usize) -> (usize, usize) {
        let offset = offset.min(text.len());
        let line = self.0.partition_point(|&start| start <= offset);
        let start = self.0[line - 1];
        let column = text
            .get(start..offset)
            .map_or(0, |before| before.chars().count());
        (line, column + 1)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_starts_agree_with_line_column() {
        let text = "a = 1\n\n[b]\nc = \"é\"\nlast";
        let lines = LineStarts::of(text);
        for offset in 0..=text.len() + 2 {
            if text.is_char_boundary(offset.min(text.len())) {
                assert_eq!(
                    lines.line_column(text, offset),
                    line_column(text, offset),
                    "offset {offset}"
                );
            }
        }
    }

    fn parse(text: &str) -> Result<Suite, String> {
        Suite::parse(text, SuiteSource::File("s.toml".into())).map_err(|e| e.to_string())
    }

    #[test]
    fn bundled_suite_parses() {
        let suite = Suite::load(None).unwrap();
        assert!(suite.checks.len() >= 15);
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let err = parse("name = \"x\"\n\n[[check]]\nname = \"a::b\nkind = \"x\"\n").unwrap_err();
        assert!(err.starts_with("s.toml:4:"), "{err}");
    }

    #[test]
    fn unknown_table_and_bad_level_are_errors() {
        let err = parse("name = \"x\"\n[targett]\n").unwrap_err();
        assert!(err.contains("targett"), "{err}");
        let err =
            parse("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"k\"\nlevel = \"MAY\"\n")
                .unwrap_err();
        assert!(err.contains("s.toml:2:1") && err.contains("MAY"), "{err}");
    }

    #[test]
    fn pricing_settings_are_validated_at_their_line() {
        let err = parse("name = \"x\"\n[pricing]\nrates = { pro = -1 }\n").unwrap_err();
        assert!(
            err.starts_with("s.toml:3:1:") && err.contains("`pro`"),
            "{err}"
        );
        let err = parse("name = \"x\"\n[pricing]\ncharge_tolerance_credits = -0.5\n").unwrap_err();
        assert!(err.starts_with("s.toml:3:1:"), "{err}");
        let err = parse("name = \"x\"\n[usage]\nevent_job_pointer = \"job_id\"\n").unwrap_err();
        assert!(
            err.starts_with("s.toml:3:1:") && err.contains("not a JSON pointer"),
            "{err}"
        );
        let err = parse("name = \"x\"\n[pricing]\npath = \"api/pricing\"\n").unwrap_err();
        assert!(err.starts_with("s.toml:3:1:"), "{err}");
    }

    #[test]
    fn path_templates_reject_unknown_placeholders() {
        let spec: Result<RequestSpec, _> = toml::from_str("path = \"/v1/jobs/{jobid}\"");
        assert!(spec
            .unwrap_err()
            .to_string()
            .contains("unknown placeholder `{jobid}`"));
        let spec: RequestSpec = toml::from_str("path = \"/v1/jobs/{job_id}\"").unwrap();
        assert_eq!(spec.path.fill("job_id", "a b/c").0, "/v1/jobs/a%20b%2Fc");
    }

    #[test]
    fn the_bundled_suite_declares_the_contract_machine() {
        let suite = Suite::load(None).unwrap();
        assert_eq!(suite.settings.jobs.states, StateMachine::contract_default());
        let states = &suite.settings.jobs.states;
        assert!(states.can_reach("pending", "completed"));
        assert!(states.can_reach("processing", "processing"));
        assert!(!states.can_reach("processing", "pending"));
        assert!(!states.can_reach("pending", "created"));
        assert_eq!(states.before_processing(), ["pending", "created"]);
    }

    #[test]
    fn state_machines_are_validated_with_located_errors() {
        let suite = |states: &str| parse(&format!("name = \"x\"\n[jobs.states]\n{states}"));
        let err = suite("a = { moves = [\"b\"] }\nb = { moves = [\"zz\"] }\n").unwrap_err();
        assert!(
            err.starts_with("s.toml:4:") && err.contains("b moves to `zz`"),
            "{err}"
        );
        let err = suite("a = { moves = [\"b\"] }\nb = { terminal = true, carries = \"output\", moves = [\"a\"] }\n").unwrap_err();
        assert!(
            err.starts_with("s.toml:4:") && err.contains("b is terminal, so it has no moves"),
            "{err}"
        );
        let err = suite("a = { moves = [\"b\"] }\nb = { moves = [\"a\"] }\n").unwrap_err();
        assert!(
            err.starts_with("s.toml:2:") && err.contains("no terminal state"),
            "{err}"
        );
        let err = suite("a = { moves = [\"b\"] }\nb = { terminal = true }\n").unwrap_err();
        assert!(
            err.starts_with("s.toml:4:") && err.contains("carries"),
            "{err}"
        );
        let err = suite("a = { moves = [\"b\"], carries = \"error\" }\nb = { terminal = true, carries = \"output\" }\n").unwrap_err();
        assert!(
            err.starts_with("s.toml:3:") && err.contains("only a terminal state"),
            "{err}"
        );
        let err = suite("a = { mooves = [\"b\"] }\n").unwrap_err();
        assert!(err.contains("mooves"), "{err}");
        let ok = suite("a = { before_processing = true, moves = [\"b\"] }\nb = { terminal = true, carries = \"output\" }\n").unwrap();
        assert_eq!(
            ok.settings.jobs.known_states().collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn status_sets() {
        #[derive(Deserialize)]
        struct T {
            s: StatusSet,
        }
        let t: T = toml::from_str("s = \"2xx\"").unwrap();
        assert!(t.s.contains(201) && !t.s.contains(301));
        let t: T = toml::from_str("s = [400, 404]").unwrap();
        assert!(t.s.contains(404) && !t.s.contains(401));
        assert_eq!(t.s.to_string(), "400 or 404");
        assert!(toml::from_str::<T>("s = 999").is_err());
        assert!(toml::from_str::<T>("s = \"7xx\"").is_err());
    }
}
