//! What every check of a run shares ([`RunContext`]) and what one check sees ([`CheckContext`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::client::{HttpClient, Outgoing, Response, SendOptions};
use crate::jobs;
use crate::record::RunRecord;
use crate::schemas::SchemaSet;
use crate::suite::{RequestSpec, Settings, Suite};

/// What the user allowed and provided for this run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Checks that create jobs or spend credits may run.
    pub allow_writes: bool,
    /// SHOULD-level findings fail instead of warning.
    pub strict: bool,
    /// A file the target's logs are written to.
    pub logs: Option<PathBuf>,
    /// An existing job to read.
    pub job_id: Option<String>,
    /// Overrides the suite's job poll interval (the embedded server finishes jobs in a second).
    pub poll_interval: Option<Duration>,
}

/// Shared by all checks of a run.
pub struct RunContext {
    pub suite: Suite,
    pub schemas: SchemaSet,
    pub client: HttpClient,
    pub record: Arc<RunRecord>,
    pub options: RunOptions,
    /// A job id that no server has, fresh for each run.
    pub unknown_job_id: String,
    /// The job the checks read, obtained once (given, or created on first need).
    job: OnceCell<Result<String, String>>,
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
    fn from(error: crate::client::TransportError) -> Abort {
        Abort::Errored(format!("transport error: {error}"))
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
            client,
            record,
            options,
            unknown_job_id: format!("apiconform-no-such-job-{:016x}", rand::random::<u64>()),
            job: OnceCell::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.suite.settings
    }

    /// The job to read: `--job-id`, or one created (once per run) with `--allow-writes`.
    pub async fn job(&self) -> Result<String, Abort> {
        if let Some(id) = &self.options.job_id {
            return Ok(id.clone());
        }
        if !self.options.allow_writes {
            return Err(Abort::Ignored(
                "needs a job to read: pass --job-id ID, or --allow-writes to let apiconform create one".into(),
            ));
        }
        let jobs = &self.settings().jobs;
        let poll = self
            .options
            .poll_interval
            .unwrap_or(Duration::from_secs_f64(jobs.poll_interval_seconds));
        self.job
            .get_or_init(|| jobs::create_and_wait(&self.client, jobs, poll, "run::job_setup"))
            .await
            .clone()
            .map_err(Abort::Errored)
    }
}

/// What one check sees while it runs.
pub struct CheckContext<'a> {
    pub name: &'a str,
    pub run: &'a RunContext,
    /// The job id, when the check declared that it needs one.
    pub job_id: Option<String>,
}

impl CheckContext<'_> {
    pub fn settings(&self) -> &Settings {
        self.run.settings()
    }

    pub fn schemas(&self) -> &SchemaSet {
        &self.run.schemas
    }

    pub fn client(&self) -> &HttpClient {
        &self.run.client
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
            method: spec.method.to_ascii_uppercase(),
            path: path.0,
            credential: spec.credential,
            body: spec.body.clone(),
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
        Ok(self
            .client()
            .send(self.name, outgoing, SendOptions::default())
            .await?)
    }
}
