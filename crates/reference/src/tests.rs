//! Socket-free tests of the reference server through [`super::app`], plus one
//! loopback test of [`super::RunningServer`]. Jobs take 100 ms here.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;

const A: &str = "sk_test_primary";
const B: &str = "sk_test_second";
const BROKE: &str = "sk_test_broke";
const HOST: &str = "ref.test:8080";

fn config() -> ServerConfig {
    ServerConfig {
        job_duration: Duration::from_millis(100),
        ..ServerConfig::default()
    }
}

fn with_faults(faults: &[Fault]) -> ServerConfig {
    ServerConfig {
        faults: faults.iter().copied().collect(),
        ..config()
    }
}

/// One response, its body parsed as JSON (or kept as a string).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn request_id(&self) -> &str {
        self.header("x-request-id").unwrap_or("")
    }
}

struct Call<'a> {
    method: Method,
    path: &'a str,
    key: Option<&'a str>,
    body: Option<Value>,
    headers: Vec<(&'a str, &'a str)>,
}

fn call(method: Method, path: &str) -> Call<'_> {
    Call {
        method,
        path,
        key: None,
        body: None,
        headers: Vec::new(),
    }
}

impl<'a> Call<'a> {
    fn key(mut self, key: &'a str) -> Self {
        self.key = Some(key);
        self
    }
    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }
    async fn send(self, app: &Router) -> Answer {
        let mut req = Request::builder()
            .method(self.method)
            .uri(self.path)
            .header("host", HOST);
        if let Some(key) = self.key {
            req = req.header("x-api-key", key);
        }
        for (name, value) in self.headers {
            req = req.header(name, value);
        }
        let body = match self.body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        send(app, req.body(body).unwrap()).await
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(req))
        .await
        .expect("request timed out")
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer {
        status,
        headers,
        body,
    }
}

async fn create(app: &Router, key: &str, body: Value) -> Answer {
    call(Method::POST, "/v1/jobs")
        .key(key)
        .json(body)
        .send(app)
        .await
}

async fn get_job(app: &Router, key: &str, id: &str) -> Answer {
    let path = format!("/v1/jobs/{id}");
    call(Method::GET, &path).key(key).send(app).await
}

/// Polls until the job is terminal (bounded).
async fn wait_terminal(app: &Router, key: &str, id: &str) -> Answer {
    for _ in 0..100 {
        let job = get_job(app, key, id).await;
        if matches!(job.body["status"].as_str(), Some("completed" | "failed")) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} never finished");
}

fn assert_envelope(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "body: {}", a.body);
    assert_eq!(a.code(), code, "body: {}", a.body);
    assert!(a.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(a.body["error"]["request_id"].as_str(), Some(a.request_id()));
    assert_eq!(a.header("content-type"), Some("application/json"));
}

fn is_request_id(id: &str) -> bool {
    id.len() == 28 && id.starts_with("req_") && id[4..].chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test]
async fn auth_codes() {
    let app = app(config());
    let missing = call(Method::GET, "/v1/jobs").send(&app).await;
    assert_envelope(&missing, 401, "missing_api_key");
    assert_eq!(missing.header("www-authenticate"), Some("ApiKey"));
    let empty = call(Method::GET, "/v1/jobs").key("").send(&app).await;
    assert_envelope(&empty, 401, "missing_api_key");
    let invalid = call(Method::GET, "/v1/jobs")
        .key("sk_nope")
        .send(&app)
        .await;
    assert_envelope(&invalid, 401, "invalid_api_key");
    let ok = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.body,
        json!({"jobs": [], "total": 0, "limit": 20, "offset": 0})
    );
    // Unknown /v1 routes are authenticated too; public routes need no key.
    let unknown = call(Method::GET, "/v1/nothing").send(&app).await;
    assert_envelope(&unknown, 401, "missing_api_key");
    let health = call(Method::GET, "/health").send(&app).await;
    assert_eq!(health.body["status"], "healthy");
    assert_eq!(health.body["checks"]["runpod_configured"], true);
    let pricing = call(Method::GET, "/api/pricing").send(&app).await;
    assert_eq!(pricing.body["model_pricing_credits_per_minute"]["pro"], 180);
}

#[tokio::test]
async fn request_ids_on_every_response() {
    let app = app(config());
    let mut seen = std::collections::HashSet::new();
    for a in [
        call(Method::GET, "/health").send(&app).await,
        call(Method::GET, "/no/such/route").send(&app).await,
        call(Method::DELETE, "/v1/jobs").key(A).send(&app).await,
        call(Method::GET, "/v1/jobs").key(A).send(&app).await,
        get_job(&app, A, "job_unknown").await,
    ] {
        assert!(is_request_id(a.request_id()), "{:?}", a.headers);
        assert!(seen.insert(a.request_id().to_owned()), "ids must be unique");
        if !a.status.is_success() {
            assert_eq!(a.body["error"]["request_id"].as_str(), Some(a.request_id()));
        }
    }
    let not_found = call(Method::GET, "/no/such/route").send(&app).await;
    assert_envelope(&not_found, 404, "not_found");
    let wrong_method = call(Method::DELETE, "/v1/jobs").key(A).send(&app).await;
    assert_envelope(&wrong_method, 405, "method_not_allowed");
}

#[tokio::test]
async fn job_completes_with_output() {
    let app = app(config());
    let created = create(
        &app,
        A,
        json!({"video_url": "https://v.test/a.mp4", "output_format": "mp4"}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["success"], true);
    assert_eq!(created.body["status"], "processing");
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("job_") && id.len() == 24);

    let early = get_job(&app, A, &id).await;
    assert_eq!(early.header("content-type"), Some("application/json"));
    assert_eq!(early.body["id"], id.as_str());
    assert_eq!(early.body["billing_status"], "charged");
    assert!(early.body["created_at"].as_str().unwrap().ends_with('Z'));
    // 100 ms jobs: on a slow machine the first read may already be terminal.
    if early.body["status"] == "processing" {
        assert_eq!(early.body["output_url"], Value::Null);
        assert_eq!(early.body["duration_seconds"], Value::Null);
    }
    let parked = create(
        &app,
        A,
        json!({"video_url": "https://v.test/b.mp4", "auto_start": false}),
    )
    .await;
    let parked_path = format!("/api/download/{}", parked.body["id"].as_str().unwrap());
    let pending = call(Method::GET, &parked_path).send(&app).await;
    assert_envelope(&pending, 400, "invalid_request");
    assert_eq!(pending.body["error"]["message"], "Job not completed");
    assert_envelope(
        &call(Method::GET, "/api/download/job_nope").send(&app).await,
        404,
        "job_not_found",
    );

    let done = wait_terminal(&app, A, &id).await;
    assert_eq!(done.body["status"], "completed");
    assert_eq!(done.body["progress"], 100);
    assert_eq!(done.body["error"], Value::Null);
    // The video's length (the reference server takes a short clip to last 30 s).
    assert_eq!(done.body["duration_seconds"], 30.0);
    let url = done.body["output_url"].as_str().unwrap();
    assert_eq!(url, format!("http://{HOST}/files/{id}.mp4"));

    let file = call(Method::GET, &format!("/files/{id}.mp4"))
        .send(&app)
        .await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.header("content-type"), Some("video/mp4"));
    let head = call(Method::HEAD, &format!("/files/{id}.mp4"))
        .send(&app)
        .await;
    assert_eq!(head.status, StatusCode::OK);
    let download = call(Method::GET, &format!("/api/download/{id}"))
        .send(&app)
        .await;
    assert_eq!(download.body["download_url"], url);
    assert_eq!(download.body["output_format"], "mp4");

    // Charged exactly once, visible in usage.
    let summary = call(Method::GET, "/v1/usage/summary?days=7")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(summary.body["total_credits_used"], 30);
    assert_eq!(summary.body["total_jobs"], 1);
    assert_eq!(summary.body["credits_remaining"], 100_000 - 30);
    assert_eq!(summary.body["daily"].as_array().unwrap().len(), 7);
    let events = call(Method::GET, "/v1/usage/events?limit=5")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(events.body["events"][0]["job_id"], id.as_str());
    assert_eq!(events.body["events"][0]["type"], "charge");
    assert_eq!(events.body["events"][0]["credits"], 30);
}

#[tokio::test]
async fn failing_video_fails_with_error() {
    let app = app(config());
    let created = create(&app, A, json!({"video_url": "https://v.test/fail.mp4"})).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let done = wait_terminal(&app, A, &id).await;
    assert_eq!(done.body["status"], "failed");
    assert!(done.body["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert_eq!(done.body["output_url"], Value::Null);
    let download = call(Method::GET, &format!("/api/download/{id}"))
        .send(&app)
        .await;
    assert_envelope(&download, 400, "invalid_request");
}

#[tokio::test]
async fn pending_start_and_restart_charge_once() {
    let app = app(config());
    let created = create(
        &app,
        A,
        json!({"video_url": "https://v.test/a.mp4", "auto_start": false, "model": "pro"}),
    )
    .await;
    assert_eq!(created.body["status"], "pending");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let job = get_job(&app, A, &id).await;
    assert_eq!(
        (job.body["status"].as_str(), job.body["progress"].as_u64()),
        (Some("pending"), Some(0))
    );
    assert_eq!(job.body["billing_status"], "pending");
    let start_path = format!("/v1/jobs/{id}/start");
    let started = call(Method::POST, &start_path).key(A).send(&app).await;
    assert_eq!(started.status, StatusCode::OK);
    assert_eq!(started.body["status"], "processing");
    let again = call(Method::POST, &start_path)
        .key(A)
        .json(json!({}))
        .send(&app)
        .await;
    assert_eq!(again.status, StatusCode::OK);
    wait_terminal(&app, A, &id).await;
    let after = call(Method::POST, &start_path).key(A).send(&app).await;
    assert_eq!(after.body["status"], "completed");
    let summary = call(Method::GET, "/v1/usage/summary?days=1")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(summary.body["total_credits_used"], 90); // pro, 30 s: 180 x 0.5
                                                        // Another tenant cannot start or read it.
    let foreign = call(Method::POST, &start_path).key(B).send(&app).await;
    assert_envelope(&foreign, 404, "job_not_found");
}

#[tokio::test]
async fn broke_tenant_gets_402_and_nothing_is_created() {
    let app = app(config());
    let refused = create(&app, BROKE, json!({"video_url": "https://v.test/a.mp4"})).await;
    assert_envelope(&refused, 402, "insufficient_credits");
    let list = call(Method::GET, "/v1/jobs").key(BROKE).send(&app).await;
    assert_eq!(list.body["total"], 0);

    let faulty = super::app(with_faults(&[Fault::PaymentRequiredCreatesJob]));
    let refused = create(&faulty, BROKE, json!({"video_url": "https://v.test/a.mp4"})).await;
    assert_eq!(refused.status, StatusCode::PAYMENT_REQUIRED);
    let list = call(Method::GET, "/v1/jobs").key(BROKE).send(&faulty).await;
    assert_eq!(list.body["total"], 1);
}

#[tokio::test]
async fn tenants_are_isolated() {
    let app = app(config());
    let created = create(&app, A, json!({"video_url": "https://v.test/a.mp4"})).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_envelope(&get_job(&app, B, &id).await, 404, "job_not_found");
    assert_eq!(
        get_job(&app, B, &id).await.body["error"]["message"],
        "Job not found"
    );
    let list = call(Method::GET, "/v1/jobs").key(B).send(&app).await;
    assert_eq!(list.body["total"], 0);

    let leak = super::app(with_faults(&[Fault::CrossTenantLeak]));
    let id = create(&leak, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .clone();
    assert_eq!(
        get_job(&leak, B, id.as_str().unwrap()).await.status,
        StatusCode::OK
    );
    let forbid = super::app(with_faults(&[Fault::CrossTenant403]));
    let id = create(&forbid, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .clone();
    assert_envelope(
        &get_job(&forbid, B, id.as_str().unwrap()).await,
        403,
        "forbidden",
    );
}

#[tokio::test]
async fn validation_errors_are_400() {
    let app = app(config());
    for body in [
        json!({}),
        json!({"video_url": ""}),
        json!({"video_url": 3}),
        json!({"video_url": "not a url"}),
        json!({"video_url": "ftp://v.test/a.mp4"}),
        json!({"video_url": "https://v.test/a.mp4", "model": "giant"}),
        json!({"video_url": "https://v.test/a.mp4", "output_format": "avi"}),
        json!({"video_url": "https://v.test/a.mp4", "auto_start": "yes"}),
        json!([1, 2]),
    ] {
        assert_envelope(&create(&app, A, body).await, 400, "invalid_request");
    }
    let not_json = Request::post("/v1/jobs")
        .header("x-api-key", A)
        .body(Body::from("{not json"))
        .unwrap();
    assert_envelope(&send(&app, not_json).await, 400, "invalid_request");
    for path in [
        "/v1/jobs?limit=0",
        "/v1/jobs?limit=1000",
        "/v1/jobs?offset=-1",
        "/v1/jobs?status=weird",
        "/v1/usage/summary?days=0",
        "/v1/usage/summary?days=91",
        "/v1/usage/events?limit=abc",
    ] {
        assert_envelope(
            &call(Method::GET, path).key(A).send(&app).await,
            400,
            "invalid_request",
        );
    }
}

#[tokio::test]
async fn endpoint_faults() {
    let health = app(with_faults(&[Fault::HealthNeedsKey]));
    assert_envelope(
        &call(Method::GET, "/health").send(&health).await,
        401,
        "missing_api_key",
    );
    assert_eq!(
        call(Method::GET, "/health")
            .key(A)
            .send(&health)
            .await
            .status,
        StatusCode::OK
    );
    let shape = app(with_faults(&[Fault::HealthBadShape]));
    let body = call(Method::GET, "/health").send(&shape).await.body;
    assert_eq!(body, json!({ "status": "ok" }));
    let pricing = app(with_faults(&[Fault::PricingWrongRate]));
    let rates = call(Method::GET, "/api/pricing").send(&pricing).await.body;
    assert_eq!(rates["model_pricing_credits_per_minute"]["pro"], 120);
    assert_eq!(rates["model_pricing_credits_per_minute"]["light"], 45);

    let flat = app(with_faults(&[Fault::ChargeIgnoresDuration]));
    create(&flat, A, json!({"video_url": "https://v.test/a.mp4"})).await;
    let events = call(Method::GET, "/v1/usage/events")
        .key(A)
        .send(&flat)
        .await;
    assert_eq!(events.body["events"][0]["credits"], 60);

    let early = app(with_faults(&[Fault::DownloadBeforeCompletion200]));
    let parked = create(
        &early,
        A,
        json!({"video_url": "https://v.test/a.mp4", "auto_start": false}),
    )
    .await;
    let path = format!("/api/download/{}", parked.body["id"].as_str().unwrap());
    let download = call(Method::GET, &path).send(&early).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.body["download_url"], Value::Null);

    let missing = app(with_faults(&[Fault::DownloadUrl404]));
    let id = create(&missing, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_terminal(&missing, A, &id).await;
    let download = call(Method::GET, &format!("/api/download/{id}"))
        .send(&missing)
        .await;
    let url = download.body["download_url"].as_str().unwrap();
    let file_path = url.strip_prefix(&format!("http://{HOST}")).unwrap();
    assert_eq!(
        call(Method::GET, file_path).send(&missing).await.status,
        StatusCode::NOT_FOUND
    );

    let usage = app(with_faults(&[Fault::UsageDays500, Fault::UsageNoJobEvent]));
    assert_envelope(
        &call(Method::GET, "/v1/usage/summary?days=0")
            .key(A)
            .send(&usage)
            .await,
        500,
        "internal_error",
    );
    create(&usage, A, json!({"video_url": "https://v.test/a.mp4"})).await;
    let events = call(Method::GET, "/v1/usage/events")
        .key(A)
        .send(&usage)
        .await;
    assert_eq!(events.body["events"][0]["job_id"], Value::Null);
    let shape = app(with_faults(&[Fault::UsageBadShape]));
    let summary = call(Method::GET, "/v1/usage/summary?days=3")
        .key(A)
        .send(&shape)
        .await;
    assert_eq!(summary.body.as_array().map(Vec::len), Some(3));

    let crash = app(with_faults(&[Fault::InvalidRequest500]));
    let not_json = Request::post("/v1/jobs")
        .header("x-api-key", A)
        .body(Body::from("{not json"))
        .unwrap();
    assert_envelope(&send(&crash, not_json).await, 500, "internal_error");
    assert_envelope(&create(&crash, A, json!({})).await, 400, "invalid_request");
    let problem = app(with_faults(&[Fault::InvalidRequestProblemJson]));
    let refused = create(&problem, A, json!({"video_url": 3})).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(refused.body["status"], 400);
    assert_eq!(refused.body["error"], Value::Null);
}

#[tokio::test]
async fn odd_job_ids_are_404_never_5xx() {
    let app = app(config());
    let long = "x".repeat(5000);
    for id in [
        long.as_str(),
        "%00",
        "..%2F..%2Fetc",
        "%FF%FE",
        "job_%20x",
        "a%2Fb",
        "a/b/c",
    ] {
        let a = get_job(&app, A, id).await;
        assert_envelope(&a, 404, "job_not_found");
    }
    let faulty = super::app(with_faults(&[Fault::MalformedId500]));
    assert_envelope(&get_job(&faulty, A, &long).await, 500, "internal_error");
    assert_envelope(&get_job(&faulty, A, "job_fine").await, 404, "job_not_found");
}

#[tokio::test]
async fn list_pages_newest_first() {
    let app = app(config());
    let mut ids = Vec::new();
    for i in 0..3 {
        let a = create(
            &app,
            A,
            json!({"video_url": format!("https://v.test/{i}.mp4"), "auto_start": false}),
        )
        .await;
        ids.push(a.body["id"].as_str().unwrap().to_owned());
    }
    let page = call(Method::GET, "/v1/jobs?limit=2&offset=1&status=pending")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(page.body["total"], 3);
    assert_eq!(page.body["limit"], 2);
    assert_eq!(page.body["offset"], 1);
    let got: Vec<&str> = page.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[1].as_str(), ids[0].as_str()]);
    let none = call(Method::GET, "/v1/jobs?status=completed")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(none.body["total"], 0);
}

#[tokio::test]
async fn idempotency_replays_and_rejects_reuse() {
    let app = app(config());
    let body = json!({"video_url": "https://v.test/a.mp4"});
    let first = call(Method::POST, "/v1/jobs")
        .key(A)
        .json(body.clone())
        .header("idempotency-key", "\"k1\"")
        .send(&app)
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replay = call(Method::POST, "/v1/jobs")
        .key(A)
        .json(body.clone())
        .header("idempotency-key", "k1")
        .send(&app)
        .await;
    assert_eq!(replay.status, StatusCode::CREATED);
    assert_eq!(replay.body, first.body);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_ne!(replay.request_id(), first.request_id());
    let other = call(Method::POST, "/v1/jobs")
        .key(A)
        .json(json!({"video_url": "https://v.test/b.mp4"}))
        .header("idempotency-key", "k1")
        .send(&app)
        .await;
    assert_envelope(&other, 422, "invalid_request");
    // Another tenant's identical key is its own.
    let b = call(Method::POST, "/v1/jobs")
        .key(B)
        .json(body.clone())
        .header("idempotency-key", "k1")
        .send(&app)
        .await;
    assert_ne!(b.body["id"], first.body["id"]);
    let list = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    assert_eq!(list.body["total"], 1);
    let summary = call(Method::GET, "/v1/usage/summary?days=1")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(summary.body["total_jobs"], 1);

    // Concurrent duplicates: one is handled, the other sees it in flight.
    let send_k2 = || {
        call(Method::POST, "/v1/jobs")
            .key(A)
            .json(body.clone())
            .header("idempotency-key", "k2")
            .send(&app)
    };
    let (x, y) = tokio::join!(send_k2(), send_k2());
    let mut statuses = [x.status.as_u16(), y.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let conflict = if x.status == StatusCode::CONFLICT {
        &x
    } else {
        &y
    };
    assert_envelope(conflict, 409, "idempotency_conflict");
}

#[tokio::test]
async fn idempotency_faults() {
    let body = json!({"video_url": "https://v.test/a.mp4"});
    let ignore = app(with_faults(&[Fault::IgnoreIdempotencyKey]));
    let cross = app(with_faults(&[Fault::IdempotencyCrossTenant]));
    let mut ids = Vec::new();
    for (app, key) in [(&ignore, A), (&ignore, A), (&cross, A), (&cross, B)] {
        let a = call(Method::POST, "/v1/jobs")
            .key(key)
            .json(body.clone())
            .header("idempotency-key", "same")
            .send(app)
            .await;
        ids.push(a.body["id"].clone());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(ids[2], ids[3]);
}

#[tokio::test]
async fn rate_limit_429_with_headers_then_recovers() {
    let app = app(ServerConfig {
        rate_limit: RateLimitConfig {
            capacity: 3,
            refill_per_second: 2.0,
        },
        ..config()
    });
    for left in ["2", "1", "0"] {
        let ok = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(ok.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(ok.header("x-ratelimit-remaining"), Some(left));
        assert_eq!(ok.header("ratelimit-policy"), Some("\"default\";q=3;w=2"));
    }
    let limited = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    assert_envelope(&limited, 429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    assert!(limited
        .header("ratelimit")
        .unwrap()
        .starts_with("\"default\";r=0;t="));
    // Keys are limited separately, and keyless requests never are.
    assert_eq!(
        call(Method::GET, "/v1/jobs").key(B).send(&app).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, "/v1/jobs").send(&app).await.status,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        call(Method::GET, "/v1/jobs").key(A).send(&app).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limit_faults() {
    let tight = |faults: &[Fault]| {
        app(ServerConfig {
            rate_limit: RateLimitConfig {
                capacity: 1,
                refill_per_second: 0.5,
            },
            ..with_faults(faults)
        })
    };
    let burst = tight(&[Fault::Burst5xx]);
    call(Method::GET, "/v1/jobs").key(A).send(&burst).await;
    assert_envelope(
        &call(Method::GET, "/v1/jobs").key(A).send(&burst).await,
        503,
        "internal_error",
    );

    let quiet = tight(&[Fault::NoRateLimitHints]);
    call(Method::GET, "/v1/jobs").key(A).send(&quiet).await;
    let limited = call(Method::GET, "/v1/jobs").key(A).send(&quiet).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited
        .headers
        .keys()
        .all(|h| !h.as_str().contains("ratelimit") && h != "retry-after"));

    let past = tight(&[Fault::RetryAfterInPast]);
    call(Method::GET, "/v1/jobs").key(A).send(&past).await;
    let limited = call(Method::GET, "/v1/jobs").key(A).send(&past).await;
    let when = httpdate::parse_http_date(limited.header("retry-after").unwrap()).unwrap();
    assert!(when < std::time::SystemTime::now());

    let rising = tight(&[Fault::RateLimitRemainingRises]);
    call(Method::GET, "/v1/jobs").key(A).send(&rising).await;
    let r1 = call(Method::GET, "/v1/jobs").key(A).send(&rising).await;
    let r2 = call(Method::GET, "/v1/jobs").key(A).send(&rising).await;
    assert_eq!(r1.header("x-ratelimit-remaining"), Some("1"));
    assert_eq!(r2.header("x-ratelimit-remaining"), Some("2"));

    let open = tight(&[Fault::NoRateLimit]);
    for _ in 0..5 {
        assert_eq!(
            call(Method::GET, "/v1/jobs")
                .key(A)
                .send(&open)
                .await
                .status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn request_id_and_auth_faults() {
    let reused = app(with_faults(&[Fault::ReusedRequestId]));
    let a = call(Method::GET, "/health").send(&reused).await;
    let b = call(Method::GET, "/v1/jobs").send(&reused).await;
    assert_eq!(a.request_id(), b.request_id());
    assert_eq!(b.body["error"]["request_id"].as_str(), Some(a.request_id()));

    let mismatch = app(with_faults(&[Fault::RequestIdMismatch]));
    let e = call(Method::GET, "/v1/jobs").send(&mismatch).await;
    assert_ne!(e.body["error"]["request_id"].as_str(), Some(e.request_id()));

    let no_header = app(with_faults(&[Fault::NoRequestIdHeader]));
    assert!(call(Method::GET, "/health")
        .send(&no_header)
        .await
        .header("x-request-id")
        .is_none());
    let no_body = app(with_faults(&[Fault::NoRequestIdInBody]));
    assert!(
        call(Method::GET, "/v1/jobs").send(&no_body).await.body["error"]
            .get("request_id")
            .is_none()
    );

    let wrong_code = app(with_faults(&[Fault::AuthWrongCode]));
    assert_envelope(
        &call(Method::GET, "/v1/jobs").send(&wrong_code).await,
        401,
        "unauthorized",
    );
    let plain = app(with_faults(&[Fault::AuthPlainError]));
    assert_eq!(
        call(Method::GET, "/v1/jobs")
            .key("bad")
            .send(&plain)
            .await
            .body,
        json!({"message": "Unauthorized"})
    );
    let forbidden = app(with_faults(&[Fault::Auth403]));
    assert_envelope(
        &call(Method::GET, "/v1/jobs")
            .key("bad")
            .send(&forbidden)
            .await,
        403,
        "invalid_api_key",
    );
    let open = app(with_faults(&[
        Fault::AcceptMissingKey,
        Fault::AcceptInvalidKey,
    ]));
    assert_eq!(
        call(Method::GET, "/v1/jobs").send(&open).await.status,
        StatusCode::OK
    );
    assert_eq!(
        call(Method::GET, "/v1/jobs")
            .key("bad")
            .send(&open)
            .await
            .status,
        StatusCode::OK
    );
    let echo = app(with_faults(&[Fault::EchoKey]));
    assert_eq!(
        call(Method::GET, "/v1/jobs")
            .key(A)
            .send(&echo)
            .await
            .header("x-debug-api-key"),
        Some(A)
    );
    let list = app(with_faults(&[Fault::ListRejectsValidKey]));
    assert_envelope(
        &call(Method::GET, "/v1/jobs").key(A).send(&list).await,
        401,
        "invalid_api_key",
    );
}

#[tokio::test]
async fn job_rendering_faults() {
    let app = app(with_faults(&[
        Fault::JobProgressAsString,
        Fault::JobBadCreatedAt,
        Fault::JobIdMismatch,
        Fault::JobWrongContentType,
        Fault::CompletedWithoutOutput,
        Fault::NotFoundPlain,
        Fault::ListBadShape,
    ]));
    let id = create(&app, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = wait_terminal(&app, A, &id).await;
    assert!(done
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(done.body["progress"], "100");
    assert_eq!(done.body["id"], format!("{id}-x"));
    assert_eq!(done.body["output_url"], Value::Null);
    assert!(done.body["created_at"].as_str().unwrap().contains('/'));
    assert_eq!(
        get_job(&app, A, "job_missing").await.body,
        json!({"detail": "Job not found"})
    );
    let list = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    assert!(list.body.get("jobs").is_none() && list.body["items"].is_array());
}

#[tokio::test]
async fn lifecycle_faults() {
    let app = app(with_faults(&[
        Fault::StatusMovesBackwards,
        Fault::DoubleChargeOnStart,
    ]));
    let id = create(&app, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_terminal(&app, A, &id).await; // first completed read
    assert_eq!(get_job(&app, A, &id).await.body["status"], "completed");
    assert_eq!(get_job(&app, A, &id).await.body["status"], "processing");
    call(Method::POST, &format!("/v1/jobs/{id}/start"))
        .key(A)
        .send(&app)
        .await;
    let summary = call(Method::GET, "/v1/usage/summary?days=1")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(summary.body["total_credits_used"], 60);

    let down = super::app(ServerConfig {
        job_duration: Duration::from_secs(60),
        ..with_faults(&[Fault::ProgressGoesDown, Fault::Start5xxWhenRunning])
    });
    let id = create(&down, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let p1 = get_job(&down, A, &id).await.body["progress"]
        .as_u64()
        .unwrap();
    let p2 = get_job(&down, A, &id).await.body["progress"]
        .as_u64()
        .unwrap();
    assert!(p2 < p1);
    let start = call(Method::POST, &format!("/v1/jobs/{id}/start"))
        .key(A)
        .send(&down)
        .await;
    assert_envelope(&start, 500, "internal_error");

    // However late the reads come, two of them see the job processing, the second lower.
    let instant = super::app(ServerConfig {
        job_duration: Duration::ZERO,
        ..with_faults(&[Fault::ProgressGoesDown])
    });
    let id = create(&instant, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = get_job(&instant, A, &id).await.body;
    let second = get_job(&instant, A, &id).await.body;
    assert_eq!(
        (&first["status"], &second["status"]),
        (&json!("processing"), &json!("processing"))
    );
    assert!(second["progress"].as_u64() < first["progress"].as_u64());
    assert_eq!(get_job(&instant, A, &id).await.body["status"], "completed");
}

#[tokio::test]
async fn request_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let app = app(ServerConfig {
        log_file: Some(path.clone()),
        ..config()
    });
    let created = create(&app, A, json!({"video_url": "https://v.test/a.mp4"})).await;
    let id = created.body["id"].as_str().unwrap();
    let read = get_job(&app, A, id).await;
    let missing = call(Method::GET, "/v1/jobs")
        .key("sk_wrong")
        .send(&app)
        .await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(A) && !text.contains("sk_wrong"),
        "keys must never be logged"
    );
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["request_id"].as_str(), Some(created.request_id()));
    assert_eq!(lines[0]["job_id"], id);
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["status"], 201);
    assert_eq!(lines[1]["request_id"].as_str(), Some(read.request_id()));
    assert_eq!(lines[1]["job_id"], id);
    assert_eq!(lines[1]["path"], format!("/v1/jobs/{id}"));
    assert_eq!(lines[2]["request_id"].as_str(), Some(missing.request_id()));
    assert_eq!(lines[2]["job_id"], Value::Null);
    assert!(lines[2]["time"].as_str().unwrap().ends_with('Z'));
    assert!(lines[2]["duration_ms"].as_f64().unwrap() >= 0.0);

    let quiet_path = dir.path().join("quiet.jsonl");
    let quiet = super::app(ServerConfig {
        log_file: Some(quiet_path.clone()),
        ..with_faults(&[Fault::NoRequestLog])
    });
    call(Method::GET, "/health").send(&quiet).await;
    assert_eq!(std::fs::read_to_string(&quiet_path).unwrap(), "");
}

/// An upload of `payload` in part `file` named `filename`, with the part's own
/// `Content-Type` when given (none, as the vendor's Python SDK sends it, otherwise).
fn upload_request(content_type: Option<&str>, filename: &str, payload: &[u8]) -> Request<Body> {
    let boundary = "XBOUNDARYX";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n").as_bytes(),
    );
    if let Some(content_type) = content_type {
        body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(payload);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Request::post("/v1/uploads")
        .header("x-api-key", A)
        .header("host", HOST)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap()
}

fn multipart(content_type: &str, payload: &[u8]) -> Request<Body> {
    upload_request(Some(content_type), "clip.mp4", payload)
}

/// The raw bytes and type served at an upload's `video_url`.
async fn fetch_upload(app: &Router, video_url: &str) -> (StatusCode, Option<String>, Vec<u8>) {
    let path = video_url.strip_prefix(&format!("http://{HOST}")).unwrap();
    let res = app
        .clone()
        .oneshot(
            Request::get(path)
                .header("host", HOST)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let media = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, media, bytes.to_vec())
}

#[tokio::test]
async fn uploads() {
    let app = app(config());
    // Over axum's 2 MB default body limit, which the upload route lifts.
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let ok = send(&app, multipart("video/mp4", &payload)).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    assert_eq!(ok.body["size"], 3_000_000);
    assert_eq!(ok.body["filename"], "clip.mp4");
    assert!(ok.body["video_id"].as_str().unwrap().starts_with("vid_"));
    let video_url = ok.body["video_url"].as_str().unwrap();
    assert!(video_url.starts_with("http://"));
    let (status, media, bytes) = fetch_upload(&app, video_url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(media.as_deref(), Some("video/mp4"));
    assert!(bytes == payload, "the video_url serves the uploaded bytes");
    // A job made from the upload completes.
    let job = create(&app, A, json!({ "video_url": video_url })).await;
    assert_eq!(job.status, StatusCode::CREATED, "{}", job.body);
    let done = wait_terminal(&app, A, job.body["id"].as_str().unwrap()).await;
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    assert_eq!(done.body["video_url"], video_url);

    assert_envelope(
        &send(&app, multipart("text/plain", b"hi")).await,
        400,
        "invalid_request",
    );
    let mut huge = multipart("video/mp4", b"x");
    huge.headers_mut()
        .insert("content-length", (600u64 * 1024 * 1024).into());
    assert_envelope(&send(&app, huge).await, 400, "invalid_request");
    let not_multipart = call(Method::POST, "/v1/uploads")
        .key(A)
        .json(json!({}))
        .send(&app)
        .await;
    assert_envelope(&not_multipart, 400, "invalid_request");
    let (status, _, _) = fetch_upload(&app, &format!("http://{HOST}/uploads/vid_nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn upload_types_come_from_the_file_name_without_a_part_type() {
    let app = app(config());
    for (content_type, filename, media) in [
        (None, "clip.mp4", "video/mp4"),
        (None, "clip.MOV", "video/quicktime"),
        (Some("application/octet-stream"), "clip.webm", "video/webm"),
        (Some("video/x-msvideo"), "clip", "video/x-msvideo"),
    ] {
        let ok = send(
            &app,
            upload_request(content_type, filename, b"\0\0\0\x08mdat"),
        )
        .await;
        assert_eq!(ok.status, StatusCode::CREATED, "{filename}: {}", ok.body);
        let url = ok.body["video_url"].as_str().unwrap();
        assert_eq!(fetch_upload(&app, url).await.1.as_deref(), Some(media));
    }
    for (content_type, filename) in [(None, "notes.txt"), (Some("text/plain"), "clip.mp4")] {
        let refused = send(&app, upload_request(content_type, filename, b"hi")).await;
        assert_envelope(&refused, 400, "invalid_request");
    }
}

#[tokio::test]
async fn the_upload_limit_is_configurable() {
    let app = app(ServerConfig {
        max_upload_bytes: 1000,
        ..config()
    });
    let at = send(&app, multipart("video/mp4", &[1; 1000])).await;
    assert_eq!(at.status, StatusCode::CREATED, "{}", at.body);
    let over = send(&app, multipart("video/mp4", &[1; 1001])).await;
    assert_envelope(&over, 400, "invalid_request");
    assert!(over.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1000"));
}

#[tokio::test]
async fn upload_faults() {
    let small = |fault| ServerConfig {
        max_upload_bytes: 1000,
        ..with_faults(&[fault])
    };
    let any = app(small(Fault::UploadAnyType));
    let txt = send(&any, upload_request(Some("text/plain"), "notes.txt", b"hi")).await;
    assert_eq!(txt.status, StatusCode::CREATED, "{}", txt.body);

    let part_only = app(small(Fault::UploadTypeFromPartOnly));
    let sdk = send(&part_only, upload_request(None, "clip.mp4", b"x")).await;
    assert_envelope(&sdk, 400, "invalid_request");
    let typed = send(&part_only, multipart("video/mp4", b"x")).await;
    assert_eq!(typed.status, StatusCode::CREATED);

    let bad = app(small(Fault::UploadBadReply));
    let reply = send(&bad, multipart("video/mp4", b"xyz")).await;
    assert_eq!(reply.body["size"], "3");

    let unlimited = app(small(Fault::UploadNoSizeLimit));
    let over = send(&unlimited, multipart("video/mp4", &[1; 5000])).await;
    assert_eq!(over.status, StatusCode::CREATED, "{}", over.body);

    let refused = app(small(Fault::UploadRefused));
    let up = send(&refused, multipart("video/mp4", b"x")).await;
    assert_envelope(&up, 415, "unsupported_media_type");

    let gone = app(small(Fault::UploadUrl404));
    let up = send(&gone, multipart("video/mp4", b"x")).await;
    let url = up.body["video_url"].as_str().unwrap();
    assert_eq!(fetch_upload(&gone, url).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn running_server_on_loopback() {
    let server = RunningServer::start(config(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert!(server.base_url.starts_with("http://127.0.0.1:"));
    assert!(!server.base_url.ends_with('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let res = client
        .post(format!("{}/v1/jobs", server.base_url))
        .header("x-api-key", A)
        .json(&json!({"video_url": "https://v.test/a.mp4"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let job: Value = client
        .get(format!("{}/v1/jobs/{id}", server.base_url))
        .header("x-api-key", A)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let output = job["output_url"].as_str().unwrap();
    assert!(output.starts_with(&server.base_url), "{output}");
    let file = client.get(output).send().await.unwrap();
    assert_eq!(file.status().as_u16(), 200);
    let base = server.base_url.clone();
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .unwrap();
    assert!(client.get(format!("{base}/health")).send().await.is_err());
}

#[test]
fn config_debug_hides_keys() {
    let config = ServerConfig::with_random_keys();
    let shown = format!("{config:?}");
    assert!(config.primary_key.starts_with("sk_live_") && config.primary_key.len() == 40);
    assert!(!shown.contains(&config.primary_key));
    assert!(!shown.contains("sk_live_"));
    assert_ne!(config.second_key, config.broke_key);
}

// ---------------------------------------------------------------------------
// Variants: each one's observable behaviour (the strict suite run against each
// is in tests/variants.rs).

fn with_variants(variants: &[Variant]) -> ServerConfig {
    ServerConfig {
        variants: variants.iter().copied().collect(),
        ..config()
    }
}

/// A server with `variants` whose bucket holds 3 requests and regains 2 per second.
fn tight(variants: &[Variant]) -> Router {
    app(ServerConfig {
        rate_limit: RateLimitConfig {
            capacity: 3,
            refill_per_second: 2.0,
        },
        ..with_variants(variants)
    })
}

/// Sends `n` list requests as `A`, returning the last answer.
async fn list_n(app: &Router, n: usize) -> Answer {
    let mut last = None;
    for _ in 0..n {
        last = Some(call(Method::GET, "/v1/jobs").key(A).send(app).await);
    }
    last.expect("n > 0")
}

const X_RATELIMIT: [&str; 3] = [
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
];
const IETF_RATELIMIT: [&str; 2] = ["ratelimit", "ratelimit-policy"];

fn absent(a: &Answer, names: &[&str]) {
    for name in names {
        assert_eq!(a.header(name), None, "{name} in {:?}", a.headers);
    }
}

#[tokio::test]
async fn retry_after_date_is_never_before_the_retry_instant() {
    let app = app(ServerConfig {
        rate_limit: RateLimitConfig {
            capacity: 1,
            refill_per_second: 0.5,
        },
        ..with_variants(&[Variant::RetryAfterDate])
    });
    let before = std::time::SystemTime::now();
    assert_eq!(list_n(&app, 1).await.status, StatusCode::OK);
    let limited = list_n(&app, 1).await;
    let received = std::time::SystemTime::now();
    assert_envelope(&limited, 429, "rate_limited");
    let value = limited.header("retry-after").unwrap();
    assert!(value.ends_with(" GMT"), "an IMF-fixdate: {value}");
    let date = httpdate::parse_http_date(value).unwrap();
    // The token is back 2 s after the first request; the date rounds that up.
    let back = before + Duration::from_secs(2);
    assert!(date >= back - Duration::from_millis(50), "{value}");
    assert!(date > received, "in the future when it arrives: {value}");
    assert!(date <= received + Duration::from_secs(3), "{value}");
}

#[tokio::test]
async fn ietf_ratelimit_sends_only_the_structured_fields() {
    let app = tight(&[Variant::IetfRatelimit]);
    let ok = list_n(&app, 1).await;
    assert_eq!(ok.header("ratelimit-policy"), Some("\"default\";q=3;w=2"));
    assert_eq!(ok.header("ratelimit"), Some("\"default\";r=2;t=1"));
    absent(&ok, &X_RATELIMIT);
    absent(
        &ok,
        &["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"],
    );
    let limited = list_n(&app, 3).await;
    assert_envelope(&limited, 429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert!(limited
        .header("ratelimit")
        .unwrap()
        .starts_with("\"default\";r=0;t="));
    absent(&limited, &X_RATELIMIT);
}

#[tokio::test]
async fn x_ratelimit_epoch_resets_at_a_unix_time() {
    let app = tight(&[Variant::XRatelimitEpoch]);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let before = now();
    let ok = list_n(&app, 1).await;
    assert_eq!(ok.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(ok.header("x-ratelimit-remaining"), Some("2"));
    let reset: u64 = ok.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!((before..=now() + 2).contains(&reset), "reset {reset}");
    absent(&ok, &IETF_RATELIMIT);
    let limited = list_n(&app, 3).await;
    assert_envelope(&limited, 429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.header("x-ratelimit-remaining"), Some("0"));
    absent(&limited, &IETF_RATELIMIT);
}

#[tokio::test]
async fn both_header_variants_send_both_forms() {
    let app = tight(&[Variant::IetfRatelimit, Variant::XRatelimitEpoch]);
    let ok = list_n(&app, 1).await;
    for name in X_RATELIMIT.iter().chain(&IETF_RATELIMIT) {
        assert!(ok.header(name).is_some(), "{name} missing");
    }
}

#[tokio::test]
async fn created_state_renames_pending_everywhere() {
    let app = app(with_variants(&[Variant::CreatedState]));
    let made = create(
        &app,
        A,
        json!({"video_url": "https://v.test/a.mp4", "auto_start": false}),
    )
    .await;
    assert_eq!(made.body["status"], "created");
    let id = made.body["id"].as_str().unwrap();
    assert_eq!(get_job(&app, A, id).await.body["status"], "created");
    let listed = call(Method::GET, "/v1/jobs?status=created")
        .key(A)
        .send(&app)
        .await;
    assert_eq!(listed.body["jobs"][0]["status"], "created");
    assert_eq!(listed.body["total"], 1);
    let refused = call(Method::GET, "/v1/jobs?status=pending")
        .key(A)
        .send(&app)
        .await;
    assert_envelope(&refused, 400, "invalid_request");
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("pending"), "{message}");
    // Without the variant both names filter.
    let plain = app_with_pending_job().await;
    for name in ["pending", "created"] {
        let path = format!("/v1/jobs?status={name}");
        let page = call(Method::GET, &path).key(A).send(&plain).await;
        assert_eq!(page.body["total"], 1, "{name}");
        assert_eq!(page.body["jobs"][0]["status"], "pending");
    }
}

async fn app_with_pending_job() -> Router {
    let plain = app(config());
    let made = create(
        &plain,
        A,
        json!({"video_url": "https://v.test/a.mp4", "auto_start": false}),
    )
    .await;
    assert_eq!(made.body["status"], "pending");
    plain
}

#[tokio::test]
async fn create_201_gives_a_location_and_start_202() {
    let app = app(with_variants(&[Variant::Create201]));
    let body = json!({"video_url": "https://v.test/a.mp4", "auto_start": false});
    let made = call(Method::POST, "/v1/jobs")
        .key(A)
        .json(body.clone())
        .header("idempotency-key", "k-201")
        .send(&app)
        .await;
    assert_eq!(made.status, StatusCode::CREATED);
    let id = made.body["id"].as_str().unwrap();
    let location = made.header("location").unwrap();
    assert_eq!(location, format!("/v1/jobs/{id}"));
    assert_eq!(get_job(&app, A, id).await.body["id"], id);
    // A replay carries the same Location.
    let replay = call(Method::POST, "/v1/jobs")
        .key(A)
        .json(body)
        .header("idempotency-key", "k-201")
        .send(&app)
        .await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.header("location"), Some(location));
    let start_path = format!("/v1/jobs/{id}/start");
    let started = call(Method::POST, &start_path).key(A).send(&app).await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    assert_eq!(started.body["status"], "processing");
    assert_eq!(started.header("location"), None);
    // Starting again accepts nothing new.
    let again = call(Method::POST, &start_path).key(A).send(&app).await;
    assert_eq!(again.status, StatusCode::OK);
}

/// `2026-12-02T03:04:05.123+00:00`.
fn is_offset_millis(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 29
        && s.ends_with("+00:00")
        && b[10] == b'T'
        && b[19] == b'.'
        && b[20..23].iter().all(u8::is_ascii_digit)
}

#[tokio::test]
async fn offset_timestamps_have_millis_and_an_offset() {
    let app = app(with_variants(&[Variant::OffsetTimestamps]));
    let id = create(&app, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created_at = get_job(&app, A, &id).await.body["created_at"].clone();
    assert!(
        is_offset_millis(created_at.as_str().unwrap()),
        "{created_at}"
    );
    let events = call(Method::GET, "/v1/usage/events")
        .key(A)
        .send(&app)
        .await;
    let event_at = events.body["events"][0]["created_at"].as_str().unwrap();
    assert!(is_offset_millis(event_at), "{event_at}");
}

#[tokio::test]
async fn integer_progress_holds_at_zero_then_rises() {
    let app = app(ServerConfig {
        job_duration: Duration::from_millis(1000),
        ..with_variants(&[Variant::IntegerProgress])
    });
    let id = create(&app, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let early = get_job(&app, A, &id).await;
    assert_eq!(early.body["status"], "processing");
    assert_eq!(early.body["progress"], 0);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = get_job(&app, A, &id).await;
    let progress = later.body["progress"].as_u64().expect("an integer");
    assert!((1..100).contains(&progress), "{}", later.body);
    let mut last = progress;
    loop {
        let job = get_job(&app, A, &id).await;
        let now = job.body["progress"].as_u64().expect("an integer");
        assert!(now >= last, "progress went down: {last} then {now}");
        last = now;
        if job.body["status"] == "completed" {
            assert_eq!(now, 100);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn bare_array_list_answers_the_jobs_alone() {
    let app = app(with_variants(&[Variant::BareArrayList]));
    let empty = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    assert_eq!(empty.body, json!([]));
    let mut ids = Vec::new();
    for i in 0..2 {
        let body = json!({"video_url": format!("https://v.test/{i}.mp4")});
        ids.push(create(&app, A, body).await.body["id"].clone());
    }
    let page = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    let jobs = page.body.as_array().expect("a bare array");
    let got: Vec<&Value> = jobs.iter().map(|j| &j["id"]).collect();
    assert_eq!(got, vec![&ids[1], &ids[0]], "newest first");
    assert!(jobs.iter().all(|j| j["created_at"].is_string()));
}

#[tokio::test]
async fn sliding_window_allows_eight_a_second() {
    // The configured bucket would allow far more: the window replaces it.
    let app = app(ServerConfig {
        rate_limit: RateLimitConfig {
            capacity: 1000,
            refill_per_second: 1000.0,
        },
        ..with_variants(&[Variant::SlidingWindow])
    });
    let eighth = list_n(&app, 8).await;
    assert_eq!(eighth.status, StatusCode::OK);
    assert_eq!(eighth.header("x-ratelimit-limit"), Some("8"));
    assert_eq!(eighth.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        eighth.header("ratelimit-policy"),
        Some("\"default\";q=8;w=1")
    );
    let limited = list_n(&app, 1).await;
    assert_envelope(&limited, 429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.header("ratelimit"), Some("\"default\";r=0;t=1"));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let back = list_n(&app, 1).await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.header("x-ratelimit-remaining"), Some("7"));
}

#[tokio::test]
async fn extra_fields_ride_along_on_every_job_object() {
    let app = app(with_variants(&[Variant::ExtraFields]));
    let id = create(&app, A, json!({"video_url": "https://v.test/a.mp4"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = get_job(&app, A, &id).await.body;
    assert_eq!(job["region"], "eu-west-1");
    assert!(job["meta"].is_object(), "{job}");
    assert!(job.get("queue_position").is_some(), "{job}");
    let page = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    assert!(page.body["jobs"][0]["meta"].is_object());
    // Without the variant the job object has no such fields.
    let plain = app_with_pending_job().await;
    let page = call(Method::GET, "/v1/jobs").key(A).send(&plain).await;
    assert!(page.body["jobs"][0].get("meta").is_none());
}

#[tokio::test]
async fn echo_request_id_adopts_a_sane_client_id() {
    let echoing = app(with_variants(&[Variant::EchoRequestId]));
    let mine = "trace-0123456789abcdef";
    let ok = call(Method::GET, "/v1/jobs")
        .key(A)
        .header("x-request-id", mine)
        .send(&echoing)
        .await;
    assert_eq!(ok.request_id(), mine);
    let missing = call(Method::GET, "/v1/jobs/job_nope")
        .key(A)
        .header("x-request-id", mine)
        .send(&echoing)
        .await;
    assert_envelope(&missing, 404, "job_not_found");
    assert_eq!(missing.request_id(), mine);
    let longest = "r".repeat(128);
    for (sent, adopted) in [
        (longest.as_str(), true),
        (&"r".repeat(129), false),
        ("has space", false),
        ("", false),
    ] {
        let a = call(Method::GET, "/health")
            .header("x-request-id", sent)
            .send(&echoing)
            .await;
        assert_eq!(a.request_id() == sent, adopted, "{sent:?}");
        if !adopted {
            assert!(is_request_id(a.request_id()), "{sent:?}");
        }
    }
    // Without the variant a client id is ignored.
    let plain = app(config());
    let a = call(Method::GET, "/health")
        .header("x-request-id", mine)
        .send(&plain)
        .await;
    assert!(is_request_id(a.request_id()));
}

// ---------------------------------------------------------------------------
// The flat dialect

fn flat() -> ServerConfig {
    ServerConfig {
        dialect: Dialect::Flat,
        ..config()
    }
}

/// A request with the key as the flat dialect takes it, `Authorization: Bearer <key>`.
fn bearer(method: Method, path: &str, key: &str) -> Call<'static> {
    let path: &'static str = Box::leak(path.to_owned().into_boxed_str());
    let value: &'static str = Box::leak(format!("Bearer {key}").into_boxed_str());
    call(method, path).header("authorization", value)
}

#[tokio::test]
async fn flat_auth_errors_and_version_header() {
    let app = app(flat());
    let missing = call(Method::GET, "/v1/jobs").send(&app).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.body, json!({ "error": "Missing API key" }));
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(missing.header("x-api-version"), Some("2"));
    // The standard header is no key here; a wrong key is refused without a request id.
    let standard = call(Method::GET, "/v1/jobs").key(A).send(&app).await;
    assert_eq!(standard.body, json!({ "error": "Missing API key" }));
    let invalid = bearer(Method::GET, "/v1/jobs", "sk_nope").send(&app).await;
    assert_eq!(invalid.body, json!({ "error": "Invalid API key" }));
    let ok = bearer(Method::GET, "/v1/jobs", A).send(&app).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.header("x-api-version"), Some("2"));
    let lower = call(Method::GET, "/v1/jobs")
        .header("authorization", "bearer sk_test_primary")
        .send(&app)
        .await;
    assert_eq!(
        lower.status,
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
    // Other errors are flat too, and carry the request id.
    let unknown = bearer(Method::GET, "/v1/jobs/job_nope/status", A)
        .send(&app)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["error"], "Job not found");
    assert_eq!(
        unknown.body["request_id"].as_str(),
        Some(unknown.request_id())
    );
    assert!(unknown.body.get("code").is_none());
    let health = call(Method::GET, "/health").send(&app).await;
    assert_eq!(health.header("x-api-version"), Some("2"));
    let without = app_with(Dialect::Flat, &[Fault::NoVersionHeader]);
    let res = call(Method::GET, "/health").send(&without).await;
    assert_eq!(res.header("x-api-version"), None);
    // The standard dialect has no version header.
    let standard = super::app(config());
    assert_eq!(
        call(Method::GET, "/health")
            .send(&standard)
            .await
            .header("x-api-version"),
        None
    );
}

fn app_with(dialect: Dialect, faults: &[Fault]) -> Router {
    app(ServerConfig {
        dialect,
        ..with_faults(faults)
    })
}

#[tokio::test]
async fn flat_jobs_read_at_status_through_created_and_uploaded() {
    let app = app(flat());
    let created = bearer(Method::POST, "/v1/jobs", A)
        .json(json!({ "video_url": "https://example.com/a.mp4", "auto_start": false }))
        .send(&app)
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], "created");
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/jobs/{id}/status");
    let read = bearer(Method::GET, &path, A).send(&app).await;
    assert_eq!(read.body["status"], "created");
    // The standard read path is not a route of this dialect.
    let standard = bearer(Method::GET, &format!("/v1/jobs/{id}"), A)
        .send(&app)
        .await;
    assert_eq!(standard.status, StatusCode::NOT_FOUND);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        bearer(Method::GET, &path, A).send(&app).await.body["status"],
        "uploaded"
    );
    let listed = bearer(Method::GET, "/v1/jobs?status=uploaded", A)
        .send(&app)
        .await;
    assert_eq!(listed.body["jobs"][0]["id"], id.as_str());
    let pending = bearer(Method::GET, "/v1/jobs?status=pending", A)
        .send(&app)
        .await;
    assert_eq!(pending.status, StatusCode::BAD_REQUEST);
    let start = format!("/v1/jobs/{id}/start");
    let started = bearer(Method::POST, &start, A)
        .json(json!({}))
        .send(&app)
        .await;
    assert_eq!(started.body["status"], "processing");
    for _ in 0..100 {
        let job = bearer(Method::GET, &path, A).send(&app).await;
        if job.body["status"] == "completed" {
            assert!(job.body["output_url"].is_string());
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("job {id} never finished");
}

#[tokio::test]
async fn flat_rate_limits_and_idempotency_token() {
    let app = app(ServerConfig {
        rate_limit: RateLimitConfig {
            capacity: 2,
            refill_per_second: 1.0,
        },
        ..flat()
    });
    let mut last = None;
    for _ in 0..3 {
        last = Some(bearer(Method::GET, "/v1/jobs", A).send(&app).await);
    }
    let limited = last.unwrap();
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.body["error"]
        .as_str()
        .unwrap()
        .starts_with("Rate limit exceeded"));
    assert_eq!(limited.header("retry-after"), None);
    assert_eq!(limited.header("ratelimit"), None);
    let reset: u64 = limited
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > 1_000_000_000, "an epoch: {reset}");

    let app = super::app(flat());
    let body = json!({ "video_url": "https://example.com/a.mp4", "auto_start": false });
    let first = bearer(Method::POST, "/v1/jobs", A)
        .header("x-idempotency-token", "tok-1")
        .json(body.clone())
        .send(&app)
        .await;
    let again = bearer(Method::POST, "/v1/jobs", A)
        .header("x-idempotency-token", "tok-1")
        .json(body)
        .send(&app)
        .await;
    assert_eq!(first.body["id"], again.body["id"]);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
}

// Webhook deliveries to a receiver on loopback.
mod webhooks;
