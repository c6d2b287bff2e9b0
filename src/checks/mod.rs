//! Check kinds: written once in Rust, instantiated by the suite with their parameters.
//!
//! A suite's `[[check]]` names a `kind`; [`build`] turns the table into a [`Check`]. A kind
//! reports findings (contract violations, as messages that say what was expected, what was
//! seen and which request id); the runner turns them into an outcome by the check's level.

mod auth;
mod errors;
mod observability;
mod schema;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;

use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::error::AppError;
use crate::suite::{CheckDecl, Credential, RequestSpec, Settings, StatusSet, Suite};

/// Contract violations a check saw; empty when it passed.
pub type Findings = Vec<String>;

/// What a check needs before it can run. Unmet needs make it ignored, with the reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A job to read (`{job_id}` in a path).
    pub job: bool,
    /// Requests with side effects.
    pub writes: bool,
    pub second_key: bool,
    /// A key whose tenant has no credits.
    pub broke_key: bool,
    pub logs: bool,
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

    /// Short words for `--list`.
    pub fn describe(&self) -> String {
        let mut words = Vec::new();
        if self.job {
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
        words.join(", ")
    }
}

/// One check kind, configured.
pub trait Check: Send + Sync {
    fn needs(&self) -> Needs;

    /// Schema names it validates against, so a missing schema is caught at load time.
    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        Vec::new()
    }

    /// Run the check and report what it found.
    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>>;
}

/// Build the check a suite declares, or say exactly what is wrong with its table.
pub fn build(decl: &CheckDecl, suite: &Suite) -> Result<Box<dyn Check>, AppError> {
    let located = |message: String| suite.located(decl, &message);
    let check: Box<dyn Check> = match decl.kind.as_str() {
        "response_schema" => Box::new(params::<schema::ResponseSchema>(decl).map_err(located)?),
        "job_identity" => Box::new(params::<schema::JobIdentity>(decl).map_err(located)?),
        "job_invariants" => Box::new(params::<schema::JobInvariants>(decl).map_err(located)?),
        "auth_accepted" => Box::new(params::<auth::AuthAccepted>(decl).map_err(located)?),
        "auth_rejected" => Box::new(params::<auth::AuthRejected>(decl).map_err(located)?),
        "cross_tenant" => Box::new(params::<auth::CrossTenant>(decl).map_err(located)?),
        "secret_not_echoed" => Box::new(params::<auth::SecretNotEchoed>(decl).map_err(located)?),
        "error_envelope" => Box::new(params::<errors::ErrorEnvelope>(decl).map_err(located)?),
        "not_found" => Box::new(params::<errors::NotFound>(decl).map_err(located)?),
        "malformed_id" => {
            Box::new(errors::MalformedId::new(params(decl).map_err(located)?).map_err(located)?)
        }
        "error_request_id" => {
            Box::new(params::<observability::ErrorRequestId>(decl).map_err(located)?)
        }
        "request_id_header" => {
            Box::new(params::<observability::RequestIdHeader>(decl).map_err(located)?)
        }
        "request_id_unique" => {
            Box::new(params::<observability::RequestIdUnique>(decl).map_err(located)?)
        }
        "request_id_consistent" => {
            Box::new(params::<observability::RequestIdConsistent>(decl).map_err(located)?)
        }
        "logs_contain_ids" => {
            Box::new(params::<observability::LogsContainIds>(decl).map_err(located)?)
        }
        other => {
            return Err(located(format!(
                "unknown kind `{other}` (known kinds: {})",
                KINDS.join(", ")
            )));
        }
    };
    if let Some(missing) = check
        .schemas(&suite.settings)
        .iter()
        .find(|name| !suite.schemas.contains_key(*name))
    {
        return Err(located(format!(
            "uses schema `{missing}`, which [schemas] does not name"
        )));
    }
    Ok(check)
}

/// Every kind [`build`] knows, for messages and documentation.
pub const KINDS: &[&str] = &[
    "response_schema",
    "job_identity",
    "job_invariants",
    "auth_accepted",
    "auth_rejected",
    "cross_tenant",
    "secret_not_echoed",
    "error_envelope",
    "not_found",
    "malformed_id",
    "error_request_id",
    "request_id_header",
    "request_id_unique",
    "request_id_consistent",
    "logs_contain_ids",
];

/// The kind's parameters from the check's table; unknown fields are errors.
fn params<T: DeserializeOwned>(decl: &CheckDecl) -> Result<T, String> {
    toml::Value::Table(decl.params.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().trim().to_string())
}

/// A finding when `response`'s status is not in `expected`.
fn status_finding(response: &Response, expected: &StatusSet) -> Option<String> {
    (!expected.contains(response.status)).then(|| {
        format!(
            "expected status {expected}, got {}; body: {}",
            response.label(),
            response.body_excerpt(200)
        )
    })
}

/// Findings when `response` is not a valid error envelope per the suite's error schema.
fn envelope_findings(cx: &CheckContext, response: &Response) -> Findings {
    let schema = &cx.settings().errors.schema;
    let Some(json) = &response.json else {
        return vec![format!(
            "expected an error envelope (schema `{schema}`), got a body that is not JSON from {}: {}",
            response.label(),
            response.body_excerpt(200)
        )];
    };
    cx.schemas()
        .violations(schema, json)
        .into_iter()
        .map(|v| {
            format!(
                "error envelope (schema `{schema}`) {v}, in {}",
                response.label()
            )
        })
        .collect()
}

/// The error code at the suite's code pointer, if any.
fn error_code<'r>(cx: &CheckContext, response: &'r Response) -> Option<&'r str> {
    response
        .pointer(&cx.settings().errors.code_pointer)?
        .as_str()
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
