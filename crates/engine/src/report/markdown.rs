//! The Markdown summary (`--summary-md`), for `$GITHUB_STEP_SUMMARY` or a vendor report: a
//! headline with the counts and the target, then one table per area, failures first, and a
//! collapsible curl line under each failing check.

use super::{areas, human_duration, outcome_word, CheckEntry, Report};
use crate::record::Outcome;

/// Longest message in a table cell; the JSON report has the whole of it. Keeps a summary of
/// a badly broken target well under GitHub's 1 MiB step-summary limit.
const CELL_CHARS: usize = 500;

/// The Markdown summary, as a run writes it (`ReportPaths`).
pub const FORMAT: super::Format = super::Format {
    what: "Markdown summary",
    render,
};

/// The report as GitHub-flavoured Markdown.
pub fn render(report: &Report) -> String {
    let summary = &report.summary;
    let verdict = if summary.failures() > 0 {
        "❌ failed"
    } else if summary.warned > 0 {
        "⚠️ passed with warnings"
    } else {
        "✅ passed"
    };
    let mut out = format!(
        "## apiconform {verdict} against `{}`\n\n",
        report.target.base_url
    );
    out.push_str(&format!(
        "**{}** of {} checks in {} ({} waiting on the server)",
        summary.counts(),
        summary.total,
        human_duration(report.duration),
        human_duration(summary.waited)
    ));
    if summary.flaky > 0 {
        out.push_str(&format!("; {} flaky", summary.flaky));
    }
    out.push_str(&format!(
        ".\nSuite `{}` (`{}`), apiconform {}, started {}.\n\n",
        report.suite.name,
        report.suite.hash,
        report.tool.version,
        report
            .started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ));
    if let Some(note) = report.failure_note() {
        out.push_str(&format!("> [!WARNING]\n> {note}.\n\n"));
    }
    for notice in &report.notices {
        out.push_str(&format!("> [!NOTE]\n> {}\n\n", notice.replace('\n', " ")));
    }
    let drift = super::drift_lines(report);
    if !drift.is_empty() {
        out.push_str("### Drift\n\nFields live responses carry that the schemas do not declare (not a failure unless `--strict-drift`):\n\n");
        for line in drift {
            out.push_str(&format!("- {}\n", escape(&line)));
        }
        out.push('\n');
    }
    let mut areas = areas(report);
    areas.sort_by_key(|area| {
        report
            .checks
            .iter()
            .filter(|c| c.area == *area)
            .map(|c| rank(&c.outcome))
            .min()
    });
    for area in areas {
        let mut checks: Vec<&CheckEntry> =
            report.checks.iter().filter(|c| c.area == area).collect();
        checks.sort_by_key(|c| rank(&c.outcome));
        out.push_str(&format!("### {}\n\n", escape(area)));
        out.push_str("| check | level | outcome | message |\n|---|---|---|---|\n");
        for check in &checks {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                check.name,
                check.level,
                outcome_cell(check),
                escape(&cut(&check.message))
            ));
        }
        out.push('\n');
        for check in checks.iter().filter(|c| c.is_failure()) {
            if let Some(curl) = &check.evidence.curl {
                let fence = fence_for(curl);
                out.push_str(&format!(
                    "<details><summary><code>{}</code>: reproduce with curl (set <code>API_KEY</code> first)</summary>\n\n{fence}sh\n{curl}\n{fence}\n\n</details>\n\n",
                    html(&check.name)
                ));
            }
        }
    }
    out
}

/// Table order: what needs attention first.
fn rank(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Failed => 0,
        Outcome::Errored => 1,
        Outcome::Warned => 2,
        Outcome::Ignored => 3,
        Outcome::Passed => 4,
    }
}

fn outcome_cell(check: &CheckEntry) -> String {
    let icon = match check.outcome {
        Outcome::Passed => "✅",
        Outcome::Failed => "❌",
        Outcome::Warned => "⚠️",
        Outcome::Ignored => "⏭️",
        Outcome::Errored => "💥",
    };
    let flaky = if check.flaky { " (flaky)" } else { "" };
    format!("{icon} {}{flaky}", outcome_word(&check.outcome))
}

fn cut(message: &str) -> String {
    if message.chars().count() <= CELL_CHARS {
        return message.to_string();
    }
    let head: String = message.chars().take(CELL_CHARS).collect();
    format!("{head}… (cut; the JSON report has the whole message)")
}

/// Text safe in a table cell: no markup, no emphasis, `|` escaped, lines joined with `<br>`.
/// An underscore inside a word cannot start emphasis, so `request_id` and `$API_KEY` stay
/// as they are (and searchable).
fn escape(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let word = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|c| c.is_alphanumeric())
    };
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '\n' => out.push_str("<br>"),
            '\r' => {}
            '_' if word(i.checked_sub(1)) && word(Some(i + 1)) => out.push(c),
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '<' | '>' | '&' => out.push_str(&html(&c.to_string())),
            _ => out.push(c),
        }
    }
    out
}

fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A code fence longer than any run of backticks in `code`.
fn fence_for(code: &str) -> String {
    let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat((longest + 1).max(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_escape_pipes_markup_and_newlines() {
        assert_eq!(
            escape("a | b\n<script> *x* id_1 _y_"),
            r"a \| b<br>&lt;script&gt; \*x\* id_1 \_y\_"
        );
    }

    #[test]
    fn fences_outgrow_backticks_in_the_code() {
        assert_eq!(fence_for("curl 'x'"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
    }
}
