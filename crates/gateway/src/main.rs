//! `leakhound-gateway`: the gateway under test on its own, for images and
//! supervisors that do not need the harness. Configured only by Gluetun's
//! environment variables (docs/gateway-variables.md lists them).
//!
//!     leakhound-gateway              run the gateway
//!     leakhound-gateway healthcheck  exit 0 if its health server says healthy

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["gateway"] => leakhound_gateway::cli::gateway_main(),
        ["healthcheck"] | ["gateway", "healthcheck"] => leakhound_gateway::cli::healthcheck_main(),
        ["hold"] => leakhound_gateway::cli::hold_main(),
        ["-V" | "--version"] => {
            println!(
                "leakhound-gateway {} (commit {})",
                env!("CARGO_PKG_VERSION"),
                env!("LEAKHOUND_COMMIT")
            );
            ExitCode::SUCCESS
        }
        ["-h" | "--help"] => {
            println!(
                "leakhound-gateway: a Gluetun-compatible WireGuard gateway, configured by\n\
                 Gluetun's environment variables (VPN_ENDPOINT_IP, WIREGUARD_PRIVATE_KEY, ...).\n\n\
                 usage:\n  leakhound-gateway              run the gateway until SIGTERM\n  \
                 leakhound-gateway healthcheck  exit 0 if its health server says healthy, 1 if not\n  \
                 leakhound-gateway hold         do nothing until SIGTERM (holds a container's network\n  \
                 \x20                              namespace for the gateways that join it, as a pause container does)\n  \
                 leakhound-gateway --version    its version and the commit it was built from"
            );
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("leakhound-gateway: unknown arguments {other:?} (try --help)");
            ExitCode::from(2)
        }
    }
}
