//! `bench`: benchmarks, printed, never asserted: `bench dns` loads the
//! gateway's resolver (beside unbound on the same path), `bench tunnel`
//! measures throughput and CPU beside the yardsticks
//! ([`leakhound::bench`]).

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
    }
}

/// `bench dns`: the gateway's resolver under load from its own
/// namespace, cached and uncached, beside unbound on the same path.
fn bench_dns(args: &BenchArgs) -> Result<()> {
    use leakhound::bench::dns::{Names, load, unbound_conf, wait_answering};
    let rt = lab_runtime("bench")?;
    rt.block_on(async {
        let (lab, services) = lab_with_services(ProviderKind::Boringtun, &lab::new_run_id()).await?;
        let run_id = lab.run_id().to_string();
        let out = netns::run_files(&run_id);
        // Its resident memory is then its own, not the harness's code pages.
        let gateway_exe = leakhound::bench::shipped_gateway(std::env::current_exe()?);
        let runner = Runner::builder(
            &lab,
            leakhound::profile::Profile::seed_ref(),
            &services,
            Arc::new(leakhound::target::process::Builtin::new("builtin", gateway_exe.clone())),
        )
        .out_dir(out.clone())
        .build();
        let idle = Scenario::idle("bench");
        let gw = runner.start_idle_gateway_async(&idle, &out.join("gateway.log")).await?;
        let mut status = services.wg.status.clone();
        tokio::time::timeout(Duration::from_secs(15), status.wait_for(|s| s.handshakes > 0))
            .await
            .context("no WireGuard handshake within 15 s")??;
        let ns = lab.ns(leakhound::model::topology::host::GW)?;
        let ours: std::net::SocketAddr = "127.0.0.1:53".parse()?;
        if !wait_answering(ns, ours, Duration::from_secs(10)).await {
            bail!("the gateway's resolver did not answer within 10 s (see {})", out.join("gateway.log").display());
        }
        let gw_pid = gw.pid().map(|p| p.as_raw());
        let rss = |field: &str| -> Option<u64> {
            let text = std::fs::read_to_string(format!("/proc/{}/status", gw_pid?)).ok()?;
            text.lines()
                .find(|l| l.starts_with(field))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        let idle_rss = rss("VmRSS:");
        let dur = Duration::from_secs(args.seconds);
        let mut rows = Vec::new();
        for names in [Names::Cached, Names::Uncached] {
            let cpu = leakhound::bench::dns::cpu_seconds(gw_pid);
            let r = load(ns, ours, names, args.concurrency, dur).await?;
            let cpu = leakhound::bench::dns::cpu_seconds(gw_pid).zip(cpu).map(|(b, a)| b - a);
            rows.push(("leakhound gateway resolver", names, r, cpu));
        }
        let peak_rss = rss("VmHWM:");
        let anon_rss = rss("RssAnon:");
        let unbound_ok = std::process::Command::new("unbound")
            .arg("-V")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if unbound_ok {
            // unbound in the same namespace, forwarding to the same upstream
            // through the same tunnel; the kill switch lets its user out.
            let dir = out.join("unbound");
            std::fs::create_dir_all(&dir)?;
            let listen: std::net::SocketAddr = "127.0.0.2:53".parse()?;
            let conf = dir.join("unbound.conf");
            std::fs::write(&conf, unbound_conf(listen, leakhound::model::topology::addr::TUNNEL_SERVER.into(), &dir))?;
            lab.nft(
                leakhound::model::topology::host::GW,
                "insert rule inet leakhound output meta skuid \"unbound\" oifname \"wg0\" accept\n",
            )?;
            let mut cmd = std::process::Command::new("unbound");
            cmd.args(["-d", "-c"]).arg(&conf).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
            ns.command(&mut cmd)?;
            let mut child = cmd.spawn().context("starting unbound")?;
            if wait_answering(ns, listen, Duration::from_secs(10)).await {
                // The tunnel's share of the uncached load runs in the
                // gateway: counted for unbound too.
                for names in [Names::Cached, Names::Uncached] {
                    let pids = [Some(child.id() as i32), gw_pid];
                    let before: Option<f64> = pids.iter().map(|p| leakhound::bench::dns::cpu_seconds(*p)).sum();
                    let r = load(ns, listen, names, args.concurrency, dur).await?;
                    let after: Option<f64> = pids.iter().map(|p| leakhound::bench::dns::cpu_seconds(*p)).sum();
                    rows.push(("unbound (same path)", names, r, after.zip(before).map(|(b, a)| b - a)));
                }
            } else {
                eprintln!("unbound did not answer within 10 s; its figures are missing");
            }
            let _ = child.kill();
            let _ = child.wait();
        } else {
            eprintln!("unbound is not installed (apt-get install unbound): no yardstick");
        }
        println!(
            "DNS from the gateway's namespace, {} clients, {} s each, upstream {} through the tunnel:",
            args.concurrency,
            args.seconds,
            leakhound::model::topology::addr::TUNNEL_SERVER
        );
        println!("{:<28} {:<9} {:>10} {:>9} {:>9} {:>8} {:>13}", "resolver", "names", "queries/s", "p50 ms", "p99 ms", "failed", "CPU µs/query");
        for (who, names, r, cpu) in &rows {
            println!(
                "{:<28} {:<9} {:>10.0} {:>9.3} {:>9.3} {:>8} {:>13}",
                who,
                if *names == Names::Cached { "cached" } else { "uncached" },
                r.qps(),
                r.percentile(50).as_secs_f64() * 1000.0,
                r.percentile(99).as_secs_f64() * 1000.0,
                r.failed,
                cpu.map(|c| format!("{:.1}", c * 1e6 / r.answered.max(1) as f64)).unwrap_or("?".into())
            );
        }
        println!("(CPU: the resolver's process; for unbound also the gateway's, which carries its upstream queries through the tunnel)");
        let kb = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or("?".into());
        println!(
            "gateway resident memory ({}): idle {} kB, peak under this load {} kB (of it anonymous after the load: {} kB; the rest is the binary's pages)",
            gateway_exe.display(),
            kb(idle_rss),
            kb(peak_rss),
            kb(anon_rss)
        );
        gw.stop().await;
        Ok(())
    })
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
