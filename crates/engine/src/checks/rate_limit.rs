//! `rate_limit::*` kinds: a bounded burst gets 429, the 429 says how long to wait, and the
//! client that waits recovers. All judge the one burst of the run ([`crate::burst`]).

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{envelope_findings, error_code, Check, Findings, Needs};
use crate::burst::{rate_limit_info, retry_after, BurstReport};
use crate::context::{Abort, CheckContext};
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
    ($kind:ty, $judge:ident) => {
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
                    $judge(cx, &report)
                }
                .boxed()
            }
        }
    };
}

burst_check!(BurstLimited, judge_limited);
burst_check!(BurstHints, judge_hints);
burst_check!(BurstRecovery, judge_recovery);

fn judge_limited(cx: &CheckContext, report: &BurstReport) -> Result<Findings, Abort> {
    let mut findings = Vec::new();
    let server_errors: Vec<String> = report
        .responses
        .iter()
        .filter(|r| r.status >= 500)
        .map(|r| r.label())
        .collect();
    if !server_errors.is_empty() {
        findings.push(format!(
            "{} request(s) of the burst got a 5xx instead of a 429: {}",
            server_errors.len(),
            server_errors
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    if !report.transport_errors.is_empty() {
        findings.push(format!(
            "{} request(s) of the burst got no response: {}",
            report.transport_errors.len(),
            report
                .transport_errors
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    match report.limited() {
        None => {
            let advertised = report
                .rate_limit_infos()
                .first()
                .and_then(|(_, info)| info.limit.or(info.remaining))
                .map(|n| format!(" (the server advertises a limit of {n})"))
                .unwrap_or_default();
            findings.push(format!(
                "expected a 429 within {} requests, got none{advertised}",
                report.cap
            ));
        }
        Some(limited) => {
            let expected = &cx.settings().burst.expect_code;
            match error_code(cx, limited) {
                Some(code) if code == expected => {}
                other => findings.push(format!(
                    "expected error code \"{expected}\" at {} on the 429, saw {} in {}",
                    cx.settings().errors.code_pointer,
                    other
                        .map(|c| format!("\"{c}\""))
                        .unwrap_or_else(|| "none".into()),
                    limited.label()
                )),
            }
            findings.extend(envelope_findings(cx, limited));
        }
    }
    cx.note(&report.summary());
    Ok(findings
        .into_iter()
        .map(|f| format!("{f} [{}]", report.summary()))
        .collect())
}

fn judge_hints(cx: &CheckContext, report: &BurstReport) -> Result<Findings, Abort> {
    let Some(limited) = report.limited() else {
        return Err(Abort::Ignored(format!(
            "the burst got no 429 to inspect ({})",
            report.summary()
        )));
    };
    let mut findings = Vec::new();
    // Judged at the moment the 429 arrived, not after the recovery has waited the hint out.
    let arrived = limited.received_at;
    let cap = cx.settings().target.max_retry_after_seconds;
    match retry_after(limited) {
        Ok(None) => findings.push(format!(
            "the 429 has no Retry-After header: {}",
            limited.label()
        )),
        Err(why) => findings.push(format!("{why}, in {}", limited.label())),
        Ok(Some(hint)) => {
            if hint.is_in_past(arrived, limited.header("date")) {
                findings.push(format!(
                    "Retry-After \"{}\" was already in the past when the 429 arrived (Date: {}), in {}",
                    limited.header("retry-after").unwrap_or_default(),
                    limited.header("date").unwrap_or("none"),
                    limited.label()
                ));
            } else if hint.wait_from(arrived).as_secs() > cap {
                findings.push(format!(
                    "Retry-After asks for {} s, more than the {cap} s cap (max_retry_after_seconds), in {}",
                    hint.wait_from(arrived).as_secs(),
                    limited.label()
                ));
            }
        }
    }
    let infos = report.rate_limit_infos();
    if infos.is_empty() {
        findings.push(
            "no RateLimit headers in any recognised form (X-RateLimit-*, RateLimit-*, RateLimit + RateLimit-Policy) on the burst's responses"
                .to_string(),
        );
    }
    if let Some(info) = rate_limit_info(limited) {
        if let Some(remaining) = info.remaining.filter(|r| *r > 0) {
            findings.push(format!(
                "the 429 says {remaining} requests remain, in {}",
                limited.label()
            ));
        }
    }
    // Responses complete out of order by up to `concurrency`, and buckets refill: only a rise
    // beyond both is a counter that goes up within its window.
    let slack = u64::from(report.concurrency);
    let mut lowest: Option<u64> = None;
    for (index, info) in &infos {
        let Some(remaining) = info.remaining else {
            continue;
        };
        if let Some(low) = lowest {
            let refill = refill_allowance(info, report);
            if remaining > low + slack + refill {
                findings.push(format!(
                    "remaining rose from {low} to {remaining} during the burst (response {} of {}), in {}",
                    index + 1,
                    report.responses.len(),
                    report.responses[*index].label()
                ));
                break;
            }
        }
        lowest = Some(lowest.map_or(remaining, |low| low.min(remaining)));
    }
    if let (Some((_, first)), Some(after)) = (infos.first(), report.first_limited_after) {
        let after = after as u64;
        if let Some(remaining) = first.remaining {
            if remaining > after + slack {
                findings.push(format!(
                    "the first response said {remaining} requests remain, but the 429 came after only {after}"
                ));
            }
        }
        if let Some(limit) = first.limit {
            let refill = refill_allowance(first, report);
            if after > limit + slack + refill {
                findings.push(format!(
                    "the server advertises a limit of {limit}, but answered {after} requests before the first 429"
                ));
            }
        }
    }
    cx.note(&report.summary());
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

fn judge_recovery(cx: &CheckContext, report: &BurstReport) -> Result<Findings, Abort> {
    let Some(recovery) = &report.recovery else {
        return Err(Abort::Ignored(format!(
            "the burst got no 429 to recover from ({})",
            report.summary()
        )));
    };
    let waited: f64 = recovery.waits.iter().map(|(d, _)| d.as_secs_f64()).sum();
    let story: Vec<String> = recovery
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
    if recovery.recovered() {
        cx.note(&format!(
            "recovered after {waited:.1} s: {}",
            story.join("; ")
        ));
        return Ok(Vec::new());
    }
    let capped = match recovery.capped_hint {
        Some(hint) => format!(
            " (Retry-After asked for {} s, cut to the cap)",
            hint.as_secs()
        ),
        None => String::new(),
    };
    Ok(vec![format!(
        "the request still did not succeed after {} wait(s) totalling {waited:.1} s{capped}: {}",
        recovery.waits.len(),
        story.join("; ")
    )])
}
