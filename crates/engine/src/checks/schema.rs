//! `schema::*` kinds: a documented response has the right status, media type and shape.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::{planned, status_finding, success, violation_finding, Check, Finding, Findings, Needs};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::jobs::{id_text, invariant_findings, shown};
use crate::schemas::SchemaSet;
use crate::suite::{JobSettings, RequestSpec, Settings, StatusSet};

/// The response to `request` has an expected status, a JSON media type, and matches `schema`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSchema {
    request: RequestSpec,
    schema: String,
    #[serde(default = "success")]
    expect_status: StatusSet,
}

impl Check for ResponseSchema {
    fn requests(&self) -> &[RequestSpec] {
        std::slice::from_ref(&self.request)
    }

    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        vec![self.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            Ok(judge_schema(
                cx.schemas(),
                &self.schema,
                &self.expect_status,
                &response,
            ))
        }
        .boxed()
    }
}

/// `response` has a status in `expected`, one JSON media type, and a body that matches
/// schema `name`; each schema violation is a `schema.<keyword>` finding.
pub(super) fn judge_schema(
    schemas: &SchemaSet,
    name: &str,
    expected: &StatusSet,
    response: &Response,
) -> Findings {
    if let Some(finding) = media_type_finding(response) {
        return vec![finding];
    }
    let json = match json_body(response, expected) {
        Ok(json) => json,
        Err(findings) => return findings,
    };
    let mut findings: Findings = schemas
        .violations(name, json)
        .iter()
        .map(|v| {
            let message = format!("schema `{name}` {v}, in {}", response.label());
            violation_finding(format!("schema.{}", v.rule), v, message, response)
        })
        .collect();
    findings.extend(schemas.drift(name, json).into_iter().map(|drift| {
        Finding::new(
            crate::finding::DRIFT_FIELD,
            format!(
                "at {}: a field schema `{name}` does not declare, in {}",
                drift.path,
                response.label()
            ),
        )
        .at(drift.path)
        .cites(response)
    }));
    findings
}

/// The job read at `{job_id}` carries that same id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobIdentity {
    request: RequestSpec,
}

impl Check for JobIdentity {
    fn requests(&self) -> &[RequestSpec] {
        std::slice::from_ref(&self.request)
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            let json = match json_body(&response, &StatusSet::success()) {
                Ok(json) => json,
                Err(findings) => return Ok(findings),
            };
            let pointer = &cx.settings().jobs.id_pointer;
            let expected = cx.job_id.as_deref().unwrap_or_default();
            let seen = json.pointer(pointer);
            let matches = id_text(seen).as_deref() == Some(expected);
            Ok(if matches {
                Vec::new()
            } else {
                vec![Finding::new(
                    "schema.job_id",
                    format!(
                        "at {pointer}: the job read must carry the id in its path, \"{expected}\"; saw {} in {}",
                        shown(seen),
                        response.label()
                    ),
                )
                .expected(expected)
                .actual(shown(seen))
                .at(pointer)
                .cites(&response)]
            })
        }
        .boxed()
    }
}

/// The job read obeys the status invariants (docs/contract.md section 3).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobInvariants {
    request: RequestSpec,
}

impl Check for JobInvariants {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned([&self.request])
    }

    /// A finished job, so the rules of the terminal states (output, error) are judged too.
    fn needs(&self, _settings: &Settings) -> Needs {
        let needs = Needs::of([&self.request]);
        Needs {
            finished_job: needs.job,
            ..needs
        }
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            Ok(match json_body(&response, &StatusSet::success()) {
                Ok(json) => invariant_findings_in(json, &cx.settings().jobs, &response),
                Err(findings) => findings,
            })
        }
        .boxed()
    }
}

/// The status invariants `job` (read in `response`) breaks, each naming and citing it.
pub(super) fn invariant_findings_in(
    job: &Value,
    settings: &JobSettings,
    response: &Response,
) -> Findings {
    invariant_findings(job, settings)
        .into_iter()
        .map(|f| {
            f.suffixed(&format!(", in {}", response.label()))
                .cites(response)
        })
        .collect()
}

/// A finding when a successful response does not say it is JSON.
fn media_type_finding(response: &Response) -> Option<Finding> {
    let media_type = response.media_type();
    let is_json = media_type
        .as_deref()
        .is_some_and(|m| m == "application/json" || m.ends_with("+json"));
    let copies = response.header_count("content-type");
    if !response.is_success() || (is_json && copies <= 1) {
        return None;
    }
    let seen = if copies > 1 {
        let all: Vec<&str> = response
            .headers
            .iter()
            .filter(|(n, _)| n == "content-type")
            .map(|(_, v)| v.as_str())
            .collect();
        format!("the header duplicated, {copies} times ({})", all.join(", "))
    } else {
        media_type
            .map(|m| format!("\"{m}\""))
            .unwrap_or_else(|| "no Content-Type".into())
    };
    let body = response
        .json_problem()
        .map(|p| format!("; {p}"))
        .unwrap_or_default();
    let message = format!(
        "expected one Content-Type application/json, saw {seen} in {}{body}",
        response.label()
    );
    Some(
        Finding::new("schema.media_type", message)
            .expected("one Content-Type application/json")
            .actual(seen)
            .cites(response),
    )
}

/// The JSON body of a response with an expected status, or the finding (as the check's
/// findings, which it returns at once).
fn json_body<'r>(response: &'r Response, expected: &StatusSet) -> Result<&'r Value, Findings> {
    if let Some(finding) = status_finding("schema.status", response, expected) {
        return Err(vec![finding]);
    }
    if response.truncated {
        let message = format!(
            "the body is larger than the cap and was cut, in {}",
            response.label()
        );
        return Err(vec![
            Finding::new("schema.body_cut", message).cites(response)
        ]);
    }
    response.json.as_ref().ok_or_else(|| {
        let problem = response.json_problem().unwrap_or_default();
        let message = format!("{problem} in {}", response.label());
        vec![Finding::new("schema.not_json", message)
            .expected("a JSON body")
            .actual(problem)
            .cites(response)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Suite;

    fn bundled() -> SchemaSet {
        SchemaSet::load(&Suite::load(None).unwrap()).unwrap()
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn schema_findings_carry_keyword_pointer_value_and_exchange() {
        let mut response = Response::for_test(
            200,
            &[JSON],
            r#"{"id": "job_1", "status": "processing", "progress": "50", "output_url": null,
                "error": null, "created_at": "2026-11-27T12:00:00Z"}"#,
        );
        response.exchange = 3;
        let findings = judge_schema(&bundled(), "job", &StatusSet::success(), &response);
        let progress = findings
            .iter()
            .find(|f| f.pointer.as_deref() == Some("/progress"))
            .unwrap_or_else(|| panic!("{findings:?}"));
        assert_eq!(progress.rule, "schema.type");
        assert_eq!(progress.expected.as_deref(), Some("type"));
        assert_eq!(progress.actual.as_deref(), Some("\"50\""));
        assert_eq!(progress.exchanges, [3]);
        assert!(progress.message.starts_with("schema `job` at /progress"));
    }

    #[test]
    fn status_media_type_and_body_come_before_the_schema() {
        let schemas = bundled();
        let judge = |r: &Response| judge_schema(&schemas, "job", &StatusSet::success(), r);
        let refused = judge(&Response::for_test(500, &[JSON], "{}"));
        assert_eq!(refused[0].rule, "schema.status");
        assert_eq!(refused[0].actual.as_deref(), Some("500"));
        let html = judge(&Response::for_test(
            200,
            &[("Content-Type", "text/html")],
            "<p>",
        ));
        assert_eq!(html[0].rule, "schema.media_type");
        assert_eq!(html[0].actual.as_deref(), Some("\"text/html\""));
        let broken = judge(&Response::for_test(200, &[JSON], "{"));
        assert_eq!(broken[0].rule, "schema.not_json");
        let missing = judge(&Response::for_test(200, &[JSON], "{}"));
        assert!(
            missing.iter().all(|f| f.rule == "schema.required"),
            "{missing:?}"
        );
    }
}
