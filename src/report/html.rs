//! The HTML report (`report.html` beside the JUnit): one self-contained
//! file, no scripts and no fetches (its Content-Security-Policy forbids
//! both), for a person to read: the pass/fail/skip matrix of scenarios by
//! target, then each scenario with its requirement, what failed, and for a
//! scenario that does something to the gateway (stops the tunnel, crashes
//! it) an SVG timeline of the frames on each wire, tunnel, allowed and
//! leaked (red), with the faults and recoveries marked. Pure: results and
//! the scenarios' requirements in, text out.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::model::verdict::{MarkKind, Outcome, ScenarioResult, Traffic};

/// How a scenario ended, as the matrix shows it.
fn status(r: &ScenarioResult) -> (&'static str, &'static str) {
    if r.skipped() {
        ("skip", "SKIP")
    } else if r.passed() {
        ("pass", "PASS")
    } else if r.waived() {
        ("waived", "WAIVED")
    } else if r.errored() {
        ("error", "ERROR")
    } else {
        ("fail", "FAIL")
    }
}

/// Every text of the page goes through here: cleaned (secrets redacted,
/// control bytes shown escaped, capped), then escaped for HTML.
fn esc(s: &str) -> String {
    let s = crate::model::scrub::clean(s);
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// An id for a scenario's section (letters, digits and dashes).
fn anchor(r: &ScenarioResult) -> String {
    crate::model::scrub::clean(&format!("{}--{}", r.target, r.name))
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin:0 0 6px}
table.matrix{border-collapse:collapse;margin:12px 0 24px}
.matrix th,.matrix td{border:1px solid #ccc;padding:3px 10px;text-align:left}
td.pass,span.pass{background:#e3f4e1;color:#1b5e20}
td.fail,span.fail{background:#fde0dc;color:#b71c1c;font-weight:bold}
td.error,span.error{background:#fff3cd;color:#7a5a00;font-weight:bold}
td.skip,span.skip{background:#eee;color:#555}
td.waived,span.waived{background:#ede7f6;color:#4527a0;font-weight:bold}
section.waived{border-left-color:#7e57c2}
section.scenario{border:1px solid #ddd;border-left:6px solid #9e9e9e;padding:10px 14px;margin:14px 0}
section.pass{border-left-color:#43a047}section.fail{border-left-color:#e53935}
section.error{border-left-color:#f9a825}
.req{color:#333;background:#f5f5f5;padding:4px 8px}
.desc{color:#444}ul.failures li{margin:3px 0}code{font-size:12px}
.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:11px;height:11px;margin-right:4px;vertical-align:-1px}
";

/// The report. `requirements` maps a scenario's source to its `# Seed:`
/// requirement; `title` says which run it is.
pub fn render(
    title: &str,
    results: &[ScenarioResult],
    requirements: &BTreeMap<String, String>,
    findings: &[crate::gateway::variables::Finding],
) -> String {
    let mut h = String::new();
    let count = |k: &str| results.iter().filter(|r| status(r).0 == k).count();
    let leaks: usize = results.iter().map(|r| r.leaks.len()).sum();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
<title>leakhound: {}</title><style>{STYLE}</style></head><body>\n",
        esc(title)
    );
    let _ = writeln!(
        h,
        "<h1>leakhound: {}</h1>\n<p id=\"totals\">{} scenario run(s): <span class=\"pass\">{} passed</span>, \
<span class=\"fail\">{} failed</span>, <span class=\"error\">{} could not run</span>, \
<span class=\"skip\">{} skipped</span>; {} leaked packet(s).</p>",
        esc(title),
        results.len(),
        count("pass"),
        count("fail"),
        count("error"),
        count("skip"),
        leaks
    );
    if !findings.is_empty() {
        h.push_str(
            "<h2 id=\"configuration\">Configuration findings</h2>\n<p>Variables that today's Gluetun \
reads otherwise than their names say (leakhound's gateway follows it): not failures, but \
what the configuration really asks for.</p>\n<ul>\n",
        );
        for f in findings {
            let _ = writeln!(h, "<li>{}</li>", esc(&f.to_string()));
        }
        h.push_str("</ul>\n");
    }
    // The matrix: scenarios (in order of first appearance) by target.
    let mut targets: Vec<&str> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    h.push_str("<table class=\"matrix\"><tr><th>scenario</th>");
    for t in &targets {
        let _ = write!(h, "<th>{}</th>", esc(t));
    }
    h.push_str("</tr>\n");
    for n in &names {
        let _ = write!(h, "<tr><td>{}</td>", esc(n));
        for t in &targets {
            match results.iter().find(|r| r.name == *n && r.target == *t) {
                Some(r) => {
                    let (class, word) = status(r);
                    let extra = if r.leaks.is_empty() {
                        String::new()
                    } else {
                        format!(" ({} leaks)", r.leaks.len())
                    };
                    let _ = write!(
                        h,
                        "<td class=\"{class}\"><a href=\"#{}\">{word}</a>{extra}</td>",
                        anchor(r)
                    );
                }
                None => h.push_str("<td></td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    for r in results {
        scenario(&mut h, r, requirements.get(&r.source).map(String::as_str));
    }
    h.push_str("</body></html>\n");
    h
}

fn scenario(h: &mut String, r: &ScenarioResult, requirement: Option<&str>) {
    let (class, word) = status(r);
    let _ = writeln!(
        h,
        "<section class=\"scenario {class}\" id=\"{}\"><h2>{} <small>({})</small> <span class=\"{class}\">{word}</span></h2>",
        anchor(r),
        esc(&r.name),
        esc(&r.target)
    );
    let _ = writeln!(h, "<p class=\"desc\">{}</p>", esc(&r.description));
    match requirement {
        Some(req) => {
            let _ = writeln!(h, "<p class=\"req\">Requirement: {}</p>", esc(req));
        }
        None => {
            let _ = writeln!(
                h,
                "<p class=\"req\">Requirement: none named (<code>{}</code>)</p>",
                esc(&r.source)
            );
        }
    }
    let bad: Vec<_> = r
        .cases
        .iter()
        .filter_map(|c| match &c.outcome {
            Outcome::Failed { message, .. } | Outcome::Error { message, .. } => {
                Some((&c.name, message.clone()))
            }
            Outcome::Waived {
                message,
                reason,
                expires,
                ..
            } => Some((
                &c.name,
                format!("WAIVED until {expires} ({reason}): {message}"),
            )),
            _ => None,
        })
        .collect();
    if !bad.is_empty() {
        h.push_str("<ul class=\"failures\">");
        for (name, msg) in bad {
            let first = msg.lines().next().unwrap_or_default();
            let _ = write!(h, "<li><b>{}</b>: {}</li>", esc(name), esc(first));
        }
        h.push_str("</ul>\n");
    }
    if let Some(reason) = r.cases.iter().find_map(|c| match &c.outcome {
        Outcome::Skipped { reason } if r.skipped() => Some(reason),
        _ => None,
    }) {
        let _ = writeln!(h, "<p>Skipped: {}</p>", esc(reason));
    }
    if r.traffic.has_fault() {
        timeline(h, &r.traffic);
    }
    if !r.leaks.is_empty() {
        let _ = write!(
            h,
            "<details><summary>{} leaked packet(s)</summary><ol>",
            r.leaks.len()
        );
        for l in r.leaks.iter().take(50) {
            let _ = write!(
                h,
                "<li><code>[{}] during \u{201c}{}\u{201d}: {}</code></li>",
                esc(&l.wire),
                esc(&l.step),
                esc(&l.packet.to_string())
            );
        }
        h.push_str("</ol></details>\n");
    }
    h.push_str("</section>\n");
}

const TUNNEL: &str = "#5b84b1";
const ALLOWED: &str = "#8bc34a";
const LEAK: &str = "#d50000";
const FAULT: &str = "#ef6c00";
const RECOVERY: &str = "#2e7d32";

/// The frames on each wire over time, faults and recoveries marked.
fn timeline(h: &mut String, t: &Traffic) {
    let (left, width, lane, top) = (70.0_f64, 980.0_f64, 70.0_f64, 34.0_f64);
    let plot = width - left - 10.0;
    let bins = t.wires.values().map(Vec::len).max().unwrap_or(1).max(1);
    let span_ms = (bins as u64 * t.bin_ms).max(1) as f64;
    let x = |ms: f64| left + ms / span_ms * plot;
    let peak = t
        .wires
        .values()
        .flatten()
        .map(|b| b.iter().sum::<u32>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let height = top + lane * t.wires.len() as f64 + 26.0;
    let _ = write!(
        h,
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\">\
<title>Frames on each wire over the scenario</title>"
    );
    for (i, (wire, v)) in t.wires.iter().enumerate() {
        let base = top + lane * (i as f64 + 1.0) - 6.0;
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{:.1}\">{}</text><line x1=\"{left}\" x2=\"{:.1}\" y1=\"{base:.1}\" y2=\"{base:.1}\" stroke=\"#999\"/>",
            base - lane / 2.0 + 4.0,
            esc(wire),
            left + plot
        );
        let bw = (plot / bins as f64).max(1.0);
        for (j, b) in v.iter().enumerate() {
            let mut y = base;
            for (k, color) in [(0, TUNNEL), (1, ALLOWED), (2, LEAK)] {
                if b[k] == 0 {
                    continue;
                }
                // Square-root scale, so one leaked frame still shows.
                let mut hgt = ((b[k] as f64).sqrt() / peak.sqrt()) * (lane - 14.0);
                if k == 2 {
                    hgt = hgt.max(6.0);
                }
                hgt = hgt.max(1.5);
                y -= hgt;
                let _ = write!(
                    h,
                    "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{hgt:.1}\" fill=\"{color}\"><title>{} frame(s)</title></rect>",
                    x(j as f64 * t.bin_ms as f64),
                    b[k]
                );
            }
        }
    }
    let bottom = top + lane * t.wires.len() as f64;
    let mut label_row = 0;
    for m in &t.marks {
        let mx = x(m.at_ms as f64);
        match m.kind {
            MarkKind::Step => {
                let _ = write!(
                    h,
                    "<line x1=\"{mx:.1}\" x2=\"{mx:.1}\" y1=\"{top}\" y2=\"{bottom:.1}\" stroke=\"#ccc\" stroke-width=\"0.7\"><title>{}</title></line>",
                    esc(&m.name)
                );
            }
            MarkKind::Fault | MarkKind::Recovery => {
                let (color, dash) = if m.kind == MarkKind::Fault {
                    (FAULT, "")
                } else {
                    (RECOVERY, " stroke-dasharray=\"5 3\"")
                };
                let name: String = m.name.chars().take(40).collect();
                let ty = 12.0 + 11.0 * (label_row % 2) as f64;
                label_row += 1;
                // Labels near the right edge end at their line.
                let (tx, anchor) = if mx > left + plot * 0.7 {
                    (mx - 3.0, "end")
                } else {
                    (mx + 3.0, "start")
                };
                let _ = write!(
                    h,
                    "<line class=\"{}\" x1=\"{mx:.1}\" x2=\"{mx:.1}\" y1=\"{:.1}\" y2=\"{bottom:.1}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>\
<text x=\"{tx:.1}\" y=\"{ty:.1}\" fill=\"{color}\" text-anchor=\"{anchor}\">{}</text>",
                    if m.kind == MarkKind::Fault {
                        "fault"
                    } else {
                        "recovery"
                    },
                    ty + 3.0,
                    esc(&name)
                );
            }
        }
    }
    // Seconds along the bottom.
    let secs = span_ms / 1000.0;
    let step = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0]
        .into_iter()
        .find(|s| secs / s <= 12.0)
        .unwrap_or(120.0);
    let mut s = 0.0;
    while s <= secs {
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#666\">{s}s</text>",
            x(s * 1000.0) - 6.0,
            bottom + 16.0
        );
        s += step;
    }
    h.push_str("</svg>\n");
    let _ = writeln!(
        h,
        "<p class=\"legend\"><span><i class=\"sw\" style=\"background:{TUNNEL}\"></i>tunnel</span>\
<span><i class=\"sw\" style=\"background:{ALLOWED}\"></i>allowed (LAN, housekeeping, inbound)</span>\
<span><i class=\"sw\" style=\"background:{LEAK}\"></i>leak</span>\
<span style=\"color:{FAULT}\">| fault</span><span style=\"color:{RECOVERY}\">\u{2506} recovery</span> \
({} ms per bar)</p>",
        t.bin_ms
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::verdict::{CaseResult, TrafficMark};
    use std::time::{Duration, SystemTime};

    fn result(name: &str, outcome: Outcome, fault: bool) -> ScenarioResult {
        let mut wires = BTreeMap::new();
        wires.insert("gw".to_string(), vec![[3, 1, 0], [0, 0, 2], [4, 0, 0]]);
        ScenarioResult {
            name: name.into(),
            target: "builtin".into(),
            description: "Does <things> & more.".into(),
            source: format!("builtin:{name}"),
            started: SystemTime::UNIX_EPOCH,
            duration: Duration::from_secs(1),
            cases: vec![CaseResult {
                name: "no packet on gw is a leak".into(),
                outcome,
                duration: Duration::ZERO,
                log: vec![],
            }],
            leaks: vec![],
            frames: BTreeMap::new(),
            pcaps: vec![],
            gateway_log: Default::default(),
            handshake_after: None,
            readiness: vec![],
            traffic: Traffic {
                bin_ms: 100,
                wires,
                marks: vec![
                    TrafficMark {
                        at_ms: 50,
                        name: "the gateway stops its tunnel".into(),
                        kind: if fault {
                            MarkKind::Fault
                        } else {
                            MarkKind::Step
                        },
                    },
                    TrafficMark {
                        at_ms: 220,
                        name: "the tunnel starts again".into(),
                        kind: MarkKind::Recovery,
                    },
                ],
            },
        }
    }

    #[test]
    fn the_report_shows_the_matrix_requirements_and_timelines() {
        let mut req = BTreeMap::new();
        req.insert(
            "builtin:a".to_string(),
            "\"Kill switch MUST be enabled\"".to_string(),
        );
        let html = render(
            "run x",
            &[
                result("a", Outcome::Passed, true),
                result("b", Outcome::fail("2 leaked <pkts>", ""), false),
            ],
            &req,
            &[],
        );
        assert!(!html.contains("Configuration findings"));
        assert!(html.contains("<td class=\"pass\"><a href=\"#builtin--a\">PASS</a>"));
        assert!(html.contains("<td class=\"fail\"><a href=\"#builtin--b\">FAIL</a>"));
        assert!(html.contains("Requirement: &quot;Kill switch MUST be enabled&quot;"));
        assert!(html.contains("Does &lt;things&gt; &amp; more."));
        assert!(html.contains("2 leaked &lt;pkts&gt;"));
        // A timeline for the fault scenario only, with its leak bar red.
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains(&format!("fill=\"{LEAK}\"")));
        assert!(html.contains("class=\"fault\""));
        assert!(html.contains("class=\"recovery\""));
        // Self-contained: nothing to fetch, no scripts.
        assert!(!html.contains("<script"));
        assert!(!html.contains("src="));
        assert!(!html.contains("href=\"http"));
    }
}
