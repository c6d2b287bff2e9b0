//! The console's last lines, printed after libtest's own: the SHOULD warnings with their
//! messages, what passing checks measured (burst rate, latency, time to finish), the flaky checks, then one line of counts and time (libtest's line has no
//! warnings, no errored count and no waiting time).

use super::{human_duration, Report};
use crate::record::Outcome;

/// The summary block, ending with a newline.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    let warned: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Warned)
        .collect();
    if !warned.is_empty() {
        out.push_str("warnings (SHOULD; pass --strict to fail on them):\n");
        for check in warned {
            out.push_str(&format!(
                "    {}: {}\n",
                check.name,
                check.message.replace('\n', "\n        ")
            ));
        }
        out.push('\n');
    }
    let notes: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.outcome == Outcome::Passed && !c.message.is_empty())
        .collect();
    if !notes.is_empty() {
        out.push_str("measured:\n");
        for check in notes {
            out.push_str(&format!(
                "    {}: {}\n",
                check.name,
                check.message.replace('\n', "\n        ")
            ));
        }
        out.push('\n');
    }
    let flaky: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.flaky)
        .map(|c| c.name.as_str())
        .collect();
    if !flaky.is_empty() {
        out.push_str(&format!(
            "flaky (passed only after a transport error was retried): {}\n",
            flaky.join(", ")
        ));
    }
    let summary = &report.summary;
    out.push_str(&format!(
        "apiconform: {} ({} check{}) in {}, {} of it waiting on the server\n",
        summary.counts(),
        summary.total,
        if summary.total == 1 { "" } else { "s" },
        human_duration(report.duration),
        human_duration(summary.waited)
    ));
    if let Some(note) = summary.transport_errors_note() {
        out.push_str(&format!("apiconform: {note}\n"));
    }
    out
}
