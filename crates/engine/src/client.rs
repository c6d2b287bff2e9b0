//! The one HTTP client every request of a run goes through ([`HttpClient`]).
//!
//! It adds the credential a request asks for, paces requests under the target's rate limit,
//! backs off and retries on an unexpected 429, applies timeouts, reads bodies up to a cap,
//! and records every exchange in the [`RunRecord`] with the keys masked.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderName, HeaderValue};
use reqwest::Method;
use serde_json::Value;

use crate::hints::{self, Backoff};
use crate::lanes::{Lane, LaneTarget};
use crate::links;
use crate::pacing::Pacer;
use crate::record::{Exchange, PartSummary, RunRecord, WaitClock};
use crate::secrets::Secrets;
use crate::suite::{Credential, Settings};

/// What every request of the run says it is.
const USER_AGENT: &str = concat!("apiconform/", env!("CARGO_PKG_VERSION"));

/// How many bytes of a body are kept in the run record.
const BODY_EXCERPT_BYTES: usize = 2048;

/// What the client needs to know about the target and the keys. Its `Debug` shows which
/// keys are set, never their values.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub primary_key: Option<String>,
    pub second_key: Option<String>,
    /// A key whose tenant has no credits (`--broke-key`).
    pub broke_key: Option<String>,
    /// Overrides the suite's pacing (`--rate`).
    pub requests_per_second: Option<f64>,
    /// A per-run id sent as `X-Apiconform-Run-Id`, so providers can find the test traffic.
    pub run_id: String,
    /// The most requests the whole run may send (`--max-requests`).
    pub max_requests: u64,
    /// The most requests per second the whole run may send, the burst included (`--max-rate`).
    pub max_rate: f64,
    /// Say on stderr when a request waits out a 429 (a person is watching a terminal).
    pub progress: bool,
    /// Headers sent on every request to the target (`-H`, `--secret-header`).
    pub extra_headers: Vec<ExtraHeader>,
    /// Extra roots, a client certificate, `--insecure`.
    pub tls: crate::tls::TlsOptions,
    /// The secret webhook deliveries are signed with (`--webhook-secret`): masked like a key,
    /// and used to verify each delivery's signature.
    pub webhook_secret: Option<String>,
}

/// A header the user adds to every request to the target (a gateway's token, a tenant
/// header), never to another origin. A secret one is masked like a key.
#[derive(Clone)]
pub struct ExtraHeader {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

impl ExtraHeader {
    /// `Name: value` as typed on the command line, or what is wrong with it.
    pub fn parse(text: &str, secret: bool) -> Result<ExtraHeader, String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| "expected `Name: value`".to_string())?;
        let (name, value) = (name.trim(), value.trim());
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`{name}` is not a valid header name"))?;
        HeaderValue::from_str(value)
            .map_err(|_| format!("the value of `{name}` has characters a header cannot carry"))?;
        Ok(ExtraHeader {
            name: name.to_string(),
            value: value.to_string(),
            secret,
        })
    }
}

impl std::fmt::Debug for ExtraHeader {
    /// A secret header's value is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.secret {
            crate::secrets::header_placeholder(&self.name)
        } else {
            self.value.clone()
        };
        write!(f, "{}: {value}", self.name)
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("base_url", &self.base_url)
            .field(
                "primary_key",
                &self.primary_key.as_ref().map(|_| "$API_KEY"),
            )
            .field(
                "second_key",
                &self.second_key.as_ref().map(|_| "$SECOND_API_KEY"),
            )
            .field(
                "broke_key",
                &self.broke_key.as_ref().map(|_| "$BROKE_API_KEY"),
            )
            .field("requests_per_second", &self.requests_per_second)
            .field("max_requests", &self.max_requests)
            .field("max_rate", &self.max_rate)
            .field("extra_headers", &self.extra_headers)
            .field("tls", &self.tls)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "$WEBHOOK_SECRET"),
            )
            .finish_non_exhaustive()
    }
}

impl ClientConfig {
    /// A configuration with the default budget and ceiling.
    pub fn new(base_url: impl Into<String>, primary_key: Option<String>) -> ClientConfig {
        ClientConfig {
            base_url: base_url.into(),
            primary_key,
            second_key: None,
            broke_key: None,
            requests_per_second: None,
            run_id: format!("{:016x}", rand::random::<u64>()),
            max_requests: DEFAULT_MAX_REQUESTS,
            max_rate: DEFAULT_MAX_RATE,
            progress: false,
            extra_headers: Vec::new(),
            tls: crate::tls::TlsOptions::default(),
            webhook_secret: None,
        }
    }
}

/// Default `--max-requests`: the default suite sends about 450 against a conforming server.
pub const DEFAULT_MAX_REQUESTS: u64 = 1000;
/// Default `--max-rate`, requests per second for the whole run.
pub const DEFAULT_MAX_RATE: f64 = 100.0;

/// How one request is sent.
#[derive(Clone, Copy, Debug)]
pub struct SendOptions {
    /// Wait for the pacer first. Only the rate-limit burst turns this off.
    pub paced: bool,
    /// Wait out an unexpected 429 as the server hints (or the documented schedule), and retry
    /// transport trouble on safe requests. Only the burst and its recovery turn this off.
    pub retry: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            paced: true,
            retry: true,
        }
    }
}

/// A request ready to send: the path is already filled in.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub method: Method,
    pub path: String,
    pub credential: Credential,
    pub body: Option<Value>,
    /// A body sent byte for byte instead of a JSON one (input that is not JSON on purpose),
    /// as `application/json` unless `headers` give another Content-Type.
    pub raw_body: Option<String>,
    /// A file sent as a multipart/form-data body instead of a JSON one (an upload).
    pub file: Option<FilePart>,
    pub headers: Vec<(String, String)>,
    /// The job this request is about, recorded with the exchange.
    pub job_id: Option<String>,
}

impl Outgoing {
    /// The body as the record shows it (before masking): the JSON, or the raw text.
    fn body_text(&self) -> Option<String> {
        match (&self.body, &self.raw_body) {
            (Some(json), _) => Some(json.to_string()),
            (None, raw) => raw.clone(),
        }
    }

    pub fn get(path: impl Into<String>) -> Outgoing {
        Outgoing {
            method: Method::GET,
            path: path.into(),
            credential: Credential::Valid,
            body: None,
            raw_body: None,
            file: None,
            headers: Vec::new(),
            job_id: None,
        }
    }
}

/// The one file of a multipart/form-data body. The bytes go on the wire; the record keeps
/// only [`PartSummary`] (field, file name, type, size), so a run's report never holds media.
#[derive(Clone, Debug)]
pub struct FilePart {
    /// The form field, e.g. `file`.
    pub field: String,
    pub filename: String,
    /// The part's own Content-Type; None sends the part without one, as the vendor's Python
    /// SDK does (the server then goes by the file name).
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl FilePart {
    /// What the record shows of the part, masked.
    fn summary(&self, secrets: &Secrets) -> PartSummary {
        PartSummary {
            name: secrets.mask(&self.field),
            filename: secrets.mask(&self.filename),
            content_type: self.content_type.as_ref().map(|t| secrets.mask(t)),
            size: self.bytes.len() as u64,
        }
    }

    /// The multipart form reqwest sends, built anew for each attempt.
    fn form(&self) -> Result<reqwest::multipart::Form, String> {
        let mut part =
            reqwest::multipart::Part::bytes(self.bytes.to_vec()).file_name(self.filename.clone());
        if let Some(media) = &self.content_type {
            part = part
                .mime_str(media)
                .map_err(|e| format!("`{media}` is not a media type: {}", error_chain(&e)))?;
        }
        Ok(reqwest::multipart::Form::new().part(self.field.clone(), part))
    }
}

/// A request prepared once and sent many times (the rate-limit burst): the URL parsed, the
/// headers (the key among them) built, and what the record shows of the request masked, all
/// once. Each send clones the prepared request, which shares its header values.
#[derive(Debug)]
pub struct Prepared {
    /// What each send needs on the task that sends it.
    wire: Arc<Wire>,
    /// `METHOD path`, masked, for messages.
    request_line: String,
    method: String,
    /// What the record shows of the request, masked.
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    job_id: Option<String>,
    /// The request as a burst lane sends it, for a plain `http://` target (see
    /// [`crate::lanes`]); None where only the general client can send it.
    lane: Option<LaneTarget>,
}

/// The part of a [`Prepared`] request its sends share across tasks.
#[derive(Debug)]
struct Wire {
    request: reqwest::Request,
    http: reqwest::Client,
    secrets: Secrets,
    /// The suite's request-id headers, lower-cased.
    request_id_headers: Vec<String>,
    max_body_bytes: usize,
    timeout_seconds: f64,
}

/// What one send of a [`Prepared`] request brought back, read on the task that sent it.
struct Fetched {
    raw: RawAnswer,
    /// A registered key came back in a header or the body.
    echoed: bool,
    /// For a 2xx that echoed nothing: only the headers the checks judge (else None).
    lean_headers: Option<Vec<(String, String)>>,
}

impl Wire {
    /// Send once and read the answer. It runs on a task of its own, so a burst's sends and
    /// reads spread over every worker thread instead of one task doing them all.
    async fn fetch(self: Arc<Wire>) -> Result<Fetched, Failed> {
        let request = self
            .request
            .try_clone()
            .expect("prepare() refuses a request that cannot be cloned");
        let raw = read_answer(
            &self.http,
            request,
            self.max_body_bytes,
            self.timeout_seconds,
        )
        .await?;
        Ok(self.sift(raw))
    }

    /// Whether `raw` echoed a key, and for a 2xx that did not, the headers the checks judge.
    fn sift(&self, raw: RawAnswer) -> Fetched {
        let echoed = raw
            .headers
            .values()
            .any(|v| self.secrets.found_in(v.as_bytes()))
            || self.secrets.found_in(&raw.body);
        let lean_headers = ((200..300).contains(&raw.status) && !echoed).then(|| {
            raw.headers
                .iter()
                .filter(|(n, _)| {
                    kept_by_lean(n.as_str())
                        || self.request_id_headers.iter().any(|h| h == n.as_str())
                })
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        });
        Fetched {
            raw,
            echoed,
            lean_headers,
        }
    }
}

/// A spawned task, aborted when its handle is dropped (the burst was cancelled, the target
/// given up on), so no send outlives its caller.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl Prepared {
    /// `METHOD path`, masked, for messages.
    pub fn request_line(&self) -> &str {
        &self.request_line
    }

    /// True when the burst can send this request on lanes of its own (see [`crate::lanes`]).
    pub fn has_lanes(&self) -> bool {
        self.lane.is_some()
    }
}

/// True for the response headers a burst's 2xx keeps: the rate-limit ones in every form the
/// hints parser reads (`X-RateLimit-*`, `X-Rate-Limit-*`, `RateLimit-*`, `RateLimit`) and
/// Retry-After. Request ids are kept too (see [`Prepared`]).
fn kept_by_lean(name: &str) -> bool {
    name.contains("ratelimit") || name.contains("rate-limit") || name == "retry-after"
}

/// A response as checks see it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    /// Names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    /// The body was longer than the cap and was cut.
    pub truncated: bool,
    /// The id the server gave this response: the first request-id header, else the error body's.
    pub request_id: Option<String>,
    pub elapsed: Duration,
    /// When the response head arrived: time-dependent judgments (a Retry-After date) are
    /// made against it, not against the clock when a check gets to look.
    pub received_at: SystemTime,
    /// Index of the exchange in the run record.
    pub exchange: usize,
    /// `METHOD path`, for messages.
    pub request_line: String,
    /// 429s that were waited out and retried before this response.
    pub rate_limit_retries: u32,
    /// Why each of those waits was as long as it was (the hint, or the schedule and why).
    pub backoff_reasons: Vec<String>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// How many times header `name` came (case-insensitive); more than one is often a bug.
    pub fn header_count(&self, name: &str) -> usize {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(n, _)| *n == name).count()
    }

    /// What is wrong with the body as JSON, for messages: empty, or not JSON (with an excerpt).
    pub fn json_problem(&self) -> Option<String> {
        match (&self.json, self.body.is_empty()) {
            (Some(_), _) => None,
            (None, true) => Some("the body is empty".into()),
            (None, false) => Some(format!("the body is not JSON: {}", self.body_excerpt(120))),
        }
    }

    /// The JSON value at `pointer`, if the body is JSON and has it.
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        self.json.as_ref()?.pointer(pointer)
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The media type of the body, without parameters, lower-cased.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// How this response is named in messages: request line, status and request id.
    pub fn label(&self) -> String {
        match &self.request_id {
            Some(id) => format!("{} -> {} (request id {id})", self.request_line, self.status),
            None => format!("{} -> {} (no request id)", self.request_line, self.status),
        }
    }

    /// What came back, for "expected ..., got" messages: `200 from GET /v1/jobs/x (request
    /// id abc)`.
    pub fn status_from(&self) -> String {
        match &self.request_id {
            Some(id) => format!(
                "{} from {} (request id {id})",
                self.status, self.request_line
            ),
            None => format!("{} from {} (no request id)", self.status, self.request_line),
        }
    }

    /// A short, printable excerpt of the body for messages.
    pub fn body_excerpt(&self, max_chars: usize) -> String {
        excerpt(&self.body, max_chars)
    }

    /// A response as if `GET /test` got it just now, for unit tests of the pure judges;
    /// header names are lower-cased as the client does, and the id is the `X-Request-Id`.
    #[cfg(test)]
    pub fn for_test(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
            .collect();
        let request_id = headers
            .iter()
            .find(|(n, _)| n == "x-request-id")
            .map(|(_, v)| v.clone());
        Response {
            status,
            headers,
            body: Bytes::from(body.to_string()),
            json: serde_json::from_str(body).ok(),
            truncated: false,
            request_id,
            elapsed: Duration::ZERO,
            received_at: SystemTime::now(),
            exchange: 0,
            request_line: "GET /test".into(),
            rate_limit_retries: 0,
            backoff_reasons: Vec::new(),
        }
    }
}

/// The request got no HTTP response: refused, reset, timed out, TLS failure, or it was not
/// sent at all ([`FailureKind`] says which, so every abort can say its true cause).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{request_line}: {cause}")]
pub struct TransportError {
    pub request_line: String,
    pub cause: String,
    pub kind: FailureKind,
}

/// Why a request got no HTTP response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Sent, and the connection failed: refused, reset, TLS, a broken body.
    Transport,
    /// Sent, and no complete answer came within the timeout.
    TimedOut,
    /// Not sent: the run's request budget (`--max-requests`) is spent.
    BudgetSpent,
    /// Not sent: the run gave up on a target that stopped answering.
    TargetStopped,
    /// Not sent again: still 429 after the run's budget for waiting on 429s was spent.
    RateLimitWaitSpent,
    /// Not sent: apiconform refused (a key to another origin, a link it will not follow).
    Refused,
}

impl TransportError {
    /// True when a request went out and failed on the way (worth a retry on a safe request).
    pub fn is_transport(&self) -> bool {
        matches!(self.kind, FailureKind::Transport | FailureKind::TimedOut)
    }

    /// True when the budget of requests was spent (kept for callers that ask just that).
    pub fn budget_spent(&self) -> bool {
        self.kind == FailureKind::BudgetSpent
    }
}

/// The shared client. Cheap to share behind an `Arc`.
pub struct HttpClient {
    http: reqwest::Client,
    config: ClientConfig,
    settings: Settings,
    secrets: Secrets,
    /// A key no server can know, used for the invalid-key checks.
    invalid_key: String,
    /// Paces every request but the burst's, slower when the target shows a lower limit.
    pacer: Pacer,
    /// The run-wide ceiling every request obeys, the burst included.
    ceiling: DefaultDirectRateLimiter,
    /// Requests the run may still send (`--max-requests`).
    budget: AtomicU64,
    /// Transport retries the run may still make, so a dead target cannot multiply the run.
    transport_retries: AtomicU64,
    /// Requests in a row that timed out; any HTTP answer resets it.
    consecutive_timeouts: AtomicU32,
    /// Set once the target is taken to have stopped answering: nothing more is sent.
    target_stopped: AtomicBool,
    /// Wakes requests in flight when the target is given up on.
    stopped_signal: tokio::sync::Notify,
    /// Wall-clock time the run spent waiting on 429s, against `max_rate_limit_wait_seconds`.
    rate_limit_waiting: WaitClock,
    /// Whether the target's own host is loopback or private, once asked (see [`links`]).
    target_is_internal: Mutex<Option<bool>>,
    record: Arc<RunRecord>,
}

/// How many transport errors (or 502/503/504 on safe requests) a whole run may retry.
const TRANSPORT_RETRIES_PER_RUN: u64 = 10;

impl HttpClient {
    pub fn new(
        config: ClientConfig,
        settings: &Settings,
        record: Arc<RunRecord>,
    ) -> Result<HttpClient, String> {
        let target = &settings.target;
        let http = config
            .tls
            .apply(reqwest::Client::builder(), true)
            // A 3xx is shown as what it is; following it could send the key to another origin.
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .pool_idle_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs_f64(target.connect_timeout_seconds))
            .timeout(Duration::from_secs_f64(target.timeout_seconds))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;
        let rate = config
            .requests_per_second
            .unwrap_or(target.requests_per_second);
        let pacer = Pacer::new(rate)?;
        let mut secrets = Secrets::default();
        if let Some(key) = &config.primary_key {
            secrets.register(key, "$API_KEY");
        }
        if let Some(key) = &config.second_key {
            secrets.register(key, "$SECOND_API_KEY");
        }
        if let Some(key) = &config.broke_key {
            secrets.register(key, "$BROKE_API_KEY");
        }
        if let Some(secret) = &config.webhook_secret {
            secrets.register(secret, "$WEBHOOK_SECRET");
        }
        for header in config.extra_headers.iter().filter(|h| h.secret) {
            secrets.register(
                &header.value,
                crate::secrets::header_placeholder(&header.name),
            );
        }
        let invalid_key = format!("apiconform-invalid-{:032x}", rand::random::<u128>());
        if !(config.max_rate > 0.0 && config.max_rate.is_finite()) {
            return Err("the request ceiling (--max-rate) must be a positive number".into());
        }
        let ceiling = Quota::with_period(
            Duration::from_secs_f64(1.0 / config.max_rate).max(Duration::from_micros(1)),
        )
        .ok_or("the request ceiling is too high")?
        .allow_burst(
            std::num::NonZeroU32::new(config.max_rate.ceil().clamp(1.0, 1000.0) as u32 / 4 + 1)
                .unwrap_or(std::num::NonZeroU32::MIN),
        );
        let budget = AtomicU64::new(config.max_requests);
        Ok(HttpClient {
            http,
            config,
            settings: settings.clone(),
            secrets,
            invalid_key,
            pacer,
            ceiling: RateLimiter::direct(ceiling),
            budget,
            transport_retries: AtomicU64::new(TRANSPORT_RETRIES_PER_RUN),
            consecutive_timeouts: AtomicU32::new(0),
            target_stopped: AtomicBool::new(false),
            stopped_signal: tokio::sync::Notify::new(),
            rate_limit_waiting: WaitClock::default(),
            target_is_internal: Mutex::new(None),
            record,
        })
    }

    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The webhook signing secret, if the run was given one.
    pub fn webhook_secret(&self) -> Option<&str> {
        self.config.webhook_secret.as_deref()
    }

    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// True when the run has a key for `credential` (always for the synthetic ones).
    pub fn has_credential(&self, credential: Credential) -> bool {
        credential == Credential::Missing || self.credential_value(credential).is_some()
    }

    /// The exact key value a credential puts on the wire (None for `Missing`).
    pub fn credential_value(&self, credential: Credential) -> Option<&str> {
        match credential {
            Credential::Valid => self.config.primary_key.as_deref(),
            Credential::Second => self.config.second_key.as_deref(),
            Credential::Broke => self.config.broke_key.as_deref(),
            Credential::Invalid => Some(&self.invalid_key),
            Credential::Missing => None,
        }
    }

    /// Send `request` for `check`, record it, and return what came back.
    pub async fn send(
        &self,
        check: &str,
        request: &Outgoing,
        options: SendOptions,
    ) -> Result<Response, TransportError> {
        let mut retries = 0;
        let mut reasons = Vec::new();
        let mut transport_attempt = 0;
        loop {
            if options.paced {
                let _on_purpose = self.record.pacing();
                self.pacer.until_ready().await;
            }
            let result = self.send_once(check, request).await;
            // Transport trouble on a safe request is retried, a few times per run at most;
            // the check is then marked flaky. An answer that breaks the contract never is.
            let transient = match &result {
                Err(error) => error.is_transport(),
                Ok(response) => matches!(response.status, 502..=504),
            };
            let safe = request.method == Method::GET || request.method == Method::HEAD;
            if transient
                && safe
                && options.retry
                && transport_attempt < 2
                && self.take_transport_retry()
            {
                transport_attempt += 1;
                let wait = Duration::from_millis(500 * transport_attempt);
                tracing::info!(
                    check,
                    "transport trouble on {}, retrying in {} ms",
                    request.path,
                    wait.as_millis()
                );
                self.record.mark_flaky(check);
                tokio::time::sleep(wait).await;
                continue;
            }
            let mut response = result?;
            if options.paced {
                self.adapt_pace(check, &response);
            }
            response.rate_limit_retries = retries;
            response.backoff_reasons = reasons.clone();
            let limit = self.settings.target.max_rate_limit_retries;
            if response.status != 429 || !options.retry || retries >= limit {
                return Ok(response);
            }
            let backoff = self.backoff_after(&response, retries);
            // A hint beyond the cap is not waited out at all: the 429 is the answer.
            if backoff.capped_from.is_some() {
                return Ok(response);
            }
            if self.config.progress {
                crate::progress::show(
                    check,
                    &format!(
                        "429 on {}, waiting {:.1} s before retrying ({})",
                        response.request_line,
                        backoff.wait.as_secs_f64(),
                        backoff.reason
                    ),
                );
            }
            tracing::info!(
                check,
                request_id = response.request_id.as_deref().unwrap_or("-"),
                wait_ms = backoff.wait.as_millis() as u64,
                reason = backoff.reason.as_str(),
                "429 on {}, backing off before retrying",
                response.request_line
            );
            self.wait_on_429(check, &response.request_line, backoff.wait)
                .await?;
            reasons.push(backoff.reason);
            retries += 1;
        }
    }

    /// Wait `wait` after a 429 for `check`, counted against the run's budget for waiting on
    /// 429s; once that is spent, the error says so instead of waiting again.
    pub async fn wait_on_429(
        &self,
        check: &str,
        request_line: &str,
        wait: Duration,
    ) -> Result<(), TransportError> {
        let budget = Duration::from_secs_f64(self.settings.target.max_rate_limit_wait_seconds);
        let spent = self.rate_limit_waiting.total();
        if spent >= budget {
            self.record.add_notice(&format!(
                "the run spent its {} s for waiting on 429s ([target] max_rate_limit_wait_seconds); checks still rate limited after that are errored",
                budget.as_secs_f64()
            ));
            return Err(TransportError {
                request_line: request_line.to_string(),
                cause: format!(
                    "still rate limited (429), and the run has already spent its {} s for waiting on 429s ([target] max_rate_limit_wait_seconds)",
                    budget.as_secs_f64()
                ),
                kind: FailureKind::RateLimitWaitSpent,
            });
        }
        let _counted = self.rate_limit_waiting.start();
        self.record.wait(check, wait.min(budget - spent)).await;
        Ok(())
    }

    /// Keep the pace under what `response` shows of the target's limit: the limit its
    /// RateLimit headers advertise for a short window, and half the pace on a 429.
    fn adapt_pace(&self, check: &str, response: &Response) {
        let advertised = hints::parse_rate_limit(
            response
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
            response.received_at,
        );
        let mut changed = advertised
            .and_then(|info| Some((info.limit?, info.window?)))
            .and_then(|(limit, window)| self.pacer.respect_advertised(limit, window));
        if response.status == 429 {
            changed = self.pacer.back_off().or(changed);
        }
        if let Some(rate) = changed {
            tracing::info!(
                check,
                "pacing down to {rate:.1} requests/s after {}",
                response.label()
            );
        }
    }

    /// The pace now and the pace asked for, in requests per second.
    pub fn pace(&self) -> (f64, f64) {
        self.pacer.rates()
    }

    /// True once the run has given up on a target that stopped answering.
    pub fn target_stopped(&self) -> bool {
        self.target_stopped.load(Ordering::Relaxed)
    }

    /// Count a request that timed out (or reset the count on any answer); after
    /// `max_consecutive_timeouts` in a row the target is given up on and requests in flight
    /// are woken.
    fn count_timeout(&self, timed_out: bool) {
        if !timed_out {
            self.consecutive_timeouts.store(0, Ordering::Relaxed);
            return;
        }
        let limit = self.settings.target.max_consecutive_timeouts;
        let count = self.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
        if limit > 0 && count >= limit && !self.target_stopped.swap(true, Ordering::Relaxed) {
            tracing::warn!("{count} requests in a row timed out: the target stopped answering");
            self.record.add_notice(&format!(
                "stopped sending: the target stopped answering ({count} requests in a row timed out after {} s each; [target] max_consecutive_timeouts); the checks still to run are errored",
                self.settings.target.timeout_seconds
            ));
            self.stopped_signal.notify_waiters();
        }
    }

    /// The error of a request not sent because the target stopped answering.
    fn stopped_error(&self, request_line: &str) -> TransportError {
        TransportError {
            request_line: request_line.to_string(),
            cause: format!(
                "not sent: the target stopped answering ({} requests in a row timed out after {} s each; [target] max_consecutive_timeouts)",
                self.settings.target.max_consecutive_timeouts,
                self.settings.target.timeout_seconds
            ),
            kind: FailureKind::TargetStopped,
        }
    }

    /// GET `path` without a key and return the status as soon as a response head arrives:
    /// any HTTP answer at all means the target is reachable, whatever its body does next.
    pub async fn reachable(&self, check: &str, path: &str) -> Result<u16, TransportError> {
        let mut request = Outgoing::get(path);
        request.credential = Credential::Missing;
        let url = format!("{}{}", self.config.base_url, path);
        let fail = |cause: String| TransportError {
            request_line: format!("GET {path}"),
            cause,
            kind: FailureKind::Transport,
        };
        let built = self.build(&url, &request).map_err(fail)?;
        let timeout = self.settings.target.timeout_seconds;
        let response = self
            .http
            .execute(built)
            .await
            .map_err(|e| fail(self.secrets.mask(&describe(&e, timeout))))?;
        tracing::debug!(
            check,
            status = response.status().as_u16(),
            "GET {path}: the target answers"
        );
        Ok(response.status().as_u16())
    }

    /// Take one of the run's transport retries, if any are left.
    fn take_transport_retry(&self) -> bool {
        self.transport_retries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// True once `--max-requests` requests have been sent.
    pub fn budget_spent(&self) -> bool {
        self.budget.load(Ordering::Relaxed) == 0
    }

    /// How long to wait after a 429 and why: the usable Retry-After hint (capped), else the
    /// documented schedule; `attempt` counts the waits before for the same request.
    pub fn backoff_after(&self, response: &Response, attempt: u32) -> Backoff {
        hints::backoff_after_429(
            response.header("retry-after"),
            response.received_at,
            SystemTime::now(),
            attempt,
            rand::random::<f64>(),
            Duration::from_secs(self.settings.target.max_retry_after_seconds),
        )
    }

    /// Prepare `request` to be sent many times with [`Self::send_prepared`]. Only to the
    /// target's own origin: the burst never follows a link elsewhere.
    pub fn prepare(&self, request: &Outgoing) -> Result<Prepared, TransportError> {
        let absolute = request.path.starts_with("http://") || request.path.starts_with("https://");
        let url = if absolute {
            request.path.clone()
        } else {
            format!("{}{}", self.config.base_url, request.path)
        };
        let request_line = self.secrets.mask(&format!(
            "{} {}",
            request.method,
            shorten(&request.path, 160)
        ));
        let refuse = |cause: String| TransportError {
            request_line: request_line.clone(),
            cause,
            kind: FailureKind::Refused,
        };
        if absolute && !same_origin(&url, &self.config.base_url) {
            return Err(refuse(format!(
                "not sent: {url} is another origin than the target, and a repeated request goes only to the target"
            )));
        }
        let built = self.build(&url, request).map_err(refuse)?;
        if built.try_clone().is_none() {
            return Err(refuse("the request body cannot be sent twice".into()));
        }
        let headers = self.masked_headers(&built);
        let target = &self.settings.target;
        let lane = LaneTarget::new(
            &built,
            USER_AGENT,
            Duration::from_secs_f64(target.connect_timeout_seconds),
            Duration::from_secs_f64(target.timeout_seconds),
            target.max_body_bytes,
        );
        Ok(Prepared {
            wire: Arc::new(Wire {
                request: built,
                http: self.http.clone(),
                secrets: self.secrets.clone(),
                request_id_headers: self
                    .settings
                    .request_id
                    .headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
                max_body_bytes: self.settings.target.max_body_bytes,
                timeout_seconds: self.settings.target.timeout_seconds,
            }),
            method: request.method.to_string(),
            url: self.secrets.mask(&url),
            headers,
            body: request.body_text().map(|b| self.secrets.mask(&b)),
            job_id: request.job_id.clone(),
            request_line,
            lane,
        })
    }

    /// Send a prepared request once, unpaced and without retries (but within the run's
    /// budget and ceiling, like every request), and record it.
    ///
    /// The lean path of the burst: a 2xx that echoes no key comes back with only the headers
    /// the rate-limit checks judge (see `kept_by_lean`, and the request id) and no body, and
    /// is recorded without parsing; anything else (429, 5xx, any other status, a key echoed)
    /// comes back and is recorded in full, as [`Self::send`] would.
    pub async fn send_prepared(
        &self,
        check: &str,
        prepared: &Prepared,
    ) -> Result<Response, TransportError> {
        self.admit(prepared).await?;
        let started = SystemTime::now();
        let clock = Instant::now();
        let stopped = self.stopped_signal.notified();
        let in_flight = self.record.in_flight();
        let result = tokio::select! {
            joined = AbortOnDrop(tokio::spawn(prepared.wire.clone().fetch())) => {
                joined.unwrap_or_else(|e| Err(Failed {
                    cause: format!("the request's task ended: {e}"),
                    timed_out: false,
                }))
            }
            _ = stopped => Err(abandoned()),
        };
        drop(in_flight);
        self.finish(check, prepared, started, clock.elapsed(), result)
    }

    /// [`Self::send_prepared`] on a burst lane's own connection (see [`crate::lanes`]): the
    /// same budget, ceiling, record and answers. Only for a request that
    /// [`Prepared::has_lanes`].
    pub async fn send_on_lane(
        &self,
        check: &str,
        prepared: &Prepared,
        lane: &mut Lane,
    ) -> Result<Response, TransportError> {
        let Some(target) = &prepared.lane else {
            return self.send_prepared(check, prepared).await;
        };
        self.admit(prepared).await?;
        let started = SystemTime::now();
        let clock = Instant::now();
        let stopped = self.stopped_signal.notified();
        let in_flight = self.record.in_flight();
        let result = tokio::select! {
            fetched = lane.fetch(target) => fetched.map(|raw| prepared.wire.sift(raw)),
            _ = stopped => Err(abandoned()),
        };
        drop(in_flight);
        self.finish(check, prepared, started, clock.elapsed(), result)
    }

    /// What every send of a prepared request passes first: the target still answering, the
    /// run's budget (one request taken from it) and its ceiling.
    async fn admit(&self, prepared: &Prepared) -> Result<(), TransportError> {
        if self.target_stopped() {
            return Err(self.stopped_error(&prepared.request_line));
        }
        if self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(TransportError {
                request_line: prepared.request_line.clone(),
                cause: format!(
                    "not sent: the run's request budget of {} (--max-requests) is spent",
                    self.config.max_requests
                ),
                kind: FailureKind::BudgetSpent,
            });
        }
        self.ceiling.until_ready().await;
        Ok(())
    }

    /// Record one send of a prepared request and make its [`Response`]: lean for a 2xx that
    /// echoed nothing, whole for anything else.
    fn finish(
        &self,
        check: &str,
        prepared: &Prepared,
        started: SystemTime,
        elapsed: Duration,
        result: Result<Fetched, Failed>,
    ) -> Result<Response, TransportError> {
        let exchange = |status: Option<u16>| Exchange {
            id: 0,
            check: check.to_string(),
            method: prepared.method.clone(),
            url: prepared.url.clone(),
            request_headers: prepared.headers.clone(),
            request_body: prepared.body.clone(),
            request_parts: Vec::new(),
            status,
            response_headers: Vec::new(),
            body_excerpt: String::new(),
            error: None,
            started,
            elapsed,
            request_id: None,
            job_id: prepared.job_id.clone(),
            echoed_secret: false,
        };
        let fetched = match result {
            Ok(fetched) => fetched,
            Err(failed) => {
                self.count_timeout(failed.timed_out);
                let cause = self.secrets.mask(&failed.cause);
                self.record.add_exchange(Exchange {
                    error: Some(cause.clone()),
                    ..exchange(None)
                });
                return Err(TransportError {
                    request_line: prepared.request_line.clone(),
                    cause,
                    kind: if failed.timed_out {
                        FailureKind::TimedOut
                    } else {
                        FailureKind::Transport
                    },
                });
            }
        };
        self.count_timeout(false);
        let Fetched {
            raw,
            echoed,
            lean_headers,
        } = fetched;
        let all_headers = |raw: &RawAnswer| -> Vec<(String, String)> {
            raw.headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect()
        };
        let (headers, body, json, request_id) = if let Some(headers) = lean_headers {
            // The lean answer: the headers the checks judge, the request id, no body.
            let request_id = self.request_id_of(&headers, None);
            (headers, Bytes::new(), None, request_id)
        } else {
            let headers = all_headers(&raw);
            let json = serde_json::from_slice::<Value>(&raw.body).ok();
            let request_id = self.request_id_of(&headers, json.as_ref());
            (headers, raw.body.clone(), json, request_id)
        };
        let id = self.record.add_exchange_with(
            check,
            crate::record::is_notable(Some(raw.status), echoed),
            || Exchange {
                response_headers: all_headers(&raw)
                    .into_iter()
                    .map(|(n, v)| (n, self.secrets.mask(&v)))
                    .collect(),
                body_excerpt: self.secrets.mask(&excerpt(&raw.body, BODY_EXCERPT_BYTES)),
                request_id: request_id.as_ref().map(|id| self.secrets.mask(id)),
                echoed_secret: echoed,
                ..exchange(Some(raw.status))
            },
        );
        tracing::debug!(
            check,
            status = raw.status,
            request_id = request_id.as_deref().unwrap_or("-"),
            "{}",
            prepared.request_line
        );
        Ok(Response {
            status: raw.status,
            headers,
            body,
            json,
            truncated: raw.truncated,
            request_id,
            elapsed,
            received_at: raw.received_at,
            exchange: id,
            request_line: prepared.request_line.clone(),
            rate_limit_retries: 0,
            backoff_reasons: Vec::new(),
        })
    }

    /// One attempt, no retries.
    async fn send_once(&self, check: &str, request: &Outgoing) -> Result<Response, TransportError> {
        let absolute = request.path.starts_with("http://") || request.path.starts_with("https://");
        let url = if absolute {
            request.path.clone()
        } else {
            format!("{}{}", self.config.base_url, request.path)
        };
        let request_line = format!("{} {}", request.method, shorten(&request.path, 160));
        let refuse = |cause: String| TransportError {
            request_line: self.secrets.mask(&request_line),
            cause,
            kind: FailureKind::Refused,
        };
        if self.target_stopped() {
            return Err(self.stopped_error(&self.secrets.mask(&request_line)));
        }
        let foreign = absolute && !same_origin(&url, &self.config.base_url);
        // A key goes only to the target's own origin (an output URL may be on a CDN).
        if foreign && request.credential != Credential::Missing {
            return Err(refuse(format!(
                "refusing to send a key to {url}, another origin than the target"
            )));
        }
        // A link from a response goes where the target says only if it is a safe place.
        let link_client = if foreign {
            let addresses = links::vet(&url, self.target_is_internal().await)
                .await
                .map_err(|why| refuse(format!("not fetched: {why}")))?;
            Some(self.pinned_client(&url, &addresses).map_err(refuse)?)
        } else {
            None
        };
        let built = self.build(&url, request).map_err(refuse)?;
        if self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_err()
        {
            return Err(TransportError {
                kind: FailureKind::BudgetSpent,
                ..refuse(format!(
                    "not sent: the run's request budget of {} (--max-requests) is spent",
                    self.config.max_requests
                ))
            });
        }
        self.ceiling.until_ready().await;
        let request_headers = self.masked_headers(&built);
        let started = SystemTime::now();
        let clock = Instant::now();
        let mut exchange = Exchange {
            id: 0,
            check: check.to_string(),
            method: request.method.to_string(),
            url: self.secrets.mask(&url),
            request_headers,
            request_body: request.body_text().map(|b| self.secrets.mask(&b)),
            request_parts: request
                .file
                .iter()
                .map(|f| f.summary(&self.secrets))
                .collect(),
            status: None,
            response_headers: Vec::new(),
            body_excerpt: String::new(),
            error: None,
            started,
            elapsed: Duration::ZERO,
            request_id: None,
            job_id: request.job_id.clone(),
            echoed_secret: false,
        };
        let http = link_client.as_ref().unwrap_or(&self.http);
        // Requests in flight end at once when the run gives up on the target.
        let stopped = self.stopped_signal.notified();
        let _in_flight = self.record.in_flight();
        let result = tokio::select! {
            result = self.execute(http, built) => result,
            _ = stopped => Err(Failed {
                cause: "abandoned: the target stopped answering".into(),
                timed_out: false,
            }),
        };
        exchange.elapsed = clock.elapsed();
        match result {
            Err(failed) => {
                self.count_timeout(failed.timed_out);
                let cause = self.secrets.mask(&failed.cause);
                exchange.error = Some(cause.clone());
                self.record.add_exchange(exchange);
                tracing::debug!(check, "{request_line}: {cause}");
                Err(TransportError {
                    request_line: self.secrets.mask(&request_line),
                    cause,
                    kind: if failed.timed_out {
                        FailureKind::TimedOut
                    } else {
                        FailureKind::Transport
                    },
                })
            }
            Ok(Answer {
                status,
                headers,
                body,
                truncated,
                received_at,
            }) => {
                self.count_timeout(false);
                let json = serde_json::from_slice::<Value>(&body).ok();
                let request_id = self.request_id_of(&headers, json.as_ref());
                let echoed = headers
                    .iter()
                    .any(|(_, v)| self.secrets.found_in(v.as_bytes()))
                    || self.secrets.found_in(&body);
                exchange.status = Some(status);
                exchange.response_headers = headers
                    .iter()
                    .map(|(n, v)| (n.clone(), self.secrets.mask(v)))
                    .collect();
                exchange.body_excerpt = self.secrets.mask(&excerpt(&body, BODY_EXCERPT_BYTES));
                exchange.request_id = request_id.clone().map(|id| self.secrets.mask(&id));
                exchange.echoed_secret = echoed;
                let id = self.record.add_exchange(exchange);
                tracing::debug!(
                    check,
                    status,
                    request_id = request_id.as_deref().unwrap_or("-"),
                    job_id = request.job_id.as_deref().unwrap_or("-"),
                    "{}",
                    self.secrets.mask(&request_line)
                );
                Ok(Response {
                    status,
                    headers,
                    body,
                    json,
                    truncated,
                    request_id,
                    elapsed: clock.elapsed(),
                    received_at,
                    exchange: id,
                    request_line: self.secrets.mask(&request_line),
                    rate_limit_retries: 0,
                    backoff_reasons: Vec::new(),
                })
            }
        }
    }

    /// The headers of `built` as the record shows them: keys masked.
    fn masked_headers(&self, built: &reqwest::Request) -> Vec<(String, String)> {
        built
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    self.secrets
                        .mask(&String::from_utf8_lossy(value.as_bytes())),
                )
            })
            .collect()
    }

    fn build(&self, url: &str, request: &Outgoing) -> Result<reqwest::Request, String> {
        let mut builder = self
            .http
            .request(request.method.clone(), url)
            .header("X-Apiconform-Run-Id", &self.config.run_id);
        if let Some(key) = self.credential_value(request.credential) {
            let mut value = HeaderValue::from_str(&format!("{}{key}", self.settings.auth.prefix))
                .map_err(|_| {
                "the key contains characters not allowed in a header".to_string()
            })?;
            value.set_sensitive(true);
            let name =
                HeaderName::from_bytes(self.settings.auth.header.as_bytes()).map_err(|_| {
                    format!("`{}` is not a valid header name", self.settings.auth.header)
                })?;
            builder = builder.header(name, value);
        }
        // The user's headers go to the target alone (never to a link on another origin), and
        // only where the request sets no header of that name (the suite's wins).
        let to_target = same_origin(url, &self.config.base_url);
        for extra in self.config.extra_headers.iter().filter(|_| to_target) {
            if request
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case(&extra.name))
            {
                continue;
            }
            let mut value = HeaderValue::from_str(&extra.value)
                .map_err(|_| format!("the value of `{}` cannot be sent", extra.name))?;
            value.set_sensitive(extra.secret);
            builder = builder.header(extra.name.as_str(), value);
        }
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        if let Some(raw) = &request.raw_body {
            let typed = request
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
            if !typed {
                builder = builder.header("content-type", "application/json");
            }
            builder = builder.body(raw.clone());
        }
        if let Some(file) = &request.file {
            builder = builder.multipart(file.form()?);
        }
        builder.build().map_err(|e| error_chain(&e))
    }

    /// Whether the target's host is loopback or private (asked once per run).
    async fn target_is_internal(&self) -> bool {
        if let Some(known) = *self
            .target_is_internal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            return known;
        }
        let internal = links::is_internal_target(&self.config.base_url).await;
        *self
            .target_is_internal
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(internal);
        internal
    }

    /// A client for one link that connects only to the `addresses` vetted for its host, so a
    /// second DNS answer cannot send the request elsewhere.
    fn pinned_client(
        &self,
        url: &str,
        addresses: &[std::net::SocketAddr],
    ) -> Result<reqwest::Client, String> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(String::from))
            .unwrap_or_default();
        let target = &self.settings.target;
        self.config
            .tls
            .apply(reqwest::Client::builder(), false)
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(Duration::from_secs_f64(target.connect_timeout_seconds))
            .timeout(Duration::from_secs_f64(target.timeout_seconds))
            .user_agent(USER_AGENT)
            .resolve_to_addrs(&host, addresses)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
    }

    /// Send and read the body up to the cap.
    async fn execute(
        &self,
        http: &reqwest::Client,
        request: reqwest::Request,
    ) -> Result<Answer, Failed> {
        let raw = self.execute_raw(http, request).await?;
        let headers = raw
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        Ok(Answer {
            status: raw.status,
            headers,
            body: raw.body,
            truncated: raw.truncated,
            received_at: raw.received_at,
        })
    }

    /// Send and read the body up to the cap, keeping the headers as they came.
    async fn execute_raw(
        &self,
        http: &reqwest::Client,
        request: reqwest::Request,
    ) -> Result<RawAnswer, Failed> {
        read_answer(
            http,
            request,
            self.settings.target.max_body_bytes,
            self.settings.target.timeout_seconds,
        )
        .await
    }

    fn request_id_of(&self, headers: &[(String, String)], json: Option<&Value>) -> Option<String> {
        let from_header = self.settings.request_id.headers.iter().find_map(|name| {
            let name = name.to_ascii_lowercase();
            headers
                .iter()
                .find(|(n, v)| *n == name && !v.trim().is_empty())
                .map(|(_, v)| v.trim().to_string())
        });
        from_header.or_else(|| {
            json?
                .pointer(&self.settings.request_id.body_pointer)?
                .as_str()
                .filter(|s| !s.is_empty())
                .map(String::from)
        })
    }
}

/// A send abandoned because the run gave up on the target.
fn abandoned() -> Failed {
    Failed {
        cause: "abandoned: the target stopped answering".into(),
        timed_out: false,
    }
}

/// An HTTP answer as read off the wire, before it becomes a [`Response`].
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Bytes,
    truncated: bool,
    received_at: SystemTime,
}

/// Send `request` and read the body up to `cap` bytes, keeping the headers as they came.
async fn read_answer(
    http: &reqwest::Client,
    request: reqwest::Request,
    cap: usize,
    timeout: f64,
) -> Result<RawAnswer, Failed> {
    let failed = |e: reqwest::Error| Failed {
        timed_out: e.is_timeout(),
        cause: describe(&e, timeout),
    };
    let mut response = http.execute(request).await.map_err(failed)?;
    let received_at = SystemTime::now();
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() > room {
            truncated = true;
            break;
        }
    }
    Ok(RawAnswer {
        status,
        headers,
        body: Bytes::from(body),
        truncated,
        received_at,
    })
}

/// An HTTP answer with its headers as the HTTP library gave them.
pub(crate) struct RawAnswer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) truncated: bool,
    pub(crate) received_at: SystemTime,
}

/// A request that got no answer, and whether it was because time ran out.
pub(crate) struct Failed {
    pub(crate) cause: String,
    pub(crate) timed_out: bool,
}

/// True when both URLs have the same scheme, host and port.
pub fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// A transport error in words: the timeout, or the whole cause chain (reqwest's own message
/// only says "error sending request").
fn describe(error: &reqwest::Error, timeout_seconds: f64) -> String {
    if error.is_timeout() {
        return format!("timed out after {timeout_seconds} s");
    }
    error_chain(error)
}

/// `error` and each of its sources, joined, without repeats.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// `text` cut to `max_chars` characters, saying how long it was; for paths in messages.
fn shorten(text: &str, max_chars: usize) -> String {
    let count = text.chars().count();
    if count <= max_chars {
        return text.to_string();
    }
    let head: String = text.chars().take(max_chars).collect();
    format!("{head}...({count} chars)")
}

/// The first `max_chars` characters of a body, lossily decoded, with line breaks and other
/// control characters escaped so an excerpt stays on its line; says so when cut or empty.
fn excerpt(body: &[u8], max_chars: usize) -> String {
    if body.is_empty() {
        return "(empty body)".into();
    }
    let text = String::from_utf8_lossy(body);
    let mut cut = String::new();
    for c in text.chars().take(max_chars) {
        match c {
            '\n' => cut.push_str("\\n"),
            '\r' => cut.push_str("\\r"),
            '\t' => cut.push(' '),
            c if c.is_control() => cut.push_str(&c.escape_unicode().to_string()),
            c => cut.push(c),
        }
    }
    if text.chars().count() > max_chars {
        cut.push_str(&format!("... [{} bytes in all]", body.len()));
    }
    cut
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_never_shows_a_key() {
        let mut config = super::ClientConfig::new("https://x.example", Some("sk_live_1".into()));
        config.second_key = Some("sk_live_2".into());
        config.webhook_secret = Some("whsec_sk_live_3".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk_live"), "{shown}");
        assert!(shown.contains("$WEBHOOK_SECRET"), "{shown}");
        assert!(
            shown.contains("$API_KEY") && shown.contains("$SECOND_API_KEY"),
            "{shown}"
        );
    }
}
