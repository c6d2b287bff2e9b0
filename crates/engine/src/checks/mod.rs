//! Check kinds: written once in Rust, instantiated by the suite with their parameters.
//!
//! A suite's `[[check]]` names a `kind`; [`build`] turns the table into a [`Check`]. A kind
//! reports [`Finding`]s (contract violations: a rule id, a message that says what was expected
//! and seen, and the exchanges judged); the runner turns them into an outcome by the check's
//! level. Where it can, a kind sends first and then judges with a pure function, which unit
//! tests call with made-up responses.

mod auth;
mod credits;
mod documented;
mod download;
mod errors;
mod headers;
mod idempotency;
mod latency;
mod lifecycle;
mod observability;
mod pricing;
mod rate_limit;
mod schema;
mod uploads;
mod usage;
mod webhooks;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

pub use crate::finding::Finding;

use crate::client::{FailureKind, Outgoing, Response, SendOptions};
use crate::context::{Abort, CheckContext};
use crate::error::AppError;
use crate::schemas::{SchemaSet, Violation};
use crate::suite::{CheckDecl, Credential, RequestSpec, Settings, StatusSet, Suite};

/// Contract violations a check saw; empty when it passed.
pub type Findings = Vec<Finding>;

/// What a check needs before it can run. Unmet needs make it ignored, with the reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A job to read (`{job_id}` in a path), finished or not.
    pub job: bool,
    /// A job that has reached a terminal state (checks that judge a finished job).
    pub finished_job: bool,
    /// Requests with side effects.
    pub writes: bool,
    pub second_key: bool,
    /// A key whose tenant has no credits.
    pub broke_key: bool,
    pub logs: bool,
    /// No other check may send traffic meanwhile (a burst, a side-effect oracle).
    pub exclusive: bool,
    /// A webhook receiver the target can reach.
    pub webhook_receiver: bool,
}

impl Needs {
    /// What sending `requests` needs.
    pub fn of<'a>(requests: impl IntoIterator<Item = &'a RequestSpec>) -> Needs {
        let mut needs = Needs::default();
        for request in requests {
            needs.job |= request.path.uses("job_id");
            needs.writes |= request.writes();
            needs.second_key |= request.credential == Credential::Second;
            needs.broke_key |= request.credential == Credential::Broke;
        }
        needs
    }

    /// Requests with side effects, nothing else.
    pub fn writes() -> Needs {
        Needs {
            writes: true,
            ..Needs::default()
        }
    }

    /// Short words for `--list`.
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        if self.finished_job {
            words.push("a finished job");
        } else if self.job {
            words.push("a job");
        }
        if self.writes {
            words.push("writes");
        }
        if self.second_key {
            words.push("second key");
        }
        if self.broke_key {
            words.push("key without credits");
        }
        if self.logs {
            words.push("log source");
        }
        if self.webhook_receiver {
            words.push("webhook receiver");
        }
        words.join(", ")
    }
}

/// One check kind, configured.
pub trait Check: Send + Sync {
    /// The suite's requests it sends as written, for a kind that sends a list of them: what
    /// it needs and its plan follow from them unless it says otherwise. A kind that sends
    /// anything else says both itself.
    fn requests(&self) -> &[RequestSpec] {
        &[]
    }

    /// What it needs to run; `settings` matters to kinds whose requests the suite shares.
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of(self.requests())
    }

    /// The requests it would send, one line each, side effects marked (for `--dry-run`).
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned(self.requests())
    }

    /// Schema names it validates against, so a missing schema is caught at load time.
    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        Vec::new()
    }

    /// True for a check that judges the whole run (every exchange so far), not only its own
    /// requests: it runs in a final phase, after every other check, so its verdict never
    /// depends on scheduling.
    fn judges_the_run(&self) -> bool {
        false
    }

    /// Run the check and report what it found.
    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>>;
}

/// A built check and the name it runs under.
pub type NamedCheck = (String, Box<dyn Check>);

/// Build the checks a suite declaration stands for (one, or one per input for an expanding
/// kind), each with its name, or say exactly what is wrong with the table.
pub fn build(decl: &CheckDecl, suite: &Suite) -> Result<Vec<NamedCheck>, AppError> {
    let located = |message: String| suite.located(decl, &message);
    if decl.params.contains_key("expect_code") && suite.settings.errors.code_pointer.is_empty() {
        return Err(located(
            "`expect_code` needs an error code, but [errors] code_pointer is empty (this suite's errors carry none): tell the error by `expect_message`".into(),
        ));
    }
    let checks = build_kind(decl).map_err(located)?;
    for (_, check) in &checks {
        if let Some(missing) = check
            .schemas(&suite.settings)
            .iter()
            .find(|name| !suite.has_schema(name))
        {
            return Err(located(format!(
                "uses schema `{missing}`, which neither [schemas] nor [openapi.schemas] names"
            )));
        }
    }
    Ok(checks)
}

/// Build the checks of the declaration's kind.
fn build_kind(decl: &CheckDecl) -> Result<Vec<NamedCheck>, String> {
    let Some((_, builder)) = KINDS.iter().find(|(name, _)| *name == decl.kind) else {
        let known: Vec<&str> = KINDS.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "unknown kind `{}` (known kinds: {})",
            decl.kind,
            known.join(", ")
        ));
    };
    builder(decl)
}

/// Builds a kind's checks from a check's table: one check, or one per input for a kind
/// that expands (`job_lifecycle`).
type Builder = fn(&CheckDecl) -> Result<Vec<NamedCheck>, String>;

/// Every kind a suite may name, and how it is built from its parameters.
pub const KINDS: &[(&str, Builder)] = &[
    ("response_schema", kind::<schema::ResponseSchema>),
    ("job_identity", kind::<schema::JobIdentity>),
    ("job_invariants", kind::<schema::JobInvariants>),
    ("auth_accepted", kind::<auth::AuthAccepted>),
    ("auth_rejected", kind::<auth::AuthRejected>),
    ("cross_tenant", kind::<auth::CrossTenant>),
    ("secret_not_echoed", kind::<auth::SecretNotEchoed>),
    ("error_envelope", kind::<errors::ErrorEnvelope>),
    ("not_found", kind::<errors::NotFound>),
    ("malformed_id", |decl| {
        one(decl, errors::MalformedId::new(params(decl)?)?)
    }),
    ("error_request_id", kind::<observability::ErrorRequestId>),
    ("request_id_header", kind::<observability::RequestIdHeader>),
    ("request_id_unique", kind::<observability::RequestIdUnique>),
    (
        "request_id_consistent",
        kind::<observability::RequestIdConsistent>,
    ),
    ("logs_contain_ids", kind::<observability::LogsContainIds>),
    ("rate_limit_burst", kind::<rate_limit::BurstLimited>),
    ("rate_limit_hints", kind::<rate_limit::BurstHints>),
    ("rate_limit_recovery", kind::<rate_limit::BurstRecovery>),
    ("reads_are_safe", kind::<idempotency::ReadsAreSafe>),
    ("idempotent_create", kind::<idempotency::IdempotentCreate>),
    ("idempotency_key_reuse", kind::<idempotency::KeyReuse>),
    (
        "idempotent_concurrent_create",
        kind::<idempotency::ConcurrentCreate>,
    ),
    (
        "idempotency_tenant_scoped",
        kind::<idempotency::TenantScoped>,
    ),
    ("start_charges_once", kind::<idempotency::StartOnce>),
    ("job_lifecycle", lifecycle::expand),
    ("manual_start", kind::<lifecycle::ManualStart>),
    ("latency", kind::<latency::Latency>),
    ("response_header", kind::<headers::ResponseHeader>),
    ("insufficient_credits", kind::<credits::InsufficientCredits>),
    ("upload_accepted", kind::<uploads::UploadAccepted>),
    ("upload_reply", kind::<uploads::UploadReply>),
    ("upload_video_url", kind::<uploads::UploadVideoUrl>),
    ("upload_wrong_type", kind::<uploads::UploadWrongType>),
    ("upload_oversize", kind::<uploads::UploadOversize>),
    (
        "documented_response",
        kind::<documented::DocumentedResponse>,
    ),
    ("invalid_request", kind::<errors::InvalidRequest>),
    ("published_rates", kind::<pricing::PublishedRates>),
    ("job_charge", kind::<pricing::JobCharge>),
    ("download_before_completion", |decl| {
        one(decl, download::BeforeCompletion::new(params(decl)?)?)
    }),
    ("download_completed", |decl| {
        one(decl, download::Completed::new(params(decl)?)?)
    }),
    ("usage_in_range", kind::<usage::UsageInRange>),
    ("out_of_range", kind::<usage::OutOfRange>),
    ("usage_job_event", kind::<usage::JobEvent>),
    ("webhook_order", |decl| {
        webhooks::build(decl, webhooks::Aspect::Order)
    }),
    ("webhook_event_header", |decl| {
        webhooks::build(decl, webhooks::Aspect::EventHeader)
    }),
    ("webhook_delivery_ids", |decl| {
        webhooks::build(decl, webhooks::Aspect::DeliveryIds)
    }),
    ("webhook_timestamp", |decl| {
        webhooks::build(decl, webhooks::Aspect::Timestamp)
    }),
    ("webhook_signature", |decl| {
        webhooks::build(decl, webhooks::Aspect::Signature)
    }),
    ("webhook_names_job", |decl| {
        webhooks::build(decl, webhooks::Aspect::NamesJob)
    }),
    ("webhook_recorded", |decl| {
        webhooks::build(decl, webhooks::Aspect::Recorded)
    }),
    ("webhook_retry", |decl| {
        webhooks::build(decl, webhooks::Aspect::Retry)
    }),
];

/// A kind whose parameters deserialize straight into its one check.
fn kind<T: Check + DeserializeOwned + 'static>(
    decl: &CheckDecl,
) -> Result<Vec<NamedCheck>, String> {
    one(decl, params::<T>(decl)?)
}

/// The declaration's one check, under its name.
fn one(decl: &CheckDecl, check: impl Check + 'static) -> Result<Vec<NamedCheck>, String> {
    Ok(vec![(decl.name.clone(), Box::new(check))])
}

/// The kind's parameters from the check's table; unknown fields are errors.
pub(crate) fn params<T: DeserializeOwned>(decl: &CheckDecl) -> Result<T, String> {
    toml::Value::Table(decl.params.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())
}

/// How `--dry-run` marks a request with side effects.
const WRITES: &str = "[side effect: creates a job, may spend credits]";

/// `--dry-run` lines for suite requests.
fn planned<'a>(requests: impl IntoIterator<Item = &'a RequestSpec>) -> Vec<String> {
    requests
        .into_iter()
        .map(|r| {
            let effect = if r.writes() {
                format!(" {WRITES}")
            } else {
                String::new()
            };
            format!("{}{effect}", r.describe())
        })
        .collect()
}

/// `--dry-run` lines for reading the side-effect oracle `when` (before or after).
fn oracle_plan(settings: &Settings, when: &str) -> Vec<String> {
    let usage = &settings.usage;
    let mut lines = vec![format!(
        "GET {} ({when}, to observe side effects)",
        usage.jobs_path
    )];
    if !usage.events_path.is_empty() {
        lines.push(format!("GET {} ({when})", usage.events_path));
    }
    lines
}

/// `lines` between oracle reads before and after.
fn with_oracle(settings: &Settings, lines: Vec<String>) -> Vec<String> {
    let mut plan = oracle_plan(settings, "before");
    plan.extend(lines);
    plan.extend(oracle_plan(settings, "after"));
    plan
}

/// A finding of `rule` when `response`'s status is not in `expected`.
fn status_finding(rule: &str, response: &Response, expected: &StatusSet) -> Option<Finding> {
    (!expected.contains(response.status)).then(|| {
        Finding::new(
            rule,
            format!(
                "expected status {expected}, got {}; body: {}",
                response.status_from(),
                response.body_excerpt(200)
            ),
        )
        .expected(expected)
        .actual(response.status)
        .cites(response)
    })
}

/// A schema violation in `response` as a finding of `rule`: where, which keyword, which value.
fn violation_finding(
    rule: impl Into<String>,
    violation: &Violation,
    message: String,
    response: &Response,
) -> Finding {
    Finding::new(rule, message)
        .expected(&violation.rule)
        .actual(&violation.value)
        .at(&violation.path)
        .cites(response)
}

/// Findings when `response` is not a valid error envelope per the suite's error schema.
fn envelope_findings(schemas: &SchemaSet, settings: &Settings, response: &Response) -> Findings {
    const RULE: &str = "errors.envelope";
    let schema = &settings.errors.schema;
    let Some(json) = &response.json else {
        let problem = response.json_problem().unwrap_or_default();
        return vec![Finding::new(
            RULE,
            format!(
                "expected an error envelope (schema `{schema}`) in {}, but {problem}; body: {}",
                response.label(),
                response.body_excerpt(200)
            ),
        )
        .expected("a JSON error envelope")
        .actual(problem)
        .cites(response)];
    };
    schemas
        .violations(schema, json)
        .iter()
        .map(|v| {
            let message = format!(
                "error envelope (schema `{schema}`) {v}, in {}; body: {}",
                response.label(),
                response.body_excerpt(200)
            );
            violation_finding(RULE, v, message, response)
        })
        .collect()
}

/// The new job's id from a create reply, or the finding of `rule` that says why there is none
/// (as the check's findings, which it returns at once).
fn created_job(
    settings: &Settings,
    reply: &Response,
    what: &str,
    rule: &str,
) -> Result<String, Findings> {
    settings
        .jobs
        .created_job_id(reply, what)
        .map_err(|message| vec![Finding::new(rule, message).cites(reply)])
}

/// The error code at the suite's code pointer, if any (none when its errors carry no code).
fn error_code<'r>(settings: &Settings, response: &'r Response) -> Option<&'r str> {
    let pointer = &settings.errors.code_pointer;
    if pointer.is_empty() {
        return None;
    }
    response.pointer(pointer)?.as_str()
}

/// Whether the suite's errors carry a code to judge (`[errors] code_pointer` is not empty).
fn errors_have_codes(settings: &Settings) -> bool {
    !settings.errors.code_pointer.is_empty()
}

/// How a finding about the refusal of client input begins when the server crashed on it: a
/// 5xx for input the client got wrong is the worse failure, and says so first.
fn client_input_severity(response: &Response) -> &'static str {
    if response.status >= 500 {
        "a 5xx for client input: "
    } else {
        ""
    }
}

/// Findings on the body of a refusal of client input: the suite's error envelope (a problem
/// document in its place said to be one), then `code` at `[errors] code_pointer` when the
/// suite's errors carry codes.
fn refusal_body_findings(
    schemas: &SchemaSet,
    settings: &Settings,
    code: &str,
    response: &Response,
) -> Findings {
    let findings = envelope_findings(schemas, settings, response);
    if !findings.is_empty() {
        if response.media_type().as_deref() == Some("application/problem+json") {
            return vec![Finding::new(
                "errors.problem_json",
                format!(
                    "an application/problem+json reply without the error envelope, in {}; body: {}",
                    response.label(),
                    response.body_excerpt(200)
                ),
            )
            .expected("the error envelope")
            .actual("application/problem+json")
            .cites(response)];
        }
        return findings;
    }
    if !errors_have_codes(settings) {
        return Vec::new();
    }
    match error_code(settings, response) {
        Some(seen) if seen == code => Vec::new(),
        seen => {
            let seen = seen.map(|c| format!("\"{c}\"")).unwrap_or("none".into());
            vec![Finding::new(
                "errors.code",
                format!(
                    "expected error code \"{code}\", saw {seen} in {}",
                    response.label()
                ),
            )
            .expected(format!("\"{code}\""))
            .actual(seen)
            .at(&settings.errors.code_pointer)
            .cites(response)]
        }
    }
}

/// A finding of `rule` when the error message (at `[errors] message_pointer`) does not contain
/// `expected`, ignoring case: how a suite tells apart the errors of an API that sends no code.
fn message_finding(
    settings: &Settings,
    response: &Response,
    expected: &str,
    rule: &str,
) -> Option<Finding> {
    let pointer = &settings.errors.message_pointer;
    let seen = response
        .pointer(pointer)
        .and_then(serde_json::Value::as_str);
    if seen.is_some_and(|m| m.to_lowercase().contains(&expected.to_lowercase())) {
        return None;
    }
    let (actual, message) = match seen {
        Some(m) => (
            format!("\"{m}\""),
            format!(
                "expected an error message containing \"{expected}\" at {pointer}, saw \"{m}\" in {}",
                response.label()
            ),
        ),
        None => (
            "none".into(),
            format!(
                "expected an error message containing \"{expected}\" at {pointer}, found none in {}: {}",
                response.label(),
                response.body_excerpt(200)
            ),
        ),
    };
    Some(
        Finding::new(rule, message)
            .expected(format!("\"{expected}\""))
            .actual(actual)
            .at(pointer)
            .cites(response),
    )
}

/// A finding of `rule` when the absolute `url` (named `what` in messages) cannot be fetched
/// without the key (HEAD, then GET). A link apiconform will not follow (see
/// [`crate::links`]) is noted, not judged.
async fn unfetchable(
    cx: &CheckContext<'_>,
    url: &str,
    rule: &str,
    what: &str,
) -> Result<Option<Finding>, Abort> {
    let mut last = String::new();
    let mut finding = Finding::new(rule, "");
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        let mut request = Outgoing::get(url);
        request.method = method;
        request.credential = Credential::Missing;
        match cx
            .client()
            .send(cx.name, &request, SendOptions::default())
            .await
        {
            Ok(response) if response.is_success() => return Ok(None),
            Ok(response) => {
                last = response.label();
                finding = finding.cites(&response);
            }
            Err(error) if error.kind == FailureKind::Refused => {
                cx.note(&format!("{what} was not fetched: {}", error.cause));
                return Ok(None);
            }
            Err(error) if error.is_transport() => last = error.to_string(),
            Err(error) => return Err(error.into()),
        }
    }
    finding.message = format!("{what} cannot be fetched: {last}");
    Ok(Some(finding))
}

/// Send each request in turn, stopping at the first transport error.
async fn send_all(cx: &CheckContext<'_>, requests: &[RequestSpec]) -> Result<Vec<Response>, Abort> {
    let mut responses = Vec::with_capacity(requests.len());
    for request in requests {
        responses.push(cx.send(request).await?);
    }
    Ok(responses)
}

/// The default "expect 2xx" for serde.
fn success() -> StatusSet {
    StatusSet::success()
}

/// The statuses a refusal of invalid input may have, for serde: 400 or 422.
fn invalid_input_statuses() -> StatusSet {
    StatusSet::exactly(&[400, 422])
}

/// The error code the contract gives a refusal of invalid input, for serde.
fn invalid_request_code() -> String {
    "invalid_request".into()
}
