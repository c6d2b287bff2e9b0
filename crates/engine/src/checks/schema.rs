//! `schema::*` kinds: a documented response has the right status, media type and shape.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::{planned, status_finding, success, Check, Findings, Needs};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::jobs::{id_text, invariant_violations, shown};
use crate::suite::{RequestSpec, Settings, StatusSet};

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
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned([&self.request])
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of([&self.request])
    }

    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        vec![self.schema.clone()]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            if let Some(finding) = media_type_finding(&response) {
                return Ok(vec![finding]);
            }
            let json = match json_body(&response, &self.expect_status) {
                Ok(json) => json,
                Err(finding) => return Ok(vec![finding]),
            };
            Ok(cx
                .schemas()
                .violations(&self.schema, json)
                .into_iter()
                .map(|v| format!("schema `{}` {v}, in {}", self.schema, response.label()))
                .collect())
        }
        .boxed()
    }
}

/// The job read at `{job_id}` carries that same id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobIdentity {
    request: RequestSpec,
}

impl Check for JobIdentity {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned([&self.request])
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of([&self.request])
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            let json = match json_body(&response, &StatusSet::success()) {
                Ok(json) => json,
                Err(finding) => return Ok(vec![finding]),
            };
            let pointer = &cx.settings().jobs.id_pointer;
            let expected = cx.job_id.as_deref().unwrap_or_default();
            let seen = json.pointer(pointer);
            let matches = id_text(seen).as_deref() == Some(expected);
            Ok(if matches {
                Vec::new()
            } else {
                vec![format!(
                    "at {pointer}: the job read must carry the id in its path, \"{expected}\"; saw {} in {}",
                    shown(seen),
                    response.label()
                )]
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
            let json = match json_body(&response, &StatusSet::success()) {
                Ok(json) => json,
                Err(finding) => return Ok(vec![finding]),
            };
            Ok(invariant_violations(json, &cx.settings().jobs)
                .into_iter()
                .map(|v| format!("{v}, in {}", response.label()))
                .collect())
        }
        .boxed()
    }
}

/// A finding when a successful response does not say it is JSON.
fn media_type_finding(response: &Response) -> Option<String> {
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
    Some(format!(
        "expected one Content-Type application/json, saw {seen} in {}{body}",
        response.label()
    ))
}

/// The JSON body of a response with an expected status, or the finding.
fn json_body<'r>(response: &'r Response, expected: &StatusSet) -> Result<&'r Value, String> {
    if let Some(finding) = status_finding(response, expected) {
        return Err(finding);
    }
    if response.truncated {
        return Err(format!(
            "the body is larger than the cap and was cut, in {}",
            response.label()
        ));
    }
    response.json.as_ref().ok_or_else(|| {
        format!(
            "{} in {}",
            response.json_problem().unwrap_or_default(),
            response.label()
        )
    })
}
