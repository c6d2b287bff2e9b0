//! The JSON report (`--report-json`): the [`Report`] model with a format version, documented
//! in `schemas/report.schema.json`.

use serde::Serialize;

use super::Report;

/// Raised when a field changes meaning or goes away; new fields do not raise it. Version 2:
/// each check lists its `findings`, and a failure's evidence and curl line are the exchanges
/// those findings cite (no longer guessed from request ids in the message).
pub const FORMAT_VERSION: u32 = 2;

#[derive(Serialize)]
struct Versioned<'a> {
    format_version: u32,
    #[serde(flatten)]
    report: &'a Report,
}

/// The JSON report, as a run writes it (`ReportPaths`).
pub const FORMAT: super::Format = super::Format {
    what: "JSON report",
    render,
};

/// The report as pretty-printed JSON, ending with a newline.
pub fn render(report: &Report) -> String {
    let document = Versioned {
        format_version: FORMAT_VERSION,
        report,
    };
    // Serializing plain structs of strings and numbers cannot fail.
    let mut text = serde_json::to_string_pretty(&document).expect("the report serializes");
    text.push('\n');
    text
}
