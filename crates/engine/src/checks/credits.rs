//! `credits::*` kind: a job the tenant cannot pay for is refused with 402 and leaves nothing
//! behind: no job, no charge.

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{
    error_code, errors_have_codes, message_finding, planned, status_finding, with_oracle, Check,
    Finding, Findings, Needs,
};
use crate::context::{Abort, CheckContext};
use crate::oracle::Snapshot;
use crate::suite::{RequestSpec, Settings, StatusSet};

/// A create the tenant cannot afford (by default sent with `--broke-key`) gets 402 with the
/// code, and creates no job and no usage event for that tenant.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsufficientCredits {
    /// A create request the tenant cannot pay for: with `credential = "broke"`, or an
    /// oversize request with the valid key.
    request: RequestSpec,
    #[serde(default = "payment_required")]
    expect_status: StatusSet,
    /// Judged when the suite's errors carry a code (`[errors] code_pointer`).
    #[serde(default = "insufficient_credits")]
    expect_code: String,
    /// Text the error message must contain (at `[errors] message_pointer`).
    expect_message: Option<String>,
}

fn payment_required() -> StatusSet {
    StatusSet::exactly(&[402])
}

fn insufficient_credits() -> String {
    "insufficient_credits".into()
}

impl Check for InsufficientCredits {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        with_oracle(settings, planned([&self.request]))
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs {
            exclusive: true,
            ..Needs::of([&self.request])
        }
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let credential = self.request.credential;
            let before = Snapshot::take(cx, credential).await?;
            let response = cx.send(&self.request).await?;
            let after = Snapshot::take(cx, credential).await?;
            let mut findings: Findings =
                status_finding("credits.status", &response, &self.expect_status)
                    .into_iter()
                    .collect();
            let code = error_code(cx.settings(), &response);
            if findings.is_empty() {
                findings.extend(self.expect_message.as_deref().and_then(|expected| {
                    message_finding(cx.settings(), &response, expected, "credits.message")
                }));
            }
            if findings.is_empty()
                && errors_have_codes(cx.settings())
                && code != Some(self.expect_code.as_str())
            {
                let seen = code
                    .map(|c| format!("\"{c}\""))
                    .unwrap_or_else(|| "none".into());
                let message = format!(
                    "expected error code \"{}\", saw {seen} in {}",
                    self.expect_code,
                    response.label()
                );
                findings.push(
                    Finding::new("credits.code", message)
                        .expected(format!("\"{}\"", self.expect_code))
                        .actual(seen)
                        .at(&cx.settings().errors.code_pointer)
                        .cites(&response),
                );
            }
            // A side effect is seen in the oracle's reads around the refused create.
            let side_effect = |rule: &str, message: String| {
                Finding::new(rule, message)
                    .cites(&response)
                    .cites_exchanges(after.exchanges_since(&before))
            };
            let new_jobs = after.new_jobs(&before);
            if !new_jobs.is_empty() {
                findings.push(side_effect(
                    "credits.job_created",
                    format!(
                        "the refused create still made job(s) {}",
                        new_jobs.join(", ")
                    ),
                ));
            }
            if let Some(events) = after.new_events(&before).filter(|e| !e.is_empty()) {
                findings.push(side_effect(
                    "credits.charged",
                    format!(
                        "the refused create still added {} usage event(s): {}",
                        events.len(),
                        events[0]
                    ),
                ));
            }
            Ok(findings)
        }
        .boxed()
    }
}
