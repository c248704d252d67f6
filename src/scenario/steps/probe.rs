//! The probes: HTTP, DNS, UDP, encrypted DNS and ping from a lab host, each
//! with its nonce and its far-end check in the lab services' log (and, for
//! DNS, the same question through an independent client); `unheard`, the
//! far end's silence. Probes need no run state, so those that wait for no
//! answer may run at once.

use std::net::SocketAddr;
use std::time::Duration;

use super::report::lab_err;
use crate::lab::LabError;
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

/// One step's outcome from our own probe and an independent client's.
pub(crate) fn merge(
    own: Outcome,
    external: Result<Vec<String>, String>,
    log: &[String],
) -> Outcome {
    let external = match external {
        Ok(e) => e,
        // No independent client: a failure of our own client stands; a pass
        // would rest on leakhound's own client alone, so it is no verdict.
        Err(missing) => {
            return match own {
                Outcome::Passed => Outcome::Skipped { reason: missing },
                other => other,
            };
        }
    };
    if external.is_empty() {
        return own;
    }
    let mut problems = match own {
        Outcome::Passed => Vec::new(),
        Outcome::Failed { message, .. } => vec![message],
        other @ (Outcome::Error { .. } | Outcome::Skipped { .. } | Outcome::Waived { .. }) => {
            return other;
        }
    };
    problems.extend(external);
    fail(problems.join("; "), log.join("\n"))
}

impl Runner<'_> {
    /// Runs one probe (http, dns, udp, encrypted-dns, ping): it needs no
    /// run state, so probes that all wait for no answer may run at once
    /// (see [`Action::is_silent_probe`]). Any other action is the
    /// harness's error.
    pub(crate) async fn probe(
        &self,
        action: &Action,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        Ok(match action {
            Action::Http {
                from,
                target,
                check,
            } => self.http_step(from, *target, check, log).await?,
            Action::Dns {
                from,
                server,
                zone,
                check,
            } => self.dns_step(from, *server, zone, check, log).await?,
            Action::Udp {
                from,
                target,
                check,
                size,
            } => {
                let nonce = probe::nonce();
                let payload = probe::padded(&nonce, *size);
                log.push(format!(
                    "UDP {nonce:?} ({} bytes) to {target} from {from}",
                    payload.len()
                ));
                let r = probe::udp_echo(self.lab.ns(from)?, *target, &payload, PROBE_TIMEOUT).await;
                self.probe_outcome(&nonce, "datagram", check, r, log)
            }
            Action::EncryptedDns {
                https,
                from,
                target,
                check,
            } => {
                let nonce = probe::nonce();
                let name = probe::probe_name(&nonce);
                let kind = if *https { "DoH" } else { "DoT" };
                log.push(format!("{kind} query for {name} to {target} from {from}"));
                let alpn: &[&[u8]] = if *https { &[b"h2"] } else { &[b"dot"] };
                let tls = self
                    .services
                    .tls
                    .client_config(alpn)
                    .map_err(|e| lab_err(kind, e))?;
                let ns = self.lab.ns(from)?;
                let r = if *https {
                    probe::doh_a(ns, *target, &name, tls, PROBE_TIMEOUT).await
                } else {
                    probe::dot_a(ns, *target, &name, tls, PROBE_TIMEOUT).await
                };
                let r = match r {
                    Ok(a) if !a.is_empty() => Ok(()),
                    Ok(_) => Err(probe::ProbeError::Dns(
                        "an answer without an address".into(),
                    )),
                    Err(e) => Err(e),
                };
                let own = self.probe_outcome(&nonce, "query", check, r, log);
                let kind = if *https {
                    ExternalKind::Doh
                } else {
                    ExternalKind::Dot
                };
                let ext = self
                    .external_check(kind, from, *target, "probe.lab", check, log)
                    .await?;
                merge(own, ext, log)
            }
            Action::Ping {
                from,
                target,
                expect,
                size,
                dont_fragment,
            } => {
                let nonce = probe::nonce();
                let payload = probe::padded(&nonce, *size);
                log.push(format!(
                    "echo request {nonce:?} ({} bytes{}) to {target} from {from}",
                    payload.len(),
                    if *dont_fragment {
                        ", don't fragment"
                    } else {
                        ""
                    }
                ));
                let r = probe::ping(
                    self.lab.ns(from)?,
                    *target,
                    &payload,
                    *dont_fragment,
                    PROBE_TIMEOUT,
                )
                .await;
                self.probe_outcome(
                    &nonce,
                    "echo request",
                    &Check::expect(expect.clone()),
                    r,
                    log,
                )
            }
            _ => {
                return Err(LabError::Service {
                    service: "probe".into(),
                    source: std::io::Error::other("not a probe action"),
                });
            }
        })
    }

    /// Checks which lab services saw the probe's nonce: each in the check's
    /// `logged_by` must have, none in its `not_logged_by` may have. Problems
    /// are appended.
    pub(crate) fn far_end(
        &self,
        nonce: &str,
        what: &str,
        check: &Check,
        log: &mut Vec<String>,
        problems: &mut Vec<String>,
    ) {
        for svc in &check.logged_by {
            match self.services.log.find(svc, nonce).first() {
                Some(e) => log.push(format!(
                    "{svc} logged the {what} from {}: {}",
                    e.source, e.detail
                )),
                None => problems.push(format!("{svc} never received the {what}")),
            }
        }
        for svc in &check.not_logged_by {
            for e in self.services.log.find(svc, nonce) {
                problems.push(format!(
                    "{svc} received the {what} from {} (a leak)",
                    e.source
                ));
            }
        }
    }

    /// `unheard`: none of `by` has logged anything since the scenario
    /// started.
    pub(crate) fn unheard(
        &self,
        st: &RunState<'_>,
        by: &[String],
        log: &mut Vec<String>,
    ) -> Outcome {
        let mut problems = Vec::new();
        for svc in by {
            let heard: Vec<_> = self
                .services
                .log
                .find(svc, "")
                .into_iter()
                .filter(|e| e.at >= st.started_at)
                .collect();
            if heard.is_empty() {
                log.push(format!("{svc} logged nothing in this scenario"));
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
                problems.push(format!(
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
        Self::verdict(problems, log)
    }

    pub(crate) fn verdict(problems: Vec<String>, log: &mut Vec<String>) -> Outcome {
        if problems.is_empty() {
            Outcome::Passed
        } else {
            log.extend(problems.iter().cloned());
            fail(problems.join("; "), log.join("\n"))
        }
    }

    pub(crate) async fn http_step(
        &self,
        from: &str,
        target: SocketAddr,
        check: &Check,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let ns = self.lab.ns(from)?;
        let nonce = probe::nonce();
        let path = format!("/leakhound/{nonce}");
        log.push(format!("GET http://{target}{path} from {from}"));
        let r = probe::http_get(ns, target, &path, PROBE_TIMEOUT).await;
        match &r {
            Ok((status, body)) => log.push(format!("answer {status}: {body}")),
            Err(e) => log.push(format!("no answer: {e}")),
        }
        let mut problems = Vec::new();
        match (&check.expect, &r) {
            (Expect::SeenAs(want), Ok((_, body))) => {
                if body != &want.to_string() {
                    problems.push(format!("whoami saw {body}, expected {want}"));
                } else if !self
                    .services
                    .log
                    .find(crate::lab::whoami::SERVICE, &nonce)
                    .iter()
                    .any(|e| e.source.ip() == *want)
                {
                    problems.push(format!(
                        "whoami's log has no request with nonce {nonce} from {want}"
                    ));
                }
            }
            (Expect::SeenAs(want), Err(e)) => problems.push(format!(
                "expected whoami to see {want}, but the request failed: {e}"
            )),
            // Any HTTP answer is "reached": real applications answer an
            // unknown path with 404, or 401 without credentials.
            (Expect::Answer, Ok(_)) => {}
            (Expect::Answer, Err(e)) => problems.push(format!("expected an answer, got none: {e}")),
            (Expect::Fail, Ok((_, body))) => problems.push(format!(
                "the request should have failed, but it was answered: {body}"
            )),
            (Expect::Fail, Err(_)) => {}
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
        self.far_end(&nonce, "request", check, log, &mut problems);
        Ok(Self::verdict(problems, log))
    }

    /// `server`, or the system resolver of `from`: the first nameserver of
    /// its resolv.conf, as getaddrinfo would use it.
    pub(crate) fn resolver_for(
        &self,
        from: &str,
        server: Option<SocketAddr>,
        log: &mut Vec<String>,
    ) -> Result<SocketAddr, Outcome> {
        if let Some(s) = server {
            return Ok(s);
        }
        let path = self.lab.resolv_conf(from);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        match crate::gateway::dns::first_nameserver(&text) {
            Some(ip) => {
                log.push(format!("{}: nameserver {ip}", path.display()));
                Ok(SocketAddr::new(ip, 53))
            }
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
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let ns = self.lab.ns(from)?;
        let nonce = probe::nonce();
        let name = format!("{nonce}.{zone}.");
        let server = match self.resolver_for(from, server, log) {
            Ok(s) => s,
            Err(outcome) => return Ok(outcome),
        };
        log.push(format!("A {name} to {server} from {from}"));
        let r = probe::dns_a(ns, server, &name, PROBE_TIMEOUT).await;
        match &r {
            Ok(a) => log.push(format!("answer: {a:?}")),
            Err(e) => log.push(format!("no answer: {e}")),
        }
        let mut problems = Vec::new();
        match (&check.expect, &r) {
            (Expect::Answer, Ok(a)) if !a.is_empty() => {}
            (Expect::Answer, Ok(_)) => problems.push("the answer had no A record".to_string()),
            (Expect::Answer, Err(e)) => problems.push(format!("expected an answer, got none: {e}")),
            // An answer without an address (SERVFAIL, NXDOMAIN) is a failed
            // resolution too: what a gateway's resolver says when it cannot
            // reach its upstream.
            (Expect::Fail, Ok(a)) if a.is_empty() => {}
            (Expect::Fail, Ok(a)) => {
                problems.push(format!("expected the name not to resolve, got {a:?}"))
            }
            (Expect::Fail, Err(_)) => {}
            (Expect::SeenAs(_), _) => unreachable!("validated by the scenario parser"),
        }
        self.far_end(&nonce, "query", check, log, &mut problems);
        let ext = self
            .external_check(ExternalKind::Dns, from, server, zone, check, log)
            .await?;
        match ext {
            Ok(more) => problems.extend(more),
            // Our own client's failure stands; its pass alone is no verdict.
            Err(missing) if problems.is_empty() => {
                return Ok(Outcome::Skipped { reason: missing });
            }
            Err(_) => {}
        }
        Ok(Self::verdict(problems, log))
    }

    /// Asks the same question through an independent client (kdig for DNS
    /// and DoT, curl for DoH), with its own nonce, and returns what did not
    /// meet `expect` (including the far-end checks); `Err(reason)` when the
    /// client is not installed (the step is then skipped with that reason
    /// rather than passed on leakhound's own client alone).
    pub(crate) async fn external_check(
        &self,
        kind: ExternalKind,
        from: &str,
        server: SocketAddr,
        zone: &str,
        check: &Check,
        log: &mut Vec<String>,
    ) -> Result<Result<Vec<String>, String>, LabError> {
        let tool = if kind == ExternalKind::Doh {
            "curl"
        } else {
            "kdig"
        };
        if !external::available(tool) {
            let why = external::missing(tool);
            log.push(why.clone());
            return Ok(Err(why));
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
        let mut problems = Vec::new();
        match r {
            Err(e) => problems.push(format!("{tool} could not run: {e}")),
            Ok(x) => {
                log.push(format!(
                    "{}: {}",
                    x.command,
                    if x.answered { "answered" } else { "no answer" }
                ));
                if !x.output.is_empty() {
                    log.push(format!(
                        "  {}",
                        x.output.lines().take(3).collect::<Vec<_>>().join(" | ")
                    ));
                }
                match (x.answered, &check.expect) {
                    (true, Expect::Fail) => problems.push(format!(
                        "{tool} got an answer that should have been refused"
                    )),
                    (false, Expect::Answer) => problems.push(format!("{tool} got no answer")),
                    _ => {}
                }
            }
        }
        self.far_end(&nonce, &format!("{tool} query"), check, log, &mut problems);
        Ok(Ok(problems))
    }

    fn probe_outcome(
        &self,
        nonce: &str,
        what: &str,
        check: &Check,
        r: Result<(), probe::ProbeError>,
        log: &mut Vec<String>,
    ) -> Outcome {
        let mut problems = Vec::new();
        match (&r, &check.expect) {
            (Ok(()), Expect::Answer) => log.push("answered".into()),
            (Err(e), Expect::Fail) => log.push(format!("failed as expected: {e}")),
            (Ok(()), _) => problems.push(format!(
                "the {what} should have failed, but it was answered"
            )),
            (Err(e), _) => {
                problems.push(format!("expected an answer to the {what}, got none: {e}"))
            }
        }
        self.far_end(nonce, what, check, log, &mut problems);
        Self::verdict(problems, log)
    }
}
