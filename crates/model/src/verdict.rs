//! Verdicts: what a scenario's run amounts to. The result types every
//! reporter reads (JUnit, JSON, terminal), and the pure function that turns
//! the frames captured on each wire, the step timeline and the wires'
//! policies into leak records and the "no packet on WIRE is a leak" cases.
//! No I/O: the runner collects the inputs, this decides.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::classify::{LeakPolicy, Nonces, Summary, classify_with};

/// One assertion's outcome. `Failed` is a finding about the gateway under
/// test; `Error` is the harness's own failure (it could not do the step);
/// `Skipped` says why a case did not run. Only `Passed` passes.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    Passed,
    Failed {
        message: String,
        detail: String,
    },
    Error {
        message: String,
        detail: String,
    },
    Skipped {
        reason: String,
    },
    /// A failure a waiver (`--waivers`) accepts until its date: shown as
    /// waived, never as passed, and not failing the run.
    Waived {
        message: String,
        detail: String,
        reason: String,
        expires: String,
    },
}

impl Outcome {
    pub fn fail(message: impl Into<String>, detail: impl Into<String>) -> Outcome {
        Outcome::Failed {
            message: message.into(),
            detail: detail.into(),
        }
    }

    pub fn error(message: impl Into<String>) -> Outcome {
        Outcome::Error {
            message: message.into(),
            detail: String::new(),
        }
    }
}

/// One assertion's result (a JUnit testcase).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub outcome: Outcome,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// What happened, line by line (JUnit system-out).
    pub log: Vec<String>,
}

/// A packet classified as a leak, tied to the step that was running.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeakRecord {
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    pub wire: String,
    /// The step during which it crossed (see [`Timeline::attribute`]).
    pub step: String,
    pub packet: Summary,
}

/// Everything a scenario's run amounts to.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    /// The gateway under test (the target's name).
    pub target: String,
    pub description: String,
    pub source: String,
    #[serde(with = "humantime_serde")]
    pub started: SystemTime,
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    pub cases: Vec<CaseResult>,
    pub leaks: Vec<LeakRecord>,
    /// Frames seen per wire.
    pub frames: BTreeMap<String, usize>,
    pub pcaps: Vec<PathBuf>,
    pub gateway_log: PathBuf,
    /// From gateway start to the provider's first completed handshake.
    #[serde(with = "humantime_serde::option")]
    pub handshake_after: Option<Duration>,
    /// The readiness events of its gateways (the built-in's; every start
    /// in order), for the soak's figures. Not in summary.json.
    #[serde(skip)]
    pub readiness: Vec<leakhound_proto::readiness::ReadinessEvent>,
    /// What crossed each wire over time, and when each step began (the
    /// HTML report's timelines).
    #[serde(skip_serializing_if = "Traffic::is_empty")]
    pub traffic: Traffic,
}

/// How a step shows on a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarkKind {
    Step,
    /// Something done to the gateway or the lab (tunnel stopped, crash).
    Fault,
    /// Undoing one (tunnel started, gateway restarted).
    Recovery,
}

/// A step's beginning on a timeline, in milliseconds from the scenario's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficMark {
    pub at_ms: u64,
    pub name: String,
    pub kind: MarkKind,
}

/// The frames on each wire over a scenario, counted per bin of `bin_ms`:
/// `[tunnel, allowed, leak]` (allowed: the allowed subnets, link
/// housekeeping, inbound probes and refusals).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Traffic {
    pub bin_ms: u64,
    pub wires: BTreeMap<String, Vec<[u32; 3]>>,
    pub marks: Vec<TrafficMark>,
}

impl Traffic {
    pub fn is_empty(&self) -> bool {
        self.wires.is_empty() && self.marks.is_empty()
    }

    /// Whether something was done to the gateway or the lab.
    pub fn has_fault(&self) -> bool {
        self.marks.iter().any(|m| m.kind == MarkKind::Fault)
    }
}

/// What a judged frame was, for the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// WireGuard to or from the endpoint.
    Tunnel,
    /// Allowed otherwise: the allowed subnets, housekeeping, inbound
    /// probes, refusals.
    Allowed,
    Leak,
}

/// Bins the judged frames of every wire (pure): at most `max_bins` bins of
/// at least 50 ms from `started` to `end`; `marks` are the steps'
/// beginnings with their kinds. `judged` is [`Judged::kinds`]: every frame
/// classified once, while judging; the harness's own control probes are
/// not in it.
pub fn traffic(
    started: SystemTime,
    end: SystemTime,
    judged: &BTreeMap<String, Vec<(SystemTime, FrameKind)>>,
    marks: &[(SystemTime, String, MarkKind)],
    max_bins: u64,
) -> Traffic {
    let span = end.duration_since(started).unwrap_or_default().as_millis() as u64;
    let bin_ms = span.div_ceil(max_bins.max(1)).max(50);
    let bins = (span / bin_ms + 1) as usize;
    let offset = |t: SystemTime| t.duration_since(started).unwrap_or_default().as_millis() as u64;
    let wires = judged
        .iter()
        .map(|(wire, frames)| {
            let mut v = vec![[0u32; 3]; bins];
            for (at, kind) in frames {
                let i = ((offset(*at) / bin_ms) as usize).min(bins - 1);
                v[i][*kind as usize] += 1;
            }
            (wire.clone(), v)
        })
        .collect();
    Traffic {
        bin_ms,
        wires,
        marks: marks
            .iter()
            .map(|(t, name, kind)| TrafficMark {
                at_ms: offset(*t),
                name: name.clone(),
                kind: *kind,
            })
            .collect(),
    }
}

impl ScenarioResult {
    /// Every case passed or was skipped, and at least one passed: a scenario
    /// that was skipped entirely has not passed.
    pub fn passed(&self) -> bool {
        self.cases
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Passed | Outcome::Skipped { .. }))
            && self.cases.iter().any(|c| c.outcome == Outcome::Passed)
    }

    /// Nothing failed, and some failure was waived (not passed).
    pub fn waived(&self) -> bool {
        self.cases
            .iter()
            .all(|c| !matches!(c.outcome, Outcome::Failed { .. } | Outcome::Error { .. }))
            && self
                .cases
                .iter()
                .any(|c| matches!(c.outcome, Outcome::Waived { .. }))
    }

    /// Does not fail the run: passed, skipped entirely, or waived.
    pub fn ok(&self) -> bool {
        self.passed() || self.skipped() || self.waived()
    }

    /// The harness itself failed somewhere in this scenario.
    pub fn errored(&self) -> bool {
        self.cases
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Error { .. }))
    }

    /// Every case was skipped (the target cannot do what it needs).
    pub fn skipped(&self) -> bool {
        !self.cases.is_empty()
            && self
                .cases
                .iter()
                .all(|c| matches!(c.outcome, Outcome::Skipped { .. }))
    }

    /// The failed (or errored) cases: (case name, message).
    pub fn failures(&self) -> Vec<(String, String)> {
        self.cases
            .iter()
            .filter_map(|c| match &c.outcome {
                Outcome::Passed | Outcome::Skipped { .. } | Outcome::Waived { .. } => None,
                Outcome::Failed { message, .. } | Outcome::Error { message, .. } => {
                    Some((c.name.clone(), message.clone()))
                }
            })
            .collect()
    }
}

/// The one rule for skips, for `run` and `audit` alike: a skip never fails
/// a run by itself; with `--fail-on-skip` every skipped check fails it
/// unless `allowed` names it, by its scenario, `SCENARIO: CHECK`, the
/// check's full name or its kind (the check name's first word, as audit
/// checks are named). Returns the skips that fail it: (scenario, check,
/// reason).
pub fn unaccepted_skips(
    results: &[ScenarioResult],
    allowed: &[String],
) -> Vec<(String, String, String)> {
    let accepted = |scenario: &str, case: &str| {
        let kind = case.split(' ').next().unwrap_or(case);
        allowed
            .iter()
            .any(|a| a == scenario || a == case || a == kind || *a == format!("{scenario}: {case}"))
    };
    results
        .iter()
        .flat_map(|r| r.cases.iter().map(move |c| (r, c)))
        .filter_map(|(r, c)| match &c.outcome {
            Outcome::Skipped { reason } if !accepted(&r.name, &c.name) => {
                Some((r.name.clone(), c.name.clone(), reason.clone()))
            }
            _ => None,
        })
        .collect()
}

/// What a run reports as it goes: the runner emits these, reporters (the
/// terminal, a JSON-lines stream) consume them.
#[derive(Debug, Clone)]
pub enum Event {
    /// `target` names the gateway under test: with parallel labs the same
    /// scenario may run against two targets at once.
    ScenarioStarted {
        target: String,
        name: String,
        cases: usize,
    },
    CaseFinished {
        target: String,
        scenario: String,
        case: CaseResult,
    },
    ScenarioFinished {
        result: Box<ScenarioResult>,
    },
}

/// One captured frame, with the kernel's receive time.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub at: SystemTime,
    pub data: Vec<u8>,
}

/// When each part of a scenario began: "setup", then every step, then
/// "teardown". A part lasts until the next one begins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    marks: Vec<(SystemTime, String)>,
    /// Parts in which several probes ran at once: the mark's index, and
    /// each probe's name and target (address, port), so a frame is tied to
    /// its probe by where it went, not by when.
    together: Vec<(usize, Vec<TogetherProbe>)>,
}

/// A probe that ran beside others: its step's name and its target.
#[derive(Debug, Clone, PartialEq)]
pub struct TogetherProbe {
    pub step: String,
    pub target: Option<(std::net::IpAddr, Option<u16>)>,
}

/// What a frame before the first mark is attributed to.
pub const BEFORE_START: &str = "before the scenario started";

impl Timeline {
    pub fn new() -> Self {
        Timeline::default()
    }

    /// Every part's beginning, in order.
    pub fn marks(&self) -> &[(SystemTime, String)] {
        &self.marks
    }

    /// A part named `name` begins at `at` (marks come in time order).
    pub fn mark(&mut self, at: SystemTime, name: impl Into<String>) {
        self.marks.push((at, name.into()));
    }

    /// A part named `name` begins at `at` in which `probes` run at once.
    pub fn mark_together(
        &mut self,
        at: SystemTime,
        name: impl Into<String>,
        probes: Vec<TogetherProbe>,
    ) {
        self.together.push((self.marks.len(), probes));
        self.mark(at, name);
    }

    /// The part a frame stamped `at` belongs to, as [`Timeline::attribute`]
    /// says; within a part whose probes ran at once, the one probe the
    /// frame went to or came from (by address and port), if exactly one
    /// matches.
    pub fn attribute_frame(&self, at: SystemTime, frame: &[u8], skew: Duration) -> String {
        let part = self.attribute(at, skew);
        let idx = self.marks.iter().rposition(|(t, _)| *t <= at);
        let Some((_, probes)) = self.together.iter().find(|(i, _)| Some(*i) == idx) else {
            return part;
        };
        let Some((src, dst, ports)) = transport(frame) else {
            return part;
        };
        let hits = |ip: std::net::IpAddr, port: Option<u16>| {
            probes
                .iter()
                .filter(|p| {
                    p.target
                        .is_some_and(|(t, tp)| t == ip && (tp.is_none() || tp == port))
                })
                .collect::<Vec<_>>()
        };
        let mut m = hits(dst, ports.map(|(_, d)| d));
        m.extend(hits(src, ports.map(|(s, _)| s)));
        match m.as_slice() {
            [one] => one.step.clone(),
            _ => part,
        }
    }

    /// The part during which a frame stamped `at` crossed: the last one
    /// that began at or before `at` (a frame exactly at a step's start
    /// belongs to that step; one between two steps' bookkeeping belongs to
    /// the earlier). The capture's clock (the kernel's receive stamp) and
    /// the runner's may disagree by up to `skew`: a frame that close to a
    /// boundary is attributed to both neighbours, in words, rather than
    /// guessed.
    pub fn attribute(&self, at: SystemTime, skew: Duration) -> String {
        let idx = self.marks.iter().rposition(|(t, _)| *t <= at);
        let here = idx
            .map(|i| self.marks[i].1.as_str())
            .unwrap_or(BEFORE_START);
        // The next boundary after `at`, and the one at or before it.
        let next = idx.map_or(0, |i| i + 1);
        if let Some((t, name)) = self.marks.get(next)
            && t.duration_since(at).unwrap_or_default() <= skew
            && !skew.is_zero()
        {
            return format!("{here}\" or \"{name}");
        }
        if let Some(i) = idx
            && i > 0
            && !skew.is_zero()
            && at.duration_since(self.marks[i].0).unwrap_or_default() <= skew
        {
            return format!("{}\" or \"{here}", self.marks[i - 1].1);
        }
        here.to_string()
    }
}

/// Source, destination and, for TCP and UDP, the ports of an Ethernet
/// frame's IP packet.
fn transport(frame: &[u8]) -> Option<Endpoints> {
    ip_ports(frame, true)
}

/// Frames a step must have put on a wire, or the capture was not looking
/// where the traffic went (a blind capture must never pass a scenario).
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The step that must show it.
    pub step: String,
    /// From this mark (a step's name; the step itself when `None`) up to
    /// the end of `step`: a handshake may begin in the step before.
    pub since: Option<String>,
    pub wire: String,
    pub what: Sighting,
}

/// What a frame must be to count as evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum Sighting {
    /// WireGuard: UDP to or from this endpoint.
    WireGuard(std::net::SocketAddr),
    /// Any IP packet between these two addresses (either direction).
    Between(std::net::IpAddr, std::net::IpAddr),
}

impl std::fmt::Display for Sighting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sighting::WireGuard(ep) => write!(f, "WireGuard to or from {ep}"),
            Sighting::Between(a, b) => write!(f, "the traffic between {a} and {b}"),
        }
    }
}

/// Source and destination of an Ethernet frame's IP packet, and its UDP
/// ports if it is UDP.
pub type Endpoints = (std::net::IpAddr, std::net::IpAddr, Option<(u16, u16)>);

/// The [`Endpoints`] of an Ethernet frame, without copying it; `None` for
/// anything but IPv4 and IPv6. Pure.
pub fn endpoints(frame: &[u8]) -> Option<Endpoints> {
    ip_ports(frame, false)
}

/// An Ethernet frame's IP source and destination, its transport protocol
/// (IP protocol number) and its transport bytes (header and payload, within
/// the IP packet's stated length), borrowed from the frame; `None` for
/// anything but IPv4 and IPv6. Pure; it runs for every captured frame.
pub fn ip_transport(frame: &[u8]) -> Option<(std::net::IpAddr, std::net::IpAddr, u8, &[u8])> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    const ETH: usize = 14;
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH..)?;
    match ethertype {
        0x0800 => {
            let ihl = usize::from(ip.first()? & 0x0f) * 4;
            if ihl < 20 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            let body = ip.get(ihl..total.min(ip.len()).max(ihl))?;
            Some((
                Ipv4Addr::from(src).into(),
                Ipv4Addr::from(dst).into(),
                ip[9],
                body,
            ))
        }
        0x86dd => {
            let len = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            let body = ip.get(40..(40 + len).min(ip.len()))?;
            Some((
                Ipv6Addr::from(src).into(),
                Ipv6Addr::from(dst).into(),
                *ip.get(6)?,
                body,
            ))
        }
        _ => None,
    }
}

/// An Ethernet frame's IP source and destination, and the ports of UDP
/// (and of TCP too when `tcp`).
fn ip_ports(frame: &[u8], tcp: bool) -> Option<Endpoints> {
    const UDP: u8 = 17;
    const TCP: u8 = 6;
    let (src, dst, proto, body) = ip_transport(frame)?;
    // A whole header: 8 bytes for UDP, 20 for TCP.
    let header = match proto {
        UDP => 8,
        TCP if tcp => 20,
        _ => return Some((src, dst, None)),
    };
    let ports = (body.len() >= header).then(|| {
        (
            u16::from_be_bytes([body[0], body[1]]),
            u16::from_be_bytes([body[2], body[3]]),
        )
    });
    Some((src, dst, ports))
}

fn sighted(what: &Sighting, frame: &[u8]) -> bool {
    let Some((src, dst, udp)) = endpoints(frame) else {
        return false;
    };
    match what {
        Sighting::WireGuard(ep) => udp.is_some_and(|(sp, dp)| {
            (dst == ep.ip() && dp == ep.port()) || (src == ep.ip() && sp == ep.port())
        }),
        Sighting::Between(a, b) => (src == *a && dst == *b) || (src == *b && dst == *a),
    }
}

impl Timeline {
    /// When the part named `name` began and ended (the next mark), the
    /// last one of that name.
    pub fn window(&self, name: &str) -> Option<(SystemTime, Option<SystemTime>)> {
        let i = self.marks.iter().rposition(|(_, n)| n == name)?;
        Some((self.marks[i].0, self.marks.get(i + 1).map(|(t, _)| *t)))
    }
}

/// Which evidence the capture does not hold: one line each. Frames whose
/// kernel stamp lies within the window (from `since`, or the step, to the
/// step's end) count.
pub fn missing_evidence(
    evidence: &[Evidence],
    captured: &BTreeMap<String, Vec<Frame>>,
    timeline: &Timeline,
) -> Vec<String> {
    missing_items(evidence, captured, timeline)
        .into_iter()
        .map(|(_, line)| line)
        .collect()
}

/// The evidence case: passed when the capture holds what every passed step
/// sent. Where it does not, it matters why. If the step's traffic crossed
/// the wire outside the tunnel (a leak on that wire during that step,
/// `leaked_during` holding (wire, step)), the step passed only because
/// it went around the tunnel: a failure of the gateway, as its leak cases
/// say. Otherwise the capture missed it and nothing it reports can be
/// trusted: the harness's error.
pub fn judge_evidence(
    evidence: &[Evidence],
    captured: &BTreeMap<String, Vec<Frame>>,
    timeline: &Timeline,
    leaked_during: &std::collections::BTreeSet<(String, String)>,
) -> Outcome {
    let missing = missing_items(evidence, captured, timeline);
    if missing.is_empty() {
        return Outcome::Passed;
    }
    let around = |e: &Evidence| {
        leaked_during
            .iter()
            .any(|(w, step)| *w == e.wire && (*step == e.step || step.contains(&e.step)))
    };
    let lines: Vec<String> = missing.iter().map(|(_, l)| l.clone()).collect();
    if missing.iter().all(|(e, _)| around(e)) {
        Outcome::Failed {
            message: format!(
                "steps passed only because their traffic went around the tunnel (see the leaks): {}",
                lines.join("; ")
            ),
            detail: lines.join("\n"),
        }
    } else {
        Outcome::Error {
            message: format!(
                "the capture missed traffic that passed steps sent, so its verdict cannot be trusted: {}",
                lines.join("; ")
            ),
            detail: lines.join("\n"),
        }
    }
}

/// Each evidence item the capture does not hold, with its line.
fn missing_items<'a>(
    evidence: &'a [Evidence],
    captured: &BTreeMap<String, Vec<Frame>>,
    timeline: &Timeline,
) -> Vec<(&'a Evidence, String)> {
    let mut missing = Vec::new();
    for e in evidence {
        let Some((start, end)) = timeline.window(e.since.as_deref().unwrap_or(&e.step)) else {
            missing.push((e, format!("\"{}\": no such step in the timeline", e.step)));
            continue;
        };
        let end = timeline.window(&e.step).and_then(|(_, end)| end).or(end);
        let seen = captured.get(&e.wire).is_some_and(|frames| {
            frames.iter().any(|f| {
                f.at >= start && end.is_none_or(|end| f.at < end) && sighted(&e.what, &f.data)
            })
        });
        if !seen {
            missing.push((
                e,
                format!(
                    "\"{}\" passed, but the capture on {} shows nothing of {} during it",
                    e.step, e.wire, e.what
                ),
            ));
        }
    }
    missing
}

/// The leak cases of one scenario: for every watched wire, "no packet on
/// WIRE is a leak", failing with every leaked packet named; plus every leak
/// record of every wire that has a policy. A watched wire without a policy
/// or without a capture is the harness's error (it cannot judge it), never
/// a pass. Frames carrying one of the `controls` markers are the harness's
/// own positive control (sent while nothing blocks it) and not judged.
/// A probe's nonce (`nonces`) in clear makes a frame a leak whatever its
/// addresses ([`classify_with`]).
pub fn judge_wires(
    watched: &[String],
    captured: &BTreeMap<String, Vec<Frame>>,
    policies: &BTreeMap<String, LeakPolicy>,
    timeline: &Timeline,
    skew: Duration,
    controls: &[Vec<u8>],
    nonces: &Nonces,
) -> Judged {
    let mut leaks = Vec::new();
    let mut kinds = BTreeMap::new();
    for (wire, frames) in captured {
        let Some(policy) = policies.get(wire) else {
            continue;
        };
        let mut mine = Vec::with_capacity(frames.len());
        for f in frames {
            if controls.iter().any(|m| contains(&f.data, m)) {
                continue;
            }
            let v = classify_with(policy, &f.data, nonces);
            mine.push((
                f.at,
                match &v {
                    crate::classify::Verdict::Allowed {
                        reason: crate::classify::Reason::Tunnel,
                        ..
                    } => FrameKind::Tunnel,
                    crate::classify::Verdict::Allowed { .. } => FrameKind::Allowed,
                    crate::classify::Verdict::Leak { .. } => FrameKind::Leak,
                },
            ));
            if v.is_leak() {
                leaks.push(LeakRecord {
                    at: f.at,
                    wire: wire.clone(),
                    step: timeline.attribute_frame(f.at, &f.data, skew),
                    packet: v.summary().clone(),
                });
            }
        }
        kinds.insert(wire.clone(), mine);
    }
    let mut cases = Vec::new();
    for w in watched {
        let name = format!("no packet on {w} is a leak");
        let case = |outcome, log| CaseResult {
            name: name.clone(),
            outcome,
            duration: Duration::ZERO,
            log,
        };
        let Some(policy) = policies.get(w) else {
            cases.push(case(
                Outcome::error(format!("wire {w} has no leak policy: it cannot be judged")),
                vec![],
            ));
            continue;
        };
        let Some(frames) = captured.get(w) else {
            cases.push(case(
                Outcome::error(format!("there is no capture of {w}")),
                vec![],
            ));
            continue;
        };
        let mine: Vec<&LeakRecord> = leaks.iter().filter(|l| &l.wire == w).collect();
        let mut log = vec![format!(
            "{} frames captured on {w}; policy: {policy:?}",
            frames.len()
        )];
        let outcome = if mine.is_empty() {
            Outcome::Passed
        } else {
            let lines: Vec<String> = mine.iter().map(|l| format_leak(l)).collect();
            log.extend(lines.iter().cloned());
            Outcome::fail(
                format!(
                    "{} packet(s) leaked on {w}; first: {}",
                    mine.len(),
                    lines.first().cloned().unwrap_or_default()
                ),
                lines.join("\n"),
            )
        };
        cases.push(case(outcome, log));
    }
    Judged {
        leaks,
        cases,
        kinds,
    }
}

/// What [`judge_wires`] found: the leak records, the "no packet on WIRE is
/// a leak" cases, and every judged frame's kind by wire (for
/// [`traffic`]).
#[derive(Debug, Clone)]
pub struct Judged {
    pub leaks: Vec<LeakRecord>,
    pub cases: Vec<CaseResult>,
    pub kinds: BTreeMap<String, Vec<(SystemTime, FrameKind)>>,
}

/// Does `haystack` contain `needle`?
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// One leak as a line: time, wire, step, packet.
pub fn format_leak(l: &LeakRecord) -> String {
    let t = humantime::format_rfc3339_micros(l.at);
    format!("{t} [{}] during \"{}\": {}", l.wire, l.step, l.packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_millis(ms)
    }

    #[test]
    fn the_transport_bytes_stop_at_the_ip_length_and_garbage_is_none() {
        // IPv4 UDP 10.0.0.1:1000 -> 10.0.0.2:53, 4 payload bytes, then
        // Ethernet padding that is not part of the packet.
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00]);
        f.extend([
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend([0x03, 0xe8, 0x00, 0x35, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
        f.extend([0xee; 6]);
        let (src, dst, proto, body) = ip_transport(&f).unwrap();
        assert_eq!(
            (src.to_string(), dst.to_string(), proto),
            ("10.0.0.1".into(), "10.0.0.2".into(), 17)
        );
        assert_eq!(body.len(), 12);
        assert_eq!(&body[8..], b"abcd");
        assert_eq!(endpoints(&f).unwrap().2, Some((1000, 53)));
        // A header length under 20 bytes, a cut-off frame, ARP: nothing.
        let mut bad = f.clone();
        bad[14] = 0x44;
        assert!(ip_transport(&bad).is_none());
        assert!(ip_transport(&f[..20]).is_none());
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(ip_transport(&arp).is_none());
    }

    fn timeline() -> Timeline {
        let mut tl = Timeline::new();
        tl.mark(t(0), "setup");
        tl.mark(t(100), "probe A");
        tl.mark(t(200), "probe B");
        tl.mark(t(300), "teardown");
        tl
    }

    #[test]
    fn a_frame_exactly_at_a_steps_start_belongs_to_that_step() {
        let tl = timeline();
        assert_eq!(tl.attribute(t(100), Duration::ZERO), "probe A");
        assert_eq!(tl.attribute(t(200), Duration::ZERO), "probe B");
        // ... and one a nanosecond before it to the step before.
        let just_before = t(200) - Duration::from_nanos(1);
        assert_eq!(tl.attribute(just_before, Duration::ZERO), "probe A");
    }

    #[test]
    fn a_frame_between_steps_belongs_to_the_earlier_and_before_the_start_is_named() {
        let mut tl = Timeline::new();
        tl.mark(t(0), "setup");
        tl.mark(t(100), "probe A");
        // A gap: the runner's bookkeeping between A and B.
        tl.mark(t(250), "probe B");
        assert_eq!(tl.attribute(t(180), Duration::ZERO), "probe A");
        assert_eq!(
            tl.attribute(t(0) - Duration::from_millis(5), Duration::ZERO),
            BEFORE_START
        );
        assert_eq!(tl.attribute(t(10_000), Duration::ZERO), "probe B");
    }

    #[test]
    fn clock_skew_near_a_boundary_names_both_neighbours() {
        let tl = timeline();
        let skew = Duration::from_millis(5);
        // 2 ms before B by the capture's clock: may be B's first frame.
        assert_eq!(
            tl.attribute(t(198), skew),
            "probe A\" or \"probe B",
            "near the end of A"
        );
        // 2 ms after B began: may still be A's last frame.
        assert_eq!(tl.attribute(t(202), skew), "probe A\" or \"probe B");
        // Well inside a step: no doubt.
        assert_eq!(tl.attribute(t(150), skew), "probe A");
        // Exactly at the boundary with a skew: both, too.
        assert_eq!(tl.attribute(t(200), skew), "probe A\" or \"probe B");
    }

    fn policy() -> LeakPolicy {
        LeakPolicy {
            local: vec!["172.21.0.2".parse().unwrap()],
            endpoint: "203.0.113.10:51820".parse().unwrap(),
            allowed: vec!["172.21.0.0/16".parse().unwrap()],
            tunnel_mtu: Some(1420),
        }
    }

    /// An Ethernet + IPv4 + UDP frame from `src` to `dst:dport`.
    fn udp_frame(src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
        udp_frame_with(src, dst, dport, &[])
    }

    /// The same, carrying `payload`.
    fn udp_frame_with(src: [u8; 4], dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        let total = (28 + payload.len()) as u16;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&40000u16.to_be_bytes());
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn probes_that_waited_together_get_their_own_frames_by_target() {
        let mut tl = Timeline::new();
        tl.mark(t(0), "setup");
        let p = |step: &str, ip: [u8; 4], port: Option<u16>| TogetherProbe {
            step: step.into(),
            target: Some((ip.into(), port)),
        };
        tl.mark_together(
            t(100),
            "3 probes waiting together",
            vec![
                p("DNS to the ISP", [192, 0, 2, 53], Some(53)),
                p("DNS to the LAN", [192, 168, 10, 53], Some(53)),
                p("ping the ISP", [192, 0, 2, 53], None),
            ],
        );
        tl.mark(t(3200), "teardown");
        let to_isp = udp_frame([172, 21, 0, 2], [192, 0, 2, 53], 53);
        let to_lan = udp_frame([172, 21, 0, 2], [192, 168, 10, 53], 53);
        let elsewhere = udp_frame([172, 21, 0, 2], [198, 51, 100, 7], 53);
        let z = Duration::ZERO;
        // The LAN query: only one probe went there. Its answer (reversed) too.
        assert_eq!(tl.attribute_frame(t(150), &to_lan, z), "DNS to the LAN");
        let mut back = udp_frame([192, 168, 10, 53], [172, 21, 0, 2], 40000);
        back[34..36].copy_from_slice(&53u16.to_be_bytes()); // from port 53
        assert_eq!(tl.attribute_frame(t(150), &back, z), "DNS to the LAN");
        // Two probes went to 192.0.2.53 (any port for the ping): not guessed.
        assert_eq!(
            tl.attribute_frame(t(150), &to_isp, z),
            "3 probes waiting together"
        );
        // A frame to none of them, and frames outside the part, by time.
        assert_eq!(
            tl.attribute_frame(t(150), &elsewhere, z),
            "3 probes waiting together"
        );
        assert_eq!(tl.attribute_frame(t(50), &to_lan, z), "setup");
        assert_eq!(tl.attribute_frame(t(3300), &to_lan, z), "teardown");
    }

    #[test]
    fn leaks_are_tied_to_their_step_and_named_in_the_wires_case() {
        let tl = timeline();
        let leak = Frame {
            at: t(150),
            data: udp_frame([172, 21, 0, 2], [192, 0, 2, 53], 53),
        };
        let tunnel = Frame {
            at: t(120),
            // A WireGuard keepalive.
            data: udp_frame_with([172, 21, 0, 2], [203, 0, 113, 10], 51820, &{
                let mut k = [0u8; 32];
                k[0] = 4;
                k
            }),
        };
        let captured = BTreeMap::from([("gw".to_string(), vec![tunnel, leak])]);
        let policies = BTreeMap::from([("gw".to_string(), policy())]);
        let Judged { leaks, cases, .. } = judge_wires(
            &["gw".into()],
            &captured,
            &policies,
            &tl,
            Duration::ZERO,
            &[],
            &Nonces::default(),
        );
        assert_eq!(leaks.len(), 1, "{leaks:#?}");
        assert_eq!(leaks[0].step, "probe A");
        // The harness's own positive control is not judged.
        let mut control = udp_frame([172, 21, 0, 2], [192, 0, 2, 53], 53);
        control.extend_from_slice(b"ctl-1234");
        let with_control = BTreeMap::from([(
            "gw".to_string(),
            vec![Frame {
                at: t(10),
                data: control,
            }],
        )]);
        let Judged { leaks: none, .. } = judge_wires(
            &["gw".into()],
            &with_control,
            &policies,
            &tl,
            Duration::ZERO,
            &[b"ctl-1234".to_vec()],
            &Nonces::default(),
        );
        assert!(none.is_empty(), "{none:#?}");
        assert_eq!(cases.len(), 1);
        match &cases[0].outcome {
            Outcome::Failed { message, .. } => {
                assert!(message.contains("1 packet(s) leaked on gw"), "{message}");
                assert!(message.contains("192.0.2.53:53"), "{message}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn a_wire_without_a_policy_or_a_capture_is_an_error_never_a_pass() {
        let tl = timeline();
        let captured = BTreeMap::from([("gw".to_string(), vec![])]);
        let policies = BTreeMap::from([("gw".to_string(), policy())]);
        let Judged { cases, .. } = judge_wires(
            &["gw".into(), "uplink".into(), "wifi".into()],
            &captured,
            &BTreeMap::from([
                ("gw".to_string(), policy()),
                ("uplink".to_string(), policy()),
            ]),
            &tl,
            Duration::ZERO,
            &[],
            &Nonces::default(),
        );
        assert_eq!(cases[0].outcome, Outcome::Passed);
        assert!(
            matches!(&cases[1].outcome, Outcome::Error { message, .. } if message.contains("no capture of uplink"))
        );
        assert!(
            matches!(&cases[2].outcome, Outcome::Error { message, .. } if message.contains("wifi has no leak policy"))
        );
        // A captured wire nobody watches and nobody has a policy for is not judged.
        let Judged { leaks, cases, .. } = judge_wires(
            &[],
            &BTreeMap::from([(
                "other".to_string(),
                vec![Frame {
                    at: t(150),
                    data: vec![1, 2, 3],
                }],
            )]),
            &policies,
            &tl,
            Duration::ZERO,
            &[],
            &Nonces::default(),
        );
        assert!(leaks.is_empty() && cases.is_empty());
    }

    #[test]
    fn missing_evidence_is_named_and_present_evidence_passes() {
        let tl = timeline();
        let ep: std::net::SocketAddr = "203.0.113.10:51820".parse().unwrap();
        let wg = Frame {
            at: t(120),
            data: udp_frame([172, 21, 0, 2], [203, 0, 113, 10], 51820),
        };
        let ev = |step: &str, what: Sighting| Evidence {
            step: step.into(),
            since: None,
            wire: "gw".into(),
            what,
        };
        let captured = BTreeMap::from([("gw".to_string(), vec![wg])]);
        // Seen during "probe A".
        assert!(
            missing_evidence(&[ev("probe A", Sighting::WireGuard(ep))], &captured, &tl).is_empty()
        );
        // Not during "probe B": named.
        let m = missing_evidence(&[ev("probe B", Sighting::WireGuard(ep))], &captured, &tl);
        assert_eq!(m.len(), 1);
        assert!(
            m[0].contains("\"probe B\" passed, but the capture on gw shows nothing of WireGuard"),
            "{m:?}"
        );
        // ... unless the window starts earlier.
        let from_a = Evidence {
            since: Some("probe A".into()),
            ..ev("probe B", Sighting::WireGuard(ep))
        };
        assert!(missing_evidence(&[from_a], &captured, &tl).is_empty());
        // A blind capture (nothing at all) misses everything.
        let blind = BTreeMap::new();
        let between = ev(
            "probe A",
            Sighting::Between(
                "192.168.10.10".parse().unwrap(),
                "172.21.0.2".parse().unwrap(),
            ),
        );
        assert_eq!(missing_evidence(&[between], &blind, &tl).len(), 1);
        // Why it is missing decides the case: traffic that went around the
        // tunnel (a leak on that wire during that step) fails the gateway;
        // a capture that saw nothing is the harness's error.
        let missing = [ev("probe B", Sighting::WireGuard(ep))];
        let none = std::collections::BTreeSet::new();
        assert!(matches!(
            judge_evidence(&missing, &captured, &tl, &none),
            Outcome::Error { .. }
        ));
        let leaked = std::collections::BTreeSet::from([("gw".to_string(), "probe B".to_string())]);
        match judge_evidence(&missing, &captured, &tl, &leaked) {
            Outcome::Failed { message, .. } => {
                assert!(message.contains("went around the tunnel"), "{message}")
            }
            o => panic!("{o:?}"),
        }
        let elsewhere =
            std::collections::BTreeSet::from([("uplink".to_string(), "probe B".to_string())]);
        assert!(matches!(
            judge_evidence(&missing, &captured, &tl, &elsewhere),
            Outcome::Error { .. }
        ));
        let present = [ev("probe A", Sighting::WireGuard(ep))];
        assert_eq!(
            judge_evidence(&present, &captured, &tl, &none),
            Outcome::Passed
        );
    }

    #[test]
    fn a_skipped_scenario_has_not_passed() {
        let r = ScenarioResult {
            name: "x".into(),
            target: "builtin".into(),
            description: String::new(),
            source: String::new(),
            started: t(0),
            duration: Duration::ZERO,
            cases: vec![CaseResult {
                name: "c".into(),
                outcome: Outcome::Skipped {
                    reason: "no control server".into(),
                },
                duration: Duration::ZERO,
                log: vec![],
            }],
            leaks: vec![],
            frames: BTreeMap::new(),
            pcaps: vec![],
            gateway_log: PathBuf::new(),
            handshake_after: None,
            readiness: vec![],
            traffic: Default::default(),
        };
        assert!(!r.passed() && r.skipped() && !r.errored());
        assert!(r.failures().is_empty());
    }

    #[test]
    fn a_skip_fails_only_when_asked_and_not_accepted() {
        let case = |name: &str, outcome: Outcome| CaseResult {
            name: name.into(),
            outcome,
            duration: Duration::ZERO,
            log: vec![],
        };
        let skip = || Outcome::Skipped {
            reason: "kdig is not installed".into(),
        };
        let r = |name: &str, cases| ScenarioResult {
            name: name.into(),
            target: "builtin".into(),
            description: String::new(),
            source: String::new(),
            started: t(0),
            duration: Duration::ZERO,
            cases,
            leaks: vec![],
            frames: BTreeMap::new(),
            pcaps: vec![],
            gateway_log: PathBuf::new(),
            handshake_after: None,
            readiness: vec![],
            traffic: Default::default(),
        };
        let results = [
            r(
                "dns",
                vec![case("kdig answers", skip()), case("ok", Outcome::Passed)],
            ),
            r("browser", vec![case("no-leak during browsing", skip())]),
        ];
        assert_eq!(unaccepted_skips(&results, &[]).len(), 2);
        let names = |allowed: &[&str]| -> Vec<String> {
            let allowed: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
            unaccepted_skips(&results, &allowed)
                .into_iter()
                .map(|(s, c, _)| format!("{s}: {c}"))
                .collect()
        };
        assert_eq!(names(&["dns"]), ["browser: no-leak during browsing"]);
        assert_eq!(
            names(&["dns: kdig answers"]),
            ["browser: no-leak during browsing"]
        );
        assert_eq!(names(&["no-leak"]), ["dns: kdig answers"]);
        assert_eq!(names(&["kdig answers", "browser"]), Vec::<String>::new());
        // A passed check is never a skip, whatever is allowed.
        assert!(names(&["ok"]).len() == 2);
    }
}
