//! The rate-limit burst ([`BurstReport`]): a bounded burst until the first 429, then backing
//! off as the server hints and retrying until the request succeeds again.
//!
//! It runs once per run, while no other check sends traffic, and every `rate_limit::*` check
//! judges one aspect of the same report.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{self, StreamExt};

use crate::client::{
    AbortOnDrop, FailureKind, HttpClient, Prepared, Response, SendOptions, TransportError,
};
use crate::context::{Abort, CheckContext};
use crate::hints::{self, RateLimitInfo, RetryAfter};
use crate::lanes::Lane;
use crate::suite::RequestSpec;

/// A burst never runs longer than this, whatever the server does.
const BURST_TIME_LIMIT: Duration = Duration::from_secs(60);

/// What the burst and the recovery after it saw.
#[derive(Clone, Debug)]
pub struct BurstReport {
    /// The request repeated, for messages.
    pub request: String,
    pub sent: u32,
    pub cap: u32,
    pub concurrency: u32,
    pub elapsed: Duration,
    /// Every response, in the order its head arrived, as the judges need it: a few fixed-size
    /// fields each (about 170 bytes), so a burst of 100,000 costs some 17 MB.
    pub observed: Vec<Observed>,
    /// Whole, in the same order: every 429 and 5xx (they stop the burst, so there are few) and
    /// the first [`KEPT_WHOLE_OTHERS`] other responses that are not a 2xx.
    pub kept: Vec<Response>,
    /// Transport errors, in the order they happened (each stops the burst).
    pub transport_errors: Vec<String>,
    /// How many responses had completed when the first 429 arrived (1-based), if one did.
    pub first_limited_after: Option<usize>,
    pub recovery: Option<Recovery>,
    /// Exchanges of the burst the run record counted but did not keep (it keeps a bounded
    /// share of each check's, see [`crate::record::KEPT_FIRST_PER_CHECK`]).
    pub exchanges_not_kept: usize,
}

/// Of the burst's responses that are neither a 2xx, a 429 nor a 5xx (which do not stop it: a
/// burst of 404s), this many are kept whole.
pub const KEPT_WHOLE_OTHERS: usize = 100;

/// A finding about the burst as a whole cites at most this many of its exchanges: the record
/// keeps no more of a check's ordinary ones.
pub const CITED_AT_MOST: usize = crate::record::KEPT_FIRST_PER_CHECK;

/// One response of the burst, as the judges read it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub status: u16,
    /// Index of the exchange in the run record.
    pub exchange: usize,
    /// No later than the request went out. The server counted the request between this and
    /// `received_at`, so of two responses, the one sent after the other arrived was counted
    /// after it, however the lanes were scheduled.
    pub sent_at: SystemTime,
    /// When the response head arrived.
    pub received_at: SystemTime,
    /// Its RateLimit headers, in whichever form.
    pub rate_limit: Option<RateLimitInfo>,
}

impl Observed {
    pub fn of(response: &Response) -> Observed {
        Observed {
            status: response.status,
            exchange: response.exchange,
            sent_at: response
                .received_at
                .checked_sub(response.elapsed)
                .unwrap_or(response.received_at),
            received_at: response.received_at,
            rate_limit: rate_limit_info(response),
        }
    }
}

/// What the burst keeps of its results as they come (see [`BurstReport::observed`]).
#[derive(Debug, Default)]
pub(crate) struct Collected {
    observed: Vec<Observed>,
    kept: Vec<Response>,
    /// Kept responses that are not a 429 or a 5xx.
    kept_others: usize,
    transport_errors: Vec<String>,
}

impl Collected {
    pub(crate) fn with_capacity(responses: usize) -> Collected {
        Collected {
            observed: Vec::with_capacity(responses),
            ..Collected::default()
        }
    }

    pub(crate) fn push(&mut self, result: Result<Response, TransportError>) {
        let response = match result {
            Ok(response) => response,
            Err(error) => return self.transport_errors.push(error.to_string()),
        };
        self.observed.push(Observed::of(&response));
        let stops = response.status == 429 || response.status >= 500;
        if stops {
            self.kept.push(response);
        } else if !response.is_success() && self.kept_others < KEPT_WHOLE_OTHERS {
            self.kept_others += 1;
            self.kept.push(response);
        }
    }
}

/// How a burst went, before its report is assembled.
pub(crate) struct BurstRun {
    pub request: String,
    pub cap: u32,
    pub concurrency: u32,
    pub elapsed: Duration,
    pub exchanges_not_kept: usize,
}

/// Backing off after the first 429 and trying again.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// Each wait and why (the hint it followed, or the documented schedule).
    pub waits: Vec<(Duration, String)>,
    /// A Retry-After longer than the cap was cut to the cap.
    pub capped_hint: Option<Duration>,
    /// Each retry's response (or transport error).
    pub attempts: Vec<Result<Response, String>>,
}

impl Recovery {
    pub fn recovered(&self) -> bool {
        self.attempts
            .last()
            .is_some_and(|a| a.as_ref().is_ok_and(Response::is_success))
    }
}

impl BurstReport {
    /// The report of `run`, whose results are `collected`: responses put in the order their
    /// heads arrived (the lanes push them as they are scheduled).
    pub(crate) fn new(run: BurstRun, collected: Collected) -> BurstReport {
        let Collected {
            mut observed,
            mut kept,
            transport_errors,
            ..
        } = collected;
        observed.sort_by_key(|o| o.received_at);
        kept.sort_by_key(|r| r.received_at);
        let first_limited_after = observed.iter().position(|o| o.status == 429).map(|i| i + 1);
        BurstReport {
            request: run.request,
            sent: (observed.len() + transport_errors.len()) as u32,
            cap: run.cap,
            concurrency: run.concurrency,
            elapsed: run.elapsed,
            observed,
            kept,
            transport_errors,
            first_limited_after,
            recovery: None,
            exchanges_not_kept: run.exchanges_not_kept,
        }
    }

    /// The first 429 of the burst.
    pub fn limited(&self) -> Option<&Response> {
        self.kept.iter().find(|r| r.status == 429)
    }

    /// The burst's exchanges a finding about it as a whole cites: the first
    /// [`CITED_AT_MOST`].
    pub fn cited(&self) -> impl Iterator<Item = usize> + '_ {
        self.observed.iter().take(CITED_AT_MOST).map(|o| o.exchange)
    }

    /// Requests per second actually achieved.
    pub fn achieved_rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64().max(1e-6);
        f64::from(self.sent) / seconds
    }

    /// One line on what the burst did, for every rate_limit message.
    pub fn summary(&self) -> String {
        let first = match self.first_limited_after {
            Some(n) => format!("the first 429 came after {n} responses"),
            None => "no 429 came".into(),
        };
        let kept = match self.exchanges_not_kept {
            0 => String::new(),
            n => format!(
                "; the record keeps {} of its exchanges, {n} more were counted",
                self.sent as usize - n.min(self.sent as usize)
            ),
        };
        format!(
            "burst of {} x {} (cap {}, concurrency {}) in {:.2} s, {:.0} requests/s; {first}{kept}",
            self.sent,
            self.request,
            self.cap,
            self.concurrency,
            self.elapsed.as_secs_f64(),
            self.achieved_rate()
        )
    }

    /// The responses that carried RateLimit headers, with them, in arrival order.
    pub fn rate_limit_infos(&self) -> impl Iterator<Item = (&Observed, &RateLimitInfo)> {
        self.observed
            .iter()
            .filter_map(|o| o.rate_limit.as_ref().map(|info| (o, info)))
    }
}

/// The RateLimit headers of a response, in whichever form it used; a reset given as a date
/// is read against the moment the response arrived.
pub fn rate_limit_info(response: &Response) -> Option<RateLimitInfo> {
    hints::parse_rate_limit(
        response
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str())),
        response.received_at,
    )
}

/// The parsed Retry-After of a response, or why not: `Ok(None)` when absent.
pub fn retry_after(response: &Response) -> Result<Option<RetryAfter>, String> {
    match response.header("retry-after") {
        None => Ok(None),
        Some(value) => hints::parse_retry_after(value).map(Some).ok_or_else(|| {
            format!("Retry-After \"{value}\" is neither delta-seconds nor an HTTP-date")
        }),
    }
}

/// Run the burst, then the recovery. `cx` must hold the run's exclusive traffic lock.
pub async fn run(cx: &CheckContext<'_>) -> Result<BurstReport, Abort> {
    let settings = &cx.settings().burst;
    let spec = settings
        .request
        .clone()
        .unwrap_or_else(|| RequestSpec::get(&cx.settings().jobs.read_path));
    let outgoing = cx.outgoing(&spec);
    let cap = settings.max_requests;
    let concurrency = settings.concurrency;
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let client = cx.client();
    cx.progress(&format!(
        "burst: up to {cap} requests, {concurrency} at a time, until the first 429"
    ));
    // Built once, sent `cap` times: the lean path parses and records only what is judged.
    let prepared = client.prepare(&outgoing).map(Arc::new);
    let collected = match &prepared {
        Ok(prepared) if prepared.has_lanes() => {
            on_lanes(cx, Arc::clone(prepared), cap, concurrency, started).await
        }
        _ => {
            stream::iter(0..cap)
                .map(|_| {
                    let (stop, prepared) = (&stop, &prepared);
                    async move {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > BURST_TIME_LIMIT {
                            return None;
                        }
                        let result = match prepared {
                            Ok(prepared) => client.send_prepared(cx.name, prepared).await,
                            Err(refused) => Err(refused.clone()),
                        };
                        stop_on_harm(stop, &result);
                        Some(result)
                    }
                })
                .buffer_unordered(concurrency as usize)
                .fold(
                    Collected::with_capacity(expected_responses(cap)),
                    |mut collected, result| async move {
                        if let Some(result) = result {
                            collected.push(result);
                        }
                        collected
                    },
                )
                .await
        }
    };
    let run = BurstRun {
        request: spec.describe(),
        cap,
        concurrency,
        elapsed: started.elapsed(),
        exchanges_not_kept: cx.run.record.exchanges_not_kept(cx.name),
    };
    let mut report = BurstReport::new(run, collected);
    if let Some(limited) = report.limited().cloned() {
        report.recovery = Some(recover(cx, &outgoing, limited).await);
    }
    Ok(report)
}

/// Room for the responses of a burst of `cap` that stops early, as most do (a long one grows).
fn expected_responses(cap: u32) -> usize {
    cap.min(1000) as usize
}

/// Stop at the first 429, and at any sign of harm (5xx, transport error).
fn stop_on_harm(stop: &AtomicBool, result: &Result<Response, TransportError>) {
    if result
        .as_ref()
        .map_or(true, |r| r.status == 429 || r.status >= 500)
    {
        stop.store(true, Ordering::Relaxed);
    }
}

/// The burst on `concurrency` lanes, each one connection sending its requests one after
/// another (see [`crate::lanes`]) in a task of its own, so the lanes spread over the runtime's
/// threads as a load tool's workers do, until `cap` requests were sent or one lane stops them
/// all.
async fn on_lanes(
    cx: &CheckContext<'_>,
    prepared: Arc<Prepared>,
    cap: u32,
    concurrency: u32,
    started: Instant,
) -> Collected {
    let burst = Arc::new(LaneBurst {
        client: cx.shared_client(),
        check: cx.name.to_string(),
        prepared,
        cap,
        started,
        stop: AtomicBool::new(false),
        issued: AtomicU32::new(0),
        collected: Mutex::new(Collected::with_capacity(expected_responses(cap))),
    });
    // Aborted if the burst is dropped (the deadline, an interrupt): no lane outlives it.
    let lanes: Vec<AbortOnDrop<()>> = (0..concurrency.clamp(1, cap.max(1)))
        .map(|_| AbortOnDrop(tokio::spawn(Arc::clone(&burst).drive_lane())))
        .collect();
    for lane in lanes {
        if let Err(error) = lane.await {
            burst.push(Err(TransportError {
                request_line: burst.prepared.request_line().to_string(),
                cause: format!("a burst lane's task ended: {error}"),
                kind: FailureKind::Transport,
            }));
        }
    }
    burst.take_collected()
}

/// What the lanes of one burst share: the request, the count and the results.
struct LaneBurst {
    client: Arc<HttpClient>,
    check: String,
    prepared: Arc<Prepared>,
    cap: u32,
    started: Instant,
    stop: AtomicBool,
    /// Requests taken by the lanes so far (one more than sent once the cap is reached).
    issued: AtomicU32,
    collected: Mutex<Collected>,
}

impl LaneBurst {
    /// One lane: send on its own connection until the cap, the time limit or a stop.
    async fn drive_lane(self: Arc<Self>) {
        let mut lane = Lane::default();
        while !self.stop.load(Ordering::Relaxed)
            && self.started.elapsed() <= BURST_TIME_LIMIT
            && self.issued.fetch_add(1, Ordering::Relaxed) < self.cap
        {
            let result = self
                .client
                .send_on_lane(&self.check, &self.prepared, &mut lane)
                .await;
            stop_on_harm(&self.stop, &result);
            self.push(result);
        }
    }

    fn push(&self, result: Result<Response, TransportError>) {
        self.collected().push(result);
    }

    /// What the lanes collected, once they have all ended.
    fn take_collected(&self) -> Collected {
        std::mem::take(&mut *self.collected())
    }

    fn collected(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Wait as `limited` hints (or the documented schedule), retry, and repeat until a success
/// or the suite's number of attempts.
async fn recover(
    cx: &CheckContext<'_>,
    outgoing: &crate::client::Outgoing,
    limited: Response,
) -> Recovery {
    let attempts_allowed = cx.settings().burst.recovery_attempts.max(1);
    let mut recovery = Recovery {
        waits: Vec::new(),
        capped_hint: None,
        attempts: Vec::new(),
    };
    let mut last = limited;
    for attempt in 0..attempts_allowed {
        let backoff = cx.client().backoff_after(&last, attempt);
        if let Some(wanted) = backoff.capped_from {
            recovery.capped_hint.get_or_insert(wanted);
        }
        let (wait, why) = (backoff.wait, backoff.reason);
        cx.progress(&format!(
            "rate limited; waiting {:.1} s ({why}) before retrying",
            wait.as_secs_f64()
        ));
        if let Err(error) = cx
            .client()
            .wait_on_429(cx.name, &last.request_line, wait)
            .await
        {
            recovery.attempts.push(Err(error.to_string()));
            recovery.waits.push((Duration::ZERO, why));
            break;
        }
        recovery.waits.push((wait, why));
        let options = SendOptions {
            paced: false,
            retry: false,
        };
        match cx.client().send(cx.name, outgoing, options).await {
            Ok(response) => {
                let done = response.status != 429;
                recovery.attempts.push(Ok(response.clone()));
                if done {
                    break;
                }
                last = response;
            }
            Err(error) => {
                recovery.attempts.push(Err(error.to_string()));
                break;
            }
        }
    }
    recovery
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> BurstRun {
        BurstRun {
            request: "GET /test".into(),
            cap: 1000,
            concurrency: 4,
            elapsed: Duration::from_millis(10),
            exchanges_not_kept: 0,
        }
    }

    #[test]
    fn a_long_burst_keeps_few_responses_whole() {
        let mut collected = Collected::default();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let statuses = (0..500)
            .map(|_| 200)
            .chain((0..150).map(|_| 404))
            .chain([503, 429]);
        for (i, status) in statuses.enumerate() {
            let mut response = Response::for_test(status, &[("X-RateLimit-Remaining", "3")], "");
            response.exchange = i;
            // Pushed in reverse: the report puts them in the order they arrived.
            response.received_at = start - Duration::from_millis(i as u64);
            collected.push(Ok(response));
        }
        let report = BurstReport::new(run(), collected);
        assert_eq!(report.sent, 652);
        assert_eq!(report.observed.len(), 652);
        assert_eq!(report.observed[0].exchange, 651, "the 429 arrived first");
        assert_eq!(report.first_limited_after, Some(1));
        let kept: Vec<u16> = report.kept.iter().map(|r| r.status).collect();
        assert_eq!(kept.len(), 2 + KEPT_WHOLE_OTHERS);
        assert_eq!(kept[..2], [429, 503]);
        assert!(kept[2..].iter().all(|s| *s == 404));
        assert_eq!(report.limited().map(|r| r.exchange), Some(651));
        assert_eq!(report.cited().count(), CITED_AT_MOST);
        assert_eq!(report.rate_limit_infos().count(), 652);
    }
}
