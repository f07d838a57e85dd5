//! The one way tests wait for a state: poll a condition with a deadline and
//! report what was last seen when the deadline passes.

use std::future::Future;
use std::time::{Duration, Instant};

/// The answer of one probe in [`wait_until`].
#[derive(Debug)]
pub enum Check<T> {
    /// The awaited state was reached; `wait_until` returns this value.
    Done(T),
    /// Not yet; the text says what the probe saw, for the timeout message.
    NotYet(String),
}

/// Polls `probe` until it returns [`Check::Done`] or `deadline` passes.
///
/// Polling starts fast (10 ms) and backs off to 200 ms, so short waits stay
/// short without hammering Redis during long ones.
///
/// # Panics
///
/// When the deadline passes, with `what` and the probe's last description.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Check<T>>,
{
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        match probe().await {
            Check::Done(value) => return value,
            Check::NotYet(seen) => {
                if started.elapsed() >= deadline {
                    panic!(
                        "timed out after {:.1}s waiting for {what}; last saw: {seen}",
                        deadline.as_secs_f64()
                    );
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}
