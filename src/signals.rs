//! SIGTERM and SIGINT: the first asks for a graceful stop, the second for a
//! hurried one (in-flight jobs are handed back at once).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Tokens cancelled by the first and the second termination signal.
#[derive(Debug, Clone)]
pub(crate) struct Signals {
    pub(crate) graceful: CancellationToken,
    pub(crate) hurry: CancellationToken,
}

impl Signals {
    /// Starts listening; fails only if signal handlers cannot be installed.
    pub(crate) fn listen() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let signals = Self {
            graceful: CancellationToken::new(),
            hurry: CancellationToken::new(),
        };
        let tokens = signals.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            warn!(
                signal = name,
                "shutting down gracefully (send again to hurry)"
            );
            tokens.graceful.cancel();
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            warn!(
                signal = name,
                "second signal: handing in-flight jobs back now"
            );
            tokens.hurry.cancel();
        });
        Ok(signals)
    }
}
