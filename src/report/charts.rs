//! SVG charts drawn with plotters' SVG backend. No font files are read: the backend
//! writes `<text>` elements and the browser renders them with its own sans-serif.

use crate::text::{approx_bytes, duration, thousands};
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

/// A byte axis in round steps: the unit (B, KiB, MiB…) its labels are written in, the
/// step between ticks (1, 2 or 5 × 10ⁿ in that unit) and the top of the axis (a
/// whole number of steps at or above the largest value, so the top tick is labelled
/// and no empty band is left above the data).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ByteAxis {
    /// Bytes per unit: 1, 1024, 1024²…
    pub scale: f64,
    pub unit: &'static str,
    /// In units.
    pub step: f64,
    /// In units.
    pub top: f64,
}

impl ByteAxis {
    /// An axis for values up to `max` bytes with at most about `ticks` steps.
    pub fn new(max: u64, ticks: u32) -> Self {
        const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut scale = 1.0f64;
        let mut unit = 0;
        while max as f64 / scale >= 1024.0 && unit + 1 < UNITS.len() {
            scale *= 1024.0;
            unit += 1;
        }
        let value = (max as f64 / scale).max(1.0);
        let raw = value / f64::from(ticks.max(1));
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * magnitude);
        // Whole bytes only: a step below one byte reads as noise.
        let step = if unit == 0 { step.max(1.0) } else { step };
        let top = (value / step).ceil().max(1.0) * step;
        ByteAxis {
            scale,
            unit: UNITS[unit],
            step,
            top,
        }
    }

    /// Ticks on the axis: 0, step, 2·step … top.
    pub fn ticks(&self) -> usize {
        (self.top / self.step).round() as usize + 1
    }

    /// A label for a value in units, e.g. `150 KiB`, `1.5 MiB`.
    pub fn label(&self, v: f64) -> String {
        let v = (v / self.step).round() * self.step;
        if v == 0.0 {
            "0".to_owned()
        } else if (v - v.round()).abs() < 1e-9 {
            format!("{v:.0} {}", self.unit)
        } else {
            format!("{v:.1} {}", self.unit)
        }
    }
}

/// Gives an SVG chart an accessible name and a text equivalent: `role="img"`, a
/// `<title>` (its name) and a `<desc>` (its values in words). Screen readers read
/// them; the values are also in the tables next to every chart.
pub fn accessible(svg: String, title: &str, desc: &str) -> String {
    let Some(end) = svg.find('>') else {
        return svg;
    };
    format!(
        "{} role=\"img\" aria-label=\"{}\"><title>{}</title><desc>{}</desc>{}",
        &svg[..end],
        xml_escape(title),
        xml_escape(title),
        xml_escape(desc),
        &svg[end + 1..]
    )
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Text size of labels and captions, in plotters' units: its SVG backend writes
/// about 0.81 of them as the CSS font size, so 16 gives 12.9 px. At the page's
/// 1280 px layout the charts are drawn at their own size, so this is the size the
/// reader sees (a test checks every chart text is at least 12 px).
const LABEL_PX: u32 = 16;
const CAPTION_PX: u32 = 19;

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
    let height = 74 + BAR_HEIGHT * n as u32;
    let max = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1);
    // Room on the right for the value labels; byte axes in round KiB/MiB steps.
    let room = (max as f64 * 1.35) as u64;
    let (scale, x_max, x_ticks, axis) = match unit {
        Unit::Bytes => {
            let a = ByteAxis::new(room, 4);
            (a.scale, a.top, a.ticks(), Some(a))
        }
        Unit::Count => (1.0, room as f64, 5, None),
    };
    let labels: Vec<String> = bars.iter().map(|(l, _)| short(l)).collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", CAPTION_PX))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(230)
            // One segment per bar: 0..n-1 segmented is n slots, no empty one on top.
            // One bar gets an axis of two slots (0..0 is degenerate) and spans both.
            .build_cartesian_2d(0f64..x_max, (0usize..(n - 1).max(1)).into_segmented())
            .map_err(|e| err(&e))?;
        let y_label = |v: &SegmentValue<usize>| match v {
            // A lone bar: its label once, on the upper of its two slots.
            SegmentValue::CenterOf(1) if n == 1 => labels.first().cloned().unwrap_or_default(),
            _ if n == 1 => String::new(),
            SegmentValue::CenterOf(i) if *i < labels.len() => labels[n - 1 - *i].clone(),
            _ => String::new(),
        };
        let x_label = |v: &f64| match &axis {
            Some(a) => a.label(*v),
            None => unit.axis(v.max(0.0) as u64),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(WHITE)
            .y_labels(if n == 1 { 1 } else { n })
            .x_labels(x_ticks)
            .y_label_formatter(&y_label)
            .x_label_formatter(&x_label)
            .label_style(("sans-serif", LABEL_PX))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
                let row = n - 1 - i;
                // A lone bar spans its axis's two slots.
                let top = if n == 1 {
                    SegmentValue::Last
                } else {
                    SegmentValue::Exact(row + 1)
                };
                let mut r = Rectangle::new(
                    [(0.0, SegmentValue::Exact(row)), (*v as f64 / scale, top)],
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
                    (
                        (*v as f64 + max as f64 * 0.01) / scale,
                        if n == 1 {
                            SegmentValue::CenterOf(1)
                        } else {
                            SegmentValue::CenterOf(row)
                        },
                    ),
                    ("sans-serif", LABEL_PX).into_font().color(&BLACK),
                )
            }))
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let desc: Vec<String> = bars
        .iter()
        .map(|(label, v)| format!("{label}: {}", unit.bar(*v)))
        .collect();
    Ok(accessible(svg, title, &desc.join("; ")))
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
    let axis = ByteAxis::new(max, 4);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 250)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", CAPTION_PX))
            .margin(8)
            .margin_right(36)
            .x_label_area_size(36)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..end / scale, 0f64..axis.top)
            .map_err(|e| err(&e))?;
        let x_label = |v: &f64| format!("{v:.1} {unit}");
        let y_label = |v: &f64| axis.label(*v);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .x_labels(6)
            .y_labels(axis.ticks())
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("time of allocation since tracking began")
            .label_style(("sans-serif", LABEL_PX))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(
                bins.iter()
                    .filter(|b| b.2 > 0)
                    .map(|&(start, stop, bytes)| {
                        let mut r = Rectangle::new(
                            [
                                (start / scale, 0.0),
                                (stop / scale, bytes as f64 / axis.scale),
                            ],
                            BAR_COLOR.filled(),
                        );
                        r.set_margin(0, 0, 1, 1);
                        r
                    }),
            )
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let busiest = bins.iter().max_by_key(|b| b.2);
    let total: u64 = bins.iter().map(|b| b.2).sum();
    let desc = match busiest {
        Some(&(start, stop, bytes)) if total > 0 => format!(
            "{} bytes outstanding, allocated between 0 and {}; the most, {} bytes, between {} and {}.",
            thousands(total),
            duration(end),
            thousands(bytes),
            duration(start),
            duration(stop)
        ),
        _ => "No outstanding bytes.".to_owned(),
    };
    Ok(accessible(svg, title, &desc))
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
    let axis = ByteAxis::new(max, 5);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 350)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", CAPTION_PX))
            .margin(10)
            .x_label_area_size(38)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_end * 1.02, 0f64..axis.top)
            .map_err(|e| err(&e))?;
        let x_label = |v: &f64| format!("{v:.1} {unit}");
        let y_label = |v: &f64| axis.label(*v);
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .x_labels(6)
            .y_labels(axis.ticks())
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .x_desc("time since the first dump")
            .label_style(("sans-serif", LABEL_PX))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (name, values)) in lines.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let points: Vec<(f64, f64)> = x
                .iter()
                .zip(values)
                .map(|(&t, &v)| (t, v as f64 / axis.scale))
                .collect();
            // Lines that coincide stay distinguishable: each later line is dashed
            // more finely and has its own marker, so the one below shows through.
            let style = color.stroke_width(2);
            if i == 0 {
                chart
                    .draw_series(LineSeries::new(points.clone(), style))
                    .map_err(|e| err(&e))?
            } else {
                let dash = 12 - 2 * (i as u32 % 5);
                chart
                    .draw_series(DashedLineSeries::new(points.clone(), dash, dash, style))
                    .map_err(|e| err(&e))?
            }
            .label(short(name))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            let marker = i % 3;
            chart
                .draw_series(points.into_iter().map(move |p| -> DynElement<_, _> {
                    match marker {
                        0 => Circle::new(p, 4, color.filled()).into_dyn(),
                        1 => TriangleMarker::new(p, 6, color.filled()).into_dyn(),
                        _ => Cross::new(p, 5, color.stroke_width(2)).into_dyn(),
                    }
                }))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", LABEL_PX))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let desc: Vec<String> = lines
        .iter()
        .map(|(name, values)| {
            let v: Vec<String> = values.iter().map(|b| thousands(*b)).collect();
            format!("{name}: {} bytes", v.join(", "))
        })
        .collect();
    Ok(accessible(svg, title, &desc.join("; ")))
}

#[cfg(test)]
mod tests {

    #[test]
    fn one_bar_is_drawn_with_a_positive_height() {
        for n in 1..4 {
            let bars: Vec<(String, u64)> = (0..n)
                .map(|i| (format!("m{i}.dll"), 100 + i as u64))
                .collect();
            let svg = bar_chart("t", &bars, Unit::Count).unwrap();
            assert!(!svg.contains("height=\"-"), "{n} bars: {svg}");
            let rects = svg.matches("<rect").count();
            assert!(rects >= n, "{n} bars: {svg}");
            assert_eq!(svg.matches("\nm0.dll\n").count(), 1, "{n} bars: {svg}");
        }
    }

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
    fn byte_axes_step_in_round_units_and_end_on_a_tick() {
        // The demo's 166,400 bytes: 0, 50, 100, 150, 200 KiB (was 48.8, 97.7, 146.5 KiB).
        let a = ByteAxis::new(166_400, 4);
        assert_eq!((a.unit, a.step, a.top, a.ticks()), ("KiB", 50.0, 200.0, 5));
        assert_eq!(a.label(150.0), "150 KiB");
        assert_eq!(a.label(0.0), "0");
        let b = ByteAxis::new(5_850_000, 5);
        assert_eq!((b.unit, b.step, b.top), ("MiB", 2.0, 6.0));
        let c = ByteAxis::new(3, 4);
        assert_eq!((c.unit, c.step, c.top), ("B", 1.0, 3.0));
        let d = ByteAxis::new(1_300_000, 4);
        assert_eq!((d.unit, d.step, d.top), ("MiB", 0.5, 1.5));
        assert_eq!(d.label(0.5), "0.5 MiB");
        // Every top covers the data, in whole steps.
        for max in [1u64, 1023, 1024, 99_999, 1 << 40, u64::MAX / 2] {
            let a = ByteAxis::new(max, 4);
            assert!(a.top * a.scale >= max as f64, "{max}");
            assert!(((a.top / a.step) - (a.top / a.step).round()).abs() < 1e-9);
            assert!(a.ticks() <= 12, "{max}: {a:?}");
        }
    }

    #[test]
    fn charts_have_an_accessible_name_and_text() {
        let svg = bar_chart(
            "Top modules <by> bytes",
            &[("odbcvend.dll".into(), 1536)],
            Unit::Bytes,
        )
        .unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("role=\"img\" aria-label=\"Top modules &lt;by&gt; bytes\""));
        assert!(svg.contains("<title>Top modules &lt;by&gt; bytes</title>"));
        assert!(svg.contains("<desc>odbcvend.dll: 1,536 bytes</desc>"));
    }

    #[test]
    fn chart_text_is_at_least_12_px() {
        let bins: Vec<(f64, f64, u64)> = (0..20).map(|i| (i as f64, i as f64 + 1.0, 100)).collect();
        for svg in [
            bar_chart("b", &[("a.dll".into(), 100)], Unit::Bytes).unwrap(),
            timeline_chart("t", &bins).unwrap(),
            line_chart("l", &[0.0, 1.0], &[("a.dll".into(), vec![1, 2])]).unwrap(),
        ] {
            for size in svg.split("font-size=\"").skip(1) {
                let px: f64 = size.split('"').next().unwrap().parse().unwrap();
                assert!(px >= 12.0, "{px} px");
            }
        }
    }

    #[test]
    fn coinciding_lines_stay_distinguishable() {
        let svg = line_chart(
            "Series 1",
            &[0.0, 1.0, 2.0],
            &[
                ("a.dll".into(), vec![100, 200, 300]),
                ("b.dll".into(), vec![100, 200, 300]),
            ],
        )
        .unwrap();
        // The second line is dashed (many short segments) and has other markers.
        assert!(svg.matches("<polyline").count() > 3, "{svg}");
        assert!(
            svg.contains("<polygon") || svg.contains("<path"),
            "triangle markers"
        );
    }

    #[test]
    fn empty_chart_is_still_an_svg() {
        let svg = bar_chart("Nothing", &[], Unit::Count).unwrap();
        assert!(svg.contains("</svg>"));
    }
}
