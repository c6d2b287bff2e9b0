//! The fault matrix, shared by the default suite's tests (`tests/conformance.rs`) and the flat
//! dialect's (`tests/dialects.rs`): which checks each fault of the reference server must fail,
//! which it may fail besides, and the run that compares. Rows that expect the same checks of
//! both suites are here once ([`shared_rows`]); each test adds the rows of its own dialect.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use apiconform::record::{CheckRecord, Outcome};
use apiconform::reference::{Dialect, Fault, Variant};
use futures_util::StreamExt;

/// How many suite runs of a matrix are queued at once (`support` runs a few of them at a
/// time, across every matrix test of the binary).
const CONCURRENT_RUNS: usize = 16;

/// Time allowed for a whole matrix.
const MATRIX_LIMIT: Duration = Duration::from_secs(1200);

/// The lifecycle checks of the default suite, one per sample input.
pub const LIFECYCLE: &[&str] = &[
    "lifecycle::short_clip",
    "lifecycle::long_clip",
    "lifecycle::difficult_clip",
    "lifecycle::unprocessable_input",
];
/// Lifecycle inputs that end completed.
pub const COMPLETING: &[&str] = &[
    "lifecycle::short_clip",
    "lifecycle::long_clip",
    "lifecycle::difficult_clip",
];
/// Checks that observe side effects through the job list and usage events: they cannot reach
/// a verdict when those do not answer as the suite says.
pub const ORACLE: &[&str] = &[
    "idempotency::reads_are_safe",
    "idempotency::create_replayed",
    "idempotency::concurrent_create",
    "idempotency::start_charges_once",
    "credits::insufficient_credits",
];
/// Checks that read a job path, which may come after the burst: a read that stays limited
/// fails them (which of them run after the burst depends on scheduling).
pub const READ_AFTER_BURST: &[&str] = &[
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
];
/// Checks that cannot reach a verdict when no job ever finishes (they need the run's job).
pub const NEEDS_A_FINISHED_JOB: &[&str] = &[
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
/// The upload checks of the default suite.
pub const UPLOADS: &[&str] = &[
    "uploads::accepted",
    "uploads::type_from_filename",
    "uploads::reply",
    "uploads::video_url_usable",
    "uploads::wrong_type",
    "uploads::oversize",
];

/// One row of a fault matrix: the checks a fault must fail, and those it may also fail
/// (collateral the fault causes by its nature, for example a list that embeds the broken job).
pub struct Row {
    pub fault: Fault,
    pub must: Vec<&'static str>,
    pub may: Vec<&'static str>,
}

pub fn row(fault: Fault, must: &[&[&'static str]], may: &[&[&'static str]]) -> Row {
    Row {
        fault,
        must: must.concat(),
        may: may.concat(),
    }
}

/// The rows that expect the same checks of the default suite against the standard dialect and
/// of the flat suite against the flat dialect.
pub fn shared_rows() -> Vec<Row> {
    use Fault::*;
    vec![
        row(AcceptMissingKey, &[&["auth::missing_key"]], &[]),
        row(AcceptInvalidKey, &[&["auth::invalid_key"]], &[]),
        row(Auth403, &[&["auth::invalid_key"]], &[]),
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
        row(CreateReplyBadStatus, &[&["schema::create_reply"]], &[]),
        row(NoRateLimit, &[&["rate_limit::burst"]], &[]),
        row(Burst5xx, &[&["rate_limit::burst"]], &[]),
        row(RateLimitRemainingRises, &[&["rate_limit::hints"]], &[]),
        // Conforming but hint-less: the SHOULD check warns, recovery follows the documented schedule.
        row(NoRateLimitHints, &[&["rate_limit::hints"]], &[]),
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
        // Every read charges the run's job again, so its charge is more than its length's.
        row(
            ReadCharges,
            &[&["idempotency::reads_are_safe"]],
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
        // Every upload refused: the others that upload a video cannot pass either, and a 415
        // is not the 400 the refusals expect.
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
        row(
            InvalidRequestProblemJson,
            &[&["errors::invalid_request"]],
            &[],
        ),
    ]
}

/// Run the suite at `suite` (the bundled one when None) against the reference server speaking
/// `dialect` with `variants`, once per row with its fault, and panic with every mismatch: a
/// check a fault must fail that did not, a check that failed outside its row, a failure
/// without a message.
pub async fn assert_matrix(
    rows: &[Row],
    suite: Option<&Path>,
    dialect: Dialect,
    variants: &[Variant],
) {
    // A few runs at a time: each burst must outpace its server's refill, which a starved CPU
    // cannot promise. Results keep the matrix's order.
    let runs = futures_util::stream::iter(rows.iter().map(|row| {
        crate::support::run_suite_against(
            suite,
            dialect,
            std::slice::from_ref(&row.fault),
            variants,
            false,
        )
    }))
    .buffered(CONCURRENT_RUNS)
    .collect::<Vec<_>>();
    let results = tokio::time::timeout(MATRIX_LIMIT, runs)
        .await
        .expect("the fault matrix finishes in time");
    let problems: Vec<String> = rows
        .iter()
        .zip(&results)
        .flat_map(|(row, outcomes)| mismatches(row, outcomes))
        .collect();
    assert!(
        problems.is_empty(),
        "fault matrix mismatches ({dialect}, variants {variants:?}):\n{}",
        problems.join("\n")
    );
}

/// How `outcomes`, a run under `row`'s fault, differs from what the row expects.
fn mismatches(row: &Row, outcomes: &BTreeMap<String, CheckRecord>) -> Vec<String> {
    let fault = row.fault;
    let failed: BTreeSet<&str> = outcomes
        .values()
        .filter(|r| {
            matches!(
                r.outcome,
                Outcome::Failed | Outcome::Warned | Outcome::Errored
            )
        })
        .map(|r| r.name.as_str())
        .collect();
    let mut problems = Vec::new();
    for name in &row.must {
        if !failed.contains(name) {
            problems.push(format!(
                "{fault}: {name} should fail but was {:?}",
                outcomes.get(*name).map(|r| &r.outcome)
            ));
        }
    }
    for name in &failed {
        if !row.must.contains(name) && !row.may.contains(name) {
            problems.push(format!(
                "{fault}: {name} failed too: {}",
                outcomes[*name].message
            ));
        }
        if outcomes[*name].message.is_empty() {
            problems.push(format!("{fault}: {name} failed without a message"));
        }
    }
    problems
}

/// The checks of `names` that no row's fault must fail.
pub fn uncovered(rows: &[Row], names: &[String]) -> Vec<String> {
    let covered: BTreeSet<&str> = rows.iter().flat_map(|row| row.must.clone()).collect();
    names
        .iter()
        .filter(|n| !covered.contains(n.as_str()))
        .cloned()
        .collect()
}
