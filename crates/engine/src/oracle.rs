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
    /// The reads it took, for findings about a difference to cite.
    pub exchanges: Vec<usize>,
}

impl Snapshot {
    /// Read the jobs page and the usage events of `credential`'s tenant.
    pub async fn take(cx: &CheckContext<'_>, credential: Credential) -> Result<Snapshot, Abort> {
        let usage = &cx.settings().usage;
        let mut exchanges = Vec::new();
        let jobs = read_array(cx, credential, &usage.jobs_path, &usage.jobs_pointer).await?;
        exchanges.push(jobs.1);
        let id_pointer = &cx.settings().jobs.id_pointer;
        let job_ids = jobs
            .0
            .iter()
            .filter_map(|job| id_text(job.pointer(id_pointer)))
            .collect();
        let events = if usage.events_path.is_empty() {
            None
        } else {
            let (events, exchange) =
                read_array(cx, credential, &usage.events_path, &usage.events_pointer).await?;
            exchanges.push(exchange);
            Some(events)
        };
        Ok(Snapshot {
            job_ids,
            events,
            exchanges,
        })
    }

    /// Jobs present now that were not in `before`.
    pub fn new_jobs(&self, before: &Snapshot) -> Vec<String> {
        self.job_ids.difference(&before.job_ids).cloned().collect()
    }

    /// The reads of `before` and of this snapshot, for a finding about their difference.
    pub fn exchanges_since<'s>(&'s self, before: &'s Snapshot) -> impl Iterator<Item = usize> + 's {
        before.exchanges.iter().chain(&self.exchanges).copied()
    }

    /// Usage events present now that were not in `before` (None when events are not observed).
    pub fn new_events(&self, before: &Snapshot) -> Option<Vec<Value>> {
        let (now, then) = (self.events.as_ref()?, before.events.as_ref()?);
        Some(now.iter().filter(|e| !then.contains(e)).cloned().collect())
    }
}

/// GET `path` as `credential` and return the array at `pointer` (or the body itself when it
/// is a bare array), with the exchange it came in. An error reply means the check cannot reach a verdict; a reply of another
/// shape means the suite does not describe this API's usage endpoints, so the check cannot run.
async fn read_array(
    cx: &CheckContext<'_>,
    credential: Credential,
    path: &str,
    pointer: &str,
) -> Result<(Vec<Value>, usize), Abort> {
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
    match (response.pointer(pointer), &response.json) {
        (Some(Value::Array(items)), _) | (None, Some(Value::Array(items))) => {
            Ok((items.clone(), response.exchange))
        }
        (other, _) => Err(Abort::Ignored(format!(
            "cannot observe side effects: expected an array at {pointer} in {}, saw {}; describe this API's job list and usage events in the suite's [usage] table",
            response.label(),
            crate::jobs::shown(other)
        ))),
    }
}
