//! `apiconform serve`: the reference server alone, a sandbox for client developers.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use crate::error::{config_error, AppError, EXIT_OK};
use crate::flags::{DialectChoice, ServeArgs};
use crate::reference::{Dialect, Fault, RunningServer, ServerConfig, Variant, WebhookConfig};
use crate::stdout::to_stdout;

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

pub(crate) fn serve(
    runtime: &tokio::runtime::Runtime,
    args: ServeArgs,
) -> Result<ExitCode, AppError> {
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
    let dialect = match args.dialect {
        DialectChoice::Speak(dialect) => dialect,
        DialectChoice::List => {
            to_stdout(|out| {
                Dialect::ALL
                    .iter()
                    .try_for_each(|d| writeln!(out, "{:<28} {}", d.name(), d.description()))
            })?;
            return Ok(ExitCode::from(EXIT_OK));
        }
    };
    let variants = parse_variants(&args.variant)?;
    if !(args.rate_refill > 0.0 && args.rate_refill.is_finite()) || args.rate_limit == 0 {
        return Err(config_error(
            "--rate-limit and --rate-refill must be positive",
        ));
    }
    if args.webhook_secret.as_deref().is_some_and(str::is_empty) {
        return Err(config_error("--webhook-secret must not be empty"));
    }
    if args.webhook_allow_host.iter().any(|h| h.trim().is_empty()) {
        return Err(config_error("--webhook-allow-host must name a host"));
    }
    let defaults = ServerConfig::default();
    let config = ServerConfig {
        primary_key: args.key.unwrap_or(defaults.primary_key.clone()),
        second_key: args.second_key.or(defaults.second_key.clone()),
        broke_key: args.broke_key.or(defaults.broke_key.clone()),
        faults,
        variants,
        dialect,
        log_file: args.log_file.clone(),
        job_duration: Duration::from_millis(args.job_duration_ms),
        max_upload_bytes: args.max_upload_bytes,
        webhooks: WebhookConfig {
            secret: args.webhook_secret.clone(),
            allow_hosts: args.webhook_allow_host.clone(),
            ..WebhookConfig::default()
        },
        rate_limit: crate::reference::RateLimitConfig {
            capacity: args.rate_limit,
            refill_per_second: args.rate_refill,
        },
        ..defaults
    };
    let faults: Vec<String> = config.faults.iter().map(|f| f.to_string()).collect();
    let variants: Vec<String> = config.variants.iter().map(|v| v.to_string()).collect();
    let keys = accepted_keys(&config);
    let webhooks = webhook_summary(&config.webhooks);
    runtime.block_on(async move {
        let server = RunningServer::start(config, (args.host, args.port).into())
            .await
            .map_err(|e| {
                AppError::Environment(format!("cannot listen on {}:{}: {e}", args.host, args.port))
            })?;
        println!(
            "apiconform reference server listening on {}",
            server.base_url
        );
        println!("keys: {keys}");
        if !faults.is_empty() {
            println!("faults: {}", faults.join(", "));
        }
        if !variants.is_empty() {
            println!("variants: {}", variants.join(", "));
        }
        if dialect != Dialect::Standard {
            println!("dialect: {dialect}");
        }
        println!("webhooks: {webhooks}");
        if let Some(log) = &args.log_file {
            println!("request log: {}", log.display());
        }
        println!("press Ctrl-C to stop");
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown().await;
        Ok(ExitCode::from(EXIT_OK))
    })
}

/// Every key the sandbox accepts, with whose it is: the operator's own test keys, printed so
/// a client developer can copy them.
fn accepted_keys(config: &ServerConfig) -> String {
    let mut keys = vec![format!("{} (tenant A)", config.primary_key)];
    if let Some(key) = &config.second_key {
        keys.push(format!("{key} (tenant B)"));
    }
    if let Some(key) = &config.broke_key {
        keys.push(format!("{key} (no credits: creates get 402)"));
    }
    keys.join(", ")
}

/// Where webhooks go and whether they are signed; the secret itself is never shown.
fn webhook_summary(webhooks: &WebhookConfig) -> String {
    let mut hosts = vec!["loopback".to_owned()];
    hosts.extend(webhooks.allow_hosts.iter().map(|h| h.trim().to_owned()));
    let signing = if webhooks.secret.is_some() {
        "signed (X-Webhook-Signature)"
    } else {
        "unsigned (no --webhook-secret)"
    };
    format!("{signing}, delivered to {}", hosts.join(", "))
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
