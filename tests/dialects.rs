//! Two vendor dialects from files alone: the default suite against the reference server's
//! `standard` dialect, `suites/flat.toml` against its `flat` one. Each suite passes in its own
//! dialect and fails, in the checks that judge what differs and saying why, in the other; the
//! fault matrix runs for the flat dialect too.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use apiconform::record::{CheckRecord, Outcome};
use apiconform::reference::{Dialect, Fault};
use apiconform::suite::Suite;
use futures_util::StreamExt;

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

/// The lifecycle checks, one per sample input (the same inputs as the default suite).
const LIFECYCLE: &[&str] = &[
    "lifecycle::short_clip",
    "lifecycle::long_clip",
    "lifecycle::difficult_clip",
    "lifecycle::unprocessable_input",
];

/// Lifecycle inputs that end completed.
const COMPLETING: &[&str] = &[
    "lifecycle::short_clip",
    "lifecycle::long_clip",
    "lifecycle::difficult_clip",
];

/// Checks that observe side effects through the job list and usage events.
const ORACLE: &[&str] = &[
    "idempotency::reads_are_safe",
    "idempotency::create_replayed",
    "idempotency::concurrent_create",
    "idempotency::start_charges_once",
    "credits::insufficient_credits",
];

/// Checks that read a job path, which may come after the burst.
const READ_AFTER_BURST: &[&str] = &[
    "errors::unknown_job",
    "errors::malformed_job_id",
    "auth::cross_tenant",
    "schema::job_read",
    "schema::job_identity",
    "schema::job_invariants",
    "idempotency::start_charges_once",
    "idempotency::reads_are_safe",
    "lifecycle::manual_start",
    "latency::status_read",
    "observability::error_request_id",
    "observability::request_id_consistent",
    "protocol::version_header",
];

/// Checks that cannot reach a verdict when no job ever finishes.
const NEEDS_A_FINISHED_JOB: &[&str] = &[
    "schema::job_read",
    "schema::job_identity",
    "schema::job_invariants",
    "auth::cross_tenant",
    "rate_limit::burst",
    "rate_limit::hints",
    "rate_limit::recovery",
    "idempotency::reads_are_safe",
    "idempotency::start_charges_once",
    "latency::status_read",
    "pricing::job_charge",
    "download::completed",
    "usage::job_event",
];

/// The upload checks.
const UPLOADS: &[&str] = &[
    "uploads::accepted",
    "uploads::type_from_filename",
    "uploads::reply",
    "uploads::video_url_usable",
    "uploads::wrong_type",
    "uploads::oversize",
];

/// A row: the checks of the flat suite a fault must fail, and those it may also fail.
struct Row {
    fault: Fault,
    must: Vec<&'static str>,
    may: Vec<&'static str>,
}

fn row(fault: Fault, must: &[&[&'static str]], may: &[&[&'static str]]) -> Row {
    Row {
        fault,
        must: must.concat(),
        may: may.concat(),
    }
}

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

fn flat_matrix() -> Vec<Row> {
    use Fault::*;
    vec![
        row(AcceptMissingKey, &[&["auth::missing_key"]], &[]),
        row(AcceptInvalidKey, &[&["auth::invalid_key"]], &[]),
        row(Auth403, &[&["auth::invalid_key"]], &[]),
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
            ListRejectsValidKey,
            &[&["auth::valid_key", "schema::job_list"]],
            &[ORACLE],
        ),
        row(CrossTenant403, &[&["auth::cross_tenant"]], &[]),
        row(CrossTenantLeak, &[&["auth::cross_tenant"]], &[]),
        row(EchoKey, &[&["auth::key_not_echoed"]], &[]),
        row(JobWrongContentType, &[&["schema::job_read"]], &[]),
        row(
            JobProgressAsString,
            &[&["schema::job_read", "schema::job_invariants"], LIFECYCLE],
            &[&["schema::job_list"]],
        ),
        row(
            JobBadCreatedAt,
            &[&["schema::job_read"]],
            &[&["schema::job_list"]],
        ),
        row(
            JobIdMismatch,
            &[&["schema::job_identity"]],
            &[&["schema::job_list"]],
        ),
        row(
            CompletedWithoutOutput,
            &[&["schema::job_invariants"], COMPLETING],
            &[&["schema::job_list"]],
        ),
        row(
            FailedWithoutError,
            &[&["lifecycle::unprocessable_input"]],
            &[],
        ),
        row(ListBadShape, &[&["schema::job_list"]], &[ORACLE]),
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
        row(
            ReusedRequestId,
            &[&["observability::request_id_unique"]],
            &[],
        ),
        row(
            RequestIdMismatch,
            &[&["observability::request_id_consistent"]],
            &[&["observability::logs"]],
        ),
        row(NoRequestLog, &[&["observability::logs"]], &[]),
        row(NoVersionHeader, &[&["protocol::version_header"]], &[]),
        row(CreateReplyBadStatus, &[&["schema::create_reply"]], &[]),
        row(NoRateLimit, &[&["rate_limit::burst"]], &[]),
        row(Burst5xx, &[&["rate_limit::burst"]], &[]),
        row(RateLimitRemainingRises, &[&["rate_limit::hints"]], &[]),
        // No X-RateLimit-Reset either: the 429 carries no wait hint at all.
        row(NoRateLimitHints, &[&["rate_limit::hints"]], &[]),
        row(
            RateLimitNeverRecovers,
            &[&["rate_limit::recovery"]],
            &[READ_AFTER_BURST, LIFECYCLE],
        ),
        row(
            IgnoreIdempotencyKey,
            &[&[
                "idempotency::create_replayed",
                "idempotency::key_reuse_other_body",
                "idempotency::concurrent_create",
            ]],
            &[],
        ),
        row(
            IdempotencyIgnoresBody,
            &[&["idempotency::key_reuse_other_body"]],
            &[],
        ),
        row(
            IdempotencyCrossTenant,
            &[&["idempotency::tenant_scoped"]],
            &[],
        ),
        row(
            DoubleChargeOnStart,
            &[&["idempotency::start_charges_once"]],
            &[],
        ),
        row(
            Start5xxWhenRunning,
            &[&["idempotency::start_charges_once"]],
            &[],
        ),
        row(
            ReadCharges,
            &[&["idempotency::reads_are_safe"]],
            // Every read charges the run's job again, so its charge is more than its length's.
            &[&["idempotency::start_charges_once", "pricing::job_charge"]],
        ),
        row(
            StatusMovesBackwards,
            &[COMPLETING],
            &[&["idempotency::reads_are_safe"]],
        ),
        row(
            ProgressGoesDown,
            &[COMPLETING],
            &[&["lifecycle::unprocessable_input"]],
        ),
        row(JobNeverFinishes, &[LIFECYCLE], &[NEEDS_A_FINISHED_JOB]),
        row(AutoStartIgnored, &[&["lifecycle::manual_start"]], &[]),
        row(
            PaymentRequiredCreatesJob,
            &[&["credits::insufficient_credits"]],
            &[],
        ),
        row(
            SlowStatusRead,
            &[&["latency::status_read"]],
            &[&["rate_limit::burst"]],
        ),
        row(UploadUrl404, &[&["uploads::video_url_usable"]], &[]),
        row(UploadAnyType, &[&["uploads::wrong_type"]], &[]),
        row(
            UploadTypeFromPartOnly,
            &[&["uploads::type_from_filename"]],
            &[],
        ),
        row(UploadBadReply, &[&["uploads::reply"]], &[]),
        row(UploadNoSizeLimit, &[&["uploads::oversize"]], &[]),
        row(UploadRefused, &[&["uploads::accepted"]], &[UPLOADS]),
        row(HealthNeedsKey, &[&["health::status"]], &[]),
        row(HealthBadShape, &[&["health::status"]], &[]),
        row(PricingWrongRate, &[&["pricing::rates"]], &[]),
        row(ChargeIgnoresDuration, &[&["pricing::job_charge"]], &[]),
        row(
            DownloadBeforeCompletion200,
            &[&["download::before_completion"]],
            &[],
        ),
        row(DownloadUrl404, &[&["download::completed"]], &[]),
        row(UsageDays500, &[&["usage::out_of_range"]], &[]),
        row(UsageBadShape, &[&["usage::in_range"]], &[]),
        row(UsageNoJobEvent, &[&["usage::job_event"]], &[]),
        row(InvalidRequest500, &[&["errors::invalid_request"]], &[]),
        // A problem document is not the flat error body either.
        row(
            InvalidRequestProblemJson,
            &[&["errors::invalid_request"]],
            &[],
        ),
    ]
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
    let covered: BTreeSet<&str> = flat_matrix().iter().flat_map(|r| r.must.clone()).collect();
    let uncovered: Vec<String> = support::check_names(&flat_suite())
        .into_iter()
        .filter(|n| !covered.contains(n.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "checks no fault makes fail: {uncovered:?}"
    );
}

/// The flat suite against the flat dialect with each fault: exactly its checks fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_exactly_its_checks_in_the_flat_dialect() {
    let cases = flat_matrix();
    let path = support::flat_suite_path();
    let runs = futures_util::stream::iter(cases.iter().map(|row| {
        support::run_suite_against(
            Some(&path),
            Dialect::Flat,
            std::slice::from_ref(&row.fault),
            &[],
            false,
        )
    }))
    .buffered(16)
    .collect::<Vec<_>>();
    let results = tokio::time::timeout(Duration::from_secs(1200), runs)
        .await
        .expect("the flat fault matrix finishes in time");
    let mut problems = Vec::new();
    for (Row { fault, must, may }, outcomes) in cases.iter().zip(results) {
        let failed = not_passed(&outcomes);
        for name in must {
            if !failed.contains_key(name) {
                problems.push(format!(
                    "{fault}: {name} should fail but was {:?}",
                    outcomes.get(*name).map(|r| &r.outcome)
                ));
            }
        }
        for (name, message) in &failed {
            if !must.contains(name) && !may.contains(name) {
                problems.push(format!("{fault}: {name} failed too: {message}"));
            }
            assert!(
                !message.is_empty(),
                "{fault}: {name} failed without a message"
            );
        }
    }
    assert!(
        problems.is_empty(),
        "flat fault matrix mismatches:\n{}",
        problems.join("\n")
    );
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
