//! The reference server driven exactly as the vendor's Python and Node SDKs drive it on the
//! wire (docs/contract.md section 8): a sandbox for client developers has to take what those
//! SDKs send, as they send it. A plain reqwest client plays the SDK; no engine code is used.
//!
//! What the SDKs do, and so what this test does: only `X-Api-Key` (plus `Content-Type:
//! application/json` on JSON POSTs); an upload with part `file`, a file name and no part
//! Content-Type; a create with the SDK's defaults and a free-form `metadata`; a start with
//! overrides; polling every 2 s until `completed` or `failed`; any status under 400 taken as
//! success; errors read from `error.code`, `error.message` and `error.request_id`; a 429
//! retried twice, after 0.5 s and then 1 s, without looking at `Retry-After`. A job's webhooks
//! go to a receiver here that checks them as the vendor's receiver template does: the
//! signature over `"<timestamp>.<raw body>"` first, then `data.id`, `data.status` and
//! `data.output_url`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apiconform::reference::{RateLimitConfig, RunningServer, ServerConfig, WebhookConfig};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const KEY: &str = "sk_sdk_primary";
const BROKE: &str = "sk_sdk_broke";
/// The signing secret the operator gives `serve --webhook-secret` and the receiver.
const WEBHOOK_SECRET: &str = "whsec_sdk_sandbox";

/// How often the SDKs poll a job.
const POLL: Duration = Duration::from_secs(2);
/// The SDKs give up after 600 s; the sandbox's jobs take 2.5 s, so a minute is ample.
const GIVE_UP: Duration = Duration::from_secs(60);

/// The sandbox as a client developer would start it: short jobs, the SDK's keys.
fn sandbox() -> ServerConfig {
    ServerConfig {
        primary_key: KEY.into(),
        second_key: None,
        broke_key: Some(BROKE.into()),
        job_duration: Duration::from_millis(2500),
        webhooks: WebhookConfig {
            secret: Some(WEBHOOK_SECRET.into()),
            ..WebhookConfig::default()
        },
        ..ServerConfig::default()
    }
}

/// One webhook as the receiver template takes it: verified, then read.
#[derive(Clone, Debug)]
struct Webhook {
    event: String,
    data: Value,
}

/// The integrator's webhook receiver, on loopback: it verifies `X-Webhook-Signature` (in
/// constant time, with the `hmac` crate's `verify_slice`) before it reads the body, answers
/// 401 to a signature that does not verify, and keeps what it took.
struct WebhookReceiver {
    url: String,
    taken: Arc<Mutex<Vec<Webhook>>>,
    refused: Arc<Mutex<usize>>,
}

impl WebhookReceiver {
    async fn start() -> WebhookReceiver {
        let taken = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(0));
        let (keep, refuse) = (Arc::clone(&taken), Arc::clone(&refused));
        let app = axum::Router::new().route(
            "/hooks/removebg",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (keep, refuse) = (Arc::clone(&keep), Arc::clone(&refuse));
                async move {
                    match verified(&headers, &body) {
                        Some(webhook) => {
                            keep.lock().unwrap().push(webhook);
                            StatusCode::OK
                        }
                        None => {
                            *refuse.lock().unwrap() += 1;
                            StatusCode::UNAUTHORIZED
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/removebg", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        WebhookReceiver {
            url,
            taken,
            refused,
        }
    }

    /// Waits (at most 30 s) for `event` to be taken, and answers every webhook taken.
    async fn wait_for(&self, event: &str) -> Vec<Webhook> {
        for _ in 0..300 {
            let taken = self.taken.lock().unwrap().clone();
            if taken.iter().any(|w| w.event == event) {
                return taken;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no verified {event} webhook arrived");
    }
}

/// The template's check: `sha256=` and the hex HMAC-SHA256 of `"<timestamp>.<raw body>"`,
/// then the JSON body's `event` and `data`.
fn verified(headers: &HeaderMap, body: &[u8]) -> Option<Webhook> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp = header("x-webhook-timestamp")?;
    let hex = header("x-webhook-signature")?.strip_prefix("sha256=")?;
    let signature: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).ok()?;
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&signature).ok()?;
    let body: Value = serde_json::from_slice(body).ok()?;
    let event = header("x-webhook-event")?.to_owned();
    (body["event"] == event.as_str()).then(|| Webhook {
        event,
        data: body["data"].clone(),
    })
}

/// The SDK's HTTP client: no default headers of its own beyond what the library sends.
fn sdk_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// A few bytes that start like an MP4 (an `ftyp` box and an empty `mdat`).
fn clip() -> Vec<u8> {
    let mut bytes = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom".to_vec();
    bytes.extend_from_slice(b"\x00\x00\x00\x08mdat");
    bytes
}

/// The SDK's view of an answer: status < 400 is success, else the envelope's three fields.
struct Answer {
    status: u16,
    request_id_header: Option<String>,
    body: Value,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let request_id_header = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            request_id_header,
            body,
        }
    }

    fn ok(&self) -> bool {
        self.status < 400
    }

    /// `error.code`, `error.message` and `error.request_id`, as the SDKs raise them.
    fn error(&self) -> (&str, &str, &str) {
        let field = |name: &str| self.body["error"][name].as_str().unwrap_or("");
        (field("code"), field("message"), field("request_id"))
    }

    /// Assert an SDK error with `status` and `code`, a message and the response's request id.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        let (seen, message, request_id) = self.error();
        assert_eq!(seen, code, "{}", self.body);
        assert!(!message.is_empty(), "{}", self.body);
        assert!(!request_id.is_empty(), "{}", self.body);
        assert_eq!(self.request_id_header.as_deref(), Some(request_id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_serves_the_vendor_sdks_as_they_send() {
    let server = RunningServer::start(sandbox(), ([127, 0, 0, 1], 0).into())
        .await
        .expect("start the sandbox");
    let base = server.base_url.clone();
    let http = sdk_client();

    // Upload: part `file` with a file name and no Content-Type (the Python SDK's way).
    let form = Form::new().part("file", Part::bytes(clip()).file_name("clip.mp4"));
    let upload = Answer::read(
        http.post(format!("{base}/v1/uploads"))
            .header("X-Api-Key", KEY)
            .multipart(form)
            .send()
            .await
            .expect("upload"),
    )
    .await;
    assert!(upload.ok(), "{}", upload.body);
    assert_eq!(upload.body["success"], true);
    assert_eq!(upload.body["filename"], "clip.mp4");
    assert_eq!(upload.body["size"], clip().len());
    assert!(upload.body["video_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    let video_url = upload.body["video_url"]
        .as_str()
        .expect("video_url")
        .to_owned();
    let served = http.get(&video_url).send().await.expect("fetch the upload");
    assert_eq!(served.status().as_u16(), 200);
    assert_eq!(served.bytes().await.unwrap().as_ref(), clip().as_slice());

    // Webhooks go to the integrator's receiver, given as the SDK's `webhook_url`.
    let receiver = WebhookReceiver::start().await;

    // Create with the SDK's defaults, not started.
    let create = json!({
        "webhook_url": receiver.url,
        "video_url": video_url,
        "model": "original",
        "output_format": "webm",
        "bg_type": "green",
        "bg_color": [0, 255, 0],
        "metadata": { "order": 42, "customer": "sdk-test", "tags": ["a", "b"] },
        "auto_start": false,
    });
    let created = Answer::read(
        http.post(format!("{base}/v1/jobs"))
            .header("X-Api-Key", KEY)
            .json(&create)
            .send()
            .await
            .expect("create"),
    )
    .await;
    assert!(created.ok(), "{}", created.body);
    assert_eq!(created.body["success"], true);
    assert_eq!(created.body["status"], "pending", "{}", created.body);
    let id = created.body["id"].as_str().expect("job id").to_owned();

    // Start with overrides.
    let overrides = json!({
        "model": "light",
        "output_format": "mp4",
        "bg_type": "color",
        "bg_color": [255, 255, 255],
    });
    let started = Answer::read(
        http.post(format!("{base}/v1/jobs/{id}/start"))
            .header("X-Api-Key", KEY)
            .json(&overrides)
            .send()
            .await
            .expect("start"),
    )
    .await;
    assert!(started.ok(), "{}", started.body);
    assert_eq!(started.body["status"], "processing");

    // Poll every 2 s until the job ends, as the SDKs do.
    let since = Instant::now();
    let job = loop {
        let job = Answer::read(
            http.get(format!("{base}/v1/jobs/{id}"))
                .header("X-Api-Key", KEY)
                .send()
                .await
                .expect("poll"),
        )
        .await;
        assert!(job.ok(), "{}", job.body);
        if matches!(job.body["status"].as_str(), Some("completed" | "failed")) {
            break job;
        }
        assert!(
            since.elapsed() < GIVE_UP,
            "the job never ended: {}",
            job.body
        );
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(job.body["status"], "completed", "{}", job.body);
    assert_eq!(job.body["progress"], 100);
    assert_eq!(job.body["video_url"], video_url.as_str());
    assert_eq!(job.body["model"], "light");
    let output = job.body["output_url"].as_str().expect("output_url");
    assert_eq!(
        http.get(output).send().await.unwrap().status().as_u16(),
        200
    );

    // The webhooks arrived signed, in order, naming the job as the template reads it.
    let taken = receiver.wait_for("job.completed").await;
    let events: Vec<&str> = taken.iter().map(|w| w.event.as_str()).collect();
    assert_eq!(events, ["job.started", "job.completed"]);
    assert_eq!(
        *receiver.refused.lock().unwrap(),
        0,
        "every signature verified"
    );
    for webhook in &taken {
        assert_eq!(webhook.data["id"], id.as_str());
    }
    assert_eq!(taken[0].data["status"], "processing");
    assert_eq!(taken[1].data["status"], "completed");
    assert_eq!(taken[1].data["output_url"], output);

    // Errors, read from the envelope: an unknown job, and a key without credits.
    let missing = Answer::read(
        http.get(format!("{base}/v1/jobs/job_does_not_exist"))
            .header("X-Api-Key", KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    missing.assert_error(404, "job_not_found");
    let broke = Answer::read(
        http.post(format!("{base}/v1/jobs"))
            .header("X-Api-Key", BROKE)
            .json(&create)
            .send()
            .await
            .unwrap(),
    )
    .await;
    broke.assert_error(402, "insufficient_credits");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_sdk_reads_the_envelope_and_its_retries_succeed() {
    // Two requests in a burst, one more a second: a sequential client meets the limit at once,
    // and the SDK's two retries (0.5 s, then 1 s later) give the bucket 1.5 s to refill one.
    let config = ServerConfig {
        rate_limit: RateLimitConfig {
            capacity: 2,
            refill_per_second: 1.0,
        },
        ..sandbox()
    };
    let server = RunningServer::start(config, ([127, 0, 0, 1], 0).into())
        .await
        .expect("start the sandbox");
    let http = sdk_client();
    let list = || {
        http.get(format!("{}/v1/jobs?limit=1", server.base_url))
            .header("X-Api-Key", KEY)
            .send()
    };
    let mut limited = None;
    for _ in 0..20 {
        let answer = Answer::read(list().await.unwrap()).await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        assert!(answer.ok(), "{}", answer.body);
    }
    let limited = limited.expect("a 429 within 20 requests");
    limited.assert_error(429, "rate_limited");
    // The documented retry: twice, after 0.5 s and then 1 s, whatever Retry-After says.
    let mut last = limited.status;
    for wait in [500, 1000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        last = Answer::read(list().await.unwrap()).await.status;
        if last < 400 {
            break;
        }
    }
    assert_eq!(last, 200, "the SDK's retries end in success");
    server.shutdown().await;
}
