//! Prometheus' text exposition format, pure: the one writer behind the
//! run's metrics (`--prometheus`) and the gateway's `/metrics`. Each family
//! is its HELP and TYPE lines, then its samples; label values are escaped
//! as the format says.

use std::fmt::Write as _;

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

/// Metrics being written.
#[derive(Debug, Default)]
pub struct Text(String);

/// A label value as the text format wants it: backslash, quote and newline
/// escaped.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Text {
    pub fn new() -> Text {
        Text::default()
    }

    /// One family with a sample per `(labels, value)`.
    pub fn family<'a>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (Vec<(&'a str, &'a str)>, String)>,
    ) -> &mut Text {
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
                .collect();
            if labels.is_empty() {
                let _ = writeln!(self.0, "{name} {value}");
            } else {
                let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
            }
        }
        self
    }

    /// One family with a single, unlabelled sample.
    pub fn single(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        value: impl std::fmt::Display,
    ) -> &mut Text {
        self.family(name, kind, help, [(Vec::new(), value.to_string())])
    }

    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_escaped_labels() {
        let t = Text::new()
            .family(
                "x_total",
                Kind::Counter,
                "Things.",
                [
                    (vec![("check", "a\"b"), ("target", "t")], "1".to_string()),
                    (vec![("check", "c")], "2".to_string()),
                ],
            )
            .single("y", Kind::Gauge, "One.", 0.5)
            .finish();
        assert_eq!(
            t,
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{check=\"a\\\"b\",target=\"t\"} 1\nx_total{check=\"c\"} 2\n# HELP y One.\n# TYPE y gauge\ny 0.5\n"
        );
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
