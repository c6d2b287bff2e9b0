//! The process entry point: parse the flags, check them into a configuration, run it (or
//! serve), and map the result to an exit code. Every error ends as one line on stderr.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::config::{Mode, RunConfig};
use crate::error::AppError;
use crate::flags::{Cli, Command, LogFormat};
use crate::stdout::to_stdout;

/// The process entry point: every error ends as one line on stderr and a documented exit code.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(message) = cli.run.contradiction() {
        Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit();
    }
    init_logging(cli.run.verbose, cli.run.log_format);
    let result = match cli.command {
        Some(Command::Serve(args)) => runtime(true).and_then(|rt| crate::serve::serve(&rt, *args)),
        Some(Command::Completions { shell }) => to_stdout(|out| {
            clap_complete::generate(shell, &mut Cli::command(), "apiconform", out);
            Ok(())
        })
        .map(|()| ExitCode::SUCCESS),
        Some(Command::Man) => to_stdout(|out| clap_mangen::Man::new(Cli::command()).render(out))
            .map(|()| ExitCode::SUCCESS),
        None => {
            let typed = |id: &str| {
                matches!(
                    matches.value_source(id),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            };
            crate::config_file::apply(&mut cli.run, typed)
                .and_then(|()| RunConfig::from_flags(cli.run))
                .and_then(|config| {
                    // `--list` sends nothing: it gets a runtime without worker threads.
                    runtime(config.mode != Mode::List).and_then(|rt| crate::run(&rt, config))
                })
        }
    };
    result.unwrap_or_else(|e| fail(&e))
}

/// The async runtime, built once the command is known: with worker threads for a run or the
/// server, on the calling thread alone for what sends nothing.
fn runtime(workers: bool) -> Result<tokio::runtime::Runtime, AppError> {
    let mut builder = if workers {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| AppError::Environment(format!("cannot start the async runtime: {e}")))
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
