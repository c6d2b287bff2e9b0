//! The outermost middleware: request ids, error envelopes and the request log.
//!
//! Every response, whatever produced it (a handler, the auth layer, a
//! fallback), passes through [`request_context`], which
//! - gives it a fresh `req_<24 hex>` id in `X-Request-Id` (under the
//!   `echo-request-id` variant, the client's own `X-Request-Id` when sane),
//! - renders a pending [`ErrorInfo`] into the error envelope with the same id,
//! - writes one JSON line to the request log and emits the same fields through
//!   `tracing`. The API key is never logged.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};

use super::dialect::ErrorBody;
use super::error::{ApiError, ErrorInfo};
use super::faults::Fault;
use super::state::{new_request_id, App};
use super::time;
use super::variants::Variant;

/// The response header carrying the request id.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// Response extension naming the job a request created or touched, for the log.
#[derive(Debug, Clone)]
pub(crate) struct LogJobId(pub String);

/// See the module docs.
pub(crate) async fn request_context(
    State(app): State<Arc<App>>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let request_id = echoed_request_id(&app, req.headers()).unwrap_or_else(|| app.request_id());

    let mut res = next.run(req).await;

    let is_error = !res.status().is_success();
    let header_id = if is_error && app.has(Fault::RequestIdMismatch) {
        new_request_id()
    } else {
        request_id.clone()
    };
    let table = app.table();
    if let Some(info) = res.extensions_mut().remove::<ErrorInfo>() {
        // The flat dialect's refusals carry no request id in their body.
        let flat_refusal =
            table.error_body == ErrorBody::Flat && res.status() == StatusCode::UNAUTHORIZED;
        let body_id =
            (!app.has(Fault::NoRequestIdInBody) && !flat_refusal).then_some(request_id.as_str());
        let body = ApiError::body(&info, body_id, table.error_body).to_string();
        res.headers_mut().remove(header::CONTENT_LENGTH);
        *res.body_mut() = Body::from(body);
    }
    if res.headers().contains_key(header::WWW_AUTHENTICATE) {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(table.challenge),
        );
    }
    if let Some((name, value)) = table.version_header {
        if !app.has(Fault::NoVersionHeader) {
            res.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    if !app.has(Fault::NoRequestIdHeader) {
        if let Ok(value) = HeaderValue::from_str(&header_id) {
            res.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
    }

    let job_id = res
        .extensions()
        .get::<LogJobId>()
        .map(|j| j.0.clone())
        .or_else(|| job_id_in_path(&path));
    let status = res.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        method = %method,
        path = %path,
        status,
        request_id = %request_id,
        job_id = job_id.as_deref().unwrap_or("-"),
        duration_ms,
        "request"
    );
    if let Some(log) = &app.log {
        if !app.has(Fault::NoRequestLog) {
            let mut line = json!({
                "time": time::rfc3339_millis(SystemTime::now()),
                "method": method,
                "path": path,
                "status": status,
                "request_id": request_id,
                "job_id": job_id,
                "duration_ms": (duration_ms * 1000.0).round() / 1000.0,
            });
            if header_id != request_id {
                // Keep both ids findable when the header one differs (a fault).
                if let Some(obj) = line.as_object_mut() {
                    obj.insert("header_request_id".into(), Value::String(header_id));
                }
            }
            log.write(&line);
        }
    }
    res
}

/// Longest client request id the `echo-request-id` variant adopts.
const MAX_ECHOED_ID_LEN: usize = 128;

/// The client's `X-Request-Id` under `echo-request-id`, when it is 1 to 128
/// visible ASCII characters (anything else gets a generated id, so that no
/// request can put odd bytes into headers, bodies or the log).
fn echoed_request_id(app: &App, headers: &HeaderMap) -> Option<String> {
    if !app.variant(Variant::EchoRequestId) {
        return None;
    }
    let id = headers.get(REQUEST_ID_HEADER)?.as_bytes();
    let sane = (1..=MAX_ECHOED_ID_LEN).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic);
    sane.then(|| String::from_utf8_lossy(id).into_owned())
}

/// The job id in a path that names one, e.g. `/v1/jobs/{id}/start`.
fn job_id_in_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = match segments.as_slice() {
        ["v1", "jobs", id] | ["v1", "jobs", id, "start" | "status"] | ["api", "download", id] => {
            *id
        }
        ["files", name] => name.rsplit_once('.').map_or(*name, |(stem, _)| stem),
        _ => return None,
    };
    (!id.is_empty()).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::job_id_in_path;

    #[test]
    fn finds_job_ids_in_paths() {
        assert_eq!(job_id_in_path("/v1/jobs/job_a").as_deref(), Some("job_a"));
        assert_eq!(
            job_id_in_path("/v1/jobs/job_a/start").as_deref(),
            Some("job_a")
        );
        assert_eq!(
            job_id_in_path("/api/download/job_b").as_deref(),
            Some("job_b")
        );
        assert_eq!(
            job_id_in_path("/files/job_c.webm").as_deref(),
            Some("job_c")
        );
        assert_eq!(job_id_in_path("/v1/jobs"), None);
        assert_eq!(job_id_in_path("/v1/jobs/"), None);
        assert_eq!(job_id_in_path("/health"), None);
    }
}
