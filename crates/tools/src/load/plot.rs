//! `palisade load --plot FILE.svg`: the latency-by-percentile chart, drawn by hand as SVG.
//!
//! The x axis is logarithmic in the distance to 100% (`-log10(1 - p)`), so 50%, 90%, 99%,
//! 99.9%... are evenly spaced and the tail gets the room it deserves; the y axis is linear
//! latency from zero. One polyline, sampled from the histogram, with gridlines and labels.
//! Must not read files or histograms other than the one given.

use hdrhistogram::Histogram;
use std::fmt::Write;

const W: f64 = 860.0;
const H: f64 = 500.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 64.0;

/// Escapes text for SVG character data and attribute values.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A round upper bound for the y axis and its step: 1, 2 or 5 times a power of ten.
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let raw_step = max / 5.0;
    let mag = 10f64.powf(raw_step.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| s * 5.0 >= max)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

/// The label of the x tick `decades` nines away from 0: 0%, 90%, 99%, 99.9%...
fn percentile_label(decades: u32) -> String {
    match decades {
        0 => "0%".into(),
        1 => "90%".into(),
        d => format!("99.{}%", "9".repeat(d as usize - 2)),
    }
}

/// Formats a tick value with just enough decimals for `step`.
fn tick_text(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// The chart for `hist` (latencies in ns). `title` and `subtitle` are shown at the top.
pub fn render(hist: &Histogram<u64>, title: &str, subtitle: &str) -> String {
    let count = hist.len();
    // As many nines as the sample supports (at least one, at most six).
    let decades = ((count.max(10) as f64).log10().floor() as u32).clamp(1, 6);
    let max_ns = hist.max() as f64;
    let (unit, div) = if max_ns >= 1e6 {
        ("ms", 1e6)
    } else {
        ("µs", 1e3)
    };
    let (y_max, y_step) = nice_axis(max_ns / div);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x_of = |d: f64| LEFT + d / f64::from(decades) * plot_w;
    let y_of = |v: f64| TOP + plot_h - (v / y_max).min(1.0) * plot_h;

    let mut svg = String::with_capacity(16 * 1024);
    let _ = write!(
        svg,
        "<?xml version='1.0' encoding='UTF-8'?>\n\
         <svg xmlns='http://www.w3.org/2000/svg' width='{W}' height='{H}' viewBox='0 0 {W} {H}' \
         font-family='Helvetica, Arial, sans-serif' font-size='12'>\n\
         <rect x='0' y='0' width='{W}' height='{H}' fill='white'/>\n\
         <text x='{LEFT}' y='26' font-size='17' font-weight='bold'>{}</text>\n\
         <text x='{LEFT}' y='46' fill='#555'>{}</text>\n",
        esc(title),
        esc(subtitle)
    );
    // Horizontal gridlines and y labels.
    let mut v = 0.0;
    while v <= y_max + y_step / 2.0 {
        let y = y_of(v);
        let _ = writeln!(
            svg,
            "<line x1='{LEFT}' y1='{y:.1}' x2='{:.1}' y2='{y:.1}' stroke='#e3e3e3'/>\
             <text x='{:.1}' y='{:.1}' text-anchor='end' fill='#333'>{}</text>",
            LEFT + plot_w,
            LEFT - 8.0,
            y + 4.0,
            tick_text(v, y_step)
        );
        v += y_step;
    }
    // Vertical gridlines and percentile labels.
    for d in 0..=decades {
        let x = x_of(f64::from(d));
        let _ = writeln!(
            svg,
            "<line x1='{x:.1}' y1='{TOP}' x2='{x:.1}' y2='{:.1}' stroke='#e3e3e3'/>\
             <text x='{x:.1}' y='{:.1}' text-anchor='middle' fill='#333'>{}</text>",
            TOP + plot_h,
            TOP + plot_h + 18.0,
            percentile_label(d)
        );
    }
    // Axes and their titles.
    let _ = writeln!(
        svg,
        "<line x1='{LEFT}' y1='{TOP}' x2='{LEFT}' y2='{b:.1}' stroke='#333'/>\
         <line x1='{LEFT}' y1='{b:.1}' x2='{r:.1}' y2='{b:.1}' stroke='#333'/>\n\
         <text x='{cx:.1}' y='{xt:.1}' text-anchor='middle' fill='#333'>percentile (log scale: each step adds a nine)</text>\n\
         <text transform='translate(22 {cy:.1}) rotate(-90)' text-anchor='middle' fill='#333'>latency ({unit})</text>",
        b = TOP + plot_h,
        r = LEFT + plot_w,
        cx = LEFT + plot_w / 2.0,
        xt = H - 18.0,
        cy = TOP + plot_h / 2.0,
    );
    if count > 0 {
        const SAMPLES: u32 = 400;
        let mut points = String::with_capacity(SAMPLES as usize * 16);
        for i in 0..=SAMPLES {
            let d = f64::from(decades) * f64::from(i) / f64::from(SAMPLES);
            let q = 1.0 - 10f64.powf(-d);
            let value = hist.value_at_quantile(q) as f64 / div;
            let _ = write!(points, "{:.1},{:.1} ", x_of(d), y_of(value));
        }
        let _ = writeln!(
            svg,
            "<polyline fill='none' stroke='#1f6fb2' stroke-width='2' points='{}'/>",
            points.trim_end()
        );
        // Markers and values at the usual percentiles.
        // p50 is one factor of two away from 100%: -log10(0.5) = log10(2).
        for (d, name) in [
            (std::f64::consts::LOG10_2, "p50"),
            (2.0, "p99"),
            (3.0, "p99.9"),
        ] {
            if d > f64::from(decades) {
                continue;
            }
            let q = 1.0 - 10f64.powf(-d);
            let value = hist.value_at_quantile(q) as f64 / div;
            let (x, y) = (x_of(d), y_of(value));
            let _ = writeln!(
                svg,
                "<circle cx='{x:.1}' cy='{y:.1}' r='3.5' fill='#1f6fb2'/>\
                 <text x='{:.1}' y='{:.1}' fill='#1f6fb2'>{name} {value:.3} {unit}</text>",
                x + 6.0,
                y - 8.0
            );
        }
    } else {
        let _ = writeln!(
            svg,
            "<text x='{:.1}' y='{:.1}' text-anchor='middle' fill='#a00'>no verdicts were received</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::new_histogram;
    use xmlparser::{Token, Tokenizer};

    /// Parses the whole document; returns the element names in order.
    fn well_formed(svg: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut depth = 0i32;
        for token in Tokenizer::from(svg) {
            match token.unwrap_or_else(|e| panic!("not well-formed: {e}\n{svg}")) {
                Token::ElementStart { local, .. } => {
                    names.push(local.to_string());
                    depth += 1;
                }
                Token::ElementEnd { end, .. } => match end {
                    xmlparser::ElementEnd::Open => {}
                    _ => depth -= 1,
                },
                _ => {}
            }
        }
        assert_eq!(depth, 0, "unbalanced elements");
        names
    }

    #[test]
    fn chart_is_well_formed_with_axes_labels_and_a_line() {
        let mut h = new_histogram();
        for i in 1..=100_000u64 {
            h.record(1_000_000 + i * 10).unwrap();
        }
        h.record(25_000_000).unwrap();
        let svg = render(&h, "Palisade load <rate max> & co", "100001 verdicts");
        let names = well_formed(&svg);
        assert_eq!(names.first().map(String::as_str), Some("svg"));
        assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 1);
        for label in [
            "0%",
            "90%",
            "99%",
            "99.9%",
            "99.99%",
            "99.999%",
            "latency (ms)",
            "p99 ",
        ] {
            assert!(svg.contains(label), "missing {label}");
        }
        assert!(svg.contains("Palisade load &lt;rate max&gt; &amp; co"));
        // 100001 samples support five nines, not six.
        assert!(!svg.contains("99.9999%"));
        let points = svg
            .split("points='")
            .nth(1)
            .unwrap()
            .split('\'')
            .next()
            .unwrap();
        assert_eq!(points.split(' ').count(), 401);
    }

    #[test]
    fn empty_and_tiny_histograms_still_draw() {
        let h = new_histogram();
        let svg = render(&h, "t", "s");
        well_formed(&svg);
        assert!(svg.contains("no verdicts"));
        let mut h = new_histogram();
        h.record(1500).unwrap();
        let svg = render(&h, "t", "s");
        well_formed(&svg);
        assert!(svg.contains("latency (µs)") && svg.contains("90%"));
    }

    #[test]
    fn axis_steps_are_round() {
        let close = |(a, b): (f64, f64), (x, y): (f64, f64)| {
            assert!(
                (a - x).abs() < 1e-9 && (b - y).abs() < 1e-9,
                "{a},{b} vs {x},{y}"
            )
        };
        close(nice_axis(7.3), (8.0, 2.0));
        close(nice_axis(0.42), (0.5, 0.1));
        close(nice_axis(100.0), (100.0, 20.0));
        assert_eq!(percentile_label(4), "99.99%");
        assert_eq!(tick_text(0.30000000000000004, 0.1), "0.3");
    }
}
