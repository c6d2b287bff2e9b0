//! API-key authentication and per-key rate limiting for every `/v1/*` path.
//!
//! [`keyed`] is a router-wide layer that acts only on paths under `/v1`, so
//! that unknown `/v1` routes and wrong methods are authenticated and limited
//! like real ones. A valid key becomes a [`Caller`] request extension; the
//! handlers never look at the header themselves. Requests without a valid key
//! are refused before they touch a bucket, so they are never rate limited.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::dialect::RateHeaders;
use super::error::ApiError;
use super::faults::Fault;
use super::ratelimit::Decision;
use super::state::App;
use super::time;
use super::variants::Variant;
use super::Caller;

/// See the module docs.
pub(crate) async fn keyed(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path != "/v1" && !path.starts_with("/v1/") {
        return next.run(req).await;
    }
    let submitted = req.headers().get(app.table().key_header).cloned();
    let echo = app.has(Fault::EchoKey).then(|| submitted.clone()).flatten();
    let is_status_read = is_status_read(req.method(), path, app.table().status_suffix);

    let caller = match authenticate(&app, req.headers()) {
        Ok(caller) => caller,
        Err(refusal) => return with_echo(refusal.into_response(), echo),
    };

    let decision = app.lock_limiter().take(
        &caller.bucket_key,
        Instant::now(),
        !app.has(Fault::NoRateLimit),
    );
    let never_recovers =
        app.has(Fault::RateLimitNeverRecovers) && decision.ever_limited && is_status_read;
    let mut res = if !decision.allowed || never_recovers {
        let shown = Decision {
            remaining: 0,
            ..decision
        };
        let mut res = limited(&app).into_response();
        add_rate_headers(&app, res.headers_mut(), &shown, true);
        res
    } else {
        req.extensions_mut().insert(caller);
        let mut res = next.run(req).await;
        add_rate_headers(&app, res.headers_mut(), &decision, false);
        res
    };
    if !decision.allowed && app.has(Fault::RateLimitRemainingRises) {
        let rising = decision.limited_streak.to_string();
        if res.headers().contains_key("x-ratelimit-remaining") {
            set(res.headers_mut(), "x-ratelimit-remaining", &rising);
        }
        if res.headers().contains_key("ratelimit") {
            let value = format!("\"default\";r={rising};t={}", decision.reset_secs());
            set(res.headers_mut(), "ratelimit", &value);
        }
    }
    with_echo(res, echo)
}

/// Resolves the key to a tenant, or the refusal to send (auth faults apply).
fn authenticate(app: &App, headers: &HeaderMap) -> Result<Caller, ApiError> {
    // A key that is not valid UTF-8 cannot match any tenant: it is "invalid".
    let table = app.table();
    let key = headers
        .get(table.key_header)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_owned())
        .map(|v| without_prefix(&v, table.key_prefix.trim_end()).to_owned())
        .filter(|k| !k.is_empty());
    let primary = || Caller {
        tenant: 0,
        bucket_key: app.config.primary_key.clone(),
    };
    let Some(key) = key else {
        if app.has(Fault::AcceptMissingKey) {
            return Ok(primary());
        }
        return Err(unauthorized(
            app,
            "missing_api_key",
            table.missing_key_message,
        ));
    };
    if let Some(tenant) = app.lock().tenant_of(&key) {
        return Ok(Caller {
            tenant,
            bucket_key: key,
        });
    }
    if app.has(Fault::AcceptInvalidKey) {
        return Ok(primary());
    }
    if app.has(Fault::Auth403) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_api_key",
            table.invalid_key_message,
        ));
    }
    Err(unauthorized(
        app,
        "invalid_api_key",
        table.invalid_key_message,
    ))
}

/// `value` without its scheme `prefix` (`Bearer`, any case); a value with another scheme is
/// kept whole, so it matches no key.
fn without_prefix<'v>(value: &'v str, prefix: &str) -> &'v str {
    if prefix.is_empty() {
        return value;
    }
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case(prefix) => rest.trim(),
        _ if value.eq_ignore_ascii_case(prefix) => "",
        _ => value,
    }
}

/// A 401 with the documented code, or its faulty variants.
pub(crate) fn unauthorized(app: &App, code: &'static str, message: &str) -> ApiError {
    if app.has(Fault::AuthPlainError) {
        return ApiError::plain(
            StatusCode::UNAUTHORIZED,
            json!({ "message": "Unauthorized" }),
        );
    }
    let code = if app.has(Fault::AuthWrongCode) {
        "unauthorized"
    } else {
        code
    };
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// The refusal for an empty bucket: 429, or 503 under `burst-5xx`.
fn limited(app: &App) -> ApiError {
    if app.has(Fault::Burst5xx) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_error",
            "Service temporarily unavailable",
        );
    }
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Rate limit exceeded: slow down and retry later",
    )
}

/// `X-RateLimit-*`, the IETF draft's `RateLimit`/`RateLimit-Policy`, and on a
/// refusal `Retry-After`. The `ietf-ratelimit` and `x-ratelimit-epoch`
/// variants each keep only their own form (both when both are on).
fn add_rate_headers(app: &App, headers: &mut HeaderMap, d: &Decision, refused: bool) {
    if app.has(Fault::NoRateLimitHints) {
        return;
    }
    let (limit, window) = {
        let limiter = app.lock_limiter();
        (limiter.limit(), limiter.window_secs())
    };
    let dialect_epoch_only = app.table().rate_headers == RateHeaders::EpochOnly;
    let ietf_only = app.variant(Variant::IetfRatelimit) && !dialect_epoch_only;
    let epoch_only = app.variant(Variant::XRatelimitEpoch) || dialect_epoch_only;
    let default_forms = !ietf_only && !epoch_only;
    if default_forms || epoch_only {
        let reset = if epoch_only {
            time::unix_secs_ceil(SystemTime::now() + d.reset_in)
        } else {
            d.reset_secs()
        };
        set(headers, "x-ratelimit-limit", &limit.to_string());
        set(headers, "x-ratelimit-remaining", &d.remaining.to_string());
        set(headers, "x-ratelimit-reset", &reset.to_string());
    }
    if default_forms || ietf_only {
        set(
            headers,
            "ratelimit-policy",
            &format!("\"default\";q={limit};w={window}"),
        );
        set(
            headers,
            "ratelimit",
            &format!("\"default\";r={};t={}", d.remaining, d.reset_secs()),
        );
    }
    if refused && !dialect_epoch_only {
        let retry_after = if app.has(Fault::RetryAfterInPast) {
            let past = SystemTime::now()
                .checked_sub(Duration::from_secs(3600))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            httpdate::fmt_http_date(past)
        } else if app.variant(Variant::RetryAfterDate) {
            time::http_date_ceil(SystemTime::now() + d.retry_in)
        } else {
            d.retry_after_secs().max(1).to_string()
        };
        set(headers, "retry-after", &retry_after);
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

/// Adds `X-Debug-Api-Key` under the `echo-key` fault.
fn with_echo(mut res: Response, echo: Option<HeaderValue>) -> Response {
    if let Some(key) = echo {
        res.headers_mut().insert("x-debug-api-key", key);
    }
    res
}

/// `GET /v1/jobs/{id}` plus the dialect's `suffix` (the route `rate-limit-never-recovers`
/// keeps refusing).
fn is_status_read(method: &Method, path: &str, suffix: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && path
            .strip_prefix("/v1/jobs/")
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}
