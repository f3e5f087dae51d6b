//! SVG line charts of benchmark results, written by hand (a few dozen elements each):
//! throughput against concurrency, and latency percentiles, one line per system.

use std::fmt::Write;

/// One line of a chart: its name and its points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, axis labels, x tick labels at the x values, and the y axis on a
/// linear or a log10 scale.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_ticks: Vec<(f64, String)>,
    pub log_y: bool,
    pub series: Vec<Series>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLOURS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round step for about five ticks over `span`.
fn step(span: f64) -> f64 {
    let raw = span / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

fn label(value: f64) -> String {
    if value >= 1000.0 {
        // Thousands separated, as in the tables.
        crate::report::thousands(value)
    } else if value >= 10.0 || value == value.trunc() {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

impl Chart<'_> {
    pub fn svg(&self) -> String {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x_min, mut x_max, mut y_min, mut y_max) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in points {
            x_min = x_min.min(*x);
            x_max = x_max.max(*x);
            y_min = y_min.min(*y);
            y_max = y_max.max(*y);
        }
        if x_min > x_max {
            (x_min, x_max, y_min, y_max) = (0.0, 1.0, 0.0, 1.0);
        }
        let y_of = |v: f64| if self.log_y { v.max(1e-3).log10() } else { v };
        let (y_lo, y_hi) = if self.log_y {
            (
                y_of(y_min).floor(),
                y_of(y_max).ceil().max(y_of(y_min).floor() + 1.0),
            )
        } else {
            let s = step(y_max.max(1e-9));
            (0.0, (y_max / s).ceil() * s)
        };
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |x: f64| {
            if x_max > x_min {
                LEFT + (x - x_min) / (x_max - x_min) * plot_w
            } else {
                LEFT + plot_w / 2.0
            }
        };
        let py = |y: f64| TOP + plot_h - (y_of(y) - y_lo) / (y_hi - y_lo) * plot_h;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            escape(self.title)
        );
        // Axes, grid and ticks.
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{0}" stroke="#333"/>"##,
            TOP + plot_h,
            LEFT + plot_w
        );
        let y_ticks: Vec<f64> = if self.log_y {
            (y_lo as i32..=y_hi as i32).map(|e| 10f64.powi(e)).collect()
        } else {
            let s = step(y_hi);
            (0..=((y_hi / s).round() as usize))
                .map(|i| i as f64 * s)
                .collect()
        };
        for t in y_ticks {
            let y = py(t);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                label(t)
            );
        }
        for (x, text) in &self.x_ticks {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                px(*x),
                TOP + plot_h + 18.0,
                escape(text)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 16.0,
            escape(self.x_label),
            TOP + plot_h / 2.0,
            escape(self.y_label)
        );
        // The lines, each with its points marked, and the legend.
        for (i, series) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let path: Vec<String> = series
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
                .collect();
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
                path.join(" ")
            );
            for (x, y) in &series.points {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    px(*x),
                    py(*y)
                );
            }
            let ly = TOP + 10.0 + i as f64 * 20.0;
            let lx = LEFT + plot_w + 16.0;
            let _ = write!(
                svg,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                escape(&series.name)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_a_line_and_a_legend_entry_per_series() {
        let chart = Chart {
            title: "cycle, 1 KiB",
            x_label: "requests in flight",
            y_label: "msg/s",
            x_ticks: vec![(8.0, "8".into()), (64.0, "64".into())],
            log_y: false,
            series: vec![
                Series {
                    name: "Sluice".into(),
                    points: vec![(8.0, 10_000.0), (64.0, 30_000.0)],
                },
                Series {
                    name: "NATS".into(),
                    points: vec![(8.0, 5_000.0), (64.0, 9_000.0)],
                },
            ],
        }
        .svg();
        assert_eq!(chart.matches("<polyline").count(), 2);
        assert!(chart.contains(">Sluice</text>") && chart.contains(">NATS</text>"));
        assert!(
            chart.contains(">30,000</text>"),
            "a tick at the top: {chart}"
        );
        assert!(chart.starts_with("<svg") && chart.ends_with("</svg>\n"));
    }

    #[test]
    fn log_scales_tick_at_powers_of_ten() {
        let chart = Chart {
            title: "latency",
            x_label: "percentile",
            y_label: "ms",
            x_ticks: vec![],
            log_y: true,
            series: vec![Series {
                name: "a".into(),
                points: vec![(0.0, 3.0), (1.0, 250.0)],
            }],
        }
        .svg();
        for tick in [">1</text>", ">10</text>", ">100</text>", ">1,000</text>"] {
            assert!(chart.contains(tick), "{tick} in {chart}");
        }
    }
}
