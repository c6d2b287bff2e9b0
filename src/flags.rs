//! The command line as typed (the first of two stages): clap's view of the flags, and the
//! contradictions between them that clap cannot see. [`crate::config`] checks them into a
//! configuration; nothing here reads a file or the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::reference::Variant;

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0    every check passed (SHOULD findings only warn, unless --strict)
  101  a check failed or could not reach a verdict
  2    usage or configuration error (bad flag, unreadable or malformed suite, schema that
       does not compile), or a report that cannot be written
  3    the target could not be reached at all
  4    the filters selected no check to run (with --no-tests=fail, the default)
  130  stopped by SIGINT (Ctrl-C): checks still running errored, reports written
  143  stopped by SIGTERM (a CI job's timeout or cancel): the same; a second signal exits at once
  141  stdout was closed before the output ended (e.g. `--list | head -1`): a quiet stop";

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
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the reference server alone (a sandbox for client developers) and print its base URL.
    Serve(Box<ServeArgs>),
    /// Print a completion script for SHELL to stdout, e.g. `apiconform completions bash >
    /// ~/.local/share/bash-completion/completions/apiconform`.
    Completions {
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout, e.g. `apiconform man > apiconform.1`.
    Man,
}

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Read settings a team sets once (target, suite, pacing, reports) from this TOML file;
    /// flags on the command line win. Keys are never read from it. See README, "Config file".
    #[arg(
        long,
        value_name = "PATH",
        env = "APICONFORM_CONFIG",
        help_heading = "Target"
    )]
    pub(crate) config: Option<PathBuf>,
    /// Base URL of the API under test, e.g. https://staging.example.com. Without it, apiconform
    /// tests its embedded reference server.
    #[arg(long, value_name = "URL", help_heading = "Target")]
    pub(crate) base_url: Option<String>,
    /// API key of the tenant under test. Prefer --key-file or APICONFORM_API_KEY, which keep the
    /// key out of shell history. Precedence: --key, --key-file, APICONFORM_API_KEY.
    #[arg(long, value_name = "KEY", help_heading = "Target")]
    pub(crate) key: Option<String>,
    /// Read the API key from a file (surrounding whitespace is trimmed).
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub(crate) key_file: Option<PathBuf>,
    /// API key of a second tenant, for the cross-tenant checks (also APICONFORM_SECOND_API_KEY).
    #[arg(long, value_name = "KEY", help_heading = "Target")]
    pub(crate) second_key: Option<String>,
    /// Read the second tenant's key from a file.
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub(crate) second_key_file: Option<PathBuf>,
    /// API key of a tenant with no credits, for the 402 checks (also APICONFORM_BROKE_API_KEY).
    #[arg(long, value_name = "KEY", help_heading = "Target")]
    pub(crate) broke_key: Option<String>,
    /// Read the no-credit tenant's key from a file.
    #[arg(long, value_name = "PATH", help_heading = "Target")]
    pub(crate) broke_key_file: Option<PathBuf>,
    /// Add a header to every request to the target, as `Name: value` (repeatable), e.g. a
    /// gateway's or a tenant's header. A header the suite sets on a request wins.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "HEADER",
        help_heading = "Target"
    )]
    pub(crate) headers: Vec<String>,
    /// Like --header, for a value that is a secret (a gateway token): it is masked in every
    /// output as $HEADER_<NAME> (`X-Gateway-Token` as $HEADER_X_GATEWAY_TOKEN), as keys are.
    #[arg(long, value_name = "HEADER", help_heading = "Target")]
    pub(crate) secret_header: Vec<String>,
    /// Trust the certificate authorities in this PEM file as well as the system's (a staging
    /// API behind an internal CA). Needs an https:// --base-url.
    #[arg(long, value_name = "PATH", help_heading = "TLS")]
    pub(crate) cacert: Option<PathBuf>,
    /// Client certificate (PEM) for a target that asks for mutual TLS; the file may hold the
    /// private key too, or give it with --cert-key. Sent only to the target, never to a link.
    #[arg(long, value_name = "PATH", help_heading = "TLS")]
    pub(crate) cert: Option<PathBuf>,
    /// Private key (PEM, PKCS#8, RSA or EC) of --cert.
    #[arg(long, value_name = "PATH", requires = "cert", help_heading = "TLS")]
    pub(crate) cert_key: Option<PathBuf>,
    /// Do not verify the target's TLS certificate. Anyone between here and the target could
    /// then read the key: for a throwaway sandbox only. Prefer --cacert.
    #[arg(long, help_heading = "TLS")]
    pub(crate) insecure: bool,
    /// Check a live API against its published OpenAPI document (a path, or an http(s) URL
    /// fetched without the key) instead of a suite: every GET operation's documented reply and
    /// schema, a refusal without the key, request ids. Says which operations it left out, and why.
    #[arg(
        long,
        value_name = "PATH_OR_URL",
        conflicts_with = "suite",
        help_heading = "Suite"
    )]
    pub(crate) openapi: Option<String>,
    /// A path parameter for --openapi, as NAME=VALUE (repeatable): operations whose path
    /// needs it (`/v1/jobs/{job_id}`) are exercised with it.
    #[arg(
        long = "param",
        value_name = "NAME=VALUE",
        requires = "openapi",
        help_heading = "Suite"
    )]
    pub(crate) params: Vec<String>,
    /// Listen for the target's webhook deliveries on this address (e.g. 192.0.2.10:8787, or
    /// 0.0.0.0:8787 with --webhook-public-url), for the webhooks::* checks. Without it
    /// apiconform listens on a free loopback port when the target is on loopback (the embedded
    /// server too), and ignores the checks otherwise.
    #[arg(long, value_name = "ADDR", help_heading = "Webhooks")]
    pub(crate) webhook_listen: Option<std::net::SocketAddr>,
    /// The webhook_url the target is given, when it reaches the --webhook-listen address
    /// through a tunnel or an ingress (e.g. https://hooks.example.com/apiconform).
    #[arg(long, value_name = "URL", help_heading = "Webhooks")]
    pub(crate) webhook_public_url: Option<String>,
    /// The secret the target signs webhook deliveries with, to verify X-Webhook-Signature
    /// (webhooks::signature is ignored without it). Masked as $WEBHOOK_SECRET in every output.
    /// Prefer --webhook-secret-file or APICONFORM_WEBHOOK_SECRET, which keep it out of shell
    /// history. Precedence: --webhook-secret, --webhook-secret-file, APICONFORM_WEBHOOK_SECRET.
    #[arg(long, value_name = "SECRET", help_heading = "Webhooks")]
    pub(crate) webhook_secret: Option<String>,
    /// Read the webhook signing secret from a file (surrounding whitespace is trimmed).
    #[arg(long, value_name = "PATH", help_heading = "Webhooks")]
    pub(crate) webhook_secret_file: Option<PathBuf>,
    /// Suite file (TOML). Default: the bundled default suite (suites/default.toml).
    #[arg(long, value_name = "PATH", help_heading = "Suite")]
    pub(crate) suite: Option<PathBuf>,
    /// An existing job to read, for the checks that need one when writes are not allowed.
    #[arg(long, value_name = "ID", help_heading = "Suite")]
    pub(crate) job_id: Option<String>,
    /// Let checks create jobs and spend credits. Without it they are ignored, with the reason.
    #[arg(long, help_heading = "Suite")]
    pub(crate) allow_writes: bool,
    /// SHOULD-level findings fail the run instead of warning.
    #[arg(long, help_heading = "Suite")]
    pub(crate) strict: bool,
    /// Drift (fields live responses carry that the schemas do not declare) fails the checks
    /// that saw it, instead of being reported beside them.
    #[arg(long, help_heading = "Suite")]
    pub(crate) strict_drift: bool,
    /// A file the target writes its logs to; request and job ids the run saw must appear in it.
    #[arg(long, value_name = "PATH", help_heading = "Suite")]
    pub(crate) logs: Option<PathBuf>,
    /// Requests per second for every check but the rate-limit burst (default: the suite's).
    #[arg(long, value_name = "N", help_heading = "Suite")]
    pub(crate) rate: Option<f64>,
    /// Stop sending after this many requests in all (the burst included); the run then ends
    /// with its own message.
    #[arg(long, value_name = "N", default_value_t = crate::client::DEFAULT_MAX_REQUESTS, help_heading = "Limits")]
    pub(crate) max_requests: u64,
    /// Never send more than this many requests per second, the burst included [default: 100;
    /// 1000 against the embedded server, which is on this machine].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub(crate) max_rate: Option<f64>,
    /// The whole run ends within this many seconds; checks still running then are reported
    /// as errored ("deadline").
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 1800.0,
        help_heading = "Limits"
    )]
    pub(crate) deadline: f64,
    /// Total time allowed for one request, in seconds (default: the suite's, 30).
    #[arg(long, value_name = "SECS", help_heading = "Limits")]
    pub(crate) timeout: Option<f64>,
    /// Time allowed to connect, in seconds (default: the suite's, 10).
    #[arg(long, value_name = "SECS", help_heading = "Limits")]
    pub(crate) connect_timeout: Option<f64>,
    /// Print the requests each check would send, marking side effects, and send nothing.
    #[arg(
        long,
        conflicts_with = "list",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    pub(crate) dry_run: bool,
    /// Allow sending the key over plain http:// to a host that is not loopback.
    #[arg(long, help_heading = "Limits")]
    pub(crate) allow_insecure_http: bool,
    /// Log to stderr: -v for each retry and wait, -vv for every exchange (or set RUST_LOG).
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = "Output")]
    pub(crate) verbose: u8,
    /// Log lines as text for people or as JSON objects (one per line) for machines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, help_heading = "Output")]
    pub(crate) log_format: LogFormat,

    /// Write a JUnit XML report: one test case per check, one test suite per area, evidence in
    /// system-out (for the test reports of GitHub Actions, GitLab and Jenkins).
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    pub(crate) junit: Option<PathBuf>,
    /// Write the JSON report: run info, and per check its outcome, message and evidence
    /// (exchanges and a curl line); documented in schemas/report.schema.json.
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    pub(crate) report_json: Option<PathBuf>,
    /// Write a Markdown summary (tables per area, failures first), e.g. to $GITHUB_STEP_SUMMARY.
    #[arg(long, value_name = "PATH", help_heading = "Reports")]
    pub(crate) summary_md: Option<PathBuf>,

    /// Run only checks whose name contains a FILTER (e.g. `auth::`); with several, a check
    /// any of them matches is run.
    #[arg(
        value_name = "FILTER",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    pub(crate) filters: Vec<String>,
    /// What to do when the filters select no check to run: `fail` (exit 4; a mistyped filter
    /// in CI must not pass by running nothing), `warn` (say so, exit 0) or `pass` (exit 0).
    #[arg(
        long,
        value_enum,
        value_name = "WHAT",
        default_value_t = NoTests::Fail,
        help_heading = "Selecting checks (as in cargo test)"
    )]
    pub(crate) no_tests: NoTests,
    /// FILTER must match a check name exactly.
    #[arg(long, help_heading = "Selecting checks (as in cargo test)")]
    pub(crate) exact: bool,
    /// Skip checks whose name contains FILTER (repeatable).
    #[arg(
        long,
        value_name = "FILTER",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    pub(crate) skip: Vec<String>,
    /// List the checks (with level and what each needs) and exit without sending a request.
    #[arg(long, help_heading = "Selecting checks (as in cargo test)")]
    pub(crate) list: bool,
    /// Run only the checks the suite marks `ignored = true` (slow or costly ones).
    #[arg(
        long,
        conflicts_with = "include_ignored",
        help_heading = "Selecting checks (as in cargo test)"
    )]
    pub(crate) ignored: bool,
    /// Run checks marked ignored too.
    #[arg(long, help_heading = "Selecting checks (as in cargo test)")]
    pub(crate) include_ignored: bool,
    /// Output format of the check lines.
    #[arg(long, value_enum, default_value_t = Format::Pretty, help_heading = "Output")]
    pub(crate) format: Format,
    /// How many checks run at once, at least 1 (default: the number of CPUs).
    #[arg(long, value_name = "N", value_parser = at_least_one, help_heading = "Output")]
    pub(crate) test_threads: Option<usize>,
    /// One character per check instead of one line (same as --format terse).
    #[arg(short, long, help_heading = "Output")]
    pub(crate) quiet: bool,
    /// Colour the output.
    #[arg(long, value_enum, default_value_t = Color::Auto, help_heading = "Output")]
    pub(crate) color: Color,
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// Address to bind (keep it loopback unless you mean to share the sandbox).
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: std::net::IpAddr,
    /// Key of the primary tenant (default: the test key sk_test_primary).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: Option<String>,
    /// Key of the second tenant (default: the test key sk_test_second).
    #[arg(long, value_name = "KEY")]
    pub(crate) second_key: Option<String>,
    /// Key of a tenant without credits, whose jobs get 402 (default: the test key sk_test_broke).
    #[arg(long, value_name = "KEY")]
    pub(crate) broke_key: Option<String>,
    /// Break one contract rule (repeatable). `--fault list` shows every fault.
    #[arg(long, value_name = "NAME")]
    pub(crate) fault: Vec<String>,
    /// Take a conforming alternative behaviour (repeatable; `all` for every one). `--variant
    /// list` shows every variant.
    #[arg(long, value_name = "NAME", long_help = variant_long_help())]
    pub(crate) variant: Vec<String>,
    /// The vendor dialect to speak: `standard` (docs/contract.md, checked by the default
    /// suite) or `flat` (checked by suites/flat.toml). `--dialect list` shows both.
    #[arg(long, value_name = "NAME", default_value = "standard", value_parser = dialect_choice)]
    pub(crate) dialect: DialectChoice,
    /// Append one JSON line per request to this file (use it with `apiconform --logs`).
    #[arg(long, value_name = "PATH")]
    pub(crate) log_file: Option<PathBuf>,
    /// How long a started job takes to finish, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub(crate) job_duration_ms: u64,
    /// Requests a key may make in a burst before it gets 429 (the bucket size).
    #[arg(long, value_name = "N", default_value_t = 40)]
    pub(crate) rate_limit: u32,
    /// Requests per second a key regains after a burst.
    #[arg(long, value_name = "N", default_value_t = 40.0)]
    pub(crate) rate_refill: f64,
    /// The largest file POST /v1/uploads accepts, in bytes (the contract's 500 MB by default).
    #[arg(long, value_name = "BYTES", default_value_t = crate::reference::DEFAULT_MAX_UPLOAD_BYTES)]
    pub(crate) max_upload_bytes: u64,
    /// Sign every webhook delivery with this secret: X-Webhook-Signature: sha256=<hex>, the
    /// HMAC-SHA256 of "<timestamp>.<raw body>" (without it deliveries are unsigned).
    #[arg(long, value_name = "SECRET")]
    pub(crate) webhook_secret: Option<String>,
    /// Also deliver webhooks to this host (repeatable); without it only loopback hosts
    /// (localhost, 127.0.0.0/8, ::1) get deliveries, and any other is recorded as failed.
    #[arg(long, value_name = "HOST")]
    pub(crate) webhook_allow_host: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Format {
    Pretty,
    Terse,
    Json,
}

/// `--no-tests`: the answer to a selection that runs nothing (as in cargo-nextest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NoTests {
    Fail,
    Warn,
    Pass,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
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
    pub(crate) fn contradiction(&self) -> Option<&'static str> {
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
/// What `--dialect` asks for: a dialect to speak, or the list of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DialectChoice {
    List,
    Speak(crate::reference::Dialect),
}

fn dialect_choice(name: &str) -> Result<DialectChoice, String> {
    if name == "list" {
        return Ok(DialectChoice::List);
    }
    name.parse()
        .map(DialectChoice::Speak)
        .map_err(|e: crate::reference::UnknownDialect| e.to_string())
}

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
