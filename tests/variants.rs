//! The default suite, strict, against the reference server with each conforming variant
//! alone and with all of them at once: every check passes, since a variant breaks no rule.

mod support;

use std::time::Duration;

use apiconform::reference::Variant;

/// Time allowed for one suite run (the sliding-window run paces itself under 8 requests/s).
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Runs the strict default suite with `variants` and asserts that every check passed.
async fn passes_strict(variants: &[Variant]) {
    let outcomes = tokio::time::timeout(
        RUN_LIMIT,
        support::run_default_suite_with(&[], variants, true),
    )
    .await
    .unwrap_or_else(|_| panic!("the run with {variants:?} did not finish in {RUN_LIMIT:?}"));
    support::assert_every_check_passed(&outcomes, &format!("with {variants:?}"));
}

/// One test per variant, so that each can be ignored on its own.
macro_rules! variant_tests {
    ($($(#[$attr:meta])* $test:ident => $variant:ident;)+) => {
        $(
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                passes_strict(&[Variant::$variant]).await;
            }
        )+

        /// Every variant has its test above.
        #[test]
        fn every_variant_is_tested() {
            let tested = [$(Variant::$variant),+];
            for variant in Variant::ALL {
                assert!(tested.contains(variant), "no test for {variant}");
            }
        }
    };
}

variant_tests! {
    retry_after_date => RetryAfterDate;
    ietf_ratelimit => IetfRatelimit;
    x_ratelimit_epoch => XRatelimitEpoch;
    created_state => CreatedState;
    create_201 => Create201;
    offset_timestamps => OffsetTimestamps;
    integer_progress => IntegerProgress;
    bare_array_list => BareArrayList;
    sliding_window => SlidingWindow;
    extra_fields => ExtraFields;
    echo_request_id => EchoRequestId;
    webhook_data_job => WebhookDataJob;
    webhook_events_map => WebhookEventsMap;
    webhook_iso_timestamp => WebhookIsoTimestamp;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_variant_strict() {
    passes_strict(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_variants_at_once() {
    passes_strict(Variant::ALL).await;
}

/// `serve --help` documents every variant, `--variant list` prints them, and an unknown name
/// is a usage error that lists the valid ones.
#[test]
fn serve_documents_and_lists_variants() {
    let limit = Duration::from_secs(30);
    let help = support::text(&support::run_bin(&["serve", "--help"], &[], limit).stdout);
    let listed = support::run_bin(&["serve", "--variant", "list"], &[], limit);
    assert_eq!(listed.status.code(), Some(0));
    let listed = support::text(&listed.stdout);
    for variant in Variant::ALL {
        assert!(
            help.contains(variant.name()),
            "serve --help lacks {variant}"
        );
        let line = listed
            .lines()
            .find(|l| l.split_whitespace().next() == Some(variant.name()))
            .unwrap_or_else(|| panic!("--variant list lacks {variant}:\n{listed}"));
        assert!(line.contains(variant.description()));
    }
    let bad = support::run_bin(&["serve", "--variant", "no-such-variant"], &[], limit);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = support::text(&bad.stderr);
    assert!(
        stderr.contains("no-such-variant") && stderr.contains("sliding-window"),
        "{stderr}"
    );
}
