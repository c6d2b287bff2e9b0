//! `rate_limit::*` kinds: a bounded burst gets 429, the 429 says how long to wait, and the
//! client that waits recovers. All judge the one burst of the run ([`crate::burst`]).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use std::time::Duration;

use super::{envelope_findings, error_code, Check, Finding, Findings, Needs};
use crate::burst::{rate_limit_info, retry_after, BurstReport, Observed, Recovery};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::hints::RateLimitInfo;
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
    let server_errors: Vec<&Response> = report.kept.iter().filter(|r| r.status >= 500).collect();
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
                .next()
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
                    .cites_exchanges(report.cited()),
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
    if report.rate_limit_infos().next().is_none() {
        findings.push(
            Finding::new(
                "rate_limit.headers_missing",
                "no RateLimit headers in any recognised form (X-RateLimit-*, RateLimit-*, RateLimit + RateLimit-Policy) on the burst's responses",
            )
            .cites_exchanges(report.cited()),
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
    findings.extend(remaining_rose(report));
    // A lane answers one request at a time: at most `concurrency` responses counted before
    // the 429 arrived after it.
    let slack = u64::from(report.concurrency);
    if let (Some((first_response, first)), Some(after)) =
        (report.rate_limit_infos().next(), report.first_limited_after)
    {
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
                        .cites_exchange(first_response.exchange)
                        .cites(limited),
                );
            }
        }
        if let Some(limit) = first.limit {
            let refill = refill_allowance(limit, first.window, report.elapsed);
            if after > limit + slack + refill {
                let message = format!(
                    "the server advertises a limit of {limit}, but answered {after} requests before the first 429"
                );
                findings.push(
                    Finding::new("rate_limit.limit_exceeded", message)
                        .expected(format!("a 429 within {}", limit + slack + refill))
                        .actual(after)
                        .cites_exchange(first_response.exchange)
                        .cites(limited),
                );
            }
        }
    }
    Ok(findings)
}

/// A remaining count that went up between two responses the server certainly counted in
/// that order, by more than the limit can regain between them, unless its reset passed.
///
/// Heads arrive out of the order the server counted the requests: a lane the runtime did not
/// poll for a while reads an early answer after others' later ones. So only a pair where the
/// later request was sent after the earlier response arrived is compared, and for each
/// response the lowest count among those that arrived before it was sent.
fn remaining_rose(report: &BurstReport) -> Option<Finding> {
    const RESET_RESOLUTION: Duration = Duration::from_secs(1);
    let counted: Vec<(&Observed, &RateLimitInfo, u64)> = report
        .rate_limit_infos()
        .filter_map(|(o, info)| info.remaining.map(|r| (o, info, r)))
        .collect();
    let highest = counted.iter().map(|c| c.2).max().unwrap_or(0);
    // The lowest count among the first i + 1 arrivals (the latest of equal ones).
    let mut lowest: Vec<usize> = Vec::with_capacity(counted.len());
    for i in 0..counted.len() {
        let best = match lowest.last() {
            Some(&low) if counted[low].2 < counted[i].2 => low,
            _ => i,
        };
        lowest.push(best);
    }
    for (later, info, remaining) in &counted {
        let before = counted.partition_point(|(o, _, _)| o.received_at <= later.sent_at);
        let Some(&low) = before.checked_sub(1).and_then(|i| lowest.get(i)) else {
            continue;
        };
        let (earlier, earlier_info, low_remaining) = counted[low];
        // Resets are mostly given in whole seconds, rounded either way.
        let reset_passed = earlier_info.reset.is_some_and(|reset| {
            earlier.received_at + reset <= later.received_at + RESET_RESOLUTION
        });
        let between = later
            .received_at
            .duration_since(earlier.sent_at)
            .unwrap_or_default();
        // Without a stated limit, the highest count seen is the least it can be.
        let (limit, stated) = match info.limit {
            Some(limit) => (limit, ""),
            None => (highest, " (no limit header; the highest count seen)"),
        };
        let refill = refill_allowance(limit, info.window, between);
        if reset_passed || *remaining <= low_remaining + refill {
            continue;
        }
        let message = format!(
            "remaining rose from {low_remaining} to {remaining} in {:.0} ms, more than a limit of {limit}{stated} regains in that time: the request of exchange #{} ({}) went out after the response of exchange #{} arrived",
            between.as_secs_f64() * 1000.0,
            later.exchange,
            report.request,
            earlier.exchange,
        );
        return Some(
            Finding::new("rate_limit.remaining_rose", message)
                .expected(format!("at most {}", low_remaining + refill))
                .actual(remaining)
                .cites_exchange(earlier.exchange)
                .cites_exchange(later.exchange),
        );
    }
    None
}

/// How many requests `limit` per window may regain in `span`, where the window is the one
/// the headers say, else taken as one second (the shortest in common use), so the verdict
/// scales with the time that passed and not with the machine's speed.
fn refill_allowance(limit: u64, window: Option<Duration>, span: Duration) -> u64 {
    let window = window
        .filter(|w| !w.is_zero())
        .unwrap_or(Duration::from_secs(1));
    (limit as f64 * span.as_secs_f64() / window.as_secs_f64()).ceil() as u64
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

    /// A burst whose responses are `responses`, as exchanges 10, 11, ..., through the burst's
    /// own collection.
    fn burst(responses: Vec<Response>) -> BurstReport {
        let mut collected = crate::burst::Collected::default();
        for (i, mut response) in responses.into_iter().enumerate() {
            response.exchange = 10 + i;
            collected.push(Ok(response));
        }
        let run = crate::burst::BurstRun {
            request: "GET /test".into(),
            cap: 100,
            concurrency: 1,
            elapsed: Duration::from_millis(100),
            exchanges_not_kept: 0,
        };
        BurstReport::new(run, collected)
    }

    /// A 200 whose request went out at `sent_ms` and whose head came at `received_ms` (from
    /// an arbitrary start), with these headers.
    fn counted(sent_ms: u64, received_ms: u64, headers: &[(&str, &str)]) -> Response {
        let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let mut response = Response::for_test(200, headers, "{}");
        response.received_at = start + Duration::from_millis(received_ms);
        response.elapsed = Duration::from_millis(received_ms - sent_ms);
        response
    }

    /// The rules `judge_hints` breaks on a burst of `responses` ending in a 429 with hints.
    fn hint_rules(mut responses: Vec<Response>) -> Vec<String> {
        let last = responses
            .iter()
            .map(|r| r.received_at)
            .max()
            .expect("responses");
        let mut limited = Response::for_test(
            429,
            &[("Retry-After", "1"), ("X-RateLimit-Remaining", "0")],
            LIMITED,
        );
        limited.received_at = last + Duration::from_millis(1);
        responses.push(limited);
        let findings = judge_hints(&Settings::default(), &bundled(), &burst(responses)).unwrap();
        findings.into_iter().map(|f| f.rule).collect()
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

    #[test]
    fn a_count_read_late_from_a_lane_not_polled_is_no_rise() {
        // The first request was counted first (39 left) but its lane read the answer only
        // after the others had brought the count to 0.
        let limit = [("X-RateLimit-Limit", "40")];
        let mut responses = Vec::new();
        for n in 0..39u64 {
            let remaining = (38 - n).to_string();
            let headers = [limit[0], ("X-RateLimit-Remaining", remaining.as_str())];
            responses.push(counted(n + 1, n + 2, &headers));
        }
        responses.push(counted(0, 60, &[limit[0], ("X-RateLimit-Remaining", "39")]));
        assert_eq!(hint_rules(responses), Vec::<String>::new());
    }

    #[test]
    fn a_count_that_rises_after_it_was_read_is_a_rise() {
        // A 60 s window regains one request in 40 ms; the count went from 0 to 30.
        let policy = ("RateLimit-Limit", "40, 40;w=60");
        let low = counted(0, 10, &[policy, ("RateLimit-Remaining", "0")]);
        let high = counted(20, 30, &[policy, ("RateLimit-Remaining", "30")]);
        let report = burst(vec![low, high]);
        let finding = remaining_rose(&report).expect("a rise");
        assert_eq!(finding.rule, "rate_limit.remaining_rose");
        assert_eq!(finding.exchanges, [10, 11]);
        assert_eq!(finding.expected.as_deref(), Some("at most 1"));
        assert_eq!(finding.actual.as_deref(), Some("30"));
        assert!(
            finding
                .message
                .starts_with("remaining rose from 0 to 30 in 30 ms")
                && finding.message.contains(
                    "exchange #11 (GET /test) went out after the response of exchange #10"
                ),
            "{}",
            finding.message
        );
        // Without a stated limit, the highest count seen stands for it.
        let low = counted(0, 10, &[("X-RateLimit-Remaining", "0")]);
        let high = counted(20, 30, &[("X-RateLimit-Remaining", "30")]);
        assert!(remaining_rose(&burst(vec![low, high])).is_some());
    }

    #[test]
    fn a_count_regained_by_refill_or_reset_is_no_rise() {
        // 40 per second regains 20 in half a second.
        let limit = ("X-RateLimit-Limit", "40");
        let low = counted(0, 10, &[limit, ("X-RateLimit-Remaining", "0")]);
        let high = counted(500, 510, &[limit, ("X-RateLimit-Remaining", "20")]);
        assert_eq!(remaining_rose(&burst(vec![low.clone(), high])), None);
        let sooner = counted(100, 110, &[limit, ("X-RateLimit-Remaining", "20")]);
        assert!(
            remaining_rose(&burst(vec![low, sooner])).is_some(),
            "too soon"
        );
        // A 60 s window regains little, but its reset came between the two.
        let policy = ("RateLimit-Limit", "40, 40;w=60");
        let low = counted(
            0,
            10,
            &[
                policy,
                ("RateLimit-Remaining", "0"),
                ("RateLimit-Reset", "2"),
            ],
        );
        // Two seconds from 10 ms, give or take the second a reset is rounded to.
        let high = counted(1100, 1110, &[policy, ("RateLimit-Remaining", "40")]);
        assert_eq!(remaining_rose(&burst(vec![low.clone(), high])), None);
        let early = counted(900, 910, &[policy, ("RateLimit-Remaining", "40")]);
        assert!(
            remaining_rose(&burst(vec![low, early])).is_some(),
            "before the reset"
        );
    }
}
