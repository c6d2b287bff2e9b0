//! Reports of a run: one neutral model ([`Report`]) built from the [`RunRecord`], and one
//! module per format that renders it (JUnit, JSON, Markdown, the console summary).
//!
//! Every format reads the same `Report`, so they cannot disagree about an outcome. The record
//! is already masked; [`build`] masks what it copies from the record again, and
//! [`write_reports`] masks each rendered file once more, so a key that slipped into the record
//! by mistake still never reaches a file.

pub mod console;
pub mod curl;
pub mod evidence;
pub mod json;
pub mod junit;
pub mod markdown;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::events::{EventSink, RunEvent};
use crate::finding::Finding;
use crate::record::{Level, Outcome, RunRecord};
use crate::secrets::Secrets;
use crate::suite::{SuiteSource, BUNDLED_SUITE};

pub use evidence::{Evidence, ExchangeEvidence, Header};

/// What the run was: known before the checks run, except its duration.
#[derive(Clone, Debug)]
pub struct RunInfo {
    pub suite_name: String,
    /// `sha256:` and the hex digest of the suite file (see [`suite_hash`]).
    pub suite_hash: String,
    pub base_url: String,
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// The signal that stopped the run early, if one did (e.g. "SIGTERM").
    pub interrupted: Option<String>,
}

/// A finished run as every report shows it. Serialized, it is the JSON report's body
/// (documented in `schemas/report.schema.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub tool: Tool,
    pub suite: SuiteInfo,
    pub target: TargetInfo,
    #[serde(serialize_with = "rfc3339")]
    pub started_at: DateTime<Utc>,
    #[serde(rename = "duration_seconds", serialize_with = "seconds")]
    pub duration: Duration,
    pub summary: Summary,
    /// The signal that stopped the run before every check finished (e.g. "SIGTERM").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
    /// Facts about the run as a whole, each said once (a job set-up that failed, a target
    /// given up on), so the checks they affected need only a line each.
    pub notices: Vec<String>,
    /// In suite order; only checks that ran or were ignored (a FILTER leaves the others out).
    pub checks: Vec<CheckEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct SuiteInfo {
    pub name: String,
    /// `sha256:` and the hex digest of the suite file, so a vendor report names the exact suite.
    pub hash: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetInfo {
    pub base_url: String,
}

/// How many checks ended each way, and how long the run waited on the server.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    pub warned: usize,
    pub ignored: usize,
    pub errored: usize,
    /// Checks that passed only after a transport error was retried.
    pub flaky: usize,
    /// Checks that saw drift (fields the schemas do not declare).
    #[serde(skip_serializing_if = "is_zero")]
    pub drift: usize,
    #[serde(rename = "waited_seconds", serialize_with = "seconds")]
    pub waited: Duration,
}

impl Report {
    /// One sentence on why checks failed without a verdict, when the whole run says why: it
    /// was interrupted, or every failure is an error and none a contract violation.
    pub fn failure_note(&self) -> Option<String> {
        match &self.interrupted {
            Some(cause) => Some(format!(
                "the run was interrupted by {cause}: {} check(s) did not reach a verdict",
                self.summary.errored
            )),
            None => self.summary.transport_errors_note(),
        }
    }
}

impl Summary {
    /// Failed and errored checks: what makes the run fail.
    pub fn failures(&self) -> usize {
        self.failed + self.errored
    }

    /// When every failure is an error without a verdict and none is a contract violation, the
    /// target (not the contract) is the likely problem: this sentence says so.
    pub fn transport_errors_note(&self) -> Option<String> {
        match (self.failed, self.errored) {
            (0, 0) | (1.., _) => None,
            (0, 1) => Some("the only failure is a transport error: the target may be down".into()),
            (0, n) => Some(format!(
                "all {n} failures are transport errors: the target may be down"
            )),
        }
    }

    /// "4 passed (1 warned), 3 failed (2 errored), 2 ignored": the same words in every
    /// format, and the same numbers as libtest's own `test result:` line, which counts a
    /// warned check as passed and an errored one as failed.
    pub fn counts(&self) -> String {
        let of_them = |n: usize, what: &str| {
            if n == 0 {
                String::new()
            } else {
                format!(" ({n} {what})")
            }
        };
        format!(
            "{} passed{}, {} failed{}, {} ignored",
            self.passed + self.warned,
            of_them(self.warned, "warned"),
            self.failed + self.errored,
            of_them(self.errored, "errored"),
            self.ignored
        )
    }
}

/// One check's outcome with its evidence.
#[derive(Clone, Debug, Serialize)]
pub struct CheckEntry {
    pub name: String,
    pub area: String,
    pub level: Level,
    pub outcome: Outcome,
    /// Why it failed, warned, was ignored or errored; empty when it passed.
    pub message: String,
    /// The violations behind `message`, as data (see [`Finding`]).
    pub findings: Vec<Finding>,
    /// Fields live responses carried that the schema does not declare (rule `drift.field`,
    /// with the pointer); not a failure unless `--strict-drift`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Finding>,
    #[serde(rename = "duration_seconds", serialize_with = "seconds")]
    pub duration: Duration,
    pub flaky: bool,
    #[serde(rename = "waited_seconds", serialize_with = "seconds")]
    pub waited: Duration,
    pub evidence: Evidence,
}

impl CheckEntry {
    /// Failed or errored: the outcomes that fail the run and get a curl line.
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failed | Outcome::Errored)
    }
}

/// The outcome as one lowercase word, as the JSON report spells it.
pub fn outcome_word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Passed => "passed",
        Outcome::Failed => "failed",
        Outcome::Warned => "warned",
        Outcome::Ignored => "ignored",
        Outcome::Errored => "errored",
    }
}

/// Build the report of a run from its record. `order` is the suite's check order; checks the
/// record has that `order` lacks come last, in completion order.
///
/// Every text taken from the record is masked by `secrets` once more: renderers escape text
/// (Markdown, XML), and an escaped key would slip past the mask applied to the written file.
pub fn build(info: RunInfo, order: &[&str], record: &RunRecord, secrets: &Secrets) -> Report {
    let mut records = record.checks();
    let position = |name: &str| order.iter().position(|o| *o == name).unwrap_or(order.len());
    records.sort_by_key(|c| position(&c.name));
    let exchanges = record.exchanges();
    let checks: Vec<CheckEntry> = records
        .iter()
        .map(|check| CheckEntry {
            name: check.name.clone(),
            area: check.area.clone(),
            level: check.level,
            outcome: check.outcome.clone(),
            message: secrets.mask(&check.message),
            findings: check.findings.iter().map(|f| f.masked(secrets)).collect(),
            drift: check.drift.iter().map(|f| f.masked(secrets)).collect(),
            duration: check.duration,
            flaky: check.flaky,
            waited: check.waited,
            evidence: evidence::gather(check, &exchanges, secrets),
        })
        .collect();
    let mut summary = Summary {
        total: checks.len(),
        waited: record.waited(None),
        ..Summary::default()
    };
    for check in &checks {
        *match check.outcome {
            Outcome::Passed => &mut summary.passed,
            Outcome::Failed => &mut summary.failed,
            Outcome::Warned => &mut summary.warned,
            Outcome::Ignored => &mut summary.ignored,
            Outcome::Errored => &mut summary.errored,
        } += 1;
        summary.flaky += usize::from(check.flaky);
        summary.drift += usize::from(!check.drift.is_empty());
    }
    Report {
        tool: Tool {
            name: crate::TOOL_NAME,
            version: crate::TOOL_VERSION,
        },
        suite: SuiteInfo {
            name: info.suite_name,
            hash: info.suite_hash,
        },
        target: TargetInfo {
            base_url: secrets.mask(&info.base_url),
        },
        started_at: info.started_at,
        duration: info.duration,
        summary,
        interrupted: info.interrupted,
        notices: record.notices().iter().map(|n| secrets.mask(n)).collect(),
        checks,
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Every drift of the run, one line each, `check: message`.
pub fn drift_lines(report: &Report) -> Vec<String> {
    report
        .checks
        .iter()
        .flat_map(|c| {
            c.drift
                .iter()
                .map(move |d| format!("{}: {}", c.name, d.message))
        })
        .collect()
}

/// The areas of the report's checks, in the order they first appear.
pub fn areas(report: &Report) -> Vec<&str> {
    let mut areas: Vec<&str> = Vec::new();
    for check in &report.checks {
        if !areas.contains(&check.area.as_str()) {
            areas.push(&check.area);
        }
    }
    areas
}

/// `sha256:<hex>` of the suite's text: the bundled text, or the file as it is on disk now.
pub fn suite_hash(source: &SuiteSource) -> Result<String, AppError> {
    let text = match source {
        SuiteSource::Bundled => BUNDLED_SUITE.as_bytes().to_vec(),
        SuiteSource::Generated { document, .. } => document.as_bytes().to_vec(),
        SuiteSource::File(path) => std::fs::read(path).map_err(|e| {
            AppError::Environment(format!("cannot read suite {}: {e}", path.display()))
        })?,
    };
    Ok(format!("sha256:{:x}", Sha256::digest(&text)))
}

/// A report file format: its name in messages, and how it renders a report. Each format's
/// module declares its own (`FORMAT`); a run asks for formats by flag ([`ReportPaths`]).
#[derive(Debug)]
pub struct Format {
    pub what: &'static str,
    pub render: fn(&Report) -> String,
}

/// Where the user asked for each report, in the order they are written.
#[derive(Clone, Debug, Default)]
pub struct ReportPaths(Vec<(&'static Format, PathBuf)>);

impl ReportPaths {
    /// The reports given a path, each with its format; a format without one is not written.
    pub fn asked<const N: usize>(paths: [(Option<PathBuf>, &'static Format); N]) -> ReportPaths {
        ReportPaths(
            paths
                .into_iter()
                .filter_map(|(path, format)| path.map(|path| (format, path)))
                .collect(),
        )
    }

    /// True when any report was asked for.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }
}

/// Render and write each requested report, masked by `secrets`. Every report is attempted;
/// the errors (one per report that could not be written) come back for the caller to print.
/// Make sure every report asked for can be written, before the first request: its folder is
/// created when missing, and the file is opened for writing. A run whose report could not be
/// written would otherwise be found out only after all its time was spent.
pub fn prepare_report_paths(paths: &ReportPaths) -> Result<(), AppError> {
    for (format, path) in &paths.0 {
        writable(path).map_err(|e| {
            AppError::Config(format!(
                "cannot write the {} to {}: {e}",
                format.what,
                path.display()
            ))
        })?;
    }
    Ok(())
}

/// Create `path`'s folder if need be and open the file for writing (created if missing,
/// not truncated: the report replaces it after the run).
fn writable(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(|_| ())
}

pub fn write_reports(report: &Report, paths: &ReportPaths, secrets: &Secrets) -> Vec<AppError> {
    paths
        .0
        .iter()
        .filter_map(|(format, path)| {
            writable(path)
                .and_then(|()| std::fs::write(path, secrets.mask(&(format.render)(report))))
                .err()
                .map(|e| {
                    AppError::Environment(format!(
                        "cannot write the {} to {}: {e}",
                        format.what,
                        path.display()
                    ))
                })
        })
        .collect()
}

/// The report files a run was asked for, as a sink: each is written when the run finishes.
pub struct ReportFiles {
    paths: ReportPaths,
    errors: std::sync::Mutex<Vec<AppError>>,
}

impl ReportFiles {
    pub fn new(paths: ReportPaths) -> ReportFiles {
        ReportFiles {
            paths,
            errors: std::sync::Mutex::default(),
        }
    }

    /// Why reports could not be written, one error per report, once the run has finished.
    pub fn errors(&self) -> Vec<AppError> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl EventSink for ReportFiles {
    fn event(&self, event: &RunEvent<'_>) {
        if let RunEvent::RunFinished { report, secrets } = event {
            let errors = write_reports(report, &self.paths, secrets);
            self.errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(errors);
        }
    }
}

/// Seconds as a number with millisecond precision, the unit of every JSON duration.
fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(round_ms(duration))
}

fn rfc3339<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn round_ms(duration: &Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A duration for people: "850 ms", "12.3 s", "4 min 05 s".
pub fn human_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        let secs = duration.as_secs();
        format!("{} min {:02} s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_pick_a_readable_unit() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(human_duration(Duration::from_millis(12_345)), "12.3 s");
        assert_eq!(human_duration(Duration::from_secs(245)), "4 min 05 s");
    }

    #[test]
    fn bundled_suite_hash_is_sha256_hex() {
        let hash = suite_hash(&SuiteSource::Bundled).unwrap();
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
    }
}
