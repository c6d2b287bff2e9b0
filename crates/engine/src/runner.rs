//! The runner ([`Plan`]): turns a suite into checks, runs each one into a [`CheckRecord`],
//! and hands them to libtest-mimic as trials so the console reads like `cargo test`.

use std::sync::Arc;
use std::time::Instant;

use libtest_mimic::{Completion, Failed, Trial};
use tokio::runtime::Handle;

use crate::checks::{self, Check, Needs};
use crate::context::{Abort, CheckContext, RunContext, JOB_SETUP};
use crate::error::AppError;
use crate::events::{CheckId, RunEvent};
use crate::finding::{self, Finding};
use crate::interrupt::Interrupt;
use crate::record::{CheckRecord, Level, Outcome};
use crate::suite::{Credential, Suite};

/// One check of the plan.
pub struct PlannedCheck {
    pub name: String,
    pub area: String,
    pub level: Level,
    pub kind: String,
    /// Marked `ignored = true` in the suite: runs only with `--ignored` or `--include-ignored`.
    pub ignored: bool,
    /// It judges the whole run, so it runs after every other check ([`Check::judges_the_run`]).
    pub final_phase: bool,
    pub check: Box<dyn Check>,
}

/// Every check `suite` declares, in suite order; the first bad declaration is the error.
/// Needs no target, client or key: `--list` and `--dry-run` stop here.
pub fn planned_checks(suite: &Suite) -> Result<Vec<PlannedCheck>, AppError> {
    let mut checks: Vec<PlannedCheck> = Vec::new();
    for decl in &suite.checks {
        for (name, check) in checks::build(decl, suite)? {
            if checks.iter().any(|c| c.name == name) {
                return Err(suite.located(decl, &format!("makes a second check named `{name}`")));
            }
            checks.push(PlannedCheck {
                name,
                area: decl.area().to_string(),
                level: decl.level,
                kind: decl.kind.clone(),
                ignored: decl.ignored,
                final_phase: check.judges_the_run(),
                check,
            });
        }
    }
    Ok(checks)
}

/// One libtest trial per check that does nothing: for selecting checks by libtest's rules
/// (filters, `--exact`, `--skip`, `--ignored`) without running them.
pub fn listing_trials(checks: &[PlannedCheck]) -> Vec<Trial> {
    checks
        .iter()
        .map(|planned| {
            Trial::test(planned.name.clone(), || Ok(()))
                .with_kind(planned.level.to_string())
                .with_ignored_flag(planned.ignored)
        })
        .collect()
}

/// What a run offers its checks, to tell which of them cannot run and why.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offered {
    pub writes: bool,
    pub second_key: bool,
    pub broke_key: bool,
    pub logs: bool,
    /// A job was given (`--job-id`).
    pub job_id: bool,
    /// A webhook receiver the target can reach (`--webhook-listen`, or a loopback target).
    pub webhook_receiver: bool,
}

impl Offered {
    /// Why a check with `needs` cannot run here, if it cannot: the reason says what would
    /// let it run.
    pub fn unmet(&self, needs: Needs) -> Option<String> {
        if needs.writes && !self.writes {
            return Some("sends requests with side effects (creates jobs or spends credits): pass --allow-writes".into());
        }
        if needs.second_key && !self.second_key {
            return Some("needs a second tenant's key: pass --second-key".into());
        }
        if needs.broke_key && !self.broke_key {
            return Some("needs a key whose tenant has no credits: pass --broke-key".into());
        }
        if needs.logs && !self.logs {
            return Some("needs a log source: pass --logs PATH".into());
        }
        if needs.webhook_receiver && !self.webhook_receiver {
            return Some(crate::webhooks::NO_RECEIVER.into());
        }
        if (needs.job || needs.finished_job) && !self.job_id && !self.writes {
            return Some("needs a job to read: pass --job-id ID, or --allow-writes to let apiconform create one".into());
        }
        None
    }
}

/// Every check of a suite, ready to run against one target.
pub struct Plan {
    pub context: RunContext,
    pub checks: Vec<PlannedCheck>,
    /// First-phase checks still to finish; the final phase waits for none to be left.
    first_phase: tokio::sync::watch::Sender<usize>,
}

impl Plan {
    /// Build every check the suite declares; the first bad declaration is the error.
    pub fn new(context: RunContext) -> Result<Plan, AppError> {
        let checks = planned_checks(&context.suite)?;
        Ok(Plan::with_checks(context, checks))
    }

    /// A plan of `checks` that need not come from the context's suite (tests script them).
    pub fn with_checks(context: RunContext, checks: Vec<PlannedCheck>) -> Plan {
        Plan {
            context,
            checks,
            first_phase: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Check indices in the order they are run: every first-phase check in suite order, then
    /// the checks that judge the whole run, so they judge every exchange the others made.
    pub fn phase_order(&self) -> Vec<usize> {
        let (first, last): (Vec<usize>, Vec<usize>) =
            (0..self.checks.len()).partition(|&i| !self.checks[i].final_phase);
        first.into_iter().chain(last).collect()
    }

    /// Say how many first-phase checks will run: the final phase waits until they all have.
    pub fn expect_first_phase(&self, checks: usize) {
        self.first_phase.send_replace(checks);
    }

    /// Run check `index`, record its outcome and return it. Never panics: a panicking check
    /// is reported as errored and the others go on.
    pub async fn execute(self: &Arc<Self>, index: usize) -> CheckRecord {
        let record = self.execute_in_phase(index).await;
        if !self.checks[index].final_phase {
            self.first_phase
                .send_modify(|left| *left = left.saturating_sub(1));
        }
        record
    }

    async fn execute_in_phase(self: &Arc<Self>, index: usize) -> CheckRecord {
        let started = Instant::now();
        let plan = Arc::clone(self);
        let final_phase = self.checks[index].final_phase;
        let mut task = tokio::spawn(async move {
            if final_phase {
                let mut left = plan.first_phase.subscribe();
                // The sender lives as long as the plan, which this task holds.
                let _ = left.wait_for(|left| *left == 0).await;
            }
            plan.evaluate(index).await
        });
        let result = match self.until_stopped(&mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join_error)) => Err(Abort::Errored(format!(
                "the check panicked (a bug in apiconform): {}",
                panic_message(join_error)
            ))
            .into()),
            Err(why) => {
                task.abort();
                Err(Abort::Errored(why).into())
            }
        };
        let planned = &self.checks[index];
        let secrets = self.context.client.secrets();
        let mut drift = Vec::new();
        let result = result.map(|(findings, notes)| {
            let (violations, seen) =
                finding::split_drift(findings, self.context.options.strict_drift);
            drift = seen;
            (violations, notes)
        });
        let (outcome, message, findings) = match result {
            Ok((findings, notes)) if findings.is_empty() => {
                (Outcome::Passed, notes.join("\n"), findings)
            }
            Ok((findings, _)) => {
                let findings = finding::fold_repeats(findings);
                let outcome = match (planned.level, self.context.options.strict) {
                    (Level::Should, false) => Outcome::Warned,
                    _ => Outcome::Failed,
                };
                (outcome, finding::messages(&findings), findings)
            }
            Err(Stopped {
                abort: Abort::Ignored(reason),
                ..
            }) => (Outcome::Ignored, reason, Vec::new()),
            Err(Stopped {
                abort: Abort::Errored(reason),
                cites,
            }) => {
                // A set-up step of the harness stopped it: that step is the evidence.
                let findings = if cites.is_empty() {
                    Vec::new()
                } else {
                    vec![Finding::new("run.job_setup", reason.clone()).cites_exchanges(cites)]
                };
                (Outcome::Errored, reason, findings)
            }
        };
        let record = CheckRecord {
            name: planned.name.clone(),
            area: planned.area.clone(),
            level: planned.level,
            outcome,
            message: secrets.mask(&message),
            findings: findings.iter().map(|f| f.masked(secrets)).collect(),
            drift: drift.iter().map(|f| f.masked(secrets)).collect(),
            duration: started.elapsed(),
            exchanges: self
                .context
                .record
                .exchanges_of(&planned.name)
                .iter()
                .map(|e| e.id)
                .collect(),
            flaky: self.context.record.was_flaky(&planned.name),
            waited: self.context.record.waited(Some(&planned.name)),
        };
        self.context
            .record
            .add_check(CheckId(index), record.clone());
        record
    }

    /// Wait for a check's task, unless the run's deadline passes or the run is interrupted
    /// first: then the reason it was stopped. An interrupted run starts no check.
    async fn until_stopped<T>(
        &self,
        task: &mut tokio::task::JoinHandle<T>,
    ) -> Result<Result<T, tokio::task::JoinError>, String> {
        let interrupt = &self.context.options.interrupt;
        if let Some(cause) = interrupt.cause() {
            return Err(Interrupt::message(cause));
        }
        let deadline = async {
            match self.context.options.deadline {
                Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            joined = task => Ok(joined),
            () = deadline => Err("stopped: the run's deadline (--deadline) passed".into()),
            cause = interrupt.raised() => Err(Interrupt::message(cause)),
        }
    }

    /// Record check `index` as ignored without running it (the suite marks it so).
    pub fn record_not_run(&self, index: usize, reason: &str) {
        let planned = &self.checks[index];
        let id = CheckId(index);
        self.context.record.events().emit(RunEvent::CheckStarted {
            id,
            name: &planned.name,
        });
        self.context.record.add_check(
            id,
            CheckRecord {
                name: planned.name.clone(),
                area: planned.area.clone(),
                level: planned.level,
                outcome: Outcome::Ignored,
                message: reason.to_string(),
                findings: Vec::new(),
                drift: Vec::new(),
                duration: std::time::Duration::ZERO,
                exchanges: Vec::new(),
                flaky: false,
                waited: std::time::Duration::ZERO,
            },
        );
    }

    /// Check what the check needs, then run it: alone if it must be, else beside the others.
    /// Returns its findings and its notes.
    async fn evaluate(&self, index: usize) -> Result<(checks::Findings, Vec<String>), Stopped> {
        let planned = &self.checks[index];
        let needs = planned.check.needs(self.context.settings());
        if let Some(reason) = self.unmet(needs) {
            return Err(Abort::Ignored(reason).into());
        }
        // The lock is taken before the job is obtained: creating it is traffic too.
        let (_shared, _alone) = if needs.exclusive {
            (None, Some(self.context.traffic.write().await))
        } else {
            (Some(self.context.traffic.read().await), None)
        };
        let job = if needs.finished_job {
            Some(self.context.finished_job().await)
        } else if needs.job {
            Some(self.context.job().await)
        } else {
            None
        };
        let job_id = job.transpose().map_err(|abort| self.set_up_failed(abort))?;
        let cx = CheckContext::new(&planned.name, &self.context, job_id);
        let findings = planned.check.run(&cx).await?;
        if planned.final_phase {
            // A filtered run judges little: say how much.
            let exchanges = self.context.record.exchanges();
            let senders: std::collections::BTreeSet<&str> =
                exchanges.iter().map(|e| e.check.as_str()).collect();
            cx.note(&format!(
                "judged the {} exchanges the run made, from {} checks and steps",
                exchanges.len(),
                senders.len()
            ));
        }
        let notes = cx.notes.into_inner().unwrap_or_else(|p| p.into_inner());
        Ok((findings, notes))
    }

    /// A check stopped because the run's job could not be set up: the set-up's last exchange
    /// (the failed create, or the last read of a job that did not finish) explains it.
    fn set_up_failed(&self, abort: Abort) -> Stopped {
        let cites = match abort {
            Abort::Errored(_) => self
                .context
                .record
                .exchanges_of(JOB_SETUP)
                .last()
                .map(|e| e.id)
                .into_iter()
                .collect(),
            Abort::Ignored(_) => Vec::new(),
        };
        Stopped { abort, cites }
    }

    /// Why a check with `needs` cannot run here, if it cannot.
    pub fn unmet(&self, needs: Needs) -> Option<String> {
        let options = &self.context.options;
        let client = &self.context.client;
        Offered {
            writes: options.allow_writes,
            second_key: client.has_credential(Credential::Second),
            broke_key: client.has_credential(Credential::Broke),
            logs: options.logs.is_some(),
            job_id: options.job_id.is_some(),
            webhook_receiver: self.context.has_webhook_receiver(),
        }
        .unmet(needs)
    }

    /// One libtest trial per check, each blocking on `runtime` (libtest runs trials on its own
    /// threads, where no tokio runtime is current). Each tells the run's sinks when its
    /// check starts; the record tells them when it finishes.
    /// They come in [`Self::phase_order`]: libtest starts the final phase only once every
    /// other trial has started, so waiting for those to finish can never hold up a thread they
    /// need.
    pub fn trials(self: &Arc<Self>, runtime: &Handle) -> Vec<Trial> {
        self.phase_order()
            .into_iter()
            .map(|index| {
                let plan = Arc::clone(self);
                let runtime = runtime.clone();
                let planned = &self.checks[index];
                Trial::ignorable_test(planned.name.clone(), move || {
                    plan.context.record.events().emit(RunEvent::CheckStarted {
                        id: CheckId(index),
                        name: &plan.checks[index].name,
                    });
                    let record = runtime.block_on(plan.execute(index));
                    match record.outcome {
                        Outcome::Passed | Outcome::Warned => Ok(Completion::Completed),
                        Outcome::Ignored => Ok(Completion::ignored_with(record.message)),
                        Outcome::Failed => Err(Failed::from(record.message)),
                        Outcome::Errored => Err(Failed::from(format!("error: {}", record.message))),
                    }
                })
                .with_kind(planned.level.to_string())
                .with_ignored_flag(planned.ignored)
            })
            .collect()
    }
}

/// Why a check stopped without a verdict, and the harness exchanges that explain it.
struct Stopped {
    abort: Abort,
    cites: Vec<usize>,
}

impl From<Abort> for Stopped {
    fn from(abort: Abort) -> Stopped {
        Stopped {
            abort,
            cites: Vec::new(),
        }
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into()),
        Err(error) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--dry-run` says what each check would do: a kind that sends anything but its suite
    /// requests must say so itself ([`Check::plan`]), and none of the bundled ones is silent.
    #[test]
    fn every_check_of_the_bundled_suites_plans_something() {
        let flat = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/flat.toml");
        for suite in [Suite::load(None), Suite::load(Some(&flat))] {
            let suite = suite.expect("the suite loads");
            for planned in planned_checks(&suite).expect("the checks build") {
                assert!(
                    !planned.check.plan(&suite.settings).is_empty(),
                    "{} ({}) plans nothing",
                    planned.name,
                    suite.name
                );
            }
        }
    }
}
