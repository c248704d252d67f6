//! The log every lab service writes: what it received, from which source,
//! when. Scenarios, the audit and the benchmarks read it to prove a leak (or
//! its absence) at the far end. A leaf: the services write to it and the
//! readers read it without knowing each other.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

/// One thing a lab service received.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogEntry {
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    pub service: &'static str,
    pub source: SocketAddr,
    pub detail: String,
}

/// The shared, append-only log of the lab's services, with a counter that
/// wakes whoever waits for a new entry.
#[derive(Debug, Clone)]
pub struct ServiceLog(Arc<Mutex<Vec<LogEntry>>>, tokio::sync::watch::Sender<usize>);

impl Default for ServiceLog {
    fn default() -> Self {
        ServiceLog(Arc::default(), tokio::sync::watch::Sender::new(0))
    }
}

impl ServiceLog {
    pub fn record(&self, service: &'static str, source: SocketAddr, detail: String) {
        tracing::debug!(service, %source, "{detail}");
        let n = {
            let mut v = self.0.lock().expect("log lock");
            v.push(LogEntry {
                at: SystemTime::now(),
                service,
                source,
                detail,
            });
            v.len()
        };
        self.1.send_replace(n);
    }

    /// Changes whenever an entry is added.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<usize> {
        self.1.subscribe()
    }

    /// Waits until `service` has logged an entry containing `needle`, at
    /// most `within`: for evidence that arrives after the answer (the real
    /// dependents' is read off the wire by another thread). True when it is
    /// there.
    pub async fn wait_for(&self, service: &str, needle: &str, within: std::time::Duration) -> bool {
        self.wait_until(within, |l| !l.find(service, needle).is_empty())
            .await
    }

    /// Waits until `service` has logged `count` entries in all, at most
    /// `within`; true when it has. For a window in which nothing may
    /// arrive: it ends early only if something does.
    pub async fn wait_for_count(
        &self,
        service: &str,
        count: usize,
        within: std::time::Duration,
    ) -> bool {
        self.wait_until(within, |l| l.find(service, "").len() >= count)
            .await
    }

    /// Waits until `cond` holds, at most `within`, woken by each new entry.
    async fn wait_until(&self, within: std::time::Duration, cond: impl Fn(&Self) -> bool) -> bool {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if cond(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return cond(self);
            }
        }
    }

    /// Entries of `service` whose detail contains `needle` (e.g. a nonce).
    pub fn find(&self, service: &str, needle: &str) -> Vec<LogEntry> {
        self.0
            .lock()
            .expect("log lock")
            .iter()
            .filter(|e| e.service == service && e.detail.contains(needle))
            .cloned()
            .collect()
    }

    /// The entries after the first `index` (as `len` returned it before):
    /// what arrived during a step, without copying the rest.
    pub fn since(&self, index: usize) -> Vec<LogEntry> {
        let v = self.0.lock().expect("log lock");
        v.get(index..).unwrap_or_default().to_vec()
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("log lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
