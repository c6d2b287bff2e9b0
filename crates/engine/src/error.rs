//! Errors that end a run before or instead of the checks, and the exit codes they map to.
//!
//! Check failures are not errors here: they are outcomes in the run record. These are the
//! things the user can fix (a flag, a suite file, a schema) and a target that cannot be reached.

use std::process::ExitCode;

/// Every check passed (warnings allowed unless `--strict`).
pub const EXIT_OK: u8 = 0;
/// Usage or configuration error: bad flag, unreadable or malformed suite, schema that does not compile.
pub const EXIT_USAGE: u8 = 2;
/// The target could not be reached at all.
pub const EXIT_UNREACHABLE: u8 = 3;
/// The filters selected no check to run, and `--no-tests=fail` (the default) says that is an
/// error: a typo in a CI filter must not pass by running nothing.
pub const EXIT_NO_CHECKS: u8 = 4;
/// Stdout was closed before the output ended: the status a shell shows for a program
/// SIGPIPE ended (128 + 13), as `ls | head -1` gives.
pub const EXIT_STDOUT_CLOSED: u8 = 141;
/// The run was stopped by SIGINT (128 + 2, what a shell shows for Ctrl-C); reports were
/// written.
pub const EXIT_INTERRUPTED: u8 = 130;
/// The run was stopped by SIGTERM (128 + 15, what CI sends on a timeout or a cancel);
/// reports were written.
pub const EXIT_TERMINATED: u8 = 143;
/// A check failed (the libtest convention).
pub const EXIT_CHECK_FAILED: u8 = 101;

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Something the user gave us is wrong; the message says what and where.
    #[error("{0}")]
    Config(String),
    /// No HTTP response at all from the target.
    #[error("cannot reach {url}: {cause}")]
    Unreachable { url: String, cause: String },
    /// The machine refused something the harness needs (a socket, a thread, a file).
    #[error("{0}")]
    Environment(String),
    /// The filters selected no check to run (`--no-tests=fail`).
    #[error("{0}")]
    NoChecks(String),
    /// Whoever read stdout went away (`--list | head -1`): not worth a message.
    #[error("stdout was closed")]
    StdoutClosed,
}

impl AppError {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            AppError::Config(_) => EXIT_USAGE,
            AppError::Unreachable { .. } => EXIT_UNREACHABLE,
            AppError::Environment(_) => EXIT_USAGE,
            AppError::NoChecks(_) => EXIT_NO_CHECKS,
            AppError::StdoutClosed => EXIT_STDOUT_CLOSED,
        })
    }
}

/// Shorthand for configuration errors.
pub fn config_error(message: impl Into<String>) -> AppError {
    AppError::Config(message.into())
}
