//! The reports: snapshots of each format for a hand-built record, the shipped JSON schema, the
//! JUnit shape CI readers load, and full runs of the binary (loopback only, bounded in time)
//! whose reports must agree with each other and with the console and never hold the key.

mod support;

use support::{run_bin, text};

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use apiconform::events::CheckId;
use apiconform::finding::Finding;
use apiconform::record::{CheckRecord, Exchange, Level, Outcome, RunRecord};
use apiconform::reference::Fault;
use apiconform::report::{self, console, json, junit, markdown, Report, ReportPaths, RunInfo};
use apiconform::secrets::Secrets;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// A synthetic run: every outcome, a flaky pass, a harness request, a cut body, markup in messages.

const ORDER: &[&str] = &[
    "schema::job_read",
    "schema::create_reply",
    "auth::valid_key",
    "auth::key_not_echoed",
    "errors::malformed_job_id",
    "observability::request_id_header",
    "observability::logs",
];

fn at(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_767_323_045_000 + ms)
}

fn exchange(
    check: &str,
    method: &str,
    path: &str,
    status: Option<u16>,
    request_id: Option<&str>,
) -> Exchange {
    Exchange {
        id: 0,
        check: check.into(),
        method: method.into(),
        url: format!("http://127.0.0.1:8080{path}"),
        request_headers: vec![
            ("x-apiconform-run-id".into(), "00000000000000aa".into()),
            ("x-api-key".into(), "$API_KEY".into()),
        ],
        request_body: None,
        request_parts: Vec::new(),
        status,
        response_headers: status
            .map(|_| {
                let mut headers =
                    vec![("content-type".to_string(), "application/json".to_string())];
                if let Some(id) = request_id {
                    headers.push(("x-request-id".into(), id.into()));
                }
                headers
            })
            .unwrap_or_default(),
        body_excerpt: status.map(|_| "{}".to_string()).unwrap_or_default(),
        error: None,
        started: at(100),
        elapsed: Duration::from_millis(4),
        request_id: request_id.map(String::from),
        job_id: None,
        echoed_secret: false,
    }
}

fn check(
    name: &str,
    level: Level,
    outcome: Outcome,
    message: &str,
    exchanges: Vec<usize>,
) -> CheckRecord {
    CheckRecord {
        name: name.into(),
        area: name.split("::").next().unwrap().into(),
        level,
        outcome,
        message: message.into(),
        findings: Vec::new(),
        drift: Vec::new(),
        duration: Duration::from_millis(250),
        exchanges,
        flaky: false,
        waited: Duration::ZERO,
    }
}

/// `check` with one finding of `rule` per line of its message, line `i` citing `cited[i]`.
fn with_findings(mut check: CheckRecord, rule: &str, cited: &[usize]) -> CheckRecord {
    check.findings = check
        .message
        .lines()
        .zip(cited)
        .map(|(line, id)| Finding::new(rule, line).cites_exchange(*id))
        .collect();
    check
}

fn synthetic_record() -> RunRecord {
    let record = RunRecord::default();
    record.add_exchange(exchange("run::probe", "GET", "/health", Some(200), None));
    let mut setup = exchange(
        "run::job_setup",
        "POST",
        "/v1/jobs",
        Some(500),
        Some("req_setup01"),
    );
    setup
        .request_headers
        .push(("content-type".into(), "application/json".into()));
    setup.request_body = Some(r#"{"video_url":"https://example.com/it's.mp4"}"#.into());
    setup.body_excerpt = r#"{"error":{"code":"internal_error","request_id":"req_setup01"}}"#.into();
    let setup = record.add_exchange(setup);
    let valid = record.add_exchange(exchange(
        "auth::valid_key",
        "GET",
        "/v1/jobs?limit=1",
        Some(200),
        Some("req_valid01"),
    ));
    let mut echoed = exchange(
        "auth::key_not_echoed",
        "GET",
        "/v1/jobs?limit=1",
        Some(200),
        Some("req_echo001"),
    );
    echoed
        .response_headers
        .push(("x-debug-api-key".into(), "$API_KEY".into()));
    let echoed = record.add_exchange(echoed);
    let mut long = exchange(
        "errors::malformed_job_id",
        "GET",
        "/v1/jobs/a%7Cb",
        Some(500),
        Some("req_mal0001"),
    );
    long.body_excerpt = format!("{}... [9000 bytes in all]", "x".repeat(40));
    let long = record.add_exchange(long);
    let odd = record.add_exchange(exchange(
        "errors::malformed_job_id",
        "GET",
        "/v1/jobs/%3Cb%3E",
        Some(500),
        Some("req_mal0002"),
    ));
    let missing = record.add_exchange(exchange(
        "observability::request_id_header",
        "GET",
        "/health",
        Some(200),
        None,
    ));
    record.add_wait("run::job_setup", Duration::from_millis(1500));
    record.add_wait("auth::valid_key", Duration::from_millis(500));

    let mut flaky = check(
        "auth::valid_key",
        Level::Must,
        Outcome::Passed,
        "",
        vec![valid],
    );
    flaky.flaky = true;
    flaky.waited = Duration::from_millis(500);
    // Completion order differs from suite order on purpose.
    for (id, record_check) in [
        check("observability::logs", Level::Must, Outcome::Ignored, "needs a log source: pass --logs PATH", vec![]),
        check(
            "observability::request_id_header",
            Level::Should,
            Outcome::Warned,
            "expected a request id header (X-Request-Id) on GET /health -> 200 (no request id)",
            vec![missing],
        ),
        with_findings(
            check(
                "errors::malformed_job_id",
                Level::Must,
                Outcome::Failed,
                "id \"<b>\": a 5xx for client input, got GET /v1/jobs/%3Cb%3E -> 500 (request id req_mal0002)\n\
                 id \"a|b\": a 5xx for client input, got GET /v1/jobs/a%7Cb -> 500 (request id req_mal0001)",
                vec![long, odd],
            ),
            "errors.malformed_id",
            &[odd, long],
        ),
        with_findings(
            check(
                "auth::key_not_echoed",
                Level::Must,
                Outcome::Failed,
                "the submitted key came back in the header x-debug-api-key, in GET /v1/jobs?limit=1 -> 200 (request id req_echo001)",
                vec![echoed],
            ),
            "auth.key_echoed",
            &[echoed],
        ),
        flaky,
        with_findings(
            check(
                "schema::create_reply",
                Level::Must,
                Outcome::Errored,
                "could not create a job: POST /v1/jobs -> 500 (request id req_setup01)",
                vec![],
            ),
            "run.job_setup",
            &[setup],
        ),
        with_findings(
            check(
                "schema::job_read",
                Level::Must,
                Outcome::Errored,
                "could not create a job: POST /v1/jobs -> 500 (request id req_setup01)",
                vec![],
            ),
            "run.job_setup",
            &[setup],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        record.add_check(CheckId(id), record_check);
    }
    record
}

fn run_info() -> RunInfo {
    RunInfo {
        suite_name: "v1-jobs".into(),
        suite_hash: format!("sha256:{}", "ab".repeat(32)),
        base_url: "http://127.0.0.1:8080".into(),
        started_at: chrono::DateTime::from(at(0)),
        duration: Duration::from_millis(12_345),
        interrupted: None,
    }
}

fn synthetic_report() -> Report {
    report::build(run_info(), ORDER, &synthetic_record(), &Secrets::default())
}

#[test]
fn console_summary_snapshot() {
    insta::assert_snapshot!(console::summary(&synthetic_report()));
}

#[test]
fn markdown_summary_snapshot() {
    insta::assert_snapshot!(markdown::render(&synthetic_report()));
}

#[test]
fn junit_snapshot() {
    insta::assert_snapshot!(junit::render(&synthetic_report()));
}

#[test]
fn report_lists_checks_in_suite_order_with_counts_and_waits() {
    let report = synthetic_report();
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ORDER);
    let s = &report.summary;
    assert_eq!(
        (s.total, s.passed, s.failed, s.warned, s.ignored, s.errored, s.flaky),
        (7, 1, 2, 1, 1, 2, 1)
    );
    assert_eq!(
        s.waited,
        Duration::from_secs(2),
        "the run's waits include the harness's"
    );
    // The job set-up the message cites is the evidence of a check that sent nothing itself.
    let job_read = &report.checks[0];
    assert_eq!(job_read.evidence.exchanges.len(), 1);
    let curl = job_read.evidence.curl.as_deref().unwrap();
    assert!(
        curl.contains("-X POST")
            && curl.contains("--data-raw '{\"video_url\":\"https://example.com/it'\\''s.mp4\"}'"),
        "{curl}"
    );
}

#[test]
fn transport_errors_only_are_named_as_such() {
    let record = RunRecord::default();
    for (id, name) in ["auth::valid_key", "auth::missing_key"]
        .into_iter()
        .enumerate()
    {
        record.add_check(
            CheckId(id),
            check(
                name,
                Level::Must,
                Outcome::Errored,
                "transport error: GET /v1/jobs: connection refused",
                vec![],
            ),
        );
    }
    let report = report::build(run_info(), &[], &record, &Secrets::default());
    let console = console::summary(&report);
    assert!(
        console
            .trim_end()
            .ends_with("apiconform: all 2 failures are transport errors: the target may be down"),
        "{console}"
    );
    assert!(markdown::render(&report).contains("all 2 failures are transport errors"));
    assert!(!console::summary(&synthetic_report()).contains("transport errors"));
}

#[test]
fn json_report_validates_against_the_shipped_schema() {
    let document: Value = serde_json::from_str(&json::render(&synthetic_report())).unwrap();
    support::assert_valid_json_report(&document);
    assert_eq!(
        document["checks"][4]["evidence"]["exchanges"][0]["body_truncated"],
        true
    );
    assert_eq!(
        document["checks"][4]["evidence"]["curl_exchange"], 5,
        "the request cited first"
    );
}

#[test]
fn written_reports_are_masked_and_unwritable_paths_are_errors() {
    let record = RunRecord::default();
    record.add_check(
        CheckId(0),
        check(
            "auth::key_not_echoed",
            Level::Must,
            Outcome::Failed,
            "saw sk_live_SECRET in a header",
            vec![],
        ),
    );
    let mut secrets = Secrets::default();
    secrets.register("sk_live_SECRET", "$API_KEY");
    // The model is masked as it is built (escaping could hide a key from a mask of the file),
    let report = report::build(run_info(), &[], &record, &secrets);
    let dir = tempfile::tempdir().unwrap();
    // A missing folder is made; one that is a file cannot be.
    std::fs::write(dir.path().join("missing"), "a file, not a folder").unwrap();
    let paths = ReportPaths::asked([
        (Some(dir.path().join("junit.xml")), &junit::FORMAT),
        (
            Some(dir.path().join("missing").join("report.json")),
            &json::FORMAT,
        ),
        (Some(dir.path().join("summary.md")), &markdown::FORMAT),
    ]);
    let errors = report::write_reports(&report, &paths, &secrets);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let error = errors[0].to_string();
    assert!(
        error.starts_with("cannot write the JSON report to ") && error.contains("missing"),
        "{error}"
    );
    for file in ["junit.xml", "summary.md"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(
            !text.contains("sk_live_SECRET") && text.contains("$API_KEY"),
            "{file}:\n{text}"
        );
    }
    // and the written text once more.
    let unmasked = report::build(run_info(), &[], &record, &Secrets::default());
    let paths = ReportPaths::asked([(Some(dir.path().join("report.json")), &json::FORMAT)]);
    assert!(report::write_reports(&unmasked, &paths, &secrets).is_empty());
    let text = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    assert!(
        !text.contains("sk_live_SECRET") && text.contains("saw $API_KEY"),
        "{text}"
    );
}

/// The report files are a sink of the run's events: nothing is written until the run has
/// finished, then every file asked for, and a file that cannot be written is an error.
#[test]
fn report_files_are_written_when_the_run_finishes() {
    use apiconform::events::{EventBus, EventSink, RunEvent};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("missing"), "a file, not a folder").unwrap();
    let files = std::sync::Arc::new(report::ReportFiles::new(ReportPaths::asked([
        (Some(dir.path().join("junit.xml")), &junit::FORMAT),
        (
            Some(dir.path().join("missing").join("report.json")),
            &json::FORMAT,
        ),
        (Some(dir.path().join("summary.md")), &markdown::FORMAT),
    ])));
    let record = RunRecord::with_events(EventBus::new(vec![
        files.clone() as std::sync::Arc<dyn EventSink>
    ]));
    record.add_check(
        CheckId(0),
        check("auth::valid_key", Level::Must, Outcome::Passed, "", vec![]),
    );
    assert!(
        !dir.path().join("junit.xml").exists(),
        "written before the end"
    );
    let secrets = Secrets::default();
    let report = report::build(run_info(), &[], &record, &secrets);
    record.events().emit(RunEvent::RunFinished {
        report: &report,
        secrets: &secrets,
    });
    let errors = files.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0]
        .to_string()
        .starts_with("cannot write the JSON report to "));
    for file in ["junit.xml", "summary.md"] {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert!(text.contains("auth::valid_key"), "{file}:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// The JUnit shape that GitHub Actions (dorny/test-reporter, mikepenz/action-junit-report), GitLab
// and Jenkins read: checked structurally here, as a Jenkins/Surefire-style XSD would.

#[test]
fn junit_has_the_shape_ci_readers_load() {
    assert_junit_shape(&junit::render(&synthetic_report()));
}

/// An element of a parsed XML document (attributes and children only; text is not needed).
#[derive(Debug)]
struct Element {
    name: String,
    attributes: BTreeMap<String, String>,
    children: Vec<Element>,
}

/// A small parser for quick-junit's output: well-formed, attributes in double quotes, text
/// escaped (so `<` only opens markup). The prolog (`<?xml ...?>`) is skipped.
fn parse_xml(xml: &str) -> Element {
    let mut stack: Vec<Element> = vec![Element {
        name: "#document".into(),
        attributes: BTreeMap::new(),
        children: vec![],
    }];
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag.starts_with('?') || tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let element = stack.pop().unwrap();
            assert_eq!(element.name, name.trim(), "mismatched end tag");
            stack.last_mut().unwrap().children.push(element);
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let (name, mut attrs) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
        let mut attributes = BTreeMap::new();
        while let Some((key, after)) = attrs.split_once("=\"") {
            let (value, after) = after.split_once('"').expect("attribute value closes");
            assert!(
                attributes
                    .insert(key.trim().to_string(), value.to_string())
                    .is_none(),
                "duplicate attribute {key}"
            );
            attrs = after;
        }
        let element = Element {
            name: name.to_string(),
            attributes,
            children: vec![],
        };
        if self_closing {
            stack.last_mut().unwrap().children.push(element);
        } else {
            stack.push(element);
        }
    }
    let mut document = stack.pop().unwrap();
    assert!(stack.is_empty(), "unclosed elements");
    assert_eq!(document.children.len(), 1, "one root element");
    document.children.pop().unwrap()
}

/// What the Jenkins/Surefire JUnit schema requires, and the counts those readers trust.
fn assert_junit_shape(xml: &str) {
    let root = parse_xml(xml);
    assert_eq!(root.name, "testsuites");
    let number = |e: &Element, attribute: &str| -> f64 {
        e.attributes
            .get(attribute)
            .unwrap_or_else(|| panic!("<{}> lacks {attribute}: {:?}", e.name, e.attributes))
            .parse()
            .unwrap_or_else(|_| panic!("<{}> {attribute} is not a number", e.name))
    };
    let mut totals = [0.0; 4];
    for suite in &root.children {
        assert_eq!(suite.name, "testsuite", "only test suites under the root");
        assert!(
            suite.attributes.contains_key("name"),
            "{:?}",
            suite.attributes
        );
        let cases: Vec<&Element> = suite
            .children
            .iter()
            .filter(|c| c.name == "testcase")
            .collect();
        for child in &suite.children {
            assert!(
                ["properties", "testcase", "system-out", "system-err"]
                    .contains(&child.name.as_str()),
                "{}",
                child.name
            );
        }
        let with = |kind: &str| {
            cases
                .iter()
                .filter(|c| c.children.iter().any(|k| k.name == kind))
                .count() as f64
        };
        let counts = [
            cases.len() as f64,
            with("failure"),
            with("error"),
            with("skipped"),
        ];
        for (i, attribute) in ["tests", "failures", "errors", "skipped"]
            .iter()
            .enumerate()
        {
            assert_eq!(
                number(suite, attribute),
                counts[i],
                "suite {} {attribute}",
                suite.attributes["name"]
            );
            totals[i] += counts[i];
        }
        assert!(number(suite, "time") >= 0.0);
        for case in cases {
            for attribute in ["name", "classname"] {
                assert!(
                    case.attributes.contains_key(attribute),
                    "testcase lacks {attribute}"
                );
            }
            assert!(number(case, "time") >= 0.0);
            let verdicts: Vec<&Element> = case
                .children
                .iter()
                .filter(|k| ["failure", "error", "skipped"].contains(&k.name.as_str()))
                .collect();
            assert!(verdicts.len() <= 1, "one verdict per test case");
            for verdict in verdicts.iter().filter(|v| v.name != "skipped") {
                assert!(
                    verdict.attributes.contains_key("message")
                        && verdict.attributes.contains_key("type")
                );
            }
            for child in &case.children {
                assert!(
                    ["failure", "error", "skipped", "system-out", "system-err"]
                        .contains(&child.name.as_str()),
                    "{}",
                    child.name
                );
            }
        }
    }
    for (i, attribute) in ["tests", "failures", "errors", "skipped"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            number(&root, attribute),
            totals[i],
            "testsuites {attribute}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Full runs of the binary.

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_run_reports_agree_carry_evidence_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = |name: &str| dir.path().join(name).display().to_string();
    let (junit_path, json_path, md_path) = (
        out_path("junit.xml"),
        out_path("report.json"),
        out_path("summary.md"),
    );
    let extra = strings(&[
        "--junit",
        &junit_path,
        "--report-json",
        &json_path,
        "--summary-md",
        &md_path,
    ]);
    let (out, config) = support::run_against_faults(&[Fault::EchoKey], dir.path(), &extra).await;
    let second = config.second_key.clone().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(101), "{stdout}\n{stderr}");

    let junit_xml = std::fs::read_to_string(&junit_path).unwrap();
    let json_text = std::fs::read_to_string(&json_path).unwrap();
    let md = std::fs::read_to_string(&md_path).unwrap();
    for (what, output) in [
        ("stdout", &stdout),
        ("stderr", &stderr),
        ("JUnit", &junit_xml),
        ("JSON", &json_text),
        ("Markdown", &md),
    ] {
        for key in [&config.primary_key, &second] {
            assert!(
                !output.contains(key.as_str()),
                "a key leaked into {what}:\n{output}"
            );
        }
    }

    let document: Value = serde_json::from_str(&json_text).unwrap();
    support::assert_valid_json_report(&document);
    assert_junit_shape(&junit_xml);

    let from_json: BTreeMap<String, String> = document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        from_json.get("auth::key_not_echoed").map(String::as_str),
        Some("failed"),
        "{from_json:?}"
    );
    assert_eq!(
        from_json,
        junit_outcomes(&junit_xml),
        "JUnit and JSON disagree"
    );
    assert_eq!(
        from_json,
        markdown_outcomes(&md),
        "Markdown and JSON disagree"
    );
    for (name, outcome) in &from_json {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("test ") && l.contains(&format!(" {name} ")))
            .unwrap_or_else(|| panic!("no console line for {name}:\n{stdout}"));
        let console = match line.rsplit(" ... ").next().unwrap() {
            "ok" => ["passed", "warned"].as_slice(),
            "FAILED" => &["failed", "errored"],
            ignored if ignored.starts_with("ignored") => &["ignored"],
            other => panic!("unexpected result {other} in {line}"),
        };
        assert!(
            console.contains(&outcome.as_str()),
            "{name}: console says {line}, reports say {outcome}"
        );
    }
    let summary = &document["summary"];
    let count = |field: &str| summary[field].as_u64().unwrap();
    let of_them = |n: u64, what: &str| {
        if n == 0 {
            String::new()
        } else {
            format!(" ({n} {what})")
        }
    };
    let counts = format!(
        "apiconform: {} passed{}, {} failed{}, {} ignored ({} checks)",
        count("passed") + count("warned"),
        of_them(count("warned"), "warned"),
        count("failed") + count("errored"),
        of_them(count("errored"), "errored"),
        count("ignored"),
        count("total")
    );
    // libtest's own line counts the same way.
    let libtest = stdout
        .lines()
        .find(|l| l.starts_with("test result:"))
        .expect("libtest's result line");
    assert!(
        libtest.contains(&format!(
            "{} passed; {} failed; {} ignored",
            count("passed") + count("warned"),
            count("failed") + count("errored"),
            count("ignored")
        )),
        "{libtest}\nvs {counts}"
    );
    let last = stdout.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with(&counts) && last.contains("waiting on the server"),
        "{last}\nvs {counts}"
    );
    assert!(
        md.contains(&counts["apiconform: ".len()..counts.find(" (").unwrap()]),
        "{md}"
    );

    for check in document["checks"].as_array().unwrap() {
        if !["failed", "errored"].contains(&check["outcome"].as_str().unwrap()) {
            continue;
        }
        let evidence = &check["evidence"];
        assert!(
            !evidence["exchanges"].as_array().unwrap().is_empty(),
            "{check}"
        );
        let curl = evidence["curl"]
            .as_str()
            .unwrap_or_else(|| panic!("no curl line: {check}"));
        let chosen = evidence["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == evidence["curl_exchange"])
            .expect("the curl exchange is in the evidence");
        if chosen["request_headers"].to_string().contains("$API_KEY") {
            assert!(curl.contains("\"x-api-key: $API_KEY\""), "{curl}");
        }
        assert!(
            md.contains(curl),
            "the Markdown summary lacks the curl line {curl}"
        );
        assert!(
            junit_xml.contains(&xml_escape(curl)),
            "the JUnit report lacks the curl line {curl}"
        );
    }
    let echo = document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "auth::key_not_echoed")
        .unwrap();
    assert!(
        echo["evidence"]["curl"]
            .as_str()
            .unwrap()
            .contains("$API_KEY"),
        "{echo}"
    );
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Outcomes as the JUnit file states them (read back with quick-junit's own parser).
fn junit_outcomes(xml: &str) -> BTreeMap<String, String> {
    let parsed = quick_junit::Report::deserialize_from_str(xml).expect("the JUnit file parses");
    let mut outcomes = BTreeMap::new();
    for suite in &parsed.test_suites {
        for case in &suite.test_cases {
            let outcome = match &case.status {
                quick_junit::TestCaseStatus::NonSuccess {
                    kind: quick_junit::NonSuccessKind::Failure,
                    ..
                } => "failed",
                quick_junit::TestCaseStatus::NonSuccess {
                    kind: quick_junit::NonSuccessKind::Error,
                    ..
                } => "errored",
                quick_junit::TestCaseStatus::Skipped { .. } => "ignored",
                quick_junit::TestCaseStatus::Success { .. } => {
                    let out = case
                        .system_out
                        .as_ref()
                        .map(|s| s.as_str())
                        .unwrap_or_default();
                    if out.starts_with("warning:") {
                        "warned"
                    } else {
                        "passed"
                    }
                }
            };
            outcomes.insert(case.name.as_str().to_string(), outcome.to_string());
        }
    }
    outcomes
}

/// Outcomes as the Markdown tables state them: `| `name` | LEVEL | icon outcome | message |`.
fn markdown_outcomes(md: &str) -> BTreeMap<String, String> {
    md.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.strip_prefix("| `")?.splitn(4, " | ").collect();
            let name = cells[0].strip_suffix('`')?;
            let outcome = cells[2].split_whitespace().nth(1)?;
            Some((name.to_string(), outcome.to_string()))
        })
        .collect()
}

#[test]
fn unwritable_report_is_exit_2_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    // A folder cannot be made inside a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let bad = file.join("junit.xml").display().to_string();
    let good = dir.path().join("report.json").display().to_string();
    let out = run_bin(
        &strings(&[
            "--exact",
            "auth::valid_key",
            "--junit",
            &bad,
            "--report-json",
            &good,
        ]),
        &[],
        Duration::from_secs(60),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        !stdout.contains("passed"),
        "found before the run, so nothing ran:\n{stdout}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(&format!("error: cannot write the JUnit report to {bad}: ")),
        "{stderr}"
    );
}

#[test]
fn a_report_folder_that_does_not_exist_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("out/nightly/junit.xml");
    let out = run_bin(
        &strings(&[
            "--exact",
            "auth::valid_key",
            "--junit",
            &nested.display().to_string(),
        ]),
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let junit = std::fs::read_to_string(&nested).expect("the report is written");
    assert!(junit.contains("auth::valid_key"), "{junit}");
}

#[test]
fn json_format_keeps_stdout_for_machines_and_logs_can_be_json() {
    let out = run_bin(
        &strings(&[
            "--exact",
            "auth::valid_key",
            "--format",
            "json",
            "--log-format",
            "json",
            "-vv",
        ]),
        &[],
        Duration::from_secs(60),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
    }
    assert!(
        stderr.contains("apiconform: 1 passed, 0 failed, 0 ignored (1 check)"),
        "{stderr}"
    );
    let logs: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON log line"))
        .collect();
    assert!(
        logs.iter()
            .any(|l| l["fields"]["check"] == "auth::valid_key"
                && l["fields"]["request_id"].is_string()),
        "no JSON log line for the check's exchange:\n{stderr}"
    );
}

#[test]
fn ci_examples_publish_every_report_even_when_checks_fail() {
    let example = |name: &str| {
        std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let github = example("github-actions.yml");
    let gitlab = example("gitlab-ci.yml");
    for text in [&github, &gitlab] {
        for needed in [
            "--junit reports/junit.xml",
            "--report-json reports/report.json",
            "--summary-md reports/summary.md",
            "APICONFORM_API_KEY",
            "--base-url",
        ] {
            assert!(text.contains(needed), "an example lacks {needed}");
        }
    }
    for needed in [
        "schedule:",
        "cron:",
        "secrets.STAGING_API_KEY",
        "$GITHUB_STEP_SUMMARY",
        "upload-artifact",
        "junit-report",
    ] {
        assert!(github.contains(needed), "the GitHub example lacks {needed}");
    }
    assert_eq!(
        github.matches("if: ${{ !cancelled()").count(),
        3,
        "every step after the check runs after a failure"
    );
    for needed in [
        "$CI_PIPELINE_SOURCE == \"schedule\"",
        "when: always",
        "junit: reports/junit.xml",
    ] {
        assert!(gitlab.contains(needed), "the GitLab example lacks {needed}");
    }
}

/// A fault's findings carry the rule it breaks, and every exchange they cite is in the
/// check's evidence, the first reproduced by the curl line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_report_findings_name_the_rule_and_cite_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json").display().to_string();
    let extra = strings(&["--report-json", &json_path, "schema::job_read"]);
    let (out, _) =
        support::run_against_faults(&[Fault::JobProgressAsString], dir.path(), &extra).await;
    assert_eq!(out.status.code(), Some(101), "{}", text(&out.stdout));
    let document: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    support::assert_valid_json_report(&document);
    assert_eq!(document["format_version"], 2);
    let check = document["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "schema::job_read")
        .expect("schema::job_read ran");
    assert_eq!(check["outcome"], "failed", "{check}");
    let findings = check["findings"].as_array().unwrap();
    let progress = findings
        .iter()
        .find(|f| f["rule"] == "schema.type" && f["pointer"] == "/progress")
        .unwrap_or_else(|| panic!("no schema.type finding at /progress: {check}"));
    assert_eq!(progress["expected"], "type");
    assert!(
        progress["actual"].as_str().unwrap().starts_with('"'),
        "{progress}"
    );
    let messages: Vec<&str> = findings
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages.join("\n"),
        check["message"],
        "one message line per finding"
    );
    let evidence = &check["evidence"];
    let shown: Vec<&Value> = evidence["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    let cited = progress["exchanges"].as_array().unwrap();
    assert!(!cited.is_empty(), "{progress}");
    assert!(
        cited.iter().all(|id| shown.contains(&id)),
        "{cited:?} vs {shown:?}"
    );
    assert_eq!(evidence["curl_exchange"], cited[0]);
}
