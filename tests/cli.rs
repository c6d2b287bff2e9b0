//! The binary as users run it: exit codes, one-line errors, the embedded run, and a run
//! against a served reference server with a fault. Loopback only, every run bounded in time.

mod support;

use support::{run_bin, text};

use std::io::Write;
use std::time::Duration;

use apiconform::reference::Fault;

/// The libtest line of check `name`.
fn check_line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with("test ") && l.contains(&format!(" {name} ")))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{stdout}"))
}

const QUICK: Duration = Duration::from_secs(30);

fn write_suite(dir: &std::path::Path, body: &str) -> String {
    let path = dir.join("suite.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    path.display().to_string()
}

#[test]
fn help_documents_flags_and_exit_codes() {
    let out = run_bin(&["--help"], &[], QUICK);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "--base-url",
        "--key",
        "--key-file",
        "--second-key",
        "--suite",
        "--job-id",
        "--allow-writes",
        "--strict",
        "--logs",
        "--exact",
        "--skip",
        "--list",
        "--ignored",
        "--include-ignored",
        "--format",
        "--test-threads",
        "--quiet",
        "--no-tests",
        "101",
        "  4 ",
        "APICONFORM_API_KEY",
        "--webhook-listen",
        "--webhook-public-url",
        "--webhook-secret",
        "--webhook-secret-file",
        "APICONFORM_WEBHOOK_SECRET",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}");
    }
    let serve = text(&run_bin(&["serve", "--help"], &[], QUICK).stdout);
    for flag in ["--port", "--key", "--second-key", "--fault", "--log-file"] {
        assert!(serve.contains(flag), "serve --help does not mention {flag}");
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = run_bin(&["--no-such-flag"], &[], QUICK);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn malformed_suite_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path(), "name = \"broken\"\n\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { path = \"/x\" \n");
    let out = run_bin(
        &[
            "--suite",
            &suite,
            "--base-url",
            "http://127.0.0.1:9",
            "--key",
            "k",
        ],
        &[],
        QUICK,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: {suite}:6:")),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn bad_suite_contents_are_located_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (body, expected) in [
        // Each message points at the offending line: the key named, or the value quoted.
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"no_such_kind\"\n", "4:1: check `a::b`: unknown kind `no_such_kind`"),
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { path = \"/v1/{nope}\" }\n", "5:13: check `a::b`: path `/v1/{nope}` uses unknown placeholder `{nope}`"),
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { pth = \"/\" }\n", "unknown field `pth`"),
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_rejected\"\nrequest = { path = \"/v1/jobs\" }\n\nexpect_stat = [401]\n", "7:1: check `a::b`: unknown field `expect_stat`"),
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { path = \"/v1/jobs/{job_id\" }\n", "5:13: check `a::b`: path `/v1/jobs/{job_id` has a `{` at character 10 that is never closed"),
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { path = \"/v1/jobs/job_id}\" }\n", "has a stray `}`"),
        // A method is parsed as the suite loads, not when the request is sent.
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { method = \"GE T\", path = \"/v1/jobs\" }\n", "5:13: check `a::b`: `GE T` is not an HTTP method"),
        // Semantic errors in the settings point at the key too.
        ("name = \"x\"\n\n[target]\nprobe_path = \"health\"\n", "4:1: [target] probe_path: path `health` must start with `/`"),
        ("name = \"x\"\n[target]\ntimeout_seconds = 5.0\nrequests_per_second = 0.0\n", "4:1: [target] requests_per_second must be a positive number"),
        ("name = \"x\"\n[burst]\nconcurrency = 0\n", "3:1: [burst] concurrency must be between 1 and 256"),
        ("name = \"x\"\n[schemas]\nerror = \"missing.json\"\n", "cannot read schema"),
        ("name = \"x\"\n[schemas]\nerror = \"s.json\"\n[[check]]\nname = \"a::b\"\nkind = \"response_schema\"\nrequest = { path = \"/\" }\nschema = \"job\"\n", "uses schema `job`"),
    ] {
        std::fs::write(dir.path().join("s.json"), "{\"type\": \"object\"}").unwrap();
        let suite = write_suite(dir.path(), body);
        let out = run_bin(&["--suite", &suite, "--base-url", "http://127.0.0.1:9", "--key", "k"], &[], QUICK);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{body}: {stderr}");
        assert!(stderr.contains(expected), "{body}: expected `{expected}` in {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    }
}

#[test]
fn schema_that_does_not_compile_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("e.json"), "{\"type\": 12}").unwrap();
    let suite = write_suite(dir.path(), "name = \"x\"\n[schemas]\nerror = \"e.json\"\n");
    let out = run_bin(
        &[
            "--suite",
            &suite,
            "--base-url",
            "http://127.0.0.1:9",
            "--key",
            "k",
        ],
        &[],
        QUICK,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("does not compile"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_url_and_missing_key_are_usage_errors() {
    let out = run_bin(&["--base-url", "not a url", "--key", "k"], &[], QUICK);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("is not a URL"));
    let out = run_bin(
        &["--base-url", "ftp://example.com", "--key", "k"],
        &[],
        QUICK,
    );
    assert_eq!(out.status.code(), Some(2));
    let out = run_bin(&["--base-url", "http://127.0.0.1:9"], &[], QUICK);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no API key"));
    let out = run_bin(
        &["--base-url", "http://127.0.0.1:9", "--key", " "],
        &[],
        QUICK,
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unreachable_target_exits_3_and_says_so() {
    // A port that was free a moment ago: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run_bin(&["--base-url", &url, "--key", "secret-key-123"], &[], QUICK);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot reach {url}")),
        "{stderr}"
    );
    assert!(!stderr.contains("secret-key-123") && !text(&out.stdout).contains("secret-key-123"));
}

#[test]
fn list_shows_checks_with_level_and_needs_without_a_target() {
    let out = run_bin(&["--list"], &[], QUICK);
    assert_eq!(out.status.code(), Some(0));
    let list = text(&out.stdout);
    let names = support::default_check_names();
    let listed: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split_once(": test").map(|(name, _)| name))
        .collect();
    assert_eq!(listed, names, "{list}");
    assert!(
        list.contains("auth::cross_tenant: test") && list.contains("needs a job, second key"),
        "{list}"
    );
    let filtered = text(&run_bin(&["--list", "auth::"], &[], QUICK).stdout);
    assert!(
        filtered.lines().all(|l| l.starts_with("auth::")),
        "{filtered}"
    );
}

#[test]
fn embedded_run_passes_every_check() {
    let out = run_bin::<&str>(&[], &[], Duration::from_secs(120));
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("embedded reference server at http://127.0.0.1:"),
        "{first}"
    );
    let ok = stdout
        .lines()
        .filter(|l| l.starts_with("test ") && l.ends_with(" ok"))
        .count();
    let expected = support::default_check_names().len();
    assert_eq!(ok, expected, "not every check passed:\n{stdout}");
    assert!(
        !stdout.contains("FAILED") && !stdout.contains("... ignored"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_fault_is_reported_as_a_failing_check_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (out, config) = support::run_against_faults(&[Fault::EchoKey], dir.path(), &[]).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(101), "{stdout}\n{stderr}");
    assert!(
        check_line(&stdout, "auth::key_not_echoed").ends_with("FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("came back in the header x-debug-api-key"),
        "{stdout}"
    );
    for output in [&stdout, &stderr] {
        assert!(
            !output.contains(&config.primary_key),
            "the key leaked:\n{output}"
        );
        assert!(
            !output.contains(config.second_key.as_deref().unwrap()),
            "the second key leaked:\n{output}"
        );
    }
    assert!(
        check_line(&stdout, "auth::cross_tenant").ends_with("ok"),
        "{stdout}"
    );
    assert!(
        check_line(&stdout, "observability::logs").contains("ignored (needs a log source"),
        "{stdout}"
    );
}

/// `--format json` is libtest's event stream, one object a line, with a failure's message as
/// plain text (not wrapped in `Error: "..."`), and the key nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_streams_events_with_plain_messages() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--format", "json", "auth::"].map(String::from);
    let (out, config) = support::run_against_faults(&[Fault::Auth403], dir.path(), &extra).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(101), "{stdout}\n{stderr}");
    assert!(!stdout.contains(&config.primary_key), "{stdout}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let finished = |name: &str| {
        events
            .iter()
            .find(|e| e["name"] == name && e["event"] != "started")
            .unwrap_or_else(|| panic!("no outcome for {name}:\n{stdout}"))
    };
    let failed = finished("auth::invalid_key");
    assert_eq!(failed["event"], "failed");
    let message = failed["stdout"].as_str().unwrap();
    assert!(
        message.starts_with("GET /v1/jobs") && message.contains("got 403 from GET"),
        "{message}"
    );
    assert_eq!(finished("auth::valid_key")["event"], "ok");
    let (first, last) = (&events[0], events.last().unwrap());
    assert_eq!(
        (&first["type"], &first["event"]),
        (&"suite".into(), &"started".into())
    );
    let count = first["test_count"].as_u64().unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "started" && e["type"] == "test")
            .count() as u64,
        count
    );
    assert_eq!(
        (&last["type"], &last["event"]),
        (&"suite".into(), &"failed".into())
    );
    assert_eq!(last["failed"], 1, "{last}");
}

#[test]
fn dry_run_sends_nothing_and_marks_side_effects() {
    // Nothing listens on this port: a sent request would fail the run.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run_bin(
        &[
            "--dry-run",
            "--base-url",
            &url,
            "--key",
            "sk_dry_run_key_123",
            "--allow-writes",
        ],
        &[],
        QUICK,
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("nothing is sent"), "{stdout}");
    assert!(
        stdout.contains("POST /v1/jobs twice with one Idempotency-Key [side effect"),
        "{stdout}"
    );
    assert!(stdout.contains("until the first 429"), "{stdout}");
    assert!(!stdout.contains("sk_dry_run_key_123"));
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_any_request() {
    let out = run_bin(
        &[
            "--base-url",
            "http://api.example.com",
            "--key",
            "sk_plain_http_123",
        ],
        &[],
        QUICK,
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--allow-insecure-http"), "{stderr}");
    assert!(!stderr.contains("sk_plain_http_123"));
}

#[test]
fn an_empty_key_variable_counts_as_unset() {
    let out = run_bin(
        &["--base-url", "https://api.example.com"],
        &[("APICONFORM_API_KEY", "")],
        QUICK,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no API key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_request_budget_stops_the_run_with_its_own_message() {
    let out = run_bin(
        &["--max-requests", "40", "-q"],
        &[],
        Duration::from_secs(120),
    );
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(101),
        "{}{stderr}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("the request budget of 40 (--max-requests) was spent"),
        "{stderr}"
    );
}

/// Exactly one `error:` line on stderr (clap may add its usage lines after it).
fn assert_one_error_line(out: &std::process::Output, expected: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(
        errors[0].contains(expected),
        "expected `{expected}` in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn zero_test_threads_is_a_usage_error() {
    let out = run_bin(&["--test-threads", "0"], &[], QUICK);
    assert_one_error_line(&out, "--test-threads");
}

#[test]
fn a_missing_log_source_is_a_usage_error_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such.log").display().to_string();
    let out = run_bin(&["--logs", &missing], &[], QUICK);
    assert_one_error_line(&out, "--logs");
    assert!(text(&out.stderr).contains("no-such.log"));
    assert!(!text(&out.stdout).contains("running"), "nothing ran");
    let folder = dir.path().display().to_string();
    let out = run_bin(&["--logs", &folder], &[], QUICK);
    assert_one_error_line(&out, "not a file");
}

#[test]
fn contradicting_flags_are_refused() {
    for (args, expected) in [
        (&["-q", "--format", "json"][..], "--format json"),
        (&["--list", "--dry-run"], "--dry-run"),
        (&["--ignored", "--include-ignored"], "--include-ignored"),
        (
            &["--list", "--format", "json"],
            "JSON lists are not supported yet",
        ),
    ] {
        assert_one_error_line(&run_bin(args, &[], QUICK), expected);
    }
}

#[test]
fn several_filters_select_any_match_and_serve_stays_a_subcommand() {
    let listed = |args: &[&str]| -> Vec<String> {
        let out = run_bin(args, &[], QUICK);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once(": test").map(|(name, _)| name.to_owned()))
            .collect()
    };
    let both = listed(&["--list", "auth::", "observability::request_id_header"]);
    assert!(both.iter().any(|n| n.starts_with("auth::")), "{both:?}");
    assert!(both.contains(&"observability::request_id_header".to_owned()));
    assert!(both
        .iter()
        .all(|n| n.starts_with("auth::") || n == "observability::request_id_header"));
    // --exact and --skip keep their meaning with several filters.
    let exact = listed(&[
        "--list",
        "--exact",
        "auth::valid_key",
        "observability::request_id_header",
    ]);
    assert_eq!(
        exact,
        ["auth::valid_key", "observability::request_id_header"]
    );
    let skipped = listed(&["--list", "--skip", "auth::valid_key", "auth::", "schema::"]);
    assert!(
        !skipped.contains(&"auth::valid_key".to_owned()),
        "{skipped:?}"
    );
    assert!(
        skipped.iter().any(|n| n.starts_with("schema::")),
        "{skipped:?}"
    );
    let serve = run_bin(&["serve", "--fault", "list"], &[], QUICK);
    assert_eq!(serve.status.code(), Some(0), "{}", text(&serve.stderr));
    assert!(text(&serve.stdout).contains("accept-missing-key"));
}

#[test]
fn a_filter_that_selects_nothing_fails_before_any_request() {
    // An unreachable target: exit 4, not 3, shows the decision comes before the probe.
    let base = [
        "--base-url",
        "http://127.0.0.1:9",
        "--key",
        "k",
        "auth::typo",
    ];
    let run = |extra: &[&str]| run_bin(&[&base[..], extra].concat(), &[], QUICK);
    let out = run(&[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("`auth::typo`"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    let warn = run(&["--no-tests=warn"]);
    assert_eq!(warn.status.code(), Some(0), "{}", text(&warn.stderr));
    assert!(text(&warn.stderr).starts_with("warning: "));
    let pass = run(&["--no-tests", "pass"]);
    assert_eq!(pass.status.code(), Some(0), "{}", text(&pass.stderr));
    assert_eq!(text(&pass.stderr), "");
    assert_eq!(run(&["--dry-run"]).status.code(), Some(4));
}

/// Run the binary with `args`, read the first line of its stdout, then close the pipe, as
/// `| head -1` does; the line and how the binary ended.
fn read_first_line_and_leave(args: &[&str]) -> (String, std::process::Output) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apiconform"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("APICONFORM_CONFIG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader (and with it the pipe) is dropped here.
    (first, child.wait_with_output().unwrap())
}

#[test]
fn a_closed_stdout_ends_list_and_dry_run_quietly() {
    // More output than a pipe holds, so the binary is still writing when the reader leaves.
    let dir = tempfile::tempdir().unwrap();
    let mut body = String::from("name = \"many\"\n");
    for i in 0..3000 {
        body.push_str(&format!(
            "[[check]]\nname = \"many::check_{i}\"\nkind = \"auth_accepted\"\nrequest = {{ path = \"/\" }}\n"
        ));
    }
    let suite = write_suite(dir.path(), &body);
    for mode in ["--list", "--dry-run"] {
        let (first, out) = read_first_line_and_leave(&[mode, "--suite", &suite]);
        assert!(!first.is_empty(), "{mode}: no first line");
        let stderr = text(&out.stderr);
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{mode}: {stderr}"
        );
        assert_ne!(out.status.code(), Some(101), "{mode}: {stderr}");
        assert!(
            matches!(out.status.code(), Some(0 | 141)),
            "{mode}: {:?}",
            out.status
        );
    }
}

#[test]
fn a_closed_stdout_ends_a_run_quietly_and_still_writes_its_reports() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    // The reader leaves after the headline, as `apiconform | head -1` does.
    let (headline, out) = read_first_line_and_leave(&["--report-json", report.to_str().unwrap()]);
    assert!(headline.starts_with("apiconform: "), "{headline}");
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["interrupted"], "a closed stdout", "{report}");
}

/// A committed config file sets the target, key file, reports and selection (paths relative to
/// the file); flags on the command line win, and APICONFORM_CONFIG names the file too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_sets_the_run_and_flags_on_the_command_line_win() {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, _log) = support::start_server(&[], dir.path()).await;
    let conf = dir.path().join("conformance");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(conf.join("key"), &config.primary_key).unwrap();
    let file = conf.join("apiconform.toml");
    std::fs::write(
        &file,
        format!(
            "base_url = \"{}\"\nkey_file = \"key\"\nreport_json = \"out/run.json\"\nfilters = [\"auth::valid_key\"]\nrate = 20\ndeadline = 60\nmax_requests = 50\n",
            server.base_url
        ),
    )
    .unwrap();
    let file = file.display().to_string();
    let report = conf.join("out/run.json");
    let checks_in_report = move || -> Vec<String> {
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let run = |args: Vec<String>, envs: Vec<(String, String)>| {
        tokio::task::spawn_blocking(move || {
            let envs: Vec<(&str, &str)> =
                envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run_bin(&args, &envs, QUICK)
        })
    };
    let out = run(vec!["--config".into(), file.clone()], vec![])
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(checks_in_report(), ["auth::valid_key"]);
    // A FILTER typed wins over the file's, and the environment names the file.
    let out = run(
        vec!["auth::missing_key".into()],
        vec![("APICONFORM_CONFIG".into(), file.clone())],
    )
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(checks_in_report(), ["auth::missing_key"]);
    // A typed flag with a default wins too: a budget of 1 stops the run.
    let out = run(
        vec!["--config".into(), file, "--max-requests".into(), "1".into()],
        vec![],
    )
    .await
    .unwrap();
    assert!(
        text(&out.stderr).contains("--max-requests"),
        "{}",
        text(&out.stderr)
    );
    server.shutdown().await;
}

#[test]
fn a_config_file_is_checked_like_a_suite_and_never_holds_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apiconform.toml");
    let path = file.display().to_string();
    for (body, expected) in [
        (
            "base_url = \"https://x.example\"\nbogus = 1\n",
            ":2:1: unknown field `bogus`",
        ),
        (
            "base_url = \"https://x.example\"\nkey = \"sk_live_secret\"\n",
            ":2:7: keys are not read from a config file",
        ),
        (
            "insecure = true\n",
            ":1:12: `insecure` is not read from a config file",
        ),
        (
            "webhook_secret = \"sk_live_secret\"\n",
            ":1:18: secrets are not read from a config file",
        ),
        ("no_tests = \"maybe\"\n", ":1:12: `no_tests` is `maybe`"),
        (
            "test_threads = 0\n",
            ":1:16: `test_threads` must be at least 1",
        ),
        ("deadline = \"soon\"\n", ":1:12: invalid type"),
    ] {
        std::fs::write(&file, body).unwrap();
        let out = run_bin(&["--config", &path, "--list"], &[], QUICK);
        assert_one_error_line(&out, &format!("{path}{expected}"));
        assert!(!text(&out.stderr).contains("sk_live_secret"));
    }
    let missing = dir.path().join("none.toml").display().to_string();
    let out = run_bin(&["--config", &missing, "--list"], &[], QUICK);
    assert_one_error_line(&out, "cannot read config file");
}

/// At a terminal (a pty from util-linux's `script`), a waiting check says so in whole lines of
/// their own, never inside libtest's; with one test thread, where libtest holds `test name
/// ... ` open while the check runs, it says nothing.
#[test]
fn progress_lines_at_a_terminal_are_whole_and_off_libtests_lines() {
    let at_terminal = |threads: &str| {
        let command = format!(
            "'{}' --exact lifecycle::short_clip --test-threads {threads} --color never",
            env!("CARGO_BIN_EXE_apiconform")
        );
        let out = support::run_program(
            "script",
            &["-qec", &command, "/dev/null"],
            &[],
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        text(&out.stdout).replace('\r', "")
    };
    let shown = at_terminal("2");
    let progress: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains("following job"))
        .collect();
    assert_eq!(progress.len(), 1, "{shown}");
    assert!(
        progress[0].starts_with("    lifecycle::short_clip: following job "),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("test [MUST] lifecycle::short_clip ... ok")),
        "{shown}"
    );
    let single = at_terminal("1");
    assert!(!single.contains("following job"), "{single}");
    assert!(single.contains("lifecycle::short_clip ... ok"), "{single}");
}

/// The CI examples end the run (and write the reports) well before the job's own timeout,
/// which also has to cover the build.
#[test]
fn ci_examples_end_the_run_before_the_job_timeout() {
    for (name, timeout) in [
        ("github-actions.yml", "timeout-minutes: "),
        ("gitlab-ci.yml", "timeout: "),
    ] {
        let example =
            std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        // The last occurrence: the command line, after the comment that explains it.
        let number_after = |key: &str| -> f64 {
            let rest = &example[example
                .rfind(key)
                .unwrap_or_else(|| panic!("{name}: no {key}"))
                + key.len()..];
            rest.chars()
                .take_while(|c| c.is_ascii_digit())
                .collect::<String>()
                .parse()
                .unwrap()
        };
        let job_seconds = number_after(timeout) * 60.0;
        let deadline = number_after("--deadline ");
        assert!(
            deadline <= job_seconds * 0.75,
            "{name}: --deadline {deadline} leaves too little of the job's {job_seconds} s"
        );
    }
}

/// A raw-TCP target whose reply to each request is `answer(request head)`; None holds the
/// connection open without a byte. Returns its base URL and every request head it received.
async fn scripted_target(
    answer: fn(&str) -> Option<&'static str>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&received);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = std::sync::Arc::clone(&log);
            tokio::spawn(async move {
                let mut head = [0u8; 8192];
                let n = stream.read(&mut head).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&head[..n]).to_string();
                let reply = answer(&head);
                log.lock().unwrap().push(head);
                match reply {
                    Some(reply) => {
                        let _ = stream.write_all(reply.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(600)).await,
                }
            });
        }
    });
    (url, received)
}

/// A target that answers the probe and then never answers a `/v1` request: every check
/// that reaches it is still running when the signal comes.
async fn hanging_target() -> String {
    let (url, _) = scripted_target(|head| {
        head.starts_with("GET /health ").then_some(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
        )
    })
    .await;
    url
}

/// Start a run against a hanging target, wait until its checks are running, send `signal`,
/// and return the output, how long the run took after the signal, and the JSON report.
fn interrupted_run(signal: &str) -> (std::process::Output, Duration, serde_json::Value) {
    use std::io::BufRead;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base_url = runtime.block_on(hanging_target());
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("reports/run.json");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apiconform"))
        .args([
            "--base-url",
            &base_url,
            "--key",
            "sk_signal_test",
            "--timeout",
            "300",
        ])
        .arg("--report-json")
        .arg(&report)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read stdout line by line until libtest says the checks are running.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });
    let running = std::time::Instant::now() + QUICK;
    loop {
        let line = lines_rx
            .recv_timeout(running.saturating_duration_since(std::time::Instant::now()))
            .expect("the run starts its checks");
        if line.starts_with("running ") {
            break;
        }
    }
    // Let the first checks send their (unanswered) requests.
    std::thread::sleep(Duration::from_millis(500));
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = std::time::Instant::now();
    let mut stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut bytes);
        bytes
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > QUICK {
            let _ = child.kill();
            panic!("the run did not end within {QUICK:?} of {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = signalled.elapsed();
    let output = std::process::Output {
        status,
        stdout: reader.join().unwrap().into_bytes(),
        stderr: stderr.join().unwrap(),
    };
    let report = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("no report after {signal}: {e}; {}", text(&output.stderr)));
    (output, took, serde_json::from_str(&report).unwrap())
}

#[test]
fn a_signal_ends_the_run_with_its_reports_and_a_documented_code() {
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let (out, took, report) = interrupted_run(signal);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            took < Duration::from_secs(20),
            "took {took:?} after SIG{signal}"
        );
        let said: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains(&format!("interrupted by SIG{signal}")))
            .collect();
        assert_eq!(said.len(), 1, "one line says so: {stderr}");
        assert!(said[0].contains("every report was written"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        support::assert_valid_json_report(&report);
        assert_eq!(report["interrupted"], format!("SIG{signal}"), "{report}");
        let checks = report["checks"].as_array().expect("checks in the report");
        assert_eq!(checks.len(), support::default_check_names().len());
        let interrupted = checks
            .iter()
            .filter(|c| {
                c["outcome"] == "errored"
                    && c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&format!("stopped by SIG{signal}")))
            })
            .count();
        assert!(interrupted > 0, "interrupted checks are errored: {report}");
        // Nothing the hanging target did can pass a check.
        assert!(checks.iter().all(|c| c["outcome"] != "passed"), "{report}");
        assert!(!text(&out.stdout).contains("sk_signal_test"));
    }
}

/// The first lines `apiconform serve ARGS` prints, up to "press Ctrl-C"; the server is then
/// stopped.
fn serve_banner(args: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apiconform"))
        .arg("serve")
        .args(["--port", "0"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = line.starts_with("press Ctrl-C");
            banner.push_str(&line);
            banner.push('\n');
            if done {
                break;
            }
        }
        let _ = tx.send(banner);
    });
    let banner = rx.recv_timeout(QUICK).expect("serve prints its banner");
    let _ = child.kill();
    let _ = child.wait();
    banner
}

#[test]
fn serve_prints_every_key_it_accepts() {
    let defaults = serve_banner(&[]);
    for key in ["sk_test_primary", "sk_test_second", "sk_test_broke"] {
        assert!(defaults.contains(key), "{defaults}");
    }
    let custom = serve_banner(&["--key", "sk_a", "--broke-key", "sk_nothing_left"]);
    let keys = custom
        .lines()
        .find(|l| l.starts_with("keys: "))
        .unwrap_or_else(|| panic!("a keys line: {custom}"));
    assert!(keys.contains("sk_a (tenant A)"), "{keys}");
    assert!(keys.contains("sk_test_second (tenant B)"), "{keys}");
    assert!(keys.contains("sk_nothing_left (no credits"), "{keys}");
}

#[test]
fn completions_and_man_page_come_from_the_flag_definitions() {
    for (shell, marker) in [
        ("bash", "_apiconform()"),
        ("zsh", "#compdef apiconform"),
        ("fish", "complete -c apiconform"),
    ] {
        let out = run_bin(&["completions", shell], &[], QUICK);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        for flag in ["base-url", "report-json", "no-tests"] {
            assert!(script.contains(flag), "{shell} completes --{flag}");
        }
    }
    let man = run_bin(&["man"], &[], QUICK);
    assert_eq!(man.status.code(), Some(0), "{}", text(&man.stderr));
    let page = text(&man.stdout);
    assert!(page.contains(".TH apiconform 1"), "{page}");
    // Every flag and the exit codes, as --help gives them.
    for word in ["base\\-url", "deadline", "143"] {
        assert!(page.contains(word), "the man page mentions {word}");
    }
    let out = run_bin(&["completions", "tcsh"], &[], QUICK);
    assert_one_error_line(&out, "tcsh");
}

#[test]
fn headers_from_the_command_line_reach_every_request_and_secret_ones_stay_masked() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (base_url, received) = runtime.block_on(scripted_target(|_| {
        Some("HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
    }));
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("run.json");
    let out = run_bin(
        &[
            "--base-url",
            &base_url,
            "--key",
            "sk_header_test",
            "--exact",
            "auth::valid_key",
            "-H",
            "X-Tenant: blue",
            "--secret-header",
            "X-Gateway-Token: gw_very_secret_9",
            "--report-json",
            report.to_str().unwrap(),
        ],
        &[],
        QUICK,
    );
    assert_eq!(out.status.code(), Some(101), "{}", text(&out.stderr));
    let heads = received.lock().unwrap().clone();
    assert!(heads.len() >= 2, "the probe and the check: {heads:?}");
    for head in &heads {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("\r\nx-tenant: blue\r\n"), "{head}");
        assert!(
            lower.contains("\r\nx-gateway-token: gw_very_secret_9\r\n"),
            "{head}"
        );
    }
    let report = std::fs::read_to_string(&report).unwrap();
    for output in [text(&out.stdout), text(&out.stderr), report.clone()] {
        assert!(
            !output.contains("gw_very_secret_9"),
            "the secret header leaked: {output}"
        );
        assert!(
            !output.contains("sk_header_test"),
            "the key leaked: {output}"
        );
    }
    assert!(
        report.contains(r#"-H \"x-gateway-token: $HEADER_X_GATEWAY_TOKEN\""#),
        "the curl line keeps the secret a shell variable: {report}"
    );
    for (bad, says) in [
        ("NoColon", "expected `Name: value`"),
        ("X-Api-Key: sk_other", "the suite's auth header"),
        ("Bad Name: x", "not a valid header name"),
    ] {
        let out = run_bin(&["--list", "-H", bad], &[], QUICK);
        assert_one_error_line(&out, says);
    }
    let out = run_bin(
        &["--list", "--secret-header", "X-Token: a\u{7}b"],
        &[],
        QUICK,
    );
    assert_one_error_line(&out, "--secret-header");
    assert!(!text(&out.stderr).contains("a\u{7}b"));
}

#[test]
fn webhook_flags_are_checked_before_any_request() {
    let public_only = run_bin(
        &["--webhook-public-url", "https://hooks.example.com/x"],
        &[],
        QUICK,
    );
    assert_one_error_line(&public_only, "--webhook-listen");
    let not_http = run_bin(
        &[
            "--webhook-listen",
            "127.0.0.1:0",
            "--webhook-public-url",
            "ftp://hooks.example.com/x",
        ],
        &[],
        QUICK,
    );
    assert_one_error_line(
        &not_http,
        "--webhook-public-url `ftp://hooks.example.com/x`",
    );
    let nowhere = run_bin(
        &[
            "--base-url",
            "https://api.example.com",
            "--key",
            "sk_unused",
            "--webhook-listen",
            "0.0.0.0:8787",
        ],
        &[],
        QUICK,
    );
    assert_one_error_line(
        &nowhere,
        "listens on every address: give --webhook-public-url",
    );
    let empty = run_bin::<&str>(&[], &[("APICONFORM_WEBHOOK_SECRET", " ")], QUICK);
    // An empty variable counts as unset: the embedded run goes on (and passes).
    assert_eq!(empty.status.code(), Some(0), "{}", text(&empty.stderr));
}

#[test]
fn webhook_checks_are_ignored_with_the_flag_that_enables_them() {
    let out = run_bin(
        &[
            "--dry-run",
            "--base-url",
            "https://api.example.com",
            "--allow-writes",
            "webhooks::",
        ],
        &[],
        QUICK,
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("webhooks::order [MUST]: would be ignored: needs a webhook receiver the target can reach: pass --webhook-listen ADDR"),
        "{stdout}"
    );
    let listening = run_bin(
        &[
            "--dry-run",
            "--base-url",
            "https://api.example.com",
            "--allow-writes",
            "--webhook-listen",
            "0.0.0.0:8787",
            "--webhook-public-url",
            "https://hooks.example.com/apiconform",
            "webhooks::",
        ],
        &[],
        QUICK,
    );
    let stdout = text(&listening.stdout);
    assert!(
        stdout.contains("webhooks::order [MUST]:\n")
            && stdout.contains("webhook_url set to the receiver"),
        "{stdout}"
    );
}

#[test]
fn the_embedded_run_verifies_signed_webhooks_and_masks_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let secret = "whsec_cli_visible_0123456789";
    let out = run_bin(
        &[
            "webhooks::",
            "-vv",
            "--report-json",
            report.to_str().unwrap(),
        ],
        &[("APICONFORM_WEBHOOK_SECRET", secret)],
        Duration::from_secs(120),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for check in [
        "webhooks::order",
        "webhooks::event_header",
        "webhooks::delivery_ids",
        "webhooks::timestamp",
        "webhooks::signature",
        "webhooks::names_job",
        "webhooks::recorded",
        "webhooks::retry",
    ] {
        assert!(check_line(&stdout, check).ends_with(" ok"), "{stdout}");
    }
    let report = std::fs::read_to_string(&report).unwrap();
    for output in [&stdout, &stderr, &report] {
        assert!(
            !output.contains(secret),
            "the webhook secret leaked:\n{output}"
        );
    }
}
