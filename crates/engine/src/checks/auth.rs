//! `auth::*` kinds: the key is required, checked, scoped to its tenant, and never echoed.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{error_code, planned, send_all, status_finding, success, Check, Findings, Needs};
use crate::context::{Abort, CheckContext};
use crate::secrets::contains_bytes;
use crate::suite::{RequestSpec, Settings, StatusSet};

/// A request with the valid key is accepted.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthAccepted {
    request: RequestSpec,
    #[serde(default = "success")]
    expect_status: StatusSet,
}

impl Check for AuthAccepted {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned([&self.request])
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of([&self.request])
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            Ok(status_finding(&response, &self.expect_status)
                .into_iter()
                .collect())
        }
        .boxed()
    }
}

/// A request with a missing or invalid credential is refused with the documented status and code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthRejected {
    request: RequestSpec,
    #[serde(default = "unauthorized")]
    expect_status: StatusSet,
    /// The error code the body must carry (at the suite's `[errors] code_pointer`).
    expect_code: Option<String>,
}

fn unauthorized() -> StatusSet {
    StatusSet::exactly(&[401])
}

impl Check for AuthRejected {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned([&self.request])
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of([&self.request])
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            let what = self.request.describe();
            if let Some(finding) = status_finding(&response, &self.expect_status) {
                return Ok(vec![format!("{what}: {finding}")]);
            }
            let mut findings = Vec::new();
            if let Some(expected) = &self.expect_code {
                let pointer = &cx.settings().errors.code_pointer;
                match error_code(cx, &response) {
                    Some(code) if code == expected => {}
                    Some(code) => findings.push(format!(
                        "{what}: expected error code \"{expected}\" at {pointer}, saw \"{code}\" in {}",
                        response.label()
                    )),
                    None => findings.push(format!(
                        "{what}: expected error code \"{expected}\" at {pointer}, found none in {}: {}",
                        response.label(),
                        response.body_excerpt(200)
                    )),
                }
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// Another tenant's resource is not found (not 200, which leaks it; not 403, which confirms it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossTenant {
    request: RequestSpec,
    #[serde(default = "not_found")]
    expect_status: StatusSet,
}

fn not_found() -> StatusSet {
    StatusSet::exactly(&[404])
}

impl Check for CrossTenant {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned([&self.request])
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of([&self.request])
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            let Some(finding) = status_finding(&response, &self.expect_status) else {
                return Ok(Vec::new());
            };
            let why = match response.status {
                200..=299 => "another tenant's job was served: a data leak",
                403 => "403 confirms that the job exists to a tenant who may not see it",
                _ => "another tenant's job must look like a job that does not exist",
            };
            Ok(vec![format!(
                "{}: {why}; {finding}",
                self.request.describe()
            )])
        }
        .boxed()
    }
}

/// No response carries the credential it was sent with, and no exchange of the run echoed a key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretNotEchoed {
    requests: Vec<RequestSpec>,
}

impl Check for SecretNotEchoed {
    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned(&self.requests)
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of(&self.requests)
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            let mut findings = Vec::new();
            for (request, response) in self.requests.iter().zip(&responses) {
                let Some(sent) = cx.client().credential_value(request.credential) else {
                    continue;
                };
                let mut places: Vec<String> = response
                    .headers
                    .iter()
                    .filter(|(_, value)| value.contains(sent))
                    .map(|(name, _)| format!("header {name}"))
                    .collect();
                if contains_bytes(&response.body, sent.as_bytes()) {
                    places.push("body".into());
                }
                if !places.is_empty() {
                    findings.push(format!(
                        "{}: the submitted key came back in the {}, in {}",
                        request.describe(),
                        places.join(", "),
                        response.label()
                    ));
                }
            }
            let ours: Vec<usize> = responses.iter().map(|r| r.exchange).collect();
            let elsewhere: Vec<String> = cx
                .run
                .record
                .exchanges()
                .into_iter()
                .filter(|e| e.echoed_secret && !ours.contains(&e.id))
                .map(|e| {
                    format!(
                        "{} {} (request id {})",
                        e.method,
                        e.url,
                        e.request_id.as_deref().unwrap_or("none")
                    )
                })
                .collect();
            if !elsewhere.is_empty() {
                findings.push(format!(
                    "{} other response(s) of this run echoed a key: {}",
                    elsewhere.len(),
                    elsewhere
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            Ok(findings)
        }
        .boxed()
    }
}
