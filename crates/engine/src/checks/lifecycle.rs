//! `lifecycle::*` kinds: a job moves through the documented state machine (docs/contract.md
//! section 3) in finite time, with progress that never goes down, and ends usable.

use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use super::schema::invariant_findings_in;
use super::{created_job, unfetchable, Check, Finding, Findings, NamedCheck, Needs, WRITES};
use crate::client::Response;
use crate::context::{Abort, CheckContext};
use crate::jobs::{is_absolute_url, status_of, Phase, PollFailure};
use crate::suite::{CheckDecl, JobSettings, Settings};

/// What a sample input is expected to end as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Completed,
    Failed,
    /// Either terminal state.
    #[default]
    Terminal,
}

/// One sample input of a lifecycle check, as the suite lists it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Becomes the check's name, `lifecycle::<name>`.
    pub name: String,
    /// The create body.
    pub body: Value,
    #[serde(default)]
    pub expect: Expect,
    /// Overrides `[jobs] deadline_seconds` for this input.
    pub deadline_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleParams {
    inputs: Vec<Input>,
}

/// A `[[check]]` of kind `job_lifecycle` becomes one check per input; its name must contain
/// `{input}`, replaced by each input's name.
pub fn expand(decl: &CheckDecl) -> Result<Vec<NamedCheck>, String> {
    let params: LifecycleParams = super::params(decl)?;
    if !decl.name.contains("{input}") {
        return Err(format!(
            "the name must contain {{input}}, e.g. \"lifecycle::{{input}}\" (is `{}`)",
            decl.name
        ));
    }
    if params.inputs.is_empty() {
        return Err("`inputs` must list at least one sample input".into());
    }
    let mut checks: Vec<NamedCheck> = Vec::new();
    for input in params.inputs {
        if input.name.is_empty()
            || !input
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "input name `{}` must be letters, digits, `_` or `-`",
                input.name
            ));
        }
        if let Some(d) = input.deadline_seconds {
            if !(d > 0.0 && d < 1e7) {
                return Err(format!(
                    "input `{}`: deadline_seconds must be a positive number",
                    input.name
                ));
            }
        }
        checks.push((
            decl.name.replace("{input}", &input.name),
            Box::new(JobLifecycle { input }),
        ));
    }
    Ok(checks)
}

/// Create a job from one sample input and follow it to a terminal state.
pub struct JobLifecycle {
    input: Input,
}

/// One read of the job while following it.
struct Observation {
    at: Duration,
    status: Option<String>,
    progress: Option<f64>,
    label: String,
    /// The exchange of the read, for findings to cite.
    exchange: usize,
}

impl Check for JobLifecycle {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![
            format!(
                "POST {} with input `{}` {WRITES}",
                settings.jobs.create_path, self.input.name
            ),
            format!(
                "GET {} every poll interval until it finishes, then 3 more",
                settings.jobs.read_path
            ),
            "HEAD or GET of the output URL, without the key".into(),
        ]
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let jobs = &cx.settings().jobs;
            let started = Instant::now();
            let job_id = match create(cx, self.input.body.clone()).await? {
                Ok(id) => id,
                Err(findings) => return Ok(findings),
            };
            let follow = cx.run.follow(self.input.deadline_seconds, cx.name);
            let poll = follow.poll_interval;
            cx.progress(&format!(
                "following job {job_id} until it finishes (deadline {} s)",
                follow.deadline.as_secs_f64()
            ));
            let mut observations = Vec::new();
            let mut findings = Vec::new();
            let followed = follow
                .until_terminal(&job_id, |response| {
                    observations.push(observe(response, jobs, started.elapsed()));
                    findings.extend(poll_findings(response, jobs));
                })
                .await;
            let terminal = match followed {
                Ok(terminal) => terminal,
                Err(PollFailure::Transport(message)) => {
                    return Err(Abort::Errored(format!("transport error: {message}")))
                }
                Err(failure) => {
                    if !matches!(failure, PollFailure::Deadline(_)) {
                        // The failure says more than the poll's invariant did.
                        findings.retain(|f| f.rule != "job.status_unknown");
                    }
                    findings.extend(unfinished_findings(failure, &observations, jobs));
                    return Ok(dedup(findings));
                }
            };
            let time_to_terminal = started.elapsed();
            // Terminal states never change: read a few more times.
            for _ in 0..3 {
                cx.run.record.wait(cx.name, poll).await;
                let response = read(cx, &job_id).await?;
                observations.push(observe(&response, jobs, started.elapsed()));
                findings.extend(poll_findings(&response, jobs));
            }
            findings.extend(transition_findings(&observations, jobs));
            let final_status = status_of(terminal.json.as_ref().unwrap_or(&Value::Null), jobs)
                .unwrap_or_default()
                .to_string();
            findings.extend(self.outcome_finding(&terminal, jobs));
            if jobs.phase(&final_status) == Some(Phase::Completed) {
                if let Some(finding) = output_unreachable(cx, &terminal).await? {
                    findings.push(finding);
                }
            }
            cx.note(&format!(
                "{final_status} after {:.1} s; states: {}",
                time_to_terminal.as_secs_f64(),
                story(&observations)
            ));
            Ok(dedup(findings))
        }
        .boxed()
    }
}

/// A job created with auto-start off waits in the pre-processing state until started, and the
/// start reply says it is processing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualStart {
    /// The create body; `auto_start = false` is added when absent.
    body: Option<Value>,
    /// How long to watch the job stay pending before starting it.
    #[serde(default = "pending_watch_seconds")]
    observe_seconds: f64,
    /// The status the start reply must carry; without it, any state the suite declares that
    /// is not before processing.
    expect_start_status: Option<String>,
}

/// Long enough to see a job that starts by itself when it should not.
fn pending_watch_seconds() -> f64 {
    1.0
}

impl Check for ManualStart {
    fn plan(&self, settings: &Settings) -> Vec<String> {
        vec![
            format!(
                "POST {} with auto_start false {WRITES}",
                settings.jobs.create_path
            ),
            format!(
                "GET {} x 3, then POST {}, then GET once",
                settings.jobs.read_path, settings.jobs.start_path
            ),
        ]
    }

    fn needs(&self, _settings: &Settings) -> Needs {
        Needs::writes()
    }

    fn run<'a>(&'a self, cx: &'a CheckContext<'a>) -> BoxFuture<'a, Result<Findings, Abort>> {
        async move {
            let jobs = &cx.settings().jobs;
            let mut body = self.body.clone().unwrap_or_else(|| jobs.create_body.clone());
            if let Some(object) = body.as_object_mut() {
                object.entry("auto_start").or_insert(Value::Bool(false));
            }
            let job_id = match create(cx, body).await? {
                Ok(id) => id,
                Err(findings) => return Ok(findings),
            };
            let mut findings = Vec::new();
            let watch = Duration::from_secs_f64(self.observe_seconds.clamp(0.0, 60.0));
            let reads = 3;
            for i in 0..reads {
                if i > 0 {
                    cx.run.record.wait(cx.name, watch / (reads - 1)).await;
                }
                let response = read(cx, &job_id).await?;
                if !response.is_success() {
                    let message = format!("reading the job: expected 2xx, got {}", response.status_from());
                    findings.push(Finding::new("lifecycle.read_refused", message).actual(response.status).cites(&response));
                    return Ok(findings);
                }
                let status = response.json.as_ref().and_then(|j| status_of(j, jobs)).unwrap_or_default();
                if jobs.phase(status) != Some(Phase::Pending) {
                    let pending = jobs.states.before_processing().join(" or ");
                    let message = format!(
                        "a job created with auto_start false must wait in {pending} until started, but reads \"{status}\" in {}",
                        response.label()
                    );
                    findings.push(
                        Finding::new("lifecycle.not_pending", message)
                            .expected(pending)
                            .actual(format!("\"{status}\""))
                            .at(&jobs.status_pointer)
                            .cites(&response),
                    );
                    return Ok(findings);
                }
            }
            let start = jobs.start_request(&job_id);
            let reply = cx.send_outgoing(&start).await?;
            if !reply.is_success() {
                let message = format!("starting the job: expected 2xx, got {}; body: {}", reply.status_from(), reply.body_excerpt(200));
                findings.push(Finding::new("lifecycle.start_refused", message).expected("2xx").actual(reply.status).cites(&reply));
                return Ok(findings);
            }
            let said = reply.pointer(&jobs.status_pointer).and_then(Value::as_str).unwrap_or_default();
            let started = match &self.expect_start_status {
                Some(expected) => said == expected,
                None => !matches!(jobs.phase(said), None | Some(Phase::Pending)),
            };
            if !started {
                let expected = match &self.expect_start_status {
                    Some(expected) => format!("\"{expected}\""),
                    None => {
                        let started: Vec<&str> = jobs
                            .known_states()
                            .map(String::as_str)
                            .filter(|s| jobs.phase(s) != Some(Phase::Pending))
                            .collect();
                        format!("one of {}", started.join(", "))
                    }
                };
                let message = format!("the start reply must say {expected}, says \"{said}\" in {}", reply.label());
                findings.push(
                    Finding::new("lifecycle.start_status", message)
                        .expected(expected)
                        .actual(format!("\"{said}\""))
                        .at(&jobs.status_pointer)
                        .cites(&reply),
                );
            }
            let response = read(cx, &job_id).await?;
            let status = response.json.as_ref().and_then(|j| status_of(j, jobs)).unwrap_or_default();
            if jobs.phase(status) == Some(Phase::Pending) {
                let message = format!("after a successful start the job still reads \"{status}\" in {}", response.label());
                findings.push(
                    Finding::new("lifecycle.still_pending", message)
                        .actual(format!("\"{status}\""))
                        .at(&jobs.status_pointer)
                        .cites(&reply)
                        .cites(&response),
                );
            }
            Ok(findings)
        }
        .boxed()
    }
}

/// POST the create path with `body`; the job id, or the finding when creation failed.
async fn create(cx: &CheckContext<'_>, body: Value) -> Result<Result<String, Findings>, Abort> {
    let reply = cx
        .send_outgoing(&cx.settings().jobs.create_request(body))
        .await?;
    let created = created_job(
        cx.settings(),
        &reply,
        "creating the job",
        "lifecycle.create",
    );
    if let Ok(id) = &created {
        cx.run.remember_job(id);
    }
    Ok(created)
}

async fn read(cx: &CheckContext<'_>, job_id: &str) -> Result<Response, Abort> {
    cx.send_outgoing(&cx.settings().jobs.read_request(job_id))
        .await
}

fn observe(response: &Response, jobs: &JobSettings, at: Duration) -> Observation {
    let json = response.json.as_ref();
    Observation {
        at,
        status: json.and_then(|j| status_of(j, jobs)).map(String::from),
        progress: json
            .and_then(|j| j.pointer(&jobs.progress_pointer))
            .and_then(Value::as_f64),
        label: response.label(),
        exchange: response.exchange,
    }
}

/// The status invariants one poll of the job breaks, each citing that poll.
fn poll_findings(response: &Response, jobs: &JobSettings) -> Findings {
    match &response.json {
        Some(json) => invariant_findings_in(json, jobs, response),
        None => Vec::new(),
    }
}

/// Why following the job ended before a terminal state, as findings: a refused read, a state
/// the suite does not know, or the deadline with the states seen until then (citing each poll).
fn unfinished_findings(
    failure: PollFailure,
    observations: &[Observation],
    jobs: &JobSettings,
) -> Findings {
    let last = observations.last().map(|o| o.exchange);
    match failure {
        // The caller aborts on a transport error before judging; kept for completeness.
        PollFailure::Transport(message) => vec![Finding::new("lifecycle.transport", message)],
        PollFailure::Refused(message, exchange) => {
            vec![Finding::new("lifecycle.read_refused", message).cites_exchange(exchange)]
        }
        PollFailure::UnknownState(message) => {
            vec![Finding::new("lifecycle.unknown_state", message).cites_exchanges(last)]
        }
        PollFailure::Deadline(message) => {
            let message = format!("{message}; states seen: {}", story(observations));
            let mut findings = vec![Finding::new("lifecycle.deadline", message)
                .cites_exchanges(observations.iter().map(|o| o.exchange))];
            findings.extend(transition_findings(observations, jobs));
            findings
        }
    }
}

impl JobLifecycle {
    /// A finding when the terminal read is the other end than the input is expected to reach.
    fn outcome_finding(&self, terminal: &Response, jobs: &JobSettings) -> Option<Finding> {
        let status = status_of(terminal.json.as_ref().unwrap_or(&Value::Null), jobs)?;
        let name = &self.input.name;
        let (rule, message) = match (self.input.expect, jobs.phase(status)?) {
            (Expect::Completed, Phase::Failed) => (
                "lifecycle.expected_completed",
                format!(
                    "expected input `{name}` to complete, it failed: {}",
                    crate::jobs::shown(terminal.pointer(&jobs.error_pointer))
                ),
            ),
            (Expect::Failed, Phase::Completed) => (
                "lifecycle.expected_failed",
                format!(
                    "expected input `{name}` to fail (the service cannot process it), it completed"
                ),
            ),
            _ => return None,
        };
        Some(
            Finding::new(rule, message)
                .actual(status)
                .at(&jobs.status_pointer)
                .cites(terminal),
        )
    }
}

/// Disallowed moves, progress that goes down, terminal states that change.
fn transition_findings(observations: &[Observation], jobs: &JobSettings) -> Findings {
    let mut findings = Vec::new();
    for pair in observations.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let (Some(from), Some(to)) = (before.status.as_deref(), after.status.as_deref()) else {
            continue;
        };
        if jobs.states.get(from).is_none() || jobs.states.get(to).is_none() {
            continue; // an unknown state is its own finding
        }
        // A finding about the move from `before` to `after`, citing both reads.
        let moved = |rule: &str, message: String, from: String, to: String| {
            Finding::new(rule, message)
                .expected(from)
                .actual(to)
                .cites_exchange(before.exchange)
                .cites_exchange(after.exchange)
        };
        if jobs.is_terminal(from) && from != to {
            findings.push(
                moved(
                    "lifecycle.terminal_changed",
                    format!(
                        "a {from} job is terminal but later read \"{to}\", in {}",
                        after.label
                    ),
                    format!("\"{from}\""),
                    format!("\"{to}\""),
                )
                .at(&jobs.status_pointer),
            );
        } else if !jobs.states.can_reach(from, to) {
            // Backwards when `to` leads to `from`; else a move the machine never makes.
            let (rule, how) = if jobs.states.can_reach(to, from) {
                ("lifecycle.moved_backwards", "moved backwards")
            } else {
                ("lifecycle.disallowed_move", "moved")
            };
            let allowed = jobs
                .states
                .get(from)
                .map(|s| s.moves.join(" or "))
                .unwrap_or_default();
            findings.push(
                moved(
                    rule,
                    format!(
                        "the job {how} from \"{from}\" to \"{to}\", which the suite's state machine does not allow (from {from} it moves to {allowed}), in {}",
                        after.label
                    ),
                    format!("\"{from}\" or a state reached from it"),
                    format!("\"{to}\""),
                )
                .at(&jobs.status_pointer),
            );
        }
        if let (Some(p0), Some(p1)) = (before.progress, after.progress) {
            if p1 < p0 {
                findings.push(
                    moved(
                        "lifecycle.progress_down",
                        format!("progress went down from {p0} to {p1}, in {}", after.label),
                        format!("at least {p0}"),
                        p1.to_string(),
                    )
                    .at(&jobs.progress_pointer),
                );
            }
        }
    }
    findings
}

/// The states seen, compressed: `pending → processing (10..90%) → completed`.
fn story(observations: &[Observation]) -> String {
    let mut parts: Vec<(String, Vec<f64>, Duration)> = Vec::new();
    for o in observations {
        let status = o.status.clone().unwrap_or_else(|| "?".into());
        match parts.last_mut() {
            Some((last, progress, _)) if *last == status => progress.extend(o.progress),
            _ => parts.push((status, o.progress.into_iter().collect(), o.at)),
        }
    }
    parts
        .iter()
        .map(|(status, progress, at)| {
            let range = match (progress.first(), progress.last()) {
                (Some(a), Some(b)) if progress.len() > 1 && a != b => format!(" {a}..{b}%"),
                _ => String::new(),
            };
            format!("{status}{range} at {:.1} s", at.as_secs_f64())
        })
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// A finding when a completed job's output URL cannot be fetched (HEAD, then GET), without
/// the key. A link apiconform will not follow (see [`crate::links`]) is noted, not judged.
async fn output_unreachable(
    cx: &CheckContext<'_>,
    terminal: &Response,
) -> Result<Option<Finding>, Abort> {
    let pointer = &cx.settings().jobs.output_pointer;
    let Some(url) = terminal
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|u| is_absolute_url(u))
    else {
        return Ok(None); // the invariants already report a missing or relative URL
    };
    let finding = unfetchable(
        cx,
        url,
        "lifecycle.output_unreachable",
        &format!("the output URL {url} of the completed job"),
    )
    .await?;
    Ok(finding.map(|f| f.cites(terminal).at(pointer).actual(url)))
}

/// Findings without repeats of a message (every poll of a stuck job breaks the same rule).
fn dedup(mut findings: Findings) -> Findings {
    let mut seen = std::collections::HashSet::new();
    findings.retain(|f| seen.insert(f.message.clone()));
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read of the job with `status` and `progress`, as exchange `exchange`.
    fn read_at(exchange: usize, status: &str, progress: f64) -> Response {
        let body = serde_json::json!({
            "id": "job_1", "status": status, "progress": progress,
            "output_url": null, "error": null
        });
        let mut response = Response::for_test(200, &[], &body.to_string());
        response.exchange = exchange;
        response
    }

    fn observed(reads: &[Response]) -> Vec<Observation> {
        let jobs = JobSettings::default();
        reads
            .iter()
            .enumerate()
            .map(|(i, r)| observe(r, &jobs, Duration::from_secs(i as u64)))
            .collect()
    }

    #[test]
    fn a_move_backwards_cites_both_reads() {
        let jobs = JobSettings::default();
        let reads = [read_at(1, "processing", 50.0), read_at(2, "pending", 20.0)];
        let findings = transition_findings(&observed(&reads), &jobs);
        let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(
            rules,
            ["lifecycle.moved_backwards", "lifecycle.progress_down"]
        );
        assert!(
            findings.iter().all(|f| f.exchanges == [1, 2]),
            "{findings:?}"
        );
        assert_eq!(findings[0].actual.as_deref(), Some("\"pending\""));
        assert_eq!(findings[0].pointer.as_deref(), Some("/status"));
        assert_eq!(findings[1].expected.as_deref(), Some("at least 50"));
        assert_eq!(findings[1].actual.as_deref(), Some("20"));
        assert!(findings[0].message.starts_with("the job moved backwards"));
    }

    #[test]
    fn a_terminal_state_that_changes_is_its_own_rule() {
        let jobs = JobSettings::default();
        let mut done = read_at(5, "completed", 100.0);
        done.json.as_mut().unwrap()["output_url"] = "https://cdn.example/x.webm".into();
        let reads = [done, read_at(6, "processing", 100.0)];
        let findings = transition_findings(&observed(&reads), &jobs);
        assert_eq!(findings[0].rule, "lifecycle.terminal_changed");
        assert_eq!(findings[0].exchanges, [5, 6]);
    }

    #[test]
    fn the_deadline_cites_every_poll_and_each_poll_its_invariants() {
        let jobs = JobSettings::default();
        let reads = [read_at(3, "pending", 0.0), read_at(4, "processing", 10.0)];
        let failure = PollFailure::Deadline("job job_1 did not reach a terminal state".into());
        let findings = unfinished_findings(failure, &observed(&reads), &jobs);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].rule, "lifecycle.deadline");
        assert_eq!(findings[0].exchanges, [3, 4]);
        assert!(findings[0]
            .message
            .contains("states seen: pending at 0.0 s"));
        let unknown = PollFailure::UnknownState("job job_1 is in state \"x\"".into());
        let findings = unfinished_findings(unknown, &observed(&reads), &jobs);
        assert_eq!(findings[0].rule, "lifecycle.unknown_state");
        assert_eq!(findings[0].exchanges, [4], "the read that showed it");

        let mut finished = read_at(9, "completed", 100.0);
        finished.json.as_mut().unwrap()["output_url"] = "/relative".into();
        let findings = poll_findings(&finished, &jobs);
        assert_eq!(findings[0].rule, "job.output_url");
        assert_eq!(findings[0].pointer.as_deref(), Some("/output_url"));
        assert_eq!(findings[0].actual.as_deref(), Some("\"/relative\""));
        assert_eq!(findings[0].exchanges, [9]);
        assert!(findings[0]
            .message
            .ends_with(", in GET /test -> 200 (no request id)"));
    }
}
