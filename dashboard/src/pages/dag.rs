//! A workflow's steps drawn as a graph: one column per depth (the longest
//! chain of dependencies before a step), arrows from each dependency, each
//! box named and coloured by its state (and the state written out).

use std::collections::HashMap;

use maud::{Markup, html};

/// One step to draw.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) depends_on: Vec<String>,
    /// Its state's name (`completed`, `dispatched`, ... or `not started`).
    pub(crate) state: String,
    /// A second line, such as fan-out progress (`12/20 items`).
    pub(crate) note: Option<String>,
}

const BOX_W: usize = 168;
const BOX_H: usize = 46;
const GAP_X: usize = 56;
const GAP_Y: usize = 18;
const PAD: usize = 8;

/// Each node's column: 0 for steps with no dependency, else one more than
/// the deepest dependency. `nodes` must be in dependency order.
fn depths(nodes: &[Node]) -> HashMap<&str, usize> {
    let mut depth: HashMap<&str, usize> = HashMap::new();
    for n in nodes {
        let d = n
            .depends_on
            .iter()
            .filter_map(|dep| depth.get(dep.as_str()))
            .map(|d| d + 1)
            .max()
            .unwrap_or(0);
        depth.insert(n.id.as_str(), d);
    }
    depth
}

/// The graph as inline SVG.
pub(crate) fn graph(nodes: &[Node]) -> Markup {
    let depth = depths(nodes);
    let mut rows_in: HashMap<usize, usize> = HashMap::new();
    let mut at: HashMap<&str, (usize, usize)> = HashMap::new();
    for n in nodes {
        let col = depth.get(n.id.as_str()).copied().unwrap_or(0);
        let row = rows_in.entry(col).or_insert(0);
        at.insert(
            n.id.as_str(),
            (PAD + col * (BOX_W + GAP_X), PAD + *row * (BOX_H + GAP_Y)),
        );
        *row += 1;
    }
    let cols = rows_in.keys().max().map_or(1, |c| c + 1);
    let rows = rows_in.values().max().copied().unwrap_or(1);
    let width = 2 * PAD + cols * BOX_W + cols.saturating_sub(1) * GAP_X;
    let height = 2 * PAD + rows * BOX_H + rows.saturating_sub(1) * GAP_Y;
    let label = format!(
        "Workflow graph: {}",
        nodes
            .iter()
            .map(|n| format!("{} {}", n.id, n.state))
            .collect::<Vec<_>>()
            .join(", ")
    );
    html! {
        div.dag-wrap {
            svg.dag viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) role="img" aria-label=(label) {
                title { (label) }
                defs {
                    marker #arrow viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse" {
                        path d="M 0 0 L 10 5 L 0 10 z" {}
                    }
                }
                @for n in nodes {
                    @for dep in &n.depends_on {
                        @if let (Some((x1, y1)), Some((x2, y2))) = (at.get(dep.as_str()), at.get(n.id.as_str())) {
                            @let (sx, sy, ex, ey) = (x1 + BOX_W, y1 + BOX_H / 2, *x2, y2 + BOX_H / 2);
                            @let mid = (sx + ex) / 2;
                            path.edge d={ "M " (sx) " " (sy) " C " (mid) " " (sy) ", " (mid) " " (ey) ", " (ex - 2) " " (ey) }
                                marker-end="url(#arrow)" {}
                        }
                    }
                }
                @for n in nodes {
                    @if let Some((x, y)) = at.get(n.id.as_str()) {
                        g class={ "node state-" (n.state.replace(' ', "-")) } {
                            rect x=(x) y=(y) width=(BOX_W) height=(BOX_H) rx="6" {}
                            text x=(x + 10) y=(y + 19) class="node-id" { (n.id) }
                            text x=(x + 10) y=(y + 36) class="node-state" {
                                (n.state) @if let Some(note) = &n.note { " · " (note) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, deps: &[&str]) -> Node {
        Node {
            id: id.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            state: "completed".into(),
            note: None,
        }
    }

    #[test]
    fn columns_follow_the_longest_chain() {
        let nodes = vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a", "b"]),
            node("d", &[]),
        ];
        let d = depths(&nodes);
        assert_eq!((d["a"], d["b"], d["c"], d["d"]), (0, 1, 2, 0));
        let svg = graph(&nodes).into_string();
        assert_eq!(svg.matches("class=\"edge\"").count(), 3);
    }
}
