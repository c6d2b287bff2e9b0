//! The JUnit XML report (`--junit`), written with quick-junit (nextest's writer), in the shape
//! the JUnit readers of GitHub Actions, GitLab and Jenkins load: one `<testsuite>` per area,
//! one `<testcase>` per check.
//!
//! A contract violation is `<failure>`, a check without a verdict (transport error, harness
//! error) is `<error>`, an ignored check is `<skipped>` with its reason, and a SHOULD warning
//! is a passing test case whose system-out starts with `warning:`. Each test case's
//! system-out carries its evidence.

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{areas, evidence, CheckEntry, Report};
use crate::record::{Level, Outcome};

/// Longest `message` attribute; the whole message is the element's text.
const MESSAGE_ATTRIBUTE_CHARS: usize = 300;

/// The JUnit report, as a run writes it (`ReportPaths`).
pub const FORMAT: super::Format = super::Format {
    what: "JUnit report",
    render,
};

/// The report as JUnit XML.
pub fn render(report: &Report) -> String {
    let mut junit = quick_junit::Report::new(format!("apiconform {}", report.suite.name));
    junit
        .set_timestamp(report.started_at)
        .set_time(report.duration);
    for area in areas(report) {
        let checks: Vec<&CheckEntry> = report.checks.iter().filter(|c| c.area == area).collect();
        let mut suite = TestSuite::new(area);
        suite
            .set_timestamp(report.started_at)
            .set_time(checks.iter().map(|c| c.duration).sum())
            .add_properties([
                Property::new("apiconform.version", report.tool.version),
                Property::new("suite.name", report.suite.name.as_str()),
                Property::new("suite.hash", report.suite.hash.as_str()),
                Property::new("target.base_url", report.target.base_url.as_str()),
            ]);
        suite.add_test_cases(checks.into_iter().map(test_case));
        junit.add_test_suite(suite);
    }
    // quick-junit writes to a Vec; only an I/O error could fail it.
    junit.to_string().expect("JUnit XML serializes to memory")
}

fn test_case(check: &CheckEntry) -> TestCase {
    let status = match check.outcome {
        Outcome::Passed | Outcome::Warned => TestCaseStatus::success(),
        Outcome::Failed => non_success(
            check,
            NonSuccessKind::Failure,
            match check.level {
                Level::Must => "MUST violation",
                Level::Should => "SHOULD violation (--strict)",
            },
        ),
        Outcome::Errored => non_success(check, NonSuccessKind::Error, "no verdict"),
        Outcome::Ignored => {
            let mut status = TestCaseStatus::skipped();
            status.set_message(check.message.as_str());
            status
        }
    };
    let mut case = TestCase::new(check.name.as_str(), status);
    case.set_classname(format!("apiconform.{}", check.area))
        .set_time(check.duration)
        .set_system_out(evidence::text(check));
    case
}

fn non_success(check: &CheckEntry, kind: NonSuccessKind, ty: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    let first_line = check.message.lines().next().unwrap_or_default();
    let mut message: String = first_line.chars().take(MESSAGE_ATTRIBUTE_CHARS).collect();
    if message.len() < check.message.len() {
        message.push_str(" ...");
    }
    status
        .set_message(message)
        .set_type(ty)
        .set_description(check.message.as_str());
    status
}
