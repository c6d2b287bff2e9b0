//! `--format json`: libtest's JSON event stream (`{"type": "test", "event": "ok", ...}`, one
//! object a line), written here rather than by libtest-mimic, whose printer wraps a failure's
//! message as `Error: "..."` with its quotes escaped. Here a failure's `stdout` is the
//! message as plain text, an ignored check's `message` says why, and a warned check passes
//! with its warning in `stdout`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

use crate::events::{EventSink, RunEvent};
use crate::interrupt::Interrupt;
use crate::record::{CheckRecord, Outcome};
use crate::stdout::STDOUT_CLOSED;

/// Where libtest's own printer writes while this stream has stdout.
pub(crate) const DISCARDED: &str = if cfg!(windows) { "NUL" } else { "/dev/null" };

/// The JSON event stream of one run, on stdout.
pub(crate) struct JsonEvents {
    interrupt: Interrupt,
    closed: AtomicBool,
}

impl JsonEvents {
    pub(crate) fn new(interrupt: Interrupt) -> Self {
        JsonEvents {
            interrupt,
            closed: AtomicBool::new(false),
        }
    }

    /// The run starts `count` checks (ignored ones included, as libtest counts them).
    pub(crate) fn suite_started(&self, count: usize) {
        self.emit(json!({"type": "suite", "event": "started", "test_count": count}));
    }

    /// The run's end, with libtest's counts.
    pub(crate) fn suite_finished(&self, conclusion: &libtest_mimic::Conclusion, took: Duration) {
        self.emit(json!({
            "type": "suite",
            "event": if conclusion.has_failed() { "failed" } else { "ok" },
            "passed": conclusion.num_passed,
            "failed": conclusion.num_failed,
            "ignored": conclusion.num_ignored,
            "measured": conclusion.num_measured,
            "filtered_out": conclusion.num_filtered_out,
            "exec_time": took.as_secs_f64(),
        }));
    }

    /// One object, one line, one write: lines from checks ending at once never mix. A reader
    /// that went away stops the run as a closed stdout does in the other formats.
    fn emit(&self, event: Value) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let mut line = event.to_string();
        line.push('\n');
        let mut out = std::io::stdout().lock();
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            self.closed.store(true, Ordering::Relaxed);
            self.interrupt.raise(STDOUT_CLOSED);
        }
    }
}

/// Each check's start and end, as libtest reports them (a check the suite marks ignored is
/// started and ignored at once, as libtest does).
impl EventSink for JsonEvents {
    fn event(&self, event: &RunEvent<'_>) {
        match event {
            RunEvent::CheckStarted { name, .. } => {
                self.emit(json!({"type": "test", "event": "started", "name": name}));
            }
            RunEvent::CheckFinished { record, .. } => self.finished(record),
            _ => {}
        }
    }
}

impl JsonEvents {
    fn finished(&self, record: &CheckRecord) {
        let name = record.name.as_str();
        let message = record.message.as_str();
        self.emit(match record.outcome {
            Outcome::Passed => json!({"type": "test", "name": name, "event": "ok"}),
            Outcome::Warned => {
                json!({"type": "test", "name": name, "event": "ok", "stdout": format!("warning: {message}\n")})
            }
            Outcome::Ignored => {
                json!({"type": "test", "name": name, "event": "ignored", "message": message})
            }
            Outcome::Failed => {
                json!({"type": "test", "name": name, "event": "failed", "stdout": format!("{message}\n")})
            }
            Outcome::Errored => {
                json!({"type": "test", "name": name, "event": "failed", "stdout": format!("error: {message}\n")})
            }
        });
    }
}
