//! Two vendor dialects from files alone: the default suite against the reference server's
//! `standard` dialect, `suites/flat.toml` against its `flat` one. Each suite passes in its own
//! dialect and fails, in the checks that judge what differs and saying why, in the other; the
//! fault matrix runs for the flat dialect too.

#[path = "support/matrix.rs"]
mod matrix;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use apiconform::record::{CheckRecord, Outcome};
use apiconform::reference::{Dialect, Fault};
use apiconform::suite::Suite;
use matrix::{row, Row, LIFECYCLE, NEEDS_A_FINISHED_JOB, READ_AFTER_BURST};

/// Time allowed for one suite run.
const RUN_LIMIT: Duration = Duration::from_secs(180);

async fn run(
    suite: Option<&std::path::Path>,
    dialect: Dialect,
    faults: &[Fault],
) -> BTreeMap<String, CheckRecord> {
    tokio::time::timeout(
        RUN_LIMIT,
        support::run_suite_against(suite, dialect, faults, &[], false),
    )
    .await
    .unwrap_or_else(|_| panic!("the run against {dialect} with {faults:?} finishes in time"))
}

fn flat_suite() -> Suite {
    Suite::load(Some(&support::flat_suite_path())).expect("the flat suite loads")
}

/// The checks that did not pass, with their messages.
fn not_passed(outcomes: &BTreeMap<String, CheckRecord>) -> BTreeMap<&str, &str> {
    outcomes
        .values()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Failed | Outcome::Warned | Outcome::Errored
            )
        })
        .map(|r| (r.name.as_str(), r.message.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flat_suite_passes_against_the_flat_dialect() {
    let path = support::flat_suite_path();
    let outcomes = run(Some(&path), Dialect::Flat, &[]).await;
    support::assert_every_check_of_passed(
        &support::check_names(&flat_suite()),
        &outcomes,
        "the flat suite in the flat dialect",
    );
}

/// The checks of the default suite that pass against the flat dialect anyway: they judge
/// nothing the two dialects differ in (a request id header, no key echoed, the logs, the
/// public health and price list).
const DEFAULT_PASSES_IN_FLAT: &[&str] = &[
    "auth::key_not_echoed",
    "observability::request_id_header",
    "observability::request_id_consistent",
    "observability::request_id_unique",
    "observability::logs",
    "health::status",
    "pricing::rates",
];

/// The checks of the flat suite that pass against the standard dialect anyway.
const FLAT_PASSES_IN_STANDARD: &[&str] = &[
    "auth::key_not_echoed",
    "observability::request_id_header",
    "observability::request_id_consistent",
    "observability::request_id_unique",
    "observability::logs",
    "health::status",
    "pricing::rates",
];

/// Assert that exactly the checks of `names` outside `passing` failed, and that each message
/// in `why` (check, words) says what differs.
fn assert_fails_as_expected(
    outcomes: &BTreeMap<String, CheckRecord>,
    names: &[String],
    passing: &[&str],
    why: &[(&str, &[&str])],
    what: &str,
) {
    let failed = not_passed(outcomes);
    let expected: BTreeSet<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !passing.contains(n))
        .collect();
    assert_eq!(
        failed.keys().copied().collect::<BTreeSet<_>>(),
        expected,
        "{what}: the checks that fail"
    );
    for (check, words) in why {
        let message = failed[check];
        for word in *words {
            assert!(
                message.contains(word),
                "{what}: {check} should say {word:?}: {message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_suite_fails_against_the_flat_dialect_saying_why() {
    let outcomes = run(None, Dialect::Flat, &[]).await;
    assert_fails_as_expected(
        &outcomes,
        &support::default_check_names(),
        DEFAULT_PASSES_IN_FLAT,
        &[
            // The key goes in X-Api-Key, which the flat dialect does not read.
            (
                "auth::valid_key",
                &["expected status 2xx, got 401", "Missing API key"],
            ),
            // No code field in a flat body.
            (
                "auth::missing_key",
                &["expected error code \"missing_api_key\" at /error/code, found none"],
            ),
            (
                "auth::invalid_key",
                &["expected error code \"invalid_api_key\" at /error/code, found none"],
            ),
            (
                "auth::error_envelope",
                &["at /error: \"Missing API key\" is not of type \"object\""],
            ),
            (
                "observability::error_request_id",
                &["expected a request id at /error/request_id"],
            ),
            // The job is read elsewhere and created with the key the dialect does not read.
            ("errors::unknown_job", &["expected status 404, got 401"]),
            (
                "lifecycle::short_clip",
                &["creating the job: expected 2xx, got POST /v1/jobs -> 401"],
            ),
            ("schema::job_read", &["could not create a job"]),
        ],
        "the default suite against the flat dialect",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flat_suite_fails_against_the_standard_dialect_saying_why() {
    let path = support::flat_suite_path();
    let outcomes = run(Some(&path), Dialect::Standard, &[]).await;
    assert_fails_as_expected(
        &outcomes,
        &support::check_names(&flat_suite()),
        FLAT_PASSES_IN_STANDARD,
        &[
            // A Bearer key in Authorization is no key to the standard dialect.
            ("auth::valid_key", &["expected status 2xx, got 401"]),
            // The enveloped message is not where the flat suite reads it.
            ("auth::missing_key", &["expected an error message containing \"Missing API key\" at /error, found none"]),
            ("auth::invalid_key", &["expected an error message containing \"Invalid API key\" at /error, found none"]),
            ("auth::error_envelope", &["is not of type \"string\""]),
            ("observability::error_request_id", &["expected a request id at /request_id"]),
            ("protocol::version_header", &["expected X-Api-Version: 2 on every response, found none"]),
            ("errors::unknown_job", &["expected status 404, got 401"]),
            ("lifecycle::short_clip", &["creating the job: expected 2xx, got POST /v1/jobs -> 401"]),
        ],
        "the flat suite against the standard dialect",
    );
}

// ------------------------------------------------------------------ the flat fault matrix

/// Checks of the flat suite alone that read a job path, which may come after the burst.
const FLAT_READS_AFTER_BURST: &[&str] = &[
    "observability::error_request_id",
    "observability::request_id_consistent",
    "protocol::version_header",
];

/// Faults that do not apply to the flat dialect: what they break is not in it.
const NOT_IN_FLAT: &[Fault] = &[
    // Flat errors carry no code to get wrong.
    Fault::AuthWrongCode,
    // The flat dialect sends no Retry-After to put in the past.
    Fault::RetryAfterInPast,
    // The flat suite has no webhooks::* checks yet: these faults are proven by the default
    // suite's matrix only.
    Fault::WebhookBadSignature,
    Fault::WebhookMissingStarted,
    Fault::WebhookOutOfOrder,
    Fault::WebhookStaleTimestamp,
    Fault::WebhookReusedDeliveryId,
    Fault::WebhookNoRetry,
    Fault::WebhookWrongEventHeader,
    Fault::WebhookJobNotNamed,
    Fault::WebhookNotRecorded,
];

/// The flat suite's matrix: the shared rows, and those of what only the flat dialect has (the
/// version header) or judges otherwise (its error body requires no request id).
fn flat_matrix() -> Vec<Row> {
    use Fault::*;
    let mut rows = matrix::shared_rows();
    rows.extend([
        // {"message": "Unauthorized"}: no message where the suite reads it, not the flat shape.
        row(
            AuthPlainError,
            &[&[
                "auth::missing_key",
                "auth::invalid_key",
                "auth::error_envelope",
            ]],
            &[],
        ),
        row(
            NotFound500,
            &[&["errors::unknown_job"]],
            &[&[
                "auth::cross_tenant",
                "errors::malformed_job_id",
                "observability::error_request_id",
                "observability::request_id_consistent",
            ]],
        ),
        row(
            NotFoundPlain,
            &[&["errors::unknown_job", "observability::error_request_id"]],
            &[&["auth::cross_tenant", "observability::request_id_consistent"]],
        ),
        row(
            MalformedId500,
            &[&["errors::malformed_job_id"]],
            &[&[
                "observability::error_request_id",
                "observability::request_id_consistent",
            ]],
        ),
        // The flat error schema does not require the id: only the check that does fails.
        row(
            NoRequestIdInBody,
            &[&["observability::error_request_id"]],
            &[&["observability::request_id_consistent"]],
        ),
        row(
            NoRequestIdHeader,
            &[&["observability::request_id_header"]],
            &[&["observability::request_id_consistent"]],
        ),
        row(NoVersionHeader, &[&["protocol::version_header"]], &[]),
        row(
            RateLimitNeverRecovers,
            &[&["rate_limit::recovery"]],
            &[READ_AFTER_BURST, FLAT_READS_AFTER_BURST, LIFECYCLE],
        ),
        row(JobNeverFinishes, &[LIFECYCLE], &[NEEDS_A_FINISHED_JOB]),
    ]);
    rows
}

/// Every fault has a row in the flat matrix or is said not to apply to the flat dialect.
#[test]
fn every_fault_is_in_the_flat_matrix_or_said_not_to_apply() {
    let rows: BTreeSet<Fault> = flat_matrix().iter().map(|r| r.fault).collect();
    for fault in Fault::ALL {
        assert!(
            rows.contains(fault) != NOT_IN_FLAT.contains(fault),
            "{fault}: exactly one of a row of the flat matrix and NOT_IN_FLAT"
        );
    }
}

/// Every check of the flat suite has a fault that makes it fail.
#[test]
fn every_check_of_the_flat_suite_has_a_fault() {
    let uncovered = matrix::uncovered(&flat_matrix(), &support::check_names(&flat_suite()));
    assert!(
        uncovered.is_empty(),
        "checks no fault makes fail: {uncovered:?}"
    );
}

/// The flat suite against the flat dialect with each fault: exactly its checks fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_exactly_its_checks_in_the_flat_dialect() {
    let path = support::flat_suite_path();
    matrix::assert_matrix(&flat_matrix(), Some(&path), Dialect::Flat, &[]).await;
}

/// `serve --dialect list` prints both dialects, and an unknown name is a usage error that
/// lists them.
#[test]
fn serve_lists_and_checks_dialects() {
    let limit = Duration::from_secs(30);
    let listed = support::run_bin(&["serve", "--dialect", "list"], &[], limit);
    assert_eq!(listed.status.code(), Some(0));
    let listed = support::text(&listed.stdout);
    for dialect in Dialect::ALL {
        assert!(
            listed.contains(dialect.name()) && listed.contains(dialect.description()),
            "{listed}"
        );
    }
    let bad = support::run_bin(&["serve", "--dialect", "curly"], &[], limit);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = support::text(&bad.stderr);
    assert!(
        stderr.contains("error:") && stderr.contains("curly") && stderr.contains("flat"),
        "{stderr}"
    );
}

/// A suite whose errors carry no code cannot ask for one: the check's `expect_code` line is
/// named, with what to use instead.
#[test]
fn expect_code_without_a_code_pointer_is_a_located_error() {
    let text = "name = \"x\"\n[errors]\ncode_pointer = \"\"\n\n[[check]]\nname = \"auth::missing_key\"\nkind = \"auth_rejected\"\nrequest = { path = \"/v1/jobs\", credential = \"missing\" }\nexpect_code = \"missing_api_key\"\n";
    let suite = Suite::parse(text, apiconform::suite::SuiteSource::File("s.toml".into()))
        .expect("the suite parses");
    let err = apiconform::checks::build(&suite.checks[0], &suite)
        .err()
        .expect("expect_code is refused")
        .to_string();
    assert!(
        err.starts_with("s.toml:9:") && err.contains("expect_message"),
        "{err}"
    );
}
