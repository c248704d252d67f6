//! DNS load: `concurrency` clients in one namespace, each sending a query
//! and waiting for its answer, for a fixed time. Either every query asks the
//! same name (answered from cache after the first) or a fresh one (every
//! query goes upstream through the tunnel).

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;

use crate::lab::netns::Netns;
use crate::poll::poll_until;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Names {
    /// The same name every time.
    Cached,
    /// A new name every time.
    Uncached,
}

#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub answered: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latencies of answered queries, sorted.
    pub latencies: Vec<Duration>,
}

impl LoadResult {
    pub fn qps(&self) -> f64 {
        self.answered as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`-th percentile latency (0..=100).
    pub fn percentile(&self, p: usize) -> Duration {
        crate::model::stats::percentile(&self.latencies, p).unwrap_or_default()
    }
}

fn query(name: &str) -> (u16, Vec<u8>) {
    crate::model::dns_query::a_query(name).expect("bench names are valid")
}

/// Runs the load and returns what was measured. The loop is bounded by
/// `duration`; each query by a 1 s timeout.
pub async fn load(
    ns: &Netns,
    server: SocketAddr,
    names: Names,
    concurrency: usize,
    duration: Duration,
) -> std::io::Result<LoadResult> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let std_sock = ns
            .run(|| -> std::io::Result<_> {
                let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .map_err(std::io::Error::other)??;
        let sock = tokio::net::UdpSocket::from_std(std_sock)?;
        tasks.push(tokio::spawn(async move {
            let mut r = LoadResult::default();
            let mut buf = vec![0u8; 4096];
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let name = match names {
                    Names::Cached => "cached.probe.lab.".to_string(),
                    Names::Uncached => {
                        format!("u{worker}x{i}x{:08x}.probe.lab.", rand::random::<u32>())
                    }
                };
                let (id, wire) = query(&name);
                let t = Instant::now();
                if sock.send_to(&wire, server).await.is_err() {
                    r.failed += 1;
                    continue;
                }
                let answer = tokio::time::timeout(Duration::from_secs(1), async {
                    loop {
                        let (n, _) = sock.recv_from(&mut buf).await?;
                        if let Ok(m) = Message::from_vec(&buf[..n])
                            && m.metadata.id == id
                        {
                            return Ok::<_, std::io::Error>(!m.answers.is_empty());
                        }
                    }
                })
                .await;
                match answer {
                    Ok(Ok(true)) => {
                        r.answered += 1;
                        r.latencies.push(t.elapsed());
                    }
                    _ => r.failed += 1,
                }
            }
            r
        }));
    }
    let mut total = LoadResult::default();
    for t in tasks {
        let r = t.await.map_err(std::io::Error::other)?;
        total.answered += r.answered;
        total.failed += r.failed;
        total.latencies.extend(r.latencies);
    }
    total.elapsed = started.elapsed();
    total.latencies.sort_unstable();
    Ok(total)
}

/// Waits (bounded) until `server` answers a query from `ns`: readiness by
/// asking, not by sleeping.
pub async fn wait_answering(ns: &Netns, server: SocketAddr, within: Duration) -> bool {
    poll_until(within, Duration::ZERO, || async move {
        match crate::probe::dns_a(ns, server, "ready.probe.lab.", Duration::from_millis(200)).await
        {
            Ok(a) if !a.is_empty() => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    })
    .await
    .is_ok()
}

/// User plus system CPU seconds `pid` has used so far (from
/// /proc/PID/stat), `None` if it cannot be read.
pub fn cpu_seconds(pid: Option<i32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command (which may hold spaces) end with ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks as f64 / hz as f64)
}

/// unbound's configuration: listen on `listen`, forward everything to
/// `upstream`, cache on, no chroot or syslog (it runs inside the lab).
pub fn unbound_conf(
    listen: SocketAddr,
    upstream: std::net::IpAddr,
    dir: &std::path::Path,
) -> String {
    format!(
        "server:\n  interface: {ip}@{port}\n  access-control: 127.0.0.0/8 allow\n  do-ip6: no\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  do-not-query-localhost: no\n  num-threads: 1\nforward-zone:\n  name: \".\"\n  forward-addr: {upstream}\n",
        ip = listen.ip(),
        port = listen.port(),
        dir = dir.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_sorted_latencies() {
        let r = LoadResult {
            answered: 100,
            failed: 0,
            elapsed: Duration::from_secs(2),
            latencies: (1..=100).map(Duration::from_millis).collect(),
        };
        assert_eq!(r.qps(), 50.0);
        assert_eq!(r.percentile(50), Duration::from_millis(50));
        assert_eq!(r.percentile(99), Duration::from_millis(99));
        assert_eq!(LoadResult::default().percentile(99), Duration::ZERO);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        // The kernel counts in ticks (10 ms): busy until the count moves,
        // for at most 5 s of wall time.
        let me = Some(std::process::id() as i32);
        let a = cpu_seconds(me).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_seconds(me).unwrap() <= a {
            assert!(t.elapsed() < Duration::from_secs(5), "no CPU time counted");
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        assert_eq!(cpu_seconds(Some(i32::MAX)), None);
    }

    #[test]
    fn unbound_forwards_everything_to_the_upstream() {
        let c = unbound_conf(
            "127.0.0.2:53".parse().unwrap(),
            "10.64.0.1".parse().unwrap(),
            std::path::Path::new("/run/x"),
        );
        assert!(c.contains("interface: 127.0.0.2@53"));
        assert!(c.contains("forward-addr: 10.64.0.1"));
        assert!(c.contains("name: \".\""));
    }
}
