//! The checked configuration of a run (the second of two stages): every flag validated, the
//! suite loaded and its schemas compiled, the keys read from where they were given. What
//! [`crate::run`] needs and nothing it must work out again; no request has been sent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use libtest_mimic::{Arguments, ColorSetting, FormatSetting};

use crate::client::ExtraHeader;
use crate::error::{config_error, AppError};
pub use crate::flags::NoTests;
use crate::flags::{Color, Format, RunArgs};
use crate::report::{self, ReportPaths};
use crate::schemas::SchemaSet;
use crate::suite::Suite;
use crate::tls::TlsOptions;
use crate::webhooks::WebhookOptions;

/// Checks mostly wait on the network, so the embedded run uses more threads than CPUs.
const EMBEDDED_TEST_THREADS: usize = 4;

/// What the run is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Send the checks' requests and report.
    Run,
    /// List the selected checks; send nothing.
    List,
    /// Say what each selected check would send; send nothing.
    DryRun,
}

/// The keys of the tenants a run talks as.
#[derive(Clone, Default)]
pub struct Keys {
    /// The tenant under test; required to run, not to list or plan.
    pub primary: Option<String>,
    pub second: Option<String>,
    /// A tenant without credits.
    pub broke: Option<String>,
}

impl std::fmt::Debug for Keys {
    /// Which keys are present, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("primary", &self.primary.is_some())
            .field("second", &self.second.is_some())
            .field("broke", &self.broke.is_some())
            .finish()
    }
}

/// Where the run goes.
#[derive(Clone, Debug)]
pub enum TargetSpec {
    /// The user's API, at a checked base URL (no trailing slash).
    Remote { base_url: String, keys: Keys },
    /// The embedded reference server, started for the run with fresh keys for every tenant.
    Embedded,
}

/// A run, checked and ready: the one input of [`crate::run`].
pub struct RunConfig {
    pub mode: Mode,
    pub suite: Suite,
    pub schemas: SchemaSet,
    /// `sha256:` of the suite file, for the reports.
    pub suite_hash: String,
    pub target: TargetSpec,
    /// Pacing (`--rate`); None for the suite's (or the embedded run's).
    pub rate: Option<f64>,
    pub max_requests: u64,
    /// The run-wide ceiling (`--max-rate`); None for the default of the target's kind.
    pub max_rate: Option<f64>,
    pub deadline: Duration,
    pub allow_writes: bool,
    pub strict: bool,
    /// Drift fails the checks that saw it (`--strict-drift`).
    pub strict_drift: bool,
    pub logs: Option<PathBuf>,
    pub job_id: Option<String>,
    /// Explain long waits on stderr (a person is watching a terminal).
    pub progress: bool,
    /// libtest's own arguments: format, threads, colour, one filter, `--exact`, `--skip`.
    pub libtest: Arguments,
    /// Every FILTER given; a check any of them selects is in.
    pub filters: Vec<String>,
    pub no_tests: NoTests,
    pub reports: ReportPaths,
    /// Sent on every request to the target (`-H`, `--secret-header`).
    pub extra_headers: Vec<ExtraHeader>,
    /// `--cacert`, `--cert`, `--cert-key`, `--insecure`.
    pub tls: TlsOptions,
    /// Facts about the run known before it starts (operations `--openapi` leaves out), for
    /// every report.
    pub notices: Vec<String>,
    /// Where the webhook receiver listens and the URL the target is given.
    pub webhooks: WebhookOptions,
    /// The secret deliveries are signed with (`--webhook-secret`, its file or the environment).
    pub webhook_secret: Option<String>,
}

impl RunConfig {
    /// Check `args` into a configuration, or say in one line what is wrong with them.
    pub(crate) fn from_flags(args: RunArgs) -> Result<RunConfig, AppError> {
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
        if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(config_error(
                "--rate must be a positive number of requests per second",
            ));
        }
        if let Some(logs) = &args.logs {
            check_log_source(logs)?;
        }
        let mode = if args.list {
            Mode::List
        } else if args.dry_run {
            Mode::DryRun
        } else {
            Mode::Run
        };
        let (mut suite, notices) = match &args.openapi {
            None => (Suite::load(args.suite.as_deref())?, Vec::new()),
            Some(source) => {
                // Fetched with the run's TLS options: a document on an internal host.
                let tls = tls_options(&args, &target_spec(&args, mode)?)?;
                let text = read_openapi(source, &tls)?;
                let params = openapi_params(&args.params)?;
                crate::openapi::generated_suite(&text, source, &params)?
            }
        };
        // Listing compiles no schema (most of its time otherwise); a run compiles them all.
        let schemas = if mode == Mode::List {
            SchemaSet::read_only(&suite)?
        } else {
            SchemaSet::load(&suite)?
        };
        if let Some(timeout) = args.timeout {
            suite.settings.target.timeout_seconds = timeout;
        }
        if let Some(timeout) = args.connect_timeout {
            suite.settings.target.connect_timeout_seconds = timeout;
        }
        let extra_headers = extra_headers(&args, &suite.settings.auth.header)?;
        let webhook_secret = read_key(
            args.webhook_secret.clone(),
            args.webhook_secret_file.as_ref(),
            "APICONFORM_WEBHOOK_SECRET",
            "--webhook-secret",
        )?;
        let suite_hash = report::suite_hash(&suite.source)?;
        let target = target_spec(&args, mode)?;
        let webhooks = webhook_options(&args, &target)?;
        let tls = tls_options(&args, &target)?;
        let embedded = matches!(target, TargetSpec::Embedded);
        let mut libtest = libtest_arguments(&args);
        if embedded {
            libtest.test_threads = libtest.test_threads.or(Some(EMBEDDED_TEST_THREADS));
        }
        Ok(RunConfig {
            mode,
            suite,
            schemas,
            suite_hash,
            target,
            rate: args.rate,
            max_requests: args.max_requests,
            max_rate: args.max_rate,
            deadline: Duration::from_secs_f64(args.deadline),
            allow_writes: args.allow_writes || embedded,
            strict: args.strict,
            strict_drift: args.strict_drift,
            logs: args.logs,
            job_id: args.job_id,
            progress: shows_progress(
                &libtest,
                args.quiet,
                std::io::IsTerminal::is_terminal(&std::io::stderr()),
            ),
            libtest,
            filters: args.filters,
            no_tests: args.no_tests,
            reports: ReportPaths::asked([
                (args.junit, &report::junit::FORMAT),
                (args.report_json, &report::json::FORMAT),
                (args.summary_md, &report::markdown::FORMAT),
            ]),
            extra_headers,
            tls,
            notices,
            webhooks,
            webhook_secret,
        })
    }
}

/// `--param NAME=VALUE`s, by name.
fn openapi_params(params: &[String]) -> Result<BTreeMap<String, String>, AppError> {
    params
        .iter()
        .map(|param| match param.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => Err(config_error(format!(
                "--param `{param}`: expected NAME=VALUE, e.g. --param job_id=job_123"
            ))),
        })
        .collect()
}

/// The text of `--openapi`: a file, or a document fetched from an http(s) URL.
fn read_openapi(source: &str, tls: &TlsOptions) -> Result<String, AppError> {
    if !(source.starts_with("http://") || source.starts_with("https://")) {
        return std::fs::read_to_string(source)
            .map_err(|e| config_error(format!("--openapi {source}: cannot read it: {e}")));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Environment(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(crate::openapi::fetch(source, tls))
}

/// The TLS flags, read and checked; refused for a target they would not touch.
fn tls_options(args: &RunArgs, target: &TargetSpec) -> Result<TlsOptions, AppError> {
    let tls = TlsOptions::load(
        args.cacert.as_deref(),
        args.cert.as_deref(),
        args.cert_key.as_deref(),
        args.insecure,
    )
    .map_err(config_error)?;
    let https =
        matches!(target, TargetSpec::Remote { base_url, .. } if base_url.starts_with("https://"));
    if tls.any() && !https {
        return Err(config_error(
            "--cacert, --cert, --cert-key and --insecure need an https:// --base-url; they would change nothing here",
        ));
    }
    Ok(tls)
}

/// Waits are explained on stderr to a person at a terminal; CI logs and -q stay quiet. Only
/// where libtest holds no line open while a check runs: not with one test thread (its
/// `test name ... ` waits for the outcome) and not in terse mode (one line of dots).
fn shows_progress(libtest: &libtest_mimic::Arguments, quiet: bool, at_terminal: bool) -> bool {
    use libtest_mimic::FormatSetting;
    at_terminal
        && !quiet
        && matches!(libtest.format, None | Some(FormatSetting::Pretty))
        && libtest.test_threads != Some(1)
}

/// `--webhook-listen` and `--webhook-public-url`, checked: the public URL is an absolute
/// http(s) URL, and comes with the address it forwards to; a receiver on every address
/// (`0.0.0.0`) has no address of its own to give a target that is not on loopback.
fn webhook_options(args: &RunArgs, target: &TargetSpec) -> Result<WebhookOptions, AppError> {
    let remote = match target {
        TargetSpec::Remote { base_url, .. } => {
            url::Url::parse(base_url).is_ok_and(|u| !is_loopback(&u))
        }
        TargetSpec::Embedded => false,
    };
    if let Some(listen) = args.webhook_listen {
        if listen.ip().is_unspecified() && remote && args.webhook_public_url.is_none() {
            return Err(config_error(format!(
                "--webhook-listen {listen} listens on every address: give --webhook-public-url URL, the address the target reaches it at"
            )));
        }
    }
    if let Some(url) = &args.webhook_public_url {
        if args.webhook_listen.is_none() {
            return Err(config_error(
                "--webhook-public-url needs --webhook-listen ADDR, the address the tunnel or ingress forwards to",
            ));
        }
        let valid = url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !valid {
            return Err(config_error(format!(
                "--webhook-public-url `{url}` must be an http:// or https:// URL with a host"
            )));
        }
    }
    Ok(WebhookOptions {
        listen: args.webhook_listen,
        public_url: args.webhook_public_url.clone(),
    })
}

/// The target the flags name, with the keys read from where they were given. Only a run
/// needs the primary key: `--list` and `--dry-run` plan without one.
fn target_spec(args: &RunArgs, mode: Mode) -> Result<TargetSpec, AppError> {
    let Some(base_url) = &args.base_url else {
        return Ok(TargetSpec::Embedded);
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
    let keys = Keys {
        primary: read_key(
            args.key.clone(),
            args.key_file.as_ref(),
            "APICONFORM_API_KEY",
            "--key",
        )?,
        second: read_key(
            args.second_key.clone(),
            args.second_key_file.as_ref(),
            "APICONFORM_SECOND_API_KEY",
            "--second-key",
        )?,
        broke: read_key(
            args.broke_key.clone(),
            args.broke_key_file.as_ref(),
            "APICONFORM_BROKE_API_KEY",
            "--broke-key",
        )?,
    };
    if mode == Mode::Run && keys.primary.is_none() {
        return Err(config_error(
            "no API key: pass --key-file PATH, set APICONFORM_API_KEY, or pass --key KEY",
        ));
    }
    Ok(TargetSpec::Remote {
        base_url: base_url.trim_end_matches('/').to_string(),
        keys,
    })
}

/// `-H` and `--secret-header`, checked: `Name: value` each, and never the suite's auth header,
/// which carries the key given by --key and is left out on purpose by the auth checks.
fn extra_headers(args: &RunArgs, auth_header: &str) -> Result<Vec<ExtraHeader>, AppError> {
    let typed = args.headers.iter().map(|h| ("--header", h, false)).chain(
        args.secret_header
            .iter()
            .map(|h| ("--secret-header", h, true)),
    );
    typed
        .map(|(flag, text, secret)| {
            let header = ExtraHeader::parse(text, secret).map_err(|why| {
                // A secret header's value stays out of the message.
                let shown = if secret { "the given header" } else { text.as_str() };
                config_error(format!("{flag} {shown}: {why}"))
            })?;
            if header.name.eq_ignore_ascii_case(auth_header) {
                return Err(config_error(format!(
                    "{flag}: {} is the suite's auth header; give the key with --key-file, APICONFORM_API_KEY or --key",
                    header.name
                )));
            }
            Ok(header)
        })
        .collect()
}

/// `--logs` names a file the target already writes to: a path that is missing or not a
/// readable file is the operator's mistake, said before any request (not a failed check).
fn check_log_source(path: &std::path::Path) -> Result<(), AppError> {
    let problem = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => match std::fs::File::open(path) {
            Ok(_) => return Ok(()),
            Err(e) => e.to_string(),
        },
        Ok(_) => "it is not a file".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(config_error(format!(
        "--logs {}: {problem} (give the file the target writes its logs to)",
        path.display()
    )))
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

#[cfg(test)]
mod tests {
    use super::shows_progress;
    use libtest_mimic::{Arguments, FormatSetting};

    #[test]
    fn progress_is_shown_only_where_libtest_holds_no_line_open() {
        let with = |format, threads| Arguments {
            format,
            test_threads: threads,
            ..Arguments::default()
        };
        assert!(shows_progress(&with(None, None), false, true));
        assert!(shows_progress(
            &with(Some(FormatSetting::Pretty), Some(4)),
            false,
            true
        ));
        // Not in CI logs, not with -q.
        assert!(!shows_progress(&with(None, None), false, false));
        assert!(!shows_progress(&with(None, None), true, true));
        // libtest keeps `test name ... ` open while the one thread runs it, or a line of dots.
        assert!(!shows_progress(&with(None, Some(1)), false, true));
        assert!(!shows_progress(
            &with(Some(FormatSetting::Terse), None),
            false,
            true
        ));
        assert!(!shows_progress(
            &with(Some(FormatSetting::Json), None),
            false,
            true
        ));
    }
}
