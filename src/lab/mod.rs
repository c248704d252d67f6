//! The lab: builds the namespaces, wires, addresses, routes and NAT of a
//! [`Topology`], hands out entry points into each host, and tears everything
//! down again (on success, error, panic and Ctrl-C: teardown is synchronous
//! and runs from `Drop`). In-lab services live in the submodules.

pub mod apps;
pub mod browser;
pub mod dependents;
pub mod detached;
pub mod dns;
pub mod echo;
pub mod encrypted_dns;
pub mod http;
pub mod natpmp_server;
pub mod news;
pub mod nzbget_rpc;
pub use leakhound_net::{netns, owned};
pub mod service_log;
pub mod services;
pub mod swarm;
pub mod tls;
pub mod uapi;
pub mod udp;
pub mod upnp;
pub mod webui;
pub mod wgserver;
pub mod whoami;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::RngExt;

use crate::model::topology::Topology;
use crate::netlink::{NetlinkError, Nl};
use netns::{Netns, NetnsError, RunLock};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("leakhound needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to build its lab")]
    NotRoot,
    #[error("could not claim run id {id}")]
    Lock {
        id: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("configuring host {host}")]
    Netlink {
        host: String,
        #[source]
        source: NetlinkError,
    },
    #[error("applying nftables rules in {host}: {source}")]
    Nft {
        host: String,
        #[source]
        source: NftError,
    },
    #[error("resetting lab host {host}: {detail}")]
    Reset {
        host: String,
        detail: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("running ip in lab host {host}: {detail}")]
    Ip {
        host: String,
        detail: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("unknown lab host {0}")]
    NoSuchHost(String),
    #[error("starting lab service {service}")]
    Service {
        service: String,
        #[source]
        source: std::io::Error,
    },
}

/// The key of the lab's "ops" role, which may `PUT /v1/vpn/status`: the
/// runner's stop-tunnel and start-tunnel use it.
pub const CONTROL_API_KEY: &str = "leakhound-lab-api-key-0001";

/// The lab gateway's control-server roles (what scenarios authenticate with).
pub const CONTROL_AUTH: &str = r#"# The lab's control-server roles.
[[roles]]
name = "monitor"
routes = ["GET /v1/publicip/ip", "GET /v1/vpn/status", "GET /v1/dns/status", "GET /v1/portforward", "GET /metrics"]
auth = "basic"
username = "lab"
password = "lab-password"

[[roles]]
name = "ops"
routes = ["PUT /v1/vpn/status", "PUT /v1/wireguard/key"]
auth = "apikey"
apikey = "leakhound-lab-api-key-0001"
"#;

/// Why `nft -f -` did not apply a ruleset.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot run nft ({0}); install nftables (ci/setup.sh does)")]
    Spawn(#[source] std::io::Error),
    #[error("writing the rules to nft: {0}")]
    Write(#[source] std::io::Error),
    #[error("waiting for nft: {0}")]
    Wait(#[source] std::io::Error),
    /// nft refused the rules: its own message.
    #[error("{0}")]
    Refused(String),
}

/// Applies an nftables ruleset (text) inside `ns` with `nft -f -`; a
/// refusal is nft's own message.
pub fn nft_in(ns: &Netns, rules: &str) -> Result<(), NftError> {
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ns.command(&mut cmd)?;
    let mut child = cmd.spawn().map_err(NftError::Spawn)?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(rules.as_bytes())
        .map_err(NftError::Write)?;
    let out = child.wait_with_output().map_err(NftError::Wait)?;
    if !out.status.success() {
        return Err(NftError::Refused(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Destroys every TCP socket in `ns` that is not listening (`ss -K state
/// connected`, through the kernel's sock_diag destroy): established,
/// closing and orphaned connections alike.
fn destroy_connected_tcp(ns: &Netns, host: &str) -> Result<(), LabError> {
    let failed = |detail: Box<dyn std::error::Error + Send + Sync>| LabError::Reset {
        host: host.to_string(),
        detail,
    };
    let mut cmd = Command::new("ss");
    cmd.args(["-K", "-t", "-n", "state", "connected"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ns.command(&mut cmd)?;
    let out = cmd
        .output()
        .map_err(|e| failed(format!("cannot run ss ({e}); install iproute2").into()))?;
    if !out.status.success() {
        return Err(failed(
            format!("ss -K: {}", String::from_utf8_lossy(&out.stderr).trim()).into(),
        ));
    }
    Ok(())
}

/// The routing table an `interfere` step's policy rule points at
/// (`rule-around-tunnel`); a host's reset empties it.
pub const INJECTED_TABLE: u32 = 7;

/// Runs `ip [flags] -batch -` with `batch` inside `ns` as part of a host's
/// reset; the error names the host, ip's own message and the batch.
fn ip_batch(ns: &Netns, host: &str, flags: &[&str], batch: &str) -> Result<(), LabError> {
    ip_batch_or(ns, flags, batch, |detail| LabError::Reset {
        host: host.to_string(),
        detail,
    })
}

/// Runs `ip [flags] -batch -` with `batch` inside `ns`; `failed` makes the
/// error from ip's own message and the batch.
fn ip_batch_or(
    ns: &Netns,
    flags: &[&str],
    batch: &str,
    failed: impl Fn(Box<dyn std::error::Error + Send + Sync>) -> LabError,
) -> Result<(), LabError> {
    let mut cmd = Command::new("ip");
    cmd.args(flags)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    ns.command(&mut cmd)?;
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot run ip ({e})").into()))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(batch.as_bytes())
        .map_err(|e| failed(e.into()))?;
    let out = child.wait_with_output().map_err(|e| failed(e.into()))?;
    if !out.status.success() {
        return Err(failed(
            format!(
                "{} (the batch was:\n{batch})",
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into(),
        ));
    }
    Ok(())
}

/// A fresh run id: six lowercase hex digits.
pub fn new_run_id() -> String {
    format!("{:06x}", rand::rng().random::<u32>() & 0xff_ffff)
}

/// The built lab. Dropping it removes every namespace it made.
pub struct Lab {
    run_id: String,
    namespaces: BTreeMap<&'static str, Netns>,
    netlink: BTreeMap<&'static str, Nl>,
    topology: Topology,
    _lock: RunLock,
    torn_down: bool,
    /// Processes that hold adopted namespaces (a container target's
    /// holder): a reset spares them.
    holders: Vec<i32>,
    /// Processes a reset spares besides the holders: the real dependents,
    /// which live as long as the lab (as they outlive a gateway restart).
    spared: std::sync::Mutex<Vec<i32>>,
    /// Wall time of `build`.
    pub build_time: Duration,
}

impl Lab {
    /// Builds `topology` under run id `run_id`. On any error, what was made so
    /// far is removed before the error is returned.
    pub async fn build(topology: Topology, run_id: &str) -> Result<Lab, LabError> {
        let lock = Self::claim(run_id)?;
        Self::build_adopting(topology, lock, BTreeMap::new()).await
    }

    /// Claims run id `run_id` for this process (the lock a later run's
    /// reaper respects). Claim it before starting anything a reaper could
    /// take for a killed run's leftovers (a holder container).
    pub fn claim(run_id: &str) -> Result<RunLock, LabError> {
        RunLock::acquire(run_id).map_err(|source| LabError::Lock {
            id: run_id.to_string(),
            source,
        })
    }

    /// Like [`Lab::build`], but the hosts in `adopt` are the network
    /// namespaces of the given processes (containers leakhound started)
    /// instead of new ones; everything else is built into them as usual.
    pub async fn build_adopting(
        topology: Topology,
        lock: RunLock,
        adopt: BTreeMap<&'static str, i32>,
    ) -> Result<Lab, LabError> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err(LabError::NotRoot);
        }
        let started = Instant::now();
        let run_id = lock.id().to_string();
        let mut lab = Lab {
            run_id: run_id.clone(),
            namespaces: BTreeMap::new(),
            netlink: BTreeMap::new(),
            topology,
            _lock: lock,
            torn_down: false,
            holders: adopt.values().copied().collect(),
            spared: Default::default(),
            build_time: Duration::ZERO,
        };
        lab.build_inner(&adopt).await?;
        lab.build_time = started.elapsed();
        tracing::info!(run = %lab.run_id, "lab built in {:?}", lab.build_time);
        Ok(lab)
    }

    async fn build_inner(&mut self, adopt: &BTreeMap<&'static str, i32>) -> Result<(), LabError> {
        let hosts = self.topology.hosts.clone();
        for h in &hosts {
            // Each host's resolv.conf, as its network would hand it out: the
            // ISP's resolver (the leak target).
            let dir = self.resolv_conf(h.name);
            let files = |source| LabError::Service {
                service: "resolv.conf".into(),
                source,
            };
            std::fs::create_dir_all(dir.parent().expect("has a parent")).map_err(files)?;
            std::fs::write(
                &dir,
                format!("nameserver {}\n", crate::model::topology::addr::ISP_DNS),
            )
            .map_err(files)?;
            let ns = match adopt.get(h.name) {
                Some(pid) => Netns::adopt(&self.ns_name(h.name), *pid)?,
                None => Netns::create(&self.ns_name(h.name))?,
            };
            // No duplicate address detection: addresses are usable at once, and
            // the lab's addresses are unique by construction (unit-tested).
            for key in [
                "net/ipv6/conf/all/accept_dad",
                "net/ipv6/conf/default/accept_dad",
                // A container's namespace may come with IPv6 switched off
                // (Docker does that without IPv6 in the daemon): the lab's
                // gateway host needs it, or the IPv6 leak tests mean nothing.
                "net/ipv6/conf/all/disable_ipv6",
                "net/ipv6/conf/default/disable_ipv6",
            ] {
                ns.sysctl(key, "0")?;
            }
            if h.forwarding {
                ns.sysctl("net/ipv4/ip_forward", "1")?;
                ns.sysctl("net/ipv6/conf/all/forwarding", "1")?;
            }
            let nl = Nl::in_netns(&ns).map_err(|source| LabError::Netlink {
                host: h.name.to_string(),
                source,
            })?;
            self.namespaces.insert(h.name, ns);
            self.netlink.insert(h.name, nl.clone());
            let nlerr = |source| LabError::Netlink {
                host: h.name.to_string(),
                source,
            };
            nl.set_up("lo").await.map_err(nlerr)?;
            for a in &h.loopback {
                nl.add_addr("lo", *a).await.map_err(nlerr)?;
            }
        }
        let dir = self.blocklist_dir();
        let files = |source| LabError::Service {
            service: "blocklists".into(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(files)?;
        for (name, text) in Self::BLOCKLISTS {
            std::fs::write(dir.join(name), text).map_err(files)?;
        }
        // The one folder a gateway under test may write to ({lab_dir}).
        let gw_dir = owned::gateway_dir(&self.run_id);
        std::fs::create_dir_all(&gw_dir).map_err(files)?;
        std::fs::write(gw_dir.join("control-auth.toml"), CONTROL_AUTH).map_err(files)?;
        let links = self.topology.links.clone();
        for l in &links {
            let (a, b) = (&l.a, &l.b);
            let a_nl = self.nl(a.host)?.clone();
            let b_nl = self.nl(b.host)?.clone();
            let b_ns = self.ns(b.host)?;
            a_nl.veth_to(a.ifname, b_ns, &b_nl, b.ifname)
                .await
                .map_err(|source| LabError::Netlink {
                    host: a.host.to_string(),
                    source,
                })?;
            for (end, nl) in [(a, &a_nl), (b, &b_nl)] {
                for addr in &end.addrs {
                    nl.add_addr(end.ifname, *addr)
                        .await
                        .map_err(|source| LabError::Netlink {
                            host: end.host.to_string(),
                            source,
                        })?;
                }
            }
        }
        for h in &hosts {
            let nl = self.nl(h.name)?.clone();
            for r in &h.routes {
                nl.replace_route(r.dst, Some(r.via), None)
                    .await
                    .map_err(|source| LabError::Netlink {
                        host: h.name.to_string(),
                        source,
                    })?;
            }
            if let Some(rules) = h.nft {
                self.nft(h.name, rules)?;
            }
        }
        Ok(())
    }

    /// Puts `host` back as the topology describes it, whatever a gateway
    /// under test (ours or anybody's) did there: every process killed,
    /// every nftables table gone, links it added deleted, policy rules back
    /// to the kernel's three, the main routing table flushed, the
    /// interfaces' addresses (and so their connected routes) and the
    /// topology's routes restored. One `ip -batch` process.
    pub async fn reset_host(&self, host: &str) -> Result<(), LabError> {
        let ns = self.ns(host)?;
        let mut spare = self.holders.clone();
        spare.extend(self.spared.lock().unwrap_or_else(|e| e.into_inner()).iter());
        let killed = netns::kill_all_in_but(ns, &spare);
        if killed > 0 {
            tracing::info!("reset {host}: killed {killed} process(es) left there");
        }
        // Sockets outlive their processes and probes: an orphaned TCP
        // connection keeps retransmitting its FIN for minutes, from the
        // tunnel's address. Destroyed before the ruleset that holds them in
        // goes, none can leak into the next scenario's wires (seen: a FIN
        // from fd00:64::2 on the underlay during the next setup).
        destroy_connected_tcp(ns, host)?;
        self.nft(host, "flush ruleset\n")?;
        let h = self
            .topology
            .host(host)
            .ok_or_else(|| LabError::NoSuchHost(host.to_string()))?
            .clone();
        let ends: Vec<(&str, Vec<ipnet::IpNet>)> = self
            .topology
            .links
            .iter()
            .flat_map(|l| [&l.a, &l.b])
            .filter(|e| e.host == host)
            .map(|e| (e.ifname, e.addrs.clone()))
            .collect();
        let nl = self.nl(host)?;
        let links = nl.link_names().await.map_err(|source| LabError::Netlink {
            host: host.to_string(),
            source,
        })?;
        // IPv6 rules and routes first (a batch has one family), then the
        // rest: links, IPv4 rules and routes, addresses, the topology's routes.
        let v6 = format!(
            "rule flush\nrule add priority 32766 lookup main\nrule add priority 32767 lookup default\n\
             route flush table main\nroute flush table {INJECTED_TABLE}\n"
        );
        let mut batch = String::new();
        for l in &links {
            if l != "lo" && !ends.iter().any(|(i, _)| i == l) {
                batch.push_str(&format!("link del dev {l}\n"));
            }
        }
        batch.push_str(&format!(
            "rule flush\nrule add priority 32766 lookup main\nrule add priority 32767 lookup default\n\
             route flush table main\nroute flush table {INJECTED_TABLE}\n"
        ));
        for (ifname, addrs) in &ends {
            batch.push_str(&format!(
                "addr flush dev {ifname}\nlink set dev {ifname} down\nlink set dev {ifname} up\n"
            ));
            for a in addrs {
                batch.push_str(&format!("addr add {a} dev {ifname}\n"));
            }
        }
        for r in &h.routes {
            batch.push_str(&format!("route replace {} via {}\n", r.dst, r.via));
        }
        ip_batch(ns, host, &["-6"], &v6)?;
        ip_batch(ns, host, &[], &batch)
    }

    /// Runs an `ip -batch` (with `flags`, e.g. `-6`) inside a lab host.
    pub fn ip_batch(&self, host: &str, flags: &[&str], batch: &str) -> Result<(), LabError> {
        ip_batch_or(self.ns(host)?, flags, batch, |detail| LabError::Ip {
            host: host.to_string(),
            detail,
        })
    }

    /// Applies an nftables ruleset (text) inside a lab host with `nft -f -`.
    pub fn nft(&self, host: &str, rules: &str) -> Result<(), LabError> {
        nft_in(self.ns(host)?, rules).map_err(|source| LabError::Nft {
            host: host.to_string(),
            source,
        })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A process in the gateway's namespace that resets leave running (a
    /// real dependent).
    pub fn spare(&self, pid: i32) {
        self.spared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pid);
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    pub fn ns_name(&self, host: &str) -> String {
        format!("{}{}-{}", netns::PREFIX, self.run_id, host)
    }

    /// The lab's blocklists (shipped in scenarios/blocklists), written for the
    /// gateway's DNS_BLOCKLIST_DIR.
    pub const BLOCKLISTS: [(&'static str, &'static str); 3] = [
        (
            "malicious.txt",
            include_str!("../../scenarios/blocklists/malicious.txt"),
        ),
        (
            "surveillance.txt",
            include_str!("../../scenarios/blocklists/surveillance.txt"),
        ),
        (
            "ads.txt",
            include_str!("../../scenarios/blocklists/ads.txt"),
        ),
    ];

    /// The lab CA's certificate (PEM), for DOT_CA_FILE.
    pub fn ca_file(&self) -> std::path::PathBuf {
        netns::run_files(&self.run_id).join("ca.pem")
    }

    pub fn blocklist_dir(&self) -> std::path::PathBuf {
        netns::run_files(&self.run_id).join("blocklists")
    }

    /// The lab's resolv.conf of `host` (what a process there would read).
    pub fn resolv_conf(&self, host: &str) -> std::path::PathBuf {
        netns::run_files(&self.run_id)
            .join(host)
            .join("resolv.conf")
    }

    pub fn ns(&self, host: &str) -> Result<&Netns, LabError> {
        self.namespaces
            .get(host)
            .ok_or_else(|| LabError::NoSuchHost(host.to_string()))
    }

    pub fn nl(&self, host: &str) -> Result<&Nl, LabError> {
        self.netlink
            .get(host)
            .ok_or_else(|| LabError::NoSuchHost(host.to_string()))
    }

    /// Removes every namespace of this run (killing processes inside them).
    /// Idempotent; also runs from `Drop`.
    pub fn teardown(&mut self) -> Duration {
        let started = Instant::now();
        if self.torn_down {
            return Duration::ZERO;
        }
        self.torn_down = true;
        self.netlink.clear();
        let names: Vec<(String, Option<u64>)> = self
            .namespaces
            .values()
            .map(|n| (n.name().to_string(), n.inode().ok()))
            .collect();
        self.namespaces.clear();
        let mut all = true;
        for (name, ino) in names {
            if let Err(e) = netns::remove(&name, ino) {
                all = false;
                tracing::error!("teardown: {}", crate::errfmt::chain(&e));
                eprintln!("leakhound: teardown: {}", crate::errfmt::chain(&e));
            }
        }
        // The records stay when something could not be removed: a later
        // reaper (or this run's lock, as it ends) removes what they name.
        if all {
            let _ = std::fs::remove_dir_all(netns::run_files(&self.run_id));
        }
        started.elapsed()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}
