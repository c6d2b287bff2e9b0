//! `webhooks::*` kinds: a job's events reach its `webhook_url` in order, with the headers,
//! the signature and the body of docs/contract.md section 6, retried with the same delivery
//! id, and recorded on the job (settings in `[webhooks]`).
//!
//! Every kind judges one aspect of the run's one [`WebhookReport`] (see [`crate::webhooks`])
//! with a pure function, which unit tests call with made-up deliveries.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use super::{one, params, Check, Finding, Findings, NamedCheck, Needs};
use crate::context::{Abort, CheckContext};
use crate::jobs::{id_text, shown, Phase};
use crate::suite::{CheckDecl, JobSettings, Settings, WebhookSettings};
use crate::webhooks::{recorded_states, retry_of_first, Delivery, WebhookReport};

/// Which part of the deliveries a check judges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aspect {
    /// The started event arrives before the terminal one.
    Order,
    /// The event header names the body's event.
    EventHeader,
    /// Each delivery has its own id.
    DeliveryIds,
    /// Each delivery's timestamp is near the moment it arrived.
    Timestamp,
    /// Each delivery's signature verifies with the run's secret.
    Signature,
    /// Each body names the job and its status.
    NamesJob,
    /// The job's record holds the deliveries.
    Recorded,
    /// The first delivery, failed on purpose, comes again with its id.
    Retry,
}

/// A `webhooks::*` check; it takes no parameters (everything is in `[webhooks]`).
pub struct WebhookCheck {
    aspect: Aspect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// Build the kind that judges `aspect`.
pub fn build(decl: &CheckDecl, aspect: Aspect) -> Result<Vec<NamedCheck>, String> {
    params::<NoParams>(decl)?;
    one(decl, WebhookCheck { aspect })
}

/// Where `--webhook-secret` can come from, for the signature check's ignore reason.
const NO_SECRET: &str = "needs the webhook signing secret: pass --webhook-secret-file PATH, set APICONFORM_WEBHOOK_SECRET, or pass --webhook-secret SECRET";

impl Check for WebhookCheck {
    fn needs(&self, _settings: &Settings) -> Needs {
        Needs {
            writes: true,
            webhook_receiver: true,
            ..Needs::default()
        }
    }

    fn plan(&self, settings: &Settings) -> Vec<String> {
        let hooks = &settings.webhooks;
        vec![
            "listen for webhooks (on --webhook-listen, or on a loopback port for a target on loopback)".into(),
            format!(
                "POST {} with [jobs] create_body and webhook_url set to the receiver [side effect: creates a job, may spend credits]",
                settings.jobs.create_path
            ),
            format!(
                "GET {} every poll interval until the job ends (at most its deadline), then wait up to {} s for its deliveries (the first is answered 503 on purpose, to see it retried)",
                settings.jobs.read_path, hooks.timeout_seconds
            ),
            format!(
                "GET {} (the job's record of its deliveries, at {})",
                settings.jobs.read_path, hooks.events_pointer
            ),
        ]
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let secret = cx.client().webhook_secret();
            if self.aspect == Aspect::Signature && secret.is_none() {
                return Err(Abort::Ignored(NO_SECRET.into()));
            }
            let report = cx.run.webhooks().await?;
            let settings = cx.settings();
            cx.note(&summary(&report, &settings.webhooks));
            Ok(judge(self.aspect, &report, settings, secret))
        }
        .boxed()
    }
}

/// One line on what arrived, for every check's notes.
fn summary(report: &WebhookReport, settings: &WebhookSettings) -> String {
    let arrived: Vec<String> = report
        .deliveries
        .iter()
        .map(|d| format!("{} answered {}", d.label(settings), d.answered))
        .collect();
    format!(
        "job {} with webhook_url {}: {} attempt(s) arrived{}: {}",
        report.job_id,
        report.url,
        report.deliveries.len(),
        if report.timed_out {
            format!(" before the {} s wait ended", report.timeout.as_secs_f64())
        } else {
            String::new()
        },
        if arrived.is_empty() {
            "none".to_owned()
        } else {
            arrived.join("; ")
        }
    )
}

/// The findings of `aspect` on `report`; `secret` verifies signatures.
pub fn judge(
    aspect: Aspect,
    report: &WebhookReport,
    settings: &Settings,
    secret: Option<&str>,
) -> Findings {
    let hooks = &settings.webhooks;
    if report.deliveries.is_empty() {
        let when = match &report.unfinished {
            Some(why) => format!("while the run followed it ({why})"),
            None => format!("within {} s of its end", report.timeout.as_secs_f64()),
        };
        return vec![Finding::new(
            "webhooks.none",
            format!(
                "no webhook delivery for job {} arrived at {} {when}",
                report.job_id, report.url
            ),
        )
        .cites(&report.create)];
    }
    let findings = match aspect {
        Aspect::Order => order(&report.deliveries, hooks, report),
        Aspect::EventHeader => event_header(&report.deliveries, hooks),
        Aspect::DeliveryIds => delivery_ids(&report.deliveries, hooks),
        Aspect::Timestamp => timestamps(&report.deliveries, hooks),
        Aspect::Signature => match secret {
            Some(secret) => signatures(&report.deliveries, hooks, secret.as_bytes()),
            None => Vec::new(),
        },
        Aspect::NamesJob => names_job(&report.deliveries, settings, &report.job_id),
        Aspect::Recorded => return recorded(report, hooks),
        Aspect::Retry => retry(&report.deliveries, hooks, report),
    };
    findings
        .into_iter()
        .map(|f| f.cites(&report.create))
        .collect()
}

fn is_terminal(hooks: &WebhookSettings, event: &str) -> bool {
    event == hooks.completed_event || event == hooks.failed_event
}

/// The started event arrives, a terminal one arrives, and the started one comes first.
fn order(deliveries: &[Delivery], hooks: &WebhookSettings, report: &WebhookReport) -> Findings {
    const RULE: &str = "webhooks.order";
    let events: Vec<String> = deliveries.iter().map(|d| d.label(hooks)).collect();
    let started = deliveries
        .iter()
        .find(|d| d.event(hooks).as_deref() == Some(hooks.started_event.as_str()));
    let terminal = deliveries
        .iter()
        .find(|d| d.event(hooks).is_some_and(|e| is_terminal(hooks, &e)));
    let finding = match (started, terminal) {
        (None, _) => format!(
            "{} never arrived; what arrived: {}",
            hooks.started_event,
            events.join(", ")
        ),
        (_, None) => format!(
            "no terminal event ({} or {}) arrived {}; what arrived: {}",
            hooks.completed_event,
            hooks.failed_event,
            match &report.unfinished {
                Some(why) => format!("(the job did not end: {why})"),
                None => format!("within {} s of the job's end", report.timeout.as_secs_f64()),
            },
            events.join(", ")
        ),
        (Some(started), Some(terminal)) if terminal.seq < started.seq => format!(
            "{} arrived before {}: {}",
            terminal.label(hooks),
            started.label(hooks),
            events.join(", ")
        ),
        _ => return Vec::new(),
    };
    vec![Finding::new(RULE, finding)
        .expected(format!("{} before the terminal event", hooks.started_event))
        .actual(events.join(", "))]
}

/// Every attempt's event header names the event its body names.
fn event_header(deliveries: &[Delivery], hooks: &WebhookSettings) -> Findings {
    const RULE: &str = "webhooks.event_header";
    let mut findings = Vec::new();
    for d in deliveries {
        let header = d.header(&hooks.event_header);
        let body = d.json();
        let in_body = body
            .as_ref()
            .and_then(|b| b.pointer(&hooks.event_pointer))
            .and_then(Value::as_str);
        let label = d.label(hooks);
        let problem = match (header, in_body) {
            (None, _) => format!("{label} has no {} header", hooks.event_header),
            (_, None) => format!(
                "{label}: the body names no event at {} (saw {})",
                hooks.event_pointer,
                shown(body.as_ref().and_then(|b| b.pointer(&hooks.event_pointer)))
            ),
            (Some(h), Some(b)) if h != b => format!(
                "{label}: {} says \"{h}\", but the body's event is \"{b}\"",
                hooks.event_header
            ),
            _ => continue,
        };
        findings.push(
            Finding::new(RULE, problem)
                .expected(in_body.unwrap_or("the body's event"))
                .actual(header.unwrap_or("no header")),
        );
    }
    findings
}

/// Every attempt carries a delivery id, and no id is used for two different events.
fn delivery_ids(deliveries: &[Delivery], hooks: &WebhookSettings) -> Findings {
    const RULE: &str = "webhooks.delivery_id";
    let mut findings = Vec::new();
    let mut events_by_id: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for d in deliveries {
        match d.header(&hooks.delivery_id_header) {
            Some(id) if !id.trim().is_empty() => {
                events_by_id
                    .entry(id)
                    .or_default()
                    .insert(d.event(hooks).unwrap_or_else(|| "no event".into()));
            }
            _ => findings.push(
                Finding::new(
                    RULE,
                    format!(
                        "{} has no {} header",
                        d.label(hooks),
                        hooks.delivery_id_header
                    ),
                )
                .expected("a delivery id unique to the delivery")
                .actual("none"),
            ),
        }
    }
    for (id, events) in events_by_id.iter().filter(|(_, e)| e.len() > 1) {
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        findings.push(
            Finding::new(
                RULE,
                format!(
                    "delivery id {id} was used for different deliveries ({}); each delivery needs its own (only its retries share it)",
                    events.join(", ")
                ),
            )
            .expected("one delivery id per delivery")
            .actual(format!("{id} for {}", events.join(" and "))),
        );
    }
    findings
}

/// A timestamp header as seconds since the Unix epoch: Unix seconds, Unix milliseconds (13
/// digits or more), or an RFC 3339 date-time.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Ok(number) = text.parse::<f64>() {
        if !number.is_finite() {
            return None;
        }
        return Some(if number.abs() >= 1e11 {
            number / 1000.0
        } else {
            number
        });
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Every attempt's timestamp is within the tolerance of the moment it arrived (a whole-second
/// timestamp may trail its arrival by up to a second more).
fn timestamps(deliveries: &[Delivery], hooks: &WebhookSettings) -> Findings {
    const RULE: &str = "webhooks.timestamp";
    let tolerance = hooks.timestamp_tolerance_seconds;
    let mut findings = Vec::new();
    for d in deliveries {
        let label = d.label(hooks);
        let Some(text) = d.header(&hooks.timestamp_header) else {
            findings.push(
                Finding::new(
                    RULE,
                    format!("{label} has no {} header", hooks.timestamp_header),
                )
                .expected("the time the delivery was sent")
                .actual("none"),
            );
            continue;
        };
        let Some(sent) = parse_timestamp(text) else {
            findings.push(
                Finding::new(
                    RULE,
                    format!(
                        "{label}: {} \"{text}\" is neither Unix seconds nor an RFC 3339 date-time",
                        hooks.timestamp_header
                    ),
                )
                .expected("Unix seconds or RFC 3339")
                .actual(text),
            );
            continue;
        };
        let behind = unix_seconds(d.arrived) - sent;
        let problem = if behind > tolerance + 1.0 {
            format!("it was sent {behind:.0} s before it arrived")
        } else if -behind > tolerance {
            format!("it is {:.0} s in the future of its arrival", -behind)
        } else {
            continue;
        };
        findings.push(
            Finding::new(
                RULE,
                format!(
                    "{label}: {} \"{text}\" is not fresh: {problem} (tolerance {tolerance} s, [webhooks] timestamp_tolerance_seconds)",
                    hooks.timestamp_header
                ),
            )
            .expected(format!("within {tolerance} s of the arrival"))
            .actual(format!("{behind:.0} s")),
        );
    }
    findings
}

/// Lowercase or uppercase hex to bytes.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `signature` (raw bytes) is the HMAC-SHA256 of `"<timestamp>.<body>"` keyed with
/// `secret`, compared in constant time.
pub fn signature_verifies(secret: &[u8], timestamp: &str, body: &[u8], signature: &[u8]) -> bool {
    // HMAC takes keys of any length; the error case cannot happen.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

/// Every attempt is signed, and its signature verifies over its timestamp and raw body.
fn signatures(deliveries: &[Delivery], hooks: &WebhookSettings, secret: &[u8]) -> Findings {
    const RULE: &str = "webhooks.signature";
    let mut findings = Vec::new();
    for d in deliveries {
        let label = d.label(hooks);
        let header = &hooks.signature_header;
        let problem = match (d.header(header), d.header(&hooks.timestamp_header)) {
            (None, _) => format!("{label} has no {header} header"),
            (Some(_), None) => format!(
                "{label} cannot be verified: it has no {} header to sign over",
                hooks.timestamp_header
            ),
            (Some(value), Some(timestamp)) => {
                match value.strip_prefix(&hooks.signature_prefix).map(hex_bytes) {
                    None => format!(
                        "{label}: {header} \"{value}\" does not start with \"{}\"",
                        hooks.signature_prefix
                    ),
                    Some(None) => {
                        format!("{label}: {header} \"{value}\" is not hex after the prefix")
                    }
                    Some(Some(bytes)) => {
                        if signature_verifies(secret, timestamp, &d.body, &bytes) {
                            continue;
                        }
                        format!(
                            "{label}: {header} does not verify: it is not the HMAC-SHA256 of \"<timestamp>.<raw body>\" with the run's secret (timestamp \"{timestamp}\", {} body bytes)",
                            d.body.len()
                        )
                    }
                }
            }
        };
        findings.push(
            Finding::new(RULE, problem)
                .expected(format!(
                    "{}<hex of HMAC-SHA256(secret, \"<timestamp>.<raw body>\")>",
                    hooks.signature_prefix
                ))
                .actual(d.header(header).unwrap_or("none")),
        );
    }
    findings
}

/// The job object a body holds at one of `[webhooks] job_pointers` (the first with an id).
fn job_in<'b>(body: &'b Value, hooks: &WebhookSettings, jobs: &JobSettings) -> Option<&'b Value> {
    hooks
        .job_pointers
        .iter()
        .filter_map(|p| body.pointer(p))
        .find(|job| job.is_object() && id_text(job.pointer(&jobs.id_pointer)).is_some())
}

/// Every body names the job created, and a status the suite knows; a terminal event's status
/// is the one it announces.
fn names_job(deliveries: &[Delivery], settings: &Settings, job_id: &str) -> Findings {
    const RULE: &str = "webhooks.names_job";
    let (hooks, jobs) = (&settings.webhooks, &settings.jobs);
    let mut findings = Vec::new();
    for d in deliveries {
        let label = d.label(hooks);
        let Some(body) = d.json() else {
            findings.push(
                Finding::new(RULE, format!("{label}: the body is not JSON"))
                    .expected("a JSON body naming the job")
                    .actual(
                        String::from_utf8_lossy(&d.body)
                            .chars()
                            .take(120)
                            .collect::<String>(),
                    ),
            );
            continue;
        };
        let Some(job) = job_in(&body, hooks, jobs) else {
            findings.push(
                Finding::new(
                    RULE,
                    format!(
                        "{label} names no job: none of {} holds an object with an id at {}",
                        hooks.job_pointers.join(", "),
                        jobs.id_pointer
                    ),
                )
                .expected(format!(
                    "the job object at {}",
                    hooks.job_pointers.join(" or ")
                ))
                .actual(shown(Some(&body))),
            );
            continue;
        };
        let named = id_text(job.pointer(&jobs.id_pointer)).unwrap_or_default();
        if named != job_id {
            findings.push(
                Finding::new(RULE, format!("{label} names job {named}, not {job_id}"))
                    .expected(job_id)
                    .actual(&named)
                    .at(&jobs.id_pointer),
            );
            continue;
        }
        let status = job.pointer(&jobs.status_pointer).and_then(Value::as_str);
        let phase = status.and_then(|s| jobs.phase(s));
        let event = d.event(hooks).unwrap_or_default();
        let wanted = if event == hooks.completed_event {
            Some(Phase::Completed)
        } else if event == hooks.failed_event {
            Some(Phase::Failed)
        } else {
            None
        };
        let problem = match (status, phase) {
            (None, _) => format!(
                "{label}: the job has no string status at {} (saw {})",
                jobs.status_pointer,
                shown(job.pointer(&jobs.status_pointer))
            ),
            (Some(s), None) => {
                format!("{label}: the job's status \"{s}\" is not one the suite knows")
            }
            (Some(s), Some(p)) if wanted.is_some_and(|w| w != p) => {
                format!("{label}: a {event} names the job with status \"{s}\"")
            }
            _ => continue,
        };
        findings.push(
            Finding::new(RULE, problem)
                .expected("the job's status, agreeing with the event")
                .actual(shown(job.pointer(&jobs.status_pointer)))
                .at(&jobs.status_pointer),
        );
    }
    findings
}

/// The job's record holds every event the receiver took as `sent`, and gives only the
/// contract's states (`sent`, `failed`).
fn recorded(report: &WebhookReport, hooks: &WebhookSettings) -> Findings {
    const RULE: &str = "webhooks.recorded";
    let read = &report.job_read;
    let cite = |f: Finding| f.cites(&report.create).cites(read);
    if !read.is_success() {
        return vec![cite(Finding::new(
            RULE,
            format!(
                "reading job {} for its record of the deliveries: expected 2xx, got {}",
                report.job_id,
                read.label()
            ),
        ))];
    }
    let record = read.pointer(&hooks.events_pointer);
    let Some(record) = record.filter(|r| r.is_object() || r.is_array()) else {
        return vec![cite(
            Finding::new(
                RULE,
                format!(
                    "job {} has no record of its deliveries at {} (saw {}), though {} arrived",
                    report.job_id,
                    hooks.events_pointer,
                    shown(record),
                    report.deliveries.len()
                ),
            )
            .expected("the delivery state (sent or failed) of each event")
            .actual(shown(record))
            .at(&hooks.events_pointer),
        )];
    };
    let mut findings = Vec::new();
    let mut judged = BTreeSet::new();
    for d in &report.deliveries {
        let Some(event) = d.event(hooks) else {
            continue;
        };
        if !judged.insert(event.clone()) {
            continue;
        }
        let states = recorded_states(record, &event);
        let taken = report
            .deliveries
            .iter()
            .find(|other| other.accepted() && other.event(hooks).as_ref() == Some(&event));
        let problem = if let Some(odd) = states.iter().find(|s| *s != "sent" && *s != "failed") {
            format!("records {event} as \"{odd}\"; the states are sent and failed")
        } else if let Some(taken) = taken {
            if states.iter().any(|s| s == "sent") {
                continue;
            }
            if states.is_empty() {
                format!(
                    "does not record {event}, which the receiver took ({} answered {})",
                    taken.label(hooks),
                    taken.answered
                )
            } else {
                format!(
                    "records {event} as {}, though the receiver took it ({} answered {})",
                    states.join(", "),
                    taken.label(hooks),
                    taken.answered
                )
            }
        } else {
            // Never taken: the target may still be retrying it; either state is right.
            continue;
        };
        findings.push(cite(
            Finding::new(RULE, format!("job {} {problem}", report.job_id))
                .expected(format!("{event} recorded as sent"))
                .actual(shown(Some(record)))
                .at(&hooks.events_pointer),
        ));
    }
    findings
}

/// The first delivery, answered 503 on purpose, comes again with the same delivery id.
fn retry(deliveries: &[Delivery], hooks: &WebhookSettings, report: &WebhookReport) -> Findings {
    const RULE: &str = "webhooks.retry";
    let first = &deliveries[0];
    let label = first.label(hooks);
    let Some(id) = first.header(&hooks.delivery_id_header) else {
        return vec![Finding::new(
            RULE,
            format!(
                "{label} has no {} header, so its retry cannot be told from a new delivery",
                hooks.delivery_id_header
            ),
        )];
    };
    if retry_of_first(deliveries, hooks).is_some() {
        return Vec::new();
    }
    let event = first.event(hooks);
    let again = deliveries[1..]
        .iter()
        .find(|d| d.event(hooks) == event && d.header(&hooks.delivery_id_header) != Some(id));
    let problem = match again {
        Some(again) => format!(
            "{label} was answered {} on purpose and came again with another delivery id: {}",
            first.answered,
            again.label(hooks)
        ),
        None => format!(
            "{label} was answered {} on purpose and was not retried within {} s of the job's end",
            first.answered,
            report.timeout.as_secs_f64()
        ),
    };
    vec![Finding::new(RULE, problem)
        .expected(format!("a retry with delivery id {id}"))
        .actual(again.map_or("no retry".to_owned(), |d| d.label(hooks)))]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Response;
    use bytes::Bytes;
    use serde_json::json;
    use std::time::Duration;

    const SECRET: &[u8] = b"whsec_test";

    /// Arrival at a fixed instant, 1_700_000_000 s after the epoch.
    fn arrived() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn sign(timestamp: &str, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET).unwrap();
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A signed delivery of `event` for `job` (at `data`), with `id`, answered `answered`.
    fn delivery(seq: usize, event: &str, id: &str, job: Value, answered: u16) -> Delivery {
        let body = json!({ "event": event, "data": job }).to_string();
        let timestamp = "1700000000";
        Delivery {
            seq,
            arrived: arrived(),
            headers: vec![
                ("x-webhook-event".into(), event.into()),
                ("x-webhook-delivery-id".into(), id.into()),
                ("x-webhook-timestamp".into(), timestamp.into()),
                (
                    "x-webhook-signature".into(),
                    format!("sha256={}", sign(timestamp, body.as_bytes())),
                ),
            ],
            body: Bytes::from(body),
            answered,
        }
    }

    fn job(status: &str) -> Value {
        json!({ "id": "job_1", "status": status })
    }

    fn conforming() -> Vec<Delivery> {
        vec![
            delivery(0, "job.started", "d1", job("processing"), 503),
            delivery(1, "job.started", "d1", job("processing"), 204),
            delivery(2, "job.completed", "d2", job("completed"), 204),
        ]
    }

    fn report(deliveries: Vec<Delivery>, record: Value) -> WebhookReport {
        WebhookReport {
            job_id: "job_1".into(),
            url: "http://127.0.0.1:9/hook".into(),
            create: Response::for_test(201, &[], r#"{"id":"job_1"}"#),
            deliveries,
            job_read: Response::for_test(
                200,
                &[("content-type", "application/json")],
                &json!({ "id": "job_1", "webhook_events": record }).to_string(),
            ),
            timeout: Duration::from_secs(10),
            timed_out: false,
            unfinished: None,
        }
    }

    fn sent_record() -> Value {
        json!([
            { "event": "job.started", "status": "sent" },
            { "event": "job.completed", "status": "sent" },
        ])
    }

    fn rules(aspect: Aspect, report: &WebhookReport) -> Vec<String> {
        judge(aspect, report, &Settings::default(), Some("whsec_test"))
            .into_iter()
            .map(|f| f.rule)
            .collect()
    }

    const ALL: [Aspect; 8] = [
        Aspect::Order,
        Aspect::EventHeader,
        Aspect::DeliveryIds,
        Aspect::Timestamp,
        Aspect::Signature,
        Aspect::NamesJob,
        Aspect::Recorded,
        Aspect::Retry,
    ];

    #[test]
    fn conforming_deliveries_pass_every_aspect() {
        let good = report(conforming(), sent_record());
        for aspect in ALL {
            assert!(rules(aspect, &good).is_empty(), "{aspect:?}");
        }
        // The other documented placement of the job, and a record keyed by event.
        let nested: Vec<Delivery> = conforming()
            .into_iter()
            .map(|d| {
                let event = d.event(&WebhookSettings::default()).unwrap();
                let mut body: Value = d.json().unwrap();
                body["data"] = json!({ "job": body["data"].clone() });
                let id = d.header("x-webhook-delivery-id").unwrap().to_owned();
                let mut again = delivery(d.seq, &event, &id, Value::Null, d.answered);
                again.body = Bytes::from(body.to_string());
                let signature = format!("sha256={}", sign("1700000000", &again.body));
                again.headers[3].1 = signature;
                again
            })
            .collect();
        let map = json!({ "job.started": "sent", "job.completed": "sent" });
        let nested = report(nested, map);
        for aspect in ALL {
            assert!(rules(aspect, &nested).is_empty(), "{aspect:?}");
        }
    }

    #[test]
    fn no_delivery_fails_every_aspect() {
        let none = report(Vec::new(), Value::Null);
        for aspect in ALL {
            assert_eq!(rules(aspect, &none), ["webhooks.none"], "{aspect:?}");
        }
    }

    #[test]
    fn order_wants_started_before_the_terminal_event() {
        let mut swapped = conforming();
        swapped.rotate_left(2);
        for (seq, d) in swapped.iter_mut().enumerate() {
            d.seq = seq;
        }
        assert_eq!(
            rules(Aspect::Order, &report(swapped, sent_record())),
            ["webhooks.order"]
        );
        let missing = conforming()[2..].to_vec();
        assert_eq!(
            rules(Aspect::Order, &report(missing, sent_record())),
            ["webhooks.order"]
        );
        let unfinished = conforming()[..2].to_vec();
        assert_eq!(
            rules(Aspect::Order, &report(unfinished, sent_record())),
            ["webhooks.order"]
        );
    }

    #[test]
    fn headers_ids_and_timestamps() {
        let mut wrong = conforming();
        wrong[2].headers[0].1 = "job.started".into();
        assert_eq!(
            rules(Aspect::EventHeader, &report(wrong, sent_record())),
            ["webhooks.event_header"]
        );
        let mut reused = conforming();
        reused[2].headers[1].1 = "d1".into();
        assert_eq!(
            rules(Aspect::DeliveryIds, &report(reused, sent_record())),
            ["webhooks.delivery_id"]
        );
        let mut stale = conforming();
        stale[2].headers[2].1 = "1699996000".into();
        assert_eq!(
            rules(Aspect::Timestamp, &report(stale, sent_record())),
            ["webhooks.timestamp"]
        );
        for fresh in [
            "1700000000123",
            "2023-11-14T22:13:20Z",
            "2023-11-14T22:13:19.5+00:00",
        ] {
            let mut other = conforming();
            other[0].headers[2].1 = fresh.into();
            assert!(
                rules(Aspect::Timestamp, &report(other, sent_record())).is_empty(),
                "{fresh}"
            );
        }
        assert_eq!(parse_timestamp("soon"), None);
    }

    #[test]
    fn signatures_verify_over_timestamp_and_raw_body() {
        let mut bad = conforming();
        bad[1].headers[3].1 = format!("sha256={}", "0".repeat(64));
        assert_eq!(
            rules(Aspect::Signature, &report(bad, sent_record())),
            ["webhooks.signature"]
        );
        let mut moved = conforming();
        moved[1].headers[2].1 = "1700000001".into();
        assert!(!rules(Aspect::Signature, &report(moved, sent_record())).is_empty());
        let mut unsigned = conforming();
        unsigned[0].headers.remove(3);
        assert_eq!(
            rules(Aspect::Signature, &report(unsigned, sent_record())),
            ["webhooks.signature"]
        );
        assert!(hex_bytes("0g").is_none() && hex_bytes("abc").is_none());
    }

    #[test]
    fn the_body_names_the_job_and_its_status() {
        let mut other = conforming();
        other[2] = delivery(
            2,
            "job.completed",
            "d2",
            json!({ "id": "job_2", "status": "completed" }),
            204,
        );
        assert_eq!(
            rules(Aspect::NamesJob, &report(other, sent_record())),
            ["webhooks.names_job"]
        );
        let mut unnamed = conforming();
        unnamed[2] = delivery(
            2,
            "job.completed",
            "d2",
            json!({ "status": "completed" }),
            204,
        );
        assert_eq!(
            rules(Aspect::NamesJob, &report(unnamed, sent_record())),
            ["webhooks.names_job"]
        );
        let mut disagrees = conforming();
        disagrees[2] = delivery(2, "job.completed", "d2", job("processing"), 204);
        assert_eq!(
            rules(Aspect::NamesJob, &report(disagrees, sent_record())),
            ["webhooks.names_job"]
        );
    }

    #[test]
    fn the_record_holds_what_was_taken() {
        assert_eq!(
            rules(Aspect::Recorded, &report(conforming(), Value::Null)),
            ["webhooks.recorded"]
        );
        let partial = json!([{ "event": "job.started", "status": "sent" }]);
        assert_eq!(
            rules(Aspect::Recorded, &report(conforming(), partial)),
            ["webhooks.recorded"]
        );
        let wrong = json!({ "job.started": "failed", "job.completed": "sent" });
        assert_eq!(
            rules(Aspect::Recorded, &report(conforming(), wrong)),
            ["webhooks.recorded"]
        );
        // A delivery never taken may be recorded either way, or not yet.
        let mut refused = conforming();
        refused.truncate(1);
        refused.push(delivery(1, "job.completed", "d2", job("completed"), 204));
        let record = json!({ "job.completed": "sent" });
        assert!(rules(Aspect::Recorded, &report(refused, record)).is_empty());
    }

    #[test]
    fn the_first_delivery_must_come_again_with_its_id() {
        let mut none = conforming();
        none.remove(1);
        assert_eq!(
            rules(Aspect::Retry, &report(none, sent_record())),
            ["webhooks.retry"]
        );
        let mut renamed = conforming();
        renamed[1].headers[1].1 = "d9".into();
        let found = judge(
            Aspect::Retry,
            &report(renamed, sent_record()),
            &Settings::default(),
            None,
        );
        assert!(
            found[0].message.contains("another delivery id"),
            "{}",
            found[0].message
        );
    }
}
