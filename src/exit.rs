//! How a command ends: exit code 0, 1 (something failed at run time) or 2
//! (the command line or config was wrong), with a one-line reason.

use std::fmt;

use queue_core::{ErrorKind, QueueError};

/// The command line or config is wrong; exit 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The exit code for a failed command.
pub(crate) fn code_for(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<UsageError>().is_some() {
        return 2;
    }
    match err.downcast_ref::<QueueError>() {
        Some(e) if e.kind() == ErrorKind::InvalidInput => 2,
        _ => 1,
    }
}

/// The error as one line: its causes joined with ": ", no newlines.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace(['\n', '\r'], " ")
}
