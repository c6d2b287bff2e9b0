//! Writing to stdout without panicking when the reader goes away.

use std::io::Write;

use libtest_mimic::{Arguments, FormatSetting};

use crate::error::AppError;
use crate::interrupt::Interrupt;

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

/// The interrupt cause when whoever read stdout went away in the middle of a run.
pub(crate) const STDOUT_CLOSED: &str = "a closed stdout";

thread_local! {
    /// The run whose libtest printer writes from this thread, told when stdout closes.
    static PRINTING_RUN: std::cell::RefCell<Option<Interrupt>> = const { std::cell::RefCell::new(None) };
}

/// Run the trials as libtest does. libtest's printer unwraps every write, so a reader that
/// goes away mid-run (`apiconform | head -1`) makes it panic: that panic is kept quiet, it
/// stops the run like a signal would (so the reports are still written), and the result is
/// None. Any other panic is reported as usual.
pub(crate) fn run_trials(
    args: &Arguments,
    trials: Vec<libtest_mimic::Trial>,
    interrupt: &Interrupt,
) -> Option<libtest_mimic::Conclusion> {
    install_quiet_broken_pipe_hook();
    PRINTING_RUN.with(|run| *run.borrow_mut() = Some(interrupt.clone()));
    let conclusion = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        libtest_mimic::run(args, trials)
    }));
    PRINTING_RUN.with(|run| *run.borrow_mut() = None);
    match conclusion {
        Ok(conclusion) => Some(conclusion),
        Err(_) if interrupt.cause() == Some(STDOUT_CLOSED) => None,
        // Any other panic is a bug: it goes on as the panic it is.
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Once per process: a panic on a broken pipe in a thread that prints a run raises that
/// run's interrupt instead of printing a backtrace; every other panic goes to the hook that
/// was there before.
fn install_quiet_broken_pipe_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let broken_pipe = info
                .payload_as_str()
                .is_some_and(|message| message.contains("BrokenPipe"));
            let run = PRINTING_RUN.with(|run| run.borrow().clone());
            match run {
                Some(interrupt) if broken_pipe => {
                    interrupt.raise(STDOUT_CLOSED);
                }
                _ => previous(info),
            }
        }));
    });
}
