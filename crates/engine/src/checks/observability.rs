//! `observability::*` kinds: every response can be traced by its request id, and the ids the
//! harness saw can be found in the provider's logs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;

use super::{planned, send_all, Check, Finding, Findings, Needs};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::suite::{RequestSpec, Settings};

/// Every error reply carries a non-empty request id in its body (MUST in the contract).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRequestId {
    requests: Vec<RequestSpec>,
}

impl Check for ErrorRequestId {
    fn requests(&self) -> &[RequestSpec] {
        &self.requests
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            let errors: Vec<&Response> = responses.iter().filter(|r| !r.is_success()).collect();
            if errors.is_empty() {
                return Err(Abort::Ignored(
                    "none of its requests got an error reply to inspect".into(),
                ));
            }
            let pointer = &cx.settings().request_id.body_pointer;
            Ok(errors
                .into_iter()
                .filter(|r| {
                    r.pointer(pointer)
                        .and_then(|v| v.as_str())
                        .is_none_or(|id| id.trim().is_empty())
                })
                .map(|r| {
                    let seen = r
                        .pointer(pointer)
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "nothing".into());
                    let message = format!(
                        "expected a request id at {pointer} in the error body of {}, saw {seen}",
                        r.label()
                    );
                    Finding::new("observability.error_request_id", message)
                        .expected("a non-empty request id")
                        .actual(seen)
                        .at(pointer)
                        .cites(r)
                })
                .collect())
        }
        .boxed()
    }
}

/// Every response, success or error, carries a request id header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIdHeader {
    requests: Vec<RequestSpec>,
}

impl Check for RequestIdHeader {
    fn requests(&self) -> &[RequestSpec] {
        &self.requests
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            let names = &cx.settings().request_id.headers;
            let mut findings = Vec::new();
            for response in &responses {
                match header_id(cx, response) {
                    None => findings.push(
                        Finding::new(
                            "observability.header_missing",
                            format!("expected a request id header ({}) on {}", names.join(", "), response.label()),
                        )
                        .expected(names.join(", "))
                        .cites(response),
                    ),
                    Some((name, value)) if name.eq_ignore_ascii_case("traceparent") && !valid_traceparent(value) => {
                        findings.push(
                            Finding::new(
                                "observability.traceparent",
                                format!(
                                    "traceparent \"{value}\" is not 00-<32 hex>-<16 hex>-<2 hex> with non-zero ids, on {}",
                                    response.label()
                                ),
                            )
                            .expected("00-<32 hex>-<16 hex>-<2 hex>")
                            .actual(value)
                            .cites(response),
                        )
                    }
                    Some((name, _)) if response.header_count(&name) > 1 => findings.push(
                        Finding::new(
                            "observability.header_duplicated",
                            format!(
                                "the {name} header is duplicated ({} copies on one response), in {}",
                                response.header_count(&name),
                                response.label()
                            ),
                        )
                        .expected(1)
                        .actual(response.header_count(&name))
                        .cites(response),
                    ),
                    Some(_) => {}
                }
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// Request ids are unique: across `repeat` rounds of `requests` and every response of the run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIdUnique {
    requests: Vec<RequestSpec>,
    #[serde(default = "repeats_compared")]
    repeat: u32,
}

/// Each request repeated this often: ids that repeat show within a few.
fn repeats_compared() -> u32 {
    3
}

impl Check for RequestIdUnique {
    /// It judges every exchange of the run, so it runs after all the others.
    fn judges_the_run(&self) -> bool {
        true
    }

    fn plan(&self, _settings: &Settings) -> Vec<String> {
        planned(&self.requests)
            .into_iter()
            .map(|r| format!("{r} x {}", self.repeat.clamp(1, 20)))
            .collect()
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::of(&self.requests)
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            for _ in 0..self.repeat.clamp(1, 20) {
                send_all(cx, &self.requests).await?;
            }
            let mut seen: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
            for exchange in cx.run.record.exchanges() {
                if let Some(id) = exchange.request_id {
                    let url_path = exchange
                        .url
                        .strip_prefix(cx.client().base_url())
                        .unwrap_or(&exchange.url)
                        .to_string();
                    let line = format!(
                        "{} {url_path} -> {}",
                        exchange.method,
                        exchange.status.unwrap_or(0)
                    );
                    seen.entry(id).or_default().push((exchange.id, line));
                }
            }
            if seen.is_empty() {
                return Err(Abort::Ignored(
                    "no response of the run carried a request id to compare".into(),
                ));
            }
            let total: usize = seen.values().map(Vec::len).sum();
            Ok(seen
                .into_iter()
                .filter(|(_, uses)| uses.len() > 1)
                .take(5)
                .map(|(id, uses)| {
                    let examples: Vec<&str> =
                        uses.iter().take(3).map(|(_, l)| l.as_str()).collect();
                    let message = format!(
                        "request id {id} was given to {} of the run's {total} responses, e.g. {}",
                        uses.len(),
                        examples.join("; ")
                    );
                    Finding::new("observability.id_reused", message)
                        .actual(&id)
                        .cites_exchanges(uses.iter().map(|(e, _)| *e))
                })
                .collect())
        }
        .boxed()
    }
}

/// On error replies, the request id header and the body's request id are the same.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestIdConsistent {
    requests: Vec<RequestSpec>,
}

impl Check for RequestIdConsistent {
    fn requests(&self) -> &[RequestSpec] {
        &self.requests
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let responses = send_all(cx, &self.requests).await?;
            let pointer = &cx.settings().request_id.body_pointer;
            let mut compared = 0;
            let mut findings = Vec::new();
            for response in responses.iter().filter(|r| !r.is_success()) {
                let (Some((name, header)), Some(body)) =
                    (header_id(cx, response), response.pointer(pointer).and_then(|v| v.as_str()))
                else {
                    continue;
                };
                compared += 1;
                let same = header == body
                    || (name.eq_ignore_ascii_case("traceparent") && header.split('-').nth(1) == Some(body));
                if !same {
                    let message = format!(
                        "header {name} says \"{header}\" but the body's {pointer} says \"{body}\", in {} {}",
                        response.request_line, response.status
                    );
                    findings.push(
                        Finding::new("observability.id_mismatch", message)
                            .expected(header)
                            .actual(body)
                            .at(pointer)
                            .cites(response),
                    );
                }
            }
            if compared == 0 {
                return Err(Abort::Ignored(
                    "no error reply had both a request id header and a body request id to compare".into(),
                ));
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// Every request id received and every job id used in the run appears in the log source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsContainIds {
    /// Sent first, so the log has fresh entries to find even if this check runs early.
    #[serde(default)]
    requests: Vec<RequestSpec>,
    /// How long to wait for log lines to arrive (logs are often shipped with a delay).
    #[serde(default = "log_shipping_seconds")]
    grace_seconds: f64,
}

/// How long log lines may take to be shipped to the log source.
fn log_shipping_seconds() -> f64 {
    5.0
}

impl Check for LogsContainIds {
    /// It judges every exchange of the run, so it runs after all the others.
    fn judges_the_run(&self) -> bool {
        true
    }

    fn plan(&self, _settings: &Settings) -> Vec<String> {
        let mut plan = planned(&self.requests);
        plan.push("then reads the log source (no request)".into());
        plan
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs {
            logs: true,
            ..Needs::of(&self.requests)
        }
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let Some(path) = cx.run.options.logs.clone() else {
                return Err(Abort::Ignored(
                    "needs a log source: pass --logs PATH".into(),
                ));
            };
            send_all(cx, &self.requests).await?;
            let mut wanted: Vec<(&str, String)> = Vec::new();
            for exchange in cx.run.record.exchanges() {
                if let Some(id) = exchange.request_id {
                    wanted.push(("request id", id));
                }
                if let Some(id) = exchange.job_id {
                    wanted.push(("job id", id));
                }
            }
            wanted.sort();
            wanted.dedup();
            if wanted.is_empty() {
                return Err(Abort::Ignored(
                    "the run has no request or job id to look for".into(),
                ));
            }
            let grace = Duration::from_secs_f64(self.grace_seconds.clamp(0.0, 600.0));
            let deadline = Instant::now() + grace;
            loop {
                let log = match tokio::fs::read(&path).await {
                    Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                    Err(e) => {
                        return Ok(vec![Finding::new(
                            "observability.logs_unreadable",
                            format!("cannot read the log source {}: {e}", path.display()),
                        )])
                    }
                };
                let missing: Vec<String> = wanted
                    .iter()
                    .filter(|(_, id)| !log.contains(id.as_str()))
                    .map(|(what, id)| format!("{what} {id}"))
                    .collect();
                if missing.is_empty() {
                    return Ok(Vec::new());
                }
                if Instant::now() >= deadline {
                    return Ok(vec![Finding::new(
                        "observability.logs_missing_ids",
                        format!(
                            "{} of {} ids were not found in {} after {} s: {}{}",
                            missing.len(),
                            wanted.len(),
                            path.display(),
                            grace.as_secs_f64(),
                            missing
                                .iter()
                                .take(5)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", "),
                            if missing.len() > 5 { ", ..." } else { "" }
                        ),
                    )]);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        .boxed()
    }
}

/// The first request id header the suite lists that this response has, with its value.
fn header_id<'r>(cx: &CheckContext, response: &'r Response) -> Option<(String, &'r str)> {
    cx.settings().request_id.headers.iter().find_map(|name| {
        response
            .header(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (name.clone(), v.trim()))
    })
}

/// W3C Trace Context: `00-<32 hex>-<16 hex>-<2 hex>`, with neither id all zeros.
fn valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1].bytes().any(|b| b != b'0')
        && parts[2].bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::valid_traceparent;

    #[test]
    fn traceparent_format() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent("req_123"));
    }
}
