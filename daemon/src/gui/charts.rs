//! Charts as SVG, rendered by the daemon for the hub console's statistics page: no chart
//! service, no script, no third-party resource. Each chart is an `<svg role="img">` with a title
//! and a description, drawn with presentation attributes only (a strict Content-Security-Policy
//! forbids inline styles), and meant to sit beside a data table of the same values.
//!
//! A suppressed value is `None`: a visible gap, never a zero — a line breaks there and a hatched
//! marker says "secret statistique"; a bar is drawn as a hatched outline without height.

use std::fmt::Write;

use super::html::Html;

/// Width and height of every chart's viewBox; the page scales it.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 280.0;
/// Margins: left for the value axis, bottom for the category labels.
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 48.0;
/// Colours with a contrast of at least 3:1 against white (RGAA criterion 3.3 for graphics).
const PALETTE: [&str; 6] = ["#1f4e9c", "#b34700", "#2e7d32", "#6a1b9a", "#8d6e00", "#00695c"];
/// The words for a suppressed value, in the page's language.
pub(crate) const SUPPRESSED: &str = "secret statistique";

/// One named series of values along the categories; `None` is suppressed.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Its name, shown in the legend.
    pub(crate) name: String,
    /// One value per category.
    pub(crate) values: Vec<Option<f64>>,
}

/// Text for SVG content and attributes: the console's one escaper (XML and HTML agree on it).
fn xml(text: &str) -> String {
    super::html::escape(text)
}

/// A "nice" upper bound for the value axis (1, 2 or 5 times a power of ten), at least `max`.
fn nice_ceiling(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|v| *v >= max).unwrap_or(10.0 * magnitude)
}

/// A number as the axis and the tooltips show it: whole numbers without decimals, others with one.
fn label_number(v: f64) -> String {
    if v == v.trunc() { format!("{v:.0}") } else { format!("{v:.1}") }
}

/// The frame shared by every chart: the opening tag with its accessible name, the hatching
/// pattern for suppressed values, the value axis with four gridlines, and the category labels.
struct Frame {
    out: String,
    id: String,
    top_value: f64,
    categories: usize,
}

impl Frame {
    fn new(id: &str, title: &str, description: &str, categories: &[String], max: f64, unit: &str) -> Self {
        let id = xml(id);
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="{id}-title {id}-desc" class="chart" id="{id}">"#
        );
        let _ = write!(out, r#"<title id="{id}-title">{}</title>"#, xml(title));
        let _ = write!(out, r#"<desc id="{id}-desc">{}</desc>"#, xml(description));
        let _ = write!(
            out,
            r##"<defs><pattern id="{id}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#595959" stroke-width="2"/></pattern></defs>"##
        );
        let top_value = nice_ceiling(max);
        for step in 0..=4 {
            let value = top_value * f64::from(step) / 4.0;
            let y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - f64::from(step) / 4.0);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#d0d0d0" stroke-width="1"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="11" fill="#333333">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                xml(&label_number(value))
            );
        }
        let _ = write!(out, r##"<text x="4" y="14" font-size="11" fill="#333333">{}</text>"##, xml(unit));
        let mut frame = Self { out, id, top_value, categories: categories.len().max(1) };
        for (i, category) in categories.iter().enumerate() {
            let x = frame.x_center(i);
            let _ = write!(
                frame.out,
                r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle" font-size="11" fill="#333333">{}</text>"##,
                HEIGHT - BOTTOM + 16.0,
                xml(category)
            );
        }
        frame
    }

    /// The width of one category's slot.
    fn slot(&self) -> f64 {
        (WIDTH - LEFT - RIGHT) / self.categories as f64
    }

    fn x_center(&self, i: usize) -> f64 {
        LEFT + self.slot() * (i as f64 + 0.5)
    }

    fn y(&self, value: f64) -> f64 {
        let plot = HEIGHT - TOP - BOTTOM;
        TOP + plot * (1.0 - (value / self.top_value).clamp(0.0, 1.0))
    }

    /// A hatched marker at category `i`, standing for a suppressed value.
    fn suppressed_marker(&mut self, i: usize, width: f64, what: &str) {
        let x = self.x_center(i) - width / 2.0;
        let height = 18.0;
        let y = HEIGHT - BOTTOM - height;
        let _ = write!(
            self.out,
            r##"<rect class="suppressed" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{height:.1}" fill="url(#{}-hatch)" stroke="#595959" stroke-width="1"><title>{}</title></rect>"##,
            self.id,
            xml(&format!("{what} : {SUPPRESSED}"))
        );
    }

    fn legend(&mut self, names: &[&str]) {
        let mut x = LEFT;
        for (i, name) in names.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let _ = write!(
                self.out,
                r##"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#333333">{}</text>"##,
                HEIGHT - 14.0,
                x + 14.0,
                HEIGHT - 5.0,
                xml(name)
            );
            x += 24.0 + 7.0 * name.chars().count() as f64;
        }
    }

    fn finish(mut self) -> Html {
        self.out.push_str("</svg>");
        // Every text went through `xml`; the rest is this module's own markup.
        Html::from_rendered(self.out)
    }
}

fn max_of<'a>(values: impl Iterator<Item = &'a Option<f64>>) -> f64 {
    values.flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max)
}

/// A line per series along the categories (months): a suppressed value breaks the line and is
/// marked at the foot of the chart.
pub(crate) fn line_chart(
    id: &str,
    title: &str,
    categories: &[String],
    series: &[Series],
    unit: &str,
) -> Html {
    let description = format!(
        "{} séries sur {} périodes ; les valeurs sont dans le tableau voisin.",
        series.len(),
        categories.len()
    );
    let max = max_of(series.iter().flat_map(|s| s.values.iter()));
    let mut frame = Frame::new(id, title, &description, categories, max, unit);
    for (n, s) in series.iter().enumerate() {
        let colour = PALETTE[n % PALETTE.len()];
        let mut segment: Vec<(f64, f64)> = Vec::new();
        let mut segments = Vec::new();
        for (i, value) in s.values.iter().enumerate().take(categories.len()) {
            match value {
                Some(v) => segment.push((frame.x_center(i), frame.y(*v))),
                None => {
                    segments.push(std::mem::take(&mut segment));
                    frame.suppressed_marker(i, 10.0, &format!("{} {}", s.name, categories[i]));
                }
            }
        }
        segments.push(segment);
        for points in segments.into_iter().filter(|p| !p.is_empty()) {
            let path: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            let _ = write!(
                frame.out,
                r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for (x, y) in points {
                let _ = write!(frame.out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{colour}"/>"#);
            }
        }
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    frame.legend(&names);
    frame.finish()
}

/// One bar per category; a suppressed value is a hatched outline with no height.
pub(crate) fn bar_chart(
    id: &str,
    title: &str,
    categories: &[String],
    values: &[Option<f64>],
    unit: &str,
) -> Html {
    let description = format!("{} barres ; les valeurs sont dans le tableau voisin.", categories.len());
    let mut frame = Frame::new(id, title, &description, categories, max_of(values.iter()), unit);
    let width = frame.slot() * 0.6;
    for (i, value) in values.iter().enumerate().take(categories.len()) {
        match value {
            Some(v) => {
                let (x, y) = (frame.x_center(i) - width / 2.0, frame.y(*v));
                let _ = write!(
                    frame.out,
                    r#"<rect class="bar" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="{:.1}" fill="{}"><title>{} : {}</title></rect>"#,
                    HEIGHT - BOTTOM - y,
                    PALETTE[0],
                    xml(&categories[i]),
                    xml(&label_number(*v))
                );
            }
            None => frame.suppressed_marker(i, width, &categories[i]),
        }
    }
    frame.finish()
}

/// Stacked bars: per category, one segment per series. A category with a suppressed segment
/// shows its known segments and a hatched marker above them: its total is not known.
pub(crate) fn stacked_bars(
    id: &str,
    title: &str,
    categories: &[String],
    series: &[Series],
    unit: &str,
) -> Html {
    let description = format!(
        "{} catégories empilées sur {} colonnes ; les valeurs sont dans le tableau voisin.",
        series.len(),
        categories.len()
    );
    let totals: Vec<Option<f64>> = (0..categories.len())
        .map(|i| Some(series.iter().map(|s| s.values.get(i).copied().flatten().unwrap_or(0.0)).sum()))
        .collect();
    let mut frame = Frame::new(id, title, &description, categories, max_of(totals.iter()), unit);
    let width = frame.slot() * 0.6;
    for (i, category) in categories.iter().enumerate() {
        let mut base = 0.0;
        let mut hidden = Vec::new();
        for (n, s) in series.iter().enumerate() {
            match s.values.get(i).copied().flatten() {
                Some(v) if v > 0.0 => {
                    let (x, top, bottom) =
                        (frame.x_center(i) - width / 2.0, frame.y(base + v), frame.y(base));
                    let _ = write!(
                        frame.out,
                        r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{width:.1}" height="{:.1}" fill="{}"><title>{} {} : {}</title></rect>"#,
                        bottom - top,
                        PALETTE[n % PALETTE.len()],
                        xml(&s.name),
                        xml(category),
                        xml(&label_number(v))
                    );
                    base += v;
                }
                Some(_) => {}
                None => hidden.push(s.name.as_str()),
            }
        }
        if !hidden.is_empty() {
            let (x, y) = (frame.x_center(i) - width / 2.0, frame.y(base) - 14.0);
            let _ = write!(
                frame.out,
                r##"<rect class="suppressed" x="{x:.1}" y="{y:.1}" width="{width:.1}" height="12" fill="url(#{}-hatch)" stroke="#595959" stroke-width="1"><title>{}</title></rect>"##,
                frame.id,
                xml(&format!("{category} ({}) : {SUPPRESSED}", hidden.join(", ")))
            );
        }
    }
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    frame.legend(&names);
    frame.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn months() -> Vec<String> {
        ["2026-01", "2026-02", "2026-03", "2026-04"].iter().map(|m| m.to_string()).collect()
    }

    #[test]
    fn a_suppressed_month_breaks_the_line_and_is_marked_never_zero() {
        let etp = Series { name: "ETP".into(), values: vec![Some(10.0), None, Some(12.5), Some(11.0)] };
        let svg = line_chart("etp", "ETP par mois", &months(), &[etp], "ETP").into_string();
        assert_eq!(svg.matches("<polyline").count(), 2, "two segments around the gap: {svg}");
        assert_eq!(svg.matches(r#"class="suppressed""#).count(), 1);
        assert!(svg.contains("ETP 2026-02 : secret statistique"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(
            svg.contains(r#"role="img""#) && svg.contains("<title id=\"etp-title\">ETP par mois</title>")
        );
        assert!(!svg.contains("style="), "no inline style: the CSP forbids it");
    }

    #[test]
    fn a_suppressed_bar_is_an_outline_and_values_scale_into_the_plot() {
        let categories: Vec<String> = ["44", "49", "53"].iter().map(|d| d.to_string()).collect();
        let svg = bar_chart(
            "rate",
            "Taux de sorties dynamiques",
            &categories,
            &[Some(42.0), None, Some(61.0)],
            "%",
        )
        .into_string();
        assert_eq!(svg.matches(r#"class="bar""#).count(), 2);
        assert_eq!(svg.matches(r#"class="suppressed""#).count(), 1);
        assert!(svg.contains("49 : secret statistique"));
        // The axis tops at a nice 100 above the largest value, 61.
        assert!(svg.contains(">100</text>"), "{svg}");
    }

    #[test]
    fn stacked_bars_mark_an_unknown_total_and_text_is_escaped() {
        let series = vec![
            Series { name: "K <services>".into(), values: vec![Some(3.0), Some(4.0)] },
            Series { name: "N & co".into(), values: vec![None, Some(2.0)] },
        ];
        let categories = vec!["2027-01".to_string(), "2027-02".to_string()];
        let svg = stacked_bars("needs", "Besoins", &categories, &series, "postes").into_string();
        assert_eq!(svg.matches(r#"class="bar""#).count(), 3);
        assert_eq!(svg.matches(r#"class="suppressed""#).count(), 1);
        assert!(svg.contains("K &lt;services&gt;") && svg.contains("N &amp; co"));
        assert!(!svg.contains("<services>"));
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(61.0), 100.0);
        assert_eq!(nice_ceiling(12.5), 20.0);
        assert_eq!(nice_ceiling(4.0), 5.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }
}
