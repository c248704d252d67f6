//! The probes: HTTP, DNS, UDP, encrypted DNS and ping from a lab host, each
//! with its nonce and its far-end check in the lab services' log (and, for
//! DNS, the same question through an independent client); `unheard`, the
//! far end's silence. Probes need no run state, so those that wait for no
//! answer may run at once.

use std::net::SocketAddr;
use std::time::Duration;

use super::report::{StepError, StepLog, StepReport, StepResult, lab_err};
use crate::model::scenario::{Action, Check, Expect};
use crate::model::verdict::Outcome;
use crate::probe;
use crate::scenario::external;
use crate::scenario::runner::{PROBE_TIMEOUT, RunState, Runner, fail};

/// Which independent client asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExternalKind {
    Dns,
    Dot,
    Doh,
}

/// What an independent client found: its lines and problems (the far
/// end's included), or, when it is not installed, why (also its one line).
pub(crate) struct External {
    pub log: StepLog,
    pub missing: Option<String>,
}

/// One step's report from our own probe's (judged already) and an
/// independent client's. The client's lines join the log; its problems
/// join the failure's message (not the log).
pub(crate) fn merge(own: StepReport, external: External) -> StepReport {
    let StepReport {
        outcome: own,
        mut log,
    } = own;
    let (lines, external_problems) = external.log.into_parts();
    log.extend(lines);
    let outcome = match external.missing {
        // No independent client: a failure of our own client stands; a pass
        // would rest on leakhound's own client alone, so it is no verdict.
        Some(missing) => match own {
            Outcome::Passed => Outcome::Skipped { reason: missing },
            other => other,
        },
        None if external_problems.is_empty() => own,
        None => {
            let mut problems = match own {
                Outcome::Passed => Vec::new(),
                Outcome::Failed { message, .. } => vec![message],
                other @ (Outcome::Error { .. }
                | Outcome::Skipped { .. }
                | Outcome::Waived { .. }) => {
                    return StepReport {
                        outcome: other,
                        log,
                    };
                }
            };
            problems.extend(external_problems);
            fail(problems.join("; "), log.join("\n"))
        }
    };
    StepReport { outcome, log }
}

impl Runner<'_> {
    /// Runs one probe (http, dns, udp, encrypted-dns, ping): it needs no
    /// run state, so probes that all wait for no answer may run at once
    /// (see [`Action::is_silent_probe`]). Any other action is the
    /// harness's error.
    pub(crate) async fn probe(&self, action: &Action) -> StepResult {
        match action {
            Action::Http {
                from,
                target,
                check,
            } => self.http_step(from, *target, check).await,
            Action::Dns {
                from,
                server,
                zone,
                check,
            } => self.dns_step(from, *server, zone, check).await,
            Action::Udp {
                from,
                target,
                check,
                size,
            } => self.udp_step(from, *target, check, *size).await,
            Action::EncryptedDns {
                https,
                from,
                target,
                check,
            } => self.encrypted_dns_step(*https, from, *target, check).await,
            Action::Ping {
                from,
                target,
                expect,
                size,
                dont_fragment,
            } => {
                let check = Check::expect(expect.clone());
                self.ping_step(from, *target, &check, *size, *dont_fragment)
                    .await
            }
            _ => Err(StepLog::new().error(lab_err("probe", "not a probe action"))),
        }
    }

    async fn udp_step(
        &self,
        from: &str,
        target: SocketAddr,
        check: &Check,
        size: Option<usize>,
    ) -> StepResult {
        let nonce = probe::nonce();
        let payload = probe::padded(&nonce, size);
        let mut log = StepLog::with(format!(
            "UDP {nonce:?} ({} bytes) to {target} from {from}",
            payload.len()
        ));
        let ns = log.harness(self.lab.ns(from))?;
        let r = probe::udp_echo(ns, target, &payload, PROBE_TIMEOUT).await;
        log.absorb(self.probe_outcome(&nonce, "datagram", check, r));
        Ok(log.judge())
    }

    async fn encrypted_dns_step(
        &self,
        https: bool,
        from: &str,
        target: SocketAddr,
        check: &Check,
    ) -> StepResult {
        let nonce = probe::nonce();
        let name = probe::probe_name(&nonce);
        let kind = if https { "DoH" } else { "DoT" };
        let mut log = StepLog::with(format!("{kind} query for {name} to {target} from {from}"));
        let alpn: &[&[u8]] = if https { &[b"h2"] } else { &[b"dot"] };
        let tls = log.harness(
            self.services
                .tls
                .client_config(alpn)
                .map_err(|e| lab_err(kind, e)),
        )?;
        let ns = log.harness(self.lab.ns(from))?;
        let r = if https {
            probe::doh_a(ns, target, &name, tls, PROBE_TIMEOUT).await
        } else {
            probe::dot_a(ns, target, &name, tls, PROBE_TIMEOUT).await
        };
        let r = match r {
            Ok(a) if !a.is_empty() => Ok(()),
            Ok(_) => Err(probe::ProbeError::Dns(
                "an answer without an address".into(),
            )),
            Err(e) => Err(e),
        };
        log.absorb(self.probe_outcome(&nonce, "query", check, r));
        let own = log.judge();
        let kind = if https {
            ExternalKind::Doh
        } else {
            ExternalKind::Dot
        };
        match self
            .external_check(kind, from, target, "probe.lab", check)
            .await
        {
            Ok(ext) => Ok(merge(own, ext)),
            Err(source) => Err(StepError {
                source: Box::new(source),
                log: own.log,
            }),
        }
    }

    async fn ping_step(
        &self,
        from: &str,
        target: std::net::IpAddr,
        check: &Check,
        size: Option<usize>,
        dont_fragment: bool,
    ) -> StepResult {
        let nonce = probe::nonce();
        let payload = probe::padded(&nonce, size);
        let mut log = StepLog::with(format!(
            "echo request {nonce:?} ({} bytes{}) to {target} from {from}",
            payload.len(),
            if dont_fragment {
                ", don't fragment"
            } else {
                ""
            }
        ));
        let ns = log.harness(self.lab.ns(from))?;
        let r = probe::ping(ns, target, &payload, dont_fragment, PROBE_TIMEOUT).await;
        log.absorb(self.probe_outcome(&nonce, "echo request", check, r));
        Ok(log.judge())
    }

    /// Checks which lab services saw the probe's nonce: each in the check's
    /// `logged_by` must have (a line each), none in its `not_logged_by` may
    /// have (a problem each).
    pub(crate) fn far_end(&self, nonce: &str, what: &str, check: &Check) -> StepLog {
        let mut log = StepLog::new();
        for svc in &check.logged_by {
            match self.services.log.find(svc, nonce).first() {
                Some(e) => log.note(format!(
                    "{svc} logged the {what} from {}: {}",
                    e.source, e.detail
                )),
                None => log.problem(format!("{svc} never received the {what}")),
            }
        }
        for svc in &check.not_logged_by {
            for e in self.services.log.find(svc, nonce) {
                log.problem(format!(
                    "{svc} received the {what} from {} (a leak)",
                    e.source
                ));
            }
        }
        log
    }

    /// `unheard`: none of `by` has logged anything since the scenario
    /// started.
    pub(crate) fn unheard(&self, st: &RunState<'_>, by: &[String]) -> StepReport {
        let mut log = StepLog::new();
        for svc in by {
            let heard: Vec<_> = self
                .services
                .log
                .find(svc, "")
                .into_iter()
                .filter(|e| e.at >= st.started_at)
                .collect();
            if heard.is_empty() {
                log.note(format!("{svc} logged nothing in this scenario"));
            }
            // Each kind of request once, with how often and from where.
            let mut kinds: Vec<(String, std::collections::BTreeSet<std::net::IpAddr>, usize)> =
                Vec::new();
            for e in &heard {
                match kinds.iter_mut().find(|(d, _, _)| *d == e.detail) {
                    Some((_, from, n)) => {
                        from.insert(e.source.ip());
                        *n += 1;
                    }
                    None => kinds.push((e.detail.clone(), [e.source.ip()].into(), 1)),
                }
            }
            for (detail, from, n) in kinds {
                let from: Vec<String> = from.iter().map(|a| a.to_string()).collect();
                log.problem(format!(
                    "{svc} heard from {}: {detail}{} (a leak)",
                    from.join(", "),
                    if n > 1 {
                        format!(" ({n} times)")
                    } else {
                        String::new()
                    }
                ));
            }
        }
        log.judge()
    }

    pub(crate) async fn http_step(
        &self,
        from: &str,
        target: SocketAddr,
        check: &Check,
    ) -> StepResult {
        let mut log = StepLog::new();
        let ns = log.harness(self.lab.ns(from))?;
        let nonce = probe::nonce();
        let path = format!("/leakhound/{nonce}");
        log.note(format!("GET http://{target}{path} from {from}"));
        let r = probe::http_get(ns, target, &path, PROBE_TIMEOUT).await;
        match &r {
            Ok((status, body)) => log.note(format!("answer {status}: {body}")),
            Err(e) => log.note(format!("no answer: {e}")),
        }
        match (&check.expect, &r) {
            (Expect::SeenAs(want), Ok((_, body))) => {
                if body != &want.to_string() {
                    log.problem(format!("whoami saw {body}, expected {want}"));
                } else if !self
                    .services
                    .log
                    .find(crate::lab::whoami::SERVICE, &nonce)
                    .iter()
                    .any(|e| e.source.ip() == *want)
                {
                    log.problem(format!(
                        "whoami's log has no request with nonce {nonce} from {want}"
                    ));
                }
            }
            (Expect::SeenAs(want), Err(e)) => log.problem(format!(
                "expected whoami to see {want}, but the request failed: {e}"
            )),
            // Any HTTP answer is "reached": real applications answer an
            // unknown path with 404, or 401 without credentials.
            (Expect::Answer, Ok(_)) => {}
            (Expect::Answer, Err(e)) => log.problem(format!("expected an answer, got none: {e}")),
            (Expect::Fail, Ok((_, body))) => log.problem(format!(
                "the request should have failed, but it was answered: {body}"
            )),
            (Expect::Fail, Err(_)) | (Expect::Any, _) => {}
        }
        if r.is_ok() {
            // An answered request's evidence may still be on its way (the
            // real dependents' comes off the wire): bounded, event-driven.
            for svc in &check.logged_by {
                self.services
                    .log
                    .wait_for(svc, &nonce, Duration::from_secs(1))
                    .await;
            }
        }
        log.absorb(self.far_end(&nonce, "request", check));
        Ok(log.judge())
    }

    /// `server`, or the system resolver of `from`: the first nameserver of
    /// its resolv.conf, as getaddrinfo would use it (and a line saying so).
    /// `Err`: the step's failed outcome.
    pub(crate) fn resolver_for(
        &self,
        from: &str,
        server: Option<SocketAddr>,
    ) -> Result<(SocketAddr, StepLog), Outcome> {
        if let Some(s) = server {
            return Ok((s, StepLog::new()));
        }
        let path = self.lab.resolv_conf(from);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        match crate::gateway::dns::first_nameserver(&text) {
            Some(ip) => Ok((
                SocketAddr::new(ip, 53),
                StepLog::with(format!("{}: nameserver {ip}", path.display())),
            )),
            None => Err(fail(
                format!("{} names no nameserver", path.display()),
                text,
            )),
        }
    }

    pub(crate) async fn dns_step(
        &self,
        from: &str,
        server: Option<SocketAddr>,
        zone: &str,
        check: &Check,
    ) -> StepResult {
        let mut log = StepLog::new();
        let ns = log.harness(self.lab.ns(from))?;
        let nonce = probe::nonce();
        let name = format!("{nonce}.{zone}.");
        let server = match self.resolver_for(from, server) {
            Ok((s, found)) => {
                log.absorb(found);
                s
            }
            Err(outcome) => return Ok(log.end(outcome)),
        };
        log.note(format!("A {name} to {server} from {from}"));
        let r = probe::dns_a(ns, server, &name, PROBE_TIMEOUT).await;
        match &r {
            Ok(a) => log.note(format!("answer: {a:?}")),
            Err(e) => log.note(format!("no answer: {e}")),
        }
        match (&check.expect, &r) {
            (Expect::Answer, Ok(a)) if !a.is_empty() => {}
            (Expect::Answer, Ok(_)) => log.problem("the answer had no A record"),
            (Expect::Answer, Err(e)) => log.problem(format!("expected an answer, got none: {e}")),
            // An answer without an address (SERVFAIL, NXDOMAIN) is a failed
            // resolution too: what a gateway's resolver says when it cannot
            // reach its upstream.
            (Expect::Fail, Ok(a)) if a.is_empty() => {}
            (Expect::Fail, Ok(a)) => {
                log.problem(format!("expected the name not to resolve, got {a:?}"))
            }
            (Expect::Fail, Err(_)) | (Expect::Any, _) => {}
            (Expect::SeenAs(_), _) => unreachable!("validated by the scenario parser"),
        }
        log.absorb(self.far_end(&nonce, "query", check));
        let ext = log.harness(
            self.external_check(ExternalKind::Dns, from, server, zone, check)
                .await,
        )?;
        log.absorb(ext.log);
        match ext.missing {
            // Our own client's failure stands; its pass alone is no verdict.
            Some(missing) if log.problems().is_empty() => {
                Ok(log.end(Outcome::Skipped { reason: missing }))
            }
            _ => Ok(log.judge()),
        }
    }

    /// Asks the same question through an independent client (kdig for DNS
    /// and DoT, curl for DoH), with its own nonce: its lines, and what did
    /// not meet `expect` (including the far-end checks) as problems; or,
    /// when the client is not installed, why (the step is then skipped
    /// with that reason rather than passed on leakhound's own client
    /// alone).
    pub(crate) async fn external_check(
        &self,
        kind: ExternalKind,
        from: &str,
        server: SocketAddr,
        zone: &str,
        check: &Check,
    ) -> Result<External, crate::lab::LabError> {
        let tool = if kind == ExternalKind::Doh {
            "curl"
        } else {
            "kdig"
        };
        if !external::available(tool) {
            let why = external::missing(tool);
            return Ok(External {
                log: StepLog::with(why.clone()),
                missing: Some(why),
            });
        }
        let nonce = probe::nonce();
        let name = format!("{nonce}.{zone}.");
        let ns = self.lab.ns(from)?;
        let ca = self.lab.ca_file();
        let r = match kind {
            ExternalKind::Dns => external::kdig(ns, server, &name, None).await,
            ExternalKind::Dot => external::kdig(ns, server, &name, Some((&ca, "dot.lab"))).await,
            ExternalKind::Doh => {
                let url = format!("http://{}/leakhound/{nonce}", name.trim_end_matches('.'));
                external::curl_doh(ns, &format!("https://{}/dns-query", server.ip()), &ca, &url)
                    .await
            }
        };
        let mut log = StepLog::new();
        match r {
            Err(e) => log.problem(format!("{tool} could not run: {e}")),
            Ok(x) => {
                log.note(format!(
                    "{}: {}",
                    x.command,
                    if x.answered { "answered" } else { "no answer" }
                ));
                if !x.output.is_empty() {
                    log.note(format!(
                        "  {}",
                        x.output.lines().take(3).collect::<Vec<_>>().join(" | ")
                    ));
                }
                match (x.answered, &check.expect) {
                    (true, Expect::Fail) => log.problem(format!(
                        "{tool} got an answer that should have been refused"
                    )),
                    (false, Expect::Answer) => log.problem(format!("{tool} got no answer")),
                    _ => {}
                }
            }
        }
        log.absorb(self.far_end(&nonce, &format!("{tool} query"), check));
        Ok(External { log, missing: None })
    }

    /// What a probe's answer (or its absence) says against `check`, with
    /// the far end's view: lines and problems, for the step to judge.
    fn probe_outcome(
        &self,
        nonce: &str,
        what: &str,
        check: &Check,
        r: Result<(), probe::ProbeError>,
    ) -> StepLog {
        let mut log = StepLog::new();
        match (&r, &check.expect) {
            (Ok(()), Expect::Answer) => log.note("answered"),
            (Err(e), Expect::Fail) => log.note(format!("failed as expected: {e}")),
            (Ok(()), Expect::Any) => log.note("answered (either way is fine: the wires judge)"),
            (Err(e), Expect::Any) => log.note(format!(
                "no answer (either way is fine: the wires judge): {e}"
            )),
            (Ok(()), _) => log.problem(format!(
                "the {what} should have failed, but it was answered"
            )),
            (Err(e), _) => log.problem(format!("expected an answer to the {what}, got none: {e}")),
        }
        log.absorb(self.far_end(nonce, what, check));
        log
    }
}
