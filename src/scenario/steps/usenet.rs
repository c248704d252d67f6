//! The steps that drive the real NZBGet against the lab's news server: give
//! it an NZB of a post made for the step, wait until it completes it (or,
//! with the tunnel down, until it has it queued and nothing arrives), and
//! read the news server's view of it. Each waits on NZBGet's own answers
//! or the far end's log, bounded by the step's timeout.

use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use super::report::{StepLog, StepReport, StepResult};
use crate::lab::LabError;
use crate::lab::apps::App;
use crate::lab::nzbget_rpc::{Nzbget, Progress};
use crate::lab::service_log::LogEntry;
use crate::model::scenario::Expect;
use crate::model::topology::service;
use crate::model::usenet;
use crate::model::verdict::Outcome;
use crate::poll::poll_until;
use crate::scenario::runner::{GivenNzb, PROBE_TIMEOUT, RunState, Runner};

const POLL: Duration = Duration::from_millis(200);

/// A post's size and its articles' (yEnc adds about 2%).
pub const POST_BYTES: usize = 1 << 20;

pub const SEGMENT_BYTES: usize = 256 << 10;

/// What is wrong with the news server's view of NZBGet (pure): nothing seen
/// at all, or anything from another address than `seen_as`.
pub fn news_problems(entries: &[LogEntry], seen_as: IpAddr) -> Vec<String> {
    if entries.is_empty() {
        return vec!["the news server saw no connection".into()];
    }
    let mut problems: Vec<String> = entries
        .iter()
        .filter(|e| e.source.ip() != seen_as)
        .map(|e| format!("the news server saw {} from {}", e.detail, e.source.ip()))
        .collect();
    problems.dedup();
    problems
}

impl Runner<'_> {
    fn nzbget(&self) -> Result<Result<Nzbget<'_>, Outcome>, LabError> {
        Ok(self
            .app_at(App::Nzbget)?
            .map(|(ns, port)| Nzbget { ns, port }))
    }

    /// What the news server logged since the scenario's first NZB.
    fn news_entries(&self, since: Option<SystemTime>) -> Vec<LogEntry> {
        let Some(since) = since else { return vec![] };
        self.services
            .log
            .find(service::NEWS, "")
            .into_iter()
            .filter(|e| e.at >= since)
            .collect()
    }

    /// `nzb-add`: the news server publishes a post made for the step and
    /// NZBGet takes its NZB.
    pub(crate) async fn nzb_add(&self, st: &mut RunState<'_>) -> StepResult {
        let mut log = StepLog::new();
        let n = match log.harness(self.nzbget())? {
            Ok(n) => n,
            Err(o) => return Ok(log.end(o)),
        };
        st.news_since.get_or_insert_with(SystemTime::now);
        let tag = crate::probe::nonce();
        let name = format!("leakhound-{tag}.bin");
        let mut data = vec![0u8; POST_BYTES];
        rand::fill(&mut data[..]);
        let articles = usenet::post(&name, &data, SEGMENT_BYTES, &tag);
        self.services.news.publish(&articles);
        let nzb = usenet::nzb(&name, crate::lab::news::GROUP, &articles);
        log.note(format!(
            "the news server publishes {name} ({} bytes in {} articles)",
            data.len(),
            articles.len()
        ));
        match n.append(&format!("{name}.nzb"), &nzb).await {
            Ok(id) => {
                log.note(format!("NZBGet took the NZB (id {id})"));
                st.nzbs.push(GivenNzb { id, tag });
                Ok(log.pass())
            }
            Err(e) => Ok(log.fail(format!("NZBGet did not take the NZB: {e}"))),
        }
    }

    /// `nzb-wait`: NZBGet completes the last NZB (`answer`), or has it
    /// queued while none of its articles reaches the news server (`fail`).
    pub(crate) async fn nzb_wait(
        &self,
        st: &RunState<'_>,
        expect: &Expect,
        timeout: Duration,
    ) -> StepResult {
        let mut log = StepLog::new();
        let n = match log.harness(self.nzbget())? {
            Ok(n) => n,
            Err(o) => return Ok(log.end(o)),
        };
        let Some(given) = st.nzbs.last() else {
            return Ok(log.fail_with("no NZB yet: an nzb-add step must come first", ""));
        };
        let (n, id) = (&n, given.id);
        let got = poll_until(timeout, POLL, || async move {
            match n.progress(id).await {
                Ok(Progress::Done(j)) => ControlFlow::Break((true, j)),
                Ok(Progress::Queued(j)) if *expect == Expect::Fail => {
                    ControlFlow::Break((false, j))
                }
                Ok(Progress::Queued(j)) => ControlFlow::Continue(format!(
                    "queued: {}, {} MB left",
                    j.status, j.remaining_mb
                )),
                Ok(Progress::Unknown) => ControlFlow::Continue("NZBGet does not list it".into()),
                Err(e) => ControlFlow::Continue(e.to_string()),
            }
        })
        .await;
        match got {
            // (done, the job): done, or queued while it must not get it.
            Ok((true, j)) if *expect == Expect::Answer => {
                log.note(format!("NZBGet: {}", j.status));
                Ok(if j.status.starts_with("SUCCESS") {
                    log.pass()
                } else {
                    log.fail(format!("NZBGet finished it as {}", j.status))
                })
            }
            Ok((false, j)) => {
                log.note(format!("NZBGet has it queued: {}", j.status));
                Ok(self.articles_held(given, log).await)
            }
            Ok((true, j)) => Ok(log.fail(format!(
                "NZBGet finished it ({}) while it must not get it",
                j.status
            ))),
            Err(last) => Ok(log.fail(format!(
                "NZBGet did not get there within {timeout:?}: {last}"
            ))),
        }
    }

    /// NZBGet has `given` and is at work on it: what it sends has the
    /// probes' full timeout to arrive, as a silent probe waits, and none
    /// of its articles may reach the news server. `log` goes on.
    async fn articles_held(&self, given: &GivenNzb, mut log: StepLog) -> StepReport {
        self.services
            .log
            .wait_for(service::NEWS, &given.tag, PROBE_TIMEOUT)
            .await;
        match self
            .services
            .log
            .find(service::NEWS, &given.tag)
            .into_iter()
            .next()
        {
            Some(e) => log.fail(format!(
                "the news server served {} to {} while it must not",
                e.detail, e.source
            )),
            None => {
                log.note(format!(
                    "none of its articles reached the news server within {PROBE_TIMEOUT:?}"
                ));
                log.pass()
            }
        }
    }

    /// `news-seen`: the news server saw NZBGet from `seen_as` only.
    pub(crate) fn news_seen(&self, st: &RunState<'_>, seen_as: IpAddr) -> StepReport {
        let entries = self.news_entries(st.news_since);
        let connections = entries.iter().filter(|e| e.detail == "connection").count();
        let log = StepLog::with(format!(
            "the news server logged {} connections and {} requests in this scenario",
            connections,
            entries.len() - connections
        ));
        let problems = news_problems(&entries, seen_as);
        if problems.is_empty() {
            log.pass()
        } else {
            log.fail(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(from: &str, detail: &str) -> LogEntry {
        LogEntry {
            at: SystemTime::UNIX_EPOCH,
            service: service::NEWS,
            source: from.parse().unwrap(),
            detail: detail.into(),
        }
    }

    #[test]
    fn the_news_server_must_see_the_exit_only() {
        let exit: IpAddr = "203.0.113.77".parse().unwrap();
        assert!(news_problems(&[entry("203.0.113.77:4000", "connection")], exit).is_empty());
        assert_eq!(news_problems(&[], exit).len(), 1);
        let p = news_problems(
            &[
                entry("203.0.113.77:4000", "connection"),
                entry("198.51.100.2:4001", "connection"),
            ],
            exit,
        );
        assert_eq!(p, vec!["the news server saw connection from 198.51.100.2"]);
    }
}
