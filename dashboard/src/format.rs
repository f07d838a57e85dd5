//! How values are written on pages: numbers with separators, sizes, times,
//! durations, JSON (pretty and cut to a length), and path segments.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// `s` as one path segment (queue names and job ids may hold `/`, `?`,
/// `#`, `{`, spaces or anything else).
pub(crate) fn seg(s: &str) -> String {
    queue_core::config::percent_encode(s)
}

/// `s` as a query value.
pub(crate) fn query_value(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `1234567` → `1,234,567`.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in the largest unit that keeps the number ≥ 1.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A time as `2026-11-28 21:40:12 UTC`.
pub(crate) fn time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(
            || format!("{ms} ms"),
            |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
}

/// A time in RFC 3339, for `<time datetime>`, which the page's script
/// turns into "3 min ago" in the reader's browser.
pub(crate) fn iso(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or_else(String::new, |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        })
}

/// A duration as `850 ms`, `12.3 s`, `4 min 10 s`, `3 h 5 min`, `2 d 4 h`.
pub(crate) fn duration_ms(ms: u64) -> String {
    let secs = ms / 1_000;
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1_000.0),
        60_000..=3_599_999 => format!("{} min {} s", secs / 60, secs % 60),
        3_600_000..=86_399_999 => format!("{} h {} min", secs / 3_600, secs % 3_600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3_600),
    }
}

/// A share as `12.5%`.
pub(crate) fn percent(share: f64) -> String {
    if share > 0.0 && share < 0.001 {
        "<0.1%".into()
    } else {
        format!("{:.1}%", share * 100.0)
    }
}

/// Pretty JSON, cut after `limit` bytes (on a character boundary); the
/// flag says whether it was cut.
pub(crate) fn json_cut(value: &Value, limit: usize) -> (String, bool) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    cut(text, limit)
}

/// `text` cut after `limit` bytes (on a character boundary).
pub(crate) fn cut(mut text: String, limit: usize) -> (String, bool) {
    if text.len() <= limit {
        return (text, false);
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    (text, true)
}

/// One line of `text`, at most `limit` characters, with `…` when cut.
pub(crate) fn line(text: &str, limit: usize) -> String {
    let first = text.lines().next().unwrap_or_default();
    if first.chars().count() <= limit && first.len() == text.trim_end().len() {
        return first.to_string();
    }
    let mut out: String = first.chars().take(limit).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sizes_and_durations_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_536), "1.5 KiB");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_300), "12.3 s");
        assert_eq!(duration_ms(250_000), "4 min 10 s");
        assert_eq!(duration_ms(11_100_000), "3 h 5 min");
        assert_eq!(percent(0.125), "12.5%");
    }

    #[test]
    fn path_segments_keep_their_slashes_and_braces_inside() {
        assert_eq!(seg("a/b c?{x}"), "a%2Fb%20c%3F%7Bx%7D");
        assert_eq!(seg("emails.v2-x_y"), "emails.v2-x_y");
        assert_eq!(query_value("a&b=c"), "a%26b%3Dc");
    }

    #[test]
    fn cuts_respect_characters() {
        let (text, cut_off) = cut("ééé".to_string(), 3);
        assert_eq!(text, "é");
        assert!(cut_off);
        assert_eq!(line("first\nsecond", 80), "first…");
        assert_eq!(line("short", 80), "short");
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
    }
}
