//! The webhook receiver ([`Receiver`]) and the run's one webhook scenario ([`WebhookReport`]).
//!
//! The run listens for deliveries itself: on `--webhook-listen ADDR`, or, for a target on
//! loopback (the embedded server among them), on a free loopback port. It creates one job
//! whose `webhook_url` is the receiver (or `--webhook-public-url`, when the target reaches the
//! receiver through a tunnel or ingress), and follows the job to its end as the lifecycle checks
//! do (bounded by the job deadline). From then on it waits, at most `[webhooks]
//! timeout_seconds`, until the job's terminal event has been taken and the first delivery, which
//! the receiver fails on purpose, has come again; then it reads the job to see its record of the
//! deliveries. A job that cannot be followed to its end, with no delivery at all by then, ends
//! the wait at once: a target that sends no webhooks costs one job, not a timeout. Every
//! `webhooks::*` check judges one aspect of the same report.
//!
//! The receiver answers at once and keeps each attempt with the moment it arrived, so that a
//! timestamp is judged against its arrival, never against the time a check looks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::client::{Response, SendOptions};
use crate::context::{Abort, RunContext};
use crate::suite::WebhookSettings;

/// Where the run's receiver listens and what URL the target is given.
#[derive(Clone, Debug, Default)]
pub struct WebhookOptions {
    /// The address to listen on (`--webhook-listen`). Without it the receiver listens on a
    /// loopback port of its own, and only for a target on loopback.
    pub listen: Option<SocketAddr>,
    /// The URL the target is given as `webhook_url` (`--webhook-public-url`), when it reaches
    /// the receiver through a tunnel or an ingress; by default the receiver's own address.
    pub public_url: Option<String>,
}

/// Why the webhook checks cannot run against a target that is not on loopback, without a
/// receiver address: the flags that would let them.
pub const NO_RECEIVER: &str = "needs a webhook receiver the target can reach: pass --webhook-listen ADDR (and --webhook-public-url URL when the target reaches it through a tunnel or ingress)";

impl WebhookOptions {
    /// The address to listen on for a target at `base_url`, or None when the run has no
    /// receiver the target could reach.
    pub fn listen_address(&self, base_url: &str) -> Option<SocketAddr> {
        self.listen
            .or_else(|| is_loopback(base_url).then(|| (Ipv4Addr::LOCALHOST, 0).into()))
    }
}

/// True when `url`'s host is loopback (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(url: &str) -> bool {
    match url::Url::parse(url).ok().as_ref().and_then(url::Url::host) {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// One delivery attempt as the receiver got it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Arrival order, from 0.
    pub seq: usize,
    /// When it arrived (the receiver's clock).
    pub arrived: SystemTime,
    /// Its headers, names in lowercase, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The raw body, exactly as sent (signatures are over these bytes).
    pub body: Bytes,
    /// The status the receiver answered.
    pub answered: u16,
}

impl Delivery {
    /// The first value of header `name` (any case), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON, if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The event the body names at `[webhooks] event_pointer`, else the event header's.
    pub fn event(&self, settings: &WebhookSettings) -> Option<String> {
        self.json()
            .and_then(|body| {
                body.pointer(&settings.event_pointer)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| self.header(&settings.event_header).map(str::to_owned))
    }

    /// Whether the receiver took it (answered 2xx).
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }

    /// How messages name it: `delivery #2 (job.completed, id whd_1)`.
    pub fn label(&self, settings: &WebhookSettings) -> String {
        format!(
            "delivery #{} ({}, id {})",
            self.seq + 1,
            self.event(settings).as_deref().unwrap_or("no event"),
            self.header(&settings.delivery_id_header).unwrap_or("none")
        )
    }
}

/// The status the receiver fails the first delivery with, to see it retried.
const FAIL_FIRST_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// What the receiver has got so far, shared with its handler.
#[derive(Default)]
struct Inbox {
    deliveries: Mutex<Vec<Delivery>>,
}

impl Inbox {
    fn snapshot(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running receiver; dropping it stops it.
pub struct Receiver {
    /// The address it listens on.
    pub addr: SocketAddr,
    inbox: Arc<Inbox>,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    /// Listen on `addr` (port 0 picks a free one). Every POST, on any path, is kept; the
    /// first is answered 503 and every later one 204, at once.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind(addr).await?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let inbox = Arc::new(Inbox::default());
        let handler_inbox = Arc::clone(&inbox);
        let app =
            axum::Router::new().fallback(move |method: Method, headers: HeaderMap, body: Bytes| {
                let inbox = Arc::clone(&handler_inbox);
                async move { receive(&inbox, method, &headers, body) }
            });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = served.await {
                tracing::warn!("the webhook receiver stopped: {e}");
            }
        });
        Ok(Receiver {
            addr,
            inbox,
            stop: Some(stop),
        })
    }

    /// Every attempt so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inbox.snapshot()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Keep a POST and answer it: the first one fails on purpose.
fn receive(
    inbox: &Inbox,
    method: Method,
    headers: &HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let mut deliveries = inbox.deliveries.lock().unwrap_or_else(|p| p.into_inner());
    let seq = deliveries.len();
    let answered = if seq == 0 {
        FAIL_FIRST_STATUS
    } else {
        StatusCode::NO_CONTENT
    };
    deliveries.push(Delivery {
        seq,
        arrived: SystemTime::now(),
        headers: headers
            .iter()
            .filter_map(|(name, value)| {
                value
                    .to_str()
                    .ok()
                    .map(|v| (name.as_str().to_owned(), v.to_owned()))
            })
            .collect(),
        body,
        answered: answered.as_u16(),
    });
    drop(deliveries);
    if seq == 0 {
        (
            answered,
            "apiconform fails the first delivery on purpose, to see it retried with the same delivery id",
        )
            .into_response()
    } else {
        answered.into_response()
    }
}

/// What the run's webhook scenario saw.
#[derive(Clone, Debug)]
pub struct WebhookReport {
    /// The job created with the receiver's URL.
    pub job_id: String,
    /// The `webhook_url` the target was given.
    pub url: String,
    /// The create request's reply.
    pub create: Response,
    /// Every attempt that arrived, in order.
    pub deliveries: Vec<Delivery>,
    /// The last read of the job, after the deliveries settled (for its record of them).
    pub job_read: Response,
    /// How long the run waited for the deliveries at most, once the job had ended.
    pub timeout: Duration,
    /// Whether the wait ended because it timed out.
    pub timed_out: bool,
    /// Why the job could not be followed to its end, if it could not.
    pub unfinished: Option<String>,
}

/// The recorder name of the scenario's requests.
pub const WEBHOOK_SETUP: &str = "run::webhooks";

/// How many times the job is read, at most, for its record of the deliveries to catch up.
const RECORD_READS: u32 = 10;

/// How often the receiver's inbox is looked at while waiting (a local look, no request).
const INBOX_LOOK: Duration = Duration::from_millis(50);

/// Run the scenario: listen, create the job, wait for its deliveries, read the job.
pub async fn run(run: &RunContext) -> Result<WebhookReport, Abort> {
    let settings = &run.settings().webhooks;
    let client = &run.client;
    let Some(addr) = run.options.webhooks.listen_address(client.base_url()) else {
        return Err(Abort::Ignored(NO_RECEIVER.into()));
    };
    let receiver = Receiver::start(addr)
        .await
        .map_err(|e| Abort::Errored(format!("cannot listen for webhooks on {addr}: {e}")))?;
    let url = run
        .options
        .webhooks
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/apiconform/webhooks", receiver.addr));
    let jobs = &run.settings().jobs;
    let mut body = jobs.create_body.clone();
    let Some(fields) = body.as_object_mut() else {
        return Err(Abort::Errored(
            "[jobs] create_body must be a JSON object to add a webhook_url to it".into(),
        ));
    };
    fields.insert("webhook_url".into(), Value::String(url.clone()));
    let create = client
        .send(
            WEBHOOK_SETUP,
            &jobs.create_request(body),
            SendOptions::default(),
        )
        .await?;
    let job_id = jobs
        .created_job_id(&create, "could not create a job with a webhook_url")
        .map_err(Abort::Errored)?;
    run.remember_job(&job_id);

    // Deliveries pile up in the inbox while the job is followed to its end.
    let unfinished = run
        .follow(None, WEBHOOK_SETUP)
        .until_terminal(&job_id, |_| {})
        .await
        .err()
        .map(|failure| failure.to_string());
    let timeout = Duration::from_secs_f64(settings.timeout_seconds);
    let started = Instant::now();
    let timed_out = loop {
        let deliveries = receiver.deliveries();
        if settled(&deliveries, settings) {
            break false;
        }
        if unfinished.is_some() && deliveries.is_empty() {
            break false;
        }
        if started.elapsed() >= timeout || run.options.interrupt.cause().is_some() {
            break true;
        }
        client.record().wait(WEBHOOK_SETUP, INBOX_LOOK).await;
    };
    let deliveries = receiver.deliveries();

    // The target records a delivery once it is answered: give its record a few reads to catch
    // up with what arrived.
    let read = jobs.read_request(&job_id);
    let mut job_read = client
        .send(WEBHOOK_SETUP, &read, SendOptions::default())
        .await?;
    for _ in 1..RECORD_READS {
        let caught_up = job_read.is_success()
            && job_read
                .json
                .as_ref()
                .is_some_and(|job| records_every_accepted(job, &deliveries, settings));
        if caught_up {
            break;
        }
        client
            .record()
            .wait(WEBHOOK_SETUP, run.poll_interval())
            .await;
        job_read = client
            .send(WEBHOOK_SETUP, &read, SendOptions::default())
            .await?;
    }
    Ok(WebhookReport {
        job_id,
        url,
        create,
        deliveries,
        job_read,
        timeout,
        timed_out,
        unfinished,
    })
}

/// The deliveries are complete: a terminal event was taken, and the first delivery (failed on
/// purpose) has come again with its id.
fn settled(deliveries: &[Delivery], settings: &WebhookSettings) -> bool {
    let terminal_taken = deliveries.iter().any(|d| {
        d.accepted()
            && d.event(settings)
                .is_some_and(|e| e == settings.completed_event || e == settings.failed_event)
    });
    terminal_taken && retry_of_first(deliveries, settings).is_some()
}

/// The first later attempt that carries the first delivery's id.
pub fn retry_of_first<'d>(
    deliveries: &'d [Delivery],
    settings: &WebhookSettings,
) -> Option<&'d Delivery> {
    let first = deliveries.first()?.header(&settings.delivery_id_header)?;
    deliveries[1..]
        .iter()
        .find(|d| d.header(&settings.delivery_id_header) == Some(first))
}

/// Whether `job`'s record holds every event the receiver took.
fn records_every_accepted(
    job: &Value,
    deliveries: &[Delivery],
    settings: &WebhookSettings,
) -> bool {
    let Some(record) = job.pointer(&settings.events_pointer) else {
        return false;
    };
    deliveries
        .iter()
        .filter(|d| d.accepted())
        .filter_map(|d| d.event(settings))
        .all(|event| recorded_states(record, &event).iter().any(|s| s == "sent"))
}

/// The delivery states a job's record gives `event`, in either shape in use: an object keyed
/// by event (`{"job.started": "sent"}`, or an object with a `status`/`state` per event) or a
/// list of entries naming their event (`[{"event": "job.started", "status": "sent"}]`).
pub fn recorded_states(record: &Value, event: &str) -> Vec<String> {
    const STATE_FIELDS: [&str; 4] = ["status", "state", "delivery_status", "result"];
    const EVENT_FIELDS: [&str; 3] = ["event", "type", "name"];
    let state_of = |entry: &Value| -> Option<String> {
        match entry {
            Value::String(s) => Some(s.clone()),
            Value::Object(fields) => STATE_FIELDS
                .iter()
                .find_map(|f| fields.get(*f).and_then(Value::as_str))
                .map(str::to_owned),
            _ => None,
        }
    };
    match record {
        Value::Object(by_event) => match by_event.get(event) {
            Some(Value::Array(entries)) => entries.iter().filter_map(state_of).collect(),
            Some(entry) => state_of(entry).into_iter().collect(),
            None => Vec::new(),
        },
        Value::Array(entries) => entries
            .iter()
            .filter(|entry| {
                EVENT_FIELDS
                    .iter()
                    .any(|f| entry.get(*f).and_then(Value::as_str) == Some(event))
            })
            .filter_map(state_of)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_in_either_shape() {
        let list = json!([
            { "event": "job.started", "status": "failed" },
            { "event": "job.started", "status": "sent" },
            { "type": "job.completed", "state": "sent" },
        ]);
        assert_eq!(recorded_states(&list, "job.started"), ["failed", "sent"]);
        assert_eq!(recorded_states(&list, "job.completed"), ["sent"]);
        assert!(recorded_states(&list, "job.failed").is_empty());
        let map = json!({ "job.started": "sent", "job.completed": { "status": "failed" } });
        assert_eq!(recorded_states(&map, "job.started"), ["sent"]);
        assert_eq!(recorded_states(&map, "job.completed"), ["failed"]);
        assert!(recorded_states(&Value::Null, "job.started").is_empty());
    }

    #[test]
    fn listens_on_loopback_only_for_a_loopback_target() {
        let none = WebhookOptions::default();
        assert!(none.listen_address("http://127.0.0.1:8080").is_some());
        assert!(none.listen_address("http://localhost:8080").is_some());
        assert!(none.listen_address("http://[::1]:8080").is_some());
        assert!(none.listen_address("https://api.example.com").is_none());
        let given = WebhookOptions {
            listen: Some("0.0.0.0:9000".parse().unwrap()),
            public_url: None,
        };
        assert_eq!(
            given.listen_address("https://api.example.com"),
            Some("0.0.0.0:9000".parse().unwrap())
        );
    }

    #[tokio::test]
    async fn the_receiver_fails_the_first_delivery_and_keeps_each() {
        let receiver = Receiver::start((Ipv4Addr::LOCALHOST, 0).into())
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let url = format!("http://{}/hook", receiver.addr);
        let mut statuses = Vec::new();
        for body in ["one", "two"] {
            let res = client
                .post(&url)
                .header("X-Webhook-Delivery-Id", "whd_1")
                .body(body)
                .send()
                .await
                .unwrap();
            statuses.push(res.status().as_u16());
        }
        assert_eq!(statuses, [503, 204]);
        let got = receiver.deliveries();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].body, Bytes::from_static(b"two"));
        assert_eq!(got[0].header("x-webhook-delivery-id"), Some("whd_1"));
        assert!(!got[0].accepted() && got[1].accepted());
        let settings = WebhookSettings::default();
        assert_eq!(retry_of_first(&got, &settings).map(|d| d.seq), Some(1));
    }
}
