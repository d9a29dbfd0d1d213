//! SVG charts drawn with plotters' SVG backend. No font files are read: the backend
//! writes `<text>` elements and the browser renders them with its own sans-serif.

use crate::text::{approx_bytes, thousands};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

/// A chart that could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("chart \"{title}\": {message}")]
pub struct ChartError {
    pub title: String,
    pub message: String,
}

/// What a bar's value counts.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    Bytes,
    Count,
}

impl Unit {
    fn axis(self, v: u64) -> String {
        match self {
            Unit::Bytes => approx_bytes(v),
            Unit::Count => thousands(v),
        }
    }
    fn bar(self, v: u64) -> String {
        match self {
            Unit::Bytes => format!("{} bytes", thousands(v)),
            Unit::Count => thousands(v),
        }
    }
}

const WIDTH: u32 = 820;
const BAR_HEIGHT: u32 = 30;
const LABEL_CHARS: usize = 28;
const BAR_COLOR: RGBColor = RGBColor(0x2f, 0x6f, 0xb3);

fn short(label: &str) -> String {
    if label.chars().count() <= LABEL_CHARS {
        label.to_owned()
    } else {
        let head: String = label.chars().take(LABEL_CHARS - 1).collect();
        format!("{head}…")
    }
}

/// A horizontal bar chart, first bar on top, each bar labelled with its exact value.
pub fn bar_chart(title: &str, bars: &[(String, u64)], unit: Unit) -> Result<String, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError {
        title: title.to_owned(),
        message: e.to_string(),
    };
    let n = bars.len().max(1);
    let height = 70 + BAR_HEIGHT * n as u32;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    // Room on the right for the value labels.
    let x_max = max as f64 * 1.3;
    let labels: Vec<String> = bars.iter().map(|(l, _)| short(l)).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(210)
            .build_cartesian_2d(0f64..x_max, (0usize..n).into_segmented())
            .map_err(|e| err(&e))?;
        let y_label = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(i) if *i < labels.len() => labels[n - 1 - *i].clone(),
            _ => String::new(),
        };
        let x_label = |v: &f64| unit.axis(v.max(0.0) as u64);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(n)
            .x_labels(5)
            .y_label_formatter(&y_label)
            .x_label_formatter(&x_label)
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let row = n - 1 - i;
                let mut r = Rectangle::new(
                    [
                        (0.0, SegmentValue::Exact(row)),
                        (*v as f64, SegmentValue::Exact(row + 1)),
                    ],
                    BAR_COLOR.filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            }))
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let row = n - 1 - i;
                Text::new(
                    unit.bar(*v),
                    (*v as f64 + max as f64 * 0.01, SegmentValue::CenterOf(row)),
                    ("sans-serif", 12).into_font().color(&BLACK),
                )
            }))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// A column chart of bytes over the tracking window: one column per time bin,
/// `bins` as (start seconds, end seconds, bytes).
pub fn timeline_chart(title: &str, bins: &[(f64, f64, u64)]) -> Result<String, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError {
        title: title.to_owned(),
        message: e.to_string(),
    };
    let end = bins.last().map(|b| b.1).unwrap_or(0.0).max(1.0);
    let max = bins.iter().map(|b| b.2).max().unwrap_or(0).max(1);
    // Axis in seconds, minutes or hours, whichever reads better.
    let (scale, unit) = if end >= 3.0 * 3600.0 {
        (3600.0, "h")
    } else if end >= 120.0 {
        (60.0, "min")
    } else {
        (1.0, "s")
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 240)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .margin_right(36)
            .x_label_area_size(32)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..end / scale, 0f64..max as f64 * 1.1)
            .map_err(|e| err(&e))?;
        let x_label = |v: &f64| format!("{v:.1} {unit}");
        let y_label = |v: &f64| approx_bytes(v.max(0.0) as u64);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(6)
            .y_labels(4)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("time of allocation since tracking began")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(
                bins.iter()
                    .filter(|b| b.2 > 0)
                    .map(|&(start, stop, bytes)| {
                        let mut r = Rectangle::new(
                            [(start / scale, 0.0), (stop / scale, bytes as f64)],
                            BAR_COLOR.filled(),
                        );
                        r.set_margin(0, 0, 1, 1);
                        r
                    }),
            )
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

/// Colours of the lines of a line chart, in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(0x2f, 0x6f, 0xb3),
    RGBColor(0xc2, 0x3b, 0x22),
    RGBColor(0x2d, 0x8a, 0x4e),
    RGBColor(0x8e, 0x44, 0xad),
    RGBColor(0xd0, 0x8a, 0x00),
    RGBColor(0x16, 0x8a, 0x8a),
    RGBColor(0x7f, 0x5a, 0x3c),
    RGBColor(0x55, 0x5f, 0x6b),
];

/// A line chart of outstanding bytes per dump: `hours` since the first dump on x, one
/// line per `(name, bytes per dump)`, with a legend.
pub fn line_chart(
    title: &str,
    hours: &[f64],
    lines: &[(String, Vec<u64>)],
) -> Result<String, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError {
        title: title.to_owned(),
        message: e.to_string(),
    };
    let x_end_hours = hours.last().copied().unwrap_or(0.0);
    // Axis in seconds, minutes or hours, whichever reads better.
    let (per_hour, unit) = if x_end_hours * 3600.0 < 120.0 {
        (3600.0, "s")
    } else if x_end_hours < 3.0 {
        (60.0, "min")
    } else {
        (1.0, "h")
    };
    let x: Vec<f64> = hours.iter().map(|h| h * per_hour).collect();
    let x_end = (x_end_hours * per_hour).max(1e-3);
    let max = lines
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 340)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_end * 1.02, 0f64..max as f64 * 1.1)
            .map_err(|e| err(&e))?;
        let x_label = |v: &f64| format!("{v:.1} {unit}");
        let y_label = |v: &f64| approx_bytes(v.max(0.0) as u64);
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("time since the first dump")
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (name, values)) in lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> =
                x.iter().zip(values).map(|(&t, &v)| (t, v as f64)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(short(name))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, color.filled())),
                )
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 11))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_with_labels() {
        let svg = bar_chart(
            "Outstanding bytes",
            &[
                ("odbcvend.dll".into(), 525_000),
                ("app & <co>.exe".into(), 1000),
            ],
            Unit::Bytes,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("odbcvend.dll"));
        assert!(svg.contains("525,000 bytes"));
        assert!(
            svg.contains("app &amp; &lt;co&gt;.exe"),
            "labels are escaped"
        );
        assert!(svg.matches("<rect").count() >= 3, "background and two bars");
    }

    #[test]
    fn timeline_has_a_column_per_nonempty_bin() {
        let bins: Vec<(f64, f64, u64)> = (0..20)
            .map(|i| {
                (
                    i as f64 * 180.0,
                    (i + 1) as f64 * 180.0,
                    if i % 2 == 0 { 1000 } else { 0 },
                )
            })
            .collect();
        let svg = timeline_chart("odbcvend.dll", &bins).unwrap();
        assert!(svg.contains("min"), "axis in minutes for one hour");
        // Background, plot area and ten columns at least.
        assert!(svg.matches("<rect").count() >= 11);
    }

    #[test]
    fn line_chart_has_a_line_and_a_legend_entry_per_series() {
        let svg = line_chart(
            "Series 1",
            &[0.0, 1.0, 2.0],
            &[
                ("odbcvend.dll".into(), vec![100, 200, 300]),
                ("orders.dll".into(), vec![50, 50, 50]),
            ],
        )
        .unwrap();
        assert!(svg.contains("odbcvend.dll") && svg.contains("orders.dll"));
        assert!(svg.matches("<polyline").count() >= 2, "{svg}");
    }

    #[test]
    fn empty_chart_is_still_an_svg() {
        let svg = bar_chart("Nothing", &[], Unit::Count).unwrap();
        assert!(svg.contains("</svg>"));
    }
}
