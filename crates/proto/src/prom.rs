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

/// The unlabelled samples of a Prometheus text exposition, by name (the
/// reading side, for scenarios that check a gateway's metrics). Comments,
/// labelled samples and lines that do not parse are left out.
pub fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, value) = (w.next()?, w.next()?);
            if name.contains('{') {
                return None;
            }
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Whether each named sample grew by at least its amount from `before` to
/// `after`: `Ok` with the growths, or what did not grow enough (pure).
pub fn growth(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    want: &[(String, u64)],
) -> Result<String, String> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (name, least) in want {
        match (before.get(name), after.get(name)) {
            (Some(b), Some(a)) if a - b >= *least as f64 => ok.push(format!("{name} +{}", a - b)),
            (Some(b), Some(a)) => bad.push(format!(
                "{name} grew by {} (from {b} to {a}), less than {least}",
                a - b
            )),
            (None, _) => bad.push(format!("{name}: no earlier reading in this scenario")),
            (_, None) => bad.push(format!("{name}: not in the answer")),
        }
    }
    if bad.is_empty() {
        Ok(ok.join(", "))
    } else {
        Err(bad.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_back_and_growth_judged() {
        let a = samples("# HELP x y\n# TYPE x counter\nx 10\ny{l=\"1\"} 3\nz 1.5\nbad\n");
        assert_eq!(a.len(), 2);
        assert_eq!(a["x"], 10.0);
        let b = samples("x 2000\nz 1.5\n");
        let want = vec![("x".to_string(), 1400)];
        assert!(growth(&a, &b, &want).unwrap().contains("x +1990"));
        let e = growth(&a, &b, &[("z".to_string(), 1)]).unwrap_err();
        assert!(e.contains("grew by 0"), "{e}");
        assert!(growth(&b, &a, &want).is_err());
        assert!(
            growth(&a, &b, &[("w".to_string(), 1)])
                .unwrap_err()
                .contains("no earlier")
        );
    }

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
