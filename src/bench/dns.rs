//! DNS load: `concurrency` clients in one namespace, each sending a query
//! and waiting for its answer, for a fixed time. Either every query asks the
//! same name (answered from cache after the first) or a fresh one (every
//! query goes upstream through the tunnel). Also what `bench dns` compares:
//! the gateway's upstream kinds ([`Transport`]), unbound's configuration
//! forwarding to the same server ([`unbound_conf`]), and the table with the
//! ratios to unbound ([`table`]).

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

/// The gateway's upstream in a measurement: the three kinds its resolver
/// speaks, each to the lab's server through the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain DNS to the provider's resolver (10.64.0.1:53).
    Plain,
    /// DNS over TLS to the provider's DoT server (10.64.0.1:853).
    Dot,
    /// DNS over HTTPS to the lab's DoH server (192.0.2.43:443).
    Doh,
}

/// The provider's DoT server's certificate name.
pub const DOT_NAME: &str = "dns.provider.lab";

impl Transport {
    pub const ALL: [Transport; 3] = [Transport::Plain, Transport::Dot, Transport::Doh];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Plain => "plain",
            Transport::Dot => "dot",
            Transport::Doh => "doh",
        }
    }

    /// The gateway's variables for this upstream (`{lab_ca}` is filled in
    /// by the runner). The lab's DNS_ADDRESS (a retired name that would
    /// make any type plain) is unset.
    pub fn gateway_env(self) -> Vec<(&'static str, String)> {
        use crate::model::topology::addr;
        let mut env = vec![("DNS_ADDRESS", String::new())];
        match self {
            Transport::Plain => env.extend([
                ("DNS_UPSTREAM_RESOLVER_TYPE", "plain".to_string()),
                (
                    "DNS_UPSTREAM_PLAIN_ADDRESSES",
                    format!("{}:53", addr::TUNNEL_SERVER),
                ),
            ]),
            Transport::Dot => env.extend([
                ("DNS_UPSTREAM_RESOLVER_TYPE", "dot".to_string()),
                ("DOT_SERVER_ADDRESS", addr::TUNNEL_SERVER.to_string()),
                ("DOT_SERVER_NAME", DOT_NAME.to_string()),
                ("DOT_CA_FILE", "{lab_ca}".to_string()),
            ]),
            Transport::Doh => env.extend([
                ("DNS_UPSTREAM_RESOLVER_TYPE", "doh".to_string()),
                ("DOH_SERVER_ADDRESS", addr::DOH.to_string()),
                ("DOH_SERVER_URL", "https://doh.lab/dns-query".to_string()),
                ("DOH_CA_FILE", "{lab_ca}".to_string()),
            ]),
        }
        env
    }

    /// How unbound forwards to the same server (`ca`: the lab CA's file),
    /// if it can: unbound speaks no DoH upstream.
    pub fn unbound_forward(self, ca: &std::path::Path) -> Option<Forward> {
        use crate::model::topology::addr;
        match self {
            Transport::Plain => Some(Forward::Plain(addr::TUNNEL_SERVER.into())),
            Transport::Dot => Some(Forward::Tls {
                addr: addr::TUNNEL_SERVER.into(),
                name: DOT_NAME.to_string(),
                ca: ca.to_path_buf(),
            }),
            Transport::Doh => None,
        }
    }
}

/// Where unbound forwards everything.
#[derive(Debug, Clone, PartialEq)]
pub enum Forward {
    /// Plain DNS on port 53.
    Plain(std::net::IpAddr),
    /// DNS over TLS on port 853, the certificate checked for `name`
    /// against `ca`.
    Tls {
        addr: std::net::IpAddr,
        name: String,
        ca: std::path::PathBuf,
    },
}

/// unbound's configuration: listen on `listen`, forward everything as
/// `forward` says, cache on, no chroot or syslog (it runs inside the lab).
pub fn unbound_conf(listen: SocketAddr, forward: &Forward, dir: &std::path::Path) -> String {
    let (tls_bundle, forward_lines) = match forward {
        Forward::Plain(ip) => (String::new(), format!("  forward-addr: {ip}\n")),
        Forward::Tls { addr, name, ca } => (
            format!("  tls-cert-bundle: \"{}\"\n", ca.display()),
            format!("  forward-tls-upstream: yes\n  forward-addr: {addr}@853#{name}\n"),
        ),
    };
    format!(
        "server:\n  interface: {ip}@{port}\n  access-control: 127.0.0.0/8 allow\n  do-ip6: no\n  chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  do-not-query-localhost: no\n  num-threads: 1\n{tls_bundle}forward-zone:\n  name: \".\"\n{forward_lines}",
        ip = listen.ip(),
        port = listen.port(),
        dir = dir.display(),
    )
}

/// Who answered in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// The gateway's own resolver.
    Ours,
    /// unbound beside it (same namespace, same upstream server, same
    /// tunnel).
    Unbound,
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Row {
    pub transport: Transport,
    pub resolver: Resolver,
    pub names: Names,
    pub result: LoadResult,
    /// CPU seconds used during the load: the resolver's process, for
    /// unbound plus the gateway's (it carries unbound's upstream queries
    /// through the tunnel).
    pub cpu: Option<f64>,
}

impl Row {
    /// CPU microseconds per answered query.
    pub fn cpu_per_query(&self) -> Option<f64> {
        self.cpu
            .map(|c| c * 1e6 / self.result.answered.max(1) as f64)
    }
}

/// Ours / unbound's for the same upstream and names: (queries per second,
/// CPU per query), `None` without an unbound row.
pub fn ratios(rows: &[Row], ours: &Row) -> Option<(f64, Option<f64>)> {
    let theirs = rows.iter().find(|r| {
        r.resolver == Resolver::Unbound && r.transport == ours.transport && r.names == ours.names
    })?;
    let qps = ours.result.qps() / theirs.result.qps().max(1e-9);
    let cpu = ours
        .cpu_per_query()
        .zip(theirs.cpu_per_query())
        .filter(|(_, t)| *t > 0.0)
        .map(|(o, t)| o / t);
    Some((qps, cpu))
}

/// The table `bench dns` prints: one row per measurement, and on the
/// gateway's rows the ratios to unbound's (above 1.0 is faster for
/// queries per second, below 1.0 is cheaper for CPU).
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<8} {:<10} {:<9} {:>10} {:>8} {:>8} {:>7} {:>9} {:>10} {:>10}\n",
        "upstream",
        "resolver",
        "names",
        "queries/s",
        "p50 ms",
        "p99 ms",
        "failed",
        "CPU µs/q",
        "q/s ratio",
        "CPU ratio"
    );
    for r in rows {
        let (qps_ratio, cpu_ratio) = match r.resolver {
            Resolver::Ours => match ratios(rows, r) {
                Some((q, c)) => (
                    format!("{q:.2}x"),
                    c.map(|c| format!("{c:.2}x")).unwrap_or("?".into()),
                ),
                None => ("-".into(), "-".into()),
            },
            Resolver::Unbound => (String::new(), String::new()),
        };
        let line = format!(
            "{:<8} {:<10} {:<9} {:>10.0} {:>8.3} {:>8.3} {:>7} {:>9} {:>10} {:>10}",
            r.transport.label(),
            match r.resolver {
                Resolver::Ours => "leakhound",
                Resolver::Unbound => "unbound",
            },
            match r.names {
                Names::Cached => "cached",
                Names::Uncached => "uncached",
            },
            r.result.qps(),
            r.result.percentile(50).as_secs_f64() * 1000.0,
            r.result.percentile(99).as_secs_f64() * 1000.0,
            r.result.failed,
            r.cpu_per_query()
                .map(|c| format!("{c:.1}"))
                .unwrap_or("?".into()),
            qps_ratio,
            cpu_ratio,
        );
        // unbound's rows have no ratios: no trailing blanks.
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
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
    fn unbound_forwards_everything_to_the_upstream_plain_or_over_tls() {
        let dir = std::path::Path::new("/run/x");
        let listen = "127.0.0.2:53".parse().unwrap();
        let c = unbound_conf(listen, &Forward::Plain("10.64.0.1".parse().unwrap()), dir);
        assert!(c.contains("interface: 127.0.0.2@53"));
        assert!(c.contains("forward-addr: 10.64.0.1\n"));
        assert!(c.contains("name: \".\""));
        assert!(!c.contains("tls"));
        let tls = Transport::Dot
            .unbound_forward(std::path::Path::new("/run/x/ca.pem"))
            .unwrap();
        let c = unbound_conf(listen, &tls, dir);
        assert!(c.contains("forward-tls-upstream: yes"));
        assert!(c.contains("forward-addr: 10.64.0.1@853#dns.provider.lab"));
        assert!(c.contains("tls-cert-bundle: \"/run/x/ca.pem\""));
        // tls-cert-bundle is a server option: before the forward zone.
        assert!(c.find("tls-cert-bundle") < c.find("forward-zone"));
        assert_eq!(Transport::Doh.unbound_forward(dir), None);
    }

    #[test]
    fn every_transport_names_its_type_and_unsets_the_retired_dns_address() {
        for t in Transport::ALL {
            let env = t.gateway_env();
            assert!(env.contains(&("DNS_ADDRESS", String::new())));
            assert!(env.contains(&("DNS_UPSTREAM_RESOLVER_TYPE", t.label().to_string())));
        }
        assert!(
            Transport::Dot
                .gateway_env()
                .contains(&("DOT_CA_FILE", "{lab_ca}".to_string()))
        );
    }

    fn row(transport: Transport, resolver: Resolver, names: Names, answered: u64, cpu: f64) -> Row {
        Row {
            transport,
            resolver,
            names,
            result: LoadResult {
                answered,
                failed: 0,
                elapsed: Duration::from_secs(1),
                latencies: vec![Duration::from_millis(1)],
            },
            cpu: Some(cpu),
        }
    }

    #[test]
    fn the_ratios_compare_the_same_upstream_and_names_only() {
        use Names::*;
        use Resolver::*;
        use Transport::*;
        let rows = vec![
            row(Plain, Ours, Uncached, 30_000, 0.6),
            row(Dot, Ours, Uncached, 10_000, 0.5),
            row(Doh, Ours, Uncached, 5_000, 0.5),
            row(Plain, Unbound, Uncached, 20_000, 0.8),
            row(Dot, Unbound, Uncached, 20_000, 0.8),
        ];
        // 30k/20k q/s; 20 µs against 40 µs per query.
        let (q, c) = ratios(&rows, &rows[0]).unwrap();
        assert!((q - 1.5).abs() < 1e-9 && (c.unwrap() - 0.5).abs() < 1e-9);
        let (q, c) = ratios(&rows, &rows[1]).unwrap();
        assert!((q - 0.5).abs() < 1e-9 && (c.unwrap() - 1.25).abs() < 1e-9);
        assert!(ratios(&rows, &rows[2]).is_none(), "no unbound over DoH");
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].contains("q/s ratio") && lines[0].contains("CPU ratio"));
        assert!(lines[1].starts_with("plain") && lines[1].ends_with("1.50x      0.50x"));
        assert!(lines[2].contains("0.50x") && lines[2].contains("1.25x"));
        assert!(lines[3].starts_with("doh") && lines[3].trim_end().ends_with("-          -"));
        assert!(lines[4].contains("unbound") && !lines[4].contains('x'));
        assert!(
            lines[4].ends_with("40.0"),
            "no trailing blanks: {:?}",
            lines[4]
        );
    }
}
