//! The job model as the suite describes it: reading fields of a job object, the status
//! invariants of docs/contract.md section 3, and creating a job and waiting for it to finish.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::{HttpClient, Outgoing, Response, SendOptions};
use crate::finding::Finding;
use crate::suite::{encode_segment, Carries, JobSettings};

/// The role a state plays, per the suite's state machine (`[jobs.states]`): what the
/// invariants of a job in it are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting to be started (`before_processing`): no output, no error.
    Pending,
    /// Any other state that is not terminal: no output, no error.
    Processing,
    /// Terminal, carrying the output: progress 100 and an absolute output URL.
    Completed,
    /// Terminal, carrying the error: a non-empty error.
    Failed,
}

impl JobSettings {
    /// The phase of `status`, or None for a state the suite does not know.
    pub fn phase(&self, status: &str) -> Option<Phase> {
        let state = self.states.get(status)?;
        Some(match state.carries {
            Some(Carries::Output) => Phase::Completed,
            Some(Carries::Error) => Phase::Failed,
            None if state.before_processing => Phase::Pending,
            None => Phase::Processing,
        })
    }

    /// The read path for `job_id`.
    pub fn read_path_for(&self, job_id: &str) -> String {
        self.read_path.replace("{job_id}", &encode_segment(job_id))
    }

    /// `POST create_path` with `body`.
    pub fn create_request(&self, body: Value) -> Outgoing {
        let mut request = Outgoing::get(self.create_path.clone());
        request.method = reqwest::Method::POST;
        request.body = Some(body);
        request
    }

    /// `GET read_path` for `job_id`, recorded as about that job.
    pub fn read_request(&self, job_id: &str) -> Outgoing {
        let mut request = Outgoing::get(self.read_path_for(job_id));
        request.job_id = Some(job_id.to_string());
        request
    }

    /// `POST start_path` for `job_id` with an empty JSON object.
    pub fn start_request(&self, job_id: &str) -> Outgoing {
        let mut request =
            Outgoing::get(self.start_path.replace("{job_id}", &encode_segment(job_id)));
        request.method = reqwest::Method::POST;
        request.body = Some(Value::Object(Default::default()));
        request.job_id = Some(job_id.to_string());
        request
    }

    /// The new job's id from a create reply, or why there is none, prefixed with `what`.
    pub fn created_job_id(&self, reply: &Response, what: &str) -> Result<String, String> {
        if !reply.is_success() {
            return Err(format!(
                "{what}: expected 2xx, got {}; body: {}",
                reply.label(),
                reply.body_excerpt(200)
            ));
        }
        id_text(reply.pointer(&self.created_id_pointer)).ok_or_else(|| {
            let why = reply
                .json_problem()
                .map(|p| format!(": {p}"))
                .unwrap_or_default();
            format!(
                "{what}: the reply has no id at {} ({}){why}",
                self.created_id_pointer,
                reply.label()
            )
        })
    }
}

/// The status of a job object, if it has a string one.
pub fn status_of<'a>(job: &'a Value, settings: &JobSettings) -> Option<&'a str> {
    job.pointer(&settings.status_pointer)
        .and_then(Value::as_str)
}

/// Every way `job` breaks the status invariants of docs/contract.md section 3, as messages that
/// name the field, the rule and the value seen.
pub fn invariant_violations(job: &Value, settings: &JobSettings) -> Vec<String> {
    invariant_findings(job, settings)
        .into_iter()
        .map(|f| f.message)
        .collect()
}

/// [`invariant_violations`] as findings: `job.status_type`, `job.status_unknown`,
/// `job.progress`, `job.output_url` and `job.error`, each with the field's pointer, what it must hold, and the value seen.
pub fn invariant_findings(job: &Value, settings: &JobSettings) -> Vec<Finding> {
    let mut found = Vec::new();
    // "at {pointer}: {rule}, saw {value}", the shape of every invariant message.
    let mut violation = |rule: &str, pointer: &str, must: String, seen: String| {
        found.push(
            Finding::new(rule, format!("at {pointer}: {must}, saw {seen}"))
                .expected(must)
                .actual(seen)
                .at(pointer),
        )
    };
    let status_path = &settings.status_pointer;
    let Some(status) = status_of(job, settings) else {
        violation(
            "job.status_type",
            status_path,
            "a job must have a string status".into(),
            shown(job.pointer(status_path)),
        );
        return found;
    };
    let Some(phase) = settings.phase(status) else {
        let known: Vec<&str> = settings.known_states().map(String::as_str).collect();
        violation(
            "job.status_unknown",
            status_path,
            format!("status must be one of {}", known.join(", ")),
            format!("\"{status}\""),
        );
        return found;
    };
    let progress_path = &settings.progress_pointer;
    let progress = job.pointer(progress_path);
    match progress.and_then(Value::as_f64) {
        Some(p) if !(0.0..=100.0).contains(&p) => violation(
            "job.progress",
            progress_path,
            "progress must be between 0 and 100".into(),
            p.to_string(),
        ),
        Some(p) if phase == Phase::Completed && p != 100.0 => violation(
            "job.progress",
            progress_path,
            format!("a {status} job must have progress 100"),
            p.to_string(),
        ),
        Some(_) => {}
        None => violation(
            "job.progress",
            progress_path,
            "progress must be a number".into(),
            shown(progress),
        ),
    }
    let output_path = &settings.output_pointer;
    let output = job.pointer(output_path);
    match phase {
        Phase::Completed => match output.and_then(Value::as_str) {
            Some(text) if is_absolute_url(text) => {}
            _ => violation(
                "job.output_url",
                output_path,
                format!("a {status} job must have an absolute output URL"),
                shown(output),
            ),
        },
        Phase::Pending | Phase::Processing => {
            if !matches!(output, None | Some(Value::Null)) {
                violation(
                    "job.output_url",
                    output_path,
                    format!("a {status} job must have no output URL yet (null)"),
                    shown(output),
                );
            }
        }
        Phase::Failed => {}
    }
    let error_path = &settings.error_pointer;
    let error = job.pointer(error_path);
    match phase {
        Phase::Failed => {
            if error
                .and_then(Value::as_str)
                .is_none_or(|e| e.trim().is_empty())
            {
                violation(
                    "job.error",
                    error_path,
                    format!("a {status} job must say why (non-empty error)"),
                    shown(error),
                );
            }
        }
        _ => {
            if !matches!(error, None | Some(Value::Null)) {
                violation(
                    "job.error",
                    error_path,
                    format!("a {status} job must have error null"),
                    shown(error),
                );
            }
        }
    }
    found
}

/// An id as text, whether the server sends it as a string or a number.
pub fn id_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// True for an absolute http(s) URL with a host.
pub fn is_absolute_url(text: &str) -> bool {
    url::Url::parse(text)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .unwrap_or(false)
}

/// A value as shown in messages: JSON, cut short; `absent` when missing.
pub fn shown(value: Option<&Value>) -> String {
    match value {
        None => "nothing (field absent)".into(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 120 {
                format!("{}...", text.chars().take(120).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// Create a job with the suite's sample body; its id, or which step failed and how.
pub async fn create(
    client: &HttpClient,
    settings: &JobSettings,
    recorder: &str,
) -> Result<String, String> {
    let create = settings.create_request(settings.create_body.clone());
    let reply = client
        .send(recorder, &create, SendOptions::default())
        .await
        .map_err(|e| format!("could not create a job: {e}"))?;
    settings.created_job_id(&reply, "could not create a job")
}

/// Why following a job stopped before it reached a terminal state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollFailure {
    /// A read got no HTTP response: no verdict about the job.
    Transport(String),
    /// A read was answered with a status other than 2xx (in the exchange named).
    Refused(String, usize),
    /// The job is in a state the suite does not know (or has no status): a finding at once.
    UnknownState(String),
    /// The deadline passed first (or an earlier job of the run outlived its own).
    Deadline(String),
}

impl std::fmt::Display for PollFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PollFailure::Transport(m)
            | PollFailure::Refused(m, _)
            | PollFailure::UnknownState(m)
            | PollFailure::Deadline(m) => f.write_str(m),
        }
    }
}

/// What the run has learnt about its jobs, shared by every wait on one: once a job has
/// outlived its deadline, the target is taken not to finish jobs, and every other wait ends
/// within a short grace instead of spending a deadline of its own.
#[derive(Debug, Default)]
pub struct JobWaits {
    stalled: Mutex<Option<String>>,
}

impl JobWaits {
    /// The first job that outlived its deadline, said as a reason.
    pub fn stalled(&self) -> Option<String> {
        self.stalled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn note_stall(&self, reason: &str) {
        self.stalled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert_with(|| reason.to_string());
    }
}

/// How many poll intervals a job is still watched after another job of the run stalled.
const GRACE_POLLS_AFTER_A_STALL: u32 = 5;

/// How one job is followed to its end.
pub struct Follow<'a> {
    pub client: &'a HttpClient,
    pub settings: &'a JobSettings,
    pub poll_interval: Duration,
    pub deadline: Duration,
    /// The run's knowledge of stalled jobs.
    pub waits: &'a JobWaits,
    /// The check (or `run::...` step) the reads are recorded for.
    pub recorder: &'a str,
}

impl Follow<'_> {
    /// Read job `job_id` every poll interval until it is in a terminal state, handing each
    /// successful read to `observe`, and return the terminal read. A state the suite does not
    /// know ends the wait at once; so does the grace after another job of the run stalled.
    pub async fn until_terminal(
        &self,
        job_id: &str,
        mut observe: impl FnMut(&Response),
    ) -> Result<Response, PollFailure> {
        let settings = self.settings;
        let started = Instant::now();
        let mut deadline = started + self.deadline;
        let mut grace_from_stall = None;
        let read = settings.read_request(job_id);
        loop {
            let response = self
                .client
                .send(self.recorder, &read, SendOptions::default())
                .await
                .map_err(|e| PollFailure::Transport(format!("could not read job {job_id}: {e}")))?;
            if !response.is_success() {
                return Err(PollFailure::Refused(
                    format!(
                        "reading job {job_id} while waiting for it to finish: expected 2xx, got {}",
                        response.label()
                    ),
                    response.exchange,
                ));
            }
            observe(&response);
            let status = response.json.as_ref().and_then(|j| status_of(j, settings));
            match status.map(|s| (s, settings.phase(s))) {
                Some((s, _)) if settings.is_terminal(s) => return Ok(response),
                Some((_, Some(_))) => {}
                Some((s, None)) => {
                    let known: Vec<&str> = settings.known_states().map(String::as_str).collect();
                    return Err(PollFailure::UnknownState(format!(
                        "job {job_id} is in state \"{s}\", which the suite does not know (known: {}), in {}",
                        known.join(", "),
                        response.label()
                    )));
                }
                None => {
                    return Err(PollFailure::UnknownState(format!(
                        "job {job_id} has no string status at {}, saw {}, in {}",
                        settings.status_pointer,
                        shown(response.pointer(&settings.status_pointer)),
                        response.label()
                    )));
                }
            }
            if grace_from_stall.is_none() {
                if let Some(stall) = self.waits.stalled() {
                    let grace = self.poll_interval * GRACE_POLLS_AFTER_A_STALL;
                    deadline = deadline.min(Instant::now() + grace);
                    grace_from_stall = Some(stall);
                }
            }
            if Instant::now() + self.poll_interval > deadline {
                let last = response.label();
                return Err(PollFailure::Deadline(match &grace_from_stall {
                    Some(stall) => format!(
                        "job {job_id} was not finished either after {:.1} s (last: {last}); not waiting longer, since {stall}",
                        started.elapsed().as_secs_f64()
                    ),
                    None => {
                        let reason = format!(
                            "job {job_id} did not reach a terminal state within {} s",
                            self.deadline.as_secs_f64()
                        );
                        self.waits.note_stall(&reason);
                        format!("{reason} (last: {last})")
                    }
                }));
            }
            self.client
                .record()
                .wait(self.recorder, self.poll_interval)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn invariants_accept_each_conforming_state() {
        let s = JobSettings::default();
        for job in [
            json!({"status": "pending", "progress": 0, "output_url": null, "error": null}),
            json!({"status": "created", "progress": 0, "output_url": null, "error": null}),
            json!({"status": "processing", "progress": 42.5, "output_url": null, "error": null}),
            json!({"status": "completed", "progress": 100, "output_url": "https://cdn.example/x.webm", "error": null}),
            json!({"status": "failed", "progress": 30, "output_url": null, "error": "bad codec"}),
        ] {
            assert!(invariant_violations(&job, &s).is_empty(), "{job}");
        }
    }

    #[test]
    fn invariants_name_field_rule_and_value() {
        let s = JobSettings::default();
        let v = invariant_violations(
            &json!({"status": "completed", "progress": 100, "output_url": null, "error": null}),
            &s,
        );
        assert_eq!(
            v,
            ["at /output_url: a completed job must have an absolute output URL, saw null"]
        );
        let v = invariant_violations(
            &json!({"status": "failed", "progress": 3, "output_url": null, "error": ""}),
            &s,
        );
        assert!(v[0].contains("/error") && v[0].contains("\"\""), "{v:?}");
        let v = invariant_violations(&json!({"status": "done", "progress": 3}), &s);
        assert!(v[0].contains("\"done\""), "{v:?}");
        let v = invariant_violations(
            &json!({"status": "completed", "progress": 90, "output_url": "/relative", "error": null}),
            &s,
        );
        assert_eq!(v.len(), 2, "{v:?}");
    }
}
