//! The side-effect oracle ([`Snapshot`]): a tenant's jobs and charges, read before and after
//! an action, so a check can tell whether the action created a job or charged twice.
//!
//! Checks that use it run alone (see `Needs::exclusive`), so the difference between two
//! snapshots is theirs.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::client::Outgoing;
use crate::context::{Abort, CheckContext};
use crate::jobs::id_text;
use crate::suite::Credential;

/// A tenant's visible side effects at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Ids of the jobs on the first page of the tenant's job list.
    pub job_ids: BTreeSet<String>,
    /// The tenant's recent usage events, as JSON; None when the suite names no events path.
    pub events: Option<Vec<Value>>,
}

impl Snapshot {
    /// Read the jobs page and the usage events of `credential`'s tenant.
    pub async fn take(cx: &CheckContext<'_>, credential: Credential) -> Result<Snapshot, Abort> {
        let usage = &cx.settings().usage;
        let jobs = read_array(cx, credential, &usage.jobs_path, &usage.jobs_pointer).await?;
        let id_pointer = &cx.settings().jobs.id_pointer;
        let job_ids = jobs
            .iter()
            .filter_map(|job| id_text(job.pointer(id_pointer)))
            .collect();
        let events = if usage.events_path.is_empty() {
            None
        } else {
            Some(read_array(cx, credential, &usage.events_path, &usage.events_pointer).await?)
        };
        Ok(Snapshot { job_ids, events })
    }

    /// Jobs present now that were not in `before`.
    pub fn new_jobs(&self, before: &Snapshot) -> Vec<String> {
        self.job_ids.difference(&before.job_ids).cloned().collect()
    }

    /// Usage events present now that were not in `before` (None when events are not observed).
    pub fn new_events(&self, before: &Snapshot) -> Option<Vec<Value>> {
        let (now, then) = (self.events.as_ref()?, before.events.as_ref()?);
        Some(now.iter().filter(|e| !then.contains(e)).cloned().collect())
    }

    /// New usage events that name `job_id`, per the suite's event job pointer.
    pub fn new_events_for(
        &self,
        before: &Snapshot,
        job_id: &str,
        job_pointer: &str,
    ) -> Option<usize> {
        let events = self.new_events(before)?;
        Some(
            events
                .iter()
                .filter(|e| id_text(e.pointer(job_pointer)).as_deref() == Some(job_id))
                .count(),
        )
    }
}

/// GET `path` as `credential` and return the array at `pointer`; anything else means the
/// side effects cannot be observed, and the check cannot reach a verdict.
async fn read_array(
    cx: &CheckContext<'_>,
    credential: Credential,
    path: &str,
    pointer: &str,
) -> Result<Vec<Value>, Abort> {
    let mut request = Outgoing::get(path);
    request.credential = credential;
    let response = cx.send_outgoing(&request).await?;
    if !response.is_success() {
        return Err(Abort::Errored(format!(
            "cannot observe side effects: expected 2xx from {}, body: {}",
            response.label(),
            response.body_excerpt(200)
        )));
    }
    match response.pointer(pointer) {
        Some(Value::Array(items)) => Ok(items.clone()),
        other => Err(Abort::Errored(format!(
            "cannot observe side effects: expected an array at {pointer} in {}, saw {}",
            response.label(),
            crate::jobs::shown(other)
        ))),
    }
}
