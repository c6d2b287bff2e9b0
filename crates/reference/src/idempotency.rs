//! `Idempotency-Key` handling for the two POSTs (IETF draft
//! `draft-ietf-httpapi-idempotency-key-header`).
//!
//! A key is scoped to its tenant. The first request with a key marks it in
//! flight, is handled, and its outcome is stored; a retry with the same
//! fingerprint (route and body) replays that outcome with
//! `Idempotent-Replayed: true`, a retry with another fingerprint is 422, and a
//! retry while the first is still being handled is 409 `idempotency_conflict`.
//!
//! Handling "takes" [`IN_FLIGHT_WINDOW`] so that a concurrent retry can observe
//! the in-flight state (in a real service that is the upstream write); only
//! requests that carry a key pay that delay.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;

use super::context::LogJobId;
use super::error::ApiError;
use super::faults::Fault;
use super::state::App;
use super::Caller;

/// How long a keyed POST stays in flight before it is handled.
pub(crate) const IN_FLIGHT_WINDOW: Duration = Duration::from_millis(200);

/// Longest accepted key, in bytes.
const MAX_KEY_LEN: usize = 255;

/// A successful answer of a POST, kept for replays.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
    /// The job the request created or started, for the request log.
    pub job_id: Option<String>,
    /// A `Location` header (the `create-201` variant), replayed with the rest.
    pub location: Option<String>,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body)).into_response();
        if let Some(value) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            res.headers_mut()
                .insert(axum::http::header::LOCATION, value);
        }
        if let Some(id) = self.job_id {
            res.extensions_mut().insert(LogJobId(id));
        }
        res
    }
}

/// What handling a POST produced.
pub(crate) type Outcome = Result<Reply, ApiError>;

/// Where a key is stored: per tenant, or shared under `idempotency-cross-tenant`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SlotKey {
    scope: Option<usize>,
    key: String,
}

/// What a request looked like, to tell a retry from a reuse of the key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fingerprint {
    route: String,
    body: BodyPrint,
}

/// JSON bodies compare by value (key order and whitespace do not matter),
/// anything else byte for byte.
#[derive(Debug, Clone, PartialEq)]
enum BodyPrint {
    Json(Value),
    Raw(Bytes),
}

impl Fingerprint {
    fn new(route: String, body: &Bytes) -> Fingerprint {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            BodyPrint::Raw(Bytes::new())
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => BodyPrint::Json(v),
                Err(_) => BodyPrint::Raw(body.clone()),
            }
        };
        Fingerprint { route, body }
    }
}

/// A stored key.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    InFlight,
    Done(Fingerprint, Outcome),
}

/// The key from the header, with RFC 8941 string quotes removed.
fn parse_key(headers: &HeaderMap, header: &str) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get(header) else {
        return Ok(None);
    };
    let text = raw
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key must be visible ASCII"))?
        .trim();
    let key = match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner,
        None => text,
    };
    if key.is_empty() {
        return Err(ApiError::invalid("Idempotency-Key must not be empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(ApiError::invalid(format!(
            "Idempotency-Key must be at most {MAX_KEY_LEN} characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// Outcomes worth replaying: successes and final refusals. Validation errors
/// and 5xx release the key so that a corrected or later retry can go through.
fn is_storable(outcome: &Outcome) -> bool {
    match outcome {
        Ok(_) => true,
        Err(e) => matches!(
            e.status,
            StatusCode::PAYMENT_REQUIRED | StatusCode::NOT_FOUND
        ),
    }
}

fn respond(outcome: Outcome, replayed: bool) -> Response {
    let mut res = match outcome {
        Ok(reply) => reply.into_response(),
        Err(e) => e.into_response(),
    };
    if replayed {
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    res
}

/// Removes an in-flight mark if the request is dropped before it finishes
/// (client gone), so the key does not stay blocked forever.
struct InFlightGuard<'a> {
    app: &'a App,
    slot: Option<SlotKey>,
}

impl InFlightGuard<'_> {
    fn finish(mut self, fingerprint: Fingerprint, outcome: &Outcome) {
        if let Some(slot) = self.slot.take() {
            let mut store = self.app.lock();
            if is_storable(outcome) {
                store
                    .idempotency
                    .insert(slot, Entry::Done(fingerprint, outcome.clone()));
            } else {
                store.idempotency.remove(&slot);
            }
        }
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.app.lock().idempotency.remove(&slot);
        }
    }
}

/// Runs `handle` at most once per idempotency key; see the module docs.
/// `route` names the endpoint (it is part of the fingerprint).
pub(crate) async fn run(
    app: &Arc<App>,
    caller: &Caller,
    headers: &HeaderMap,
    route: String,
    body: &Bytes,
    handle: impl FnOnce() -> Outcome,
) -> Response {
    if app.has(Fault::IgnoreIdempotencyKey) {
        return respond(handle(), false);
    }
    let key = match parse_key(headers, app.table().idempotency_header) {
        Ok(Some(key)) => key,
        Ok(None) => return respond(handle(), false),
        Err(e) => return e.into_response(),
    };
    let slot = SlotKey {
        scope: if app.has(Fault::IdempotencyCrossTenant) {
            None
        } else {
            Some(caller.tenant)
        },
        key,
    };
    let fingerprint = Fingerprint::new(route, body);
    {
        let mut store = app.lock();
        match store.idempotency.get(&slot) {
            Some(Entry::InFlight) => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_conflict",
                    "A request with this Idempotency-Key is still being processed",
                )
                .into_response();
            }
            Some(Entry::Done(original, outcome)) => {
                if *original == fingerprint || app.has(Fault::IdempotencyIgnoresBody) {
                    return respond(outcome.clone(), true);
                }
                return ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request",
                    "Idempotency-Key was already used with a different request",
                )
                .into_response();
            }
            None => {
                store.idempotency.insert(slot.clone(), Entry::InFlight);
            }
        }
    }
    let guard = InFlightGuard {
        app,
        slot: Some(slot),
    };
    tokio::time::sleep(IN_FLIGHT_WINDOW).await;
    let outcome = handle();
    guard.finish(fingerprint, &outcome);
    respond(outcome, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn keys_lose_their_quotes() {
        let key = |h: &HeaderMap| parse_key(h, "idempotency-key");
        assert_eq!(key(&HeaderMap::new()), Ok(None));
        assert_eq!(key(&headers("abc")), Ok(Some("abc".into())));
        assert_eq!(key(&headers("\"abc\"")), Ok(Some("abc".into())));
        assert!(key(&headers("\"\"")).is_err());
        assert!(key(&headers(&"x".repeat(300))).is_err());
    }

    #[test]
    fn json_fingerprints_ignore_layout() {
        let a = Fingerprint::new("r".into(), &Bytes::from_static(b"{\"a\":1,\"b\":2}"));
        let b = Fingerprint::new("r".into(), &Bytes::from_static(b"{ \"b\": 2, \"a\": 1 }"));
        let c = Fingerprint::new("r".into(), &Bytes::from_static(b"{\"a\":2}"));
        let d = Fingerprint::new("other".into(), &Bytes::from_static(b"{\"a\":1,\"b\":2}"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_eq!(
            Fingerprint::new("r".into(), &Bytes::from_static(b"  ")),
            Fingerprint::new("r".into(), &Bytes::new())
        );
    }
}
