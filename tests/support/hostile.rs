//! A hostile HTTP server ([`HostileServer`]) for the hardening tests: one misbehaviour per
//! [`Mode`], served at the byte level on a raw `tokio::net::TcpListener` so it can break HTTP
//! in ways a framework would refuse to (truncated bodies, resets, 1xx, duplicate headers, ...).
//!
//! It binds `127.0.0.1:0` (and, for the redirect mode, a second origin on `127.0.0.2:0`), runs
//! on a runtime of its own so synchronous tests can use it, records the request line and
//! headers of every request it receives, and stops everything when dropped. Every connection
//! handler is bounded in time and in work.

// Not every test binary that includes this module uses all of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One misbehaviour, applied to every request of the main origin (or only to `/v1` requests
/// when [`Mode::hits_probe`] is false: the probe path then gets a normal answer, so the run
/// gets past the probe and the checks meet the misbehaviour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 200, `text/plain`, body `hello`.
    NonJson,
    /// 200, `application/json`, a body that is not UTF-8.
    InvalidUtf8,
    /// 200, `application/json`, a JSON document cut in the middle (Content-Length matches).
    TruncatedJson,
    /// 200, `text/html`, a valid JSON job.
    WrongContentType,
    /// 500 with an HTML error page.
    HtmlError500,
    /// 200 with an empty body.
    Empty200,
    /// 401 with an empty body.
    Empty401,
    /// Two `Content-Type` and two (different) `X-Request-Id` headers, valid JSON body.
    DuplicateHeaders,
    /// A 64 KiB header value, valid JSON body.
    HugeHeaderValue,
    /// 200 headers on `/v1` replies (more than HTTP clients accept).
    ManyHeaders,
    /// A 5 MiB JSON array, streamed chunked.
    LargeBody,
    /// `/v1` replies are chunked and the connection closes in the middle of a chunk.
    ChunkedStopsEarly,
    /// Like `ChunkedStopsEarly`, and the probe gets it too: it sees a status line and headers,
    /// so the target was reached.
    ChunkedStopsEarlyProbe,
    /// `/v1` replies: head and part of the body, then a TCP reset (SO_LINGER 0).
    ResetMidBody,
    /// The request is read, then the connection is reset without a byte of response.
    ResetImmediately,
    /// `/v1` requests get `100 Continue` and then nothing (the connection stays open).
    Continue100ThenNothing,
    /// `/v1` requests get `101 Switching Protocols` to a protocol nobody asked for.
    SwitchingProtocols101,
    /// 307 to the same path on another origin (`127.0.0.2`), which answers normally and
    /// records whether anything (above all the key) arrives there.
    RedirectOtherOrigin,
    /// The request is read and never answered.
    Hang,
    /// The probe is answered; `/v1` requests are read and never answered.
    HangAfterProbe,
    /// `/v1` replies arrive one byte every 200 ms.
    SlowDrip,
    /// The request is read and the connection closed without a response.
    CloseImmediately,
    /// `HTTP/1.0 200` without Content-Length; the body ends when the connection closes.
    Http10NoLength,
    /// `/v1` requests get 429 with `Retry-After: 999999`.
    RateLimited429,
    /// `/v1` requests get 429 with `Retry-After: soon`, a hint no client can use.
    Unparsable429,
    /// `/v1` replies: the head and part of the body, then silence with the socket open.
    BodyStallsOpen,
    /// A conforming-looking job API whose jobs read `"status": "done"`, a state no suite knows.
    UnknownJobState,
    /// A conforming-looking job API whose jobs stay `processing` forever.
    JobsNeverFinish,
}

impl Mode {
    /// Every mode.
    pub const ALL: &'static [Mode] = &[
        Mode::NonJson,
        Mode::InvalidUtf8,
        Mode::TruncatedJson,
        Mode::WrongContentType,
        Mode::HtmlError500,
        Mode::Empty200,
        Mode::Empty401,
        Mode::DuplicateHeaders,
        Mode::HugeHeaderValue,
        Mode::ManyHeaders,
        Mode::LargeBody,
        Mode::ChunkedStopsEarly,
        Mode::ChunkedStopsEarlyProbe,
        Mode::ResetMidBody,
        Mode::ResetImmediately,
        Mode::Continue100ThenNothing,
        Mode::SwitchingProtocols101,
        Mode::RedirectOtherOrigin,
        Mode::Hang,
        Mode::HangAfterProbe,
        Mode::SlowDrip,
        Mode::CloseImmediately,
        Mode::Http10NoLength,
        Mode::RateLimited429,
        Mode::Unparsable429,
        Mode::BodyStallsOpen,
        Mode::UnknownJobState,
        Mode::JobsNeverFinish,
    ];

    /// A kebab-case name for tables and filters.
    pub fn name(self) -> &'static str {
        match self {
            Mode::NonJson => "non-json",
            Mode::InvalidUtf8 => "invalid-utf8",
            Mode::TruncatedJson => "truncated-json",
            Mode::WrongContentType => "wrong-content-type",
            Mode::HtmlError500 => "html-error-500",
            Mode::Empty200 => "empty-200",
            Mode::Empty401 => "empty-401",
            Mode::DuplicateHeaders => "duplicate-headers",
            Mode::HugeHeaderValue => "huge-header-value",
            Mode::ManyHeaders => "many-headers",
            Mode::LargeBody => "large-body",
            Mode::ChunkedStopsEarly => "chunked-stops-early",
            Mode::ChunkedStopsEarlyProbe => "chunked-stops-early-probe",
            Mode::ResetMidBody => "reset-mid-body",
            Mode::ResetImmediately => "reset-immediately",
            Mode::Continue100ThenNothing => "100-continue-then-nothing",
            Mode::SwitchingProtocols101 => "101-switching-protocols",
            Mode::RedirectOtherOrigin => "redirect-other-origin",
            Mode::Hang => "hang",
            Mode::HangAfterProbe => "hang-after-probe",
            Mode::SlowDrip => "slow-drip",
            Mode::CloseImmediately => "close-immediately",
            Mode::Http10NoLength => "http10-no-length",
            Mode::RateLimited429 => "429-retry-after-999999",
            Mode::Unparsable429 => "429-retry-after-unparsable",
            Mode::BodyStallsOpen => "body-stalls-open",
            Mode::UnknownJobState => "unknown-job-state",
            Mode::JobsNeverFinish => "jobs-never-finish",
        }
    }

    /// What the server does, in words.
    pub fn description(self) -> &'static str {
        match self {
            Mode::NonJson => "200 text/plain `hello`",
            Mode::InvalidUtf8 => "200 application/json, body not UTF-8",
            Mode::TruncatedJson => "200 application/json, JSON cut in the middle",
            Mode::WrongContentType => "200 text/html carrying valid JSON",
            Mode::HtmlError500 => "500 with an HTML error page",
            Mode::Empty200 => "200 with an empty body",
            Mode::Empty401 => "401 with an empty body",
            Mode::DuplicateHeaders => "two Content-Type and two X-Request-Id headers",
            Mode::HugeHeaderValue => "a 64 KiB header value",
            Mode::ManyHeaders => "200 headers on /v1 replies",
            Mode::LargeBody => "a 5 MiB JSON array, streamed",
            Mode::ChunkedStopsEarly => "/v1: chunked body, connection closed mid-chunk",
            Mode::ChunkedStopsEarlyProbe => "chunked body closed mid-chunk, the probe too",
            Mode::ResetMidBody => "/v1: head and part of the body, then TCP reset",
            Mode::ResetImmediately => "TCP reset instead of any response",
            Mode::Continue100ThenNothing => "/v1: `100 Continue`, then silence",
            Mode::SwitchingProtocols101 => "/v1: `101 Switching Protocols` unasked",
            Mode::RedirectOtherOrigin => "307 to another origin (127.0.0.2)",
            Mode::Hang => "accepts, reads, never answers",
            Mode::HangAfterProbe => "probe answered, /v1 never answered",
            Mode::SlowDrip => "/v1: one byte every 200 ms",
            Mode::CloseImmediately => "closes without a response",
            Mode::Http10NoLength => "HTTP/1.0 200 without Content-Length",
            Mode::RateLimited429 => "/v1: 429 with Retry-After: 999999",
            Mode::Unparsable429 => "/v1: 429 with Retry-After: soon",
            Mode::BodyStallsOpen => "/v1: part of the body, then silence, socket open",
            Mode::UnknownJobState => "jobs read status \"done\"",
            Mode::JobsNeverFinish => "jobs stay processing forever",
        }
    }

    /// Whether requests outside `/v1` (the probe, `GET /health`) get the misbehaviour too.
    pub fn hits_probe(self) -> bool {
        !matches!(
            self,
            Mode::ManyHeaders
                | Mode::ChunkedStopsEarly
                | Mode::ResetMidBody
                | Mode::Continue100ThenNothing
                | Mode::SwitchingProtocols101
                | Mode::HangAfterProbe
                | Mode::SlowDrip
                | Mode::RateLimited429
                | Mode::Unparsable429
                | Mode::BodyStallsOpen
                | Mode::UnknownJobState
                | Mode::JobsNeverFinish
        )
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<Mode> {
        Mode::ALL.iter().copied().find(|m| m.name() == name)
    }
}

/// Which listener a request arrived at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The server under test (`base_url`).
    Main,
    /// The redirect target on `127.0.0.2`, which should never be contacted.
    Other,
}

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub origin: Origin,
    /// `GET /v1/jobs?limit=1 HTTP/1.1`
    pub request_line: String,
    /// Header names lower-cased, values as sent (lossily decoded).
    pub headers: Vec<(String, String)>,
}

impl Received {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The request path (with query).
    pub fn path(&self) -> &str {
        self.request_line.split(' ').nth(1).unwrap_or("")
    }
}

/// A running hostile server; dropping it stops every listener and connection.
pub struct HostileServer {
    pub mode: Mode,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    /// `http://127.0.0.2:PORT` for [`Mode::RedirectOtherOrigin`].
    pub other_origin: Option<String>,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Shared {
    mode: Mode,
    other_origin: Option<String>,
    received: Mutex<Vec<Received>>,
    next_id: AtomicU64,
}

/// At most this many connections per listener, requests per connection, bytes of request head.
const MAX_CONNECTIONS: usize = 20_000;
const MAX_REQUESTS_PER_CONNECTION: usize = 1_000;
const MAX_HEAD_BYTES: usize = 256 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// An idle keep-alive connection is closed after this long.
const IDLE: Duration = Duration::from_secs(30);
/// The longest any handler holds a connection open on purpose (hang, 1xx, drip).
const HOLD_AT_MOST: Duration = Duration::from_secs(60);

/// A job in the shape of the default suite (terminal, so nobody polls it).
pub const JOB_JSON: &str = r#"{"id":"job_hostile","status":"completed","progress":100,"output_url":"https://example.com/out.webm","error":null,"created_at":"2024-01-01T00:00:00Z","duration_seconds":12.5,"billing_status":"charged"}"#;
const HEALTH_JSON: &str = r#"{"status":"ok"}"#;

impl HostileServer {
    /// Start a server misbehaving as `mode`, on loopback, on a runtime of its own.
    pub fn start(mode: Mode) -> HostileServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("hostile-server")
            .enable_all()
            .build()
            .expect("runtime for the hostile server");
        let main = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let base_url = format!("http://{}", main.local_addr().expect("local addr"));
        let other = (mode == Mode::RedirectOtherOrigin).then(|| {
            runtime
                .block_on(TcpListener::bind("127.0.0.2:0"))
                .expect("bind 127.0.0.2:0 (the whole of 127/8 is loopback on Linux)")
        });
        let other_origin = other
            .as_ref()
            .map(|l| format!("http://{}", l.local_addr().expect("local addr")));
        let shared = Arc::new(Shared {
            mode,
            other_origin: other_origin.clone(),
            received: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        });
        runtime.spawn(accept_loop(main, Origin::Main, Arc::clone(&shared)));
        if let Some(other) = other {
            runtime.spawn(accept_loop(other, Origin::Other, Arc::clone(&shared)));
        }
        HostileServer {
            mode,
            base_url,
            other_origin,
            shared,
            runtime: Some(runtime),
        }
    }

    /// Every request received so far, in order of arrival.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// The requests received at `origin`.
    pub fn received_at(&self, origin: Origin) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.origin == origin)
            .collect()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Cancels every accept loop and handler; their sockets close as they drop.
            runtime.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, origin: Origin, shared: Arc<Shared>) {
    for _ in 0..MAX_CONNECTIONS {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, origin, Arc::clone(&shared)));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// What to do with the connection after a response.
#[derive(PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
    /// Close with a TCP reset (SO_LINGER 0) instead of a FIN.
    Reset,
}

async fn serve_connection(mut stream: TcpStream, origin: Origin, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let path = request.path().to_string();
        let wants_close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        shared
            .received
            .lock()
            .unwrap()
            .push(Received { origin, ..request });
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let hostile =
            origin == Origin::Main && (shared.mode.hits_probe() || path.starts_with("/v1"));
        let next = if hostile {
            misbehave(&mut stream, &shared, &path, id).await
        } else {
            normal(&mut stream, &path, id).await
        };
        match next {
            Next::KeepAlive if !wants_close => {}
            Next::KeepAlive | Next::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            Next::Reset => {
                reset(stream);
                return;
            }
        }
    }
}

/// Read one request (head and Content-Length body) from `stream`; None at EOF, error, idle
/// timeout or an oversized head. Bytes after the request stay in `buffer`.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Received> {
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at;
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return None;
        }
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(IDLE, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY_BYTES);
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(IDLE, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    buffer.drain(..body_start + length);
    Some(Received {
        origin: Origin::Main,
        request_line,
        headers,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A status line and headers, ending with the blank line.
fn head(status_line: &str, headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = format!("{status_line}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A complete HTTP/1.1 response with Content-Length.
fn response(status_line: &str, content_type: Option<&str>, id: u64, body: &[u8]) -> Vec<u8> {
    let mut headers = vec![("X-Request-Id", format!("hostile-{id}"))];
    if let Some(content_type) = content_type {
        headers.push(("Content-Type", content_type.to_string()));
    }
    headers.push(("Content-Length", body.len().to_string()));
    let mut out = head(status_line, &headers);
    out.extend_from_slice(body);
    out
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Next {
    match tokio::time::timeout(HOLD_AT_MOST, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    {
        Ok(Ok(())) => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// A conforming-looking answer: JSON job for `/v1`, `{"status":"ok"}` elsewhere.
async fn normal(stream: &mut TcpStream, path: &str, id: u64) -> Next {
    let body = if path.starts_with("/v1") {
        JOB_JSON
    } else {
        HEALTH_JSON
    };
    write(
        stream,
        &response(
            "HTTP/1.1 200 OK",
            Some("application/json"),
            id,
            body.as_bytes(),
        ),
    )
    .await
}

/// Keep the connection open without answering until the client closes it or `limit` passes.
async fn hold(stream: &mut TcpStream, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        let mut scratch = [0u8; 1024];
        loop {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                // A client pipelining more requests: ignore them, keep holding.
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
}

/// Reset the connection: SO_LINGER 0, then drop, so the kernel sends RST instead of FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn misbehave(stream: &mut TcpStream, shared: &Shared, path: &str, id: u64) -> Next {
    match shared.mode {
        Mode::NonJson => {
            write(
                stream,
                &response("HTTP/1.1 200 OK", Some("text/plain"), id, b"hello"),
            )
            .await
        }
        Mode::InvalidUtf8 => {
            let body = b"{\"id\": \"job_\xff\xfe\", \"status\": \"\xc3\x28\"}";
            write(
                stream,
                &response("HTTP/1.1 200 OK", Some("application/json"), id, body),
            )
            .await
        }
        Mode::TruncatedJson => {
            let body = &JOB_JSON.as_bytes()[..JOB_JSON.len() / 2];
            write(
                stream,
                &response("HTTP/1.1 200 OK", Some("application/json"), id, body),
            )
            .await
        }
        Mode::WrongContentType => {
            write(
                stream,
                &response(
                    "HTTP/1.1 200 OK",
                    Some("text/html; charset=utf-8"),
                    id,
                    JOB_JSON.as_bytes(),
                ),
            )
            .await
        }
        Mode::HtmlError500 => {
            let body = "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>\
                        <body><h1>Internal Server Error</h1><p>Something went wrong.</p></body></html>\n";
            write(
                stream,
                &response(
                    "HTTP/1.1 500 Internal Server Error",
                    Some("text/html"),
                    id,
                    body.as_bytes(),
                ),
            )
            .await
        }
        Mode::Empty200 => write(stream, &response("HTTP/1.1 200 OK", None, id, b"")).await,
        Mode::Empty401 => {
            write(
                stream,
                &response("HTTP/1.1 401 Unauthorized", None, id, b""),
            )
            .await
        }
        Mode::DuplicateHeaders => {
            let mut out = head(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Type", "application/json".into()),
                    ("X-Request-Id", format!("hostile-dup-a-{id}")),
                    ("Content-Type", "text/plain".into()),
                    ("X-Request-Id", format!("hostile-dup-b-{id}")),
                    ("Content-Length", JOB_JSON.len().to_string()),
                ],
            );
            out.extend_from_slice(JOB_JSON.as_bytes());
            write(stream, &out).await
        }
        Mode::HugeHeaderValue => {
            let mut out = head(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Type", "application/json".into()),
                    ("X-Request-Id", format!("hostile-{id}")),
                    ("X-Hostile-Padding", "a".repeat(64 * 1024)),
                    ("Content-Length", JOB_JSON.len().to_string()),
                ],
            );
            out.extend_from_slice(JOB_JSON.as_bytes());
            write(stream, &out).await
        }
        Mode::ManyHeaders => {
            let mut headers: Vec<(&str, String)> = vec![
                ("Content-Type", "application/json".into()),
                ("X-Request-Id", format!("hostile-{id}")),
                ("Content-Length", JOB_JSON.len().to_string()),
            ];
            let names: Vec<String> = (0..200).map(|i| format!("X-Hostile-{i}")).collect();
            for name in &names {
                headers.push((name.as_str(), "v".into()));
            }
            let mut out = head("HTTP/1.1 200 OK", &headers);
            out.extend_from_slice(JOB_JSON.as_bytes());
            write(stream, &out).await;
            Next::Close
        }
        Mode::LargeBody => {
            let out = head(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Type", "application/json".into()),
                    ("X-Request-Id", format!("hostile-{id}")),
                    ("Transfer-Encoding", "chunked".into()),
                ],
            );
            if write(stream, &out).await == Next::Close {
                return Next::Close;
            }
            // "[" + 80 chunks of 64 KiB of "0," + "0]": a valid 5 MiB JSON array.
            let piece = "0,".repeat(32 * 1024);
            let mut chunks = vec!["[".to_string()];
            chunks.extend(std::iter::repeat_n(piece, 80));
            chunks.push("0]".into());
            for chunk in chunks {
                let mut framed = format!("{:X}\r\n", chunk.len()).into_bytes();
                framed.extend_from_slice(chunk.as_bytes());
                framed.extend_from_slice(b"\r\n");
                if write(stream, &framed).await == Next::Close {
                    return Next::Close;
                }
            }
            write(stream, b"0\r\n\r\n").await;
            Next::Close
        }
        Mode::ChunkedStopsEarly | Mode::ChunkedStopsEarlyProbe => {
            let mut out = head(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Type", "application/json".into()),
                    ("X-Request-Id", format!("hostile-{id}")),
                    ("Transfer-Encoding", "chunked".into()),
                ],
            );
            // Announce 0x400 bytes, send 40, close.
            out.extend_from_slice(b"400\r\n");
            out.extend_from_slice(&JOB_JSON.as_bytes()[..40]);
            write(stream, &out).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            Next::Close
        }
        Mode::ResetMidBody => {
            let mut out = head(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Type", "application/json".into()),
                    ("X-Request-Id", format!("hostile-{id}")),
                    ("Content-Length", "1000".into()),
                ],
            );
            out.extend_from_slice(&JOB_JSON.as_bytes()[..100]);
            write(stream, &out).await;
            // Let the client read the head, then reset.
            tokio::time::sleep(Duration::from_millis(150)).await;
            Next::Reset
        }
        Mode::ResetImmediately => Next::Reset,
        Mode::Continue100ThenNothing => {
            write(stream, b"HTTP/1.1 100 Continue\r\n\r\n").await;
            hold(stream, HOLD_AT_MOST).await;
            Next::Close
        }
        Mode::SwitchingProtocols101 => {
            write(
                stream,
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: hostile/1\r\n\r\n",
            )
            .await;
            hold(stream, Duration::from_secs(5)).await;
            Next::Close
        }
        Mode::RedirectOtherOrigin => {
            let other = shared
                .other_origin
                .as_deref()
                .unwrap_or("http://127.0.0.2:9");
            let mut out = head(
                "HTTP/1.1 307 Temporary Redirect",
                &[
                    ("Location", format!("{other}{path}")),
                    ("X-Request-Id", format!("hostile-{id}")),
                    ("Content-Type", "application/json".into()),
                    ("Content-Length", "2".into()),
                ],
            );
            out.extend_from_slice(b"{}");
            write(stream, &out).await
        }
        Mode::Hang | Mode::HangAfterProbe => {
            hold(stream, HOLD_AT_MOST).await;
            Next::Close
        }
        Mode::SlowDrip => {
            let bytes = response(
                "HTTP/1.1 200 OK",
                Some("application/json"),
                id,
                JOB_JSON.as_bytes(),
            );
            // At most HOLD_AT_MOST / 200 ms bytes; stops as soon as a write fails.
            let max = (HOLD_AT_MOST.as_millis() / 200) as usize;
            for byte in bytes.iter().take(max) {
                if write(stream, std::slice::from_ref(byte)).await == Next::Close {
                    return Next::Close;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Next::Close
        }
        Mode::CloseImmediately => Next::Close,
        Mode::Http10NoLength => {
            let mut out = head(
                "HTTP/1.0 200 OK",
                &[
                    ("Content-Type", "application/json".into()),
                    ("X-Request-Id", format!("hostile-{id}")),
                ],
            );
            out.extend_from_slice(if path.starts_with("/v1") {
                JOB_JSON.as_bytes()
            } else {
                HEALTH_JSON.as_bytes()
            });
            write(stream, &out).await;
            Next::Close
        }
        Mode::RateLimited429 => write(stream, &too_many_requests(id, "999999")).await,
        Mode::Unparsable429 => write(stream, &too_many_requests(id, "soon")).await,
        Mode::BodyStallsOpen => {
            let mut out = head(
                "HTTP/1.1 200 OK",
                &[
                    ("Content-Type", "application/json".into()),
                    ("X-Request-Id", format!("hostile-{id}")),
                    ("Content-Length", JOB_JSON.len().to_string()),
                ],
            );
            out.extend_from_slice(&JOB_JSON.as_bytes()[..40]);
            if write(stream, &out).await == Next::Close {
                return Next::Close;
            }
            hold(stream, HOLD_AT_MOST).await;
            Next::Close
        }
        Mode::UnknownJobState => job_api(stream, path, id, "done").await,
        Mode::JobsNeverFinish => job_api(stream, path, id, "processing").await,
    }
}

/// A 429 in the default envelope with `retry_after` as its Retry-After.
fn too_many_requests(id: u64, retry_after: &str) -> Vec<u8> {
    let body = format!(
        r#"{{"error":{{"code":"rate_limited","message":"slow down","request_id":"hostile-{id}"}}}}"#
    );
    let mut out = head(
        "HTTP/1.1 429 Too Many Requests",
        &[
            ("Content-Type", "application/json".into()),
            ("X-Request-Id", format!("hostile-{id}")),
            ("Retry-After", retry_after.into()),
            ("Content-Length", body.len().to_string()),
        ],
    );
    out.extend_from_slice(body.as_bytes());
    out
}

/// A job API that answers every `/v1` request 200 with one job in `status` (a create gets
/// its id): enough for the harness to follow jobs that never end the way the suite knows.
async fn job_api(stream: &mut TcpStream, path: &str, id: u64, status: &str) -> Next {
    let body = if path.ends_with("/start") {
        r#"{"success":true,"id":"job_hostile","status":"processing","message":"started"}"#.into()
    } else if path.starts_with("/v1/jobs/job_hostile") || path.starts_with("/v1/jobs?") {
        let job = format!(
            r#"{{"id":"job_hostile","status":"{status}","progress":50,"output_url":null,"error":null,"created_at":"2024-01-01T00:00:00Z","duration_seconds":null,"billing_status":null}}"#
        );
        if path.starts_with("/v1/jobs?") {
            format!(r#"{{"jobs":[{job}],"total":1,"limit":100,"offset":0}}"#)
        } else {
            job
        }
    } else if path.starts_with("/v1/jobs") {
        r#"{"success":true,"id":"job_hostile","status":"processing","message":"started"}"#.into()
    } else {
        r#"{"events":[]}"#.into()
    };
    write(
        stream,
        &response(
            "HTTP/1.1 200 OK",
            Some("application/json"),
            id,
            body.as_bytes(),
        ),
    )
    .await
}
