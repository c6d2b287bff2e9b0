//! Webhook deliveries (docs/contract.md section 6) to a receiver on loopback: the events and
//! their order, the headers and the signature, the body, the retries with one delivery id on
//! a non-2xx and on a timeout, the bound on attempts, the record in `webhook_events`, the
//! allowed hosts, and that no request waits for a delivery. Every wait is bounded; no verdict
//! depends on how fast the machine is (a timeout is provoked by a receiver that never answers).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use bytes::Bytes;
use tokio::net::TcpListener;

use super::*;
use crate::webhooks::sign;

const SECRET: &str = "whsec_reference_test";

/// What the receiver does with one delivery attempt, by arrival order.
#[derive(Clone, Copy, Debug)]
enum Respond {
    Ok,
    Fail(u16),
    /// Never answer (the server's attempt timeout ends it).
    Stall,
}

/// One attempt as it arrived.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    arrived: SystemTime,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn event(&self) -> &str {
        self.header("x-webhook-event")
    }
    fn delivery_id(&self) -> &str {
        self.header("x-webhook-delivery-id")
    }
}

struct ReceiverState {
    script: Vec<Respond>,
    got: Mutex<Vec<Received>>,
}

/// A webhook receiver on `127.0.0.1:0`; attempt `n` is answered by `script[n]`, later ones 200.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

impl Receiver {
    async fn start(script: &[Respond]) -> Receiver {
        let state = Arc::new(ReceiverState {
            script: script.to_vec(),
            got: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Receiver {
            url: format!("http://{addr}/hook"),
            state,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Waits (at most 20 s) until `n` attempts have arrived.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..1000 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{n} deliveries expected, got {:?}", self.got());
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let index = {
        let mut got = state.got.lock().unwrap();
        got.push(Received {
            headers,
            body,
            arrived: SystemTime::now(),
        });
        got.len() - 1
    };
    match state.script.get(index).copied().unwrap_or(Respond::Ok) {
        Respond::Ok => StatusCode::NO_CONTENT,
        Respond::Fail(code) => StatusCode::from_u16(code).unwrap(),
        Respond::Stall => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            StatusCode::OK
        }
    }
}

/// Jobs of 100 ms; attempts time out after 5 s (only a stalling receiver reaches that) and
/// are retried after 20 ms, then 40 ms.
fn webhook_config(secret: Option<&str>) -> ServerConfig {
    ServerConfig {
        webhooks: WebhookConfig {
            secret: secret.map(str::to_owned),
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(5),
            first_retry_delay: Duration::from_millis(20),
            ..WebhookConfig::default()
        },
        ..config()
    }
}

/// Waits (bounded) until the job records `n` settled deliveries, and answers them.
async fn wait_recorded(app: &Router, id: &str, n: usize) -> Vec<Value> {
    for _ in 0..500 {
        let job = get_job(app, A, id).await;
        if let Some(events) = job.body["webhook_events"].as_array() {
            if events.len() >= n {
                return events.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} never recorded {n} deliveries");
}

async fn create_with_hook(app: &Router, url: &str, video: &str) -> String {
    let created = create(app, A, json!({ "video_url": video, "webhook_url": url })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

fn assert_fresh_timestamp(attempt: &Received) {
    let sent: u64 = attempt.header("x-webhook-timestamp").parse().unwrap();
    let arrived = attempt
        .arrived
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        sent <= arrived && arrived - sent <= 5,
        "{sent} vs {arrived}"
    );
}

#[tokio::test]
async fn started_then_completed_signed_and_recorded() {
    let receiver = Receiver::start(&[]).await;
    let app = app(webhook_config(Some(SECRET)));
    let id = create_with_hook(&app, &receiver.url, "https://v.test/a.mp4").await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    let (started, completed) = (&got[0], &got[1]);
    assert_eq!(started.event(), "job.started");
    assert_eq!(completed.event(), "job.completed");
    assert_ne!(started.delivery_id(), completed.delivery_id());
    for attempt in &got {
        let body = attempt.json();
        assert_eq!(body["event"], attempt.event());
        assert_eq!(body["data"]["id"], id.as_str());
        assert_eq!(attempt.header("content-type"), "application/json");
        assert!(attempt.delivery_id().starts_with("whd_"));
        assert_fresh_timestamp(attempt);
        let expected = sign(
            SECRET.as_bytes(),
            attempt.header("x-webhook-timestamp"),
            &attempt.body,
        );
        assert_eq!(
            attempt.header("x-webhook-signature"),
            format!("sha256={expected}")
        );
    }
    assert_eq!(started.json()["data"]["status"], "processing");
    let done = completed.json();
    assert_eq!(done["data"]["status"], "completed");
    assert_eq!(done["data"]["progress"], 100);
    assert!(done["data"]["output_url"]
        .as_str()
        .is_some_and(|u| u.starts_with("http://ref.test:8080/files/")));
    let events = wait_recorded(&app, &id, 2).await;
    assert_eq!(events[0]["event"], "job.started");
    assert_eq!(events[1]["event"], "job.completed");
    for (record, attempt) in events.iter().zip(&got) {
        assert_eq!(record["status"], "sent");
        assert_eq!(record["attempts"], 1);
        assert_eq!(record["delivery_id"], attempt.delivery_id());
        assert_eq!(record["response_status"], 204);
    }
    let job = get_job(&app, A, &id).await;
    assert_eq!(job.body["webhook_url"], receiver.url.as_str());
}

#[tokio::test]
async fn unsigned_without_a_secret_and_failed_jobs_send_job_failed() {
    let receiver = Receiver::start(&[]).await;
    let app = app(webhook_config(None));
    let id = create_with_hook(&app, &receiver.url, "https://v.test/fail.mp4").await;
    let got = receiver.wait_for(2).await;
    assert_eq!(
        got.iter().map(Received::event).collect::<Vec<_>>(),
        ["job.started", "job.failed"]
    );
    assert!(got
        .iter()
        .all(|a| a.headers.get("x-webhook-signature").is_none()));
    let failed = got[1].json();
    assert_eq!(failed["data"]["status"], "failed");
    assert!(failed["data"]["error"]
        .as_str()
        .is_some_and(|e| !e.is_empty()));
    let events = wait_recorded(&app, &id, 2).await;
    assert_eq!(events[1]["event"], "job.failed");
    // A job without a webhook_url has no deliveries.
    let plain = create(&app, A, json!({ "video_url": "https://v.test/b.mp4" })).await;
    let plain_id = plain.body["id"].as_str().unwrap();
    let job = wait_terminal(&app, A, plain_id).await;
    assert_eq!(job.body["webhook_events"], Value::Null);
    assert_eq!(receiver.got().len(), 2);
}

#[tokio::test]
async fn a_webhook_url_given_at_start_receives_the_events() {
    let receiver = Receiver::start(&[]).await;
    let app = app(webhook_config(None));
    let created = create(
        &app,
        A,
        json!({ "video_url": "https://v.test/a.mp4", "auto_start": false }),
    )
    .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    // A pending job sends nothing.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(receiver.got().is_empty());
    let path = format!("/v1/jobs/{id}/start");
    let started = call(Method::POST, &path)
        .key(A)
        .json(json!({ "webhook_url": receiver.url, "model": "light" }))
        .send(&app)
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let got = receiver.wait_for(2).await;
    assert_eq!(
        got.iter().map(Received::event).collect::<Vec<_>>(),
        ["job.started", "job.completed"]
    );
    assert_eq!(got[0].json()["data"]["model"], "light");
    let bad = call(Method::POST, &path)
        .key(A)
        .json(json!({ "webhook_url": "not a url" }))
        .send(&app)
        .await;
    assert_envelope(&bad, 400, "invalid_request");
}

#[tokio::test]
async fn a_non_2xx_is_retried_with_the_same_delivery_id() {
    let receiver = Receiver::start(&[Respond::Fail(500), Respond::Fail(302)]).await;
    let app = app(webhook_config(Some(SECRET)));
    let id = create_with_hook(&app, &receiver.url, "https://v.test/a.mp4").await;
    let got = receiver.wait_for(4).await;
    assert_eq!(
        got.iter().map(Received::event).collect::<Vec<_>>(),
        ["job.started", "job.started", "job.started", "job.completed"]
    );
    assert!(got[..3]
        .iter()
        .all(|a| a.delivery_id() == got[0].delivery_id()));
    assert_eq!(
        got[..3]
            .iter()
            .map(|a| &a.body)
            .collect::<std::collections::HashSet<_>>()
            .len(),
        1
    );
    let events = wait_recorded(&app, &id, 2).await;
    assert_eq!(events[0]["status"], "sent");
    assert_eq!(events[0]["attempts"], 3);
    assert_eq!(events[1]["attempts"], 1);
}

#[tokio::test]
async fn a_timeout_is_retried_with_the_same_delivery_id() {
    let receiver = Receiver::start(&[Respond::Stall]).await;
    let app = app(ServerConfig {
        webhooks: WebhookConfig {
            attempt_timeout: Duration::from_secs(2),
            ..webhook_config(None).webhooks
        },
        ..config()
    });
    let id = create_with_hook(&app, &receiver.url, "https://v.test/a.mp4").await;
    let got = receiver.wait_for(3).await;
    assert_eq!(got[0].event(), "job.started");
    assert_eq!(got[1].event(), "job.started");
    assert_eq!(got[0].delivery_id(), got[1].delivery_id());
    assert_eq!(got[2].event(), "job.completed");
    let events = wait_recorded(&app, &id, 2).await;
    assert_eq!(
        (events[0]["status"].clone(), events[0]["attempts"].clone()),
        (json!("sent"), json!(2))
    );
}

#[tokio::test]
async fn attempts_are_bounded_and_a_failed_delivery_is_recorded() {
    let receiver = Receiver::start(&[Respond::Fail(503); 6]).await;
    let app = app(webhook_config(None));
    let id = create_with_hook(&app, &receiver.url, "https://v.test/a.mp4").await;
    let events = wait_recorded(&app, &id, 2).await;
    let got = receiver.got();
    assert_eq!(got.len(), 6, "3 attempts per event: {got:?}");
    for record in &events {
        assert_eq!(record["status"], "failed");
        assert_eq!(record["attempts"], 3);
        assert_eq!(record["response_status"], 503);
        assert!(record["error"].as_str().is_some_and(|e| e.contains("503")));
    }
    // The events kept their order even though the first never got through.
    assert_eq!(got[2].event(), "job.started");
    assert_eq!(got[3].event(), "job.completed");
}

#[tokio::test]
async fn only_loopback_and_allowed_hosts_are_sent_to() {
    let app = app(webhook_config(None));
    let id = create_with_hook(
        &app,
        "https://hooks.example.invalid/x",
        "https://v.test/a.mp4",
    )
    .await;
    let events = wait_recorded(&app, &id, 2).await;
    for record in &events {
        assert_eq!(record["status"], "failed");
        assert_eq!(record["attempts"], 0);
        assert!(record["error"]
            .as_str()
            .is_some_and(|e| e.contains("not allowed")));
    }
}

#[tokio::test]
async fn no_request_waits_for_a_delivery() {
    let receiver = Receiver::start(&[Respond::Stall; 4]).await;
    let app = app(ServerConfig {
        webhooks: WebhookConfig {
            max_attempts: 1,
            attempt_timeout: Duration::from_secs(60),
            ..webhook_config(None).webhooks
        },
        ..config()
    });
    let id = create_with_hook(&app, &receiver.url, "https://v.test/a.mp4").await;
    receiver.wait_for(1).await;
    // The first delivery hangs; the job still finishes and reads answer.
    let job = wait_terminal(&app, A, &id).await;
    assert_eq!(job.body["status"], "completed");
    assert_eq!(job.body["webhook_events"], json!([]));
}

#[tokio::test]
async fn the_webhook_data_job_variant_nests_the_job() {
    let receiver = Receiver::start(&[]).await;
    let app = app(ServerConfig {
        variants: [Variant::WebhookDataJob].into_iter().collect(),
        ..webhook_config(None)
    });
    let id = create_with_hook(&app, &receiver.url, "https://v.test/a.mp4").await;
    let got = receiver.wait_for(2).await;
    for attempt in &got {
        let body = attempt.json();
        assert_eq!(body["data"]["job"]["id"], id.as_str());
        assert!(body["data"].get("id").is_none());
    }
    assert_eq!(got[1].json()["data"]["job"]["status"], "completed");
}

/// A server with `fault` and a secret, one job delivered to a receiver that takes everything
/// but the first attempt: what arrived, and the job's record.
async fn deliveries_with(fault: Fault, video: &str) -> (Vec<Received>, Answer) {
    let receiver = Receiver::start(&[Respond::Fail(500)]).await;
    let app = app(ServerConfig {
        faults: [fault].into_iter().collect(),
        ..webhook_config(Some(SECRET))
    });
    let id = create_with_hook(&app, &receiver.url, video).await;
    wait_terminal(&app, A, &id).await;
    // Every fault below still sends at least the terminal event; wait for the last attempt.
    let expected = match fault {
        Fault::WebhookMissingStarted => 2,
        Fault::WebhookNoRetry => 2,
        _ => 3,
    };
    let got = receiver.wait_for(expected).await;
    // Let the last delivery settle on the job before reading it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (got, get_job(&app, A, &id).await)
}

fn events(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|a| a.json()["event"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn webhook_faults_break_one_rule_each() {
    let video = "https://v.test/a.mp4";
    let (got, _) = deliveries_with(Fault::WebhookBadSignature, video).await;
    let attempt = &got[1];
    let good = sign(
        SECRET.as_bytes(),
        attempt.header("x-webhook-timestamp"),
        &attempt.body,
    );
    assert_ne!(
        attempt.header("x-webhook-signature"),
        format!("sha256={good}")
    );

    let (got, _) = deliveries_with(Fault::WebhookMissingStarted, video).await;
    assert_eq!(events(&got), ["job.completed", "job.completed"]);

    let (got, _) = deliveries_with(Fault::WebhookOutOfOrder, video).await;
    assert_eq!(
        events(&got),
        ["job.completed", "job.completed", "job.started"]
    );

    let (got, _) = deliveries_with(Fault::WebhookStaleTimestamp, video).await;
    let sent: u64 = got[0].header("x-webhook-timestamp").parse().unwrap();
    let arrived = got[0].arrived.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(arrived - sent >= 3500, "{sent} vs {arrived}");

    let (got, _) = deliveries_with(Fault::WebhookReusedDeliveryId, video).await;
    assert_eq!(
        events(&got),
        ["job.started", "job.started", "job.completed"]
    );
    assert!(got.iter().all(|a| a.delivery_id() == got[0].delivery_id()));

    let (got, job) = deliveries_with(Fault::WebhookNoRetry, video).await;
    assert_eq!(events(&got), ["job.started", "job.completed"]);
    let recorded = job.body["webhook_events"].as_array().unwrap().clone();
    assert_eq!(recorded[0]["status"], "failed");
    assert_eq!(recorded[0]["attempts"], 1);

    let (got, _) = deliveries_with(Fault::WebhookWrongEventHeader, video).await;
    assert_eq!(got[2].event(), "job.started");
    assert_eq!(got[2].json()["event"], "job.completed");

    let (got, _) = deliveries_with(Fault::WebhookJobNotNamed, video).await;
    assert!(got.iter().all(|a| a.json()["data"].get("id").is_none()));
    assert_eq!(got[2].json()["data"]["status"], "completed");

    let (got, job) = deliveries_with(Fault::WebhookNotRecorded, video).await;
    assert_eq!(got.len(), 3);
    assert_eq!(job.body["webhook_events"], json!([]));
}

#[tokio::test]
async fn variants_record_by_event_and_send_rfc3339_timestamps() {
    let receiver = Receiver::start(&[]).await;
    let app = app(ServerConfig {
        variants: [Variant::WebhookEventsMap, Variant::WebhookIsoTimestamp]
            .into_iter()
            .collect(),
        ..webhook_config(Some(SECRET))
    });
    let id = create_with_hook(&app, &receiver.url, "https://v.test/a.mp4").await;
    let got = receiver.wait_for(2).await;
    for attempt in &got {
        let timestamp = attempt.header("x-webhook-timestamp");
        assert!(
            timestamp.ends_with('Z') && timestamp.contains('T'),
            "{timestamp}"
        );
        let expected = sign(SECRET.as_bytes(), timestamp, &attempt.body);
        assert_eq!(
            attempt.header("x-webhook-signature"),
            format!("sha256={expected}")
        );
    }
    for _ in 0..500 {
        let job = get_job(&app, A, &id).await;
        if job.body["webhook_events"]["job.completed"] == "sent" {
            assert_eq!(job.body["webhook_events"]["job.started"], "sent");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the job never recorded its deliveries by event");
}
