//! Tunnel throughput: iperf3 from the gateway's namespace to an internet
//! host of the lab (192.0.2.80 on the ISP), through the gateway under test
//! and the lab's VPN provider, MTU 1420: TCP up, TCP down, UDP up. Each
//! gateway is measured beside the yardstick on the same path (the reference
//! gateway: Debian's wireguard-go as the client), and each with both lab
//! providers (boringtun in the harness, Debian's wireguard-go), so a slow
//! provider shows instead of passing for a slow gateway. CPU seconds per
//! Gbit for each end: the processes in the gateway's namespace (iperf3
//! excluded) and the provider (wireguard-go's process; for the built-in
//! provider, the harness process that runs it).

use std::io::BufRead;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use crate::lab::netns::NetnsError;
use crate::lab::wgserver::ProviderKind;
use crate::lab::{Lab, LabError};
use crate::model::topology::{addr, host};
use crate::poll::poll_until;
use crate::scenario::runner::Runner;

/// The iperf3 server's port on the lab's internet host.
pub const PORT: u16 = 5201;

/// One iperf3 run, as its receiver saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    pub bits_per_second: f64,
    pub bytes: u64,
}

/// Why iperf3's report gives no transfer.
#[derive(Debug, thiserror::Error)]
pub enum IperfError {
    #[error("iperf3's report is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// iperf3's own error.
    #[error("iperf3: {0}")]
    Failed(String),
    #[error("iperf3's report has no end.sum_received")]
    NoSum,
}

/// Reads iperf3's `-J` report: the receiver's sum (TCP and UDP alike).
pub fn parse_iperf(json: &str) -> Result<Transfer, IperfError> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(IperfError::NotJson)?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(IperfError::Failed(e.to_string()));
    }
    let sum = &v["end"]["sum_received"];
    match (sum["bits_per_second"].as_f64(), sum["bytes"].as_u64()) {
        (Some(bits_per_second), Some(bytes)) => Ok(Transfer {
            bits_per_second,
            bytes,
        }),
        _ => Err(IperfError::NoSum),
    }
}

/// CPU seconds used so far by the processes whose network namespace has
/// inode `ns_inode`, leaving out those named in `except` (their `comm`).
pub fn cpu_in_netns(ns_inode: u64, except: &[&str]) -> f64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) else {
            continue;
        };
        if m.ino() != ns_inode {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if except.contains(&comm.trim()) {
            continue;
        }
        total += super::dns::cpu_seconds(Some(pid)).unwrap_or(0.0);
    }
    total
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub provider: &'static str,
    pub gateway: String,
    pub test: &'static str,
    pub transfer: Transfer,
    /// CPU seconds of the gateway's end and the provider's end.
    pub cpu_gateway: f64,
    pub cpu_provider: f64,
}

impl Row {
    pub fn mbit(&self) -> f64 {
        self.transfer.bits_per_second / 1e6
    }

    /// CPU seconds per Gbit carried, for `cpu`.
    pub fn per_gbit(&self, cpu: f64) -> f64 {
        let gbit = self.transfer.bytes as f64 * 8.0 / 1e9;
        if gbit > 0.0 { cpu / gbit } else { f64::NAN }
    }
}

/// The three loads: (name, extra iperf3 arguments).
pub const TESTS: [(&str, &[&str]); 3] = [
    ("tcp up", &[]),
    ("tcp down", &["-R"]),
    ("udp up", &["-u", "-b", "0", "-l", "1300"]),
];

fn provider_name(p: ProviderKind) -> &'static str {
    match p {
        ProviderKind::Boringtun => "boringtun (lab)",
        ProviderKind::WireguardGo => "wireguard-go",
    }
}

/// A name as part of a file name: "reference (gotatun)" -> "reference-gotatun".
fn file_part(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Why a gateway's throughput could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum TunnelBenchError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("reading the {what} namespace's inode: {source}")]
    Inode {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("starting iperf3 (bash ci/setup.sh --bench installs it): {0}")]
    Server(#[source] std::io::Error),
    #[error("iperf3's server ended before it listened")]
    ServerEnded,
    #[error("running iperf3 in the gateway's namespace: {0}")]
    Client(#[source] std::io::Error),
    #[error("no traffic through {target} within 20 s (see {})", log.display())]
    NoTraffic {
        target: String,
        log: std::path::PathBuf,
    },
}

/// Starts iperf3's server for one test (`-1`) on the lab's internet host
/// and waits until it says it listens (iperf3 re-creates its listening
/// socket between tests, so a long-lived server refuses a quick next one).
pub fn start_server(lab: &Lab) -> Result<std::process::Child, TunnelBenchError> {
    let mut cmd = std::process::Command::new("iperf3");
    cmd.args(["-s", "-1", "--forceflush", "-B"])
        .arg(addr::WHOAMI.to_string())
        .args(["-p", &PORT.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    lab.ns(host::ISP)?.command(&mut cmd)?;
    let mut child = cmd.spawn().map_err(TunnelBenchError::Server)?;
    let out = child.stdout.take().expect("piped stdout");
    let mut lines = std::io::BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("Server listening") => break,
            Some(Ok(_)) => continue,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(TunnelBenchError::ServerEnded);
            }
        }
    }
    // Its later lines are not read; a thread drains them so it never blocks.
    std::thread::spawn(move || for _ in lines {});
    Ok(child)
}

/// Measures every load through the gateway `runner` starts, with the
/// lab's provider `provider`.
pub async fn measure(
    runner: &Runner<'_>,
    provider: ProviderKind,
    seconds: u64,
) -> Result<Vec<Row>, TunnelBenchError> {
    let lab = runner.lab;
    let idle = crate::model::scenario::Scenario::idle("bench-tunnel");
    let log = runner.out_dir.join(format!(
        "{}-{}.log",
        file_part(provider_name(provider)),
        file_part(runner.target.name())
    ));
    let gw = runner.start_idle_gateway_async(&idle, &log).await?;
    let gw_ns = lab.ns(host::GW)?;
    // Ready when traffic flows: whoami sees the VPN exit (a handshake alone
    // comes before a command gateway's routes).
    let flows = poll_until(Duration::from_secs(20), Duration::ZERO, || async move {
        match crate::probe::whoami_sees_vpn_exit(gw_ns, Duration::from_millis(300)).await {
            Ok(_) => ControlFlow::Break(()),
            Err(_) => ControlFlow::Continue(()),
        }
    })
    .await;
    if flows.is_err() {
        gw.stop().await;
        return Err(TunnelBenchError::NoTraffic {
            target: runner.target.name().to_string(),
            log,
        });
    }
    let inode = |what, ns: &crate::lab::netns::Netns| {
        ns.inode()
            .map_err(|source| TunnelBenchError::Inode { what, source })
    };
    let gw_inode = inode("gateway's", gw_ns)?;
    let vpn_inode = inode("provider's", lab.ns(host::VPN)?)?;
    let me = Some(std::process::id() as i32);
    let provider_cpu = || match provider {
        ProviderKind::WireguardGo => cpu_in_netns(vpn_inode, &[]),
        ProviderKind::Boringtun => super::dns::cpu_seconds(me).unwrap_or(0.0),
    };
    let mut rows = Vec::new();
    for (test, extra) in TESTS {
        let mut std_cmd = std::process::Command::new("iperf3");
        std_cmd
            .args(["-c", &addr::WHOAMI.to_string(), "-p", &PORT.to_string()])
            .args([
                "-t",
                &seconds.to_string(),
                "-J",
                "--connect-timeout",
                "3000",
            ])
            .args(extra)
            .stderr(std::process::Stdio::null());
        gw_ns.command(&mut std_cmd)?;
        let mut server = start_server(lab)?;
        let (g0, p0) = (cpu_in_netns(gw_inode, &["iperf3"]), provider_cpu());
        let out = tokio::process::Command::from(std_cmd)
            .output()
            .await
            .map_err(TunnelBenchError::Client)?;
        let (g1, p1) = (cpu_in_netns(gw_inode, &["iperf3"]), provider_cpu());
        let _ = server.kill();
        let _ = server.wait();
        let transfer = match parse_iperf(&String::from_utf8_lossy(&out.stdout)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{test} through {}: {e}", runner.target.name());
                continue;
            }
        };
        rows.push(Row {
            provider: provider_name(provider),
            gateway: runner.target.name().to_string(),
            test,
            transfer,
            cpu_gateway: g1 - g0,
            cpu_provider: p1 - p0,
        });
    }
    gw.stop().await;
    Ok(rows)
}

/// Prints the table, each gateway's figures beside the yardstick's.
pub fn print(rows: &[Row], seconds: u64) {
    println!(
        "Tunnel throughput, iperf3 {seconds} s per load from the gateway's namespace to {} through the lab (MTU 1420):",
        addr::WHOAMI
    );
    println!(
        "{:<16} {:<28} {:<9} {:>9} {:>16} {:>17}",
        "provider", "gateway", "load", "Mbit/s", "gw CPU s/Gbit", "prov CPU s/Gbit"
    );
    for r in rows {
        println!(
            "{:<16} {:<28} {:<9} {:>9.0} {:>16.2} {:>17.2}",
            r.provider,
            r.gateway,
            r.test,
            r.mbit(),
            r.per_gbit(r.cpu_gateway),
            r.per_gbit(r.cpu_provider)
        );
    }
    // Ratios against each yardstick on the same provider and load.
    for r in rows.iter().filter(|r| !r.gateway.starts_with(REFERENCE)) {
        for y in rows.iter().filter(|y| {
            y.gateway.starts_with(REFERENCE) && y.provider == r.provider && y.test == r.test
        }) {
            println!(
                "{} / {}, {} provider, {}: {:.2}x throughput, {:.2}x CPU per Gbit",
                r.gateway,
                y.gateway,
                r.provider,
                r.test,
                r.mbit() / y.mbit(),
                r.per_gbit(r.cpu_gateway) / y.per_gbit(y.cpu_gateway)
            );
        }
    }
}

/// The yardsticks' names start with this; every other row is compared with them.
const REFERENCE: &str = "reference";

/// Where the gotatun yardstick is looked for: `LEAKHOUND_GOTATUN`, else beside
/// this executable (`ci/setup.sh --bench` builds it into `target/release`).
pub fn gotatun_exe(exe: &std::path::Path) -> Option<std::path::PathBuf> {
    match std::env::var_os("LEAKHOUND_GOTATUN") {
        Some(p) => Some(std::path::PathBuf::from(p)).filter(|p| p.is_file()),
        None => super::beside(exe, "leakhound-gotatun"),
    }
}

/// The targets measured: leakhound's gateway (`exe`, see
/// [`super::shipped_gateway`]) and the yardsticks, the reference
/// gateway script (wireguard-tools and nftables) on Debian's wireguard-go and,
/// where it is built, on gotatun. A yardstick that cannot run is named, not
/// silently left out.
pub fn targets(exe: std::path::PathBuf) -> Vec<Arc<dyn crate::target::GatewayTarget>> {
    let gotatun = gotatun_exe(&exe);
    let mut t: Vec<Arc<dyn crate::target::GatewayTarget>> = vec![Arc::new(
        crate::target::process::Builtin::new("leakhound gateway", exe),
    )];
    let script = std::path::Path::new("docker/reference/wg-quick-gw.sh");
    if !script.exists() {
        eprintln!(
            "{} not found (run from the repository): no yardstick",
            script.display()
        );
        return t;
    }
    t.push(Arc::new(crate::target::process::Command::new(
        &format!("{REFERENCE} (wireguard-go)"),
        vec![script.display().to_string()],
        Default::default(),
    )));
    match gotatun {
        Some(g) => t.push(Arc::new(crate::target::process::Command::new(
            &format!("{REFERENCE} (gotatun)"),
            vec![
                script.display().to_string(),
                "--userspace".into(),
                g.display().to_string(),
            ],
            Default::default(),
        ))),
        None => eprintln!(
            "gotatun yardstick not built (ci/setup.sh --bench builds target/release/leakhound-gotatun): measured without it"
        ),
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receivers_sum_is_read_and_errors_are_reported() {
        let ok = r#"{"end":{"sum_sent":{"bits_per_second":2e8,"bytes":100},
            "sum_received":{"bits_per_second":1.5e8,"bytes":93750000}}}"#;
        let t = parse_iperf(ok).unwrap();
        assert_eq!(t.bits_per_second, 1.5e8);
        assert_eq!(t.bytes, 93_750_000);
        let e = |json: &str| parse_iperf(json).unwrap_err().to_string();
        assert_eq!(
            e(r#"{"error":"unable to connect to server"}"#),
            "iperf3: unable to connect to server"
        );
        assert_eq!(e("{}"), "iperf3's report has no end.sum_received");
        let no_traffic = TunnelBenchError::NoTraffic {
            target: "leakhound gateway".into(),
            log: "out/boringtun-leakhound-gateway.log".into(),
        };
        assert_eq!(
            no_traffic.to_string(),
            "no traffic through leakhound gateway within 20 s (see out/boringtun-leakhound-gateway.log)"
        );
        assert!(
            e("not json").starts_with("iperf3's report is not JSON: expected "),
            "{}",
            e("not json")
        );
    }

    #[test]
    fn names_become_file_names() {
        assert_eq!(file_part("reference (gotatun)"), "reference-gotatun");
        assert_eq!(file_part("boringtun (lab)"), "boringtun-lab");
        assert_eq!(file_part("leakhound gateway"), "leakhound-gateway");
    }

    #[test]
    fn cpu_per_gbit_divides_by_what_was_carried() {
        let r = Row {
            provider: "p",
            gateway: "g".into(),
            test: "tcp up",
            transfer: Transfer {
                bits_per_second: 1e9,
                bytes: 250_000_000,
            },
            cpu_gateway: 1.0,
            cpu_provider: 0.5,
        };
        assert_eq!(r.per_gbit(r.cpu_gateway), 0.5);
        assert_eq!(r.mbit(), 1000.0);
    }

    #[test]
    fn this_process_is_counted_in_its_own_namespace() {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_in_netns(ino, &[]) > 0.0);
        assert_eq!(cpu_in_netns(1, &[]), 0.0);
    }
}
