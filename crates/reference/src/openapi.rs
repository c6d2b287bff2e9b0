//! `GET /openapi.json`: the contract the reference server implements, as an OpenAPI 3.1
//! document a client developer (or `apiconform --openapi`) can read. Written by hand beside
//! the handlers; `tests/openapi.rs` proves its schemas agree with the default suite's.

use axum::http::header;
use axum::response::IntoResponse;

/// The document as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /openapi.json` (no key needed).
pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
