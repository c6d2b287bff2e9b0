//! The reference server driven exactly as the vendor's Python and Node SDKs drive it on the
//! wire (docs/contract.md section 8): a sandbox for client developers has to take what those
//! SDKs send, as they send it. A plain reqwest client plays the SDK; no engine code is used.
//!
//! What the SDKs do, and so what this test does: only `X-Api-Key` (plus `Content-Type:
//! application/json` on JSON POSTs); an upload with part `file`, a file name and no part
//! Content-Type; a create with the SDK's defaults and a free-form `metadata`; a start with
//! overrides; polling every 2 s until `completed` or `failed`; any status under 400 taken as
//! success; errors read from `error.code`, `error.message` and `error.request_id`; a 429
//! retried twice, after 0.5 s and then 1 s, without looking at `Retry-After`.

use std::time::{Duration, Instant};

use apiconform::reference::{RateLimitConfig, RunningServer, ServerConfig};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

const KEY: &str = "sk_sdk_primary";
const BROKE: &str = "sk_sdk_broke";

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
        ..ServerConfig::default()
    }
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

    // Webhooks: when the sandbox delivers signed webhooks, start a receiver here and put its
    // URL in the create body below as `webhook_url`; its deliveries are judged after the poll.

    // Create with the SDK's defaults, not started.
    let create = json!({
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
