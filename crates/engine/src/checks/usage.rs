//! `usage::*` kinds: the usage summary and events answer their documented parameters, values
//! out of range are refused cleanly or clamped, and a charged job shows in the events
//! (docs/contract.md section 2; the events' pointers are in `[usage]`).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::schema::judge_schema;
use super::{
    client_input_severity, refusal_body_findings, send_all, success, Check, Finding, Findings,
    Needs,
};
use crate::client::{Outgoing, Response};
use crate::context::{Abort, CheckContext};
use crate::jobs::{id_text, shown};
use crate::schemas::SchemaSet;
use crate::suite::{RequestSpec, Settings, StatusSet};

/// The summary at each of `days` and the events at each of `limits` (values in the documented
/// ranges) answer 2xx with their schemas, and no page of events is longer than its `limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageInRange {
    /// The summary's path, without its query.
    summary_path: String,
    #[serde(default = "day_range")]
    days: Vec<u32>,
    summary_schema: String,
    /// The events' path, without its query.
    events_path: String,
    #[serde(default = "limit_range")]
    limits: Vec<u32>,
    events_schema: String,
}

fn day_range() -> Vec<u32> {
    vec![1, 30, 90]
}

fn limit_range() -> Vec<u32> {
    vec![1, 100]
}

impl UsageInRange {
    fn summary(&self, days: u32) -> String {
        format!("{}?days={days}", self.summary_path)
    }

    fn events(&self, limit: u32) -> String {
        format!("{}?limit={limit}", self.events_path)
    }
}

impl Check for UsageInRange {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::default()
    }

    fn plan(&self, _settings: &Settings) -> Vec<String> {
        let summaries = self
            .days
            .iter()
            .map(|d| format!("GET {}", self.summary(*d)));
        let events = self
            .limits
            .iter()
            .map(|l| format!("GET {}", self.events(*l)));
        summaries.chain(events).collect()
    }

    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        vec![self.summary_schema.clone(), self.events_schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let mut findings = Vec::new();
            for days in &self.days {
                let response = cx
                    .send_outgoing(&Outgoing::get(self.summary(*days)))
                    .await?;
                findings.extend(judge_schema(
                    cx.schemas(),
                    &self.summary_schema,
                    &success(),
                    &response,
                ));
            }
            for limit in &self.limits {
                let response = cx
                    .send_outgoing(&Outgoing::get(self.events(*limit)))
                    .await?;
                findings.extend(judge_events_page(
                    cx.schemas(),
                    &self.events_schema,
                    &cx.settings().usage.events_pointer,
                    *limit,
                    &response,
                ));
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// A page of events matches `schema` and holds at most `limit` events at `pointer`.
fn judge_events_page(
    schemas: &SchemaSet,
    schema: &str,
    pointer: &str,
    limit: u32,
    response: &Response,
) -> Findings {
    let mut findings = judge_schema(schemas, schema, &success(), response);
    let count = events_at(response, pointer).map(Vec::len).unwrap_or(0);
    if findings.is_empty() && count > limit as usize {
        findings.push(
            Finding::new(
                "usage.limit",
                format!(
                    "at {pointer}: asked for at most {limit} events, got {count} in {}",
                    response.label()
                ),
            )
            .expected(format!("at most {limit}"))
            .actual(count)
            .at(pointer)
            .cites(response),
        );
    }
    findings
}

/// The array of events at `pointer`, or the body itself when it is a bare array.
fn events_at<'r>(response: &'r Response, pointer: &str) -> Option<&'r Vec<Value>> {
    match (response.pointer(pointer), &response.json) {
        (Some(Value::Array(items)), _) | (None, Some(Value::Array(items))) => Some(items),
        _ => None,
    }
}

/// Values out of their documented range are refused with `refused_status` and the error
/// envelope with `expect_code` (judged when `[errors] code_pointer` is set), or clamped (any 2xx); never a 5xx or another status.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutOfRange {
    requests: Vec<RequestSpec>,
    #[serde(default = "super::invalid_input_statuses")]
    refused_status: StatusSet,
    #[serde(default = "super::invalid_request_code")]
    expect_code: String,
}

impl Check for OutOfRange {
    fn requests(&self) -> &[RequestSpec] {
        &self.requests
    }

    fn schemas(&self, settings: &Settings) -> Vec<String> {
        vec![settings.errors.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            Ok(responses
                .iter()
                .flat_map(|r| {
                    judge_refused_or_clamped(
                        cx.schemas(),
                        cx.settings(),
                        &self.refused_status,
                        &self.expect_code,
                        r,
                    )
                })
                .collect())
        }
        .boxed()
    }
}

/// A 2xx (the value was clamped) passes; a refusal has a status in `refused`, the envelope and
/// `code`; anything else is a finding (a 5xx said to be one).
pub(super) fn judge_refused_or_clamped(
    schemas: &SchemaSet,
    settings: &Settings,
    refused: &StatusSet,
    code: &str,
    response: &Response,
) -> Findings {
    if response.is_success() {
        return Vec::new();
    }
    if !refused.contains(response.status) {
        let severity = client_input_severity(response);
        return vec![Finding::new(
            "errors.out_of_range",
            format!(
                "{severity}expected {refused} ({code}) or a 2xx with the value clamped, got {}; body: {}",
                response.status_from(),
                response.body_excerpt(200)
            ),
        )
        .expected(format!("{refused} or 2xx"))
        .actual(response.status)
        .cites(response)];
    }
    refusal_body_findings(schemas, settings, code, response)
}

/// After the run's job was charged (it finished), a usage event names it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobEvent {}

impl Check for JobEvent {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs {
            job: true,
            finished_job: true,
            ..Needs::default()
        }
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        planned_events(settings)
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let job_id = cx.job_id.clone().unwrap_or_default();
            let (events, listing) = job_events(cx, &job_id).await?;
            if !events.is_empty() {
                return Ok(Vec::new());
            }
            let usage = &cx.settings().usage;
            let page = events_at(&listing, &usage.events_pointer).map_or(0, Vec::len);
            if page >= MAX_EVENTS_PAGE {
                // A job of `--job-id` may be older than the newest page of events.
                return Err(Abort::Ignored(format!(
                    "no event names job {job_id}, but the page of events is full ({page}): its event may be older"
                )));
            }
            let pointer = &usage.event_job_pointer;
            Ok(vec![Finding::new(
                "usage.job_event",
                format!(
                    "the run's finished job {job_id} was charged, but no usage event names it at {pointer}, in {}",
                    listing.label()
                ),
            )
            .expected(format!("an event with {pointer} = \"{job_id}\""))
            .actual("none")
            .at(pointer)
            .cites(&listing)])
        }
        .boxed()
    }
}

/// The most events one page holds (`limit` is at most 100, docs/contract.md section 2).
const MAX_EVENTS_PAGE: usize = 100;

/// `--dry-run` lines for reading the usage events.
pub(super) fn planned_events(settings: &Settings) -> Vec<String> {
    vec![format!(
        "GET {} (the usage events, for those that name the job)",
        settings.usage.events_path
    )]
}

/// The usage events that name `job_id` (at `[usage] event_job_pointer`), and the reply they
/// were read from. An events page that does not answer as `[usage]` says cannot be judged.
pub(super) async fn job_events(
    cx: &CheckContext<'_>,
    job_id: &str,
) -> Result<(Vec<Value>, Response), Abort> {
    let usage = &cx.settings().usage;
    if usage.events_path.is_empty() {
        return Err(Abort::Ignored(
            "the suite names no usage events ([usage] events_path)".into(),
        ));
    }
    let mut request = Outgoing::get(usage.events_path.clone());
    request.job_id = Some(job_id.to_string());
    let response = cx.send_outgoing(&request).await?;
    if !response.is_success() {
        return Err(Abort::Errored(format!(
            "cannot read the usage events: expected 2xx from {}, body: {}",
            response.label(),
            response.body_excerpt(200)
        )));
    }
    let Some(events) = events_at(&response, &usage.events_pointer) else {
        return Err(Abort::Ignored(format!(
            "cannot read the usage events: expected an array at {} in {}, saw {}; describe them in the suite's [usage] table",
            usage.events_pointer,
            response.label(),
            shown(response.pointer(&usage.events_pointer))
        )));
    };
    let naming = events
        .iter()
        .filter(|e| id_text(e.pointer(&usage.event_job_pointer)).as_deref() == Some(job_id))
        .cloned()
        .collect();
    Ok((naming, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Suite;

    const JSON: (&str, &str) = ("content-type", "application/json");

    fn bundled() -> (Suite, SchemaSet) {
        let suite = Suite::load(None).unwrap();
        let schemas = SchemaSet::load(&suite).unwrap();
        (suite, schemas)
    }

    #[test]
    fn a_page_of_events_keeps_to_its_limit() {
        let (_, schemas) = bundled();
        let judge = |limit, body: &str| {
            judge_events_page(
                &schemas,
                "usage_events",
                "/events",
                limit,
                &Response::for_test(200, &[JSON], body),
            )
        };
        let two = r#"{"events": [{"id": "e1"}, {"id": "e2"}]}"#;
        assert_eq!(judge(2, two), []);
        assert_eq!(judge(1, two)[0].rule, "usage.limit");
        assert_eq!(judge(1, r#"{"data": []}"#)[0].rule, "schema.required");
    }

    #[test]
    fn out_of_range_is_refused_with_the_code_or_clamped_never_5xx() {
        let (suite, schemas) = bundled();
        let judge = |status, body: &str| {
            judge_refused_or_clamped(
                &schemas,
                &suite.settings,
                &crate::checks::invalid_input_statuses(),
                "invalid_request",
                &Response::for_test(status, &[JSON], body),
            )
        };
        let refusal =
            r#"{"error": {"code": "invalid_request", "message": "days", "request_id": "r1"}}"#;
        assert_eq!(judge(400, refusal), []);
        assert_eq!(judge(422, refusal), []);
        assert_eq!(judge(200, r#"{"days": 90}"#), []);
        let crash = judge(500, &refusal.replace("invalid_request", "internal_error"));
        assert_eq!(crash[0].rule, "errors.out_of_range");
        assert!(crash[0].message.starts_with("a 5xx"), "{crash:?}");
        let other_code = judge(400, &refusal.replace("invalid_request", "bad_days"));
        assert_eq!(other_code[0].rule, "errors.code");
        assert_eq!(judge(400, r#"{"detail": "no"}"#)[0].rule, "errors.envelope");
    }
}
