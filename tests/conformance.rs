//! The default suite against the reference server: all checks pass when it conforms, and each
//! fault makes exactly the checks it targets fail.

mod support;

use std::collections::BTreeSet;

use apiconform::record::Outcome;
use apiconform::reference::Fault;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conforming_server_passes_every_check() {
    let outcomes = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        support::run_default_suite(&[]),
    )
    .await
    .expect("the run finishes in time");
    assert!(outcomes.len() >= 18, "only {} checks ran", outcomes.len());
    let not_passed: Vec<String> = outcomes
        .values()
        .filter(|r| r.outcome != Outcome::Passed)
        .map(|r| format!("{} {:?}: {}", r.name, r.outcome, r.message))
        .collect();
    assert!(
        not_passed.is_empty(),
        "checks that did not pass:\n{}",
        not_passed.join("\n")
    );
}

/// Each fault, the checks it must fail, and the checks it may also fail (collateral the fault
/// causes by its nature, for example a list that embeds the broken job object).
fn matrix() -> Vec<(Fault, &'static [&'static str], &'static [&'static str])> {
    use Fault::*;
    vec![
        (AcceptMissingKey, &["auth::missing_key"], &[]),
        (AcceptInvalidKey, &["auth::invalid_key"], &[]),
        (
            AuthWrongCode,
            &["auth::missing_key", "auth::invalid_key"],
            &[],
        ),
        (Auth403, &["auth::invalid_key"], &[]),
        (
            AuthPlainError,
            &[
                "auth::missing_key",
                "auth::invalid_key",
                "auth::error_envelope",
                "observability::error_request_id",
            ],
            &[],
        ),
        (
            ListRejectsValidKey,
            &["auth::valid_key", "schema::job_list"],
            &[],
        ),
        (CrossTenant403, &["auth::cross_tenant"], &[]),
        (CrossTenantLeak, &["auth::cross_tenant"], &[]),
        (EchoKey, &["auth::key_not_echoed"], &[]),
        (JobWrongContentType, &["schema::job_read"], &[]),
        (
            JobProgressAsString,
            &["schema::job_read", "schema::job_invariants"],
            &["schema::job_list"],
        ),
        (
            JobBadCreatedAt,
            &["schema::job_read"],
            &["schema::job_list"],
        ),
        (
            JobIdMismatch,
            &["schema::job_identity"],
            &["schema::job_list"],
        ),
        (
            CompletedWithoutOutput,
            &["schema::job_invariants"],
            &["schema::job_list"],
        ),
        (ListBadShape, &["schema::job_list"], &[]),
        (
            NotFound500,
            &["errors::unknown_job"],
            &["auth::cross_tenant", "errors::malformed_job_id"],
        ),
        (
            NotFoundPlain,
            &["errors::unknown_job", "observability::error_request_id"],
            &["auth::cross_tenant"],
        ),
        (MalformedId500, &["errors::malformed_job_id"], &[]),
        // The envelope's schema requires request_id, so envelope checks fail with it.
        (
            NoRequestIdInBody,
            &[
                "observability::error_request_id",
                "auth::error_envelope",
                "errors::unknown_job",
            ],
            &[],
        ),
        (CreateReplyBadStatus, &["schema::create_reply"], &[]),
        (
            NoRequestIdHeader,
            &["observability::request_id_header"],
            &[],
        ),
        (ReusedRequestId, &["observability::request_id_unique"], &[]),
        (
            RequestIdMismatch,
            &["observability::request_id_consistent"],
            &["observability::logs"],
        ),
        (NoRequestLog, &["observability::logs"], &[]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_fails_exactly_its_checks() {
    let cases = matrix();
    let runs = cases
        .iter()
        .map(|(fault, _, _)| support::run_default_suite(std::slice::from_ref(fault)));
    let results = tokio::time::timeout(
        std::time::Duration::from_secs(240),
        futures_util::future::join_all(runs),
    )
    .await
    .expect("the fault matrix finishes in time");
    let mut problems = Vec::new();
    for ((fault, must, may), outcomes) in cases.iter().zip(results) {
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
        "fault matrix mismatches:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_check_of_the_default_suite_has_a_fault() {
    let suite = apiconform::suite::Suite::load(None).unwrap();
    let covered: BTreeSet<&str> = matrix()
        .iter()
        .flat_map(|(_, must, _)| must.iter().copied())
        .collect();
    let uncovered: Vec<&str> = suite
        .checks
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| !covered.contains(n))
        .collect();
    assert!(
        uncovered.is_empty(),
        "checks no fault makes fail: {uncovered:?}"
    );
}
