//! The error envelope and the type every handler returns on failure.
//!
//! Handlers cannot see the request id, so an [`ApiError`] response carries its
//! code and message as an [`ErrorInfo`] response extension; the request-context
//! middleware (see `context.rs`) writes the final
//! `{"error": {"code", "message", "request_id"}}` body with the same id it puts
//! in the `X-Request-Id` header. A "plain" error (used only by faults that drop
//! the envelope) carries its body as is and no extension.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::dialect::ErrorBody;

const JSON: &str = "application/json";

/// Code and message of an error response, waiting for its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
}

/// A non-2xx answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// When set, this body is sent verbatim instead of the envelope.
    pub plain: Option<Value>,
    /// The media type of a plain body (an RFC 9457 problem is `application/problem+json`).
    pub media_type: &'static str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            plain: None,
            media_type: JSON,
        }
    }

    /// 400 `invalid_request`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 `job_not_found`, "Job not found": unknown job or another tenant's.
    pub(crate) fn job_not_found() -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "job_not_found", "Job not found")
    }

    /// 500 `internal_error`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    /// An error whose body is `body` rather than the envelope.
    pub(crate) fn plain(status: StatusCode, body: Value) -> Self {
        ApiError {
            status,
            code: "",
            message: String::new(),
            plain: Some(body),
            media_type: JSON,
        }
    }

    /// An RFC 9457 problem (`application/problem+json`) instead of the envelope, as some
    /// mock servers answer: the `invalid-request-problem-json` fault.
    pub(crate) fn problem(status: StatusCode, detail: &str) -> Self {
        let body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail,
        });
        ApiError {
            media_type: "application/problem+json",
            ..ApiError::plain(status, body)
        }
    }

    /// The error body in the dialect's `shape`, for a given request id (`None` leaves the
    /// field out).
    pub(crate) fn body(info: &ErrorInfo, request_id: Option<&str>, shape: ErrorBody) -> Value {
        match shape {
            ErrorBody::Envelope => ApiError::envelope(info, request_id),
            ErrorBody::Flat => {
                let mut body = json!({ "error": info.message });
                if let (Some(id), Some(obj)) = (request_id, body.as_object_mut()) {
                    obj.insert("request_id".into(), Value::String(id.to_owned()));
                }
                body
            }
        }
    }

    /// The envelope body for a given request id (`None` leaves the field out).
    pub(crate) fn envelope(info: &ErrorInfo, request_id: Option<&str>) -> Value {
        let mut error = json!({ "code": info.code, "message": info.message });
        if let (Some(id), Some(obj)) = (request_id, error.as_object_mut()) {
            obj.insert("request_id".into(), Value::String(id.to_owned()));
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (body, info) = match self.plain {
            Some(body) => (body, None),
            None => {
                let info = ErrorInfo {
                    code: self.code,
                    message: self.message,
                };
                // Provisional body; the context middleware rewrites it with the id.
                (ApiError::envelope(&info, None), Some(info))
            }
        };
        let mut res = (self.status, body.to_string()).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.media_type),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("ApiKey"));
        }
        if let Some(info) = info {
            res.extensions_mut().insert(info);
        }
        res
    }
}
