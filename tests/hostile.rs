//! The hostile matrix: the binary, with the full default suite, against a server that breaks
//! HTTP in one way per mode (`support/hostile.rs`). Whatever the server does, the run ends
//! within its bound, every check gets an outcome, the exit code is the documented one, nothing
//! panics, and the key appears nowhere in the output nor at another origin.
//!
//! The expectations are one table of data (`MATRIX`); the test prints a summary table for
//! README and writes it to `$CARGO_TARGET_TMPDIR/hostile-summary.md`, and keeps each run's
//! stdout and stderr in `$CARGO_TARGET_TMPDIR/hostile-runs/`.
//! `HOSTILE_MODES=hang,slow-drip cargo test --test hostile -- --nocapture` runs some modes only.

#[path = "support/hostile.rs"]
mod hostile_server;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apiconform::suite::{Suite, SuiteSource, BUNDLED_SCHEMAS, BUNDLED_SUITE};
use hostile_server::{HostileServer, Mode, Origin};

/// A run must end within this (the suite's timeouts are 2 s per request, 1 s to connect).
const RUN_BOUND: Duration = Duration::from_secs(90);
/// A run still going after this is killed and counted as a hang (`HOSTILE_HARD_LIMIT_SECS`
/// raises it, to measure how long a run that overruns really takes).
fn hard_limit() -> Duration {
    let secs = std::env::var("HOSTILE_HARD_LIMIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}
/// Runs at once (each is mostly waiting on timeouts).
const PARALLEL: usize = 4;
/// No run prints more than this (a 5 MiB body or a 64 KiB header must not be echoed).
const MAX_OUTPUT_BYTES: usize = 512 * 1024;

/// Exit codes, as documented in README and `--help`.
const EXIT_CHECK_FAILED: i32 = 101;
const EXIT_UNREACHABLE: i32 = 3;

/// What the harness must do against one mode.
struct Expectation {
    mode: Mode,
    /// 101 when the probe got an HTTP response (some check then fails); 3 only when the probe
    /// got no HTTP response at all.
    exit: i32,
    /// What the harness should report, in words (for the table).
    reports: &'static str,
    /// The output (stdout for 101, stderr for 3) must contain one of these, case-insensitive:
    /// the words that name what was wrong.
    names_it: &'static [&'static str],
    /// A tighter bound than [`RUN_BOUND`] where the mode is about ending early.
    bound: Option<Duration>,
}

/// Words that say a body is not JSON.
const NOT_JSON: &[&str] = &["not json", "not valid json", "invalid json", "not a json"];

/// The hostile matrix, as data: one row per mode.
const MATRIX: &[Expectation] = &[
    Expectation {
        mode: Mode::NonJson,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: body is not JSON (excerpt `hello`)",
        names_it: NOT_JSON,
        bound: None,
    },
    Expectation {
        mode: Mode::InvalidUtf8,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: body is not JSON / not UTF-8",
        names_it: &["not json", "not valid json", "invalid json", "utf-8"],
        bound: None,
    },
    Expectation {
        mode: Mode::TruncatedJson,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: body is not JSON (truncated)",
        names_it: &[
            "not json",
            "not valid json",
            "invalid json",
            "truncated",
            "eof",
        ],
        bound: None,
    },
    Expectation {
        mode: Mode::WrongContentType,
        exit: EXIT_CHECK_FAILED,
        reports: "schema checks fail naming the content type text/html",
        names_it: &["text/html"],
        bound: None,
    },
    Expectation {
        mode: Mode::HtmlError500,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: status 500, body not JSON (an HTML page)",
        names_it: &["got 500 from"],
        bound: None,
    },
    Expectation {
        mode: Mode::Empty200,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: wrong status and an empty body, said as such",
        names_it: &["empty"],
        bound: None,
    },
    Expectation {
        mode: Mode::Empty401,
        exit: EXIT_CHECK_FAILED,
        reports: "auth checks fail: 401 without the error envelope (empty body), said as such",
        names_it: &["empty"],
        bound: None,
    },
    Expectation {
        mode: Mode::DuplicateHeaders,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail; the duplicated Content-Type / X-Request-Id is named",
        names_it: &["duplicate", "more than one", "multiple", "twice"],
        bound: None,
    },
    Expectation {
        mode: Mode::HugeHeaderValue,
        exit: EXIT_CHECK_FAILED,
        reports:
            "checks judge the replies as usual (status 200 where 401 is due); header not echoed",
        names_it: &["expected status"],
        bound: None,
    },
    Expectation {
        mode: Mode::ManyHeaders,
        exit: EXIT_CHECK_FAILED,
        reports: "checks error: transport error naming the oversized head",
        names_it: &["too large", "too many headers"],
        bound: None,
    },
    Expectation {
        mode: Mode::LargeBody,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: body over the 1 MiB cap is a finding, read no further",
        names_it: &[
            "larger than",
            "exceeds",
            "1048576",
            "1 mib",
            "max_body_bytes",
            "body cap",
        ],
        bound: None,
    },
    Expectation {
        mode: Mode::ChunkedStopsEarly,
        exit: EXIT_CHECK_FAILED,
        reports: "checks error: body cut short (connection closed mid-chunk)",
        names_it: &["closed", "eof", "end of file", "incomplete"],
        bound: None,
    },
    Expectation {
        mode: Mode::ChunkedStopsEarlyProbe,
        exit: EXIT_CHECK_FAILED,
        reports:
            "the probe got a status line, so the target is reachable; checks error: body cut short",
        names_it: &["closed", "eof", "end of file", "incomplete"],
        bound: None,
    },
    Expectation {
        mode: Mode::ResetMidBody,
        exit: EXIT_CHECK_FAILED,
        reports: "checks error: connection reset while reading the body",
        names_it: &["reset"],
        bound: None,
    },
    Expectation {
        mode: Mode::ResetImmediately,
        exit: EXIT_UNREACHABLE,
        reports: "exit 3: cannot reach, connection reset",
        names_it: &["reset"],
        bound: None,
    },
    Expectation {
        mode: Mode::Continue100ThenNothing,
        exit: EXIT_CHECK_FAILED,
        reports: "checks error: timed out after 2 s (only a 1xx came)",
        names_it: &["timed out after 2 s", "100"],
        bound: None,
    },
    Expectation {
        mode: Mode::SwitchingProtocols101,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail or error naming the 101",
        names_it: &["101"],
        bound: None,
    },
    Expectation {
        mode: Mode::RedirectOtherOrigin,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: 307 shown as what it is, not followed; nothing reaches 127.0.0.2",
        names_it: &["307"],
        bound: None,
    },
    Expectation {
        mode: Mode::Hang,
        exit: EXIT_UNREACHABLE,
        reports: "exit 3: cannot reach, timed out after 2 s",
        names_it: &["timed out after 2 s"],
        bound: None,
    },
    Expectation {
        mode: Mode::HangAfterProbe,
        exit: EXIT_CHECK_FAILED,
        reports: "checks error: timed out after 2 s",
        names_it: &["timed out after 2 s"],
        bound: None,
    },
    Expectation {
        mode: Mode::SlowDrip,
        exit: EXIT_CHECK_FAILED,
        reports: "checks error: timed out after 2 s",
        names_it: &["timed out after 2 s"],
        bound: None,
    },
    Expectation {
        mode: Mode::CloseImmediately,
        exit: EXIT_UNREACHABLE,
        reports: "exit 3: cannot reach, connection closed before a response",
        names_it: &["closed", "eof", "end of file", "incomplete"],
        bound: None,
    },
    Expectation {
        mode: Mode::Http10NoLength,
        exit: EXIT_CHECK_FAILED,
        reports: "read to EOF and judged as usual (status 200 where 401 is due)",
        names_it: &["expected status"],
        bound: None,
    },
    Expectation {
        mode: Mode::RateLimited429,
        exit: EXIT_CHECK_FAILED,
        reports: "checks fail: 429 (Retry-After capped at the suite's 2 s), run stays in its bound",
        names_it: &["429"],
        bound: None,
    },
    Expectation {
        mode: Mode::Unparsable429,
        exit: EXIT_CHECK_FAILED,
        reports: "the documented schedule, then the run's 10 s for waiting on 429s is spent: checks error saying so",
        names_it: &["max_rate_limit_wait_seconds"],
        // Every 429 has brought the pace down to its floor (0.5 requests a second), so each
        // check's first request waits about 2 s: the bound grows with the suite's checks.
        bound: Some(Duration::from_secs(100)),
    },
    Expectation {
        mode: Mode::BodyStallsOpen,
        exit: EXIT_CHECK_FAILED,
        reports: "3 timeouts in a row: the target stopped answering, the other checks error at once",
        names_it: &["the target stopped answering"],
        bound: Some(Duration::from_secs(30)),
    },
    Expectation {
        mode: Mode::UnknownJobState,
        exit: EXIT_CHECK_FAILED,
        reports: "lifecycle checks fail at once naming the state \"done\" and the known states",
        names_it: &["in state \"done\", which the suite does not know"],
        bound: Some(Duration::from_secs(30)),
    },
    Expectation {
        mode: Mode::JobsNeverFinish,
        exit: EXIT_CHECK_FAILED,
        reports: "one job deadline (15 s) is spent; the other waits end after a short grace",
        names_it: &["did not reach a terminal state within 15 s"],
        bound: Some(Duration::from_secs(45)),
    },
];

/// A key unique to this test run, so any occurrence in the output is a leak.
fn secret_key() -> String {
    format!(
        "sk_hostile_{:016x}{:08x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
        std::process::id()
    )
}

/// Replace `key = old` with `key = new` in the suite text; the line must exist.
fn set_value(text: &str, key: &str, old: &str, new: &str) -> String {
    let from = format!("{key} = {old}");
    assert!(
        text.lines().any(|l| l.trim_start().starts_with(&from)),
        "the bundled suite has no `{from}` line any more; update the hostile test"
    );
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with(&from) {
                l.replacen(&from, &format!("{key} = {new}"), 1)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The bundled suite with short timeouts in `dir/suites/`, its schemas in `dir/schemas/`.
fn write_suite(dir: &Path) -> PathBuf {
    let mut text = BUNDLED_SUITE.to_string();
    text = set_value(&text, "timeout_seconds", "30.0", "2.0");
    text = set_value(&text, "connect_timeout_seconds", "10.0", "1.0");
    text = set_value(&text, "max_retry_after_seconds", "60", "2");
    text = set_value(&text, "max_rate_limit_wait_seconds", "180.0", "10.0");
    text = set_value(&text, "poll_interval_seconds", "2.0", "0.5");
    // Every job deadline, the lifecycle inputs' too: a job that never finishes costs 15 s.
    text = text
        .replace("deadline_seconds = 300.0", "deadline_seconds = 15.0")
        .replace("deadline_seconds = 900.0", "deadline_seconds = 15.0");
    let suites = dir.join("suites");
    std::fs::create_dir_all(&suites).unwrap();
    let suite_path = suites.join("hostile.toml");
    std::fs::write(&suite_path, &text).unwrap();
    for (relative, schema) in BUNDLED_SCHEMAS {
        let path = suites.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, schema).unwrap();
    }
    let suite = Suite::parse(&text, SuiteSource::File(suite_path.clone())).expect("suite parses");
    assert_eq!(suite.settings.target.timeout_seconds, 2.0);
    assert_eq!(suite.settings.target.connect_timeout_seconds, 1.0);
    assert_eq!(suite.settings.target.max_retry_after_seconds, 2);
    suite_path
}

/// The checks the binary plans for `suite`, from `--list` (which sends no request; one
/// declaration may expand to several checks).
fn planned_checks(suite: &Path, key_file: &Path, dir: &Path) -> Vec<String> {
    let run = run_bin(
        &[
            "--list",
            "--base-url",
            "http://127.0.0.1:9",
            "--key-file",
            &key_file.display().to_string(),
            "--suite",
            &suite.display().to_string(),
        ],
        dir,
        Duration::from_secs(30),
    );
    assert_eq!(run.exit, Some(0), "--list failed: {}", run.stderr);
    let names: Vec<String> = run
        .stdout
        .lines()
        .filter_map(|l| {
            l.split_once(": test")
                .map(|(name, _)| name.trim().to_string())
        })
        .collect();
    let text = std::fs::read_to_string(suite).unwrap();
    let parsed = Suite::parse(&text, SuiteSource::File(suite.to_path_buf())).unwrap();
    let expected: Vec<String> = parsed
        .checks
        .iter()
        .flat_map(|decl| apiconform::checks::build(decl, &parsed).unwrap())
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names, expected,
        "--list shows every check of the suite, in order"
    );
    names
}

/// What one run of the binary left behind.
struct Run {
    exit: Option<i32>,
    elapsed: Duration,
    killed: bool,
    stdout: String,
    stderr: String,
}

/// Run the binary with `args`, killing it if it outlives `limit`. Output goes to files, not
/// pipes, so a chatty run cannot block on a full pipe while we wait for it.
fn run_bin(args: &[&str], dir: &Path, limit: Duration) -> Run {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let mut command = Command::new(env!("CARGO_BIN_EXE_apiconform"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap());
    command
        .env_remove("APICONFORM_API_KEY")
        .env_remove("APICONFORM_SECOND_API_KEY")
        .env_remove("APICONFORM_BROKE_API_KEY")
        .env_remove("RUST_LOG")
        // A panic anywhere prints its backtrace, which the matrix looks for.
        .env("RUST_BACKTRACE", "1");
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn apiconform");
    let mut killed = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            killed = true;
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Run {
        exit: status.and_then(|s| s.code()),
        elapsed: started.elapsed(),
        killed,
        stdout: read(&out_path),
        stderr: read(&err_path),
    }
}

/// The libtest lines of a run: check name and outcome (`ok`, `FAILED`, `ignored...`).
fn check_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("test ")?;
            let (name, outcome) = rest.split_once(" ... ")?;
            let name = name.trim();
            // `[MUST]   auth::valid_key` -> `auth::valid_key`
            let name = match name.strip_prefix('[') {
                Some(tagged) => tagged.split_once(']')?.1.trim(),
                None => name,
            };
            Some((name.to_string(), outcome.trim().to_string()))
        })
        .collect()
}

/// One mode's result.
struct Row {
    mode: Mode,
    expected_exit: i32,
    exit: Option<i32>,
    elapsed: Duration,
    checks_with_outcome: usize,
    checks_total: usize,
    outcomes: String,
    hung: bool,
    panicked: bool,
    key_leaked: bool,
    other_origin_hits: usize,
    problems: Vec<String>,
}

fn run_mode(
    expectation: &Expectation,
    checks: &[String],
    suite: &Path,
    key_file: &Path,
    key: &str,
) -> Row {
    let mode = expectation.mode;
    let dir = tempfile::tempdir().unwrap();
    let server = HostileServer::start(mode);
    let run = run_bin(
        &[
            "--base-url",
            &server.base_url,
            "--key-file",
            &key_file.display().to_string(),
            "--suite",
            &suite.display().to_string(),
            "--allow-writes",
            "--rate",
            "50",
        ],
        dir.path(),
        hard_limit(),
    );
    let received = server.received();
    drop(server);
    // Keep each run's output for whoever reads a failure.
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-runs");
    let _ = std::fs::create_dir_all(&keep);
    let _ = std::fs::write(keep.join(format!("{}.stdout", mode.name())), &run.stdout);
    let _ = std::fs::write(keep.join(format!("{}.stderr", mode.name())), &run.stderr);

    let mut problems = Vec::new();
    let output = format!("{}\n{}", run.stdout, run.stderr);
    let bound = expectation.bound.unwrap_or(RUN_BOUND);
    let hung = run.killed || run.elapsed > bound;
    if run.killed {
        problems.push(format!("hung: killed after {:.0?}", run.elapsed));
    } else if run.elapsed > bound {
        problems.push(format!(
            "took {:.1?}, more than the {bound:?} bound",
            run.elapsed
        ));
    }
    if run.exit != Some(expectation.exit) && !run.killed {
        problems.push(format!(
            "exit code {:?}, expected {}",
            run.exit, expectation.exit
        ));
    }
    let panicked = output.contains("panicked") || output.contains("stack backtrace");
    if panicked {
        let line = output
            .lines()
            .find(|l| l.contains("panicked") || l.contains("stack backtrace"))
            .unwrap_or("");
        problems.push(format!("panic: {line}"));
    }
    let key_leaked = output.contains(key);
    if key_leaked {
        problems.push("the key appears in the output".into());
    }
    if output.len() > MAX_OUTPUT_BYTES {
        problems.push(format!("{} bytes of output", output.len()));
    }

    // Every check has exactly one outcome line (when the run got past the probe).
    let lines = check_lines(&run.stdout);
    let mut with_outcome = 0;
    let mut tally = std::collections::BTreeMap::<&str, usize>::new();
    if expectation.exit == EXIT_CHECK_FAILED {
        for name in checks {
            let found: Vec<_> = lines.iter().filter(|(n, _)| n == name).collect();
            match found.as_slice() {
                [(_, outcome)] => {
                    let kind = if outcome == "ok" {
                        "ok"
                    } else if outcome == "FAILED" {
                        "FAILED"
                    } else if outcome.starts_with("ignored") {
                        "ignored"
                    } else {
                        problems.push(format!("{name}: outcome `{outcome}`"));
                        continue;
                    };
                    *tally.entry(kind).or_default() += 1;
                    with_outcome += 1;
                }
                [] if !run.killed => problems.push(format!("{name}: no outcome line")),
                [] => {}
                _ => problems.push(format!("{name}: {} outcome lines", found.len())),
            }
        }
        if !run
            .stdout
            .contains(&format!("running {} tests", checks.len()))
            && !run.killed
        {
            problems.push(format!("no `running {} tests` line", checks.len()));
        }
    } else {
        if !lines.is_empty() {
            problems.push(format!(
                "{} check lines, expected none (the run stops at the probe)",
                lines.len()
            ));
        }
        if !run.stderr.contains("cannot reach") {
            problems.push("stderr does not say `cannot reach`".into());
        }
        if run.stderr.trim_end().lines().count() != 1 {
            problems.push(format!(
                "stderr is not one line: {:?}",
                run.stderr.trim_end()
            ));
        }
    }
    let reported = if expectation.exit == EXIT_CHECK_FAILED {
        &run.stdout
    } else {
        &run.stderr
    }
    .to_ascii_lowercase();
    if !run.killed && !expectation.names_it.iter().any(|w| reported.contains(w)) {
        problems.push(format!(
            "the output names none of {:?} ({})",
            expectation.names_it, expectation.reports
        ));
    }

    // The server side: the key went where it was due, and nowhere else.
    let main_hits = received.iter().filter(|r| r.origin == Origin::Main).count();
    if main_hits == 0 {
        problems.push("the server received no request".into());
    }
    if expectation.exit == EXIT_CHECK_FAILED
        && !received
            .iter()
            .any(|r| r.origin == Origin::Main && r.header("x-api-key") == Some(key))
    {
        problems.push("no request carried the key (is the test still testing?)".into());
    }
    let other: Vec<_> = received
        .iter()
        .filter(|r| r.origin == Origin::Other)
        .collect();
    let key_elsewhere = other
        .iter()
        .filter(|r| r.headers.iter().any(|(_, v)| v.contains(key)))
        .count();
    if key_elsewhere > 0 {
        problems.push(format!(
            "the key was sent to the other origin {key_elsewhere} times"
        ));
    }
    if !other.is_empty() {
        problems.push(format!(
            "a redirect was followed: {} requests reached the other origin (first: {})",
            other.len(),
            other[0].request_line
        ));
    }

    if !problems.is_empty() {
        // Enough of the run to see what happened.
        let failed: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.starts_with("---- ") || l.contains("error:") || l.contains("expected"))
            .take(12)
            .collect();
        problems.push(format!(
            "stderr: {}\n      stdout excerpt:\n        {}",
            shorten(run.stderr.trim_end(), 600),
            failed
                .iter()
                .map(|l| shorten(l, 300))
                .collect::<Vec<_>>()
                .join("\n        ")
        ));
    }
    Row {
        mode,
        expected_exit: expectation.exit,
        exit: run.exit,
        elapsed: run.elapsed,
        checks_with_outcome: with_outcome,
        checks_total: if expectation.exit == EXIT_CHECK_FAILED {
            checks.len()
        } else {
            0
        },
        outcomes: tally
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        hung,
        panicked,
        key_leaked: key_leaked || key_elsewhere > 0,
        other_origin_hits: other.len(),
        problems,
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(max).collect::<String>())
    }
}

/// The summary as a Markdown table, ready for README.
fn summary(rows: &[Row]) -> String {
    let mut out = String::from(
        "| hostile behaviour | expected exit | exit | time | checks with an outcome | what the harness must report | verdict |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let expectation = MATRIX.iter().find(|e| e.mode == row.mode).unwrap();
        let checks = if row.checks_total == 0 {
            "(stops at the probe)".to_string()
        } else {
            format!(
                "{}/{} ({})",
                row.checks_with_outcome, row.checks_total, row.outcomes
            )
        };
        out.push_str(&format!(
            "| {} (`{}`) | {} | {} | {:.1} s | {} | {} | {} |\n",
            row.mode.description(),
            row.mode.name(),
            row.expected_exit,
            row.exit.map_or("killed".into(), |c| c.to_string()),
            row.elapsed.as_secs_f64(),
            checks,
            expectation.reports,
            if row.problems.is_empty() {
                "as documented"
            } else {
                "**WRONG**"
            },
        ));
    }
    let count = |f: fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
    out.push_str(&format!(
        "\nbehaviours tried: {}, panics: {}, hangs: {}, key leaks: {}, redirects followed: {}, \
         wrong exit codes: {}, runs as documented: {}\n",
        rows.len(),
        count(|r| r.panicked),
        count(|r| r.hung),
        count(|r| r.key_leaked),
        count(|r| r.other_origin_hits > 0),
        count(|r| !r.hung && r.exit != Some(r.expected_exit)),
        count(|r| r.problems.is_empty()),
    ));
    out
}

#[test]
fn matrix_covers_every_mode_once() {
    for mode in Mode::ALL {
        let rows = MATRIX.iter().filter(|e| e.mode == *mode).count();
        assert_eq!(rows, 1, "{} has {rows} rows in MATRIX", mode.name());
    }
    assert_eq!(MATRIX.len(), Mode::ALL.len());
    for e in MATRIX {
        assert!(matches!(e.exit, EXIT_CHECK_FAILED | EXIT_UNREACHABLE));
        assert!(!e.names_it.is_empty());
        // Exit 3 is only right when the probe gets no HTTP response at all.
        if e.exit == EXIT_UNREACHABLE {
            assert!(e.mode.hits_probe(), "{}", e.mode.name());
        }
    }
}

#[test]
fn hostile_server_serves_each_mode_and_records_requests() {
    use std::io::{Read, Write};
    // The redirect mode: a 307 to the other origin, and the request line recorded.
    let server = HostileServer::start(Mode::RedirectOtherOrigin);
    let address = server.base_url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Api-Key: k\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    let other = server.other_origin.clone().unwrap();
    assert!(reply.starts_with("HTTP/1.1 307"), "{reply}");
    assert!(
        reply.contains(&format!("Location: {other}/v1/jobs")),
        "{reply}"
    );
    let received = server.received_at(Origin::Main);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path(), "/v1/jobs");
    assert_eq!(received[0].header("X-API-KEY"), Some("k"));
    assert!(server.received_at(Origin::Other).is_empty());

    // Hang: nothing comes back, and dropping the server ends the connection.
    let server = HostileServer::start(Mode::Hang);
    let address = server.base_url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(stream.read(&mut buf).is_err(), "a hanging server answered");
    drop(server);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn hostile_matrix() {
    let only: Option<Vec<String>> = std::env::var("HOSTILE_MODES")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    if let Some(only) = &only {
        for name in only {
            assert!(Mode::from_name(name).is_some(), "no mode `{name}`");
        }
    }
    let selected: Vec<&Expectation> = MATRIX
        .iter()
        .filter(|e| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|n| n == e.mode.name()))
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let suite = write_suite(dir.path());
    let key = secret_key();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let checks = planned_checks(&suite, &key_file, dir.path());

    // The slowest modes first, so the pool drains evenly.
    let mut order: Vec<usize> = (0..selected.len()).collect();
    order.sort_by_key(|&i| !matches!(selected[i].mode, Mode::RateLimited429 | Mode::SlowDrip));
    let next = AtomicUsize::new(0);
    let rows: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL.min(selected.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&index) = order.get(i) else {
                    return;
                };
                let row = run_mode(selected[index], &checks, &suite, &key_file, &key);
                rows.lock().unwrap().push((index, row));
            });
        }
    });
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();

    let table = summary(&rows);
    println!("{table}");
    let _ = std::fs::write(
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostile-summary.md"),
        &table,
    );
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| format!("{}:\n    {}", r.mode.name(), r.problems.join("\n    ")))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} hostile behaviours were not handled as documented (table above):\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

/// `--deadline` ends the run within a few seconds of it, whatever the server does: here every
/// `/v1` request hangs, with the bundled suite's 30 s timeouts, and the deadline is 4 s.
#[test]
fn the_deadline_is_met_against_a_server_that_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{}\n", secret_key())).unwrap();
    let server = HostileServer::start(Mode::HangAfterProbe);
    let run = run_bin(
        &[
            "--base-url",
            &server.base_url,
            "--key-file",
            &key_file.display().to_string(),
            "--allow-writes",
            "--deadline",
            "4",
        ],
        dir.path(),
        Duration::from_secs(60),
    );
    drop(server);
    assert!(
        !run.killed && run.elapsed < Duration::from_secs(12),
        "the run took {:.1?} with --deadline 4",
        run.elapsed
    );
    assert_eq!(run.exit, Some(EXIT_CHECK_FAILED), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("the run's deadline (--deadline) passed"),
        "{}",
        run.stdout
    );
}
