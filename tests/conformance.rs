//! The default suite against the reference server: all checks pass when it conforms, and each
//! fault makes exactly the checks it targets fail.

#[path = "support/matrix.rs"]
mod matrix;
mod support;

use apiconform::reference::{Dialect, Fault, Variant};
use matrix::{row, Row, LIFECYCLE, NEEDS_A_FINISHED_JOB, READ_AFTER_BURST};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforming_server_passes_every_check() {
    let outcomes = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        support::run_default_suite(&[]),
    )
    .await
    .expect("the run finishes in time");
    support::assert_every_check_passed(&outcomes, "the conforming server");
    // The reference server sends only fields the schemas declare: a newcomer's first run
    // shows no drift.
    let drift: Vec<String> = outcomes
        .values()
        .flat_map(|c| {
            c.drift
                .iter()
                .map(move |d| format!("{}: {}", c.name, d.message))
        })
        .collect();
    assert!(
        drift.is_empty(),
        "drift against the reference server: {drift:#?}"
    );
}

/// The default suite's matrix: the shared rows, and those of what only the standard dialect
/// has (error codes, Retry-After, webhooks) or judges otherwise.
fn matrix() -> Vec<Row> {
    use Fault::*;
    let mut rows = matrix::shared_rows();
    rows.extend([
        row(
            AuthWrongCode,
            &[&["auth::missing_key", "auth::invalid_key"]],
            &[],
        ),
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
        row(RetryAfterInPast, &[&["rate_limit::hints"]], &[]),
        row(
            RateLimitNeverRecovers,
            &[&["rate_limit::recovery"]],
            &[READ_AFTER_BURST, LIFECYCLE, &["webhooks::recorded"]],
        ),
        // No terminal event either: the webhook order check waits for one in vain.
        row(
            JobNeverFinishes,
            &[LIFECYCLE],
            &[NEEDS_A_FINISHED_JOB, &["webhooks::order"]],
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
    ]);
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_exactly_its_checks() {
    matrix::assert_matrix(&matrix(), None, Dialect::Standard, &[]).await;
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
    matrix::assert_matrix(&matrix(), None, Dialect::Standard, &variants).await;
}

#[test]
fn every_check_of_the_default_suite_has_a_fault() {
    let uncovered = matrix::uncovered(&matrix(), &support::default_check_names());
    assert!(
        uncovered.is_empty(),
        "checks no fault makes fail: {uncovered:?}"
    );
}
