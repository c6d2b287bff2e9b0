//! The team's config file (`--config PATH`, or `APICONFORM_CONFIG`): what a nightly job sets
//! once (target, suite, pacing, reports), so its command line is one short line. A flag on
//! the command line (or a key in the environment) wins over the file; lists (`headers`, `skip`) add to each other. Keys are
//! never read from it, only the files that hold them, so the file can be committed; nor is
//! `insecure`, which must show on the command line. Paths are relative to the file's folder.

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde::Deserialize;

use crate::error::{config_error, AppError};
use crate::flags::{NoTests, RunArgs};
use crate::suite::line_column;

/// The file as written. Every field is optional; an unknown one is an error.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    base_url: Option<String>,
    key_file: Option<PathBuf>,
    second_key_file: Option<PathBuf>,
    broke_key_file: Option<PathBuf>,
    #[serde(default)]
    headers: Vec<String>,
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    cert_key: Option<PathBuf>,
    webhook_listen: Option<std::net::SocketAddr>,
    webhook_public_url: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    suite: Option<PathBuf>,
    job_id: Option<String>,
    allow_writes: Option<bool>,
    strict: Option<bool>,
    strict_drift: Option<bool>,
    logs: Option<PathBuf>,
    rate: Option<f64>,
    max_requests: Option<u64>,
    max_rate: Option<f64>,
    deadline: Option<f64>,
    timeout: Option<f64>,
    connect_timeout: Option<f64>,
    junit: Option<PathBuf>,
    report_json: Option<PathBuf>,
    summary_md: Option<PathBuf>,
    #[serde(default)]
    filters: Vec<String>,
    #[serde(default)]
    skip: Vec<String>,
    no_tests: Option<toml::Spanned<String>>,
    test_threads: Option<toml::Spanned<usize>>,
    // Refused with a reason, not as unknown fields.
    key: Option<toml::Spanned<toml::Value>>,
    second_key: Option<toml::Spanned<toml::Value>>,
    broke_key: Option<toml::Spanned<toml::Value>>,
    secret_header: Option<toml::Spanned<toml::Value>>,
    webhook_secret: Option<toml::Spanned<toml::Value>>,
    insecure: Option<toml::Spanned<toml::Value>>,
}

/// Fill in `args` from the config file it names, if any. `on_command_line(id)` says whether
/// the flag `id` (its field name) was typed, for flags that have a default.
pub(crate) fn apply(
    args: &mut RunArgs,
    on_command_line: impl Fn(&str) -> bool,
) -> Result<(), AppError> {
    let Some(path) = args.config.clone() else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| config_error(format!("cannot read config file {}: {e}", path.display())))?;
    let at = |offset: usize, message: &str| {
        let (line, column) = line_column(&text, offset);
        config_error(format!("{}:{line}:{column}: {message}", path.display()))
    };
    let file: ConfigFile = toml::from_str(&text)
        .map_err(|e| at(e.span().map(|s| s.start).unwrap_or(0), e.message().trim()))?;
    for (refused, why) in [
        (&file.key, "keys are not read from a config file (it may be committed): set APICONFORM_API_KEY or `key_file`"),
        (&file.second_key, "keys are not read from a config file: set APICONFORM_SECOND_API_KEY or `second_key_file`"),
        (&file.broke_key, "keys are not read from a config file: set APICONFORM_BROKE_API_KEY or `broke_key_file`"),
        (&file.secret_header, "secret headers are not read from a config file: pass --secret-header"),
        (&file.webhook_secret, "secrets are not read from a config file: set APICONFORM_WEBHOOK_SECRET or `webhook_secret_file`"),
        (&file.insecure, "`insecure` is not read from a config file: pass --insecure on the command line, where it shows"),
    ] {
        if let Some(value) = refused {
            return Err(at(value.span().start, why));
        }
    }
    let dir = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let relative = |p: Option<PathBuf>| p.map(|p| dir.join(p));
    let or_file = |flag: &mut Option<PathBuf>, from_file: Option<PathBuf>| {
        if flag.is_none() {
            *flag = relative(from_file);
        }
    };
    // A key in the environment outranks the file's key file, as any flag does.
    let in_environment = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    for (flag, from_file, variable) in [
        (&mut args.key_file, file.key_file, "APICONFORM_API_KEY"),
        (
            &mut args.second_key_file,
            file.second_key_file,
            "APICONFORM_SECOND_API_KEY",
        ),
        (
            &mut args.broke_key_file,
            file.broke_key_file,
            "APICONFORM_BROKE_API_KEY",
        ),
        (
            &mut args.webhook_secret_file,
            file.webhook_secret_file,
            "APICONFORM_WEBHOOK_SECRET",
        ),
    ] {
        if !in_environment(variable) {
            or_file(flag, from_file);
        }
    }
    or_file(&mut args.cacert, file.cacert);
    or_file(&mut args.cert, file.cert);
    or_file(&mut args.cert_key, file.cert_key);
    or_file(&mut args.suite, file.suite);
    or_file(&mut args.logs, file.logs);
    or_file(&mut args.junit, file.junit);
    or_file(&mut args.report_json, file.report_json);
    or_file(&mut args.summary_md, file.summary_md);
    args.base_url = args.base_url.take().or(file.base_url);
    args.job_id = args.job_id.take().or(file.job_id);
    args.webhook_listen = args.webhook_listen.or(file.webhook_listen);
    args.webhook_public_url = args.webhook_public_url.take().or(file.webhook_public_url);
    args.rate = args.rate.or(file.rate);
    args.max_rate = args.max_rate.or(file.max_rate);
    args.timeout = args.timeout.or(file.timeout);
    args.connect_timeout = args.connect_timeout.or(file.connect_timeout);
    args.allow_writes |= file.allow_writes.unwrap_or(false);
    args.strict |= file.strict.unwrap_or(false);
    args.strict_drift |= file.strict_drift.unwrap_or(false);
    // The file's first, then the command line's.
    args.headers.splice(0..0, file.headers);
    args.skip.splice(0..0, file.skip);
    if args.filters.is_empty() {
        args.filters = file.filters;
    }
    if let (false, Some(n)) = (on_command_line("max_requests"), file.max_requests) {
        args.max_requests = n;
    }
    if let (false, Some(secs)) = (on_command_line("deadline"), file.deadline) {
        args.deadline = secs;
    }
    if let (false, Some(policy)) = (on_command_line("no_tests"), file.no_tests) {
        args.no_tests = NoTests::from_str(policy.get_ref(), false).map_err(|_| {
            at(
                policy.span().start,
                &format!(
                    "`no_tests` is `{}`: expected `fail`, `warn` or `pass`",
                    policy.get_ref()
                ),
            )
        })?;
    }
    if let (None, Some(threads)) = (args.test_threads, file.test_threads) {
        if *threads.get_ref() == 0 {
            return Err(at(
                threads.span().start,
                "`test_threads` must be at least 1",
            ));
        }
        args.test_threads = Some(threads.into_inner());
    }
    Ok(())
}
