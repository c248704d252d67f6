//! `bench`: benchmarks, printed, never asserted: `bench dns` loads the
//! gateway's resolver (beside unbound on the same path), `bench tunnel`
//! measures throughput and CPU beside the yardsticks, `bench prove`
//! times one proof of the gateway's ruleset ([`leakhound::bench`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use leakhound::lab::services::{LabKeys, LabServices};
use leakhound::lab::wgserver::ProviderKind;
use leakhound::lab::{self, Lab, netns};
use leakhound::model::topology::Topology;
use leakhound::scenario::model::Scenario;
use leakhound::scenario::runner::Runner;

use super::args::{BenchArgs, BenchWhat};
use super::{harness_tracing, lab_runtime};

/// `leakhound bench dns|tunnel`.
pub(crate) fn bench(args: BenchArgs) -> Result<()> {
    harness_tracing(false);
    match args.what {
        BenchWhat::Dns => bench_dns(&args),
        BenchWhat::Tunnel => bench_tunnel(args.seconds),
        BenchWhat::Prove => bench_prove(args.runs),
    }
}

/// `bench prove`: the built-in gateway started in a lab, its tunnel up;
/// then its namespace proven `runs` times against the lab's policy,
/// beside `nft -j list ruleset` alone ([`leakhound::bench::prove`]).
fn bench_prove(runs: usize) -> Result<()> {
    let rt = lab_runtime("bench")?;
    rt.block_on(async {
        let (lab, services) = lab_with_services(ProviderKind::Boringtun, &lab::new_run_id()).await?;
        let out = netns::run_files(lab.run_id());
        let gateway_exe = leakhound::bench::shipped_gateway(std::env::current_exe()?);
        let profile = leakhound::profile::Profile::seed_ref();
        let runner = Runner::builder(
            &lab,
            profile,
            &services,
            Arc::new(leakhound::target::process::Builtin::new("builtin", gateway_exe)),
        )
        .out_dir(out.clone())
        .build();
        let idle = Scenario::idle("bench");
        let gw = runner
            .start_idle_gateway_async(&idle, &out.join("gateway-prove.log"))
            .await?;
        let policy = leakhound_prove::Policy {
            endpoints: vec![(
                std::net::IpAddr::V4(leakhound::model::topology::addr::VPN_ENDPOINT),
                leakhound::model::topology::addr::VPN_ENDPOINT_PORT,
            )],
            allow: profile.allowed.clone(),
        };
        let ns = lab.ns(leakhound::model::topology::host::GW)?.try_clone()?;
        let figures = tokio::task::spawn_blocking(move || {
            leakhound::bench::prove::measure(&ns, "eth0", &policy, runs)
        })
        .await?;
        gw.stop().await;
        let f = figures?;
        println!(
            "prove on the built-in gateway's live namespace (lab policy; {} rules; answer: {}):",
            f.rules, f.answer
        );
        print!("{}", leakhound::bench::prove::table(&f));
        println!(
            "(each run reads the state afresh, as `leakhound prove --netns` does; the yardstick is what any reader of the ruleset pays)"
        );
        Ok(())
    })
}

/// `bench dns`: the gateway's resolver under load from its own namespace,
/// cached and uncached, with each upstream kind (plain, DoT, DoH), beside
/// unbound in the same namespace forwarding to the same server (plain and
/// over TLS; unbound has no DoH upstream) through the same tunnel.
fn bench_dns(args: &BenchArgs) -> Result<()> {
    use leakhound::bench::dns::{
        Names, Resolver, Row, Transport, cpu_seconds, load, table, wait_answering,
    };
    let rt = lab_runtime("bench")?;
    rt.block_on(async {
        let (lab, services) = lab_with_services(ProviderKind::Boringtun, &lab::new_run_id()).await?;
        let run_id = lab.run_id().to_string();
        let out = netns::run_files(&run_id);
        // Its resident memory is then its own, not the harness's code pages.
        let gateway_exe = leakhound::bench::shipped_gateway(std::env::current_exe()?);
        let ns = lab.ns(leakhound::model::topology::host::GW)?;
        let ours: std::net::SocketAddr = "127.0.0.1:53".parse()?;
        let unbound_ok = std::process::Command::new("unbound")
            .arg("-V")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !unbound_ok {
            eprintln!("unbound is not installed (apt-get install unbound): no yardstick");
        }
        let dur = Duration::from_secs(args.seconds);
        let idle = Scenario::idle("bench");
        let mut rows: Vec<Row> = Vec::new();
        let mut memory = Vec::new();
        for transport in Transport::ALL {
            let runner = Runner::builder(
                &lab,
                leakhound::profile::Profile::seed_ref(),
                &services,
                Arc::new(leakhound::target::process::Builtin::new("builtin", gateway_exe.clone())),
            )
            .out_dir(out.clone())
            .env_overrides(transport.gateway_env())
            // A saturating load may starve the health checks; a restart of
            // the tunnel would cut the load short.
            .env_overrides([("HEALTH_RESTART_VPN", "off")])
            .build();
            let log = out.join(format!("gateway-{}.log", transport.label()));
            let gw = runner.start_idle_gateway_async(&idle, &log).await?;
            // Answering means the tunnel is up and the upstream reached.
            if !wait_answering(ns, ours, Duration::from_secs(20)).await {
                gw.stop().await;
                bail!(
                    "the gateway's resolver ({} upstream) did not answer within 20 s (see {})",
                    transport.label(),
                    log.display()
                );
            }
            let gw_pid = gw.pid().map(|p| p.as_raw());
            let idle_rss = proc_status_kb(gw_pid, "VmRSS:");
            for names in [Names::Cached, Names::Uncached] {
                let before = cpu_seconds(gw_pid);
                let result = load(ns, ours, names, args.concurrency, dur).await?;
                let cpu = cpu_seconds(gw_pid).zip(before).map(|(b, a)| b - a);
                rows.push(Row { transport, resolver: Resolver::Ours, names, result, cpu });
            }
            memory.push((
                transport,
                idle_rss,
                proc_status_kb(gw_pid, "VmHWM:"),
                proc_status_kb(gw_pid, "RssAnon:"),
            ));
            if unbound_ok && let Some(forward) = transport.unbound_forward(&lab.ca_file()) {
                match unbound_rows(&lab, &out, &forward, gw_pid, args).await {
                    Ok(r) => rows.extend(r.into_iter().map(|(names, result, cpu)| Row {
                        transport,
                        resolver: Resolver::Unbound,
                        names,
                        result,
                        cpu,
                    })),
                    Err(e) => eprintln!("unbound ({}): {e:#}; its figures are missing", transport.label()),
                }
            }
            gw.stop().await;
        }
        println!(
            "DNS from the gateway's namespace, {} clients, {} s each; upstreams through the tunnel: plain {p}:53, dot {p}:853, doh {d}:443:",
            args.concurrency,
            args.seconds,
            p = leakhound::model::topology::addr::TUNNEL_SERVER,
            d = leakhound::model::topology::addr::DOH,
        );
        print!("{}", table(&rows));
        println!(
            "(CPU: the resolver's process; for unbound also the gateway's, which carries its upstream queries through the tunnel. Ratios: ours / unbound's, same upstream, same names)"
        );
        let kb = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or("?".into());
        for (t, idle, peak, anon) in memory {
            println!(
                "gateway resident memory with the {} upstream: idle {} kB, peak under this load {} kB (anonymous after the load: {} kB; the rest is the binary's pages)",
                t.label(),
                kb(idle),
                kb(peak),
                kb(anon)
            );
        }
        println!("(the gateway: {})", gateway_exe.display());
        Ok(())
    })
}

/// A field of /proc/PID/status in kB, if it can be read.
fn proc_status_kb(pid: Option<i32>, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Kills the child when dropped (the load may fail half-way).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// unbound in the gateway's namespace forwarding as `forward` says, loaded
/// cached and uncached: (names, result, CPU of unbound and of the gateway
/// `gw_pid`, which carries its upstream queries through the tunnel).
async fn unbound_rows(
    lab: &Lab,
    out: &std::path::Path,
    forward: &leakhound::bench::dns::Forward,
    gw_pid: Option<i32>,
    args: &BenchArgs,
) -> Result<
    Vec<(
        leakhound::bench::dns::Names,
        leakhound::bench::dns::LoadResult,
        Option<f64>,
    )>,
> {
    use leakhound::bench::dns::{Names, cpu_seconds, load, unbound_conf, wait_answering};
    use leakhound::model::topology::host::GW;
    let ns = lab.ns(GW)?;
    let dir = out.join("unbound");
    std::fs::create_dir_all(&dir)?;
    let listen: std::net::SocketAddr = "127.0.0.2:53".parse()?;
    let conf = dir.join("unbound.conf");
    std::fs::write(&conf, unbound_conf(listen, forward, &dir))?;
    // The kill switch lets unbound's user out through the tunnel (the
    // gateway's restart took the rule away with its ruleset).
    lab.nft(
        GW,
        "insert rule inet leakhound output meta skuid \"unbound\" oifname \"wg0\" accept\n",
    )?;
    let mut cmd = std::process::Command::new("unbound");
    cmd.args(["-d", "-c"])
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    ns.command(&mut cmd)?;
    let child = KillOnDrop(cmd.spawn().context("starting unbound")?);
    if !wait_answering(ns, listen, Duration::from_secs(10)).await {
        bail!("unbound did not answer within 10 s");
    }
    let pids = [Some(child.0.id() as i32), gw_pid];
    let cpu = || -> Option<f64> { pids.iter().map(|p| cpu_seconds(*p)).sum() };
    let mut rows = Vec::new();
    for names in [Names::Cached, Names::Uncached] {
        let before = cpu();
        let r = load(
            ns,
            listen,
            names,
            args.concurrency,
            Duration::from_secs(args.seconds),
        )
        .await?;
        rows.push((names, r, cpu().zip(before).map(|(b, a)| b - a)));
    }
    Ok(rows)
}

/// `bench tunnel`: both lab providers, every tunnel target.
fn bench_tunnel(seconds: u64) -> Result<()> {
    use leakhound::bench::tunnel;
    let rt = lab_runtime("bench")?;
    rt.block_on(async {
        let mut rows = Vec::new();
        for provider in [ProviderKind::Boringtun, ProviderKind::WireguardGo] {
            let (lab, services) = lab_with_services(provider, &lab::new_run_id()).await?;
            // Gateway logs are kept (a failed load is explained there).
            let out = PathBuf::from("reports/bench-tunnel");
            std::fs::create_dir_all(&out)?;
            let gateway = leakhound::bench::shipped_gateway(std::env::current_exe()?);
            for target in tunnel::targets(gateway) {
                let runner = Runner::builder(
                    &lab,
                    leakhound::profile::Profile::seed_ref(),
                    &services,
                    target,
                )
                .out_dir(out.clone())
                // A saturating load starves the health checks (as it does
                // Gluetun's); a restart would cut the load short. The
                // yardsticks have no health checks at all.
                .env_overrides([("HEALTH_RESTART_VPN", "off")])
                .build();
                match tunnel::measure(&runner, provider, seconds).await {
                    Ok(r) => rows.extend(r),
                    Err(e) => eprintln!("{}: {e:#}", runner.target.name()),
                }
            }
        }
        tunnel::print(&rows, seconds);
        Ok(())
    })
}

/// A fresh lab with its services running, under run id `run_id`.
async fn lab_with_services(provider: ProviderKind, run_id: &str) -> Result<(Lab, LabServices)> {
    let lab = Lab::build(Topology::default_profile(), run_id)
        .await
        .context("building the lab")?;
    let services = LabServices::start_with(
        &lab,
        LabKeys::generate(),
        provider,
        &leakhound::lab::dependents::default_stand_ins(),
    )
    .await
    .context("starting the lab's services")?;
    Ok((lab, services))
}
