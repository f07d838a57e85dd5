//! Small inline SVG charts: no script, no library, readable by screen
//! readers through their label.

use maud::{Markup, html};

/// Bars of `counts` (oldest first), `width`×`height` px, labelled.
pub(crate) fn sparkline(counts: &[u64], label: &str, class: &str) -> Markup {
    const WIDTH: f64 = 120.0;
    const HEIGHT: f64 = 18.0;
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = WIDTH / counts.len().max(1) as f64;
    let bar = (step - 0.5).max(0.5);
    html! {
        svg class={ "spark " (class) } viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT)
            role="img" aria-label=(label) {
            title { (label) }
            line x1="0" y1=(HEIGHT - 0.5) x2=(WIDTH) y2=(HEIGHT - 0.5) class="axis" {}
            @for (i, n) in counts.iter().enumerate() {
                @if *n > 0 {
                    @let h = ((*n as f64 / max) * (HEIGHT - 2.0)).max(1.5);
                    rect x=(format!("{:.2}", i as f64 * step)) y=(format!("{:.2}", HEIGHT - h))
                        width=(format!("{bar:.2}")) height=(format!("{h:.2}")) {}
                }
            }
        }
    }
}

/// Points a [`step_lines`] chart keeps at most (samples are merged into
/// this many buckets, each keeping its largest counts).
const STEP_POINTS: usize = 240;

/// Desired (dashed) and actual (solid) worker counts over time, as two
/// step lines, with the largest count and the time span written out.
pub(crate) fn step_lines(samples: &[queue_core::autoscale::HistorySample], label: &str) -> Markup {
    const WIDTH: f64 = 600.0;
    const HEIGHT: f64 = 120.0;
    if samples.is_empty() {
        return html! { p.muted { "No samples yet." } };
    }
    let per = samples.len().div_ceil(STEP_POINTS);
    let buckets: Vec<(u64, u32, u32)> = samples
        .chunks(per)
        .map(|c| {
            (
                c[0].at_ms,
                c.iter().map(|s| s.desired).max().unwrap_or(0),
                c.iter().map(|s| s.actual).max().unwrap_or(0),
            )
        })
        .collect();
    let top = buckets
        .iter()
        .map(|(_, d, a)| (*d).max(*a))
        .max()
        .unwrap_or(0)
        .max(1);
    let step = WIDTH / buckets.len() as f64;
    let y = |v: u32| HEIGHT - 4.0 - f64::from(v) / f64::from(top) * (HEIGHT - 8.0);
    let path = |pick: fn(&(u64, u32, u32)) -> u32| {
        let mut d = String::new();
        for (i, b) in buckets.iter().enumerate() {
            let (x0, x1, yv) = (i as f64 * step, (i + 1) as f64 * step, y(pick(b)));
            let verb = if i == 0 { 'M' } else { 'L' };
            d.push_str(&format!("{verb}{x0:.1} {yv:.1} L{x1:.1} {yv:.1} "));
        }
        d
    };
    let first = buckets[0].0;
    let last = samples[samples.len() - 1].at_ms;
    html! {
        svg.steps viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT) role="img" aria-label=(label) {
            title { (label) }
            line.axis x1="0" y1=(HEIGHT - 0.5) x2=(WIDTH) y2=(HEIGHT - 0.5) {}
            path.desired d=(path(|b| b.1)) {}
            path.actual d=(path(|b| b.2)) {}
        }
        p.note { "Up to " (top) " workers; from " (crate::html::when(first)) " to " (crate::html::when(last)) "." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_histories_are_merged_into_a_bounded_number_of_steps() {
        let samples: Vec<_> = (0..7_200u32)
            .map(|i| queue_core::autoscale::HistorySample {
                at_ms: u64::from(i) * 500,
                desired: if i == 3_000 { 9 } else { 2 },
                actual: 2,
                recommended: 2,
            })
            .collect();
        let svg = step_lines(&samples, "h").into_string();
        // One move or line pair per bucket, two paths.
        assert_eq!(svg.matches(" L").count(), 2 * (2 * STEP_POINTS) - 2);
        assert!(
            svg.contains("Up to 9 workers"),
            "a one-sample spike survives the merge"
        );
    }

    #[test]
    fn bars_only_for_nonzero_minutes_and_the_label_is_escaped() {
        let svg = sparkline(&[0, 3, 0, 6], "a <b> label", "ok").into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("a &lt;b&gt; label"));
    }
}
