//! Webhook deliveries (docs/contract.md section 6).
//!
//! When a job with a `webhook_url` starts, [`spawn_deliveries`] spawns one task for it that
//! POSTs `job.started`, waits for the job's terminal moment and POSTs `job.completed` or
//! `job.failed`. One task per job keeps the events in order. Each delivery has its own id,
//! kept across its retries; each attempt carries a fresh `X-Webhook-Timestamp` and, when a
//! secret is configured, `X-Webhook-Signature: sha256=<hex>` over `"<timestamp>.<raw body>"`.
//! A non-2xx answer, a transport error or a timeout is retried, a bounded number of times;
//! the outcome is recorded on the job ([`DeliveryRecord`], shown as `webhook_events`).
//!
//! Deliveries run beside the job and the requests: the task never holds the store lock across
//! an `.await`, and no request waits for it. Only loopback hosts and the ones the operator
//! allows ([`WebhookConfig::allow_hosts`]) are ever sent to; a delivery to any other host is
//! recorded as failed without a request.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use url::{Host, Url};

use super::faults::Fault;
use super::handlers::job_json;
use super::state::{random_hex, App, Snapshot, Status};
use super::time;
use super::variants::Variant;

/// The event header.
pub(crate) const EVENT_HEADER: &str = "x-webhook-event";
/// The delivery id header, the same on every attempt of one delivery.
pub(crate) const DELIVERY_ID_HEADER: &str = "x-webhook-delivery-id";
/// The attempt's Unix time in seconds.
pub(crate) const TIMESTAMP_HEADER: &str = "x-webhook-timestamp";
/// `sha256=<hex>`, present only when a secret is configured.
pub(crate) const SIGNATURE_HEADER: &str = "x-webhook-signature";

/// How webhooks are delivered. Its `Debug` output redacts the secret.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The signing secret (`serve --webhook-secret`); without it deliveries are unsigned.
    pub secret: Option<String>,
    /// Hosts deliveries may go to besides loopback (`localhost`, 127.0.0.0/8, ::1), compared
    /// without case (`serve --webhook-allow-host`).
    pub allow_hosts: Vec<String>,
    /// Attempts per delivery, the first included (at least 1).
    pub max_attempts: u32,
    /// How long one attempt may take before it counts as failed and is retried.
    pub attempt_timeout: Duration,
    /// The wait before the first retry; it doubles before each further one.
    pub first_retry_delay: Duration,
}

impl Default for WebhookConfig {
    /// Four attempts of at most 3 s, 0.5 s, 1 s and 2 s apart: a delivery is settled within
    /// 16 s.
    fn default() -> Self {
        WebhookConfig {
            secret: None,
            allow_hosts: Vec::new(),
            max_attempts: 4,
            attempt_timeout: Duration::from_secs(3),
            first_retry_delay: Duration::from_millis(500),
        }
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("allow_hosts", &self.allow_hosts)
            .field("max_attempts", &self.max_attempts)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("first_retry_delay", &self.first_retry_delay)
            .finish()
    }
}

/// A job event that is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Started,
    Completed,
    Failed,
}

impl Event {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Event::Started => "job.started",
            Event::Completed => "job.completed",
            Event::Failed => "job.failed",
        }
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An attempt was answered with a 2xx.
    Sent,
    /// Every attempt failed, or the host is not allowed.
    Failed,
}

impl Outcome {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
        }
    }
}

/// One settled delivery, as the job's `webhook_events` shows it.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryRecord {
    pub event: Event,
    pub delivery_id: String,
    pub outcome: Outcome,
    /// Requests made (0 when the host is not allowed).
    pub attempts: u32,
    /// The status of the last answer, if any came.
    pub last_status: Option<u16>,
    /// Why the delivery failed, for the last failed attempt.
    pub error: Option<String>,
    pub settled_at: SystemTime,
}

impl DeliveryRecord {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "event": self.event.name(),
            "delivery_id": self.delivery_id,
            "status": self.outcome.name(),
            "attempts": self.attempts,
            "response_status": self.last_status,
            "error": self.error,
            "settled_at": time::rfc3339_millis(self.settled_at),
        })
    }
}

/// The HTTP client deliveries are made with: no redirects (a 3xx could lead to a host that is
/// not allowed), no proxy, no retries of its own (the attempts are counted here), and no idle
/// connections kept (a receiver's keep-alive may be shorter than the wait between events).
pub(crate) fn client() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .no_proxy()
        .pool_max_idle_per_host(0)
        .user_agent(concat!(
            "apiconform-reference-webhooks/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|err| tracing::error!(error = %err, "cannot build the webhook client; no webhook will be sent"))
        .ok()
}

/// Starts the deliveries of a job that has just started, if it has a `webhook_url`. `origin`
/// is the one the starting request used, for the job's absolute URLs.
pub(crate) fn spawn_deliveries(app: &Arc<App>, job_id: &str, origin: &str) {
    let has_url = app
        .lock()
        .jobs
        .get(job_id)
        .is_some_and(|job| job.webhook_url.is_some());
    if !has_url {
        return;
    }
    let (app, job_id, origin) = (Arc::clone(app), job_id.to_owned(), origin.to_owned());
    tokio::spawn(async move {
        // One id for every delivery of the job, under `webhook-reused-delivery-id`.
        let job_delivery_id = new_delivery_id();
        let deliver_started = || async {
            if app.has(Fault::WebhookMissingStarted) {
                return;
            }
            let started = Snapshot {
                status: Status::Processing,
                progress: 0,
                duration_seconds: None,
            };
            if let Some(body) = event_body(&app, &job_id, Event::Started, started, &origin) {
                deliver(&app, &job_id, Event::Started, body, &job_delivery_id).await;
            }
        };
        if !app.has(Fault::WebhookOutOfOrder) {
            deliver_started().await;
        }
        if let Some((event, snap)) = wait_for_end(&app, &job_id).await {
            if let Some(body) = event_body(&app, &job_id, event, snap, &origin) {
                deliver(&app, &job_id, event, body, &job_delivery_id).await;
            }
        }
        if app.has(Fault::WebhookOutOfOrder) {
            deliver_started().await;
        }
    });
}

/// `whd_` and 24 random hex digits.
fn new_delivery_id() -> String {
    format!("whd_{}", random_hex(24))
}

/// Sleeps until the job is terminal and answers its event and state then; `None` for a job
/// that never ends (the `job-never-finishes` fault) or is gone.
async fn wait_for_end(app: &App, job_id: &str) -> Option<(Event, Snapshot)> {
    loop {
        let wait = {
            let store = app.lock();
            let job = store.jobs.get(job_id)?;
            let snap = app.snapshot(job);
            match snap.status {
                Status::Completed => return Some((Event::Completed, snap)),
                Status::Failed => return Some((Event::Failed, snap)),
                Status::Pending | Status::Processing => {}
            }
            if app.has(Fault::JobNeverFinishes) {
                return None;
            }
            job.ends_at(app.config.job_duration)?
                .saturating_duration_since(Instant::now())
        };
        // The end is computed from the same clock the snapshot reads; the floor only keeps a
        // rounding at the very end from spinning.
        tokio::time::sleep(wait.max(Duration::from_millis(5))).await;
    }
}

/// The JSON body of one event: `event`, `created_at` and the job at `data` (at `data.job`
/// under the `webhook-data-job` variant).
fn event_body(
    app: &App,
    job_id: &str,
    event: Event,
    snap: Snapshot,
    origin: &str,
) -> Option<Value> {
    let store = app.lock();
    let job = store.jobs.get(job_id)?;
    let mut job = job_json(app, job, snap, origin);
    if app.has(Fault::WebhookJobNotNamed) {
        if let Some(fields) = job.as_object_mut() {
            fields.remove("id");
        }
    }
    let data = if app.variant(Variant::WebhookDataJob) {
        json!({ "job": job })
    } else {
        job
    };
    Some(json!({
        "event": event.name(),
        "created_at": time::rfc3339_millis(SystemTime::now()),
        "data": data,
    }))
}

/// Delivers one event to the job's current `webhook_url`, retrying as configured, and records
/// the outcome on the job. `job_delivery_id` is the id every delivery of the job shares under
/// the `webhook-reused-delivery-id` fault.
async fn deliver(app: &App, job_id: &str, event: Event, body: Value, job_delivery_id: &str) {
    let Some(url) = app
        .lock()
        .jobs
        .get(job_id)
        .and_then(|job| job.webhook_url.clone())
    else {
        return;
    };
    let delivery_id = if app.has(Fault::WebhookReusedDeliveryId) {
        job_delivery_id.to_owned()
    } else {
        new_delivery_id()
    };
    let record = match Url::parse(&url) {
        Ok(parsed) if host_allowed(&parsed, &app.config.webhooks.allow_hosts) => {
            attempt_all(app, parsed, event, &delivery_id, body.to_string()).await
        }
        _ => {
            tracing::warn!(
                job_id,
                event = event.name(),
                "webhook host not allowed; nothing sent"
            );
            DeliveryRecord {
                event,
                delivery_id,
                outcome: Outcome::Failed,
                attempts: 0,
                last_status: None,
                error: Some(
                    "webhook host not allowed (loopback only unless serve --webhook-allow-host)"
                        .to_owned(),
                ),
                settled_at: SystemTime::now(),
            }
        }
    };
    tracing::info!(
        job_id,
        event = event.name(),
        delivery_id = %record.delivery_id,
        outcome = record.outcome.name(),
        attempts = record.attempts,
        "webhook delivery"
    );
    if app.has(Fault::WebhookNotRecorded) {
        return;
    }
    if let Some(job) = app.lock().jobs.get_mut(job_id) {
        job.webhook_events.push(record);
    }
}

/// Up to `max_attempts` POSTs of one delivery, with doubling waits between them.
async fn attempt_all(
    app: &App,
    url: Url,
    event: Event,
    delivery_id: &str,
    raw_body: String,
) -> DeliveryRecord {
    let config = &app.config.webhooks;
    let mut record = DeliveryRecord {
        event,
        delivery_id: delivery_id.to_owned(),
        outcome: Outcome::Failed,
        attempts: 0,
        last_status: None,
        error: None,
        settled_at: SystemTime::now(),
    };
    let Some(client) = &app.webhook_client else {
        record.error = Some("the webhook client could not be built".to_owned());
        return record;
    };
    let mut delay = config.first_retry_delay;
    let attempts = if app.has(Fault::WebhookNoRetry) {
        1
    } else {
        config.max_attempts.max(1)
    };
    for attempt in 1..=attempts {
        if attempt > 1 {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        record.attempts = attempt;
        let mut sent_at = SystemTime::now();
        if app.has(Fault::WebhookStaleTimestamp) {
            sent_at = sent_at.checked_sub(STALE_BY).unwrap_or(sent_at);
        }
        let timestamp = if app.variant(Variant::WebhookIsoTimestamp) {
            time::rfc3339(sent_at)
        } else {
            time::unix_secs(sent_at).to_string()
        };
        let event_header = if app.has(Fault::WebhookWrongEventHeader) {
            Event::Started.name()
        } else {
            event.name()
        };
        let mut request = client
            .post(url.clone())
            .timeout(config.attempt_timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(EVENT_HEADER, event_header)
            .header(DELIVERY_ID_HEADER, delivery_id)
            .header(TIMESTAMP_HEADER, &timestamp)
            .body(raw_body.clone());
        if let Some(secret) = &config.secret {
            let signature = if app.has(Fault::WebhookBadSignature) {
                sign_body_only(secret.as_bytes(), raw_body.as_bytes())
            } else {
                sign(secret.as_bytes(), &timestamp, raw_body.as_bytes())
            };
            request = request.header(SIGNATURE_HEADER, format!("sha256={signature}"));
        }
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                record.outcome = Outcome::Sent;
                record.last_status = Some(response.status().as_u16());
                record.error = None;
                break;
            }
            Ok(response) => {
                record.last_status = Some(response.status().as_u16());
                record.error = Some(format!("answered {}", response.status().as_u16()));
            }
            Err(err) if err.is_timeout() => {
                record.last_status = None;
                record.error = Some(format!(
                    "no answer within {} ms",
                    config.attempt_timeout.as_millis()
                ));
            }
            Err(err) => {
                record.last_status = None;
                record.error = Some(format!("could not be sent: {}", error_chain(&err)));
            }
        }
    }
    record.settled_at = SystemTime::now();
    record
}

/// How old a timestamp is under `webhook-stale-timestamp`.
const STALE_BY: Duration = Duration::from_secs(3600);

/// The lowercase hex HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`.
pub(crate) fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    hmac_hex(secret, &[timestamp.as_bytes(), b".", body])
}

/// The `webhook-bad-signature` fault's signature: the body alone.
fn sign_body_only(secret: &[u8], body: &[u8]) -> String {
    hmac_hex(secret, &[body])
}

/// The lowercase hex HMAC-SHA256 of `parts`, one after the other, keyed with `secret`.
fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    // HMAC takes a key of any length: hashing long keys is part of the algorithm.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of every length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether deliveries may go to the URL's host: any loopback address, `localhost`, or a host
/// the operator allowed (compared without case; IPv6 with or without brackets).
pub(crate) fn host_allowed(url: &Url, allow_hosts: &[String]) -> bool {
    if !matches!(url.scheme(), "http" | "https") {
        return false;
    }
    let loopback = match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => return false,
    };
    let bare = |h: &str| {
        h.trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    };
    let host = url.host_str().map(bare).unwrap_or_default();
    loopback || allow_hosts.iter().any(|allowed| bare(allowed) == host)
}

/// An error and its causes, `: `-separated (reqwest's own message hides the cause).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body_with_hmac_sha256() {
        // Computed independently (Python's hmac module) over `1700000000.{"event":"job.started"}`.
        assert_eq!(
            sign(b"whsec_test", "1700000000", br#"{"event":"job.started"}"#),
            "ea3514ff2a2025eb48c231ba90b7225dd601131cba279fe461633f27c12f2e88"
        );
    }

    #[test]
    fn only_loopback_and_allowed_hosts() {
        let allowed = |url: &str, extra: &[&str]| {
            let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            host_allowed(&Url::parse(url).unwrap(), &extra)
        };
        assert!(allowed("http://127.0.0.1:9/hook", &[]));
        assert!(allowed("http://127.1.2.3/hook", &[]));
        assert!(allowed("http://[::1]:8080/hook", &[]));
        assert!(allowed("https://LOCALHOST/hook", &[]));
        assert!(!allowed("https://hooks.example.com/x", &[]));
        assert!(!allowed("http://10.0.0.1/x", &[]));
        assert!(!allowed("http://localhost.example.com/x", &[]));
        assert!(allowed(
            "https://Hooks.Example.com/x",
            &["hooks.example.com"]
        ));
        assert!(allowed("http://10.0.0.1/x", &[" 10.0.0.1 "]));
        assert!(allowed("http://[fd00::1]/x", &["fd00::1"]));
        assert!(!allowed(
            "https://evil.example.com/x",
            &["hooks.example.com"]
        ));
        assert!(!allowed("ftp://127.0.0.1/x", &[]));
    }

    #[test]
    fn debug_hides_the_secret() {
        let config = WebhookConfig {
            secret: Some("whsec_do_not_show".into()),
            ..WebhookConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("whsec_do_not_show"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
