//! The run as a stream of events: what happens is told, as it happens, to every
//! [`EventSink`] of the run's [`EventBus`].
//!
//! The [`crate::record::RunRecord`] is where events come from: each exchange, wait, retry and
//! check outcome it records is told to the sinks at once, already masked. The runner tells
//! when a check starts, and the binary when the run has finished with its report. Sinks are
//! the outputs: the JSON event stream on stdout, the report files ([`crate::report::ReportFiles`]).
//! A sink is told from whichever thread the event happened on, so it must be quick and
//! must not call back into the record.

use std::sync::Arc;
use std::time::Duration;

use crate::record::{CheckRecord, Exchange};
use crate::report::Report;
use crate::secrets::Secrets;

/// A check's place in the plan: its id for the run (names are for people).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId(pub usize);

/// One thing that happened in a run.
#[derive(Clone, Copy, Debug)]
pub enum RunEvent<'a> {
    /// A check starts (from the thread that runs it).
    CheckStarted { id: CheckId, name: &'a str },
    /// An exchange was made and kept in the record (see
    /// [`crate::record::KEPT_FIRST_PER_CHECK`]); `exchange.check` names who sent it.
    Exchange(&'a Exchange),
    /// `by` (a check, or a `run::` step) waited on the server's say-so.
    Waited { by: &'a str, duration: Duration },
    /// `by` got an answer only after a transport error was retried.
    Retried { by: &'a str },
    /// A check ended, or was recorded as not run, with its outcome and findings.
    CheckFinished {
        id: CheckId,
        record: &'a CheckRecord,
    },
    /// Every check has ended and the run's report is built (masked); `secrets` masks what a
    /// sink writes once more.
    RunFinished {
        report: &'a Report,
        secrets: &'a Secrets,
    },
}

/// An output of the run: told every event.
pub trait EventSink: Send + Sync {
    fn event(&self, event: &RunEvent<'_>);
}

/// The sinks of one run. Events go to each sink in the order the sinks were added.
#[derive(Clone, Default)]
pub struct EventBus {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl EventBus {
    pub fn new(sinks: Vec<Arc<dyn EventSink>>) -> EventBus {
        EventBus { sinks }
    }

    /// Tell `event` to every sink.
    pub fn emit(&self, event: RunEvent<'_>) {
        for sink in &self.sinks {
            sink.event(&event);
        }
    }

    /// True when no sink listens: callers may skip building an event.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventBus({} sinks)", self.sinks.len())
    }
}
