//! The browser step (Byparr's stand-in): one visit of headless Chromium to
//! the browser probe's page in the gateway's namespace, then the verdict on
//! what it reported and on what the far end saw during the visit (whoami,
//! the STUN server, the UDP 443 listener, the DoH server). The verdict
//! itself is pure ([`crate::model::browser::problems`]).

use super::report::{StepLog, StepResult};
use crate::model::browser::{self, Expectation, FarEnd};
use crate::model::scenario::Expect;
use crate::model::topology::service;
use crate::probe;
use crate::scenario::runner::Runner;

impl Runner<'_> {
    pub(crate) async fn browse(&self, expect: &Expect) -> StepResult {
        let mut log = StepLog::new();
        let expectation = match expect {
            Expect::SeenAs(ip) => Expectation::SeenAs(*ip),
            _ => Expectation::Nothing,
        };
        let nonce = probe::nonce();
        let before = self.services.log.len();
        let visit =
            log.harness(crate::lab::browser::visit(self.lab, &nonce, &self.services.tls).await)?;
        log.note(visit.command);
        let report = match visit.report {
            Ok(r) => r,
            Err(why) => {
                return Ok(log.fail(format!("the browser gave no report: {why}")));
            }
        };
        let fetched = |list: &[browser::Fetched]| {
            list.iter()
                .map(|f| match (&f.answer, &f.error) {
                    (Some(a), _) => format!("{} -> {a}", f.url),
                    (None, e) => format!("{} failed ({})", f.url, e.as_deref().unwrap_or("?")),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        log.note(format!(
            "the page reported: whoami {}; {} ICE candidate(s), public {:?}{}; QUIC {}",
            fetched(&report.whoami),
            report.candidates.len(),
            browser::reflexive_addresses(&report.candidates),
            report
                .webrtc_error
                .as_ref()
                .map(|e| format!(" (WebRTC error: {e})"))
                .unwrap_or_default(),
            fetched(&report.quic),
        ));
        let during = self.services.log.since(before);
        let sources = |svc: &str, nonce: Option<&str>| {
            during
                .iter()
                .filter(|e| e.service == svc && nonce.is_none_or(|n| e.detail.contains(n)))
                .map(|e| e.source)
                .collect::<Vec<_>>()
        };
        let far = FarEnd {
            stun: sources(service::STUN, None),
            quic: sources(service::QUIC, None),
            whoami: sources(service::WHOAMI, Some(&nonce)),
            // Nothing else in the lab asks the DoH server during a visit:
            // any query is the browser's own (its probe of the server, or
            // a name of the page).
            doh: sources(service::DOH, None),
        };
        log.note(format!(
            "the far end during the visit: whoami {:?}, stun {:?}, quic {:?}, doh {:?}",
            far.whoami, far.stun, far.quic, far.doh
        ));
        for p in browser::problems(&report, &far, expectation) {
            log.problem(p);
        }
        Ok(log.judge())
    }
}
