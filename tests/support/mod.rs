//! Helpers shared by the integration tests: run the default suite in-process against a
//! reference server on an ephemeral loopback port.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apiconform::client::{ClientConfig, HttpClient};
use apiconform::context::{RunContext, RunOptions};
use apiconform::record::{CheckRecord, RunRecord};
use apiconform::reference::{
    Dialect, Fault, RateLimitConfig, RunningServer, ServerConfig, Variant, WebhookConfig,
};
use apiconform::runner::Plan;
use apiconform::schemas::SchemaSet;
use apiconform::suite::Suite;

/// The name of every check the bundled default suite makes, in suite order (a declaration
/// may expand to several), so tests assert exact counts that follow the suite.
pub fn default_check_names() -> Vec<String> {
    check_names(&Suite::load(None).expect("bundled suite"))
}

/// The flat suite (`suites/flat.toml`), for the reference server's `flat` dialect.
pub fn flat_suite_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("suites/flat.toml")
}

/// The name of every check `suite` makes, in suite order.
pub fn check_names(suite: &Suite) -> Vec<String> {
    suite
        .checks
        .iter()
        .flat_map(|decl| apiconform::checks::build(decl, suite).expect("the check builds"))
        .map(|(name, _)| name)
        .collect()
}

/// Assert that `outcomes` has one outcome for every check of the default suite, and that each
/// passed (no warning either); `what` names the run in the message.
pub fn assert_every_check_passed(outcomes: &BTreeMap<String, CheckRecord>, what: &str) {
    assert_every_check_of_passed(&default_check_names(), outcomes, what);
}

/// Like [`assert_every_check_passed`], for the checks named `names`.
pub fn assert_every_check_of_passed(
    names: &[String],
    outcomes: &BTreeMap<String, CheckRecord>,
    what: &str,
) {
    let mut expected = names.to_vec();
    expected.sort();
    assert_eq!(
        outcomes.keys().cloned().collect::<Vec<_>>(),
        expected,
        "{what}: every check of the suite has exactly one outcome"
    );
    let not_passed: Vec<String> = outcomes
        .values()
        .filter(|r| r.outcome != apiconform::record::Outcome::Passed)
        .map(|r| format!("{} {:?}: {}", r.name, r.outcome, r.message))
        .collect();
    assert!(
        not_passed.is_empty(),
        "{what}: checks that did not pass:\n{}",
        not_passed.join("\n")
    );
}

/// The reference server's upload limit in the suite tests, and the suite's `[uploads]
/// max_file_bytes` with it: small, so `uploads::oversize` sends a file just over it.
pub const SMALL_UPLOAD_LIMIT: u64 = 64 * 1024;

/// The secret the reference server signs its webhooks with in the suite tests, which the runs
/// verify them with.
pub const WEBHOOK_SECRET: &str = "whsec_apiconform_suite_tests";

/// A reference server with `faults`, fast jobs, and a log file in `dir`.
pub async fn start_server(
    faults: &[Fault],
    dir: &std::path::Path,
) -> (RunningServer, ServerConfig, PathBuf) {
    start_server_with(faults, &[], dir).await
}

/// Like [`start_server`], with conforming `variants` switched on too.
pub async fn start_server_with(
    faults: &[Fault],
    variants: &[Variant],
    dir: &std::path::Path,
) -> (RunningServer, ServerConfig, PathBuf) {
    start_server_in(Dialect::Standard, faults, variants, dir).await
}

/// Like [`start_server_with`], speaking `dialect`.
pub async fn start_server_in(
    dialect: Dialect,
    faults: &[Fault],
    variants: &[Variant],
    dir: &std::path::Path,
) -> (RunningServer, ServerConfig, PathBuf) {
    let log = dir.join("server.log");
    let config = ServerConfig {
        dialect,
        faults: faults.iter().copied().collect(),
        variants: variants.iter().copied().collect(),
        // Long enough for a few polls while processing (progress-goes-down needs two).
        job_duration: Duration::from_millis(500),
        log_file: Some(log.clone()),
        max_upload_bytes: SMALL_UPLOAD_LIMIT,
        webhooks: WebhookConfig {
            secret: Some(WEBHOOK_SECRET.to_owned()),
            ..WebhookConfig::default()
        },
        // A refill any burst outpaces, even on a busy machine; the run paces itself below it.
        rate_limit: RateLimitConfig {
            capacity: 40,
            refill_per_second: 40.0,
        },
        ..ServerConfig::with_random_keys()
    };
    let server = RunningServer::start(config.clone(), ([127, 0, 0, 1], 0).into())
        .await
        .expect("start the reference server on loopback");
    (server, config, log)
}

/// Run every check of the bundled default suite against a reference server with `faults`,
/// as the embedded run does (writes allowed, second key, log file); outcomes by check name.
pub async fn run_default_suite(faults: &[Fault]) -> BTreeMap<String, CheckRecord> {
    run_default_suite_with(faults, &[], false).await
}

/// Client pacing, requests per second: under the reference limit (40, or 8 with the
/// `sliding-window` variant), as a user would set `--rate` for the target.
/// Suite runs going at once in one test binary, whatever its tests ask for. Each run's burst
/// must outpace its server's refill (40 a second) and its reads must stay well under the
/// latency check's 2 s: a few runs at a time keep both true on two cores with other work
/// running, where dozens at once did not.
static SUITE_RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Like [`run_default_suite`], with conforming `variants` switched on and `strict` (SHOULD
/// findings fail rather than warn) as given.
pub async fn run_default_suite_with(
    faults: &[Fault],
    variants: &[Variant],
    strict: bool,
) -> BTreeMap<String, CheckRecord> {
    run_suite_against(None, Dialect::Standard, faults, variants, strict).await
}

/// Run every check of the suite at `suite_path` (the bundled one when None) against a
/// reference server speaking `dialect` with `faults` and `variants`, as
/// [`run_default_suite_with`] does.
pub async fn run_suite_against(
    suite_path: Option<&std::path::Path>,
    dialect: Dialect,
    faults: &[Fault],
    variants: &[Variant],
    strict: bool,
) -> BTreeMap<String, CheckRecord> {
    let _slot = SUITE_RUNS
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, config, log) = start_server_in(dialect, faults, variants, dir.path()).await;
    let mut suite = Suite::load(suite_path).expect("the suite loads");
    // The reference bucket holds 40 and refills 40/s: the burst empties it as long as it runs
    // faster than the refill; a cap of 1000 gives a slow machine room (and fits the budget).
    suite.settings.burst.max_requests = 1000;
    suite.settings.target.max_rate_limit_retries = 2;
    suite.settings.uploads.max_file_bytes = SMALL_UPLOAD_LIMIT;
    // Deliveries take about a second; only a fault that never retries waits this long.
    suite.settings.webhooks.timeout_seconds = 10.0;
    let schemas = SchemaSet::load(&suite).expect("bundled schemas");
    let record = Arc::new(RunRecord::default());
    let client = HttpClient::new(
        ClientConfig {
            second_key: config.second_key.clone(),
            broke_key: config.broke_key.clone(),
            // Above the sliding-window variant's 8 a second: the run must pace itself under it.
            requests_per_second: Some(30.0),
            // Room for a full-cap burst against a server that never limits, and the rest.
            max_requests: 3000,
            webhook_secret: Some(WEBHOOK_SECRET.to_owned()),
            ..ClientConfig::new(server.base_url.clone(), Some(config.primary_key.clone()))
        },
        &suite.settings,
        Arc::clone(&record),
    )
    .expect("client");
    let options = RunOptions {
        allow_writes: true,
        strict,
        strict_drift: false,
        logs: Some(log),
        job_id: None,
        poll_interval: Some(Duration::from_millis(50)),
        progress: false,
        job_deadline: Some(Duration::from_secs(5)),
        deadline: None,
        interrupt: Default::default(),
        webhooks: Default::default(),
    };
    let plan = Arc::new(
        Plan::new(RunContext::new(suite, schemas, client, record, options)).expect("plan"),
    );
    // Two at a time, like libtest on this machine, in the plan's phase order.
    let mut outcomes = BTreeMap::new();
    let indices = plan.phase_order();
    plan.expect_first_phase(plan.checks.iter().filter(|c| !c.final_phase).count());
    for pair in indices.chunks(2) {
        let runs = pair.iter().map(|&i| {
            let plan = Arc::clone(&plan);
            async move { plan.execute(i).await }
        });
        for record in futures_util::future::join_all(runs).await {
            outcomes.insert(record.name.clone(), record);
        }
    }
    server.shutdown().await;
    outcomes
}

/// Run the binary against a reference server with `faults`, as a user would: `--base-url`,
/// the key from a file, the second key from the environment, writes allowed, `-vv`, plus
/// `extra` arguments. Returns the output and the server's configuration (to look for keys).
pub async fn run_against_faults(
    faults: &[Fault],
    dir: &std::path::Path,
    extra: &[String],
) -> (Output, ServerConfig) {
    let (server, config, _log) = start_server(faults, dir).await;
    let key_file = dir.join("key");
    std::fs::write(&key_file, format!("{}\n", config.primary_key)).expect("write the key file");
    let mut args = vec![
        "--base-url".to_string(),
        server.base_url.clone(),
        "--key-file".into(),
        key_file.display().to_string(),
        "--allow-writes".into(),
        "--rate".into(),
        "50".into(),
        "-vv".into(),
    ];
    args.extend_from_slice(extra);
    let second = config.second_key.clone().unwrap_or_default();
    let out = run_bin_off_runtime(
        args,
        vec![("APICONFORM_SECOND_API_KEY", second)],
        Duration::from_secs(120),
    )
    .await;
    server.shutdown().await;
    (out, config)
}

/// [`run_bin`] from an async test, on a blocking thread so the test's servers keep serving.
pub async fn run_bin_off_runtime(
    args: Vec<String>,
    envs: Vec<(&'static str, String)>,
    limit: Duration,
) -> Output {
    tokio::task::spawn_blocking(move || {
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_bin(&args, &envs, limit)
    })
    .await
    .expect("the run's thread")
}

/// Run the apiconform binary with `args` and extra environment, killing it if it outlives
/// `limit`. Output is drained on threads, so a chatty run cannot block on a full pipe.
pub fn run_bin<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    envs: &[(&str, &str)],
    limit: Duration,
) -> Output {
    run_program(env!("CARGO_BIN_EXE_apiconform"), args, envs, limit)
}

/// Run `program` (e.g. a wrapper around the binary) as [`run_bin`] runs the binary, with none
/// of apiconform's environment variables from the developer's shell.
pub fn run_program<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    program: &str,
    args: &[S],
    envs: &[(&str, &str)],
    limit: Duration,
) -> Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in [
        "APICONFORM_API_KEY",
        "APICONFORM_SECOND_API_KEY",
        "APICONFORM_BROKE_API_KEY",
        "APICONFORM_CONFIG",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    for (k, v) in envs {
        command.env(k, v);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{program} {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Bytes as text, for assertions.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fail unless `document` is valid against the JSON report's published schema.
pub fn assert_valid_json_report(document: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/report.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the report schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(document)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the JSON report breaks its schema:\n{}",
        errors.join("\n")
    );
}
