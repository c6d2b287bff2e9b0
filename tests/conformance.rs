//! The default suite against the reference server: all checks pass when it conforms, and each
//! fault makes exactly the checks it targets fail.

mod support;

use std::collections::BTreeSet;

use apiconform::record::Outcome;
use futures_util::StreamExt;

/// How many suite runs of the fault matrix are queued at once (`support` runs a few of them
/// at a time, across both matrix tests).
const CONCURRENT_RUNS: usize = 16;
use apiconform::reference::{Fault, Variant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforming_server_passes_every_check() {
    let outcomes = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        support::run_default_suite(&[]),
    )
    .await
    .expect("the run finishes in time");
    support::assert_every_check_passed(&outcomes, "the conforming server");
}

/// The lifecycle checks of the default suite, one per sample input.
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

/// Checks that observe side effects through the job list and usage events: they cannot reach
/// a verdict when those do not answer as the suite says.
const ORACLE: &[&str] = &[
    "idempotency::reads_are_safe",
    "idempotency::create_replayed",
    "idempotency::concurrent_create",
    "idempotency::start_charges_once",
    "credits::insufficient_credits",
];

/// Checks that read a job path, which may come after the burst: a read that stays limited
/// fails them (which of them run after the burst depends on scheduling).
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
];

/// Checks that cannot reach a verdict when no job ever finishes (they need the run's job).
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

/// The upload checks of the default suite.
const UPLOADS: &[&str] = &[
    "uploads::accepted",
    "uploads::type_from_filename",
    "uploads::reply",
    "uploads::video_url_usable",
    "uploads::wrong_type",
    "uploads::oversize",
];

/// One row of the fault matrix: the checks a fault must fail, and those it may also fail
/// (collateral the fault causes by its nature, for example a list that embeds the broken job).
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

fn matrix() -> Vec<Row> {
    use Fault::*;
    vec![
        row(AcceptMissingKey, &[&["auth::missing_key"]], &[]),
        row(AcceptInvalidKey, &[&["auth::invalid_key"]], &[]),
        row(
            AuthWrongCode,
            &[&["auth::missing_key", "auth::invalid_key"]],
            &[],
        ),
        row(Auth403, &[&["auth::invalid_key"]], &[]),
        row(
            AuthPlainError,
            &[&[
                "auth::missing_key",
                "auth::invalid_key",
                "auth::error_envelope",
                "observability::error_request_id",
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
            &[&["auth::cross_tenant", "errors::malformed_job_id"]],
        ),
        row(
            NotFoundPlain,
            &[&["errors::unknown_job", "observability::error_request_id"]],
            &[&["auth::cross_tenant"]],
        ),
        row(MalformedId500, &[&["errors::malformed_job_id"]], &[]),
        // The envelope's schema requires request_id, so envelope checks fail with it.
        row(
            NoRequestIdInBody,
            &[&[
                "observability::error_request_id",
                "auth::error_envelope",
                "errors::unknown_job",
                "rate_limit::burst",
                "uploads::wrong_type",
                "uploads::oversize",
                "download::before_completion",
                "errors::invalid_request",
                "usage::out_of_range",
            ]],
            &[],
        ),
        row(
            NoRequestIdHeader,
            &[&["observability::request_id_header"]],
            &[],
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
        row(CreateReplyBadStatus, &[&["schema::create_reply"]], &[]),
        row(NoRateLimit, &[&["rate_limit::burst"]], &[]),
        row(Burst5xx, &[&["rate_limit::burst"]], &[]),
        row(RetryAfterInPast, &[&["rate_limit::hints"]], &[]),
        row(RateLimitRemainingRises, &[&["rate_limit::hints"]], &[]),
        // Conforming but hint-less: the SHOULD check warns, recovery follows the documented schedule.
        row(NoRateLimitHints, &[&["rate_limit::hints"]], &[]),
        row(
            RateLimitNeverRecovers,
            &[&["rate_limit::recovery"]],
            &[READ_AFTER_BURST, LIFECYCLE, &["webhooks::recorded"]],
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
        // No terminal event either: the webhook order check waits for one in vain.
        row(
            JobNeverFinishes,
            &[LIFECYCLE],
            &[NEEDS_A_FINISHED_JOB, &["webhooks::order"]],
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
        row(WebhookBadSignature, &[&["webhooks::signature"]], &[]),
        row(WebhookMissingStarted, &[&["webhooks::order"]], &[]),
        row(WebhookOutOfOrder, &[&["webhooks::order"]], &[]),
        row(WebhookStaleTimestamp, &[&["webhooks::timestamp"]], &[]),
        row(WebhookReusedDeliveryId, &[&["webhooks::delivery_ids"]], &[]),
        row(WebhookNoRetry, &[&["webhooks::retry"]], &[]),
        row(WebhookWrongEventHeader, &[&["webhooks::event_header"]], &[]),
        row(WebhookJobNotNamed, &[&["webhooks::names_job"]], &[]),
        row(WebhookNotRecorded, &[&["webhooks::recorded"]], &[]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_exactly_its_checks() {
    fault_matrix(&[]).await;
}

/// The same matrix against a server that takes every other legitimate choice at once: a fault
/// is found whatever the dialect's freedoms, and nothing else fails. All but the sliding
/// window of 8 requests a second: under it a 0.5 s job is read once or twice while it runs,
/// too few reads to see progress go down (that variant passes strict on its own, in
/// `tests/variants.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_exactly_its_checks_with_every_variant() {
    let variants: Vec<Variant> = Variant::ALL
        .iter()
        .copied()
        .filter(|v| *v != Variant::SlidingWindow)
        .collect();
    fault_matrix(&variants).await;
}

/// Run the default suite once per row of the matrix, with `variants`, and compare.
async fn fault_matrix(variants: &[Variant]) {
    let cases = matrix();
    // A few runs at a time: each burst must outpace its server's refill, which a starved CPU
    // cannot promise. Results keep the matrix's order.
    let runs = futures_util::stream::iter(cases.iter().map(|row| {
        support::run_default_suite_with(std::slice::from_ref(&row.fault), variants, false)
    }))
    .buffered(CONCURRENT_RUNS)
    .collect::<Vec<_>>();
    let results = tokio::time::timeout(std::time::Duration::from_secs(1200), runs)
        .await
        .expect("the fault matrix finishes in time");
    let mut problems = Vec::new();
    for (Row { fault, must, may }, outcomes) in cases.iter().zip(results) {
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
        for name in must.iter() {
            if !failed.contains(name) {
                problems.push(format!(
                    "{fault}: {name} should fail but was {:?}",
                    outcomes.get(*name).map(|r| &r.outcome)
                ));
            }
        }
        for name in &failed {
            if !must.contains(name) && !may.contains(name) {
                problems.push(format!(
                    "{fault}: {name} failed too: {}",
                    outcomes[*name].message
                ));
            }
        }
        for record in outcomes.values().filter(|r| r.outcome == Outcome::Failed) {
            assert!(
                !record.message.is_empty(),
                "{fault}: {} failed without a message",
                record.name
            );
        }
    }
    assert!(
        problems.is_empty(),
        "fault matrix mismatches with variants {variants:?}:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_check_of_the_default_suite_has_a_fault() {
    let names = support::default_check_names();
    let covered: BTreeSet<&str> = matrix().iter().flat_map(|row| row.must.clone()).collect();
    let uncovered: Vec<&String> = names
        .iter()
        .filter(|n| !covered.contains(n.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "checks no fault makes fail: {uncovered:?}"
    );
}
