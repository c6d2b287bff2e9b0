//! What every check of a run shares ([`RunContext`]) and what one check sees ([`CheckContext`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::burst::BurstReport;
use crate::client::{HttpClient, Outgoing, Response, SendOptions};
use crate::jobs;
use crate::record::RunRecord;
use crate::schemas::SchemaSet;
use crate::suite::{RequestSpec, Settings, Suite};
use crate::webhooks::WebhookReport;

/// What the user allowed and provided for this run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Checks that create jobs or spend credits may run.
    pub allow_writes: bool,
    /// SHOULD-level findings fail instead of warning.
    pub strict: bool,
    /// Drift (fields the schemas do not declare) fails the check instead of being reported
    /// beside it.
    pub strict_drift: bool,
    /// A file the target's logs are written to.
    pub logs: Option<PathBuf>,
    /// An existing job to read.
    pub job_id: Option<String>,
    /// Overrides the suite's job poll interval (the embedded server finishes jobs in a second).
    pub poll_interval: Option<Duration>,
    /// Say on stderr what long checks are waiting for (a person is watching a terminal).
    pub progress: bool,
    /// Overrides every job deadline (the embedded server's jobs finish in about a second).
    pub job_deadline: Option<Duration>,
    /// When the whole run must end (`--deadline`): checks still running are stopped.
    pub deadline: Option<std::time::Instant>,
    /// Raised by SIGINT or SIGTERM: checks still running are stopped, the others not run.
    pub interrupt: crate::interrupt::Interrupt,
    /// Where the webhook receiver listens, and the URL the target is given.
    pub webhooks: crate::webhooks::WebhookOptions,
}

/// Shared by all checks of a run.
pub struct RunContext {
    pub suite: Suite,
    pub schemas: SchemaSet,
    /// Shared, so work spawned as tasks of its own (the burst's lanes) can hold it.
    pub client: Arc<HttpClient>,
    pub record: Arc<RunRecord>,
    pub options: RunOptions,
    /// A job id that no server has, fresh for each run.
    pub unknown_job_id: String,
    /// The job the checks read, obtained once (given, or created on first need).
    job: OnceCell<Result<String, String>>,
    /// That job followed to its end, once, for the checks that judge a finished job.
    finished_job: OnceCell<Result<String, String>>,
    /// Every job the run created, in order: a check that needs any job can use one.
    created_jobs: std::sync::Mutex<Vec<String>>,
    /// What the run learnt while waiting on jobs (one that never finishes, ...).
    pub job_waits: jobs::JobWaits,
    /// The rate-limit burst, run once for all `rate_limit::*` checks.
    burst: OnceCell<Result<Arc<BurstReport>, Abort>>,
    /// The webhook scenario, run once for all `webhooks::*` checks.
    webhooks: OnceCell<Result<Arc<WebhookReport>, Abort>>,
    /// Checks share it for reading; a check that needs the target to itself takes it for writing.
    pub traffic: tokio::sync::RwLock<()>,
}

/// Why a check stopped without a verdict of its own.
#[derive(Clone, Debug)]
pub enum Abort {
    /// It cannot run here; the reason tells the user what would let it run.
    Ignored(String),
    /// It could not get an answer to judge: transport error, a job that could not be set up.
    Errored(String),
}

impl From<crate::client::TransportError> for Abort {
    /// A request that got no answer: a transport error, or one not sent, each said as such.
    fn from(error: crate::client::TransportError) -> Abort {
        if error.is_transport() {
            Abort::Errored(format!("transport error: {error}"))
        } else {
            Abort::Errored(error.to_string())
        }
    }
}

impl RunContext {
    pub fn new(
        suite: Suite,
        schemas: SchemaSet,
        client: HttpClient,
        record: Arc<RunRecord>,
        options: RunOptions,
    ) -> RunContext {
        RunContext {
            suite,
            schemas,
            client: Arc::new(client),
            record,
            options,
            unknown_job_id: format!("apiconform-no-such-job-{:016x}", rand::random::<u64>()),
            job: OnceCell::new(),
            finished_job: OnceCell::new(),
            created_jobs: Default::default(),
            job_waits: jobs::JobWaits::default(),
            burst: OnceCell::new(),
            webhooks: OnceCell::new(),
            traffic: tokio::sync::RwLock::new(()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.suite.settings
    }

    /// How often jobs are polled: the suite's interval, unless the run overrides it.
    pub fn poll_interval(&self) -> Duration {
        self.options
            .poll_interval
            .unwrap_or(Duration::from_secs_f64(
                self.settings().jobs.poll_interval_seconds,
            ))
    }

    /// How long a job may take: the run's override, else the input's, else the suite's.
    pub fn job_deadline(&self, input: Option<f64>) -> Duration {
        self.options.job_deadline.unwrap_or_else(|| {
            Duration::from_secs_f64(input.unwrap_or(self.settings().jobs.deadline_seconds))
        })
    }

    /// The run's burst report, running the burst if no check has yet. The caller holds the
    /// traffic lock for writing, so nothing else runs meanwhile.
    pub async fn burst(&self, cx: &CheckContext<'_>) -> Result<Arc<BurstReport>, Abort> {
        self.burst
            .get_or_init(|| async { crate::burst::run(cx).await.map(Arc::new) })
            .await
            .clone()
    }

    /// The run's webhook report, running the scenario if no check has yet.
    pub async fn webhooks(&self) -> Result<Arc<WebhookReport>, Abort> {
        self.webhooks
            .get_or_init(|| async { crate::webhooks::run(self).await.map(Arc::new) })
            .await
            .clone()
    }

    /// Whether the run has a webhook receiver the target can reach.
    pub fn has_webhook_receiver(&self) -> bool {
        self.options
            .webhooks
            .listen_address(self.client.base_url())
            .is_some()
    }

    /// A job to read, finished or not: `--job-id`, or one created (once per run) with
    /// `--allow-writes`, or, when that creation failed, any other job the run created.
    pub async fn job(&self) -> Result<String, Abort> {
        if let Some(id) = &self.options.job_id {
            return Ok(id.clone());
        }
        if !self.options.allow_writes {
            return Err(Abort::Ignored(
                "needs a job to read: pass --job-id ID, or --allow-writes to let apiconform create one".into(),
            ));
        }
        let created = self
            .job
            .get_or_init(|| async {
                let created = jobs::create(&self.client, &self.settings().jobs, JOB_SETUP).await;
                match &created {
                    Ok(id) => self.remember_job(id),
                    Err(why) => self.record.add_notice(&format!("job set-up: {why}")),
                }
                created
            })
            .await
            .clone();
        match created {
            Ok(id) => Ok(id),
            Err(why) => self.created_jobs().first().cloned().ok_or_else(|| {
                Abort::Errored(format!(
                    "needs a job, and the run could not set one up: {why}"
                ))
            }),
        }
    }

    /// The run's job once it is finished (followed once, under the run's job waits), for the
    /// checks that judge a finished job.
    pub async fn finished_job(&self) -> Result<String, Abort> {
        let id = self.job().await?;
        self.finished_job
            .get_or_init(|| async {
                let follow = self.follow(None, JOB_SETUP);
                match follow.until_terminal(&id, |_| {}).await {
                    Ok(_) => Ok(id.clone()),
                    Err(failure) => {
                        self.record.add_notice(&format!("job set-up: {failure}"));
                        Err(failure.to_string())
                    }
                }
            })
            .await
            .clone()
            .map_err(|why| {
                Abort::Errored(format!(
                    "needs a finished job, and the run's job did not finish: {}",
                    first_clause(&why)
                ))
            })
    }

    /// How to follow a job of this run to its end, for `recorder`, with `deadline_seconds`
    /// overriding the suite's deadline.
    pub fn follow<'a>(
        &'a self,
        deadline_seconds: Option<f64>,
        recorder: &'a str,
    ) -> jobs::Follow<'a> {
        jobs::Follow {
            client: &self.client,
            settings: &self.settings().jobs,
            poll_interval: self.poll_interval(),
            deadline: self.job_deadline(deadline_seconds),
            waits: &self.job_waits,
            recorder,
        }
    }

    /// Note a job the run created, so checks that need any job can use it.
    pub fn remember_job(&self, id: &str) {
        self.created_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id.to_string());
    }

    fn created_jobs(&self) -> Vec<String> {
        self.created_jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The recorder name of the run's own job set-up.
pub(crate) const JOB_SETUP: &str = "run::job_setup";

/// A reason without its "(last: ...)" tail: the full text is in the run's notices.
fn first_clause(reason: &str) -> &str {
    reason.split(" (last:").next().unwrap_or(reason)
}

/// What one check sees while it runs.
pub struct CheckContext<'a> {
    pub name: &'a str,
    pub run: &'a RunContext,
    /// The job id, when the check declared that it needs one.
    pub job_id: Option<String>,
    /// Facts worth showing even when the check passes (the burst's achieved rate, ...).
    pub notes: std::sync::Mutex<Vec<String>>,
}

impl<'a> CheckContext<'a> {
    pub fn new(name: &'a str, run: &'a RunContext, job_id: Option<String>) -> CheckContext<'a> {
        CheckContext {
            name,
            run,
            job_id,
            notes: Default::default(),
        }
    }

    /// Keep `note` for the check's record, shown even when it passes.
    pub fn note(&self, note: &str) {
        self.notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(note.to_string());
    }

    /// Tell a watching person what a long step is doing (stderr, only on a terminal).
    pub fn progress(&self, message: &str) {
        tracing::info!(check = self.name, "{message}");
        if self.run.options.progress {
            crate::progress::show(self.name, message);
        }
    }

    pub fn settings(&self) -> &Settings {
        self.run.settings()
    }

    pub fn schemas(&self) -> &SchemaSet {
        &self.run.schemas
    }

    pub fn client(&self) -> &HttpClient {
        &self.run.client
    }

    /// The run's client as a handle that a spawned task can keep.
    pub fn shared_client(&self) -> Arc<HttpClient> {
        Arc::clone(&self.run.client)
    }

    /// `spec` with its placeholders filled in, ready to send.
    pub fn outgoing(&self, spec: &RequestSpec) -> Outgoing {
        let mut path = spec.path.clone();
        if path.uses("job_id") {
            path = path.fill("job_id", self.job_id.as_deref().unwrap_or(""));
        }
        if path.uses("unknown_job_id") {
            path = path.fill("unknown_job_id", &self.run.unknown_job_id);
        }
        Outgoing {
            method: spec.method.clone(),
            path: path.0,
            credential: spec.credential,
            body: spec.body.clone(),
            raw_body: spec.raw_body.clone(),
            file: None,
            headers: spec
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            job_id: if spec.path.uses("job_id") {
                self.job_id.clone()
            } else {
                None
            },
        }
    }

    /// Send a suite request, paced, retrying an unexpected 429 after the hinted wait.
    pub async fn send(&self, spec: &RequestSpec) -> Result<Response, Abort> {
        self.send_outgoing(&self.outgoing(spec)).await
    }

    pub async fn send_outgoing(&self, outgoing: &Outgoing) -> Result<Response, Abort> {
        let response = self
            .client()
            .send(self.name, outgoing, SendOptions::default())
            .await?;
        if response.rate_limit_retries > 0 {
            self.note(&format!(
                "backed off and retried {} time(s) after an unexpected 429 on {} ({})",
                response.rate_limit_retries,
                response.request_line,
                response.backoff_reasons.join("; ")
            ));
        }
        Ok(response)
    }
}
