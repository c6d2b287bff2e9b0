//! The record of a run: every HTTP exchange and every check outcome, as data.
//!
//! The console output is one rendering of this record; reports are others. Everything stored
//! here is already masked (see [`crate::secrets`]), so any renderer may show all of it.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::events::{CheckId, EventBus, RunEvent};
use crate::finding::Finding;

/// Whether a violation fails the check (MUST) or only warns unless `--strict` (SHOULD).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Level {
    #[serde(rename = "MUST")]
    Must,
    #[serde(rename = "SHOULD")]
    Should,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        })
    }
}

/// How a check ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Passed,
    /// A contract violation at the check's level (or a SHOULD under `--strict`).
    Failed,
    /// SHOULD-level violations without `--strict`: shown, but the run still passes.
    Warned,
    /// The check could not run; the message says why (no job, no second key, ...).
    Ignored,
    /// The check could not reach a verdict: transport error, timeout, or a bug in the check.
    Errored,
}

/// One HTTP request and what came back, as shown to users (masked).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Exchange {
    pub id: usize,
    /// The check that sent it, or `run` for the harness's own requests (probe, job set-up).
    pub check: String,
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    /// The JSON body sent, if any (masked).
    pub request_body: Option<String>,
    /// The parts of a multipart body sent, without their bytes (masked).
    pub request_parts: Vec<PartSummary>,
    pub status: Option<u16>,
    pub response_headers: Vec<(String, String)>,
    /// The start of the response body, cut at a bounded size.
    pub body_excerpt: String,
    /// Transport error, when there was no response.
    pub error: Option<String>,
    #[serde(skip)]
    pub started: SystemTime,
    pub elapsed: Duration,
    /// The request id the server gave this response (header or error body), if any.
    pub request_id: Option<String>,
    /// The job this exchange was about (path placeholder or created job).
    pub job_id: Option<String>,
    /// The response contained a registered secret (before masking).
    pub echoed_secret: bool,
}

/// A part of a multipart request as the record shows it: what was sent, not the bytes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartSummary {
    /// The form field.
    pub name: String,
    pub filename: String,
    /// The part's own Content-Type; None when it was sent without one.
    pub content_type: Option<String>,
    /// Bytes of the file.
    pub size: u64,
}

/// The outcome of one check.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CheckRecord {
    pub name: String,
    pub area: String,
    pub level: Level,
    pub outcome: Outcome,
    /// Why it failed, warned, was ignored or errored; empty when it passed. For a failure or
    /// warning, the messages of `findings`, one a line.
    pub message: String,
    /// The violations it saw (masked). An errored check that the run's job set-up stopped has
    /// one, `run.job_setup`, citing that step's exchange.
    pub findings: Vec<Finding>,
    /// Fields seen in live responses that the schema does not declare; never a failure
    /// unless `--strict-drift` (then they are among `findings` too).
    pub drift: Vec<Finding>,
    pub duration: Duration,
    /// Ids of the exchanges this check made (see [`RunRecord::exchanges`]).
    pub exchanges: Vec<usize>,
    /// It passed only after a transport error was retried.
    pub flaky: bool,
    /// Time spent waiting on the server's say-so (Retry-After, backoff, job polling).
    pub waited: Duration,
}

/// Wall-clock time during which at least one of several concurrent waiters was waiting.
///
/// Checks wait side by side; adding their waits up would claim more waiting than the run
/// lasted. The clock counts the union of the waiting intervals instead.
#[derive(Debug, Default)]
pub struct WaitClock {
    state: Mutex<WaitState>,
}

#[derive(Debug, Default)]
struct WaitState {
    waiting: usize,
    since: Option<Instant>,
    total: Duration,
}

impl WaitClock {
    /// Count the time until the returned guard is dropped.
    pub fn start(&self) -> WaitGuard<'_> {
        let mut state = lock(&self.state);
        if state.waiting == 0 {
            state.since = Some(Instant::now());
        }
        state.waiting += 1;
        WaitGuard { clock: self }
    }

    /// The wall-clock time spent waiting so far, the ongoing wait included.
    pub fn total(&self) -> Duration {
        let state = lock(&self.state);
        state.total + state.since.map_or(Duration::ZERO, |since| since.elapsed())
    }
}

/// An ongoing wait of a [`WaitClock`]; it ends when dropped.
pub struct WaitGuard<'a> {
    clock: &'a WaitClock,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.clock.state);
        state.waiting = state.waiting.saturating_sub(1);
        if state.waiting == 0 {
            if let Some(since) = state.since.take() {
                state.total += since.elapsed();
            }
        }
    }
}

/// The record keeps every check's first this many exchanges in full...
pub const KEPT_FIRST_PER_CHECK: usize = 100;
/// ...and after those, this many more that are notable (not a 2xx: an error status, a
/// transport error, or a response that echoed a key). Past both, an exchange is counted and
/// not kept, so a long burst or a big suite cannot grow the record without bound.
pub const KEPT_NOTABLE_PER_CHECK: usize = 100;

/// True when an exchange with this status (None: no response) is worth keeping past the first
/// [`KEPT_FIRST_PER_CHECK`] of its check.
pub fn is_notable(status: Option<u16>, echoed_secret: bool) -> bool {
    echoed_secret || !status.is_some_and(|s| (200..300).contains(&s))
}

/// The exchanges of a run as kept: ids are given to every exchange, kept or not.
#[derive(Debug, Default)]
struct Exchanges {
    kept: Vec<Exchange>,
    next_id: usize,
    /// Per check: exchanges kept, notable ones kept past the first, and those not kept.
    per_check: std::collections::HashMap<String, Kept>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Kept {
    first: usize,
    notable: usize,
    dropped: usize,
}

impl Exchanges {
    /// The next id, and whether the exchange of `check` gets kept.
    fn admit(&mut self, check: &str, notable: bool) -> (usize, bool) {
        let id = self.next_id;
        self.next_id += 1;
        let kept = match self.per_check.get_mut(check) {
            Some(kept) => kept,
            None => self.per_check.entry(check.to_string()).or_default(),
        };
        let keep = if kept.first < KEPT_FIRST_PER_CHECK {
            kept.first += 1;
            true
        } else if notable && kept.notable < KEPT_NOTABLE_PER_CHECK {
            kept.notable += 1;
            true
        } else {
            kept.dropped += 1;
            false
        };
        (id, keep)
    }
}

/// Everything that happened in one run. Shared by all checks; append-only. What it records
/// it also tells its [`EventBus`], as it happens.
#[derive(Debug, Default)]
pub struct RunRecord {
    events: EventBus,
    exchanges: Mutex<Exchanges>,
    checks: Mutex<Vec<CheckRecord>>,
    /// Waits by the check (or `run::...` step) that waited.
    waits: Mutex<Vec<(String, Duration)>>,
    /// The run's waiting in wall-clock time (concurrent waits counted once).
    wait_clock: WaitClock,
    /// The run's waiting or having a request in flight, in wall-clock time: the rest of the
    /// run is the harness's own work (see [`RunRecord::busy`]).
    busy_clock: WaitClock,
    /// Checks that needed a transport retry.
    flaky: Mutex<Vec<String>>,
    /// Facts about the run as a whole, each said once (a job set-up that failed, ...).
    notices: Mutex<Vec<String>>,
}

impl RunRecord {
    /// A record that tells `events` what it records.
    pub fn with_events(events: EventBus) -> RunRecord {
        RunRecord {
            events,
            ..RunRecord::default()
        }
    }

    /// The run's sinks, for what happens outside the record (a check starting, the run's end).
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// Store an exchange (if its check has not had its share, see [`KEPT_FIRST_PER_CHECK`])
    /// and return its id.
    pub fn add_exchange(&self, exchange: Exchange) -> usize {
        let notable = is_notable(exchange.status, exchange.echoed_secret);
        let check = exchange.check.clone();
        self.add_exchange_with(&check, notable, move || exchange)
    }

    /// Give an exchange of `check` its id, and build and store it with `make` only if it is
    /// kept: the burst's many alike exchanges past the first cost nothing.
    pub fn add_exchange_with(
        &self,
        check: &str,
        notable: bool,
        make: impl FnOnce() -> Exchange,
    ) -> usize {
        let mut exchanges = lock(&self.exchanges);
        let (id, keep) = exchanges.admit(check, notable);
        if keep {
            let mut exchange = make();
            exchange.id = id;
            // Told under the lock, so sinks hear exchanges in the order of their ids.
            self.events.emit(RunEvent::Exchange(&exchange));
            exchanges.kept.push(exchange);
        }
        id
    }

    /// How many exchanges the run made, kept or not.
    pub fn exchange_count(&self) -> usize {
        lock(&self.exchanges).next_id
    }

    /// How many exchanges of `check` were counted but not kept.
    pub fn exchanges_not_kept(&self, check: &str) -> usize {
        lock(&self.exchanges)
            .per_check
            .get(check)
            .map_or(0, |kept| kept.dropped)
    }

    /// Store the outcome of check `id`, and tell the sinks it finished.
    pub fn add_check(&self, id: CheckId, check: CheckRecord) {
        self.events
            .emit(RunEvent::CheckFinished { id, record: &check });
        lock(&self.checks).push(check);
    }

    /// Wait `duration` on the server's say-so (a hint, a backoff, a poll interval) for `check`,
    /// and record it.
    pub async fn wait(&self, check: &str, duration: Duration) {
        {
            let _counted = (self.wait_clock.start(), self.busy_clock.start());
            tokio::time::sleep(duration).await;
        }
        self.add_wait(check, duration);
    }

    /// Count the run as waiting on purpose until the returned guard drops: a request held by
    /// the pacer under the target's rate limit. It adds to the run's waiting (wall-clock,
    /// concurrent waits once), not to any check's own.
    pub fn pacing(&self) -> (WaitGuard<'_>, WaitGuard<'_>) {
        (self.wait_clock.start(), self.busy_clock.start())
    }

    /// Count a request as in flight until the returned guard drops: the run waits on the
    /// server then, though not on purpose (a slow answer, a server that holds a request).
    pub fn in_flight(&self) -> WaitGuard<'_> {
        self.busy_clock.start()
    }

    /// Wall-clock time the run waited on purpose or had a request in flight (each instant
    /// once): the run's duration less this is the harness's own work.
    pub fn busy(&self) -> Duration {
        self.busy_clock.total()
    }

    /// Note that `check` waited `duration` on the server, without waiting here.
    pub fn add_wait(&self, check: &str, duration: Duration) {
        lock(&self.waits).push((check.to_string(), duration));
        self.events.emit(RunEvent::Waited {
            by: check,
            duration,
        });
    }

    /// Say `notice` about the run as a whole, once however often it is said.
    pub fn add_notice(&self, notice: &str) {
        let mut notices = lock(&self.notices);
        if !notices.iter().any(|n| n == notice) {
            notices.push(notice.to_string());
        }
    }

    /// Every notice about the run, in the order first said.
    pub fn notices(&self) -> Vec<String> {
        lock(&self.notices).clone()
    }

    /// Note that `check` got an answer only after retrying a transport error.
    pub fn mark_flaky(&self, check: &str) {
        lock(&self.flaky).push(check.to_string());
        self.events.emit(RunEvent::Retried { by: check });
    }

    /// True when `check` needed a transport retry.
    pub fn was_flaky(&self, check: &str) -> bool {
        lock(&self.flaky).iter().any(|c| c == check)
    }

    /// Total waiting by `check`; for the whole run (`None`), wall-clock time in which any
    /// check waited, or the sum of the recorded waits when none went through [`Self::wait`].
    pub fn waited(&self, check: Option<&str>) -> Duration {
        let waits = lock(&self.waits);
        let sum = waits
            .iter()
            .filter(|(c, _)| check.is_none_or(|name| name == c))
            .map(|(_, d)| *d)
            .sum();
        match check {
            Some(_) => sum,
            None => {
                let clocked = self.wait_clock.total();
                if clocked.is_zero() {
                    sum
                } else {
                    clocked
                }
            }
        }
    }

    /// A copy of every exchange kept so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.exchanges).kept.clone()
    }

    /// A copy of every check outcome so far, in completion order.
    pub fn checks(&self) -> Vec<CheckRecord> {
        lock(&self.checks).clone()
    }

    /// Exchanges made by `check` and kept.
    pub fn exchanges_of(&self, check: &str) -> Vec<Exchange> {
        lock(&self.exchanges)
            .kept
            .iter()
            .filter(|e| e.check == check)
            .cloned()
            .collect()
    }
}

/// A poisoned lock only means another check panicked; the data is still append-only and sound.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_waits_count_once_in_wall_clock_time() {
        let record = RunRecord::default();
        let outer = Instant::now();
        let wait = Duration::from_millis(30);
        tokio::join!(record.wait("a", wait), record.wait("b", wait));
        let wall = outer.elapsed();
        // Each check keeps its own sum; the run counts the union of the intervals.
        assert_eq!(record.waited(Some("a")), wait);
        assert_eq!(record.waited(Some("b")), wait);
        let run = record.waited(None);
        assert!(run >= wait && run <= wall, "run waited {run:?} in {wall:?}");
    }

    fn exchange(check: &str, status: Option<u16>) -> Exchange {
        Exchange {
            id: 0,
            check: check.into(),
            method: "GET".into(),
            url: "http://127.0.0.1/x".into(),
            request_headers: Vec::new(),
            request_body: None,
            request_parts: Vec::new(),
            status,
            response_headers: Vec::new(),
            body_excerpt: String::new(),
            error: None,
            started: SystemTime::now(),
            elapsed: Duration::ZERO,
            request_id: None,
            job_id: None,
            echoed_secret: false,
        }
    }

    #[test]
    fn the_record_keeps_a_bounded_share_of_each_check() {
        let record = RunRecord::default();
        let many = KEPT_FIRST_PER_CHECK + KEPT_NOTABLE_PER_CHECK + 50;
        for _ in 0..many {
            record.add_exchange(exchange("burst", Some(200)));
        }
        for _ in 0..many {
            record.add_exchange(exchange("burst", Some(429)));
        }
        record.add_exchange(exchange("other", Some(200)));
        // Ids count every exchange; the record keeps the first ones and some notable ones.
        assert_eq!(record.exchange_count(), 2 * many + 1);
        let kept = record.exchanges_of("burst");
        assert_eq!(kept.len(), KEPT_FIRST_PER_CHECK + KEPT_NOTABLE_PER_CHECK);
        assert!(kept[..KEPT_FIRST_PER_CHECK]
            .iter()
            .all(|e| e.status == Some(200)));
        assert!(kept[KEPT_FIRST_PER_CHECK..]
            .iter()
            .all(|e| e.status == Some(429)));
        assert_eq!(
            record.exchanges_not_kept("burst"),
            2 * many - KEPT_FIRST_PER_CHECK - KEPT_NOTABLE_PER_CHECK
        );
        // Another check has its own share, and ids stay unique.
        let other = record.exchanges_of("other");
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].id, 2 * many);
        let mut ids: Vec<usize> = record.exchanges().iter().map(|e| e.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), record.exchanges().len());
    }

    /// Tells back what it was told, as text.
    #[derive(Default)]
    struct Heard(Mutex<Vec<String>>);

    impl crate::events::EventSink for Heard {
        fn event(&self, event: &RunEvent<'_>) {
            let said = match event {
                RunEvent::CheckStarted { id, name } => format!("started {} {name}", id.0),
                RunEvent::Exchange(e) => format!("exchange {} of {}", e.id, e.check),
                RunEvent::Waited { by, duration } => format!("{by} waited {duration:?}"),
                RunEvent::Retried { by } => format!("{by} retried"),
                RunEvent::CheckFinished { id, record } => {
                    format!("finished {} {} {:?}", id.0, record.name, record.outcome)
                }
                RunEvent::RunFinished { .. } => "run finished".into(),
            };
            lock(&self.0).push(said);
        }
    }

    #[test]
    fn what_the_record_stores_it_tells_its_sinks_in_order() {
        let heard = std::sync::Arc::new(Heard::default());
        let record = RunRecord::with_events(EventBus::new(vec![heard.clone()]));
        record.add_exchange(exchange("auth::valid_key", Some(200)));
        record.add_wait("auth::valid_key", Duration::from_millis(5));
        record.mark_flaky("auth::valid_key");
        record.add_check(
            CheckId(3),
            CheckRecord {
                name: "auth::valid_key".into(),
                area: "auth".into(),
                level: Level::Must,
                outcome: Outcome::Passed,
                message: String::new(),
                findings: Vec::new(),
                drift: Vec::new(),
                duration: Duration::ZERO,
                exchanges: vec![0],
                flaky: true,
                waited: Duration::from_millis(5),
            },
        );
        assert_eq!(
            *lock(&heard.0),
            [
                "exchange 0 of auth::valid_key",
                "auth::valid_key waited 5ms",
                "auth::valid_key retried",
                "finished 3 auth::valid_key Passed",
            ]
        );
        // An exchange past the check's share is counted, not kept, and not told.
        for _ in 0..KEPT_FIRST_PER_CHECK {
            record.add_exchange(exchange("burst", Some(200)));
        }
        let told = lock(&heard.0).len();
        record.add_exchange(exchange("burst", Some(200)));
        assert_eq!(lock(&heard.0).len(), told);
    }

    #[test]
    fn notices_are_said_once() {
        let record = RunRecord::default();
        record.add_notice("job set-up: x");
        record.add_notice("job set-up: x");
        record.add_notice("other");
        assert_eq!(record.notices(), ["job set-up: x", "other"]);
    }
}
