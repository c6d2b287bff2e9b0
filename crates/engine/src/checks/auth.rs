//! `auth::*` kinds: the key is required, checked, scoped to its tenant, and never echoed.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{error_code, send_all, status_finding, success, Check, Finding, Findings};
use crate::client::Response;
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
    fn requests(&self) -> &[RequestSpec] {
        std::slice::from_ref(&self.request)
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            Ok(
                status_finding("auth.status", &response, &self.expect_status)
                    .into_iter()
                    .collect(),
            )
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
    /// Text the error message must contain (at `[errors] message_pointer`): how the errors
    /// of an API without codes are told apart.
    expect_message: Option<String>,
}

fn unauthorized() -> StatusSet {
    StatusSet::exactly(&[401])
}

impl Check for AuthRejected {
    fn requests(&self) -> &[RequestSpec] {
        std::slice::from_ref(&self.request)
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            Ok(self.judge(cx.settings(), &response))
        }
        .boxed()
    }
}

impl AuthRejected {
    /// `auth.status` when the refusal has another status, else `auth.code` when the body
    /// lacks the expected error code.
    fn judge(&self, settings: &Settings, response: &Response) -> Findings {
        let what = format!("{}: ", self.request.describe());
        if let Some(finding) = status_finding("auth.status", response, &self.expect_status) {
            return vec![finding.prefixed(&what)];
        }
        if let Some(finding) = self.expect_message.as_deref().and_then(|expected| {
            super::message_finding(settings, response, expected, "auth.message")
        }) {
            return vec![finding.prefixed(&what)];
        }
        let Some(expected) = &self.expect_code else {
            return Vec::new();
        };
        let pointer = &settings.errors.code_pointer;
        let (seen, message) = match error_code(settings, response) {
            Some(code) if code == expected => return Vec::new(),
            Some(code) => (
                format!("\"{code}\""),
                format!(
                    "expected error code \"{expected}\" at {pointer}, saw \"{code}\" in {}",
                    response.label()
                ),
            ),
            None => (
                "none".into(),
                format!(
                    "expected error code \"{expected}\" at {pointer}, found none in {}: {}",
                    response.label(),
                    response.body_excerpt(200)
                ),
            ),
        };
        vec![Finding::new("auth.code", message)
            .prefixed(&what)
            .expected(format!("\"{expected}\""))
            .actual(seen)
            .at(pointer)
            .cites(response)]
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
    fn requests(&self) -> &[RequestSpec] {
        std::slice::from_ref(&self.request)
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            let Some(finding) = status_finding("auth.cross_tenant", &response, &self.expect_status)
            else {
                return Ok(Vec::new());
            };
            let why = match response.status {
                200..=299 => "another tenant's job was served: a data leak",
                403 => "403 confirms that the job exists to a tenant who may not see it",
                _ => "another tenant's job must look like a job that does not exist",
            };
            Ok(vec![finding.prefixed(&format!(
                "{}: {why}; ",
                self.request.describe()
            ))])
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
    /// It judges every exchange of the run, so it runs after all the others.
    fn judges_the_run(&self) -> bool {
        true
    }

    fn requests(&self) -> &[RequestSpec] {
        &self.requests
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
                    let message = format!(
                        "{}: the submitted key came back in the {}, in {}",
                        request.describe(),
                        places.join(", "),
                        response.label()
                    );
                    findings.push(
                        Finding::new("auth.key_echoed", message)
                            .actual(places.join(", "))
                            .cites(response),
                    );
                }
            }
            let ours: Vec<usize> = responses.iter().map(|r| r.exchange).collect();
            let elsewhere: Vec<(usize, String)> = cx
                .run
                .record
                .exchanges()
                .into_iter()
                .filter(|e| e.echoed_secret && !ours.contains(&e.id))
                .map(|e| {
                    let line = format!(
                        "{} {} (request id {})",
                        e.method,
                        e.url,
                        e.request_id.as_deref().unwrap_or("none")
                    );
                    (e.id, line)
                })
                .collect();
            if !elsewhere.is_empty() {
                let shown: Vec<&str> = elsewhere.iter().take(5).map(|(_, l)| l.as_str()).collect();
                let message = format!(
                    "{} other response(s) of this run echoed a key: {}",
                    elsewhere.len(),
                    shown.join("; ")
                );
                findings.push(
                    Finding::new("auth.key_echoed_elsewhere", message)
                        .cites_exchanges(elsewhere.iter().map(|(id, _)| *id)),
                );
            }
            Ok(findings)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::Credential;

    fn rejected(expect_code: Option<&str>) -> AuthRejected {
        let mut request = RequestSpec::get("/v1/jobs");
        request.credential = Credential::Missing;
        AuthRejected {
            request,
            expect_status: unauthorized(),
            expect_code: expect_code.map(String::from),
            expect_message: None,
        }
    }

    #[test]
    fn a_refusal_with_another_status_is_auth_status() {
        let mut response = Response::for_test(200, &[], "[]");
        response.exchange = 4;
        let findings = rejected(Some("unauthorized")).judge(&Settings::default(), &response);
        assert_eq!(findings.len(), 1, "{findings:?}");
        let finding = &findings[0];
        assert_eq!(finding.rule, "auth.status");
        assert_eq!(finding.expected.as_deref(), Some("401"));
        assert_eq!(finding.actual.as_deref(), Some("200"));
        assert_eq!(finding.exchanges, [4]);
        assert!(finding
            .message
            .contains(": expected status 401, got 200 from GET /test"));
    }

    #[test]
    fn errors_without_codes_are_told_apart_by_message() {
        let mut settings = Settings::default();
        settings.errors.code_pointer = String::new();
        settings.errors.message_pointer = "/error".into();
        let check = AuthRejected {
            expect_message: Some("invalid api key".into()),
            ..rejected(None)
        };
        let flat = |message: &str| {
            Response::for_test(
                401,
                &[],
                &serde_json::json!({ "error": message }).to_string(),
            )
        };
        assert!(check.judge(&settings, &flat("Invalid API key")).is_empty());
        let findings = check.judge(&settings, &flat("Missing API key"));
        assert_eq!(findings[0].rule, "auth.message");
        assert_eq!(findings[0].pointer.as_deref(), Some("/error"));
        assert!(
            findings[0].message.contains(
                "expected an error message containing \"invalid api key\" at /error, saw \"Missing API key\""
            ),
            "{}",
            findings[0].message
        );
        let enveloped = r#"{"error": {"code": "invalid_api_key", "message": "Invalid API key"}}"#;
        let findings = check.judge(&settings, &Response::for_test(401, &[], enveloped));
        assert!(
            findings[0].message.contains("found none"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn a_refusal_without_the_code_is_auth_code() {
        let settings = Settings::default();
        let pointer = settings.errors.code_pointer.clone();
        let body = r#"{"error": {"code": "forbidden", "message": "no"}}"#;
        let findings =
            rejected(Some("unauthorized")).judge(&settings, &Response::for_test(401, &[], body));
        assert_eq!(findings[0].rule, "auth.code");
        assert_eq!(findings[0].expected.as_deref(), Some("\"unauthorized\""));
        assert_eq!(findings[0].actual.as_deref(), Some("\"forbidden\""));
        assert_eq!(findings[0].pointer.as_deref(), Some(pointer.as_str()));
        let right = body.replace("forbidden", "unauthorized");
        let response = Response::for_test(401, &[], &right);
        assert!(rejected(Some("unauthorized"))
            .judge(&settings, &response)
            .is_empty());
        assert!(rejected(None)
            .judge(&settings, &Response::for_test(401, &[], ""))
            .is_empty());
    }
}
