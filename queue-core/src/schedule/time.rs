//! When a schedule fires: next-run times computed as BullMQ computes them.
//!
//! Pure functions, no Redis; all times are milliseconds since the epoch.
//! The chains assume each run is taken on time (a worker fetches it at its
//! scheduled millisecond), which is when BullMQ's answer does not depend
//! on any clock.
//!
//! - Cron patterns go through `bullmq::job_scheduler::next_cron_millis`
//!   (croner), the function bullmq-official's worker uses to make a
//!   scheduler's next iteration. The next run after `t` is the first
//!   occurrence strictly after max(`t`, startDate) in the schedule's zone,
//!   as in BullMQ's Node worker (`defaultRepeatStrategy`, cron-parser), and
//!   nothing after endDate (an occurrence exactly at endDate still runs).
//! - Intervals (`every`) follow BullMQ's Lua rule ([`interval_next`]): a
//!   run at `t` produces the next at `t + every`, provided the run at `t`
//!   was not after endDate. That next run is not itself checked against
//!   endDate, so, exactly as in BullMQ, an interval schedule's last run may
//!   fall up to one interval past its end date.
//!
//! `tests/schedule_times.rs` compares these times with BullMQ 6.7's own
//! (the Node client on a real Redis), to the millisecond.
//!
//! # Where croner and BullMQ's Node client (cron-parser 5.10.3) disagree
//!
//! Only around clock changes, for patterns with runs in the skipped or
//! the repeated wall-clock time; elsewhere a sweep (patterns × zones ×
//! random times) found no difference. `tests/schedule_times.rs` pins each
//! kind with its exact times.
//!
//! - Skipped hour, one fixed time in it (`0 30 2 * * *`, Europe/Berlin,
//!   2027-03-28): croner runs at the end of the gap (03:00), cron-parser
//!   at the same minute an hour later (03:30).
//! - Skipped hour, other patterns with runs in it (`0 */15 2 * * *`,
//!   `0 30 2,14 * * *`, `0 0 */2 * * *`): croner drops those runs;
//!   cron-parser lets the hour after the gap stand in once (03:00, 03:30,
//!   03:00 respectively, then the pattern resumes).
//! - Repeated hour, an hour list or range over it (`0 0 1-3 * * *`): croner
//!   runs in both passes, cron-parser in the first only. (For `*` hours
//!   both run twice; for one fixed time both run once, in the first pass.)
//! - Repeated hour, reference in its second pass (`0 30 1 * * *`, New
//!   York, created or run late between 01:00 and 01:30 EST on
//!   2027-11-07): cron-parser still runs at 01:30 EST, croner waits a day.
//! - Clocks changing at midnight (America/Havana, America/Santiago,
//!   Asia/Beirut, Africa/Cairo): a midnight that does not exist runs at
//!   01:00 with croner and is skipped by cron-parser; a repeated midnight
//!   runs in its first pass with croner, in its second with cron-parser;
//!   and from the first pass cron-parser can skip a whole period (the next
//!   Saturday of `0 0 0 * * 6`, a month's `L` or `1`).
//! - Australia/Lord_Howe (a 30-minute change): after the autumn change
//!   cron-parser finds no next run for many patterns (`0 0 * * * *`,
//!   `0 0 2 * * *`), so a Node worker stops making iterations; croner
//!   carries on.
//!
//! Drover follows croner there: that is what bullmq-official's worker (a
//! Drover worker) schedules. A run produced by a Node worker follows
//! cron-parser instead.
//!
//! Two further differences belong to bullmq-official, not to croner, and
//! Drover follows BullMQ's Node client in both: bullmq-official's worker
//! and upsert do not give the end date to the cron computation (a Drover
//! worker makes one run past endDate where Node makes none), and a
//! scheduler without `tz` is read in UTC there but in the Node process's
//! local zone by Node (Drover always writes a zone).
//!
//! [`validate`] refuses croner-only syntax that BullMQ's Node client
//! rejects (a Node worker would stop such a schedule): `W`, a year field,
//! `+`, a lower-case `l`, `#` with a list or range, a bare `L` in a
//! weekday list. Two croner-only forms still pass: repeated values in a
//! list (`0,7`, `1-3,2`) and reversed named ranges (`SAT-SUN`).

use serde::{Deserialize, Serialize};

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Timing {
    /// A cron pattern (5 fields, or 6 with leading seconds) read in an IANA
    /// time zone.
    Cron {
        /// The pattern, as BullMQ stores it.
        pattern: String,
        /// IANA time zone (`UTC`, `Europe/Berlin`, …).
        tz: String,
    },
    /// A fixed interval.
    Every {
        /// The interval in milliseconds (at least 1).
        every_ms: u64,
    },
}

/// Checks that `timing` can fire: a cron pattern that both BullMQ's Node
/// client and bullmq-official read and that matches some date, a time
/// zone that exists, a nonzero interval. The message names the culprit
/// and is meant for people (an API error body, a CLI error).
pub fn validate(timing: &Timing) -> Result<(), String> {
    match timing {
        Timing::Every { every_ms: 0 } => {
            Err("every must be at least 1 (an interval in milliseconds)".to_string())
        }
        Timing::Every { .. } => Ok(()),
        Timing::Cron { pattern, tz } => {
            let bad = |why: &str| Err(format!("pattern {pattern:?} is not usable: {why}"));
            // Without a zone only the pattern is read, so an error here is
            // the pattern's; with the zone, any new error is the zone's.
            if let Err(e) = bullmq::job_scheduler::next_cron_millis(pattern, 0, None, None) {
                let detail = inner_message(&e);
                return if detail.contains("search limit") {
                    bad("it matches no date (a day the month never has, such as 30 2 or 31 4?)")
                } else {
                    bad(&format!(
                        "{detail}; give 5 fields (minute hour day-of-month month day-of-week) \
                         or 6 with leading seconds"
                    ))
                };
            }
            if let Some(why) = node_rejects(pattern) {
                return bad(&format!(
                    "{why}, which BullMQ's Node client (cron-parser) rejects"
                ));
            }
            if bullmq::job_scheduler::next_cron_millis(pattern, 0, Some(tz), None).is_err() {
                return Err(format!(
                    "tz {tz:?} is not a known IANA time zone (such as UTC or Europe/Berlin)"
                ));
            }
            Ok(())
        }
    }
}

/// The detail of a bullmq error, without its generic prefixes.
fn inner_message(e: &bullmq::Error) -> String {
    match e {
        bullmq::Error::InvalidConfig(msg) => msg
            .rsplit_once("': ")
            .map_or(msg.as_str(), |(_, detail)| detail)
            .to_string(),
        other => other.to_string(),
    }
}

/// Croner syntax that cron-parser 5.10 does not read: a Node worker would
/// fail to schedule such a pattern's next run.
fn node_rejects(pattern: &str) -> Option<&'static str> {
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    if fields.len() > 6 {
        return Some("it has a year field (7 fields)");
    }
    if pattern.contains('+') {
        return Some("it uses + (croner's day-of-month AND day-of-week)");
    }
    // Aliases such as @daily have one field and none of the below.
    let [.., dom, _month, dow] = fields.as_slice() else {
        return None;
    };
    if dom.contains(['W', 'w']) {
        return Some("it uses W (nearest weekday) in the day of month");
    }
    if dom.contains('l') || dow.contains('l') {
        return Some("it writes L in lower case");
    }
    if dow.contains('#') && (dow.contains(',') || dow.contains('-') || dow.contains("#L")) {
        return Some("it combines # in the day of week with a list, a range or L");
    }
    if dow.contains(',') && dow.split(',').any(|part| part == "L") {
        return Some("it lists a bare L in the day of week");
    }
    None
}

/// The first run strictly after `after_ms`.
///
/// - Cron: the first occurrence strictly after max(`after_ms`, `start_ms`)
///   in the zone, as BullMQ's worker computes it from a previous run at
///   `after_ms`; `None` if it is after `end_ms`.
/// - Every: `after_ms` is taken to be a run (the grid is anchored there),
///   so the next is `after_ms + every_ms`; while `start_ms` is still ahead
///   of `after_ms` the next run is `start_ms` itself (BullMQ's first run of
///   an interval schedule with a start date). `None` if `after_ms` is
///   after `end_ms`; the result itself may be after `end_ms`.
pub fn next_after(
    timing: &Timing,
    after_ms: u64,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
) -> Result<Option<u64>, String> {
    if end_ms.is_some_and(|end| after_ms > end) {
        return Ok(None);
    }
    match timing {
        Timing::Every { every_ms } => {
            validate(timing)?;
            Ok(match start_ms {
                Some(start) if start > after_ms => Some(start),
                _ => after_ms.checked_add(*every_ms),
            })
        }
        Timing::Cron { pattern, tz } => {
            let next =
                bullmq::job_scheduler::next_cron_millis(pattern, after_ms, Some(tz), start_ms)
                    .map_err(|e| match validate(timing) {
                        Err(invalid) => invalid,
                        Ok(()) => format!(
                            "no run of {pattern:?} in {tz} after {after_ms}: {}",
                            inner_message(&e)
                        ),
                    })?;
            Ok(next.filter(|t| end_ms.is_none_or(|end| *t <= end)))
        }
    }
}

/// The first run BullMQ gives a schedule created (upserted) at `now_ms`,
/// or `None` if it gets none (created after its end date, or no cron
/// occurrence before it).
///
/// Cron: [`next_after`] `now_ms`. Every: max(`start_ms`, `now_ms`): an
/// interval schedule runs at once, or at its start date.
pub fn first_run(
    timing: &Timing,
    now_ms: u64,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
) -> Result<Option<u64>, String> {
    match timing {
        Timing::Cron { .. } => next_after(timing, now_ms, start_ms, end_ms),
        Timing::Every { every_ms } => {
            validate(timing)?;
            if end_ms.is_some_and(|end| now_ms > end) {
                return Ok(None);
            }
            Ok(Some(interval_next(None, *every_ms, now_ms, 0, start_ms).0))
        }
    }
}

/// BullMQ's interval rule (`getJobSchedulerEveryNextMillis`, in the Lua
/// scripts of both BullMQ 6.7 and bullmq-official 1.4.4) for a schedule
/// whose pending run was `prev_ms` (if any), evaluated at `now_ms`.
/// Returns the next run and the grid offset BullMQ stores.
///
/// - No previous run: `start_ms` given → max(start, now); else a positive
///   `offset_ms` → the first grid point floor(now/every)·every + offset
///   after now; else now.
/// - With a previous run: prev + every; if that is before now (runs were
///   missed), the grid point floor(now/every)·every + offset, or the one
///   after it if that is not after now.
/// - An offset of 0 becomes next mod every.
///
/// An `every_ms` of 0 is taken as 1.
pub fn interval_next(
    prev_ms: Option<u64>,
    every_ms: u64,
    now_ms: u64,
    offset_ms: u64,
    start_ms: Option<u64>,
) -> (u64, u64) {
    let every = every_ms.max(1);
    let grid = |offset: u64| {
        let aligned = (now_ms / every * every).saturating_add(offset);
        if aligned <= now_ms {
            aligned.saturating_add(every)
        } else {
            aligned
        }
    };
    let next = match prev_ms {
        None => match start_ms {
            Some(start) => start.max(now_ms),
            None if offset_ms > 0 => grid(offset_ms),
            None => now_ms,
        },
        Some(prev) => {
            let next = prev.saturating_add(every);
            if next < now_ms { grid(offset_ms) } else { next }
        }
    };
    let offset = if offset_ms == 0 {
        next % every
    } else {
        offset_ms
    };
    (next, offset)
}

/// The next `count` runs after `after_ms`: [`next_after`] chained, each
/// run the reference for the next. Shorter if the schedule ends.
pub fn next_runs(
    timing: &Timing,
    after_ms: u64,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    count: usize,
) -> Result<Vec<u64>, String> {
    let mut runs = Vec::with_capacity(count.min(1024));
    let mut reference = after_ms;
    while runs.len() < count {
        match next_after(timing, reference, start_ms, end_ms)? {
            Some(next) => {
                runs.push(next);
                reference = next;
            }
            None => break,
        }
    }
    Ok(runs)
}

/// The runs in (`from_exclusive_ms`, `to_inclusive_ms`] of the chain that
/// [`next_runs`] makes from `from_exclusive_ms`: the earliest `max` of
/// them, and whether there were more. Used to count and catch up ticks
/// that passed unrun. Intervals are counted without walking them.
pub fn runs_between(
    timing: &Timing,
    from_exclusive_ms: u64,
    to_inclusive_ms: u64,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    max: usize,
) -> Result<(Vec<u64>, bool), String> {
    validate(timing)?;
    if let Timing::Every { every_ms } = timing {
        let Some(first) = next_after(timing, from_exclusive_ms, start_ms, end_ms)? else {
            return Ok((Vec::new(), false));
        };
        if first > to_inclusive_ms {
            return Ok((Vec::new(), false));
        }
        let every = *every_ms;
        let until_to = (to_inclusive_ms - first) / every + 1;
        // A run is made only by a run at or before the end date.
        let until_end = end_ms.map_or(u64::MAX, |end| {
            end.checked_sub(first)
                .map_or(1, |d| (d / every).saturating_add(2))
        });
        let total = until_to.min(until_end);
        let take = total.min(u64::try_from(max).unwrap_or(u64::MAX));
        let runs = (0..take).map(|k| first + k * every).collect();
        return Ok((runs, total > take));
    }
    let mut runs = Vec::new();
    let mut reference = from_exclusive_ms;
    while let Some(next) = next_after(timing, reference, start_ms, end_ms)? {
        if next > to_inclusive_ms {
            break;
        }
        if runs.len() == max {
            return Ok((runs, true));
        }
        runs.push(next);
        reference = next;
    }
    Ok((runs, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(pattern: &str, tz: &str) -> Timing {
        Timing::Cron {
            pattern: pattern.to_string(),
            tz: tz.to_string(),
        }
    }

    const EVERY_MINUTE: Timing = Timing::Every { every_ms: 60_000 };
    /// 2027-01-15T10:07:13.250Z.
    const T: u64 = 1_800_007_633_250;

    #[test]
    fn validation_names_the_culprit() {
        let err = validate(&Timing::Every { every_ms: 0 }).unwrap_err();
        assert!(err.contains("every"), "{err}");
        let err = validate(&cron("0 61 * * * *", "UTC")).unwrap_err();
        assert!(err.contains("\"0 61 * * * *\""), "{err}");
        let err = validate(&cron("* * *", "UTC")).unwrap_err();
        assert!(err.contains("5 fields"), "{err}");
        let err = validate(&cron("0 0 0 30 2 *", "UTC")).unwrap_err();
        assert!(err.contains("matches no date"), "{err}");
        let err = validate(&cron("0 0 * * *", "Europe/Atlantis")).unwrap_err();
        assert!(err.contains("tz \"Europe/Atlantis\""), "{err}");
        let err = validate(&cron("0 0 * * *", "")).unwrap_err();
        assert!(err.starts_with("tz"), "{err}");
        // A bad pattern is reported before a bad zone.
        let err = validate(&cron("nope", "Nowhere")).unwrap_err();
        assert!(err.starts_with("pattern"), "{err}");
    }

    #[test]
    fn croner_only_syntax_is_refused() {
        for pattern in [
            "0 0 0 15W * *",
            "0 0 0 LW * *",
            "0 0 0 * * * 2028",
            "0 0 0 1 * +1",
            "0 0 0 l * *",
            "0 0 0 * * 1#2,3#2",
            "0 0 0 * * 1-5#2",
            "0 0 0 * * 5#L",
            "0 0 0 * * 1,L",
        ] {
            let err = validate(&cron(pattern, "UTC")).unwrap_err();
            assert!(err.contains("cron-parser"), "{pattern}: {err}");
        }
        for pattern in [
            "*/5 * * * * *",
            "0 0 * * *",
            "0 0 0 L * *",
            "0 0 9 * * 5L",
            "0 0 9 * * MON#2",
            "0 0 0 * * WED",
            "0 0 1 JUL *",
            "@daily",
            "0 0 0 ? * 1",
        ] {
            validate(&cron(pattern, "Europe/Berlin")).unwrap();
        }
    }

    #[test]
    fn every_chains_from_the_reference() {
        assert_eq!(
            next_runs(&EVERY_MINUTE, T, None, None, 3).unwrap(),
            [T + 60_000, T + 120_000, T + 180_000]
        );
        // A start date still ahead is the first run, then the grid follows it.
        assert_eq!(
            next_runs(&EVERY_MINUTE, T, Some(T + 5), None, 2).unwrap(),
            [T + 5, T + 60_005]
        );
        // A run at or before the end date still makes the next one.
        assert_eq!(
            next_runs(&EVERY_MINUTE, T, None, Some(T + 90_000), 5).unwrap(),
            [T + 60_000, T + 120_000]
        );
        assert_eq!(
            next_after(&EVERY_MINUTE, T + 1, None, Some(T)).unwrap(),
            None
        );
        assert!(next_runs(&Timing::Every { every_ms: 0 }, T, None, None, 1).is_err());
    }

    #[test]
    fn first_runs_are_bullmqs() {
        assert_eq!(first_run(&EVERY_MINUTE, T, None, None).unwrap(), Some(T));
        assert_eq!(
            first_run(&EVERY_MINUTE, T, Some(T - 1), None).unwrap(),
            Some(T)
        );
        assert_eq!(
            first_run(&EVERY_MINUTE, T, Some(T + 7), None).unwrap(),
            Some(T + 7)
        );
        assert_eq!(
            first_run(&EVERY_MINUTE, T, None, Some(T - 1)).unwrap(),
            None
        );
        let daily = cron("0 0 * * *", "UTC");
        // 2027-01-16T00:00:00Z.
        assert_eq!(
            first_run(&daily, T, None, None).unwrap(),
            Some(1_800_057_600_000)
        );
        assert_eq!(
            first_run(&daily, T, None, Some(1_800_057_599_999)).unwrap(),
            None
        );
    }

    #[test]
    fn interval_rule_matches_the_lua_script() {
        // The protocol notes' observation: every 1000 from …217533.
        assert_eq!(interval_next(None, 1000, 217_533, 0, None), (217_533, 533));
        assert_eq!(
            interval_next(Some(217_533), 1000, 217_533, 533, None),
            (218_533, 533)
        );
        // Late by several intervals: back onto the grid, after now.
        assert_eq!(
            interval_next(Some(217_533), 1000, 221_000, 533, None),
            (221_533, 533)
        );
        assert_eq!(
            interval_next(Some(217_533), 1000, 221_533, 533, None),
            (222_533, 533)
        );
        // First run with an offset: the next grid point after now.
        assert_eq!(interval_next(None, 1000, 5_700, 200, None), (6_200, 200));
        assert_eq!(
            interval_next(None, 1000, 5_700, 0, Some(9_999)),
            (9_999, 999)
        );
    }

    #[test]
    fn cron_runs_are_strictly_after_and_respect_start_and_end() {
        let every_5s = cron("*/5 * * * * *", "UTC");
        // …:13.250 → :15, :20.
        assert_eq!(
            next_runs(&every_5s, T, None, None, 2).unwrap(),
            [T + 1_750, T + 6_750]
        );
        // Strictly after: a run time is not its own successor.
        assert_eq!(
            next_after(&every_5s, T + 1_750, None, None).unwrap(),
            Some(T + 6_750)
        );
        // Strictly after the start date too.
        assert_eq!(
            next_after(&every_5s, T, Some(T + 6_750), None).unwrap(),
            Some(T + 11_750)
        );
        // An end date exactly on a run keeps it.
        assert_eq!(
            next_runs(&every_5s, T, None, Some(T + 6_750), 5).unwrap(),
            [T + 1_750, T + 6_750]
        );
    }

    #[test]
    fn runs_between_counts_and_truncates() {
        let every_5s = cron("*/5 * * * * *", "UTC");
        let (runs, more) = runs_between(&every_5s, T, T + 60_000, None, None, 100).unwrap();
        assert_eq!(runs.len(), 12);
        assert!(!more);
        assert_eq!(runs[0], T + 1_750);
        let (runs, more) = runs_between(&every_5s, T, T + 60_000, None, None, 3).unwrap();
        assert_eq!(runs, [T + 1_750, T + 6_750, T + 11_750]);
        assert!(more);
        let (runs, more) = runs_between(&every_5s, T, T + 1_749, None, None, 3).unwrap();
        assert!(runs.is_empty() && !more);
        // Exactly `max` runs is not truncated.
        let (runs, more) = runs_between(&every_5s, T, T + 11_750, None, None, 3).unwrap();
        assert_eq!(runs.len(), 3);
        assert!(!more);

        // Intervals: the same as walking the chain, without walking it.
        for (start, end, to, max) in [
            (None, None, T + 600_000, 100),
            (None, None, T + 600_000, 4),
            (None, Some(T + 150_000), T + 600_000, 100),
            (None, Some(T + 120_000), T + 600_000, 100),
            (Some(T + 30_000), None, T + 200_000, 100),
            (Some(T + 30_000), Some(T + 30_000), T + 200_000, 100),
            (None, None, T + 59_999, 5),
            (None, Some(T - 1), T + 600_000, 5),
            (None, None, T + 600_000, 0),
        ] {
            let walked = next_runs(&EVERY_MINUTE, T, start, end, 1000).unwrap();
            let within: Vec<u64> = walked.into_iter().filter(|t| *t <= to).collect();
            let (runs, more) = runs_between(&EVERY_MINUTE, T, to, start, end, max).unwrap();
            assert_eq!(
                runs,
                within[..within.len().min(max)],
                "{start:?} {end:?} {to} {max}"
            );
            assert_eq!(more, within.len() > max, "{start:?} {end:?} {to} {max}");
        }
        // Many ticks are counted, not walked.
        let every_ms = Timing::Every { every_ms: 1 };
        let (runs, more) = runs_between(&every_ms, 0, u64::MAX / 2, None, None, 2).unwrap();
        assert_eq!(runs, [1, 2]);
        assert!(more);
    }

    #[test]
    fn zones_shift_runs() {
        // 09:00 in Berlin on 2027-06-10 is 07:00Z (summer time).
        let nine = cron("0 0 9 * * *", "Europe/Berlin");
        assert_eq!(
            next_after(&nine, 1_812_600_000_000, None, None).unwrap(),
            Some(1_812_610_800_000)
        );
    }
}
