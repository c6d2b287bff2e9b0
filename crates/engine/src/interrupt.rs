//! A request from outside the run to stop it (SIGINT or SIGTERM from a terminal or a CI job
//! that timed out or was cancelled): checks still running are ended as errored, checks not
//! yet started are not run, and the binary then writes every report before it exits.

use std::sync::Arc;

use tokio::sync::watch;

/// A handle shared by whoever raises the interrupt (the signal listener) and everything that
/// must stop on it (the runner, the probe). Cloning shares the one state.
#[derive(Clone, Debug)]
pub struct Interrupt {
    cause: Arc<watch::Sender<Option<&'static str>>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            cause: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl Interrupt {
    /// Ask the run to stop, for `cause` (e.g. "SIGINT"). The first cause is kept; returns
    /// false when the run was already interrupted.
    pub fn raise(&self, cause: &'static str) -> bool {
        self.cause.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(cause);
            true
        })
    }

    /// The cause, once the run has been interrupted.
    pub fn cause(&self) -> Option<&'static str> {
        *self.cause.borrow()
    }

    /// Wait until the run is interrupted, and say why.
    pub async fn raised(&self) -> &'static str {
        let mut receiver = self.cause.subscribe();
        let cause = match receiver.wait_for(Option::is_some).await {
            Ok(cause) => *cause,
            // The sender lives as long as any handle, and this is one: never reached.
            Err(_) => None,
        };
        cause.unwrap_or("an interrupt")
    }

    /// Why a check was stopped or not run, in its message.
    pub fn message(cause: &str) -> String {
        format!("interrupted: the run was stopped by {cause} before this check finished")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_cause_is_kept_and_waiters_wake() {
        let interrupt = Interrupt::default();
        assert_eq!(interrupt.cause(), None);
        let waiter = tokio::spawn({
            let interrupt = interrupt.clone();
            async move { interrupt.raised().await }
        });
        assert!(interrupt.raise("SIGTERM"));
        assert!(!interrupt.raise("SIGINT"));
        assert_eq!(interrupt.cause(), Some("SIGTERM"));
        assert_eq!(waiter.await.unwrap(), "SIGTERM");
        // Raised already: returns at once.
        assert_eq!(interrupt.raised().await, "SIGTERM");
    }
}
