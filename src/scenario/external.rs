//! Independent clients: where `kdig` (knot-dnsutils) and `curl` are
//! installed, DNS, DoT and DoH steps also ask through them, inside the same
//! lab host, so a verdict never rests on leakhound's own client alone.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::lab::netns::Netns;

/// What an external client reported.
#[derive(Debug, Clone, PartialEq)]
pub struct External {
    /// The command line, for the step log.
    pub command: String,
    /// True when it got an answer with an address (kdig) or a successful
    /// transfer (curl).
    pub answered: bool,
    pub output: String,
}

/// Why a step that needs `tool` is skipped when it is missing.
pub fn missing(tool: &str) -> String {
    let package = if tool == "kdig" {
        "knot-dnsutils"
    } else {
        tool
    };
    format!(
        "{tool} is not installed: the verdict needs an independent client beside leakhound's own (bash ci/setup.sh installs {package})"
    )
}

pub fn available(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg(if tool == "kdig" { "-V" } else { "--version" })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

async fn run_in(
    ns: &Netns,
    program: &str,
    args: &[String],
    within: Duration,
) -> std::io::Result<(bool, String)> {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ns.command(&mut cmd).map_err(std::io::Error::other)?;
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(within, cmd.output())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text.trim().to_string()))
}

/// kdig's arguments for an A query of `name` to `server`, over TLS when
/// `tls` gives the CA file and the certificate's name.
pub fn kdig_args(server: SocketAddr, name: &str, tls: Option<(&Path, &str)>) -> Vec<String> {
    let mut a = vec![
        format!("@{}", server.ip()),
        "-p".into(),
        server.port().to_string(),
        "+short".into(),
        "+time=2".into(),
        "+retry=0".into(),
    ];
    if let Some((ca, host)) = tls {
        a.push("+tls".into());
        a.push(format!("+tls-ca={}", ca.display()));
        a.push(format!("+tls-hostname={host}"));
    }
    a.push(name.to_string());
    a.push("A".into());
    a
}

/// Asks with kdig; answered when it printed at least one address.
pub async fn kdig(
    ns: &Netns,
    server: SocketAddr,
    name: &str,
    tls: Option<(&Path, &str)>,
) -> std::io::Result<External> {
    let args = kdig_args(server, name, tls);
    let (_, output) = run_in(ns, "kdig", &args, Duration::from_secs(5)).await?;
    let answered = output
        .lines()
        .any(|l| l.trim().parse::<std::net::IpAddr>().is_ok());
    Ok(External {
        command: format!("kdig {}", args.join(" ")),
        answered,
        output,
    })
}

/// curl resolving `url`'s host through the DoH server `doh_url` (trusting
/// `ca`), then fetching `url`; answered when the transfer succeeded.
pub async fn curl_doh(
    ns: &Netns,
    doh_url: &str,
    ca: &Path,
    url: &str,
) -> std::io::Result<External> {
    let args: Vec<String> = vec![
        "-sS".into(),
        "--max-time".into(),
        "3".into(),
        "--cacert".into(),
        ca.display().to_string(),
        "--doh-url".into(),
        doh_url.into(),
        url.into(),
    ];
    let (ok, output) = run_in(ns, "curl", &args, Duration::from_secs(5)).await?;
    Ok(External {
        command: format!("curl {}", args.join(" ")),
        answered: ok,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdig_arguments_ask_over_tls_with_the_lab_ca() {
        let a = kdig_args(
            "192.0.2.43:853".parse().unwrap(),
            "x.probe.lab.",
            Some((Path::new("/run/ca.pem"), "dot.lab")),
        );
        assert_eq!(
            a.join(" "),
            "@192.0.2.43 -p 853 +short +time=2 +retry=0 +tls +tls-ca=/run/ca.pem +tls-hostname=dot.lab x.probe.lab. A"
        );
        let a = kdig_args("127.0.0.1:53".parse().unwrap(), "y.lab.", None);
        assert!(!a.iter().any(|s| s.starts_with("+tls")));
    }
}
