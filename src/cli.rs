//! The command line: parse arguments, set the run up, run it, and map the result to an exit code.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use libtest_mimic::{Arguments, ColorSetting, FormatSetting};

use crate::client::{ClientConfig, HttpClient};
use crate::context::{RunContext, RunOptions};
use crate::error::{config_error, AppError, EXIT_CHECK_FAILED, EXIT_OK, EXIT_USAGE};
use crate::record::RunRecord;
use crate::reference::{Fault, RunningServer, ServerConfig, Variant};
use crate::report::{self, ReportPaths, RunInfo};
use crate::runner::Plan;
use crate::schemas::SchemaSet;
use crate::suite::Suite;

const EXIT_CODES: &str = "\
Exit codes:
  0    every check passed (SHOULD findings only warn, unless --strict)
  101  a check failed or could not reach a verdict
  2    usage or configuration error (bad flag, unreadable or malformed suite, schema that
       does not compile), or a report that cannot be written
  3    the target could not be reached at all
  4    the filters selected no check to run (with --no-tests=fail, the default)
  141  stdout was closed before the output ended (e.g. `--list | head -1`): a quiet stop";

/// The embedded server regains this many requests per second after a burst, and the run
/// paces itself a little below it, so only the burst meets the limit.
const EMBEDDED_REFILL: f64 = 60.0;
const EMBEDDED_PACE: f64 = 50.0;
/// The embedded server is on this machine: the burst may go as fast as the machine allows,
/// well past the refill whatever else the machine is doing.
const EMBEDDED_MAX_RATE: f64 = 1000.0;
/// Checks mostly wait on the network, so the embedded run uses more threads than CPUs.
const EMBEDDED_TEST_THREADS: usize = 4;

const ABOUT: &str = "Contract conformance test harness for HTTP JSON APIs";

const LONG_ABOUT: &str = "\
Contract conformance test harness for HTTP JSON APIs.

Runs a suite of checks (auth, schemas, errors, request ids, ...) against an API and reports
each one like `cargo test`. With no --base-url it starts its embedded reference server and runs
the default suite against that, so you can see it work in one command.

The API key is never printed: it is shown as $API_KEY (and the second key as $SECOND_API_KEY).";

#[derive(Parser, Debug)]
#[command(name = "apiconform", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXIT_CODES, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the reference server alone (a sandbox for client developers) and print its base URL.
    Serve(ServeArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Base URL of the API under test, e.g. https://staging.example.com. Without it, apiconform
    /// tests its embedded reference server.
    #[arg(long, value_name = "URL", help_heading = "Target")]
    base_url: Option<String>,
    /// API key of the tenant under test. Prefer --key-file or APICONFORM_API_KEY, which keep the
    /// key out of shell history. Precedence: --key, --key-file, APICONFORM_API_KEY.
    #[arg(long, value_name = "KEY", help_heading = "Target")]
    key: Option<String>,
    /// Read the API key from a file (surrounding whitespace is trimmed).
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    key_file: Option<PathBuf>,
    /// API key of a second tenant, for the cross-tenant checks (also APICONFORM_SECOND_API_KEY).
    #[arg(long, value_name = "KEY", help_heading = "Target")]
    second_key: Option<String>,
    /// Read the second tenant's key from a file.
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    second_key_file: Option<PathBuf>,
    /// API key of a tenant with no credits, for the 402 checks (also APICONFORM_BROKE_API_KEY).
    #[arg(long, value_name = "KEY", help_heading = "Target")]
    broke_key: Option<String>,
    /// Read the no-credit tenant's key from a file.
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    broke_key_file: Option<PathBuf>,
    /// Suite file (TOML). Default: the bundled default suite (suites/default.toml).
    #[arg(long, value_name = "PATH", help_heading = "Suite")]
    suite: Option<PathBuf>,
    /// An existing job to read, for the checks that need one when writes are not allowed.
    #[arg(long, value_name = "ID", help_heading = "Suite")]
    job_id: Option<String>,
    /// Let checks create jobs and spend credits. Without it they are ignored, with the reason.
    #[arg(long, help_heading = "Suite")]
    allow_writes: bool,
    /// SHOULD-level findings fail the run instead of warning.
    #[arg(long, help_heading = "Suite")]
    strict: bool,
    /// A file the target writes its logs to; request and job ids the run saw must appear in it.
    #[arg(long, value_name = "PATH", help_heading = "Suite")]
    logs: Option<PathBuf>,
    /// Requests per second for every check but the rate-limit burst (default: the suite's).
    #[arg(long, value_name = "N", help_heading = "Suite")]
    rate: Option<f64>,
    /// Stop sending after this many requests in all (the burst included); the run then ends
    /// with its own message.
    #[arg(long, value_name = "N", default_value_t = crate::client::DEFAULT_MAX_REQUESTS, help_heading = "Limits")]
    max_requests: u64,
    /// Never send more than this many requests per second, the burst included [default: 100;
    /// 1000 against the embedded server, which is on this machine].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    max_rate: Option<f64>,
    /// The whole run ends within this many seconds; checks still running then are reported
    /// as errored ("deadline").
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 1800.0,
        help_heading = "Limits"
    )]
    deadline: f64,
    /// Total time allowed for one request, in seconds (default: the suite's, 30).
    #[arg(long, value_name = "SECS", help_heading = "Limits")]
    timeout: Option<f64>,
    /// Time allowed to connect, in seconds (default: the suite's, 10).
    #[arg(long, value_name = "SECS", help_heading = "Limits")]
    connect_timeout: Option<f64>,
    /// Print the requests each check would send, marking side effects, and send nothing.
    #[arg(
        long,
        conflicts_with = "list",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    dry_run: bool,
    /// Allow sending the key over plain http:// to a host that is not loopback.
    #[arg(long, help_heading = "Limits")]
    allow_insecure_http: bool,
    /// Log to stderr: -v for each retry and wait, -vv for every exchange (or set RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output")]
    verbose: u8,
    /// Log lines as text for people or as JSON objects (one per line) for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, help_heading = "Output")]
    log_format: LogFormat,

    /// Write a JUnit XML report: one test case per check, one test suite per area, evidence in
    /// system-out (for the test reports of GitHub Actions, GitLab and Jenkins).
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    junit: Option<PathBuf>,
    /// Write the JSON report: run info, and per check its outcome, message and evidence
    /// (exchanges and a curl line); documented in schemas/report.schema.json.
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    report_json: Option<PathBuf>,
    /// Write a Markdown summary (tables per area, failures first), e.g. to $GITHUB_STEP_SUMMARY.
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    summary_md: Option<PathBuf>,

    /// Run only checks whose name contains a FILTER (e.g. `auth::`); with several, a check
    /// any of them matches is run.
    #[arg(
        value_name = "FILTER",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    filters: Vec<String>,
    /// What to do when the filters select no check to run: `fail` (exit 4; a mistyped filter
    /// in CI must not pass by running nothing), `warn` (say so, exit 0) or `pass` (exit 0).
    #[arg(
        long,
        value_enum,
        value_name = "WHAT",
        default_value_t = NoTests::Fail,
        help_heading = "Selecting checks (as in cargo test)"
    )]
    no_tests: NoTests,
    /// FILTER must match a check name exactly.
    #[arg(long, help_heading = "Selecting checks (as in cargo test)")]
    exact: bool,
    /// Skip checks whose name contains FILTER (repeatable).
    #[arg(
        long,
        value_name = "FILTER",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    skip: Vec<String>,
    /// List the checks (with level and what each needs) and exit without sending a request.
    #[arg(long, help_heading = "Selecting checks (as in cargo test)")]
    list: bool,
    /// Run only the checks the suite marks `ignored = true` (slow or costly ones).
    #[arg(
        long,
        conflicts_with = "include_ignored",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    ignored: bool,
    /// Run checks marked ignored too.
    #[arg(long, help_heading = "Selecting checks (as in cargo test)")]
    include_ignored: bool,
    /// Output format of the check lines.
    #[arg(long, value_enum, default_value_t = Format::Pretty, help_heading = "Output")]
    format: Format,
    /// How many checks run at once, at least 1 (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = at_least_one, help_heading = "Output")]
    test_threads: Option<usize>,
    /// One character per check instead of one line (same as --format terse).
    #[arg(short, long, help_heading = "Output")]
    quiet: bool,
    /// Colour the output.
    #[arg(long, value_enum, default_value_t = Color::Auto, help_heading = "Output")]
    color: Color,
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to bind (keep it loopback unless you mean to share the sandbox).
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Key of the primary tenant (default: the test key sk_test_primary).
    #[arg(long, value_name = "KEY")]
    key: Option<String>,
    /// Key of the second tenant (default: the test key sk_test_second).
    #[arg(long, value_name = "KEY")]
    second_key: Option<String>,
    /// Break one contract rule (repeatable). `--fault list` shows every fault.
    #[arg(long, value_name = "NAME")]
    fault: Vec<String>,
    /// Take a conforming alternative behaviour (repeatable; `all` for every one). `--variant
    /// list` shows every variant.
    #[arg(long, value_name = "NAME", long_help = variant_long_help())]
    variant: Vec<String>,
    /// Append one JSON line per request to this file (use it with `apiconform --logs`).
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// How long a started job takes to finish, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    job_duration_ms: u64,
    /// Requests a key may make in a burst before it gets 429 (the bucket size).
    #[arg(long, value_name = "N", default_value_t = 40)]
    rate_limit: u32,
    /// Requests per second a key regains after a burst.
    #[arg(long, value_name = "N", default_value_t = 40.0)]
    rate_refill: f64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Pretty,
    Terse,
    Json,
}

/// `--no-tests`: the answer to a selection that runs nothing (as in cargo-nextest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum NoTests {
    Fail,
    Warn,
    Pass,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// The process entry point: every error ends as one line on stderr and a documented exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(message) = cli.run.contradiction() {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    init_logging(cli.run.verbose, cli.run.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(&AppError::Environment(format!(
                "cannot start the async runtime: {e}"
            )))
        }
    };
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(&runtime, args),
        None => run(&runtime, cli.run),
    };
    result.unwrap_or_else(|e| fail(&e))
}

fn fail(error: &AppError) -> ExitCode {
    if !matches!(error, AppError::StdoutClosed) {
        eprintln!("error: {error}");
    }
    error.exit_code()
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "apiconform=info",
        _ => "apiconform=debug",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The HTTP stack's own debug output can include request headers: never below info,
    // whatever RUST_LOG says, so no verbosity can show a key.
    for quiet in [
        "h2=info",
        "hyper=info",
        "hyper_util=info",
        "reqwest=info",
        "rustls=info",
    ] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    // stderr, so check output and reports on stdout stay clean.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// The target of a run: a URL given by the user, or the embedded server we started.
struct Target {
    base_url: String,
    primary_key: String,
    second_key: Option<String>,
    broke_key: Option<String>,
    embedded: Option<RunningServer>,
    embedded_log: Option<PathBuf>,
}

fn run(runtime: &tokio::runtime::Runtime, args: RunArgs) -> Result<ExitCode, AppError> {
    let mut suite = Suite::load(args.suite.as_deref())?;
    let schemas = SchemaSet::load(&suite)?;
    for (flag, value) in [
        ("--deadline", Some(args.deadline)),
        ("--timeout", args.timeout),
        ("--connect-timeout", args.connect_timeout),
    ] {
        if value.is_some_and(|v| !(v > 0.0 && v < 1e7)) {
            return Err(config_error(format!(
                "{flag} must be a positive number of seconds"
            )));
        }
    }
    if args.max_requests == 0 || args.max_rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err(config_error(
            "--max-requests and --max-rate must be positive",
        ));
    }
    if let Some(timeout) = args.timeout {
        suite.settings.target.timeout_seconds = timeout;
    }
    if let Some(timeout) = args.connect_timeout {
        suite.settings.target.connect_timeout_seconds = timeout;
    }
    let suite_hash = report::suite_hash(&suite.source)?;
    if let Some(rate) = args.rate {
        if !(rate > 0.0 && rate.is_finite()) {
            return Err(config_error(
                "--rate must be a positive number of requests per second",
            ));
        }
    }
    let target = resolve_target(runtime, &args)?;
    // The embedded run, or its --list / --dry-run description (which start no server).
    let embedded = target.embedded.is_some() || args.base_url.is_none();
    let record = Arc::new(RunRecord::default());
    // Waits are explained on stderr to a person at a terminal; CI logs and -q stay quiet.
    let show_progress = std::io::IsTerminal::is_terminal(&std::io::stderr()) && !args.quiet;
    let client_config = ClientConfig {
        second_key: target.second_key.clone(),
        broke_key: target.broke_key.clone(),
        requests_per_second: args.rate.or(embedded.then_some(EMBEDDED_PACE)),
        max_requests: args.max_requests,
        max_rate: args.max_rate.unwrap_or(if embedded {
            EMBEDDED_MAX_RATE
        } else {
            crate::client::DEFAULT_MAX_RATE
        }),
        progress: show_progress,
        ..ClientConfig::new(target.base_url.clone(), Some(target.primary_key.clone()))
    };
    let client = HttpClient::new(client_config, &suite.settings, Arc::clone(&record))
        .map_err(config_error)?;
    let options = RunOptions {
        allow_writes: args.allow_writes || embedded,
        strict: args.strict,
        logs: args.logs.clone().or_else(|| target.embedded_log.clone()),
        job_id: args.job_id.clone(),
        poll_interval: embedded.then_some(Duration::from_millis(100)),
        progress: show_progress,
        job_deadline: embedded.then_some(Duration::from_secs(30)),
        deadline: Some(std::time::Instant::now() + Duration::from_secs_f64(args.deadline)),
    };
    let plan = Arc::new(Plan::new(RunContext::new(
        suite, schemas, client, record, options,
    ))?);
    let mut libtest_args = libtest_arguments(&args);
    if embedded {
        libtest_args.test_threads = libtest_args.test_threads.or(Some(EMBEDDED_TEST_THREADS));
    }
    let mut trials = plan.trials(runtime.handle());
    let selection = Selection::new(&libtest_args, &args.filters);

    if args.list {
        to_stdout(|out| print_list(out, &plan, &selection, &trials))?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    // Decided here, before the probe: a selection that runs nothing sends nothing.
    if !trials
        .iter()
        .any(|t| selection.selects(t) && !libtest_args.is_ignored(t))
    {
        target.close(runtime);
        return no_checks(args.no_tests, &args.filters);
    }
    if args.dry_run {
        to_stdout(|out| print_plan(out, &plan, &selection, &trials, &args))?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    let headline = match &target.embedded {
        Some(server) => format!(
            "apiconform: no --base-url given, so testing the embedded reference server at {} \
             (fresh keys, writes allowed, second tenant, a tenant without credits, server log as log source)",
            server.base_url
        ),
        None => format!(
            "apiconform: testing {} with suite {}",
            target.base_url,
            plan.context.suite.source.display()
        ),
    };
    print_headline(&libtest_args, &headline)?;
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    probe(runtime, &plan)?;

    // Checks the suite marks ignored are not run, but they still belong in every report.
    let not_run: Vec<usize> = trials
        .iter()
        .enumerate()
        .filter(|(_, t)| selection.selects(t) && libtest_args.is_ignored(t))
        .map(|(i, _)| i)
        .collect();
    // libtest takes one filter; with several, the selection is made here (and libtest's
    // "filtered out" count is then 0).
    if args.filters.len() > 1 {
        trials.retain(|t| selection.selects(t));
    }
    let conclusion = libtest_mimic::run(&libtest_args, trials);
    for index in not_run {
        plan.record_not_run(
            index,
            "marked `ignored = true` in the suite; run it with --ignored or --include-ignored",
        );
    }
    let (pace, asked) = plan.context.client.pace();
    if pace < asked {
        plan.context.record.add_notice(&format!(
            "paced itself down from {asked} to {pace:.1} requests/s to stay under the target's rate limit (pass --rate {pace:.1} to start there)"
        ));
    }
    let info = RunInfo {
        suite_name: plan.context.suite.name.clone(),
        suite_hash,
        base_url: target.base_url.clone(),
        started_at,
        duration: clock.elapsed(),
    };
    let order: Vec<&str> = plan.checks.iter().map(|c| c.name.as_str()).collect();
    let secrets = plan.context.client.secrets();
    let report = report::build(info, &order, &plan.context.record, secrets);
    let paths = ReportPaths {
        junit: args.junit.clone(),
        json: args.report_json.clone(),
        markdown: args.summary_md.clone(),
    };
    let write_errors = report::write_reports(&report, &paths, secrets);
    // After libtest's lines; on stderr in JSON mode, where stdout is for machines.
    let summary = secrets.mask(&report::console::summary(&report));
    if matches!(libtest_args.format, Some(FormatSetting::Json)) {
        eprint!("{summary}");
    } else {
        let mut out = std::io::stdout();
        let _ = write!(out, "{summary}");
        let _ = out.flush();
    }
    if plan.context.client.budget_spent() {
        eprintln!(
            "apiconform: stopped sending: the request budget of {} (--max-requests) was spent; checks that needed more were not run to the end",
            args.max_requests
        );
    }
    target.close(runtime);
    if !write_errors.is_empty() {
        for error in &write_errors {
            eprintln!("error: {error}");
        }
        return Ok(ExitCode::from(EXIT_USAGE));
    }
    Ok(ExitCode::from(if conclusion.has_failed() {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    }))
}

impl Target {
    /// Stop the embedded server and remove its log. Only a started server's log: --list and
    /// --dry-run name one they never create.
    fn close(self, runtime: &tokio::runtime::Runtime) {
        if let Some(server) = self.embedded {
            runtime.block_on(server.shutdown());
            if let Some(log) = &self.embedded_log {
                let _ = std::fs::remove_file(log);
            }
        }
    }
}

/// Where the run goes, and with which keys. Starts the embedded server when no URL is given.
fn resolve_target(runtime: &tokio::runtime::Runtime, args: &RunArgs) -> Result<Target, AppError> {
    let second_key = read_key(
        args.second_key.clone(),
        args.second_key_file.as_ref(),
        "APICONFORM_SECOND_API_KEY",
        "--second-key",
    )?;
    let broke_key = read_key(
        args.broke_key.clone(),
        args.broke_key_file.as_ref(),
        "APICONFORM_BROKE_API_KEY",
        "--broke-key",
    )?;
    let Some(base_url) = &args.base_url else {
        if args.list || args.dry_run {
            return Ok(Target {
                base_url: "http://127.0.0.1:0".into(),
                primary_key: "unused".into(),
                second_key: Some("unused-second".into()),
                broke_key: Some("unused-broke".into()),
                embedded: None,
                embedded_log: Some(PathBuf::from("embedded-server.log")),
            });
        }
        let log = std::env::temp_dir().join(format!(
            "apiconform-{}-{:08x}.log",
            std::process::id(),
            rand::random::<u32>()
        ));
        // Jobs finish in half a second, so the whole default suite runs in a few seconds.
        let config = ServerConfig {
            log_file: Some(log.clone()),
            job_duration: Duration::from_millis(500),
            rate_limit: crate::reference::RateLimitConfig {
                capacity: 40,
                refill_per_second: EMBEDDED_REFILL,
            },
            ..ServerConfig::with_random_keys()
        };
        let (primary_key, second_key, broke_key) = (
            config.primary_key.clone(),
            config.second_key.clone(),
            config.broke_key.clone(),
        );
        let server = runtime
            .block_on(RunningServer::start(config, ([127, 0, 0, 1], 0).into()))
            .map_err(|e| {
                AppError::Environment(format!("cannot start the embedded reference server: {e}"))
            })?;
        return Ok(Target {
            base_url: server.base_url.clone(),
            primary_key,
            second_key,
            broke_key,
            embedded: Some(server),
            embedded_log: Some(log),
        });
    };
    let parsed = url::Url::parse(base_url)
        .map_err(|e| config_error(format!("--base-url `{base_url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(config_error(format!(
            "--base-url `{base_url}` must be an http:// or https:// URL with a host"
        )));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(config_error(format!(
            "--base-url `{base_url}` must not have a query or fragment"
        )));
    }
    if parsed.scheme() == "http" && !is_loopback(&parsed) && !args.allow_insecure_http {
        return Err(config_error(format!(
            "refusing to send the key in clear text to {base_url}: use https://, or pass --allow-insecure-http if you mean it"
        )));
    }
    let primary_key = read_key(
        args.key.clone(),
        args.key_file.as_ref(),
        "APICONFORM_API_KEY",
        "--key",
    )?
    .ok_or_else(|| {
        config_error("no API key: pass --key-file PATH, set APICONFORM_API_KEY, or pass --key KEY")
    })?;
    Ok(Target {
        base_url: base_url.trim_end_matches('/').to_string(),
        primary_key,
        second_key,
        broke_key,
        embedded: None,
        embedded_log: None,
    })
}

/// True for localhost and loopback addresses, where plain http never leaves the machine.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A key from the flag, else the file, else the environment (an empty variable counts as
/// unset: an undefined CI secret); an empty flag or file is refused.
fn read_key(
    flag: Option<String>,
    file: Option<&PathBuf>,
    env: &str,
    name: &str,
) -> Result<Option<String>, AppError> {
    let key = match (flag, file) {
        (Some(_), Some(_)) => {
            return Err(config_error(format!(
                "give {name} or {name}-file, not both"
            )))
        }
        (Some(key), None) => Some(key),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    config_error(format!("cannot read {name}-file {}: {e}", path.display()))
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => std::env::var(env).ok().filter(|k| !k.trim().is_empty()),
    };
    match key {
        Some(key) if key.trim().is_empty() => Err(config_error(format!(
            "the key given by {name} (or its file or {env}) is empty"
        ))),
        Some(key) if key.chars().any(|c| c.is_control()) => Err(config_error(format!(
            "the key given by {name} (or its file or {env}) contains control characters"
        ))),
        other => Ok(other),
    }
}

/// Ask the probe path without a key: any HTTP answer means reachable.
fn probe(runtime: &tokio::runtime::Runtime, plan: &Plan) -> Result<(), AppError> {
    let client = &plan.context.client;
    let path = &plan.context.settings().target.probe_path;
    runtime
        .block_on(client.reachable("run::probe", path))
        .map(|_| ())
        .map_err(|e| AppError::Unreachable {
            url: client.base_url().to_string(),
            cause: e.cause,
        })
}

fn libtest_arguments(args: &RunArgs) -> Arguments {
    Arguments {
        // One filter goes to libtest, which then counts the checks it filtered out; several
        // are applied by `Selection`.
        filter: match args.filters.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        },
        exact: args.exact,
        skip: args.skip.clone(),
        list: false,
        ignored: args.ignored,
        include_ignored: args.include_ignored,
        quiet: args.quiet,
        test_threads: args.test_threads,
        format: Some(match (args.format, args.quiet) {
            (Format::Json, _) => FormatSetting::Json,
            (Format::Terse, _) | (_, true) => FormatSetting::Terse,
            (Format::Pretty, false) => FormatSetting::Pretty,
        }),
        color: Some(match args.color {
            Color::Auto => ColorSetting::Auto,
            Color::Always => ColorSetting::Always,
            Color::Never => ColorSetting::Never,
        }),
        ..Arguments::default()
    }
}

/// The headline goes to stdout, except in JSON mode, where stdout is for machines.
fn print_headline(args: &Arguments, line: &str) -> Result<(), AppError> {
    if matches!(args.format, Some(FormatSetting::Json)) {
        eprintln!("{line}");
        Ok(())
    } else {
        to_stdout(|out| writeln!(out, "{line}"))
    }
}

/// Write to stdout through one locked handle. Rust ignores SIGPIPE, so `println!` into a
/// closed pipe (`--list | head -1`) panics; here a reader that went away ends the program
/// quietly instead, with the status a shell shows for SIGPIPE.
fn to_stdout(
    write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(AppError::StdoutClosed),
        Err(e) => Err(AppError::Environment(format!(
            "cannot write to stdout: {e}"
        ))),
    }
}

/// Which checks the command line selects: libtest's rules (--exact, --skip, --ignored) for
/// each FILTER, and, as in `cargo test`, a check any FILTER selects is in.
struct Selection {
    per_filter: Vec<Arguments>,
}

impl Selection {
    fn new(args: &Arguments, filters: &[String]) -> Self {
        let with = |filter: Option<&String>| Arguments {
            filter: filter.cloned(),
            ..args.clone()
        };
        let per_filter = if filters.is_empty() {
            vec![with(None)]
        } else {
            filters.iter().map(Some).map(with).collect()
        };
        Selection { per_filter }
    }

    fn selects(&self, trial: &libtest_mimic::Trial) -> bool {
        self.per_filter.iter().any(|a| !a.is_filtered_out(trial))
    }
}

/// `--no-tests`: what a selection that runs no check ends as, before any request is sent.
fn no_checks(policy: NoTests, filters: &[String]) -> Result<ExitCode, AppError> {
    let message = if filters.is_empty() {
        "no check to run".to_owned()
    } else {
        let filters: Vec<String> = filters.iter().map(|f| format!("`{f}`")).collect();
        format!(
            "no check to run matches FILTER {} (checks marked ignored run only with --ignored or --include-ignored)",
            filters.join(", ")
        )
    };
    match policy {
        NoTests::Fail => Err(AppError::NoChecks(format!(
            "{message}; pass --no-tests=warn or --no-tests=pass to allow it"
        ))),
        NoTests::Warn => {
            eprintln!("warning: {message}");
            Ok(ExitCode::from(EXIT_OK))
        }
        NoTests::Pass => Ok(ExitCode::from(EXIT_OK)),
    }
}

/// `--list`: the libtest `name: test` lines, then the level and needs of each check.
fn print_list(
    out: &mut impl Write,
    plan: &Plan,
    selection: &Selection,
    trials: &[libtest_mimic::Trial],
) -> std::io::Result<()> {
    for (planned, trial) in plan.checks.iter().zip(trials) {
        if !selection.selects(trial) {
            continue;
        }
        let needs = planned.check.needs(plan.context.settings()).describe();
        let needs = if needs.is_empty() {
            String::new()
        } else {
            format!("; needs {needs}")
        };
        writeln!(
            out,
            "{}: test    [{} {}{needs}]",
            planned.name, planned.level, planned.kind
        )?;
    }
    Ok(())
}

/// `--dry-run`: what each selected check would send, side effects marked; nothing is sent.
fn print_plan(
    out: &mut impl Write,
    plan: &Plan,
    selection: &Selection,
    trials: &[libtest_mimic::Trial],
    run: &RunArgs,
) -> std::io::Result<()> {
    let settings = plan.context.settings();
    let target = run
        .base_url
        .as_deref()
        .unwrap_or("the embedded reference server");
    writeln!(out, "apiconform: dry run against {target}; nothing is sent")?;
    let mut writes = 0;
    for (planned, trial) in plan.checks.iter().zip(trials) {
        if !selection.selects(trial) {
            continue;
        }
        let needs = planned.check.needs(settings);
        match plan.unmet(needs) {
            Some(reason) => writeln!(
                out,
                "{} [{}]: would be ignored: {reason}",
                planned.name, planned.level
            )?,
            None => {
                writes += usize::from(needs.writes);
                writeln!(out, "{} [{}]:", planned.name, planned.level)?;
                for line in planned.check.plan(settings) {
                    writeln!(out, "    {line}")?;
                }
            }
        }
    }
    writeln!(
        out,
        "{writes} check(s) with side effects; every request counts against --max-requests {} and --max-rate {}/s; the whole run stops at --deadline {} s",
        run.max_requests,
        run.max_rate.map(|r| r.to_string()).unwrap_or_else(|| "default".into()),
        run.deadline
    )
}

/// `--test-threads`: 0 threads would run nothing and wait forever.
fn at_least_one(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl RunArgs {
    /// Flags that contradict each other in a way clap's `conflicts_with` cannot say (it
    /// depends on a value): the message, to refuse them with.
    fn contradiction(&self) -> Option<&'static str> {
        match self.format {
            Format::Json if self.quiet => {
                Some("-q (terse output) cannot be used with --format json; pick one")
            }
            Format::Json if self.list => {
                Some("--list cannot be used with --format json: JSON lists are not supported yet")
            }
            _ => None,
        }
    }
}

/// The `--variant` entry of `serve --help`: the flag, then every variant.
fn variant_long_help() -> String {
    let mut help = "Take a conforming alternative behaviour where the contract leaves freedom \
        (repeatable). Unlike --fault, a variant breaks no rule: it proves the harness accepts \
        every legitimate reading. `--variant all` takes every one; `--variant list` prints them.\n\n\
        Variants:"
        .to_owned();
    for variant in Variant::ALL {
        help.push_str(&format!(
            "\n- {}: {}",
            variant.name(),
            variant.description()
        ));
    }
    help
}

/// `--variant` values: names, or `all`.
fn parse_variants(names: &[String]) -> Result<BTreeSet<Variant>, AppError> {
    let mut variants = BTreeSet::new();
    for name in names {
        if name.trim().eq_ignore_ascii_case("all") {
            variants.extend(Variant::ALL.iter().copied());
        } else {
            let variant = name
                .parse::<Variant>()
                .map_err(|e| config_error(format!("--variant: {e}")))?;
            variants.insert(variant);
        }
    }
    Ok(variants)
}

fn serve(runtime: &tokio::runtime::Runtime, args: ServeArgs) -> Result<ExitCode, AppError> {
    if args.fault.iter().any(|f| f == "list") {
        to_stdout(|out| {
            Fault::ALL
                .iter()
                .try_for_each(|f| writeln!(out, "{:<28} {}", f.name(), f.description()))
        })?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    if args.variant.iter().any(|v| v == "list") {
        to_stdout(|out| {
            Variant::ALL
                .iter()
                .try_for_each(|v| writeln!(out, "{:<28} {}", v.name(), v.description()))
        })?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    let faults = args
        .fault
        .iter()
        .map(|name| {
            name.parse::<Fault>()
                .map_err(|e| config_error(format!("--fault: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let variants = parse_variants(&args.variant)?;
    if !(args.rate_refill > 0.0 && args.rate_refill.is_finite()) || args.rate_limit == 0 {
        return Err(config_error(
            "--rate-limit and --rate-refill must be positive",
        ));
    }
    let defaults = ServerConfig::default();
    let custom_keys = args.key.is_some() || args.second_key.is_some();
    let config = ServerConfig {
        primary_key: args.key.unwrap_or(defaults.primary_key.clone()),
        second_key: args.second_key.or(defaults.second_key.clone()),
        faults,
        variants,
        log_file: args.log_file.clone(),
        job_duration: Duration::from_millis(args.job_duration_ms),
        rate_limit: crate::reference::RateLimitConfig {
            capacity: args.rate_limit,
            refill_per_second: args.rate_refill,
        },
        ..defaults
    };
    let faults: Vec<String> = config.faults.iter().map(|f| f.to_string()).collect();
    let variants: Vec<String> = config.variants.iter().map(|v| v.to_string()).collect();
    runtime.block_on(async move {
        let server = RunningServer::start(config, (args.host, args.port).into())
            .await
            .map_err(|e| AppError::Environment(format!("cannot listen on {}:{}: {e}", args.host, args.port)))?;
        println!("apiconform reference server listening on {}", server.base_url);
        if custom_keys {
            println!("keys: as given on the command line");
        } else {
            println!("keys: sk_test_primary (tenant A), sk_test_second (tenant B), sk_test_broke (no credits)");
        }
        if !faults.is_empty() {
            println!("faults: {}", faults.join(", "));
        }
        if !variants.is_empty() {
            println!("variants: {}", variants.join(", "));
        }
        if let Some(log) = &args.log_file {
            println!("request log: {}", log.display());
        }
        println!("press Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown().await;
        Ok(ExitCode::from(EXIT_OK))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_and_all() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(parse_variants(&[]).unwrap().is_empty());
        let two = parse_variants(&names(&["create-201", "sliding-window", "create-201"])).unwrap();
        assert_eq!(
            two.into_iter().collect::<Vec<_>>(),
            [Variant::Create201, Variant::SlidingWindow]
        );
        let all = parse_variants(&names(&["created-state", "all"])).unwrap();
        assert_eq!(all.len(), Variant::ALL.len());
        assert!(parse_variants(&names(&["nope"])).is_err());
    }
}
