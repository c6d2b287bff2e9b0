//! `latency::*` kind: how fast the target answers, measured on every matching exchange of the
//! run plus a few reads of its own, compared with the suite's thresholds.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{Check, Finding, Findings, Needs};
use crate::context::{Abort, CheckContext};
use crate::suite::{PathTemplate, RequestSpec, Settings};

/// The median and 95th percentile of successful responses to `request`'s path stay under
/// the thresholds, and no such request timed out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Latency {
    /// Sent `samples` times; every exchange of the run to the same path template counts too.
    request: RequestSpec,
    #[serde(default = "samples_sent")]
    samples: u32,
    #[serde(default = "prompt_read_seconds")]
    p95_max_seconds: f64,
    median_max_seconds: Option<f64>,
}

/// Requests sent by the check itself, beside every matching exchange of the run.
fn samples_sent() -> u32 {
    5
}

/// What "answers promptly" means for a status read, at the 95th percentile.
fn prompt_read_seconds() -> f64 {
    2.0
}

impl Check for Latency {
    /// It judges every exchange of the run, so it runs after all the others.
    fn judges_the_run(&self) -> bool {
        true
    }

    fn plan(&self, _settings: &Settings) -> Vec<String> {
        vec![format!(
            "{} x {}",
            self.request.describe(),
            self.samples.min(50)
        )]
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of([&self.request])
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            for _ in 0..self.samples.min(50) {
                match cx.send(&self.request).await {
                    Ok(_) | Err(Abort::Errored(_)) => {} // timeouts are counted from the record below
                    Err(other) => return Err(other),
                }
            }
            let method = self.request.method.as_str();
            let mut times = Vec::new();
            let mut measured = Vec::new();
            let mut timeouts = Vec::new();
            for exchange in cx.run.record.exchanges() {
                let path = exchange
                    .url
                    .strip_prefix(cx.client().base_url())
                    .unwrap_or(&exchange.url);
                if exchange.method != method || !matches_template(&self.request.path, path) {
                    continue;
                }
                match (exchange.status, &exchange.error) {
                    (Some(status), _) if (200..300).contains(&status) => {
                        times.push(exchange.elapsed);
                        measured.push(exchange.id);
                    }
                    (None, Some(error)) if error.contains("timed out") => {
                        timeouts.push((exchange.id, error.clone()))
                    }
                    _ => {}
                }
            }
            let mut findings = Vec::new();
            if !timeouts.is_empty() {
                let message = format!(
                    "{} {} request(s) got no answer in time: {}",
                    timeouts.len(),
                    self.request.path.0,
                    timeouts[0].1
                );
                findings.push(
                    Finding::new("latency.timeout", message)
                        .cites_exchanges(timeouts.iter().map(|(id, _)| *id)),
                );
            }
            if times.is_empty() {
                findings.push(Finding::new(
                    "latency.no_sample",
                    format!("no successful {} to measure", self.request.describe()),
                ));
                return Ok(findings);
            }
            times.sort();
            let median = percentile(&times, 50.0);
            let p95 = percentile(&times, 95.0);
            let summary = format!(
                "{} {} over {} responses: median {:.0} ms, 95th percentile {:.0} ms",
                method,
                self.request.path.0,
                times.len(),
                median.as_secs_f64() * 1000.0,
                p95.as_secs_f64() * 1000.0
            );
            if p95.as_secs_f64() > self.p95_max_seconds {
                let message = format!(
                    "{summary}; the 95th percentile must be at most {} s",
                    self.p95_max_seconds
                );
                findings.push(
                    Finding::new("latency.p95", message)
                        .expected(format!("at most {} s", self.p95_max_seconds))
                        .actual(format!("{:.3} s", p95.as_secs_f64()))
                        .cites_exchanges(measured.iter().copied()),
                );
            }
            if let Some(max) = self
                .median_max_seconds
                .filter(|max| median.as_secs_f64() > *max)
            {
                findings.push(
                    Finding::new(
                        "latency.median",
                        format!("{summary}; the median must be at most {max} s"),
                    )
                    .expected(format!("at most {max} s"))
                    .actual(format!("{:.3} s", median.as_secs_f64()))
                    .cites_exchanges(measured.iter().copied()),
                );
            }
            cx.note(&summary);
            Ok(findings)
        }
        .boxed()
    }
}

/// True when `path` (with its query) is `template` with each placeholder as one segment.
fn matches_template(template: &PathTemplate, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let template = template.0.split('?').next().unwrap_or(&template.0);
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

/// The nearest-rank percentile of sorted `times`.
fn percentile(sorted: &[Duration], pct: f64) -> Duration {
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_percentiles() {
        let t = PathTemplate("/v1/jobs/{job_id}".into());
        assert!(matches_template(&t, "/v1/jobs/job_1"));
        assert!(!matches_template(&t, "/v1/jobs/job_1/start"));
        assert!(!matches_template(&t, "/v1/jobs?limit=1"));
        let times: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&times, 50.0), Duration::from_millis(10));
        assert_eq!(percentile(&times, 95.0), Duration::from_millis(19));
        assert_eq!(percentile(&times[..1], 95.0), Duration::from_millis(1));
    }
}
