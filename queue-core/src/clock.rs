//! Wall-clock times as BullMQ writes them: milliseconds since the epoch,
//! from the calling process's clock (BullMQ never uses Redis `TIME`).

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` in ms since the epoch (0 for times before it).
pub fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now, in ms since the epoch.
pub fn now_ms() -> u64 {
    epoch_ms(SystemTime::now())
}
