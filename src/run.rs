//! One run, from a checked configuration to its exit code: [`run`] is the library's entry
//! point, used by the binary and the tests alike.
//!
//! `--list` and `--dry-run` stop after planning the checks: no server, no client, no key. A
//! run proper starts the embedded server when there is no `--base-url`, builds the one
//! client, probes the target, runs the selected checks as libtest trials, and writes every
//! report it was asked for.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, FormatSetting};

use crate::client::{ClientConfig, HttpClient};
use crate::config::NoTests;
use crate::config::{Keys, Mode, RunConfig, TargetSpec};
use crate::context::{RunContext, RunOptions};
use crate::error::{
    AppError, EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE,
};
use crate::events::{EventBus, EventSink, RunEvent};
use crate::interrupt::Interrupt;
use crate::json_events::JsonEvents;
use crate::record::RunRecord;
use crate::reference::{RunningServer, ServerConfig};
use crate::report::{self, ReportFiles, RunInfo};
use crate::runner::{listing_trials, planned_checks, Offered, Plan, PlannedCheck};
use crate::stdout::{print_headline, run_trials, to_stdout, STDOUT_CLOSED};
use crate::suite::Settings;

/// The embedded server regains this many requests per second after a burst, and the run
/// paces itself a little below it, so only the burst meets the limit.
const EMBEDDED_REFILL: f64 = 60.0;
const EMBEDDED_PACE: f64 = 50.0;
/// The embedded server is on this machine: the burst may go as fast as the machine allows,
/// well past the refill whatever else the machine is doing.
const EMBEDDED_MAX_RATE: f64 = 1000.0;
/// The embedded server's upload limit, which the run takes as the suite's documented one: a
/// file just over it is cheap to send, so `uploads::oversize` runs instead of being ignored.
const EMBEDDED_UPLOAD_LIMIT: u64 = 64 * 1024;
/// Run `config` on `runtime`: list, plan, or run the checks and report. The exit code is the
/// documented one; an error is a usage, environment or reachability problem, said in a line.
pub fn run(runtime: &tokio::runtime::Runtime, config: RunConfig) -> Result<ExitCode, AppError> {
    let checks = planned_checks(&config.suite)?;
    let trials = listing_trials(&checks);
    let selection = Selection::new(&config.libtest, &config.filters);
    if config.mode != Mode::Run {
        for notice in &config.notices {
            eprintln!("apiconform: {notice}");
        }
    }
    if config.mode == Mode::List {
        let settings = &config.suite.settings;
        to_stdout(|out| print_list(out, &checks, settings, &selection, &trials))?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    // Decided here, before any server or probe: a selection that runs nothing sends nothing.
    if !trials
        .iter()
        .any(|t| selection.selects(t) && !config.libtest.is_ignored(t))
    {
        return no_checks(config.no_tests, &config.filters);
    }
    if config.mode == Mode::DryRun {
        to_stdout(|out| print_plan(out, &checks, &selection, &trials, &config))?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    execute(runtime, config, &selection)
}

/// What the configuration offers the checks (the embedded server offers every tenant, writes
/// and its log).
fn offered(config: &RunConfig) -> Offered {
    match &config.target {
        TargetSpec::Embedded => Offered {
            writes: true,
            second_key: true,
            broke_key: true,
            logs: true,
            job_id: config.job_id.is_some(),
            webhook_receiver: true,
        },
        TargetSpec::Remote { keys, base_url } => Offered {
            writes: config.allow_writes,
            second_key: keys.second.is_some(),
            broke_key: keys.broke.is_some(),
            logs: config.logs.is_some(),
            job_id: config.job_id.is_some(),
            webhook_receiver: config.webhooks.listen_address(base_url).is_some(),
        },
    }
}

/// The target of a run proper: the user's, or the embedded server started for it.
struct Target {
    base_url: String,
    keys: Keys,
    /// The secret the embedded server signs its webhooks with.
    webhook_secret: Option<String>,
    embedded: Option<RunningServer>,
    embedded_log: Option<PathBuf>,
}

impl Target {
    /// The user's target as configured, or a freshly started embedded server.
    /// The embedded server signs its webhooks with `webhook_secret`, or a fresh secret, so
    /// that `webhooks::signature` runs by default.
    fn start(
        runtime: &tokio::runtime::Runtime,
        spec: &TargetSpec,
        webhook_secret: Option<&str>,
    ) -> Result<Target, AppError> {
        if let TargetSpec::Remote { base_url, keys } = spec {
            return Ok(Target {
                base_url: base_url.clone(),
                keys: keys.clone(),
                webhook_secret: webhook_secret.map(str::to_owned),
                embedded: None,
                embedded_log: None,
            });
        }
        let log = std::env::temp_dir().join(format!(
            "apiconform-{}-{:08x}.log",
            std::process::id(),
            rand::random::<u32>()
        ));
        let webhook_secret = webhook_secret
            .map(str::to_owned)
            .unwrap_or_else(|| format!("whsec_{:032x}", rand::random::<u128>()));
        // Jobs finish in half a second, so the whole default suite runs in a few seconds.
        let config = ServerConfig {
            webhooks: crate::reference::WebhookConfig {
                secret: Some(webhook_secret.clone()),
                ..crate::reference::WebhookConfig::default()
            },
            log_file: Some(log.clone()),
            job_duration: Duration::from_millis(500),
            max_upload_bytes: EMBEDDED_UPLOAD_LIMIT,
            rate_limit: crate::reference::RateLimitConfig {
                capacity: 40,
                refill_per_second: EMBEDDED_REFILL,
            },
            ..ServerConfig::with_random_keys()
        };
        let keys = Keys {
            primary: Some(config.primary_key.clone()),
            second: config.second_key.clone(),
            broke: config.broke_key.clone(),
        };
        let server = runtime
            .block_on(RunningServer::start(config, ([127, 0, 0, 1], 0).into()))
            .map_err(|e| {
                AppError::Environment(format!("cannot start the embedded reference server: {e}"))
            })?;
        Ok(Target {
            base_url: server.base_url.clone(),
            keys,
            webhook_secret: Some(webhook_secret),
            embedded: Some(server),
            embedded_log: Some(log),
        })
    }

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

/// Start the target, run the selected checks against it, and stop it again whatever happened.
fn execute(
    runtime: &tokio::runtime::Runtime,
    config: RunConfig,
    selection: &Selection,
) -> Result<ExitCode, AppError> {
    report::prepare_report_paths(&config.reports)?;
    let target = Target::start(runtime, &config.target, config.webhook_secret.as_deref())?;
    let result = run_checks(runtime, config, selection, &target);
    target.close(runtime);
    result
}

/// Run the selected checks against a started target, write the reports, and say how the
/// run ended.
fn run_checks(
    runtime: &tokio::runtime::Runtime,
    config: RunConfig,
    selection: &Selection,
    target: &Target,
) -> Result<ExitCode, AppError> {
    let embedded = target.embedded.is_some();
    let libtest_args = config.libtest.clone();
    let (mut suite, schemas, suite_hash) = (config.suite, config.schemas, config.suite_hash);
    if embedded {
        suite.settings.uploads.max_file_bytes = EMBEDDED_UPLOAD_LIMIT;
    }
    let interrupt = Interrupt::default();
    listen_for_signals(runtime, &interrupt);
    // The run's outputs, told every event as it happens: the JSON event stream, if asked for,
    // and the report files, written when the run has finished.
    let mut libtest_args = libtest_args;
    let json_events = matches!(libtest_args.format, Some(FormatSetting::Json)).then(|| {
        // libtest's own JSON printer quotes messages oddly: its output is dropped, and the
        // stream is written from the checks' events instead.
        libtest_args.logfile = Some(crate::json_events::DISCARDED.to_owned());
        Arc::new(JsonEvents::new(interrupt.clone()))
    });
    let report_files = Arc::new(ReportFiles::new(config.reports.clone()));
    let mut sinks: Vec<Arc<dyn EventSink>> = Vec::new();
    if let Some(events) = &json_events {
        sinks.push(Arc::clone(events) as Arc<dyn EventSink>);
    }
    sinks.push(Arc::clone(&report_files) as Arc<dyn EventSink>);
    let record = Arc::new(RunRecord::with_events(EventBus::new(sinks)));
    let show_progress = config.progress;
    let client_config = ClientConfig {
        second_key: target.keys.second.clone(),
        broke_key: target.keys.broke.clone(),
        requests_per_second: config.rate.or(embedded.then_some(EMBEDDED_PACE)),
        max_requests: config.max_requests,
        max_rate: config.max_rate.unwrap_or(if embedded {
            EMBEDDED_MAX_RATE
        } else {
            crate::client::DEFAULT_MAX_RATE
        }),
        progress: show_progress,
        extra_headers: config.extra_headers.clone(),
        tls: config.tls.clone(),
        webhook_secret: target.webhook_secret.clone(),
        ..ClientConfig::new(target.base_url.clone(), target.keys.primary.clone())
    };
    let client = HttpClient::new(client_config, &suite.settings, Arc::clone(&record))
        .map_err(crate::error::config_error)?;
    let options = RunOptions {
        allow_writes: config.allow_writes,
        strict: config.strict,
        strict_drift: config.strict_drift,
        logs: config.logs.clone().or_else(|| target.embedded_log.clone()),
        job_id: config.job_id.clone(),
        poll_interval: embedded.then_some(Duration::from_millis(100)),
        progress: show_progress,
        job_deadline: embedded.then_some(Duration::from_secs(30)),
        deadline: Some(Instant::now() + config.deadline),
        interrupt: interrupt.clone(),
        webhooks: config.webhooks.clone(),
    };
    let plan = Arc::new(Plan::new(RunContext::new(
        suite, schemas, client, record, options,
    ))?);
    let mut trials = plan.trials(runtime.handle());
    let headline = match &target.embedded {
        Some(server) => format!(
            "apiconform: no --base-url given, so testing the embedded reference server at {} \
             (fresh keys, writes allowed, second tenant, a tenant without credits, server log as log source, signed webhooks to a loopback receiver)",
            server.base_url
        ),
        None => format!(
            "apiconform: testing {} with suite {}",
            target.base_url,
            plan.context.suite.source.display()
        ),
    };
    print_headline(&libtest_args, &headline)?;
    for notice in &config.notices {
        plan.context.record.add_notice(notice);
    }
    if config.tls.accept_invalid_certs {
        let warning = format!(
            "--insecure: the TLS certificate of {} is not verified; anyone between here and there could read the key",
            target.base_url
        );
        eprintln!("warning: {warning}");
        // In every report too: a run without verification proves less.
        plan.context.record.add_notice(&warning);
    }
    let started_at = chrono::Utc::now();
    let clock = Instant::now();
    probe(runtime, &plan, &interrupt)?;

    // Trials come in phase order; `order` maps each back to its check.
    let order = plan.phase_order();
    let will_run = |t: &libtest_mimic::Trial| selection.selects(t) && !libtest_args.is_ignored(t);
    plan.expect_first_phase(
        trials
            .iter()
            .zip(&order)
            .filter(|(t, &i)| will_run(t) && !plan.checks[i].final_phase)
            .count(),
    );
    // Checks the suite marks ignored are not run, but they still belong in every report.
    let not_run: Vec<usize> = trials
        .iter()
        .zip(&order)
        .filter(|(t, _)| selection.selects(t) && libtest_args.is_ignored(t))
        .map(|(_, &i)| i)
        .collect();
    // libtest takes one filter; with several, the selection is made here (and libtest's
    // "filtered out" count is then 0).
    if config.filters.len() > 1 {
        trials.retain(|t| selection.selects(t));
    }
    if let Some(events) = &json_events {
        events.suite_started(trials.iter().filter(|t| selection.selects(t)).count());
    }
    for index in not_run {
        plan.record_not_run(
            index,
            "marked `ignored = true` in the suite; run it with --ignored or --include-ignored",
        );
    }
    let conclusion = run_trials(&libtest_args, trials, &interrupt);
    if let (Some(events), Some(conclusion)) = (&json_events, &conclusion) {
        events.suite_finished(conclusion, clock.elapsed());
    }
    // Where the run's time went, for `-v` (and scripts/bench.sh): what is neither a wait on
    // purpose nor a request in flight is the harness's own work.
    let (took, record) = (clock.elapsed(), &plan.context.record);
    let (waited, busy) = (record.waited(None), record.busy());
    tracing::info!(
        took_s = took.as_secs_f64(),
        waited_s = waited.as_secs_f64(),
        in_flight_s = busy.saturating_sub(waited).as_secs_f64(),
        own_s = took.saturating_sub(busy).as_secs_f64(),
        "where the run's time went: waited on purpose, requests in flight, the harness's own"
    );
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
        interrupted: interrupt.cause().map(str::to_owned),
    };
    let order: Vec<&str> = plan.checks.iter().map(|c| c.name.as_str()).collect();
    let secrets = plan.context.client.secrets();
    let report = report::build(info, &order, &plan.context.record, secrets);
    plan.context.record.events().emit(RunEvent::RunFinished {
        report: &report,
        secrets,
    });
    let write_errors = report_files.errors();
    // After libtest's lines; on stderr in JSON mode, where stdout is for machines.
    let summary = secrets.mask(&report::console::summary(&report));
    if conclusion.is_none() || interrupt.cause() == Some(STDOUT_CLOSED) {
        // Stdout closed: the reports are written, nothing more is said.
        for error in &write_errors {
            eprintln!("error: {error}");
        }
        return Err(AppError::StdoutClosed);
    }
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
            config.max_requests
        );
    }
    for error in &write_errors {
        eprintln!("error: {error}");
    }
    if let Some(cause) = interrupt.cause() {
        eprintln!(
            "apiconform: interrupted by {cause}: checks still running were ended as errored, \
             the others were not run{}",
            if config.reports.any() && write_errors.is_empty() {
                "; every report was written"
            } else {
                ""
            }
        );
        return Ok(ExitCode::from(interrupted_exit_code(cause)));
    }
    // A failed check outranks a report that could not be written after all: CI must see it.
    Ok(ExitCode::from(
        if conclusion.is_some_and(|c| c.has_failed()) {
            EXIT_CHECK_FAILED
        } else if !write_errors.is_empty() {
            EXIT_USAGE
        } else {
            EXIT_OK
        },
    ))
}

/// Ask the probe path without a key: any HTTP answer means reachable. An interrupt ends the
/// wait: the checks then end as interrupted, and the reports say so.
fn probe(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    interrupt: &Interrupt,
) -> Result<(), AppError> {
    let client = &plan.context.client;
    let path = &plan.context.settings().target.probe_path;
    let answered = runtime.block_on(async {
        tokio::select! {
            answer = client.reachable("run::probe", path) => Some(answer),
            _ = interrupt.raised() => None,
        }
    });
    match answered {
        Some(Err(e)) => Err(AppError::Unreachable {
            url: client.base_url().to_string(),
            cause: e.cause,
        }),
        Some(Ok(_)) | None => Ok(()),
    }
}

/// On the first SIGINT or SIGTERM, raise `interrupt` and say so in one line; on a second,
/// exit at once (the user or CI means it).
fn listen_for_signals(runtime: &tokio::runtime::Runtime, interrupt: &Interrupt) {
    let interrupt = interrupt.clone();
    runtime.spawn(async move {
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(e) => {
                tracing::warn!("cannot listen for SIGINT and SIGTERM: {e}");
                return;
            }
        };
        let first = signals.next().await;
        interrupt.raise(first);
        eprintln!("apiconform: {first} received: stopping the run and writing the reports (send it again to exit at once)");
        let second = signals.next().await;
        eprintln!("apiconform: {second} received again: exiting at once, without reports");
        std::process::exit(i32::from(interrupted_exit_code(second)));
    });
}

/// The exit code for a run stopped by signal `cause`: 128 + its number, as shells report it.
fn interrupted_exit_code(cause: &str) -> u8 {
    if cause == "SIGTERM" {
        EXIT_TERMINATED
    } else {
        EXIT_INTERRUPTED
    }
}

/// The signals that stop a run: Ctrl-C everywhere, and SIGTERM where there is one.
struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
        })
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = self.terminate.recv() => "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Which checks the command line selects: libtest's rules (--exact, --skip, --ignored) for
/// each FILTER, and, as in `cargo test`, a check any FILTER selects is in.
pub(crate) struct Selection {
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
    checks: &[PlannedCheck],
    settings: &Settings,
    selection: &Selection,
    trials: &[libtest_mimic::Trial],
) -> std::io::Result<()> {
    for (planned, trial) in checks.iter().zip(trials) {
        if !selection.selects(trial) {
            continue;
        }
        let needs = planned.check.needs(settings).describe();
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
    checks: &[PlannedCheck],
    selection: &Selection,
    trials: &[libtest_mimic::Trial],
    config: &RunConfig,
) -> std::io::Result<()> {
    let settings = &config.suite.settings;
    let target = match &config.target {
        TargetSpec::Remote { base_url, .. } => base_url.as_str(),
        TargetSpec::Embedded => "the embedded reference server",
    };
    writeln!(out, "apiconform: dry run against {target}; nothing is sent")?;
    let offered = offered(config);
    let mut writes = 0;
    for (planned, trial) in checks.iter().zip(trials) {
        if !selection.selects(trial) {
            continue;
        }
        let needs = planned.check.needs(settings);
        match offered.unmet(needs) {
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
        config.max_requests,
        config.max_rate.map(|r| r.to_string()).unwrap_or_else(|| "default".into()),
        config.deadline.as_secs_f64()
    )
}
