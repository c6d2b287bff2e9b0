//! The request log file: one JSON object per line, appended and flushed per
//! request, so that a harness reading it right after a response finds the line.
//!
//! The line is written before the response leaves the server, with a blocking
//! write under a mutex: lines are short and a test server's log is local.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;

/// An open, append-only log file.
#[derive(Debug)]
pub(crate) struct RequestLog {
    file: Mutex<File>,
}

impl RequestLog {
    /// Opens (creating if needed) `path` for appending.
    pub(crate) fn open(path: &Path) -> io::Result<RequestLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RequestLog {
            file: Mutex::new(file),
        })
    }

    /// Appends `line` and flushes. Failures are reported through tracing and
    /// otherwise ignored: a full disk must not turn answers into errors.
    pub(crate) fn write(&self, line: &Value) {
        let mut text = line.to_string();
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(err) = file.write_all(text.as_bytes()).and_then(|()| file.flush()) {
            tracing::warn!(error = %err, "failed to write the request log");
        }
    }
}
