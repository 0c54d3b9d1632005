//! The Prometheus text exposition format (version 0.0.4), written by hand: a few families of
//! counters, gauges and histograms do not need a metrics library.

use std::fmt::Write;

/// A metrics page being written.
#[derive(Debug, Default)]
pub(crate) struct Page {
    text: String,
}

/// The kind of a metric family.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Page {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub(crate) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.text, "# HELP {name} {}", help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// One sample: `name{labels} value`.
    pub(crate) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A family with one sample and no labels.
    pub(crate) fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The page.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A sample value: integers without a fraction, `+Inf` for infinity.
fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_follow_the_format() {
        let mut page = Page::default();
        page.family("passerelle_x_total", Kind::Counter, "things \"counted\"");
        page.sample("passerelle_x_total", &[("hub", "a\"b\\c")], 3.0);
        page.sample("passerelle_x_total", &[], 0.25);
        assert_eq!(
            page.finish(),
            "# HELP passerelle_x_total things \"counted\"\n# TYPE passerelle_x_total counter\n\
             passerelle_x_total{hub=\"a\\\"b\\\\c\"} 3\npasserelle_x_total 0.25\n"
        );
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
