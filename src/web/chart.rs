//! Small inline SVG charts (no script, no outside resources): one point or
//! bar per finished run, oldest on the left, the y axis from 0 to the
//! largest value.

use super::html::{esc, push};
use crate::history::stats::SeriesPoint;
use crate::status::RunStatus;

const W: f64 = 420.0;
const H: f64 = 140.0;
/// Room for the axis labels: left, right, top, bottom.
const PAD: (f64, f64, f64, f64) = (44.0, 10.0, 12.0, 24.0);

/// What a chart draws of each run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Series {
    /// Torrents stored: a line with a dot per run.
    Stored,
    /// Warnings: a bar per run, coloured by the run's status.
    Warnings,
}

impl Series {
    fn value(self, p: &SeriesPoint) -> u64 {
        match self {
            Series::Stored => p.stored,
            Series::Warnings => p.warnings,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Series::Stored => "Torrents stored",
            Series::Warnings => "Warnings per run",
        }
    }
}

/// The colour of a run's status (the page's badges use the same).
pub(super) fn status_color(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Success => "#2e7d32",
        RunStatus::Partial => "#b26a00",
        RunStatus::Failed => "#c62828",
        RunStatus::Interrupted => "#6d6d6d",
        RunStatus::Running => "#1565c0",
    }
}

/// The chart as an `<svg>` element (with a `<title>` per point: the run's
/// start and value), or a line saying there is nothing to draw yet.
pub(super) fn svg(series: Series, points: &[SeriesPoint]) -> String {
    let title = series.title();
    if points.is_empty() {
        return format!("<p class=\"muted\">{title}: no finished run yet.</p>");
    }
    let max = points
        .iter()
        .map(|p| series.value(p))
        .max()
        .unwrap_or(0)
        .max(1);
    let (left, right, top, bottom) = PAD;
    let plot_w = W - left - right;
    let plot_h = H - top - bottom;
    let n = points.len();
    let step = plot_w / n as f64;
    let x = |i: usize| left + step * (i as f64 + 0.5);
    let y = |v: u64| top + plot_h * (1.0 - v as f64 / max as f64);
    let mut out = String::new();
    push(
        &mut out,
        format_args!(
            "<svg class=\"chart\" role=\"img\" aria-label=\"{title}\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\">\
             <title>{title}</title>\
             <line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{yb}\" stroke=\"#999\"/>\
             <line x1=\"{left}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"#999\"/>\
             <text x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\" class=\"axis\">{max}</text>\
             <text x=\"{lx}\" y=\"{yb}\" text-anchor=\"end\" class=\"axis\">0</text>",
            yb = top + plot_h,
            xr = W - right,
            lx = left - 4.0,
            ty = top + 8.0,
        ),
    );
    match series {
        Series::Stored => {
            let path: Vec<String> = (points.iter().enumerate())
                .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(series.value(p))))
                .collect();
            push(
                &mut out,
                format_args!(
                    "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\" points=\"{}\"/>",
                    path.join(" ")
                ),
            );
            for (i, p) in points.iter().enumerate() {
                push(
                    &mut out,
                    format_args!(
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{}\"><title>{}: {} stored</title></circle>",
                        x(i),
                        y(p.stored),
                        status_color(p.status),
                        esc(&p.started_at),
                        p.stored
                    ),
                );
            }
        }
        Series::Warnings => {
            let bar_w = (step * 0.7).max(1.0);
            for (i, p) in points.iter().enumerate() {
                let v = series.value(p);
                let top_y = y(v);
                push(
                    &mut out,
                    format_args!(
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{}: {v} warnings</title></rect>",
                        x(i) - bar_w / 2.0,
                        top_y,
                        (top + plot_h - top_y).max(0.0),
                        status_color(p.status),
                        esc(&p.started_at),
                    ),
                );
            }
        }
    }
    let first = points
        .first()
        .map(|p| short_date(&p.started_at))
        .unwrap_or_default();
    let last = points
        .last()
        .map(|p| short_date(&p.started_at))
        .unwrap_or_default();
    push(
        &mut out,
        format_args!(
            "<text x=\"{left}\" y=\"{H0}\" class=\"axis\">{}</text>\
             <text x=\"{xr}\" y=\"{H0}\" text-anchor=\"end\" class=\"axis\">{}</text></svg>",
            esc(&first),
            esc(&last),
            H0 = H - 6.0,
            xr = W - right,
        ),
    );
    out
}

/// `2026-11-22T03:00:00Z` → `11-22 03:00`.
fn short_date(t: &str) -> String {
    match (t.get(5..10), t.get(11..16)) {
        (Some(d), Some(h)) => format!("{d} {h}"),
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(stored: u64, warnings: u64, status: RunStatus) -> SeriesPoint {
        SeriesPoint {
            run_id: "r".into(),
            started_at: "2026-11-22T03:00:00Z".into(),
            status,
            listed: stored + warnings,
            stored,
            warnings,
        }
    }

    #[test]
    fn one_mark_per_run_scaled_to_the_largest() {
        let pts = [
            point(4, 0, RunStatus::Success),
            point(5, 2, RunStatus::Partial),
            point(0, 0, RunStatus::Failed),
        ];
        let s = svg(Series::Stored, &pts);
        assert_eq!(s.matches("<circle").count(), 3);
        assert!(s.contains(">5</text>"), "{s}");
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        let w = svg(Series::Warnings, &pts);
        assert_eq!(w.matches("<rect").count(), 3);
        assert!(w.contains(status_color(RunStatus::Partial)), "{w}");
        assert!(w.contains(">2</text>") && w.contains("11-22 03:00"), "{w}");
        // All zero: the axis still goes to 1, nothing divides by zero.
        let z = svg(Series::Warnings, &pts[2..]);
        assert!(!z.contains("NaN") && z.contains(">1</text>"), "{z}");
        assert!(svg(Series::Stored, &[]).contains("no finished run yet"));
    }
}
