//! The evidence of a check ([`Evidence`]): every exchange it made, and for a failure the curl
//! line that reproduces the request the failure is about.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{curl, human_duration, outcome_word, rfc3339, seconds, CheckEntry};
use crate::record::{CheckRecord, Exchange, Outcome, PartSummary};
use crate::secrets::Secrets;

/// What a check did, as recorded (masked).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Evidence {
    /// The check's exchanges in the order sent, after any harness exchange (job set-up) a
    /// finding cites.
    pub exchanges: Vec<ExchangeEvidence>,
    /// For a failed or errored check: a curl command reproducing the first exchange a finding
    /// cites, else the check's last.
    pub curl: Option<String>,
    /// The id of the exchange `curl` reproduces.
    pub curl_exchange: Option<usize>,
}

/// One request and its response.
#[derive(Clone, Debug, Serialize)]
pub struct ExchangeEvidence {
    pub id: usize,
    /// The check that sent it, or a `run::` step of the harness (probe, job set-up).
    pub sent_by: String,
    pub method: String,
    pub url: String,
    pub request_headers: Vec<Header>,
    pub request_body: Option<String>,
    /// The parts of a multipart body, without their bytes; left out of the JSON when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub request_parts: Vec<PartSummary>,
    /// None when no response came (see `error`).
    pub status: Option<u16>,
    pub response_headers: Vec<Header>,
    /// The start of the response body (the record keeps at most 2 KiB).
    pub body_excerpt: String,
    /// The excerpt is cut; it ends with the body's full size.
    pub body_truncated: bool,
    /// Transport error, when there was no response.
    pub error: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(rename = "elapsed_seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
    pub request_id: Option<String>,
    pub job_id: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl ExchangeEvidence {
    /// The exchange as shown, every text masked again (the record should be already).
    fn new(exchange: &Exchange, secrets: &Secrets) -> ExchangeEvidence {
        let mask = |text: &String| secrets.mask(text);
        let headers = |list: &[(String, String)]| {
            list.iter()
                .map(|(name, value)| Header {
                    name: mask(name),
                    value: mask(value),
                })
                .collect()
        };
        ExchangeEvidence {
            id: exchange.id,
            sent_by: exchange.check.clone(),
            method: mask(&exchange.method),
            url: mask(&exchange.url),
            request_headers: headers(&exchange.request_headers),
            request_body: exchange.request_body.as_ref().map(mask),
            request_parts: exchange
                .request_parts
                .iter()
                .map(|part| PartSummary {
                    name: mask(&part.name),
                    filename: mask(&part.filename),
                    content_type: part.content_type.as_ref().map(mask),
                    size: part.size,
                })
                .collect(),
            status: exchange.status,
            response_headers: headers(&exchange.response_headers),
            body_excerpt: mask(&exchange.body_excerpt),
            body_truncated: excerpt_was_cut(&exchange.body_excerpt),
            error: exchange.error.as_ref().map(mask),
            started_at: DateTime::<Utc>::from(exchange.started),
            elapsed: exchange.elapsed,
            request_id: exchange.request_id.as_ref().map(mask),
            job_id: exchange.job_id.as_ref().map(mask),
        }
    }
}

/// The client ends a cut excerpt with `... [N bytes in all]` (see `client.rs`).
fn excerpt_was_cut(excerpt: &str) -> bool {
    excerpt
        .strip_suffix(" bytes in all]")
        .and_then(|rest| rest.rsplit_once("... ["))
        .is_some_and(|(_, size)| !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()))
}

/// The evidence of `check`, from every exchange of the run, masked by `secrets`.
pub fn gather(check: &CheckRecord, all: &[Exchange], secrets: &Secrets) -> Evidence {
    let shown = |e: &Exchange| ExchangeEvidence::new(e, secrets);
    let find = |id: &usize| all.iter().find(|e| e.id == *id);
    let own: Vec<&Exchange> = check.exchanges.iter().filter_map(find).collect();
    let mut exchanges: Vec<ExchangeEvidence> = own.iter().map(|e| shown(e)).collect();
    if !matches!(check.outcome, Outcome::Failed | Outcome::Errored) {
        return Evidence {
            exchanges,
            ..Evidence::default()
        };
    }
    // What the findings cite, in order; an exchange the check did not make (the harness's
    // job set-up) is shown first. The first cited is reproduced, else the check's last.
    let mut cited: Vec<&Exchange> = Vec::new();
    for exchange in check
        .findings
        .iter()
        .flat_map(|f| &f.exchanges)
        .filter_map(find)
    {
        if !cited.iter().any(|c| c.id == exchange.id) {
            cited.push(exchange);
        }
    }
    let foreign = cited.iter().filter(|e| !check.exchanges.contains(&e.id));
    exchanges.splice(0..0, foreign.map(|e| shown(e)));
    let chosen = cited.first().or(own.last());
    Evidence {
        curl: chosen.map(|e| curl::command(&shown(e))),
        curl_exchange: chosen.map(|e| e.id),
        exchanges,
    }
}

/// The evidence as plain text (JUnit's system-out): one block per exchange, then the curl line.
pub fn text(check: &CheckEntry) -> String {
    let mut out = String::new();
    match check.outcome {
        Outcome::Warned => out.push_str(&format!("warning: {}\n\n", check.message)),
        Outcome::Passed if check.flaky => {
            out.push_str("flaky: passed only after a transport error was retried\n\n")
        }
        _ => {}
    }
    for drift in &check.drift {
        out.push_str(&format!("drift: {}\n", drift.message));
    }
    if !check.drift.is_empty() {
        out.push('\n');
    }
    out.push_str(&format!(
        "{} {} {} in {}",
        check.name,
        check.level,
        outcome_word(&check.outcome),
        human_duration(check.duration)
    ));
    if !check.waited.is_zero() {
        out.push_str(&format!(
            ", {} waiting on the server",
            human_duration(check.waited)
        ));
    }
    out.push('\n');
    // Headers and bodies where someone will read them; one line per exchange elsewhere.
    let detailed = !matches!(check.outcome, Outcome::Passed | Outcome::Ignored);
    if detailed {
        for exchange in &check.evidence.exchanges {
            out.push('\n');
            out.push_str(&exchange_text(exchange));
        }
    } else if !check.evidence.exchanges.is_empty() {
        out.push('\n');
        for exchange in &check.evidence.exchanges {
            out.push_str(&exchange_line(exchange));
            out.push('\n');
        }
    }
    if let Some(curl) = &check.evidence.curl {
        out.push_str("\nreproduce (set API_KEY first):\n");
        out.push_str(curl);
        out.push('\n');
    }
    out
}

/// `file: clip.mp4, video/mp4, 152 bytes` (or `no Content-Type`).
fn part_line(part: &PartSummary) -> String {
    let media = part.content_type.as_deref().unwrap_or("no Content-Type");
    format!(
        "{}: {}, {media}, {} bytes",
        part.name, part.filename, part.size
    )
}

/// An exchange in full: its line, then the headers sent (`>`) and received (`<`) and bodies.
fn exchange_text(e: &ExchangeEvidence) -> String {
    let mut out = exchange_line(e);
    out.push('\n');
    for h in &e.request_headers {
        out.push_str(&format!("> {}: {}\n", h.name, h.value));
    }
    if let Some(body) = &e.request_body {
        out.push_str(&format!("> (body) {body}\n"));
    }
    for part in &e.request_parts {
        out.push_str(&format!("> (part) {}\n", part_line(part)));
    }
    for h in &e.response_headers {
        out.push_str(&format!("< {}: {}\n", h.name, h.value));
    }
    if !e.body_excerpt.is_empty() {
        let cut = if e.body_truncated { " (cut)" } else { "" };
        out.push_str(&format!("< (body{cut}) {}\n", e.body_excerpt));
    }
    out
}

/// `#12 GET URL -> 404 in 3 ms, request id req_1, job job_1`
fn exchange_line(e: &ExchangeEvidence) -> String {
    let result = match (e.status, &e.error) {
        (Some(status), _) => status.to_string(),
        (None, Some(error)) => format!("no response: {error}"),
        (None, None) => "no response".into(),
    };
    let mut out = format!(
        "#{} {} {} -> {result} in {}",
        e.id,
        e.method,
        e.url,
        human_duration(e.elapsed)
    );
    if let Some(id) = &e.request_id {
        out.push_str(&format!(", request id {id}"));
    }
    if let Some(job) = &e.job_id {
        out.push_str(&format!(", job {job}"));
    }
    if e.sent_by.starts_with("run::") {
        out.push_str(&format!(" (sent by the harness: {})", e.sent_by));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Finding;
    use crate::record::Level;
    use std::time::SystemTime;

    fn exchange(id: usize, check: &str, request_id: Option<&str>) -> Exchange {
        Exchange {
            id,
            check: check.into(),
            method: "GET".into(),
            url: format!("http://127.0.0.1:1/v1/jobs/{id}"),
            request_headers: vec![("x-api-key".into(), "$API_KEY".into())],
            request_body: None,
            request_parts: Vec::new(),
            status: Some(200),
            response_headers: vec![],
            body_excerpt: String::new(),
            error: None,
            started: SystemTime::UNIX_EPOCH,
            elapsed: Duration::from_millis(3),
            request_id: request_id.map(String::from),
            job_id: None,
            echoed_secret: false,
        }
    }

    fn gather_(check: &CheckRecord, all: &[Exchange]) -> Evidence {
        gather(check, all, &Secrets::default())
    }

    fn failed(findings: Vec<Finding>, exchanges: Vec<usize>) -> CheckRecord {
        CheckRecord {
            name: "auth::x".into(),
            area: "auth".into(),
            level: Level::Must,
            outcome: Outcome::Failed,
            message: crate::finding::messages(&findings),
            findings,
            drift: Vec::new(),
            duration: Duration::ZERO,
            exchanges,
            flaky: false,
            waited: Duration::ZERO,
        }
    }

    fn citing(ids: &[usize]) -> Finding {
        Finding::new("auth.status", "x").cites_exchanges(ids.iter().copied())
    }

    #[test]
    fn curl_reproduces_the_first_exchange_a_finding_cites() {
        let all = vec![
            exchange(0, "auth::x", Some("req_aaaa")),
            exchange(1, "auth::x", Some("req_bbbb")),
            exchange(2, "auth::x", Some("req_cccc")),
        ];
        let findings = vec![Finding::new("auth.code", "none"), citing(&[1, 0])];
        let evidence = gather_(&failed(findings, vec![0, 1, 2]), &all);
        assert_eq!(evidence.curl_exchange, Some(1));
        assert!(evidence.curl.unwrap().contains("/v1/jobs/1"));
        // The message names req_aaaa, but only what a finding cites counts.
        let named = Finding::new("auth.code", "saw req_aaaa");
        let evidence = gather_(&failed(vec![named], vec![0, 1, 2]), &all);
        assert_eq!(evidence.curl_exchange, Some(2), "else the last exchange");
    }

    #[test]
    fn a_cited_harness_exchange_joins_the_evidence() {
        let all = vec![
            exchange(0, "run::job_setup", Some("req_setup")),
            exchange(1, "auth::x", None),
        ];
        let evidence = gather_(&failed(vec![citing(&[0])], vec![1]), &all);
        assert_eq!(evidence.curl_exchange, Some(0));
        let ids: Vec<usize> = evidence.exchanges.iter().map(|e| e.id).collect();
        assert_eq!(ids, [0, 1]);
    }

    #[test]
    fn passing_checks_have_no_curl_and_cut_excerpts_are_flagged() {
        let mut record = failed(Vec::new(), vec![0]);
        record.outcome = Outcome::Passed;
        let mut cut = exchange(0, "auth::x", None);
        cut.body_excerpt = format!("{}... [5000 bytes in all]", "a".repeat(10));
        let evidence = gather_(&record, &[cut]);
        assert!(evidence.curl.is_none());
        assert!(evidence.exchanges[0].body_truncated);
        assert!(!excerpt_was_cut("{\"note\": \"... [x bytes in all]\"}"));
    }
}
