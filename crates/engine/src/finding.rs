//! One contract violation a check saw, as data ([`Finding`]).
//!
//! The message is for people and may be reworded; the rule id is for machines (reports group
//! and filter by it) and stays. The exchanges a finding cites are its evidence: reports show
//! them and reproduce the first with curl, so nothing has to search messages for request ids.

use serde::Serialize;

use crate::client::Response;
use crate::secrets::Secrets;

/// The rule of a field a live response carries that its schema does not declare: drift, not
/// a violation (see [`split_drift`]).
pub const DRIFT_FIELD: &str = "drift.field";

/// Split drift from violations: drift (one per rule and place) is reported on its own and
/// fails nothing, unless `strict` (`--strict-drift`) keeps it among the violations too.
pub fn split_drift(findings: Vec<Finding>, strict: bool) -> (Vec<Finding>, Vec<Finding>) {
    let mut drift: Vec<Finding> = Vec::new();
    let mut violations = Vec::new();
    for finding in findings {
        if finding.rule.starts_with("drift.") {
            if !drift
                .iter()
                .any(|d| d.rule == finding.rule && d.pointer == finding.pointer)
            {
                drift.push(finding.clone());
            }
            if strict {
                violations.push(finding);
            }
        } else {
            violations.push(finding);
        }
    }
    (violations, drift)
}

/// A violation: which rule, in words, what was expected and seen, where, and on which exchanges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable id of the rule broken, lowercase `area.rule` (`schema.type`, `auth.status`).
    pub rule: String,
    /// The sentence the console, JUnit and the report's `message` show.
    pub message: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
    /// JSON pointer into the body judged, when the rule is about one value.
    pub pointer: Option<String>,
    /// Ids of the exchanges judged (see [`crate::record::RunRecord::exchanges`]).
    pub exchanges: Vec<usize>,
}

impl Finding {
    pub fn new(rule: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding {
            rule: rule.into(),
            message: message.into(),
            expected: None,
            actual: None,
            pointer: None,
            exchanges: Vec::new(),
        }
    }

    pub fn expected(mut self, expected: impl ToString) -> Finding {
        self.expected = Some(expected.to_string());
        self
    }

    pub fn actual(mut self, actual: impl ToString) -> Finding {
        self.actual = Some(actual.to_string());
        self
    }

    /// The JSON pointer of the value judged.
    pub fn at(mut self, pointer: impl Into<String>) -> Finding {
        self.pointer = Some(pointer.into());
        self
    }

    /// Cite the exchange `response` came from.
    pub fn cites(self, response: &Response) -> Finding {
        self.cites_exchange(response.exchange)
    }

    /// Cite the exchange of each of `responses`, in order.
    pub fn cites_all<'r>(self, responses: impl IntoIterator<Item = &'r Response>) -> Finding {
        responses
            .into_iter()
            .fold(self, |finding, response| finding.cites(response))
    }

    /// Cite exchange `id` (once, however often cited).
    pub fn cites_exchange(mut self, id: usize) -> Finding {
        if !self.exchanges.contains(&id) {
            self.exchanges.push(id);
        }
        self
    }

    /// Cite each exchange of `ids`, in order.
    pub fn cites_exchanges(self, ids: impl IntoIterator<Item = usize>) -> Finding {
        ids.into_iter().fold(self, Finding::cites_exchange)
    }

    /// The message with `prefix` before it: a check says which request or input it was about.
    pub fn prefixed(mut self, prefix: &str) -> Finding {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// The message with `suffix` after it (the burst's summary, the response's label).
    pub fn suffixed(mut self, suffix: &str) -> Finding {
        self.message.push_str(suffix);
        self
    }

    /// Every text masked, as the record keeps it.
    pub fn masked(&self, secrets: &Secrets) -> Finding {
        let mask = |text: &Option<String>| text.as_deref().map(|t| secrets.mask(t));
        Finding {
            rule: self.rule.clone(),
            message: secrets.mask(&self.message),
            expected: mask(&self.expected),
            actual: mask(&self.actual),
            pointer: mask(&self.pointer),
            exchanges: self.exchanges.clone(),
        }
    }
}

/// How often one root cause must repeat before its findings are folded into one.
const FOLD_FROM: usize = 3;

/// `findings` with each root cause said once: findings of the same rule, expectation, value
/// and pointer (the same bad field in every poll of a job, say) that come `FOLD_FROM` times
/// or more become the first of them, counted, citing every exchange. Order is kept.
pub fn fold_repeats(findings: Vec<Finding>) -> Vec<Finding> {
    type Cause = (String, Option<String>, Option<String>, Option<String>);
    let cause = |f: &Finding| -> Cause {
        (
            f.rule.clone(),
            f.expected.clone(),
            f.actual.clone(),
            f.pointer.clone(),
        )
    };
    let mut counts: Vec<(Cause, usize)> = Vec::new();
    for finding in &findings {
        let key = cause(finding);
        match counts.iter_mut().find(|(c, _)| *c == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    let count_of = |key: &Cause| counts.iter().find(|(c, _)| c == key).map_or(1, |(_, n)| *n);
    let mut out: Vec<Finding> = Vec::new();
    let mut firsts: Vec<(Cause, usize)> = Vec::new();
    for finding in findings {
        let key = cause(&finding);
        let count = count_of(&key);
        if count < FOLD_FROM {
            // Kept apart: their messages may differ in what matters.
            out.push(finding);
        } else if let Some((_, at)) = firsts.iter().find(|(c, _)| *c == key) {
            out[*at] = out[*at].clone().cites_exchanges(finding.exchanges);
        } else {
            firsts.push((key, out.len()));
            out.push(finding.suffixed(&format!(" (seen {count} times in all, the same way)")));
        }
    }
    out
}

/// The messages of `findings`, one a line: the text every outcome has always shown.
pub fn messages(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_cites_each_exchange_once_and_masks_every_text() {
        let mut response = Response::for_test(401, &[], "{}");
        response.exchange = 7;
        let finding = Finding::new("auth.status", "saw sk_1")
            .expected(401)
            .actual("sk_1")
            .at("/key")
            .cites(&response)
            .cites(&response)
            .prefixed("GET /: ");
        assert_eq!(finding.exchanges, [7]);
        assert_eq!(finding.message, "GET /: saw sk_1");
        let mut secrets = Secrets::default();
        secrets.register("sk_1", "$API_KEY");
        let masked = finding.masked(&secrets);
        assert_eq!(masked.message, "GET /: saw $API_KEY");
        assert_eq!(masked.actual.as_deref(), Some("$API_KEY"));
        assert_eq!(masked.expected.as_deref(), Some("401"));
    }

    #[test]
    fn a_cause_repeated_three_times_is_one_finding_with_a_count() {
        let poll = |exchange: usize| {
            Finding::new(
                "schema.type",
                format!("progress is a string, in read {exchange}"),
            )
            .expected("number")
            .actual("\"50\"")
            .at("/progress")
            .cites_exchange(exchange)
        };
        let other = Finding::new("schema.required", "id is missing").at("/id");
        let folded = fold_repeats(vec![poll(1), other.clone(), poll(2), poll(3)]);
        assert_eq!(folded.len(), 2, "{folded:?}");
        assert_eq!(
            folded[0].message,
            "progress is a string, in read 1 (seen 3 times in all, the same way)"
        );
        assert_eq!(folded[0].exchanges, [1, 2, 3]);
        assert_eq!(folded[1], other);
        // Twice is not yet a pattern: both stay, in order.
        let twice = fold_repeats(vec![poll(1), poll(2)]);
        assert_eq!(twice, vec![poll(1), poll(2)]);
    }
}
