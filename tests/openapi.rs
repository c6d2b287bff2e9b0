//! OpenAPI as a contract source: the reference server's published document agrees with the
//! default suite's schemas (so the two cannot drift apart), a suite can take its schemas from
//! a document instead of loose files, and a wrong binding is a located suite error.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use apiconform::openapi::{Document, Selector};
use apiconform::reference::Fault;
use apiconform::suite::Suite;
use serde_json::Value;
use support::{run_bin, text};

/// Where each schema of the default suite is in the published document.
fn binding(name: &str) -> Selector {
    let (operation, status, component) = match name {
        "job" => (Some("getJob"), "200", None),
        "job_list" => (Some("listJobs"), "200", None),
        "create_reply" => (Some("createJob"), "201", None),
        "start_reply" => (Some("startJob"), "200", None),
        "upload_reply" => (Some("uploadVideo"), "200", None),
        "health" => (Some("getHealth"), "200", None),
        "pricing" => (Some("getPricing"), "200", None),
        "download" => (Some("getDownload"), "200", None),
        "usage_summary" => (Some("getUsageSummary"), "200", None),
        "usage_events" => (Some("listUsageEvents"), "200", None),
        "error" => (None, "200", Some("Error")),
        other => panic!(
            "schema `{other}` of the default suite has no binding here: add it to the reference server's openapi.json and to this table"
        ),
    };
    Selector {
        operation: operation.map(String::from),
        method: None,
        path: None,
        status: status.into(),
        component: component.map(String::from),
    }
}

/// What a schema validates, without what only names or explains it.
fn normalized(value: &Value, refs: &BTreeMap<String, String>) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "$schema" | "$id" | "title" | "description"))
                .map(|(k, v)| {
                    let v = match (k.as_str(), v.as_str()) {
                        ("$ref", Some(target)) => {
                            Value::String(refs.get(target).cloned().unwrap_or(target.into()))
                        }
                        _ => normalized(v, refs),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| normalized(v, refs)).collect()),
        other => other.clone(),
    }
}

async fn published_document() -> String {
    let dir = tempfile::tempdir().unwrap();
    let (server, _config, _log) = support::start_server(&[], dir.path()).await;
    let response = reqwest::get(format!("{}/openapi.json", server.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "served without a key");
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let document = response.text().await.unwrap();
    server.shutdown().await;
    document
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_document_and_the_default_suite_schemas_agree() {
    let document = published_document().await;
    let raw: Value = serde_json::from_str(&document).unwrap();
    let parsed = Document::parse(&document).unwrap();
    let suite = Suite::load(None).unwrap();
    assert!(!suite.schemas.is_empty());
    // Each schema file's `$id`, as the document refers to the same schema.
    let mut refs = BTreeMap::new();
    let mut components = BTreeMap::new();
    for name in suite.schemas.keys() {
        let derived = parsed
            .schema(&binding(name))
            .unwrap_or_else(|e| panic!("`{name}`: {e}"));
        let component = match (&binding(name).component, derived["$ref"].as_str()) {
            (Some(component), _) => component.clone(),
            (None, Some(target)) => target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("`{name}` refers to {target}"))
                .to_owned(),
            (None, None) => panic!("`{name}`: the response schema is not a component: {derived}"),
        };
        let file: Value =
            serde_json::from_str(&suite.source.read_relative(&suite.schemas[name]).unwrap())
                .unwrap();
        refs.insert(
            file["$id"].as_str().unwrap().to_owned(),
            format!("#/components/schemas/{component}"),
        );
        components.insert(name.clone(), (component, file));
    }
    for (name, (component, file)) in &components {
        let published = &raw["components"]["schemas"][component];
        assert_eq!(
            normalized(published, &refs),
            normalized(file, &refs),
            "schema `{name}` ({}) and the document's components/schemas/{component} differ",
            suite.schemas[name]
        );
    }
}

/// The default suite with its `[schemas]` table replaced by `[openapi]` bindings to the
/// published document, written beside a copy of that document.
fn suite_from_document(dir: &std::path::Path, document: &str, bindings: &str) -> String {
    std::fs::write(dir.join("openapi.json"), document).unwrap();
    let default = apiconform::suite::BUNDLED_SUITE;
    let start = default.find("[schemas]\n").unwrap();
    let end = start + default[start..].find("\n\n").unwrap();
    let suite = format!(
        "{}[openapi]\ndocument = \"openapi.json\"\n\n[openapi.schemas]\n{bindings}{}",
        &default[..start],
        &default[end..]
    );
    let path = dir.join("suite.toml");
    std::fs::write(&path, suite).unwrap();
    path.display().to_string()
}

const BINDINGS: &str = r#"job = { operation = "getJob" }
job_list = { method = "GET", path = "/v1/jobs" }
create_reply = { operation = "createJob", status = "201" }
start_reply = { operation = "startJob" }
upload_reply = { operation = "uploadVideo" }
health = { operation = "getHealth" }
pricing = { operation = "getPricing" }
download = { operation = "getDownload" }
usage_summary = { operation = "getUsageSummary" }
usage_events = { operation = "listUsageEvents" }
error = { component = "Error" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_can_take_its_schemas_from_an_openapi_document() {
    let document = published_document().await;
    let dir = tempfile::tempdir().unwrap();
    let suite = suite_from_document(dir.path(), &document, BINDINGS);
    let extra = ["--suite".to_string(), suite, "schema::job_read".into()];
    let (out, _) = support::run_against_faults(&[], dir.path(), &extra).await;
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("schema::job_read") && stdout.contains("1 passed"),
        "{stdout}"
    );
    let (out, _) =
        support::run_against_faults(&[Fault::JobProgressAsString], dir.path(), &extra).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(101), "{stdout}");
    assert!(stdout.contains("/progress"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_openapi_binding_is_a_located_suite_error() {
    let document = published_document().await;
    let dir = tempfile::tempdir().unwrap();
    // The line of the first binding, in the suite as written.
    let default = apiconform::suite::BUNDLED_SUITE;
    let job_line = default[..default.find("[schemas]\n").unwrap()]
        .lines()
        .count()
        + 5;
    for (bindings, expected) in [
        (
            BINDINGS.replace("\"getJob\"", "\"getJobs\""),
            format!("suite.toml:{job_line}:1: schema `job`: the document has no such operation (it has: "),
        ),
        (
            BINDINGS.replace("\"createJob\", status = \"201\"", "\"createJob\", status = \"204\""),
            "schema `create_reply`: createJob (POST /v1/jobs) documents no response `204`".into(),
        ),
        (
            BINDINGS.replace("{ component = \"Error\" }", "{ componet = \"Error\" }"),
            "unknown field `componet`".into(),
        ),
    ] {
        let suite = suite_from_document(dir.path(), &document, &bindings);
        let out = run_bin(&["--suite", &suite, "--list"], &[], Duration::from_secs(30));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(&expected), "{stderr}");
    }
    let suite = suite_from_document(dir.path(), "{\"openapi\": \"2.0\"}", BINDINGS);
    let out = run_bin(&["--suite", &suite, "--list"], &[], Duration::from_secs(30));
    assert!(
        text(&out.stderr).contains("only OpenAPI 3.0.x and 3.1.x"),
        "{}",
        text(&out.stderr)
    );
}

/// `--openapi` against a served reference server: the run the document alone drives, what it
/// says it left out, and its verdicts both ways.
async fn openapi_run(faults: &[Fault], extra: &[&str]) -> (std::process::Output, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, _log) = support::start_server(faults, dir.path()).await;
    let report = dir.path().join("run.json");
    let mut args: Vec<String> = vec![
        "--base-url".into(),
        server.base_url.clone(),
        "--openapi".into(),
        format!("{}/openapi.json", server.base_url),
        "--report-json".into(),
        report.display().to_string(),
        "--rate".into(),
        "50".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let key = config.primary_key.clone();
    let out = support::run_bin_off_runtime(
        args,
        vec![("APICONFORM_API_KEY", key)],
        Duration::from_secs(60),
    )
    .await;
    server.shutdown().await;
    let report = std::fs::read_to_string(&report)
        .ok()
        .and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or(Value::Null);
    (out, report)
}

fn outcome<'a>(report: &'a Value, check: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == check)
        .unwrap_or_else(|| panic!("no {check} in {report}"))["outcome"]
        .as_str()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openapi_run_passes_against_the_reference_server_and_says_what_it_left_out() {
    let (out, report) = openapi_run(&[], &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for check in [
        "openapi::listJobs::response",
        "openapi::listJobs::without_key",
        "openapi::getHealth::response",
        "openapi::request_ids",
    ] {
        assert_eq!(outcome(&report, check), "passed", "{check}: {stdout}");
    }
    assert!(
        stdout
            .contains("getJob (GET /v1/jobs/{job_id}) not exercised: it needs --param job_id=...")
            && stdout.contains("createJob (POST /v1/jobs) not exercised: only GET operations"),
        "{stdout}"
    );
    let notices = report["notices"].to_string();
    assert!(notices.contains("not exercised"), "{notices}");
    // An operation with a path parameter runs once it is given.
    let (out, report) = openapi_run(&[], &["--param", "job_id=job_unknown", "getJob"]).await;
    assert_eq!(out.status.code(), Some(101), "{}", text(&out.stdout));
    assert_eq!(outcome(&report, "openapi::getJob::response"), "failed");
    assert!(
        text(&out.stdout).contains("expected status 2xx, got 404 from GET /v1/jobs/job_unknown"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openapi_run_fails_where_the_server_breaks_its_document() {
    // A list off its documented schema.
    let (out, report) = openapi_run(&[Fault::ListBadShape], &[]).await;
    assert_eq!(out.status.code(), Some(101), "{}", text(&out.stdout));
    assert_eq!(outcome(&report, "openapi::listJobs::response"), "failed");
    assert_eq!(outcome(&report, "openapi::getHealth::response"), "passed");
    // A refusal without the key whose body is not the documented error.
    let (out, report) = openapi_run(&[Fault::AuthPlainError], &[]).await;
    assert_eq!(out.status.code(), Some(101), "{}", text(&out.stdout));
    assert_eq!(outcome(&report, "openapi::listJobs::without_key"), "failed");
    assert_eq!(outcome(&report, "openapi::listJobs::response"), "passed");
    // 403 for a missing key is a refusal too, and the document gives 401 and 403 the same schema.
    let (_, report) = openapi_run(&[Fault::Auth403], &[]).await;
    assert_eq!(
        outcome(&report, "openapi::listJobs::without_key"),
        "passed",
        "403 is allowed"
    );
    let (out, report) = openapi_run(&[Fault::ListRejectsValidKey], &[]).await;
    assert_eq!(out.status.code(), Some(101));
    assert_eq!(outcome(&report, "openapi::listJobs::response"), "failed");
}

#[test]
fn bad_openapi_input_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json").display().to_string();
    let swagger = dir.path().join("swagger.json");
    std::fs::write(&swagger, r#"{"swagger": "2.0"}"#).unwrap();
    let swagger = swagger.display().to_string();
    for (args, expected) in [
        (
            vec!["--openapi", missing.as_str(), "--list"],
            "cannot read it",
        ),
        (
            vec!["--openapi", swagger.as_str(), "--list"],
            "only OpenAPI 3.0.x and 3.1.x",
        ),
        (
            vec!["--openapi", swagger.as_str(), "--param", "job_id", "--list"],
            "expected NAME=VALUE",
        ),
        (
            vec!["--openapi", swagger.as_str(), "--suite", "s.toml", "--list"],
            "cannot be used with",
        ),
        (vec!["--param", "a=b", "--list"], "--openapi"),
    ] {
        let out = run_bin(&args, &[], Duration::from_secs(30));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
