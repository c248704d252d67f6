//! `leakhound-gotatun [-f] IFACE`: gotatun (Mullvad's maintained boringtun fork, on crates.io) as a
//! userspace WireGuard interface, for `leakhound bench tunnel` to measure beside Debian's
//! wireguard-go. It behaves like `wireguard-go -f IFACE`: it creates the TUN interface IFACE,
//! serves the cross-platform configuration protocol on `/var/run/wireguard/IFACE.sock` (so `wg
//! setconf` configures it), and runs in the foreground until SIGTERM or SIGINT. The reference
//! gateway script (`docker/reference/wg-quick-gw.sh`) picks it with `WG_USERSPACE`.
//!
//! Nothing of leakhound's own gateway uses it; it is a yardstick, built only by
//! `ci/setup.sh --bench`.

use anyhow::{Context, anyhow, bail};
use gotatun::device::{DeviceBuilder, uapi::UapiServer};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> anyhow::Result<()> {
    // `-f` (foreground) is accepted for wireguard-go's command line; it always is.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "-f").collect();
    let [iface] = args.as_slice() else {
        bail!(
            "usage: leakhound-gotatun [-f] IFACE (a userspace WireGuard interface configured by wg)"
        );
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("LOG_LEVEL"))
        .with_writer(std::io::stderr)
        .init();
    // gotatun's own tasks share the runtime; the worker count follows the machine, as
    // wireguard-go's goroutines do.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(iface))
}

async fn run(iface: &str) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    // eyre's reports do not implement std::error::Error: they are carried as text.
    let uapi = UapiServer::default_unix_socket(iface, None, None)
        .map_err(|e| anyhow!("configuration socket for {iface}: {e:#}"))?;
    let mut device = DeviceBuilder::new()
        .with_default_udp()
        .create_tun(iface)
        .with_context(|| format!("creating TUN interface {iface}"))?
        .with_uapi(uapi)
        .build()
        .await
        .with_context(|| format!("starting the WireGuard device on {iface}"))?;
    eprintln!("leakhound-gotatun: {iface} up, configure it with wg");
    tokio::select! {
        () = device.wait() => bail!("gotatun stopped on an unrecoverable error"),
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    device.stop().await;
    let _ = std::fs::remove_file(format!("/var/run/wireguard/{iface}.sock"));
    Ok(())
}
