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

/// A sample that did not grow as asked ([`growth`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Short {
    /// It grew, by less than `least`.
    TooLittle {
        name: String,
        from: f64,
        to: f64,
        least: u64,
    },
    /// No reading before this one to compare with.
    NoEarlier { name: String },
    /// Not in the answer read now.
    Missing { name: String },
}

impl std::fmt::Display for Short {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Short::TooLittle {
                name,
                from,
                to,
                least,
            } => write!(
                f,
                "{name} grew by {} (from {from} to {to}), less than {least}",
                to - from
            ),
            Short::NoEarlier { name } => {
                write!(f, "{name}: no earlier reading in this scenario")
            }
            Short::Missing { name } => write!(f, "{name}: not in the answer"),
        }
    }
}

/// What did not grow enough: every such sample, in the order asked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", .0.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("; "))]
pub struct Shortfall(pub Vec<Short>);

/// Whether each named sample grew by at least its amount from `before` to
/// `after`: `Ok` with the growths, or what did not grow enough (pure).
pub fn growth(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    want: &[(String, u64)],
) -> Result<String, Shortfall> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (name, least) in want {
        let name = name.clone();
        match (before.get(&name), after.get(&name)) {
            (Some(b), Some(a)) if a - b >= *least as f64 => ok.push(format!("{name} +{}", a - b)),
            (Some(b), Some(a)) => bad.push(Short::TooLittle {
                name,
                from: *b,
                to: *a,
                least: *least,
            }),
            (None, _) => bad.push(Short::NoEarlier { name }),
            (_, None) => bad.push(Short::Missing { name }),
        }
    }
    if bad.is_empty() {
        Ok(ok.join(", "))
    } else {
        Err(Shortfall(bad))
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
        assert_eq!(e.to_string(), "z grew by 0 (from 1.5 to 1.5), less than 1");
        assert!(growth(&b, &a, &want).is_err());
        // Every sample short of its growth is named, in the order asked.
        let e = growth(&a, &b, &[("w".to_string(), 1), ("x".to_string(), 1)]).unwrap_err();
        assert_eq!(e.0, [Short::NoEarlier { name: "w".into() }]);
        assert_eq!(e.to_string(), "w: no earlier reading in this scenario");
        let e = growth(&b, &a, &[("x".to_string(), 0), ("w".to_string(), 0)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x grew by -1990 (from 2000 to 10), less than 0; w: no earlier reading in this scenario"
        );
        let gone = samples("z 1.5\n");
        let e = growth(&a, &gone, &[("x".to_string(), 1)]).unwrap_err();
        assert_eq!(e.to_string(), "x: not in the answer");
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
