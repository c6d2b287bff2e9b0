//! Progress lines for a person watching a run at a terminal (a wait, a poll, a backoff), on
//! stderr. The binary decides whether they are shown at all; see its `shows_progress`.

use std::io::Write;

/// The line for `check`, as it is written.
fn line(check: &str, message: &str) -> String {
    format!("    {check}: {message}\n")
}

/// Write one progress line with a single write, so lines from checks running at once, and
/// libtest's own lines, are never cut into pieces by each other.
pub fn show(check: &str, message: &str) {
    let line = line(check, message);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_line_is_indented_named_and_ends_once() {
        assert_eq!(
            super::line("a::b", "waiting 1.0 s"),
            "    a::b: waiting 1.0 s\n"
        );
    }
}
