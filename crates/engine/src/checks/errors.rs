//! `errors::*` kinds: error replies have the documented status and envelope, and odd input
//! is refused cleanly rather than crashing the server.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{envelope_findings, planned, send_all, status_finding, Check, Findings, Needs};
use crate::context::{Abort, CheckContext};
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
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned(&self.requests)
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of(&self.requests)
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
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned([&self.request])
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of([&self.request])
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
                    let severity = if response.status >= 500 {
                        "a 5xx for client input: "
                    } else {
                        ""
                    };
                    findings.push(finding.prefixed(&format!("id {shown:?}{more}: {severity}")));
                }
            }
            Ok(findings)
        }
        .boxed()
    }
}
