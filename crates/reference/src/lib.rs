//! The embedded reference server: a faithful implementation of
//! `docs/contract.md` (sections 1 to 4, the rate-limit and idempotency
//! behaviour of section 5, and the webhooks of section 6), used as the harness's
//! default target.
//!
//! Its main entry points are [`app`] (a socket-free [`axum::Router`] for tests),
//! [`run`] (serve on a bound listener until a shutdown signal) and
//! [`RunningServer`] (serve on a background task). [`ServerConfig::faults`]
//! switches on deliberate contract violations ([`Fault`]) so the harness can
//! prove that each of its checks is able to fail, and [`ServerConfig::variants`]
//! switches on conforming alternatives ([`Variant`]) so it can prove that it
//! accepts every reading the contract allows.
//!
//! Layout: `auth` (keys and rate limits), `context` (request ids, error
//! envelopes, the request log), `handlers` (routes), `state` (tenants, jobs and
//! their time-driven lifecycle), `idempotency`, `ratelimit`, `faults`,
//! `variants`, `uploads` (the upload route and the store its `video_url`s are served from),
//! `webhooks` (the signed, retried deliveries of each job's events to its `webhook_url`).

mod auth;
mod context;
mod dialect;
mod error;
mod faults;
mod handlers;
mod idempotency;
mod log;
mod named;
pub mod openapi;
mod ratelimit;
mod state;
mod time;
mod uploads;
mod variants;
mod webhooks;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use dialect::{Dialect, UnknownDialect};
pub use faults::{Fault, UnknownFault};
pub use uploads::DEFAULT_MAX_UPLOAD_BYTES;
pub use variants::{UnknownVariant, Variant};
pub use webhooks::WebhookConfig;

use state::App;

/// How the reference server behaves. Its `Debug` output redacts the keys.
#[derive(Clone)]
pub struct ServerConfig {
    /// Tenant A's key.
    pub primary_key: String,
    /// Tenant B's key: another tenant, with its own jobs and credits.
    pub second_key: Option<String>,
    /// Tenant C's key: a tenant with 0 credits (for the 402 path).
    pub broke_key: Option<String>,
    /// Credits of each funded tenant at start.
    pub initial_credits: u64,
    /// Time from processing to the terminal state.
    pub job_duration: Duration,
    /// The per-key token bucket (the `sliding-window` variant replaces it).
    pub rate_limit: RateLimitConfig,
    /// Deliberate contract violations to commit.
    pub faults: BTreeSet<Fault>,
    /// Conforming alternative behaviours to take.
    pub variants: BTreeSet<Variant>,
    /// The vendor dialect spoken on the wire (header names, paths, error bodies, states).
    pub dialect: Dialect,
    /// Where to append one JSON line per request, flushed per line.
    pub log_file: Option<PathBuf>,
    /// The largest file `POST /v1/uploads` accepts (the contract's 500 MB by default); a test
    /// sets a small one so that a file over it costs little to send.
    pub max_upload_bytes: u64,
    /// Webhook signing, allowed hosts and retries.
    pub webhooks: WebhookConfig,
}

/// A token bucket per API key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Burst size: tokens in a full bucket.
    pub capacity: u32,
    /// Tokens added back per second.
    pub refill_per_second: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            capacity: 40,
            refill_per_second: 40.0,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            primary_key: "sk_test_primary".to_owned(),
            second_key: Some("sk_test_second".to_owned()),
            broke_key: Some("sk_test_broke".to_owned()),
            initial_credits: 100_000,
            job_duration: Duration::from_secs(1),
            rate_limit: RateLimitConfig::default(),
            faults: BTreeSet::new(),
            variants: BTreeSet::new(),
            dialect: Dialect::Standard,
            log_file: None,
            max_upload_bytes: uploads::DEFAULT_MAX_UPLOAD_BYTES,
            webhooks: WebhookConfig::default(),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REDACTED: &str = "<redacted>";
        let optional = |key: &Option<String>| key.as_ref().map(|_| REDACTED);
        f.debug_struct("ServerConfig")
            .field("primary_key", &REDACTED)
            .field("second_key", &optional(&self.second_key))
            .field("broke_key", &optional(&self.broke_key))
            .field("initial_credits", &self.initial_credits)
            .field("job_duration", &self.job_duration)
            .field("rate_limit", &self.rate_limit)
            .field("faults", &self.faults)
            .field("variants", &self.variants)
            .field("dialect", &self.dialect)
            .field("log_file", &self.log_file)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("webhooks", &self.webhooks)
            .finish()
    }
}

impl ServerConfig {
    /// The defaults with three fresh `sk_live_<32 hex>` keys, so that an
    /// embedded run never uses a guessable key.
    pub fn with_random_keys() -> Self {
        let key = || format!("sk_live_{}", state::random_hex(32));
        ServerConfig {
            primary_key: key(),
            second_key: Some(key()),
            broke_key: Some(key()),
            ..ServerConfig::default()
        }
    }
}

/// The authenticated tenant of a `/v1` request (a request extension).
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Index into the store's tenants.
    pub tenant: usize,
    /// The key whose bucket this request draws from.
    pub bucket_key: String,
}

/// The router, for socket-free tests. If the log file cannot be opened the
/// server runs without it (and says so through `tracing`); [`run`] and
/// [`RunningServer::start`] report that error instead.
pub fn app(config: ServerConfig) -> Router {
    let log = config.log_file.as_deref().and_then(|path| {
        log::RequestLog::open(path)
            .map_err(|err| {
                tracing::error!(path = %path.display(), error = %err, "failed to open the request log");
            })
            .ok()
    });
    router(App::new(config, log))
}

/// Like [`app`], but fails when the log file cannot be opened.
fn try_app(config: ServerConfig) -> io::Result<Router> {
    let log = match config.log_file.as_deref() {
        Some(path) => Some(log::RequestLog::open(path).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("failed to open request log {}: {err}", path.display()),
            )
        })?),
        None => None,
    };
    Ok(router(App::new(config, log)))
}

fn router(app: App) -> Router {
    let read_path = format!("/v1/jobs/{{job_id}}{}", app.table().status_suffix);
    let app = Arc::new(app);
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/health", get(handlers::health))
        .route("/api/pricing", get(handlers::pricing))
        .route("/api/download/{job_id}", get(handlers::download))
        .route("/files/{name}", get(handlers::file))
        .route("/uploads/{video_id}", get(uploads::serve))
        .route(
            "/v1/uploads",
            // The handler enforces the upload limit while streaming.
            post(uploads::upload).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/v1/jobs",
            post(handlers::create_job).get(handlers::list_jobs),
        )
        .route(&read_path, get(handlers::get_job))
        .route("/v1/jobs/{job_id}/start", post(handlers::start_job))
        .route("/v1/usage/summary", get(handlers::usage_summary))
        .route("/v1/usage/events", get(handlers::usage_events))
        .fallback(handlers::fallback)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(from_fn_with_state(app.clone(), auth::keyed))
        .layer(from_fn_with_state(app.clone(), context::request_context))
        .with_state(app)
}

/// Serves the reference server on `listener` until `shutdown` resolves, then
/// lets in-flight requests finish.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let router = try_app(config)?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// How long [`RunningServer::shutdown`] waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A server running on a background task; dropping it or calling
/// [`RunningServer::shutdown`] stops it.
#[derive(Debug)]
pub struct RunningServer {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub base_url: String,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// Binds `addr` (port 0 picks a free port) and serves on a spawned task.
    /// Must be called inside a tokio runtime.
    pub async fn start(config: ServerConfig, addr: SocketAddr) -> io::Result<RunningServer> {
        let router = try_app(config)?;
        let listener = TcpListener::bind(addr).await?;
        let mut addr = listener.local_addr()?;
        // A wildcard bind is reached through loopback.
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Either a send or the sender being dropped stops the server.
                    let _ = stopped.await;
                })
                .await
        });
        Ok(RunningServer {
            base_url: format!("http://{addr}"),
            addr,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address clients reach the server on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, waits up to 5 s for in-flight requests, then aborts.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
