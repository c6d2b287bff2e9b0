//! The server's data: tenants, jobs, usage events, and the job lifecycle.
//!
//! [`App`] is shared by every handler behind an `Arc`; its [`Store`] sits behind
//! one `std::sync::Mutex` that is never held across an `.await`. Job status is
//! computed from the clock when read ([`Job::snapshot`]), so no background task
//! moves jobs along and a job can never go backwards by itself.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use rand::distr::Alphanumeric;
use rand::Rng;

use super::dialect::{Dialect, DialectTable};
use super::faults::Fault;
use super::idempotency::{Entry, SlotKey};
use super::log::RequestLog;
use super::ratelimit::{Buckets, Limiter, Windows, SLIDING_LIMIT, SLIDING_WINDOW};
use super::uploads::Uploads;
use super::variants::Variant;
use super::webhooks::{self, DeliveryRecord};
use super::ServerConfig;

/// A processing model and its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Model {
    Original,
    Light,
    Pro,
    Human,
}

impl Model {
    pub(crate) const ALL: [Model; 4] = [Model::Original, Model::Light, Model::Pro, Model::Human];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Model::Original => "original",
            Model::Light => "light",
            Model::Pro => "pro",
            Model::Human => "human",
        }
    }

    /// Credits per minute of video (docs/contract.md section 4).
    pub(crate) fn credits_per_minute(self) -> u64 {
        match self {
            Model::Original => 60,
            Model::Light => 45,
            Model::Pro => 180,
            Model::Human => 45,
        }
    }

    /// What a job on a video of `video_seconds` costs: the model's rate per minute of
    /// video, rounded up to a whole credit.
    pub(crate) fn job_cost(self, video_seconds: u64) -> u64 {
        (self.credits_per_minute() * video_seconds).div_ceil(60)
    }

    pub(crate) fn parse(s: &str) -> Option<Model> {
        Model::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// An output container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    Webm,
    Mov,
    Mp4,
    Gif,
    Webp,
    PngSequence,
}

impl OutputFormat {
    pub(crate) const ALL: [OutputFormat; 6] = [
        OutputFormat::Webm,
        OutputFormat::Mov,
        OutputFormat::Mp4,
        OutputFormat::Gif,
        OutputFormat::Webp,
        OutputFormat::PngSequence,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            OutputFormat::Webm => "webm",
            OutputFormat::Mov => "mov",
            OutputFormat::Mp4 => "mp4",
            OutputFormat::Gif => "gif",
            OutputFormat::Webp => "webp",
            OutputFormat::PngSequence => "png_sequence",
        }
    }

    /// File extension of the output file; a PNG sequence ships as a zip.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            OutputFormat::PngSequence => "zip",
            other => other.name(),
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Webm => "video/webm",
            OutputFormat::Mov => "video/quicktime",
            OutputFormat::Mp4 => "video/mp4",
            OutputFormat::Gif => "image/gif",
            OutputFormat::Webp => "image/webp",
            OutputFormat::PngSequence => "application/zip",
        }
    }

    /// A few bytes that start like a real file of this type.
    pub(crate) fn sample_bytes(self) -> &'static [u8] {
        match self {
            OutputFormat::Webm => b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm",
            OutputFormat::Mov => b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ",
            OutputFormat::Mp4 => b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
            OutputFormat::Gif => b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
            OutputFormat::Webp => b"RIFF\x0c\x00\x00\x00WEBPVP8 ",
            OutputFormat::PngSequence => b"PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<OutputFormat> {
        OutputFormat::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl Status {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
        }
    }

    /// Parses a `status=` filter; `created` is the contract's other name for pending.
    pub(crate) fn parse_filter(s: &str) -> Option<Status> {
        match s {
            "pending" | "created" => Some(Status::Pending),
            "processing" => Some(Status::Processing),
            "completed" => Some(Status::Completed),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
}

/// A tenant: one API key, its own jobs and credits.
#[derive(Debug)]
pub(crate) struct Tenant {
    pub key: String,
    pub credits: u64,
}

/// A job as stored; what clients see is derived by [`Job::snapshot`].
#[derive(Debug)]
pub(crate) struct Job {
    pub id: String,
    pub tenant: usize,
    /// Creation order, for "newest first" listings.
    pub seq: u64,
    pub created_at: SystemTime,
    pub video_url: String,
    pub model: Model,
    pub output_format: OutputFormat,
    pub webhook_url: Option<String>,
    /// When processing started (the moment it was charged).
    pub started: Option<Instant>,
    pub charged: bool,
    /// The video's length, which the job's `duration_seconds` reports and its charge is
    /// computed from (docs/contract.md sections 3 and 4).
    pub video_seconds: u64,
    /// Reads while processing, for the `progress-goes-down` fault.
    pub reads_processing: u64,
    /// Reads after completion, for the `status-moves-backwards` fault.
    pub reads_completed: u64,
    /// Settled webhook deliveries, in the order they settled.
    pub webhook_events: Vec<DeliveryRecord>,
}

/// The client-visible state of a job at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Snapshot {
    pub status: Status,
    pub progress: u64,
    /// The video's length in seconds once the job completed; `None` before, and for a
    /// video that could not be decoded.
    pub duration_seconds: Option<f64>,
}

/// How long the reference server takes a video to be, in seconds. It decodes no video: a URL
/// that names a long clip (it contains "long") is [`LONG_VIDEO_SECONDS`], any other
/// [`VIDEO_SECONDS`]. Neither is a whole minute, so a charge that ignores the length shows.
pub(crate) fn video_seconds(video_url: &str) -> u64 {
    if video_url.to_ascii_lowercase().contains("long") {
        LONG_VIDEO_SECONDS
    } else {
        VIDEO_SECONDS
    }
}

/// The length of a video that does not name a long clip.
pub(crate) const VIDEO_SECONDS: u64 = 30;
/// The length of a video that names a long clip.
pub(crate) const LONG_VIDEO_SECONDS: u64 = 150;

/// The error message of a failed job.
pub(crate) const FAILURE_MESSAGE: &str = "Processing failed: the source video could not be decoded";

impl Job {
    /// What the job costs at its model's rate and its video's length.
    pub(crate) fn cost(&self) -> u64 {
        self.model.job_cost(self.video_seconds)
    }

    /// A video URL containing "fail" makes the job fail at half its duration.
    pub(crate) fn will_fail(&self) -> bool {
        self.video_url.to_ascii_lowercase().contains("fail")
    }

    /// How long after its start the job ends: a failing job fails at half its duration.
    fn run_time(&self, duration: Duration) -> Duration {
        if self.will_fail() {
            duration / 2
        } else {
            duration
        }
    }

    /// When a started job reaches its terminal state, for a processing time of `duration`.
    pub(crate) fn ends_at(&self, duration: Duration) -> Option<Instant> {
        self.started
            .map(|started| started + self.run_time(duration))
    }

    /// The job's state at `now`, for a processing time of `duration`.
    /// `never_finish` is the `job-never-finishes` fault.
    pub(crate) fn snapshot(
        &self,
        now: Instant,
        duration: Duration,
        never_finish: bool,
    ) -> Snapshot {
        let Some(started) = self.started else {
            return Snapshot {
                status: Status::Pending,
                progress: 0,
                duration_seconds: None,
            };
        };
        let elapsed = now.saturating_duration_since(started);
        let percent = |d: Duration| -> u64 {
            if duration.is_zero() {
                100
            } else {
                ((d.as_secs_f64() / duration.as_secs_f64()) * 100.0)
                    .floor()
                    .min(100.0) as u64
            }
        };
        let end = self.run_time(duration);
        if never_finish || elapsed < end {
            return Snapshot {
                status: Status::Processing,
                progress: percent(elapsed).min(99),
                duration_seconds: None,
            };
        }
        if self.will_fail() {
            Snapshot {
                status: Status::Failed,
                progress: percent(end).min(99),
                duration_seconds: None,
            }
        } else {
            Snapshot {
                status: Status::Completed,
                progress: 100,
                duration_seconds: Some(self.video_seconds as f64),
            }
        }
    }
}

/// One debit of credits.
#[derive(Debug, Clone)]
pub(crate) struct UsageEvent {
    pub id: String,
    pub tenant: usize,
    pub job_id: String,
    pub credits: u64,
    pub created_at: SystemTime,
}

/// Everything mutable, behind one lock.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub tenants: Vec<Tenant>,
    pub jobs: HashMap<String, Job>,
    pub next_seq: u64,
    /// Oldest first.
    pub events: Vec<UsageEvent>,
    pub idempotency: HashMap<SlotKey, Entry>,
}

impl Store {
    /// Tenant index for an exact key match.
    pub(crate) fn tenant_of(&self, key: &str) -> Option<usize> {
        self.tenants.iter().position(|t| t.key == key)
    }

    /// Adds a pending, uncharged job and returns its id.
    pub(crate) fn insert_job(
        &mut self,
        tenant: usize,
        video_url: String,
        model: Model,
        output_format: OutputFormat,
        webhook_url: Option<String>,
    ) -> String {
        let id = loop {
            let candidate = format!("job_{}", random_alphanumeric(20));
            if !self.jobs.contains_key(&candidate) {
                break candidate;
            }
        };
        self.next_seq += 1;
        let seconds = video_seconds(&video_url);
        self.jobs.insert(
            id.clone(),
            Job {
                id: id.clone(),
                tenant,
                seq: self.next_seq,
                created_at: SystemTime::now(),
                video_url,
                model,
                output_format,
                webhook_url,
                started: None,
                charged: false,
                video_seconds: seconds,
                reads_processing: 0,
                reads_completed: 0,
                webhook_events: Vec::new(),
            },
        );
        id
    }

    /// Debits the job's owner for the job's model and length and records a usage event.
    /// Callers check credits first; the debit saturates rather than underflow.
    /// `flat_minute` is the `charge-ignores-duration` fault: every job costs one minute.
    pub(crate) fn charge(&mut self, job_id: &str, flat_minute: bool) {
        let Some(job) = self.jobs.get_mut(job_id) else {
            return;
        };
        let cost = if flat_minute {
            job.model.credits_per_minute()
        } else {
            job.cost()
        };
        job.charged = true;
        let tenant = job.tenant;
        if let Some(t) = self.tenants.get_mut(tenant) {
            t.credits = t.credits.saturating_sub(cost);
        }
        self.events.push(UsageEvent {
            id: format!("evt_{}", random_alphanumeric(20)),
            tenant,
            job_id: job_id.to_owned(),
            credits: cost,
            created_at: SystemTime::now(),
        });
    }

    /// Moves a pending job to processing and charges it.
    pub(crate) fn start(&mut self, job_id: &str, now: Instant, flat_minute: bool) {
        if let Some(job) = self.jobs.get_mut(job_id) {
            job.started = Some(now);
        }
        self.charge(job_id, flat_minute);
    }

    /// Credits left to the job's owner.
    pub(crate) fn credits_of(&self, tenant: usize) -> u64 {
        self.tenants.get(tenant).map_or(0, |t| t.credits)
    }
}

/// Shared server state.
pub(crate) struct App {
    pub config: ServerConfig,
    pub store: Mutex<Store>,
    pub limiter: Mutex<Limiter>,
    pub log: Option<RequestLog>,
    /// The one id every response carries under the `reused-request-id` fault.
    pub fixed_request_id: String,
    /// Job reads so far, so the `slow-status-read` fault can slow every tenth one.
    pub job_reads: std::sync::atomic::AtomicU64,
    /// Uploaded videos, kept (bounded) to be served at their `video_url`.
    pub uploads: Uploads,
    /// The client webhooks are delivered with; `None` if it could not be built (logged).
    pub webhook_client: Option<reqwest::Client>,
}

impl App {
    pub(crate) fn new(config: ServerConfig, log: Option<RequestLog>) -> App {
        let funded = config.initial_credits;
        let mut tenants = vec![Tenant {
            key: config.primary_key.clone(),
            credits: funded,
        }];
        if let Some(key) = &config.second_key {
            tenants.push(Tenant {
                key: key.clone(),
                credits: funded,
            });
        }
        if let Some(key) = &config.broke_key {
            tenants.push(Tenant {
                key: key.clone(),
                credits: 0,
            });
        }
        App {
            limiter: Mutex::new(if config.variants.contains(&Variant::SlidingWindow) {
                Limiter::Window(Windows::new(SLIDING_LIMIT, SLIDING_WINDOW))
            } else {
                Limiter::Bucket(Buckets::new(&config.rate_limit))
            }),
            store: Mutex::new(Store {
                tenants,
                ..Store::default()
            }),
            log,
            fixed_request_id: new_request_id(),
            job_reads: Default::default(),
            uploads: Uploads::default(),
            webhook_client: webhooks::client(),
            config,
        }
    }

    /// Whether a fault is switched on.
    pub(crate) fn has(&self, fault: Fault) -> bool {
        self.config.faults.contains(&fault)
    }

    /// The choices of the dialect the server speaks.
    pub(crate) fn table(&self) -> &'static DialectTable {
        self.config.dialect.table()
    }

    /// Whether a variant is switched on.
    pub(crate) fn variant(&self, variant: Variant) -> bool {
        self.config.variants.contains(&variant)
    }

    /// Locks the store. A poisoned lock (a panic elsewhere) is recovered: the
    /// data is plain values, and a test server must keep answering.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn lock_limiter(&self) -> MutexGuard<'_, Limiter> {
        self.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of the next response.
    pub(crate) fn request_id(&self) -> String {
        if self.has(Fault::ReusedRequestId) {
            self.fixed_request_id.clone()
        } else {
            new_request_id()
        }
    }

    /// A job's state now, honouring `job-never-finishes` and `integer-progress`.
    pub(crate) fn snapshot(&self, job: &Job) -> Snapshot {
        let mut snap = job.snapshot(
            Instant::now(),
            self.config.job_duration,
            self.has(Fault::JobNeverFinishes),
        );
        if self.variant(Variant::IntegerProgress) && snap.status != Status::Completed {
            snap.progress = delayed_progress(snap.progress);
        }
        snap
    }

    /// The name clients see for a status, for a job created at `created_at`: a waiting job is
    /// named by the dialect (the first name until its video is fetched), `created` under the
    /// `created-state` variant.
    pub(crate) fn status_name(&self, status: Status, created_at: SystemTime) -> &'static str {
        if status != Status::Pending {
            return status.name();
        }
        let table = self.table();
        if self.config.dialect == Dialect::Standard && self.variant(Variant::CreatedState) {
            return "created";
        }
        let age = SystemTime::now()
            .duration_since(created_at)
            .unwrap_or_default();
        if age < Duration::from_millis(table.fetch_millis) {
            table.waiting_states[0]
        } else {
            table.waiting_states[1]
        }
    }

    /// Parses a `status=` filter: the dialect's waiting names (both pre-processing names by
    /// default, only `created` under `created-state`) and the other states.
    pub(crate) fn parse_status_filter(&self, s: &str) -> Option<Status> {
        if self.config.dialect == Dialect::Standard {
            if s == "pending" && self.variant(Variant::CreatedState) {
                return None;
            }
            return Status::parse_filter(s);
        }
        if self.table().waiting_states.contains(&s) {
            return Some(Status::Pending);
        }
        Status::parse_filter(s).filter(|status| *status != Status::Pending)
    }

    /// The names a `status=` filter accepts, for the 400 that lists them.
    pub(crate) fn status_filter_names(&self) -> String {
        let waiting = if self.config.dialect != Dialect::Standard {
            self.table().waiting_states.join(", ")
        } else if self.variant(Variant::CreatedState) {
            "created".into()
        } else {
            "pending, created".into()
        };
        format!("{waiting}, processing, completed, failed")
    }
}

/// Share of the job duration the `integer-progress` variant holds progress at 0.
const PRE_PHASE_PERCENT: u64 = 20;

/// Maps a linear progress (0 to 99 while processing) to one that stays 0 for
/// the pre-phase and then rises to 99; monotone, so progress never goes down.
fn delayed_progress(linear: u64) -> u64 {
    let rising = linear.saturating_sub(PRE_PHASE_PERCENT);
    (rising * 100 / (100 - PRE_PHASE_PERCENT)).min(99)
}

/// `req_` + 24 random hex digits.
pub(crate) fn new_request_id() -> String {
    let bytes: [u8; 12] = rand::rng().random();
    let mut id = String::with_capacity(28);
    id.push_str("req_");
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// `n` random ASCII letters and digits.
pub(crate) fn random_alphanumeric(n: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// `n` random lowercase hex digits.
pub(crate) fn random_hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(video_url: &str, started: Option<Instant>) -> Job {
        Job {
            id: "job_x".into(),
            tenant: 0,
            seq: 1,
            created_at: SystemTime::now(),
            video_url: video_url.into(),
            model: Model::Original,
            output_format: OutputFormat::Webm,
            webhook_url: None,
            started,
            charged: started.is_some(),
            video_seconds: video_seconds(video_url),
            reads_processing: 0,
            reads_completed: 0,
            webhook_events: Vec::new(),
        }
    }

    #[test]
    fn lifecycle_is_monotone_and_terminal() {
        let t0 = Instant::now();
        let d = Duration::from_secs(10);
        assert_eq!(
            job("v", None).snapshot(t0, d, false).status,
            Status::Pending
        );
        let j = job("https://x/video.mp4", Some(t0));
        let mut last = 0;
        for s in 0..=12 {
            let snap = j.snapshot(t0 + Duration::from_secs(s), d, false);
            assert!(snap.progress >= last);
            last = snap.progress;
            if s < 10 {
                assert_eq!(snap.status, Status::Processing);
                assert_eq!(snap.progress, s * 10);
                assert_eq!(snap.duration_seconds, None);
            } else {
                assert_eq!(snap.status, Status::Completed);
                assert_eq!(snap.progress, 100);
                assert_eq!(snap.duration_seconds, Some(VIDEO_SECONDS as f64));
            }
        }
        let f = job("https://x/fail.mp4", Some(t0));
        assert_eq!(
            f.snapshot(t0 + Duration::from_secs(4), d, false).status,
            Status::Processing
        );
        let failed = f.snapshot(t0 + Duration::from_secs(5), d, false);
        assert_eq!(failed.status, Status::Failed);
        assert_eq!(failed.duration_seconds, None);
        let never = j.snapshot(t0 + Duration::from_secs(100), d, true);
        assert_eq!((never.status, never.progress), (Status::Processing, 99));
    }

    #[test]
    fn a_charge_is_the_rate_times_the_video_length_rounded_up() {
        assert_eq!(video_seconds("https://x/apiconform-long.mp4"), 150);
        assert_eq!(video_seconds("https://x/short.mp4"), 30);
        assert_eq!(Model::Original.job_cost(30), 30);
        assert_eq!(Model::Light.job_cost(30), 23);
        assert_eq!(Model::Pro.job_cost(150), 450);
        assert_eq!(Model::Human.job_cost(60), 45);
    }

    #[test]
    fn delayed_progress_holds_then_rises_monotonically() {
        assert_eq!(delayed_progress(0), 0);
        assert_eq!(delayed_progress(20), 0);
        assert_eq!(delayed_progress(60), 50);
        assert_eq!(delayed_progress(99), 98);
        assert!((0..100).all(|p| delayed_progress(p) <= delayed_progress(p + 1)));
    }

    #[test]
    fn ids_have_the_documented_shape() {
        let id = new_request_id();
        assert_eq!(id.len(), 28);
        assert!(id.starts_with("req_"));
        assert!(id[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(new_request_id(), id);
        assert_eq!(random_hex(32).len(), 32);
        assert!(random_alphanumeric(20)
            .chars()
            .all(|c| c.is_ascii_alphanumeric()));
    }
}
