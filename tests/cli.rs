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
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"no_such_kind\"\n", "2:1: check `a::b`: unknown kind `no_such_kind`"),
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { path = \"/v1/{nope}\" }\n", "unknown placeholder `{nope}`"),
        ("name = \"x\"\n[[check]]\nname = \"a::b\"\nkind = \"auth_accepted\"\nrequest = { pth = \"/\" }\n", "unknown field `pth`"),
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

#[test]
fn a_closed_stdout_ends_list_and_dry_run_quietly() {
    use std::io::BufRead;
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
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apiconform"))
            .args([mode, "--suite", &suite])
            .env("RUST_BACKTRACE", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{mode}: no first line");
        // The reader (and with it the pipe) is dropped here.
        let out = child.wait_with_output().unwrap();
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
