//! `errors::*` kinds: error replies have the documented status and envelope, and odd input
//! is refused cleanly rather than crashing the server.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{
    client_input_severity, envelope_findings, refusal_body_findings, send_all, status_finding,
    Check, Findings, Needs,
};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::schemas::SchemaSet;
use crate::suite::{PathTemplate, RequestSpec, Settings, StatusSet};

/// Every error reply to `requests` matches the suite's error schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorEnvelope {
    requests: Vec<RequestSpec>,
    /// Judge only replies with these statuses (say, the 401s of auth checks); default: every
    /// non-2xx reply.
    statuses: Option<StatusSet>,
}

impl Check for ErrorEnvelope {
    fn requests(&self) -> &[RequestSpec] {
        &self.requests
    }

    fn schemas(&self, settings: &Settings) -> Vec<String> {
        vec![settings.errors.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            let judged = |r: &&crate::client::Response| match &self.statuses {
                Some(statuses) => statuses.contains(r.status),
                None => !r.is_success(),
            };
            let errors: Vec<_> = responses.iter().filter(judged).collect();
            if errors.is_empty() {
                let which = match &self.statuses {
                    Some(statuses) => format!("a {statuses} reply"),
                    None => "an error reply".into(),
                };
                return Err(Abort::Ignored(format!(
                    "none of its requests got {which} to inspect"
                )));
            }
            Ok(errors
                .into_iter()
                .flat_map(|r| envelope_findings(cx.schemas(), cx.settings(), r))
                .collect())
        }
        .boxed()
    }
}

/// A resource that does not exist is `expect_status` (404) with the error envelope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotFound {
    request: RequestSpec,
    #[serde(default = "not_found")]
    expect_status: StatusSet,
}

fn not_found() -> StatusSet {
    StatusSet::exactly(&[404])
}

impl Check for NotFound {
    fn requests(&self) -> &[RequestSpec] {
        std::slice::from_ref(&self.request)
    }

    fn schemas(&self, settings: &Settings) -> Vec<String> {
        vec![settings.errors.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            if let Some(finding) = status_finding("errors.status", &response, &self.expect_status) {
                return Ok(vec![finding]);
            }
            Ok(envelope_findings(cx.schemas(), cx.settings(), &response))
        }
        .boxed()
    }
}

/// Suite parameters of [`MalformedId`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MalformedIdParams {
    /// A path with a `{malformed_id}` placeholder.
    path: PathTemplate,
    /// The ids to try; a built-in set of long and odd ids when absent.
    ids: Option<Vec<String>>,
    #[serde(default = "client_error")]
    expect_status: StatusSet,
}

fn client_error() -> StatusSet {
    StatusSet::exactly(&[400, 404])
}

/// Malformed ids (very long, odd characters) are refused with a 4xx, never a 5xx.
#[derive(Debug)]
pub struct MalformedId {
    path: PathTemplate,
    ids: Vec<String>,
    expect_status: StatusSet,
}

impl MalformedId {
    pub fn new(params: MalformedIdParams) -> Result<MalformedId, String> {
        if !params.path.uses("malformed_id") {
            return Err(format!(
                "path `{}` must contain {{malformed_id}}",
                params.path.0
            ));
        }
        let ids = params.ids.unwrap_or_else(default_malformed_ids);
        if ids.is_empty() {
            return Err("`ids` must list at least one id".into());
        }
        Ok(MalformedId {
            path: params.path,
            ids,
            expect_status: params.expect_status,
        })
    }
}

/// Ids that commonly break naive servers: length, quoting, encoding, traversal, templates.
fn default_malformed_ids() -> Vec<String> {
    vec![
        "j".repeat(4096),
        "' OR '1'='1".into(),
        "<script>alert(1)</script>".into(),
        "../../etc/passwd".into(),
        "%00".into(),
        "\u{0}nul".into(),
        "job id with spaces".into(),
        "💥🎬".into(),
        "{{7*7}}".into(),
        "-1".into(),
        "null".into(),
    ]
}

impl Check for MalformedId {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        vec![format!(
            "GET {} x {} malformed ids (long, quotes, markup, NUL, emoji, ...)",
            self.path.0,
            self.ids.len()
        )]
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::default()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let mut findings = Vec::new();
            for id in &self.ids {
                let request = RequestSpec::get(&self.path.fill("malformed_id", id).0);
                let response = cx.send(&request).await?;
                if let Some(finding) =
                    status_finding("errors.malformed_id", &response, &self.expect_status)
                {
                    let shown: String = id.chars().take(40).collect();
                    let more = if id.chars().count() > 40 {
                        format!("... ({} chars)", id.chars().count())
                    } else {
                        String::new()
                    };
                    let severity = client_input_severity(&response);
                    findings.push(finding.prefixed(&format!("id {shown:?}{more}: {severity}")));
                }
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// Creates with invalid input (a field missing or malformed, an unknown value, a body that is
/// not JSON) are refused with `expect_status` (400 or 422), the error envelope and
/// `expect_code` (judged when `[errors] code_pointer` is set); never a 5xx, and never a problem document in place of the envelope.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidRequest {
    requests: Vec<RequestSpec>,
    #[serde(default = "super::invalid_input_statuses")]
    expect_status: StatusSet,
    #[serde(default = "super::invalid_request_code")]
    expect_code: String,
}

impl Check for InvalidRequest {
    fn requests(&self) -> &[RequestSpec] {
        &self.requests
    }

    fn schemas(&self, settings: &Settings) -> Vec<String> {
        vec![settings.errors.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            Ok(self
                .requests
                .iter()
                .zip(&responses)
                .flat_map(|(request, response)| {
                    judge_invalid(
                        cx.schemas(),
                        cx.settings(),
                        &self.expect_status,
                        &self.expect_code,
                        response,
                    )
                    .into_iter()
                    .map(move |f| f.prefixed(&format!("{}: ", input_of(request))))
                })
                .collect())
        }
        .boxed()
    }
}

/// What a request sends, shortly, to say which input a finding is about.
fn input_of(request: &RequestSpec) -> String {
    let body = match (&request.body, &request.raw_body) {
        (Some(json), _) => json.to_string(),
        (None, Some(raw)) => format!("the raw body {raw:?}"),
        (None, None) => "no body".into(),
    };
    let shown: String = body.chars().take(80).collect();
    format!("{} {}", request.method, shown)
}

/// The refusal of invalid input: the status (a 5xx said to be one), then the body.
fn judge_invalid(
    schemas: &SchemaSet,
    settings: &Settings,
    expected: &StatusSet,
    code: &str,
    response: &Response,
) -> Findings {
    if let Some(finding) = status_finding("errors.invalid_request", response, expected) {
        return vec![finding.prefixed(client_input_severity(response))];
    }
    refusal_body_findings(schemas, settings, code, response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Suite;

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn invalid_input_is_refused_with_the_envelope_and_the_code() {
        let suite = Suite::load(None).unwrap();
        let schemas = SchemaSet::load(&suite).unwrap();
        let judge = |status, headers: &[(&str, &str)], body: &str| {
            judge_invalid(
                &schemas,
                &suite.settings,
                &crate::checks::invalid_input_statuses(),
                "invalid_request",
                &Response::for_test(status, headers, body),
            )
        };
        let refusal =
            r#"{"error": {"code": "invalid_request", "message": "no", "request_id": "r1"}}"#;
        assert_eq!(judge(400, &[JSON], refusal), []);
        assert_eq!(judge(422, &[JSON], refusal), []);
        let crash = judge(
            500,
            &[JSON],
            &refusal.replace("invalid_request", "internal_error"),
        );
        assert_eq!(crash[0].rule, "errors.invalid_request");
        assert!(crash[0].message.starts_with("a 5xx"), "{crash:?}");
        assert_eq!(
            judge(201, &[JSON], r#"{"id": "j"}"#)[0].rule,
            "errors.invalid_request"
        );
        let problem = judge(
            400,
            &[("content-type", "application/problem+json")],
            r#"{"type": "about:blank", "title": "Bad Request", "status": 400}"#,
        );
        assert_eq!(problem[0].rule, "errors.problem_json");
        assert_eq!(problem.len(), 1);
        let other = judge(
            400,
            &[JSON],
            &refusal.replace("invalid_request", "validation_error"),
        );
        assert_eq!(other[0].rule, "errors.code");
    }
}
