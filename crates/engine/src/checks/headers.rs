//! `response_header` kind: a header the vendor documents on every response (an API version,
//! say) is there, on successes and errors alike, with the documented value.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{send_all, Check, Finding, Findings};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::suite::RequestSpec;

/// Each response to `requests` carries `header`, once, with the value `expect` (any
/// non-empty value when the suite gives none).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseHeader {
    requests: Vec<RequestSpec>,
    header: String,
    expect: Option<String>,
}

impl Check for ResponseHeader {
    fn requests(&self) -> &[RequestSpec] {
        &self.requests
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            Ok(responses.iter().filter_map(|r| self.judge(r)).collect())
        }
        .boxed()
    }
}

impl ResponseHeader {
    /// The finding about one response, if its header is missing, repeated or not the value.
    fn judge(&self, response: &Response) -> Option<Finding> {
        let name = &self.header;
        let expected = self
            .expect
            .as_ref()
            .map(|v| format!("{name}: {v}"))
            .unwrap_or_else(|| format!("a {name} header"));
        let finding = |rule: &str, message: String| {
            Finding::new(rule, message)
                .expected(expected.clone())
                .cites(response)
        };
        let Some(value) = response.header(name).filter(|v| !v.trim().is_empty()) else {
            return Some(finding(
                "header.missing",
                format!(
                    "expected {expected} on every response, found none on {}",
                    response.label()
                ),
            ));
        };
        if response.header_count(name) > 1 {
            let copies = response.header_count(name);
            return Some(
                finding(
                    "header.duplicated",
                    format!(
                        "the {name} header is repeated ({copies} copies), on {}",
                        response.label()
                    ),
                )
                .actual(copies),
            );
        }
        match &self.expect {
            Some(wanted) if value.trim() != wanted => Some(
                finding(
                    "header.value",
                    format!(
                        "expected {expected}, saw \"{value}\" on {}",
                        response.label()
                    ),
                )
                .actual(value),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(expect: Option<&str>) -> ResponseHeader {
        ResponseHeader {
            requests: Vec::new(),
            header: "X-Api-Version".into(),
            expect: expect.map(String::from),
        }
    }

    #[test]
    fn missing_wrong_and_right_values() {
        let with = |value: &str| Response::for_test(200, &[("x-api-version", value)], "{}");
        assert!(check(Some("2")).judge(&with("2")).is_none());
        assert!(check(None).judge(&with("7")).is_none());
        let wrong = check(Some("2")).judge(&with("1")).unwrap();
        assert_eq!(wrong.rule, "header.value");
        assert!(
            wrong
                .message
                .contains("expected X-Api-Version: 2, saw \"1\""),
            "{}",
            wrong.message
        );
        let none = check(Some("2"))
            .judge(&Response::for_test(404, &[], "{}"))
            .unwrap();
        assert_eq!(none.rule, "header.missing");
        assert!(none.message.contains("found none"), "{}", none.message);
    }
}
