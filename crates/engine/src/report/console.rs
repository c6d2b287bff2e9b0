//! The console's last lines, printed after libtest's own: the SHOULD warnings with their
//! messages, what passing checks measured (burst rate, latency, time to finish), the flaky checks, then one line of counts and time (libtest's line has no
//! warnings, no errored count and no waiting time).

use super::{human_duration, CheckEntry, Report};
use crate::record::Outcome;

/// The summary block, ending with a newline.
pub fn summary(report: &Report) -> String {
    let mut out = String::new();
    section(
        &mut out,
        "warnings (SHOULD; pass --strict to fail on them):",
        report
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Warned),
    );
    section(
        &mut out,
        "measured:",
        report
            .checks
            .iter()
            .filter(|c| c.outcome == Outcome::Passed && !c.message.is_empty()),
    );
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
    let drift = super::drift_lines(report);
    if !drift.is_empty() {
        out.push_str(
            "drift (fields live responses carry that the schemas do not declare; pass --strict-drift to fail on them):\n",
        );
        for line in drift {
            out.push_str(&format!("    {line}\n"));
        }
        out.push('\n');
    }
    for notice in &report.notices {
        out.push_str(&format!("apiconform: {notice}\n"));
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
    if let Some(note) = report.failure_note() {
        out.push_str(&format!("apiconform: {note}\n"));
    }
    out
}

/// A titled block of checks with their messages, indented; nothing when there are none.
fn section<'a>(out: &mut String, title: &str, checks: impl Iterator<Item = &'a CheckEntry>) {
    let mut checks = checks.peekable();
    if checks.peek().is_none() {
        return;
    }
    out.push_str(title);
    out.push('\n');
    for check in checks {
        out.push_str(&format!(
            "    {}: {}\n",
            check.name,
            check.message.replace('\n', "\n        ")
        ));
    }
    out.push('\n');
}
