//! Schema drift: fields a live response carries that the schema does not declare are reported
//! in the console and every report, as drift beside the outcome, and fail only with
//! --strict-drift.

mod support;

use std::time::Duration;

use apiconform::reference::Variant;
use serde_json::Value;
use support::text;

/// `schema::` checks against a server whose job objects carry undocumented fields.
async fn run_with_extra_fields(extra: &[&str]) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, _log) =
        support::start_server_with(&[], &[Variant::ExtraFields], dir.path()).await;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let mut args: Vec<String> = [
        "--base-url",
        &server.base_url,
        "--allow-writes",
        "--rate",
        "50",
        "--report-json",
        &path("run.json"),
        "--junit",
        &path("junit.xml"),
        "--summary-md",
        &path("summary.md"),
        "schema::",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let key = config.primary_key.clone();
    let out = support::run_bin_off_runtime(
        args,
        vec![("APICONFORM_API_KEY", key)],
        Duration::from_secs(120),
    )
    .await;
    server.shutdown().await;
    (out, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_the_schema_does_not_declare_are_drift_in_every_report() {
    let (out, dir) = run_with_extra_fields(&[]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "drift fails nothing:\n{stdout}");
    assert!(
        stdout.contains("drift (fields live responses carry that the schemas do not declare")
            && stdout.contains(
                "schema::job_read: at /queue_position: a field schema `job` does not declare"
            ),
        "{stdout}"
    );
    assert!(
        stdout.contains("/jobs/*/meta") || stdout.contains("/*/meta"),
        "{stdout}"
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run.json")).unwrap())
            .unwrap();
    support::assert_valid_json_report(&report);
    let job_read = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "schema::job_read")
        .unwrap();
    assert_eq!(job_read["outcome"], "passed");
    let pointers: Vec<&str> = job_read["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["rule"], "drift.field");
            d["pointer"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        pointers,
        ["/meta", "/queue_position", "/region"],
        "{job_read}"
    );
    assert!(
        report["summary"]["drift"].as_u64().unwrap() >= 2,
        "{}",
        report["summary"]
    );
    let junit = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    assert!(junit.contains("drift: at /queue_position"), "{junit}");
    let markdown = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(
        markdown.contains("### Drift") && markdown.contains("/queue\\_position")
            || markdown.contains("/queue_position"),
        "{markdown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_drift_fails_the_checks_that_saw_it() {
    let (out, _dir) = run_with_extra_fields(&["--strict-drift"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert!(
        stdout.contains("schema::job_read") && stdout.contains("FAILED"),
        "{stdout}"
    );
}
