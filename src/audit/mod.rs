//! `leakhound audit`: checks a gateway that is already running, from inside
//! its network namespace, against a profile (`crate::model::audit`). It
//! attaches to the namespace the user names (`--netns NAME|self`, `--pid`,
//! `--container`), never pins, reaps or removes it, and changes nothing in
//! it unless `--disruptive` asks for the one check that does (the tunnel
//! blocked for a moment, then let through again); with `--prove` as well,
//! `--disruptive` also writes the proof's witnesses, as raw frames to
//! documentation addresses only, making nothing in the gateway's kernel
//! for them ([`crate::prove::live_refusal`]). Meanwhile it captures on
//! the outside of the gateway's interface (the host-side peer of its veth
//! where leakhound can see it, else the interface itself) and judges every
//! frame with the lab's classifier. The result is an ordinary
//! [`ScenarioResult`] named `audit`, so the reporters (JUnit, JSON,
//! Prometheus, the terminal) serve audits and runs alike.
//!
//! Safe on a live system: the one disruptive check cuts the tunnel with a
//! set element the kernel expires by itself unless the audit renews it
//! ([`leakhound_gateway::firewall::cut`]), so even a SIGKILLed audit leaves
//! nothing cut for longer than [`CUT_TIMEOUT`]; every audit first removes a
//! cut it finds; an interrupt ([`AuditRequest::interrupt`]) ends the check
//! in flight (lifting its cut) and the audit reports what it has. The
//! capture keeps within [`Caps::AUDIT`], and a check during which a cap was
//! hit says so instead of passing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ipnet::IpNet;

use leakhound_gateway::firewall::cut;
use leakhound_gateway::firewall::nfnl::{CUT_TABLE, Cut};
use tokio_util::sync::CancellationToken;

use crate::capture::{Bounded, BoundedCapture, Caps};
use crate::lab::netns::{Netns, NetnsError};
use crate::model::audit::{
    AuditProfile, Bypass, ControlAuth, DnsCheck, ExitCheck, ForwardedPort, HttpUrl, LanExpect,
    LanProbe,
};
use crate::model::classify::LeakPolicy;
use crate::model::verdict::{
    CaseResult, Frame, LeakRecord, Outcome, ScenarioResult, Timeline, judge_wires,
};
use crate::netlink::Nl;
use crate::probe;

/// How long a probe waits for an answer (or for nothing).
const PROBE_WAIT: Duration = Duration::from_secs(3);

/// The wire's name in reports.
pub const WIRE: &str = "outside";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Attach(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netlink(#[from] crate::netlink::NetlinkError),
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    #[error("{what}")]
    Cut {
        what: String,
        #[source]
        source: leakhound_gateway::firewall::FirewallError,
    },
}

/// Which namespace to audit, as the user named it.
#[derive(Debug, Clone, PartialEq)]
pub enum Attach {
    /// A name under /run/netns (as `ip netns add` makes).
    Netns(String),
    /// The namespace leakhound runs in (a sidecar sharing the gateway's).
    SelfNs,
    /// A process's namespace.
    Pid(i32),
    /// A running container's (through its main process).
    Container(String),
}

impl std::fmt::Display for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attach::Netns(n) => write!(f, "netns {n}"),
            Attach::SelfNs => f.write_str("this process's namespace"),
            Attach::Pid(p) => write!(f, "pid {p}"),
            Attach::Container(c) => write!(f, "container {c}"),
        }
    }
}

/// Opens the namespace to audit. Nothing is pinned; a name that does not
/// exist, a process that does not, a container that is not running, or the
/// host's own namespace are refused with the reason.
pub fn attach(a: &Attach) -> Result<Netns, AuditError> {
    let label = a.to_string();
    let path = match a {
        Attach::Netns(n) => {
            if n.is_empty() || n.contains('/') || n == "." || n == ".." {
                return Err(AuditError::Attach(format!(
                    "--netns {n:?}: not a namespace name"
                )));
            }
            let p = Path::new("/run/netns").join(n);
            if !p.exists() {
                return Err(AuditError::Attach(format!(
                    "--netns {n}: no such namespace (/run/netns/{n} does not exist; `ip netns list` shows the named ones)"
                )));
            }
            p
        }
        Attach::SelfNs => PathBuf::from("/proc/thread-self/ns/net"),
        Attach::Pid(pid) => {
            let p = PathBuf::from(format!("/proc/{pid}/ns/net"));
            if !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(AuditError::Attach(format!("--pid {pid}: no such process")));
            }
            p
        }
        Attach::Container(id) => {
            let out = std::process::Command::new("docker")
                .args(["inspect", "--format", "{{.State.Pid}} {{.Id}}", id])
                .output()
                .map_err(|source| AuditError::Io {
                    what: "running `docker inspect`".into(),
                    source,
                })?;
            if !out.status.success() {
                return Err(AuditError::Attach(format!(
                    "--container {id}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let said = String::from_utf8_lossy(&out.stdout).to_string();
            let mut words = said.split_whitespace();
            let pid: i32 = words.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let full = words.next().unwrap_or("");
            if pid <= 0 {
                return Err(AuditError::Attach(format!(
                    "--container {id}: it is not running"
                )));
            }
            // The engine's PID names that container's process here only if
            // leakhound shares the engine's PID namespace.
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            if !crate::target::container::cgroup_names_container(&cgroup, full) {
                return Err(AuditError::Attach(format!(
                    "--container {id}: its process ({pid} to the engine) is not that container's here (leakhound runs in another PID namespace than the Docker engine, or the engine is remote); run the audit on the engine's host, or as a sidecar with --netns self"
                )));
            }
            PathBuf::from(format!("/proc/{pid}/ns/net"))
        }
    };
    Netns::attach(&label, &path).map_err(|e| match e {
        NetnsError::HostNamespace { .. } => AuditError::Attach(format!(
            "{label}: that is the host's own network namespace, not a gateway's; name the gateway's (--netns, --pid, --container)"
        )),
        e => e.into(),
    })
}

/// What the audit was asked to do.
pub struct AuditRequest {
    pub ns: Netns,
    pub profile: AuditProfile,
    /// The profile's file, as given (the JUnit `file`).
    pub profile_file: String,
    pub disruptive: bool,
    /// Also prove the namespace's ruleset (reads only).
    pub prove: bool,
    /// Where the pcap goes.
    pub out: PathBuf,
    /// Cancelled on SIGINT or SIGTERM: the check in flight ends at once (an
    /// error saying so, its cut lifted), later ones are skipped, and the
    /// result has what was seen so far.
    pub interrupt: CancellationToken,
}

/// Where the capture listens.
struct Tap {
    ns: Netns,
    ifname: String,
    /// Said in the report.
    description: String,
}

/// The host-side peer of `ifname` in `target`, when it lives in a namespace
/// under /run/netns (a lab's, or one `ip netns add` made); else `ifname`
/// itself, inside. A veth's two ends carry the same frames; the outside one
/// is preferred as the view that does not depend on the audited namespace.
async fn find_tap(target: &Netns, ifname: &str) -> Result<Tap, AuditError> {
    let nl = Nl::in_netns(target)?;
    let inside = |why: &str| Tap {
        ns: target.try_clone().expect("namespace handle"),
        ifname: ifname.to_string(),
        description: format!("{ifname} inside the namespace ({why})"),
    };
    let Some((peer_index, Some(nsid))) = nl.link_peer(ifname).await? else {
        return Ok(inside("it has no peer in another namespace"));
    };
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Ok(inside("no named namespaces to look for its peer in"));
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(cand) = Netns::attach(&name, &e.path()) else {
            continue;
        };
        if nl.nsid_of(cand.fd()).await.ok().flatten() != Some(nsid) {
            continue;
        }
        let peer = Nl::in_netns(&cand)?.name_of(peer_index).await?;
        return Ok(Tap {
            description: format!("{peer} in namespace {name}, the outside end of {ifname}"),
            ns: cand,
            ifname: peer,
        });
    }
    Ok(inside(
        "its peer is in a namespace without a name, e.g. the host's",
    ))
}

/// Runs the audit: every check the profile configures, then the capture's
/// verdict. Never fails for what the gateway does (that is a finding);
/// fails only when it cannot look (the capture cannot start).
pub async fn run(req: AuditRequest) -> Result<ScenarioResult, AuditError> {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let p = &req.profile;
    let ns = &req.ns;
    let mut timeline = Timeline::new();
    timeline.mark(SystemTime::now(), "setup");
    let mut cases = Vec::new();
    let mut notes = Vec::new();

    // A cut left by an audit that was killed goes first (the kernel would
    // lift it within CUT_TIMEOUT anyway).
    lift_stale_cut(ns, req.disruptive, &mut notes);

    // The capture first, so that nothing the checks cause is missed.
    let tap = find_tap(ns, &p.capture.interface).await?;
    notes.push(format!("capturing on {}", tap.description));
    let local: Vec<IpNet> = Nl::in_netns(ns)?.addrs(&p.capture.interface).await?;
    let capture = BoundedCapture::start(&tap.ns, &tap.ifname, Caps::AUDIT)?;

    let mut a = Auditor {
        ns,
        resolver: p.resolver,
        timeline: &mut timeline,
        cases: &mut cases,
        capture: &capture,
        interrupt: &req.interrupt,
    };
    let lan_rows = a.all_checks(p, req.disruptive).await;
    let witnesses = if req.prove {
        a.prove(p, req.disruptive).await
    } else {
        Vec::new()
    };
    timeline.mark(SystemTime::now(), "teardown");
    capture.part("teardown");

    let mut bounded = capture.stop();
    judge_lan_rows(&mut cases, lan_rows, &bounded.frames);
    if !witnesses.is_empty() {
        cases.push(judge_witnesses(p, &local, &witnesses, &bounded.frames));
    }
    let pcap = req.out.join(format!("{WIRE}.pcap"));
    crate::capture::write_private_pcap(&pcap, &bounded)?;
    let mut frame_counts = BTreeMap::new();
    frame_counts.insert(WIRE.to_string(), bounded.frames.len());
    notes.push(capture_summary(&bounded));
    let (leaks, wire_cases) = judge_wire(p, &local, &mut bounded, &timeline, notes);
    cases.extend(wire_cases);
    judge_caps(&mut cases, &bounded);
    Ok(ScenarioResult {
        name: "audit".into(),
        target: p.name.clone(),
        description: format!(
            "The live gateway in {}, checked against {}",
            ns.name(),
            req.profile_file
        ),
        source: req.profile_file.clone(),
        started,
        duration: t0.elapsed(),
        cases,
        leaks,
        frames: frame_counts,
        pcaps: vec![pcap],
        gateway_log: PathBuf::new(),
        handshake_after: None,
        readiness: vec![],
        traffic: Default::default(),
    })
}

/// Removes a cut an earlier, killed audit left, saying so in `notes`.
fn lift_stale_cut(ns: &Netns, disruptive: bool, notes: &mut Vec<String>) {
    match lift_cut(ns) {
        Ok(true) => {
            tracing::warn!("removed a cut table {} left by an earlier audit", CUT_TABLE);
            notes.push(format!(
                "removed the table {} an interrupted audit had left",
                CUT_TABLE
            ));
        }
        Ok(false) => {}
        // Without NET_ADMIN (a read-only sidecar) no cut can be seen, nor
        // could this audit have made one.
        Err(e) if disruptive => {
            notes.push(format!("could not look for a stale cut: {}", chain(&e)))
        }
        Err(e) => tracing::debug!("could not look for a stale cut: {}", chain(&e)),
    }
}

/// A `[[lan]]` check's connection, judged once the wire is known (a
/// refusal may be the gateway's own).
struct LanRow {
    /// Its case in the result.
    case: usize,
    expect: LanExpect,
    target: SocketAddr,
    from: SystemTime,
    to: SystemTime,
    /// (connected, refused), when the check ran.
    fate: Option<(bool, bool)>,
}

/// Each LAN row's verdict from its connection and the frames toward its
/// target on the wire meanwhile.
fn judge_lan_rows(cases: &mut [CaseResult], rows: Vec<LanRow>, frames: &[Frame]) {
    for row in rows {
        let Some((connected, refused)) = row.fate else {
            continue;
        };
        let (i, t) = (row.case, row.target);
        let on_wire = crate::model::audit::frames_toward(frames, t.ip(), row.from, row.to);
        let what = cases[i].log.first().cloned().unwrap_or_default();
        cases[i].outcome =
            match crate::model::audit::judge_lan(row.expect, connected, refused, on_wire) {
                Ok(v) => {
                    cases[i].log = vec![format!(
                        "{v} ({what}; {on_wire} frame(s) to it on the wire)"
                    )];
                    Outcome::Passed
                }
                Err(v) => Outcome::fail(
                    format!("{t} {v} ({what}; {on_wire} frame(s) to it on the wire)"),
                    "",
                ),
            };
    }
}

/// What may leave on the profile's wire: the endpoint, the allowed
/// subnets and the interface's own.
fn leak_policy(p: &AuditProfile, local: &[IpNet], endpoint: SocketAddr) -> LeakPolicy {
    let mut allowed = p.capture.allowed.clone();
    allowed.extend(local.iter().map(|n| n.trunc()));
    LeakPolicy {
        local: local.iter().map(IpNet::addr).collect(),
        endpoint,
        allowed,
        // A live gateway's MTU is not in the profile: an unaligned data
        // message is WireGuard's only at 1,280 bytes of plaintext or more.
        tunnel_mtu: None,
    }
}

/// `--prove --disruptive`'s case: the witnesses written, looked for on the
/// wire by their markers. Seen leaving, the wire confirms the proof's
/// witness; not seen, it is a model-only witness. A failure either way.
fn judge_witnesses(
    p: &AuditProfile,
    local: &[IpNet],
    tried: &[crate::prove::Tried],
    frames: &[Frame],
) -> CaseResult {
    let wire = &p.capture.interface;
    let policy = p.capture.endpoint.map(|e| leak_policy(p, local, e));
    let seen = tried.iter().find_map(|(packet, marker, _)| {
        frames
            .iter()
            .find(|f| crate::model::verdict::contains(&f.data, marker))
            .map(|f| {
                let summary = policy.as_ref().map_or_else(
                    || format!("{} bytes", f.data.len()),
                    |policy| {
                        crate::model::classify::classify(policy, &f.data)
                            .summary()
                            .to_string()
                    },
                );
                (packet, format!("{wire}: {summary}"))
            })
    });
    let (message, why) = crate::prove::witness_verdict(
        tried,
        seen.as_ref().map(|(p, f)| (p.as_str(), f.as_str())),
        wire,
    );
    CaseResult {
        name: "prove-witness".into(),
        outcome: Outcome::fail(message, why.join("\n")),
        duration: Duration::ZERO,
        log: why,
    }
}

/// The wire's verdict (its leaks and the "no-leak" case, `notes` in its
/// log): judged with the lab's classifier when the profile names the
/// endpoint, else skipped.
fn judge_wire(
    p: &AuditProfile,
    local: &[IpNet],
    bounded: &mut Bounded,
    timeline: &Timeline,
    notes: Vec<String>,
) -> (Vec<LeakRecord>, Vec<CaseResult>) {
    let Some(endpoint) = p.capture.endpoint else {
        return (
            Vec::new(),
            vec![CaseResult {
                name: "no-leak".into(),
                outcome: Outcome::Skipped {
                    reason: "the profile has no [capture] endpoint: the wire cannot be judged"
                        .into(),
                },
                duration: Duration::ZERO,
                log: notes,
            }],
        );
    };
    let policy = leak_policy(p, local, endpoint);
    let mut captured = BTreeMap::new();
    captured.insert(WIRE.to_string(), std::mem::take(&mut bounded.frames));
    let mut policies = BTreeMap::new();
    policies.insert(WIRE.to_string(), policy);
    let crate::model::verdict::Judged {
        leaks,
        cases: mut wc,
        ..
    } = judge_wires(
        &[WIRE.to_string()],
        &captured,
        &policies,
        timeline,
        // The marks and the kernel's stamps are on the same clock,
        // and the checks follow each other without a pause.
        Duration::ZERO,
        &[],
        // The audit's probes' nonces (a matcher too large to build leaves
        // only the addresses to judge by).
        &crate::probe::nonces_since(0).unwrap_or_default(),
    );
    for c in &mut wc {
        c.name = "no-leak".into();
        c.log.insert(0, notes.join("; "));
    }
    (leaks, wc)
}

/// Why a check did not pass.
struct Finding(Outcome);

impl Finding {
    fn fail(message: impl Into<String>) -> Finding {
        Finding(Outcome::fail(message, ""))
    }
    fn error(message: impl Into<String>) -> Finding {
        Finding(Outcome::error(message))
    }
    fn skip(reason: impl Into<String>) -> Finding {
        Finding(Outcome::Skipped {
            reason: reason.into(),
        })
    }
}

/// Runs checks one after another, marking each on the timeline (so a
/// leaked frame is tied to the check that caused it).
struct Auditor<'a> {
    ns: &'a Netns,
    resolver: SocketAddr,
    timeline: &'a mut Timeline,
    cases: &'a mut Vec<CaseResult>,
    /// Told where each check begins, for its caps.
    capture: &'a BoundedCapture,
    interrupt: &'a CancellationToken,
}

impl Auditor<'_> {
    /// Runs one check, unless the audit was interrupted (then it is
    /// skipped); an interrupt while it runs ends it at once (whatever it
    /// holds, such as a cut, is dropped and so undone) as an error.
    async fn check(
        &mut self,
        name: &str,
        f: impl AsyncFnOnce(&Netns, SocketAddr) -> Result<String, Finding>,
    ) {
        if self.interrupt.is_cancelled() {
            self.skip(name, "the audit was interrupted before this check");
            return;
        }
        self.capture.part(name);
        self.timeline.mark(SystemTime::now(), name);
        let t = Instant::now();
        let r = tokio::select! {
            r = f(self.ns, self.resolver) => r,
            _ = self.interrupt.cancelled() => Err(Finding::error(
                "interrupted by a signal while this check ran (anything it had changed is undone)",
            )),
        };
        let (outcome, log) = match r {
            Ok(why) => (Outcome::Passed, vec![why]),
            Err(Finding(o)) => (o, vec![]),
        };
        tracing::info!(check = name, ?outcome, "audit check");
        self.cases.push(CaseResult {
            name: name.to_string(),
            outcome,
            duration: t.elapsed(),
            log,
        });
    }

    fn skip(&mut self, name: &str, reason: &str) {
        self.cases.push(CaseResult {
            name: name.to_string(),
            outcome: Outcome::Skipped {
                reason: reason.into(),
            },
            duration: Duration::ZERO,
            log: vec![],
        });
    }

    /// Every check the profile configures, in order; the LAN rows to judge
    /// once the wire is known.
    async fn all_checks(&mut self, p: &AuditProfile, disruptive: bool) -> Vec<LanRow> {
        if let Some(e) = &p.exit {
            self.exit_address(e).await;
        }
        if let Some(d) = &p.dns {
            self.dns_resolvers(d).await;
        }
        self.bypass(&p.bypass).await;
        let lan_rows = self.lan(&p.lan).await;
        if let Some(f) = &p.forwarded_port {
            self.forwarded_port(f).await;
        }
        if disruptive {
            match (p.capture.endpoint, &p.exit) {
                (Some(endpoint), Some(e)) => {
                    self.check("tunnel-down", async |ns, resolver| {
                        tunnel_down(ns, resolver, endpoint, &e.whoami_url).await
                    })
                    .await;
                }
                _ => {
                    self.skip(
                        "tunnel-down",
                        "needs [capture] endpoint (to block) and [exit] (to see traffic stop and return)",
                    );
                }
            }
        }
        lan_rows
    }

    /// `--prove`: the ruleset proven against [capture]'s policy, reading
    /// only; a witness is named, and written from the namespace only with
    /// `disruptive` (each path's, with a marker: the witnesses tried, for
    /// the wire to judge).
    async fn prove(&mut self, p: &AuditProfile, disruptive: bool) -> Vec<crate::prove::Tried> {
        let Some(endpoint) = p.capture.endpoint else {
            self.skip(
                "prove",
                "needs [capture] endpoint (the policy's one way out)",
            );
            return Vec::new();
        };
        let mut tried = Vec::new();
        let tried_out = &mut tried;
        let policy = leakhound_prove::Policy {
            endpoints: vec![(endpoint.ip(), endpoint.port())],
            allow: p.capture.allowed.clone(),
        };
        let underlay = p.capture.interface.clone();
        let interrupt = self.interrupt.clone();
        self.check("prove", async |ns, _| {
            let ns = ns
                .try_clone()
                .map_err(|e| Finding::error(format!("the namespace: {e}")))?;
            let t = Instant::now();
            let tag = format!("lhwitness{}", probe::nonce());
            let interrupt = interrupt.clone();
            let (answer, ms, tried) = tokio::task::spawn_blocking(move || {
                let state = crate::prove::read_live(&ns, &underlay)?;
                let answer = crate::prove::answer(&state, &policy);
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let tried = match answer {
                    leakhound_prove::Answer::Witness { .. } if disruptive => {
                        crate::prove::write_witnesses(
                            &ns,
                            &state,
                            &policy,
                            &underlay,
                            &tag,
                            crate::prove::Reach::Live,
                            &|| interrupt.is_cancelled(),
                        )
                    }
                    _ => Vec::new(),
                };
                Ok::<_, crate::prove::ProveError>((answer, ms, tried))
            })
            .await
            .map_err(|e| Finding::error(format!("the proof's thread: {e}")))?
            .map_err(|e| Finding::error(format!("the ruleset could not be read: {e}")))?;
            let sent = if tried.is_empty() {
                "not sent"
            } else {
                "written from the namespace, see prove-witness"
            };
            *tried_out = tried;
            match answer {
                leakhound_prove::Answer::Proof { assumptions } => Ok(format!(
                    "PROOF in {ms:.0} ms: no other packet leaves on {}; assuming {}",
                    p.capture.interface,
                    assumptions.join("; ")
                )),
                leakhound_prove::Answer::Witness { packet, .. } => Err(Finding::fail(format!(
                    "a packet outside the policy leaves on {} (found in {ms:.0} ms, {sent}): {packet}",
                    p.capture.interface
                ))),
                leakhound_prove::Answer::Cannot(c) => Err(Finding::fail(c.to_string())),
            }
        })
        .await;
        tried
    }

    /// `[exit]`: the address whoami sees.
    async fn exit_address(&mut self, e: &ExitCheck) {
        self.check("exit-address", async |ns, resolver| {
            let (_, body) = get(ns, resolver, &e.whoami_url, &[]).await?;
            let ip = crate::model::audit::whoami_address(&body)
                .map_err(|why| Finding::fail(format!("{}: {why}", e.whoami_url)))?;
            crate::model::audit::judge_exit(ip, e).map_err(|e| Finding::fail(e.to_string()))
        })
        .await;
    }

    /// `[dns]`: who asked the leak domain's server for a fresh name.
    async fn dns_resolvers(&mut self, d: &DnsCheck) {
        self.check("dns-resolvers", async |ns, resolver| {
            let nonce = probe::nonce();
            let name = format!("{nonce}.{}", d.leak_domain);
            let mut log = vec![format!("asking {resolver} for {name}")];
            match probe::dns_a(ns, resolver, &name, PROBE_WAIT).await {
                Ok(a) => log.push(format!("answered {a:?}")),
                Err(e) => log.push(format!("no answer: {e}")),
            }
            let (_, body) = get(ns, resolver, &d.results_url.fill("nonce", &nonce), &[]).await?;
            let askers = crate::model::audit::dns_results(&body)
                .map_err(|why| Finding::fail(format!("{}: {why}", d.results_url)))?;
            crate::model::audit::judge_resolvers(&askers, &d.expected_resolvers)
                .map(|ok| format!("{}; {ok}", log.join("; ")))
                .map_err(|why| Finding::fail(format!("{why} ({})", log.join("; "))))
        })
        .await;
    }

    /// `[bypass]`: connections that must not open, then plain DNS straight
    /// to a resolver.
    async fn bypass(&mut self, b: &Bypass) {
        let refusals = [
            ("ipv6", &b.ipv6, "an IPv6 connection"),
            ("dot", &b.dot, "a DNS-over-TLS connection"),
            ("doh", &b.doh, "a DNS-over-HTTPS connection by address"),
        ];
        for (kind, targets, what) in refusals {
            for &t in targets {
                self.check(&format!("bypass {kind} {t}"), async |ns, _| {
                    refused(ns, t, what).await
                })
                .await;
            }
        }
        for &t in &b.dns {
            self.check(&format!("bypass dns {t}"), async |ns, _| {
                let name = probe::probe_name(&probe::nonce());
                match probe::dns_a(ns, t, &name, PROBE_WAIT).await {
                    Ok(ans) => Err(Finding::fail(format!(
                        "{t} answered a query sent straight to it ({ans:?}): DNS can go around the gateway's resolver"
                    ))),
                    Err(e) => Ok(format!("no answer ({e})")),
                }
            })
            .await;
        }
    }

    /// `[[lan]]`: each connection's fate is kept, to be judged once the
    /// wire is known (a refusal may be the gateway's own).
    async fn lan(&mut self, probes: &[LanProbe]) -> Vec<LanRow> {
        let mut lan_rows = Vec::new();
        for l in probes {
            let t = l.target;
            let from = SystemTime::now();
            let mut fate = None;
            self.check(&format!("lan {t}"), async |ns, _| {
                let r = connect(ns, t).await;
                let what = match &r {
                    Ok(()) => "connected".to_string(),
                    Err(e) => e.to_string(),
                };
                fate = Some((
                    r.is_ok(),
                    matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused),
                ));
                Ok(what)
            })
            .await;
            lan_rows.push(LanRow {
                case: self.cases.len() - 1,
                expect: l.expect,
                target: t,
                from,
                to: SystemTime::now(),
                fate,
            });
        }
        lan_rows
    }

    /// `[forwarded-port]`: the control server's port is open at the exit,
    /// and (with a qBittorrent URL) the client listens on it.
    async fn forwarded_port(&mut self, f: &ForwardedPort) {
        let mut port = None;
        self.check("forwarded-port", async |ns, resolver| {
            let headers = control_headers(&f.auth).map_err(|e| Finding::error(chain(&e)))?;
            let url = HttpUrl {
                path: "/v1/portforward".into(),
                ..f.control_url.clone()
            };
            let (status, body) = get(ns, resolver, &url, &headers).await?;
            if status != 200 {
                return Err(Finding::fail(format!("{url} answered {status}")));
            }
            let n = crate::model::audit::control_port(&body)
                .map_err(|why| Finding::fail(format!("{url}: {why}")))?;
            if n == 0 {
                return Err(Finding::fail(format!(
                    "{url}: the gateway has no forwarded port (0)"
                )));
            }
            port = Some(n);
            let probe_url = f.prober_url.fill("port", &n.to_string());
            let (_, body) = get(ns, resolver, &probe_url, &[]).await?;
            match crate::model::audit::prober_open(&body) {
                Ok(true) => Ok(format!("port {n} is open at the exit ({probe_url})")),
                Ok(false) => Err(Finding::fail(format!(
                    "port {n} is the forwarded port, and the prober found it closed at the exit"
                ))),
                Err(why) => Err(Finding::fail(format!("{probe_url}: {why}"))),
            }
        })
        .await;
        if let Some(q) = &f.qbittorrent_url {
            self.check("forwarded-port-client", async |ns, resolver| {
                let Some(n) = port else {
                    return Err(Finding::skip("the forwarded port is not known"));
                };
                let url = HttpUrl {
                    path: "/api/v2/app/preferences".into(),
                    ..q.clone()
                };
                let (status, body) = get(ns, resolver, &url, &[]).await?;
                if status != 200 {
                    return Err(Finding::fail(format!(
                        "{url} answered {status} (the audit asks it without logging in: allow it from localhost)"
                    )));
                }
                let listen = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("listen_port").and_then(|p| p.as_u64()));
                match listen {
                    Some(l) if l == u64::from(n) => Ok(format!("qBittorrent listens on {n}")),
                    Some(l) => Err(Finding::fail(format!(
                        "qBittorrent listens on {l}, the forwarded port is {n}"
                    ))),
                    None => Err(Finding::fail(format!("{url}: no listen_port"))),
                }
            })
            .await;
        }
    }
}

/// A TCP connection from inside `ns` (3 s).
async fn connect(ns: &Netns, t: SocketAddr) -> std::io::Result<()> {
    let socket = probe::tcp_socket_for(ns, t).map_err(std::io::Error::other)?;
    match tokio::time::timeout(PROBE_WAIT, socket.connect(t)).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {PROBE_WAIT:?}"),
        )),
    }
}

/// A connection that must not open (a refusal from the gateway's own
/// firewall, an unreachable, or silence all pass).
async fn refused(ns: &Netns, t: SocketAddr, what: &str) -> Result<String, Finding> {
    match connect(ns, t).await {
        Ok(()) => Err(Finding::fail(format!(
            "{what} to {t} opened from the gateway's namespace"
        ))),
        Err(e) => Ok(format!("{what} to {t} failed: {e}")),
    }
}

/// GET `url` from inside `ns`, its host name (if any) asked of `resolver`.
async fn get(
    ns: &Netns,
    resolver: SocketAddr,
    url: &HttpUrl,
    headers: &[(String, String)],
) -> Result<(u16, String), Finding> {
    let ip = match url.ip() {
        Some(ip) => ip,
        None => *probe::dns_a(ns, resolver, &format!("{}.", url.host), PROBE_WAIT)
            .await
            .map_err(|e| Finding::fail(format!("{}: resolving {}: {e}", url, url.host)))?
            .first()
            .ok_or_else(|| Finding::fail(format!("{}: {} has no address", url, url.host)))?,
    };
    let target = SocketAddr::new(ip, url.port);
    let socket = probe::tcp_socket_for(ns, target).map_err(|e| Finding::error(e.to_string()))?;
    let work = async {
        let stream = socket.connect(target).await?;
        crate::httpc::Request::get(url)
            .headers(headers)
            .agent("leakhound-audit")
            .send_on(stream)
            .await
            .map(|r| (r.status, r.body))
            .map_err(std::io::Error::other)
    };
    match tokio::time::timeout(Duration::from_secs(10), work).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(Finding::fail(format!("{url}: {e}"))),
        Err(_) => Err(Finding::fail(format!("{url}: no answer within 10 s"))),
    }
}

/// Why the control server's credentials could not be read.
#[derive(Debug, thiserror::Error)]
enum CredentialError {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the variable {0} is not set")]
    Unset(String),
}

/// The control server's credentials as headers, read now (never logged).
fn control_headers(auth: &ControlAuth) -> Result<Vec<(String, String)>, CredentialError> {
    use base64::Engine;
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .map_err(|source| CredentialError::Read {
                path: path.to_string(),
                source,
            })
    };
    // Every credential is registered as a secret before it can reach any
    // report, log or terminal line (the API key, the password and the
    // Basic token that carries it).
    let secret = |v: String| {
        crate::model::scrub::register(&v);
        v
    };
    Ok(match auth {
        ControlAuth::None => vec![],
        ControlAuth::ApiKeyFile(p) => vec![("X-API-Key".into(), secret(read(p)?))],
        ControlAuth::ApiKeyEnv(v) => vec![(
            "X-API-Key".into(),
            secret(std::env::var(v).map_err(|_| CredentialError::Unset(v.clone()))?),
        )],
        ControlAuth::Basic {
            username,
            password_file,
        } => {
            let pw = secret(read(password_file)?);
            let token = secret(
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{pw}")),
            );
            vec![("Authorization".into(), format!("Basic {token}"))]
        }
    })
}

/// How long the kernel keeps the tunnel cut after the audit last renewed
/// the cut: the longest a killed audit can leave it cut.
pub const CUT_TIMEOUT: Duration = Duration::from_secs(12);
/// How often the audit renews its cut while the check runs.
const CUT_RENEW: Duration = Duration::from_secs(3);

/// Removes the audit's cut table from `ns` if it is there (one left by a
/// killed audit, or this audit's on an interrupt); returns whether it was.
pub fn lift_cut(ns: &Netns) -> Result<bool, AuditError> {
    ns.run(cut::lift)?.map_err(|source| AuditError::Cut {
        what: format!("removing the table {CUT_TABLE}"),
        source,
    })
}

/// An error with its sources, for a message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(&format!(": {c}"));
        src = c.source();
    }
    s
}

/// Why the audit's tunnel cut could not be made or removed.
#[derive(Debug, thiserror::Error)]
enum CutError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cutting the tunnel")]
    Arm(#[source] leakhound_gateway::firewall::FirewallError),
    #[error(transparent)]
    Lift(leakhound_gateway::firewall::FirewallError),
    #[error("the cut's renewal thread panicked")]
    Panicked,
}

/// The tunnel cut while this lives: armed in the kernel with
/// [`CUT_TIMEOUT`], renewed every [`CUT_RENEW`] by a thread in the
/// namespace, and lifted when dropped (or by the kernel, if the process
/// dies).
struct CutGuard {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<
        std::thread::JoinHandle<
            Result<Result<(), leakhound_gateway::firewall::FirewallError>, NetnsError>,
        >,
    >,
    /// The first renewal that failed, if one did.
    lapsed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl CutGuard {
    /// Cuts the tunnel to `endpoint`; returns the guard and how long the
    /// kernel will keep the cut unless renewed, as read back.
    fn arm(ns: &Netns, endpoint: SocketAddr) -> Result<(CutGuard, Duration), CutError> {
        let c = Cut {
            endpoint,
            timeout: CUT_TIMEOUT,
        };
        let left = ns.run(|| cut::arm(&c))?.map_err(|e| {
            // Whatever part of it took: not left for the kernel to lift.
            let _ = ns.run(cut::lift);
            CutError::Arm(e)
        })?;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let lapsed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let l = lapsed.clone();
        let thread = ns.spawn(move || {
            let mut renewing = true;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(CUT_RENEW) {
                if renewing && let Err(e) = cut::renew(&c) {
                    tracing::warn!("renewing the audit's cut: {}", chain(&e));
                    *l.lock().expect("lapsed lock") = Some(chain(&e));
                    renewing = false;
                }
            }
            cut::lift().map(|_| ())
        })?;
        Ok((
            CutGuard {
                stop: Some(tx),
                thread: Some(thread),
                lapsed,
            },
            left,
        ))
    }

    /// Lifts the cut now; an error says why it could not be (the kernel
    /// still lifts it within [`CUT_TIMEOUT`]).
    fn lift(mut self) -> Result<(), CutError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), CutError> {
        drop(self.stop.take());
        match self.thread.take().map(|t| t.join()) {
            None => Ok(()),
            Some(Ok(Ok(r))) => r.map_err(CutError::Lift),
            Some(Ok(Err(e))) => Err(CutError::Netns(e)),
            Some(Err(_)) => Err(CutError::Panicked),
        }
    }

    fn lapsed(&self) -> Option<String> {
        self.lapsed.lock().expect("lapsed lock").clone()
    }
}

impl Drop for CutGuard {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            tracing::warn!(
                "lifting the audit's cut: {} (the kernel lifts it within {CUT_TIMEOUT:?})",
                chain(&e)
            );
        }
    }
}

/// The one disruptive check: the tunnel's packets to `endpoint` are
/// dropped in the namespace (a table of the audit's own, ahead of the
/// gateway's, whose cut the kernel lifts by itself unless renewed);
/// traffic must stop (whoami unanswered, nothing leaking, which the
/// capture judges), and come back through the tunnel once the cut is
/// lifted.
async fn tunnel_down(
    ns: &Netns,
    resolver: SocketAddr,
    endpoint: SocketAddr,
    whoami: &HttpUrl,
) -> Result<String, Finding> {
    let (guard, left) = CutGuard::arm(ns, endpoint).map_err(|e| Finding::error(chain(&e)))?;
    let armed = format!(
        "tunnel to {endpoint} cut (the kernel lifts the cut {:.1} s after the audit's last renewal)",
        left.as_secs_f64()
    );
    // The tunnel is cut now; give established flows a fresh start.
    let blocked = get(ns, resolver, whoami, &[]).await;
    let lapsed = guard.lapsed();
    let undo = guard.lift();
    let during = match blocked {
        Ok((_, body)) => {
            return Err(Finding::fail(format!(
                "with the tunnel's packets dropped, {whoami} still answered: {}",
                body.trim()
            )));
        }
        Err(Finding(o)) => outcome_message(&o),
    };
    if let Err(e) = undo {
        return Err(Finding::error(format!(
            "could not remove the audit's table {CUT_TABLE}: {} (the kernel lifts the cut within {CUT_TIMEOUT:?})",
            chain(&e)
        )));
    }
    let mut why = format!("{armed}; blocked: {during}");
    if let Some(e) = lapsed {
        why.push_str(&format!("; a renewal of the cut failed ({e})"));
    }
    // Back: within 60 s, whoami answers again.
    let t = Instant::now();
    loop {
        match get(ns, resolver, whoami, &[]).await {
            Ok((_, body)) => {
                why.push_str(&format!(
                    "; back through the tunnel after {:.1} s ({})",
                    t.elapsed().as_secs_f64(),
                    body.trim()
                ));
                return Ok(why);
            }
            Err(_) if t.elapsed() < Duration::from_secs(60) => {}
            Err(Finding(o)) => {
                return Err(Finding::fail(format!(
                    "traffic did not come back within 60 s of the tunnel's return: {}",
                    outcome_message(&o)
                )));
            }
        }
    }
}

/// What the capture kept, for the no-leak check's log.
fn capture_summary(b: &Bounded) -> String {
    let seen: u64 = b.parts.iter().map(|p| p.seen).sum();
    let mut s = format!(
        "captured {seen} frame(s), kept {} (the first {} bytes of each)",
        b.frames.len(),
        b.caps.snaplen
    );
    if b.truncated() > 0 {
        s.push_str(&format!("; {} cut to that length", b.truncated()));
    }
    if b.dropped() > 0 {
        s.push_str(&format!("; {} not kept (a cap was hit)", b.dropped()));
    }
    s
}

/// A check during which the capture hit a cap did not have all it did
/// judged: a pass becomes an error that says so (a failure keeps its
/// message and gains the note), and so does the wire's verdict when any
/// frame was not kept.
fn judge_caps(cases: &mut [CaseResult], b: &Bounded) {
    let caps = b.caps;
    let limits = format!(
        "caps: {} frames or {} MiB per check, {} frames or {} MiB in all",
        caps.part_frames,
        caps.part_bytes >> 20,
        caps.total_frames,
        caps.total_bytes >> 20
    );
    let mut hit = Vec::new();
    for p in b.parts.iter().filter(|p| p.dropped() > 0) {
        hit.push(format!(
            "{} ({} of {} frames not kept)",
            p.name,
            p.dropped(),
            p.seen
        ));
        let Some(c) = cases.iter_mut().find(|c| c.name == p.name) else {
            continue;
        };
        let why = format!(
            "the capture hit its cap during this check: kept {} of {} frame(s) seen ({} of {} bytes on the wire; {limits}), so not everything it caused was judged",
            p.kept, p.seen, p.kept_bytes, p.seen_bytes
        );
        cap_outcome(c, why);
    }
    if hit.is_empty() {
        return;
    }
    let why = format!(
        "the capture did not keep every frame, so the wire was not fully judged: {} ({limits})",
        hit.join(", ")
    );
    for c in cases.iter_mut().filter(|c| c.name == "no-leak") {
        cap_outcome(c, why.clone());
    }
}

/// A pass becomes an error saying `why`; any other outcome's message says
/// it too.
fn cap_outcome(c: &mut CaseResult, why: String) {
    match &mut c.outcome {
        Outcome::Passed => {
            c.log.insert(0, why.clone());
            c.outcome = Outcome::error(why);
        }
        Outcome::Failed { message, .. }
        | Outcome::Error { message, .. }
        | Outcome::Waived { message, .. } => {
            message.push_str(&format!("; {why}"));
            c.log.push(why);
        }
        Outcome::Skipped { .. } => c.log.push(why),
    }
}

/// What an outcome says, for a message.
fn outcome_message(o: &Outcome) -> String {
    match o {
        Outcome::Passed => "passed".into(),
        Outcome::Failed { message, .. }
        | Outcome::Error { message, .. }
        | Outcome::Waived { message, .. } => message.clone(),
        Outcome::Skipped { reason } => reason.clone(),
    }
}

/// The verdict for schedulers: a failed or errored check fails the audit;
/// a skipped one only with `fail_on_skip`, and not when `allow_skip` names
/// it (the rule `run` follows, [`crate::model::verdict::unaccepted_skips`]).
/// Returns the checks that fail it, with why.
pub fn failing(
    result: &ScenarioResult,
    fail_on_skip: bool,
    allow_skip: &[String],
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = result.failures();
    out.extend(result.cases.iter().filter_map(|c| match &c.outcome {
        Outcome::Waived { message, .. } => Some((c.name.clone(), message.clone())),
        _ => None,
    }));
    if fail_on_skip {
        for (_, check, reason) in
            crate::model::verdict::unaccepted_skips(std::slice::from_ref(result), allow_skip)
        {
            let kind = check.split(' ').next().unwrap_or(&check).to_string();
            out.push((
                check,
                format!("skipped: {reason} (--allow-skip {kind} accepts it)"),
            ));
        }
    }
    // In the order of the checks.
    let order = |name: &str| result.cases.iter().position(|c| c.name == name);
    out.sort_by_key(|(n, _)| order(n));
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn control_credentials_are_secrets_before_they_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "canary-audit-password-81\n").unwrap();
        let h = control_headers(&ControlAuth::Basic {
            username: "ops".into(),
            password_file: pw.display().to_string(),
        })
        .unwrap();
        let line = format!("password canary-audit-password-81, header {}", h[0].1);
        let shown = crate::model::scrub::redact(&line);
        assert!(!shown.contains("canary-audit-password-81"), "{shown}");
        let token = h[0].1.trim_start_matches("Basic ");
        assert!(!shown.contains(token), "{shown}");
    }

    use super::*;
    use std::time::UNIX_EPOCH;

    fn case(name: &str, outcome: Outcome) -> CaseResult {
        CaseResult {
            name: name.into(),
            outcome,
            duration: Duration::ZERO,
            log: vec![],
        }
    }

    const SMALL: Caps = Caps {
        snaplen: 64,
        part_frames: 2,
        part_bytes: 1 << 20,
        total_frames: 100,
        total_bytes: 1 << 20,
    };

    #[test]
    fn a_check_during_which_a_cap_was_hit_does_not_pass_and_neither_does_the_wire() {
        let mut b = Bounded::new(SMALL);
        b.part("exit-address");
        for _ in 0..5 {
            b.offer(&[0; 100], UNIX_EPOCH);
        }
        b.part("dns-resolvers");
        for _ in 0..3 {
            b.offer(&[0; 100], UNIX_EPOCH);
        }
        b.part("lan 172.20.0.10:80");
        b.offer(&[0; 100], UNIX_EPOCH);
        let mut cases = vec![
            case("exit-address", Outcome::Passed),
            case("dns-resolvers", Outcome::fail("no answer", "")),
            case("lan 172.20.0.10:80", Outcome::Passed),
            case("no-leak", Outcome::Passed),
        ];
        judge_caps(&mut cases, &b);
        let Outcome::Error { message, .. } = &cases[0].outcome else {
            panic!("{:?}", cases[0].outcome);
        };
        assert!(
            message.contains("kept 2 of 5 frame(s) seen (128 of 500 bytes on the wire"),
            "{message}"
        );
        // A failure stays one, and says it too.
        let Outcome::Failed { message, .. } = &cases[1].outcome else {
            panic!("{:?}", cases[1].outcome);
        };
        assert!(
            message.starts_with("no answer; the capture hit its cap"),
            "{message}"
        );
        // Within its caps: untouched.
        assert_eq!(cases[2].outcome, Outcome::Passed);
        let Outcome::Error { message, .. } = &cases[3].outcome else {
            panic!("{:?}", cases[3].outcome);
        };
        assert!(
            message.contains(
                "exit-address (3 of 5 frames not kept), dns-resolvers (1 of 3 frames not kept)"
            ),
            "{message}"
        );
        assert!(capture_summary(&b).contains("4 not kept (a cap was hit)"));
    }

    #[test]
    fn a_capture_within_its_caps_changes_no_verdict() {
        let mut b = Bounded::new(SMALL);
        b.part("exit-address");
        b.offer(&[0; 100], UNIX_EPOCH);
        let mut cases = vec![
            case("exit-address", Outcome::Passed),
            case("no-leak", Outcome::Passed),
        ];
        judge_caps(&mut cases, &b);
        assert!(cases.iter().all(|c| c.outcome == Outcome::Passed));
        assert_eq!(
            capture_summary(&b),
            "captured 1 frame(s), kept 1 (the first 64 bytes of each); 1 cut to that length"
        );
    }
}
