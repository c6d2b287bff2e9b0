//! `documented_response`: a reply is one its OpenAPI operation documents, and matches the
//! schema documented for its status. The kind `apiconform --openapi` builds its checks from.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::schema::judge_schema;
use super::{status_finding, success, Check, Finding, Findings};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::schemas::SchemaSet;
use crate::suite::{RequestSpec, Settings, StatusSet};

/// The reply to `request` has a status in `expect_status`, the operation documents that
/// status (exactly, as a range like `4XX`, or as `default`), and its body matches the schema
/// documented for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentedResponse {
    request: RequestSpec,
    /// The operation, for messages: `getJob (GET /v1/jobs/{job_id})`.
    operation: String,
    /// Each documented response key (`200`, `4XX`, `default`) and the name of its schema in
    /// the suite, or "" when the document gives it no JSON schema.
    responses: BTreeMap<String, String>,
    #[serde(default = "success")]
    expect_status: StatusSet,
}

impl Check for DocumentedResponse {
    fn requests(&self) -> &[RequestSpec] {
        std::slice::from_ref(&self.request)
    }

    fn schemas(&self, _settings: &Settings) -> Vec<String> {
        self.responses
            .values()
            .filter(|name| !name.is_empty())
            .cloned()
            .collect()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let response = cx.send(&self.request).await?;
            Ok(judge_documented(
                cx.schemas(),
                &self.operation,
                &self.responses,
                &self.expect_status,
                &response,
            ))
        }
        .boxed()
    }
}

/// The response key that documents `status`: the exact code, then its range, then `default`.
fn documented_key(responses: &BTreeMap<String, String>, status: u16) -> Option<&str> {
    let exact = status.to_string();
    let range = format!("{}XX", status / 100);
    responses
        .keys()
        .find(|key| **key == exact)
        .or_else(|| {
            responses
                .keys()
                .find(|key| key.eq_ignore_ascii_case(&range))
        })
        .or_else(|| responses.keys().find(|key| *key == "default"))
        .map(String::as_str)
}

/// Judge `response` against what `operation` documents; no I/O.
pub(super) fn judge_documented(
    schemas: &SchemaSet,
    operation: &str,
    responses: &BTreeMap<String, String>,
    expected: &StatusSet,
    response: &Response,
) -> Findings {
    if let Some(finding) = status_finding("openapi.status", response, expected) {
        return vec![finding];
    }
    let Some(key) = documented_key(responses, response.status) else {
        let documented: Vec<&str> = responses.keys().map(String::as_str).collect();
        return vec![Finding::new(
            "openapi.undocumented_status",
            format!(
                "{operation} does not document status {} (it documents {}); got {}; body: {}",
                response.status,
                documented.join(", "),
                response.status_from(),
                response.body_excerpt(200)
            ),
        )
        .expected(documented.join(", "))
        .actual(response.status)
        .cites(response)];
    };
    match responses[key].as_str() {
        "" => Vec::new(),
        schema => judge_schema(
            schemas,
            schema,
            &StatusSet::exactly(&[response.status]),
            response,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_documented_exactly_by_range_or_by_default() {
        let responses: BTreeMap<String, String> = [("200", "a"), ("4XX", "b")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(documented_key(&responses, 200), Some("200"));
        assert_eq!(documented_key(&responses, 404), Some("4XX"));
        assert_eq!(documented_key(&responses, 500), None);
        let mut with_default = responses.clone();
        with_default.insert("default".into(), String::new());
        assert_eq!(documented_key(&with_default, 500), Some("default"));
        assert_eq!(documented_key(&with_default, 201), Some("default"));
    }

    fn judged(status: u16, body: &str) -> Vec<String> {
        let suite = crate::suite::Suite::load(None).unwrap();
        let schemas = SchemaSet::load(&suite).unwrap();
        let responses: BTreeMap<String, String> = [("200", ""), ("400", "error"), ("404", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let response = Response::for_test(status, &[("content-type", "application/json")], body);
        judge_documented(
            &schemas,
            "getX (GET /x)",
            &responses,
            &"4xx".parse_status(),
            &response,
        )
        .into_iter()
        .map(|f| f.rule)
        .collect()
    }

    trait ParseStatus {
        fn parse_status(&self) -> StatusSet;
    }

    impl ParseStatus for str {
        fn parse_status(&self) -> StatusSet {
            toml::Value::String(self.into()).try_into().unwrap()
        }
    }

    #[test]
    fn an_undocumented_status_or_a_body_off_its_schema_is_a_finding() {
        assert_eq!(
            judged(404, "{}"),
            Vec::<String>::new(),
            "documented, no schema"
        );
        assert_eq!(judged(401, "{}"), ["openapi.undocumented_status"]);
        assert_eq!(
            judged(200, "{}"),
            ["openapi.status"],
            "not the status expected"
        );
        assert_eq!(
            judged(400, "{}"),
            ["schema.required"],
            "off the documented schema"
        );
        let envelope = r#"{"error": {"code": "bad_request", "message": "no", "request_id": "r1"}}"#;
        assert_eq!(judged(400, envelope), Vec::<String>::new());
    }
}
