//! Writing to stdout without panicking when the reader goes away.

use std::io::Write;

use libtest_mimic::{Arguments, FormatSetting};

use crate::error::AppError;

/// The headline goes to stdout, except in JSON mode, where stdout is for machines.
pub(crate) fn print_headline(args: &Arguments, line: &str) -> Result<(), AppError> {
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
pub(crate) fn to_stdout(
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
