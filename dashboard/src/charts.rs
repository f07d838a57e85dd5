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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_for_nonzero_minutes_and_the_label_is_escaped() {
        let svg = sparkline(&[0, 3, 0, 6], "a <b> label", "ok").into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("a &lt;b&gt; label"));
    }
}
