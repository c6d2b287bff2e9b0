//! `rate_limit::*` kinds: a bounded burst gets 429, the 429 says how long to wait, and the
//! client that waits recovers. All judge the one burst of the run ([`crate::burst`]).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{envelope_findings, error_code, Check, Finding, Findings, Needs};
use crate::burst::{rate_limit_info, retry_after, BurstReport, Recovery};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::schemas::SchemaSet;
use crate::suite::{RequestSpec, Settings};

/// What every burst-based check needs: the burst's request, and the run to itself.
fn burst_needs(settings: &Settings) -> Needs {
    let default = RequestSpec::get(&settings.jobs.read_path);
    let request = settings.burst.request.as_ref().unwrap_or(&default);
    Needs {
        exclusive: true,
        ..Needs::of([request])
    }
}

/// The burst, described for `--dry-run` (shared by the three checks; it runs once).
fn burst_plan(settings: &Settings) -> Vec<String> {
    let default = RequestSpec::get(&settings.jobs.read_path);
    let request = settings.burst.request.as_ref().unwrap_or(&default);
    vec![
        format!(
            "{} up to {} times, {} at a time, unpaced, until the first 429 (once per run, shared by rate_limit::*)",
            request.describe(),
            settings.burst.max_requests,
            settings.burst.concurrency
        ),
        format!("then the same request up to {} times, after waiting as hinted", settings.burst.recovery_attempts),
    ]
}

/// The burst gets a 429 within the cap, with the error envelope and code, and no request of
/// the burst gets a 5xx or a transport error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstLimited {}

/// The 429 tells the client how long to wait (Retry-After), and the RateLimit headers, in
/// whichever common form, are consistent with where the 429 came.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstHints {}

/// After waiting as hinted (or per the documented schedule), the same request succeeds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstRecovery {}

macro_rules! burst_check {
    ($kind:ty, $judge:ident, $note:ident) => {
        impl Check for $kind {
            fn plan(&self, settings: &Settings) -> Vec<String> {
                burst_plan(settings)
            }

            fn needs(&self, settings: &Settings) -> Needs {
                burst_needs(settings)
            }

            fn schemas(&self, settings: &Settings) -> Vec<String> {
                vec![settings.errors.schema.clone()]
            }

            fn run<'a>(
                &'a self,
                cx: &'a CheckContext<'a>,
            ) -> BoxFuture<'a, Result<Findings, Abort>> {
                async move {
                    let report = cx.run.burst(cx).await?;
                    let findings = $judge(cx.settings(), cx.schemas(), &report)?;
                    cx.note(&$note(&report));
                    Ok(findings)
                }
                .boxed()
            }
        }
    };
}

burst_check!(BurstLimited, judge_limited, summary_note);
burst_check!(BurstHints, judge_hints, summary_note);
burst_check!(BurstRecovery, judge_recovery, recovery_note);

/// The note of a passing burst check: what the burst did.
fn summary_note(report: &BurstReport) -> String {
    report.summary()
}

/// The burst got a 429 within the cap, with the error code and envelope, and no 5xx or
/// transport error on the way. Every finding ends with the burst's summary.
fn judge_limited(
    settings: &Settings,
    schemas: &SchemaSet,
    report: &BurstReport,
) -> Result<Findings, Abort> {
    let mut findings = Vec::new();
    let server_errors: Vec<&Response> = report
        .responses
        .iter()
        .filter(|r| r.status >= 500)
        .collect();
    if !server_errors.is_empty() {
        let labels: Vec<String> = server_errors.iter().take(3).map(|r| r.label()).collect();
        let message = format!(
            "{} request(s) of the burst got a 5xx instead of a 429: {}",
            server_errors.len(),
            labels.join("; ")
        );
        findings.push(
            Finding::new("rate_limit.server_error", message)
                .expected(429)
                .actual(server_errors[0].status)
                .cites_all(server_errors.iter().copied()),
        );
    }
    if !report.transport_errors.is_empty() {
        let message = format!(
            "{} request(s) of the burst got no response: {}",
            report.transport_errors.len(),
            report
                .transport_errors
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
        findings.push(Finding::new("rate_limit.no_response", message));
    }
    match report.limited() {
        None => {
            let advertised = report
                .rate_limit_infos()
                .first()
                .and_then(|(_, info)| info.limit.or(info.remaining))
                .map(|n| format!(" (the server advertises a limit of {n})"))
                .unwrap_or_default();
            let message = format!(
                "expected a 429 within {} requests, got none{advertised}",
                report.cap
            );
            findings.push(
                Finding::new("rate_limit.no_429", message)
                    .expected(format!("a 429 within {} requests", report.cap))
                    .actual("none")
                    .cites_all(&report.responses),
            );
        }
        Some(limited) => {
            let expected = &settings.burst.expect_code;
            let pointer = &settings.errors.code_pointer;
            findings.extend(settings.burst.expect_message.as_deref().and_then(|text| {
                super::message_finding(settings, limited, text, "rate_limit.message")
            }));
            match error_code(settings, limited) {
                _ if !super::errors_have_codes(settings) => {}
                Some(code) if code == expected => {}
                other => {
                    let seen = other
                        .map(|c| format!("\"{c}\""))
                        .unwrap_or_else(|| "none".into());
                    let message = format!(
                        "expected error code \"{expected}\" at {pointer} on the 429, saw {seen} in {}",
                        limited.label()
                    );
                    findings.push(
                        Finding::new("rate_limit.code", message)
                            .expected(format!("\"{expected}\""))
                            .actual(seen)
                            .at(pointer)
                            .cites(limited),
                    );
                }
            }
            findings.extend(envelope_findings(schemas, settings, limited));
        }
    }
    let summary = format!(" [{}]", report.summary());
    Ok(findings.into_iter().map(|f| f.suffixed(&summary)).collect())
}

/// The 429 says how long to wait (Retry-After, judged when it arrived), and the RateLimit
/// headers of the burst are present and consistent with where the 429 came.
fn judge_hints(
    settings: &Settings,
    _schemas: &SchemaSet,
    report: &BurstReport,
) -> Result<Findings, Abort> {
    let Some(limited) = report.limited() else {
        return Err(Abort::Ignored(format!(
            "the burst got no 429 to inspect ({})",
            report.summary()
        )));
    };
    let mut findings = Vec::new();
    // A finding about the 429 itself.
    let on_429 = |rule: &str, message: String| Finding::new(rule, message).cites(limited);
    // Judged at the moment the 429 arrived, not after the recovery has waited the hint out.
    let arrived = limited.received_at;
    let cap = settings.target.max_retry_after_seconds;
    let header = limited.header("retry-after").unwrap_or_default();
    match retry_after(limited) {
        // The suite says the vendor sends none: the reset below is the wait hint.
        Ok(None) if !settings.burst.retry_after => {
            if rate_limit_info(limited)
                .and_then(|info| info.reset)
                .is_none()
            {
                findings.push(on_429(
                    "rate_limit.reset_missing",
                    format!(
                        "the 429 has no RateLimit reset, the wait hint this suite expects instead of Retry-After: {}",
                        limited.label()
                    ),
                ));
            }
        }
        Ok(None) => findings.push(on_429(
            "rate_limit.retry_after_missing",
            format!("the 429 has no Retry-After header: {}", limited.label()),
        )),
        Err(why) => findings.push(
            on_429(
                "rate_limit.retry_after_invalid",
                format!("{why}, in {}", limited.label()),
            )
            .expected("delta-seconds or an HTTP-date")
            .actual(header),
        ),
        Ok(Some(hint)) => {
            if hint.is_in_past(arrived, limited.header("date")) {
                let message = format!(
                    "Retry-After \"{header}\" was already in the past when the 429 arrived (Date: {}), in {}",
                    limited.header("date").unwrap_or("none"),
                    limited.label()
                );
                findings.push(
                    on_429("rate_limit.retry_after_past", message)
                        .expected("a time after the 429 arrived")
                        .actual(header),
                );
            } else if hint.wait_from(arrived).as_secs() > cap {
                let wait = hint.wait_from(arrived).as_secs();
                let message = format!(
                    "Retry-After asks for {wait} s, more than the {cap} s cap (max_retry_after_seconds), in {}",
                    limited.label()
                );
                findings.push(
                    on_429("rate_limit.retry_after_too_long", message)
                        .expected(format!("at most {cap} s"))
                        .actual(format!("{wait} s")),
                );
            }
        }
    }
    let infos = report.rate_limit_infos();
    if infos.is_empty() {
        findings.push(
            Finding::new(
                "rate_limit.headers_missing",
                "no RateLimit headers in any recognised form (X-RateLimit-*, RateLimit-*, RateLimit + RateLimit-Policy) on the burst's responses",
            )
            .cites_all(&report.responses),
        );
    }
    if let Some(info) = rate_limit_info(limited) {
        if let Some(remaining) = info.remaining.filter(|r| *r > 0) {
            let message = format!(
                "the 429 says {remaining} requests remain, in {}",
                limited.label()
            );
            findings.push(
                on_429("rate_limit.remaining_on_429", message)
                    .expected(0)
                    .actual(remaining),
            );
        }
    }
    // Responses complete out of order by up to `concurrency`, and buckets refill: only a rise
    // beyond both is a counter that goes up within its window.
    let slack = u64::from(report.concurrency);
    let mut lowest: Option<(u64, usize)> = None;
    for (index, info) in &infos {
        let Some(remaining) = info.remaining else {
            continue;
        };
        if let Some((low, at)) = lowest {
            let refill = refill_allowance(info, report);
            if remaining > low + slack + refill {
                let rose = &report.responses[*index];
                let message = format!(
                    "remaining rose from {low} to {remaining} during the burst (response {} of {}), in {}",
                    index + 1,
                    report.responses.len(),
                    rose.label()
                );
                findings.push(
                    Finding::new("rate_limit.remaining_rose", message)
                        .expected(format!("at most {}", low + slack + refill))
                        .actual(remaining)
                        .cites(&report.responses[at])
                        .cites(rose),
                );
                break;
            }
        }
        if lowest.is_none_or(|(low, _)| remaining < low) {
            lowest = Some((remaining, *index));
        }
    }
    if let (Some((first_index, first)), Some(after)) = (infos.first(), report.first_limited_after) {
        let first_response = &report.responses[*first_index];
        let after = after as u64;
        if let Some(remaining) = first.remaining {
            if remaining > after + slack {
                let message = format!(
                    "the first response said {remaining} requests remain, but the 429 came after only {after}"
                );
                findings.push(
                    Finding::new("rate_limit.remaining_too_high", message)
                        .expected(format!("at most {}", after + slack))
                        .actual(remaining)
                        .cites(first_response)
                        .cites(limited),
                );
            }
        }
        if let Some(limit) = first.limit {
            let refill = refill_allowance(first, report);
            if after > limit + slack + refill {
                let message = format!(
                    "the server advertises a limit of {limit}, but answered {after} requests before the first 429"
                );
                findings.push(
                    Finding::new("rate_limit.limit_exceeded", message)
                        .expected(format!("a 429 within {}", limit + slack + refill))
                        .actual(after)
                        .cites(first_response)
                        .cites(limited),
                );
            }
        }
    }
    Ok(findings)
}

/// How many requests a limit may regain during the burst: `limit` per window, where the
/// window is the one the headers say, else taken as one second (the shortest in common use),
/// so the verdict scales with the burst's own duration and not with the machine's speed.
fn refill_allowance(info: &crate::hints::RateLimitInfo, report: &BurstReport) -> u64 {
    let window = info
        .window
        .filter(|w| !w.is_zero())
        .unwrap_or(std::time::Duration::from_secs(1));
    match info.limit {
        Some(limit) => {
            (limit as f64 * report.elapsed.as_secs_f64() / window.as_secs_f64()).ceil() as u64
        }
        None => 0,
    }
}

/// Each wait of the recovery and what came of it, and the seconds waited in all.
fn recovery_story(recovery: &Recovery) -> (f64, Vec<String>) {
    let waited = recovery.waits.iter().map(|(d, _)| d.as_secs_f64()).sum();
    let story = recovery
        .waits
        .iter()
        .zip(&recovery.attempts)
        .map(|((wait, why), attempt)| {
            let result = match attempt {
                Ok(response) => response.label(),
                Err(error) => format!("no response: {error}"),
            };
            format!("waited {:.1} s ({why}), then {result}", wait.as_secs_f64())
        })
        .collect();
    (waited, story)
}

/// The note of a passing recovery: how long it took and what each try got.
fn recovery_note(report: &BurstReport) -> String {
    let Some(recovery) = &report.recovery else {
        return report.summary();
    };
    let (waited, story) = recovery_story(recovery);
    format!("recovered after {waited:.1} s: {}", story.join("; "))
}

/// After waiting as hinted, the same request succeeded.
fn judge_recovery(
    _settings: &Settings,
    _schemas: &SchemaSet,
    report: &BurstReport,
) -> Result<Findings, Abort> {
    let (Some(recovery), Some(limited)) = (&report.recovery, report.limited()) else {
        return Err(Abort::Ignored(format!(
            "the burst got no 429 to recover from ({})",
            report.summary()
        )));
    };
    if recovery.recovered() {
        return Ok(Vec::new());
    }
    let (waited, story) = recovery_story(recovery);
    let capped = match recovery.capped_hint {
        Some(hint) => format!(
            " (Retry-After asked for {} s, cut to the cap)",
            hint.as_secs()
        ),
        None => String::new(),
    };
    let message = format!(
        "the request still did not succeed after {} wait(s) totalling {waited:.1} s{capped}: {}",
        recovery.waits.len(),
        story.join("; ")
    );
    let retries = recovery.attempts.iter().filter_map(|a| a.as_ref().ok());
    Ok(vec![Finding::new("rate_limit.no_recovery", message)
        .expected("2xx")
        .cites(limited)
        .cites_all(retries)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bundled() -> SchemaSet {
        SchemaSet::load(&crate::suite::Suite::load(None).unwrap()).unwrap()
    }

    /// A burst whose responses are `responses`, as exchanges 10, 11, ...
    fn burst(responses: Vec<Response>) -> BurstReport {
        let responses: Vec<Response> = responses
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| {
                r.exchange = 10 + i;
                r
            })
            .collect();
        BurstReport {
            request: "GET /test".into(),
            sent: responses.len() as u32,
            cap: 100,
            concurrency: 1,
            elapsed: Duration::from_millis(100),
            first_limited_after: responses
                .iter()
                .position(|r| r.status == 429)
                .map(|i| i + 1),
            responses,
            transport_errors: Vec::new(),
            recovery: None,
            exchanges_not_kept: 0,
        }
    }

    const LIMITED: &str =
        r#"{"error": {"code": "rate_limited", "message": "slow down", "request_id": "req_1"}}"#;

    #[test]
    fn a_retry_after_date_before_the_429_arrived_is_in_the_past() {
        let ok = Response::for_test(
            200,
            &[("X-RateLimit-Limit", "1"), ("X-RateLimit-Remaining", "0")],
            "{}",
        );
        let limited = Response::for_test(
            429,
            &[
                ("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT"),
                ("X-RateLimit-Remaining", "0"),
            ],
            LIMITED,
        );
        let findings =
            judge_hints(&Settings::default(), &bundled(), &burst(vec![ok, limited])).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "rate_limit.retry_after_past");
        assert_eq!(
            findings[0].actual.as_deref(),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        assert_eq!(findings[0].exchanges, [11], "the 429");
    }

    #[test]
    fn a_429_without_hints_breaks_two_rules() {
        let report = burst(vec![
            Response::for_test(200, &[], "{}"),
            Response::for_test(429, &[], LIMITED),
        ]);
        let findings = judge_hints(&Settings::default(), &bundled(), &report).unwrap();
        let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(
            rules,
            [
                "rate_limit.retry_after_missing",
                "rate_limit.headers_missing"
            ]
        );
        assert_eq!(findings[0].exchanges, [11]);
        assert_eq!(
            findings[1].exchanges,
            [10, 11],
            "every response of the burst"
        );
        let calm = burst(vec![Response::for_test(200, &[], "{}")]);
        assert!(matches!(
            judge_hints(&Settings::default(), &bundled(), &calm),
            Err(Abort::Ignored(_))
        ));
    }

    #[test]
    fn a_burst_without_a_429_cites_its_responses() {
        let report = burst(vec![
            Response::for_test(200, &[], "{}"),
            Response::for_test(503, &[], ""),
        ]);
        let findings = judge_limited(&Settings::default(), &bundled(), &report).unwrap();
        let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["rate_limit.server_error", "rate_limit.no_429"]);
        assert_eq!(findings[0].exchanges, [11]);
        assert_eq!(findings[1].exchanges, [10, 11]);
        assert!(findings[1]
            .message
            .ends_with(&format!(" [{}]", report.summary())));
    }
}
