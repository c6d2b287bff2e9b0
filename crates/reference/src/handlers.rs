//! Route handlers. Each one parses its input into plain values, does its work
//! under the store lock (never across an `.await`), and answers JSON or an
//! [`ApiError`]. Nothing here trusts request data: every extractor rejection is
//! turned into an enveloped 4xx and no input can reach a panic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::auth::unauthorized;
use super::context::LogJobId;
use super::error::ApiError;
use super::faults::Fault;
use super::idempotency::{self, Outcome, Reply};
use super::state::{
    video_seconds, App, Job, Model, OutputFormat, Snapshot, Status, Store, FAILURE_MESSAGE,
};
use super::time;
use super::variants::Variant;
use super::webhooks::spawn_deliveries;
use super::Caller;

/// How long `slow-status-read` stalls a status read.
const SLOW_READ: Duration = Duration::from_millis(2500);

// ---------------------------------------------------------------------------
// Jobs

/// `POST /v1/jobs`: validate, check credits, create, and start unless
/// `auto_start` is false. Idempotent under `Idempotency-Key`.
pub(crate) async fn create_job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejected(&rejection).into_response(),
    };
    let route = "POST /v1/jobs".to_owned();
    let origin = origin(&headers, &uri);
    idempotency::run(&app, &caller, &headers, route, &body, || {
        create_outcome(&app, &caller, &body, &origin)
    })
    .await
}

/// The validated body of a job creation.
struct NewJob {
    video_url: String,
    model: Model,
    output_format: OutputFormat,
    webhook_url: Option<String>,
    auto_start: bool,
}

/// Creates the job; a started job's webhook deliveries begin once the store is unlocked.
fn create_outcome(app: &Arc<App>, caller: &Caller, body: &[u8], origin: &str) -> Outcome {
    let new = parse_new_job(body).map_err(|e| invalid_create(app, body, e))?;
    let cost = if app.has(Fault::ChargeIgnoresDuration) {
        new.model.credits_per_minute()
    } else {
        new.model.job_cost(video_seconds(&new.video_url))
    };
    let mut store = app.lock();
    let credits = store.credits_of(caller.tenant);
    if credits < cost {
        if app.has(Fault::PaymentRequiredCreatesJob) {
            store.insert_job(
                caller.tenant,
                new.video_url,
                new.model,
                new.output_format,
                new.webhook_url,
            );
        }
        return Err(insufficient_credits(cost, credits));
    }
    let id = store.insert_job(
        caller.tenant,
        new.video_url,
        new.model,
        new.output_format,
        new.webhook_url,
    );
    let start = new.auto_start || app.has(Fault::AutoStartIgnored);
    if start {
        store.start(&id, Instant::now(), app.has(Fault::ChargeIgnoresDuration));
    }
    let (status, message) = if app.has(Fault::CreateReplyBadStatus) {
        ("queued", "Job created")
    } else if start {
        ("processing", "Job created and processing started")
    } else {
        (
            app.status_name(Status::Pending, SystemTime::now()),
            "Job created; start it with POST /v1/jobs/{id}/start",
        )
    };
    drop(store);
    if start {
        spawn_deliveries(app, &id, origin);
    }
    Ok(Reply {
        status: StatusCode::CREATED,
        body: json!({ "success": true, "id": id, "status": status, "message": message }),
        location: app
            .variant(Variant::Create201)
            .then(|| format!("/v1/jobs/{id}")),
        job_id: Some(id),
    })
}

/// A refused create as the invalid-request faults answer it: a body that is not JSON as a
/// 500 (`invalid-request-500`), any refusal as a problem document
/// (`invalid-request-problem-json`).
fn invalid_create(app: &App, body: &[u8], error: ApiError) -> ApiError {
    let not_json = serde_json::from_slice::<Value>(body).is_err();
    if app.has(Fault::InvalidRequest500) && not_json {
        return ApiError::internal("Unexpected error while reading the request");
    }
    if app.has(Fault::InvalidRequestProblemJson) && error.code == "invalid_request" {
        return ApiError::problem(error.status, &error.message);
    }
    error
}

fn parse_new_job(body: &[u8]) -> Result<NewJob, ApiError> {
    let obj = json_object(body, false)?;
    let video_url = match obj.get("video_url") {
        Some(Value::String(s)) if is_http_url(s) => s.clone(),
        _ => {
            return Err(ApiError::invalid(
                "video_url is required and must be an absolute http(s) URL",
            ))
        }
    };
    let model = match obj.get("model") {
        None | Some(Value::Null) => Model::Original,
        Some(v) => parse_model(v)?,
    };
    let output_format = match obj.get("output_format") {
        None | Some(Value::Null) => OutputFormat::Webm,
        Some(Value::String(s)) => OutputFormat::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "output_format must be one of: {}",
                names(OutputFormat::ALL.map(OutputFormat::name))
            ))
        })?,
        Some(_) => return Err(ApiError::invalid("output_format must be a string")),
    };
    let auto_start = match obj.get("auto_start") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("auto_start must be a boolean")),
    };
    let webhook_url = parse_webhook_url(&obj)?;
    // bg_type, bg_color, background and text_prompt are accepted and ignored:
    // the reference server renders no pixels.
    Ok(NewJob {
        video_url,
        model,
        output_format,
        webhook_url,
        auto_start,
    })
}

/// An optional `webhook_url`: an absolute http(s) URL. Which hosts are delivered to is
/// decided at delivery (loopback and the allowed hosts), so any host is accepted here.
fn parse_webhook_url(obj: &Map<String, Value>) -> Result<Option<String>, ApiError> {
    match obj.get("webhook_url") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_http_url(s) => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(ApiError::invalid(
            "webhook_url must be an absolute http(s) URL",
        )),
        Some(_) => Err(ApiError::invalid("webhook_url must be a string")),
    }
}

/// `POST /v1/jobs/{job_id}/start`.
///
/// On a pending job: optional `model` and `webhook_url` overrides, credit check (402), charge,
/// and `{"success": true, "id", "status": "processing", "message"}`; the job's webhook
/// deliveries begin.
/// On a job that is already processing or terminal the start is a no-op that
/// never charges again: 200 with `success: true` and the job's *current*
/// status (so a retried start is harmless for clients), rather than a 409.
pub(crate) async fn start_job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejected(&rejection).into_response(),
    };
    let raw_id = path.ok().map(|Path(id)| id);
    let route = format!("POST /v1/jobs/{}/start", raw_id.as_deref().unwrap_or(""));
    let origin = origin(&headers, &uri);
    idempotency::run(&app, &caller, &headers, route, &body, || {
        start_outcome(&app, &caller, raw_id.as_deref(), &body, &origin)
    })
    .await
}

fn start_outcome(
    app: &Arc<App>,
    caller: &Caller,
    raw_id: Option<&str>,
    body: &[u8],
    origin: &str,
) -> Outcome {
    let overrides = parse_start(body)?;
    let mut store = app.lock();
    let id = lookup(app, &store, caller, raw_id)?;
    let Some(job) = store.jobs.get_mut(&id) else {
        return Err(ApiError::job_not_found());
    };
    let snap = app.snapshot(job);
    let owner = job.tenant;
    let created_at = job.created_at;
    if snap.status == Status::Pending {
        if let Some(model) = overrides.model {
            job.model = model;
        }
        let cost = if app.has(Fault::ChargeIgnoresDuration) {
            job.model.credits_per_minute()
        } else {
            job.cost()
        };
        let credits = store.credits_of(owner);
        if credits < cost {
            return Err(insufficient_credits(cost, credits));
        }
        if overrides.webhook_url.is_some() {
            if let Some(job) = store.jobs.get_mut(&id) {
                job.webhook_url = overrides.webhook_url;
            }
        }
        store.start(&id, Instant::now(), app.has(Fault::ChargeIgnoresDuration));
        drop(store);
        spawn_deliveries(app, &id, origin);
        let status = if app.variant(Variant::Create201) {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        return Ok(Reply {
            status,
            body: json!({ "success": true, "id": id, "status": "processing", "message": "Job started" }),
            job_id: Some(id),
            location: None,
        });
    }
    if app.has(Fault::Start5xxWhenRunning) {
        return Err(ApiError::internal("Job could not be started"));
    }
    if app.has(Fault::DoubleChargeOnStart) {
        store.charge(&id, app.has(Fault::ChargeIgnoresDuration));
    }
    Ok(Reply {
        status: StatusCode::OK,
        body: json!({
            "success": true,
            "id": id,
            "status": app.status_name(snap.status, created_at),
            "message": "Job already started; nothing was charged",
        }),
        job_id: Some(id),
        location: None,
    })
}

/// What a start body may change on a pending job.
struct StartOverrides {
    model: Option<Model>,
    webhook_url: Option<String>,
}

/// The optional start body: `{}` or nothing, with an optional `model` and `webhook_url`
/// (the other overrides the SDKs send are accepted and ignored).
fn parse_start(body: &[u8]) -> Result<StartOverrides, ApiError> {
    let obj = json_object(body, true)?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => None,
        Some(v) => Some(parse_model(v)?),
    };
    Ok(StartOverrides {
        model,
        webhook_url: parse_webhook_url(&obj)?,
    })
}

/// `GET /v1/jobs/{job_id}`: the job object of docs/contract.md section 3.
pub(crate) async fn get_job(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let read = app
        .job_reads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if app.has(Fault::SlowStatusRead) && read % 10 == 9 {
        tokio::time::sleep(SLOW_READ).await;
    }
    let raw_id = path.ok().map(|Path(id)| id);
    let origin = origin(&headers, &uri);
    let mut store = app.lock();
    let id = match lookup(&app, &store, &caller, raw_id.as_deref()) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let Some(job) = store.jobs.get_mut(&id) else {
        return ApiError::job_not_found().into_response();
    };
    let mut snap = app.snapshot(job);
    if app.has(Fault::ProgressGoesDown)
        && snap.status == Status::Completed
        && job.reads_processing < 2
    {
        // The job is not let finish before two reads have seen it processing, so the drop is
        // seen however slowly a loaded machine reads it.
        snap = Snapshot {
            status: Status::Processing,
            progress: 90,
            duration_seconds: None,
        };
    }
    if app.has(Fault::ProgressGoesDown) && snap.status == Status::Processing {
        // Odd reads report high, even reads low: the second read goes down.
        job.reads_processing += 1;
        let half = snap.progress / 2;
        snap.progress = if job.reads_processing % 2 == 1 {
            50 + half
        } else {
            half
        };
    }
    if app.has(Fault::StatusMovesBackwards) && snap.status == Status::Completed {
        job.reads_completed += 1;
        if job.reads_completed % 3 == 0 {
            snap = Snapshot {
                status: Status::Processing,
                progress: 100,
                duration_seconds: None,
            };
        }
    }
    if app.has(Fault::ReadCharges) {
        store.charge(&id, app.has(Fault::ChargeIgnoresDuration));
    }
    let Some(job) = store.jobs.get(&id) else {
        return ApiError::job_not_found().into_response();
    };
    let mut body = job_json(&app, job, snap, &origin);
    if app.has(Fault::JobIdMismatch) {
        body["id"] = Value::String(format!("{id}-x"));
    }
    drop(store);
    let mut res = if app.has(Fault::JobWrongContentType) {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body.to_string(),
        )
            .into_response()
    } else {
        Json(body).into_response()
    };
    res.extensions_mut().insert(LogJobId(id));
    res
}

/// `GET /v1/jobs?limit=&offset=&status=`: the caller's jobs, newest first.
pub(crate) async fn list_jobs(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    if app.has(Fault::ListRejectsValidKey) {
        return Err(unauthorized(&app, "invalid_api_key", "Invalid API key"));
    }
    let params = query(&uri);
    let limit = int_param(&params, "limit", 20, 1, 100)?;
    let offset = int_param(&params, "offset", 0, 0, u64::MAX)?;
    let status = match params.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) => Some(app.parse_status_filter(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "status must be one of: {}",
                app.status_filter_names()
            ))
        })?),
    };
    let origin = origin(&headers, &uri);
    let store = app.lock();
    let mut mine: Vec<(&Job, Snapshot)> = store
        .jobs
        .values()
        .filter(|j| j.tenant == caller.tenant)
        .map(|j| (j, app.snapshot(j)))
        .filter(|(_, s)| status.is_none_or(|wanted| s.status == wanted))
        .collect();
    mine.sort_by_key(|(job, _)| std::cmp::Reverse(job.seq));
    let total = mine.len();
    let page: Vec<Value> = mine
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(limit as usize)
        .map(|(job, snap)| job_json(&app, job, snap, &origin))
        .collect();
    let body = if app.has(Fault::ListBadShape) {
        json!({ "items": page, "total": total, "limit": limit, "offset": offset })
    } else if app.variant(Variant::BareArrayList) {
        Value::Array(page)
    } else {
        json!({ "jobs": page, "total": total, "limit": limit, "offset": offset })
    };
    Ok(Json(body).into_response())
}

/// Finds the caller's job for a path id, applying the not-found faults.
fn lookup(
    app: &App,
    store: &Store,
    caller: &Caller,
    raw_id: Option<&str>,
) -> Result<String, ApiError> {
    // An undecodable path segment is treated as a malformed id.
    let id = raw_id.unwrap_or("\u{fffd}");
    if app.has(Fault::MalformedId500) && is_malformed(id) {
        return Err(ApiError::internal("Unexpected error while reading the job"));
    }
    let Some(job) = store.jobs.get(id) else {
        return Err(not_found(app));
    };
    if job.tenant != caller.tenant {
        if app.has(Fault::CrossTenant403) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "This job belongs to another account",
            ));
        }
        if !app.has(Fault::CrossTenantLeak) {
            return Err(not_found(app));
        }
    }
    Ok(job.id.clone())
}

fn not_found(app: &App) -> ApiError {
    if app.has(Fault::NotFound500) {
        ApiError::internal("Unexpected error while reading the job")
    } else if app.has(Fault::NotFoundPlain) {
        ApiError::plain(StatusCode::NOT_FOUND, json!({ "detail": "Job not found" }))
    } else {
        ApiError::job_not_found()
    }
}

fn is_malformed(id: &str) -> bool {
    id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The job object; the rendering faults apply wherever a job is shown (webhook bodies too).
pub(crate) fn job_json(app: &App, job: &Job, snap: Snapshot, origin: &str) -> Value {
    let completed = snap.status == Status::Completed;
    let failed = snap.status == Status::Failed;
    let output_url =
        (completed && !app.has(Fault::CompletedWithoutOutput)).then(|| output_url(origin, job));
    let error = (failed && !app.has(Fault::FailedWithoutError)).then_some(FAILURE_MESSAGE);
    let progress = if app.has(Fault::JobProgressAsString) {
        json!(snap.progress.to_string())
    } else {
        json!(snap.progress)
    };
    let created_at = if app.has(Fault::JobBadCreatedAt) {
        time::european(job.created_at)
    } else {
        timestamp(app, job.created_at)
    };
    let mut body = json!({
        "id": job.id,
        "status": app.status_name(snap.status, job.created_at),
        "progress": progress,
        "output_url": output_url,
        "error": error,
        "created_at": created_at,
        "duration_seconds": snap.duration_seconds,
        "billing_status": if job.charged { "charged" } else { "pending" },
        "model": job.model.name(),
        "output_format": job.output_format.name(),
        "video_url": job.video_url,
        "webhook_url": job.webhook_url,
        "webhook_events": webhook_events(app, job),
    });
    if app.variant(Variant::ExtraFields) {
        if let Some(obj) = body.as_object_mut() {
            let queued = snap.status == Status::Pending;
            obj.insert("queue_position".into(), json!(queued.then_some(1)));
            obj.insert("region".into(), json!("eu-west-1"));
            obj.insert(
                "meta".into(),
                json!({ "engine": "reference", "attempt": 1, "tags": ["sandbox"] }),
            );
        }
    }
    body
}

/// The settled deliveries, or null for a job without a `webhook_url`; an object of each
/// event's state under `webhook-events-map`.
fn webhook_events(app: &App, job: &Job) -> Value {
    if job.webhook_url.is_none() && job.webhook_events.is_empty() {
        return Value::Null;
    }
    if app.variant(Variant::WebhookEventsMap) {
        let by_event: Map<String, Value> = job
            .webhook_events
            .iter()
            .map(|r| (r.event.name().to_owned(), json!(r.outcome.name())))
            .collect();
        return Value::Object(by_event);
    }
    Value::Array(job.webhook_events.iter().map(|r| r.to_json()).collect())
}

/// A timestamp as the server writes it (`offset-timestamps` changes the form).
fn timestamp(app: &App, t: SystemTime) -> String {
    if app.variant(Variant::OffsetTimestamps) {
        time::rfc3339_offset_millis(t)
    } else {
        time::rfc3339(t)
    }
}

fn output_url(origin: &str, job: &Job) -> String {
    format!(
        "{origin}/files/{}.{}",
        job.id,
        job.output_format.extension()
    )
}

// ---------------------------------------------------------------------------
// Usage

/// `GET /v1/usage/summary?days=1..90`: charges per UTC day, oldest day first.
pub(crate) async fn usage_summary(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let days = int_param(&query(&uri), "days", 30, 1, 90).map_err(|e| {
        if app.has(Fault::UsageDays500) {
            ApiError::internal("Unexpected error while reading usage")
        } else {
            e
        }
    })?;
    let now = SystemTime::now();
    let dates: Vec<String> = (0..days)
        .rev()
        .map(|back| {
            time::date(
                now.checked_sub(Duration::from_secs(back * 86_400))
                    .unwrap_or(now),
            )
        })
        .collect();
    let store = app.lock();
    let mut per_day: HashMap<String, (u64, u64)> = HashMap::new();
    for event in store.events.iter().filter(|e| e.tenant == caller.tenant) {
        let day = per_day.entry(time::date(event.created_at)).or_default();
        day.0 += event.credits;
        day.1 += 1;
    }
    let daily: Vec<Value> = dates
        .iter()
        .map(|d| {
            let (credits, jobs) = per_day.get(d).copied().unwrap_or_default();
            json!({ "date": d, "credits_used": credits, "jobs": jobs })
        })
        .collect();
    let (credits, jobs) = dates
        .iter()
        .filter_map(|d| per_day.get(d))
        .fold((0, 0), |acc, (c, j)| (acc.0 + c, acc.1 + j));
    if app.has(Fault::UsageBadShape) {
        return Ok(Json(Value::Array(daily)));
    }
    Ok(Json(json!({
        "days": days,
        "total_credits_used": credits,
        "total_jobs": jobs,
        "credits_remaining": store.credits_of(caller.tenant),
        "daily": daily,
    })))
}

/// `GET /v1/usage/events?limit=1..100`: the caller's charges, newest first.
pub(crate) async fn usage_events(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let limit = int_param(&query(&uri), "limit", 20, 1, 100)?;
    let store = app.lock();
    let events: Vec<Value> = store
        .events
        .iter()
        .rev()
        .filter(|e| e.tenant == caller.tenant)
        .take(limit as usize)
        .map(|e| {
            json!({
                "id": e.id,
                "job_id": (!app.has(Fault::UsageNoJobEvent)).then_some(&e.job_id),
                "type": "charge",
                "credits": e.credits,
                "created_at": timestamp(&app, e.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "events": events, "limit": limit })))
}

// ---------------------------------------------------------------------------
// Public routes (no key)

/// `GET /health`.
pub(crate) async fn health(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    if app.has(Fault::HealthNeedsKey) && !headers.contains_key("x-api-key") {
        return Err(unauthorized(&app, "missing_api_key", "Missing API key"));
    }
    if app.has(Fault::HealthBadShape) {
        return Ok(Json(json!({ "status": "ok" })));
    }
    Ok(Json(json!({
        "status": "healthy",
        "checks": { "api": "ok", "runpod_configured": true, "r2_configured": true },
    })))
}

/// `GET /api/pricing`.
pub(crate) async fn pricing(State(app): State<Arc<App>>) -> Json<Value> {
    let per_minute: Map<String, Value> = Model::ALL
        .into_iter()
        .map(|m| {
            let rate = if m == Model::Pro && app.has(Fault::PricingWrongRate) {
                120
            } else {
                m.credits_per_minute()
            };
            (m.name().to_owned(), json!(rate))
        })
        .collect();
    Json(json!({
        "model_pricing_credits_per_minute": per_minute,
        "packages": [
            { "id": "starter", "credits": 1_000, "price_usd": 10.0 },
            { "id": "growth", "credits": 5_000, "price_usd": 45.0 },
            { "id": "scale", "credits": 20_000, "price_usd": 160.0 },
        ],
    }))
}

/// `GET /api/download/{job_id}`: any tenant's job, by id alone.
pub(crate) async fn download(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let id = path
        .map(|Path(id)| id)
        .map_err(|_| ApiError::job_not_found())?;
    let store = app.lock();
    let job = store.jobs.get(&id).ok_or_else(ApiError::job_not_found)?;
    if app.snapshot(job).status != Status::Completed {
        if app.has(Fault::DownloadBeforeCompletion200) {
            return Ok(Json(json!({
                "success": true,
                "download_url": null,
                "output_format": job.output_format.name(),
            })));
        }
        return Err(ApiError::invalid("Job not completed"));
    }
    let mut url = output_url(&origin(&headers, &uri), job);
    if app.has(Fault::DownloadUrl404) {
        // A file that was never stored: the same route, another name.
        url = url.replacen("/files/", "/files/missing-", 1);
    }
    Ok(Json(json!({
        "success": true,
        "download_url": url,
        "output_format": job.output_format.name(),
    })))
}

/// `GET|HEAD /files/{job_id}.{ext}`: a few bytes standing in for the output.
pub(crate) async fn file(
    State(app): State<Arc<App>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "File not found");
    let name = path.map(|Path(n)| n).map_err(|_| missing())?;
    let (id, ext) = name.rsplit_once('.').ok_or_else(missing)?;
    let store = app.lock();
    let job = store.jobs.get(id).ok_or_else(missing)?;
    if job.output_format.extension() != ext || app.snapshot(job).status != Status::Completed {
        return Err(missing());
    }
    let format = job.output_format;
    let mut res = (
        [(header::CONTENT_TYPE, format.content_type())],
        format.sample_bytes(),
    )
        .into_response();
    res.extensions_mut().insert(LogJobId(job.id.clone()));
    Ok(res)
}

// ---------------------------------------------------------------------------
// Fallbacks

/// Unknown routes: 404 with the envelope. A path under `/v1/jobs/` that no
/// route matched (e.g. an id containing `/`) is an unknown job.
pub(crate) async fn fallback(method: Method, uri: Uri) -> ApiError {
    if uri.path().starts_with("/v1/jobs/") {
        return ApiError::job_not_found();
    }
    let path: String = uri.path().chars().take(200).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("No route for {method} {path}"),
    )
}

/// A known path with the wrong method: 405 with the envelope.
pub(crate) async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("Method {method} is not allowed on this path"),
    )
}

// ---------------------------------------------------------------------------
// Helpers

/// `http://{Host}`: the origin the client used, for absolute URLs.
pub(crate) fn origin(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("http://{host}")
}

/// Query parameters; a repeated name keeps its last value.
fn query(uri: &Uri) -> HashMap<String, String> {
    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// An integer query parameter within `min..=max`, else 400 `invalid_request`.
fn int_param(
    params: &HashMap<String, String>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    let Some(raw) = params.get(name) else {
        return Ok(default);
    };
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| {
            if max == u64::MAX {
                ApiError::invalid(format!("{name} must be an integer of at least {min}"))
            } else {
                ApiError::invalid(format!("{name} must be an integer from {min} to {max}"))
            }
        })
}

/// Parses a JSON object body; an empty body is `{}` when `empty_ok`.
fn json_object(body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(Map::new())
        } else {
            Err(ApiError::invalid(
                "request body must be a JSON object with video_url",
            ))
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(ApiError::invalid("request body must be a JSON object")),
        Err(e) => Err(ApiError::invalid(format!(
            "request body is not valid JSON: {e}"
        ))),
    }
}

fn parse_model(v: &Value) -> Result<Model, ApiError> {
    v.as_str().and_then(Model::parse).ok_or_else(|| {
        ApiError::invalid(format!(
            "model must be one of: {}",
            names(Model::ALL.map(Model::name))
        ))
    })
}

fn insufficient_credits(cost: u64, credits: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        "insufficient_credits",
        format!("Insufficient credits: this job costs {cost}, {credits} left"),
    )
}

/// An unreadable or oversized body, with the status axum chose (400/413/...).
fn body_rejected(rejection: &BytesRejection) -> ApiError {
    ApiError::new(
        rejection.status(),
        "invalid_request",
        format!("could not read the request body: {}", rejection.body_text()),
    )
}

/// True for an absolute http(s) URL.
fn is_http_url(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

fn names<const N: usize>(items: [&str; N]) -> String {
    items.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_ids() {
        assert!(!is_malformed("job_abcDEF123-x"));
        assert!(is_malformed(&"a".repeat(65)));
        assert!(is_malformed("job/../x"));
        assert!(is_malformed("job é"));
    }

    #[test]
    fn int_params_are_bounded() {
        let mut p = HashMap::new();
        assert_eq!(int_param(&p, "limit", 20, 1, 100), Ok(20));
        p.insert("limit".into(), "1000".into());
        assert!(int_param(&p, "limit", 20, 1, 100).is_err());
        p.insert("limit".into(), "-1".into());
        assert!(int_param(&p, "limit", 20, 1, 100).is_err());
        p.insert("limit".into(), "7".into());
        assert_eq!(int_param(&p, "limit", 20, 1, 100), Ok(7));
    }
}
