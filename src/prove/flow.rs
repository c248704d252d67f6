//! What a witness needs before it can leave, made for it and taken out
//! again when dropped; nothing is sent to make either.
//!
//! * [`Flow`]: the connection a witness in conntrack state established
//!   needs: an entry put into the namespace's conntrack table (by
//!   `conntrack -I`, from conntrack-tools) with the witness's own
//!   addresses, ports or ICMP identifier, as if its peer had answered,
//!   in zone 0. Inserting fails where the namespace has that connection
//!   already, so no entry of its own is ever taken over.
//! * [`Neighbour`]: a next hop for a witness sent by a process. With no
//!   route for it on the underlay the kernel sends it on the link, and
//!   only once the destination answers ARP, which a lab or TEST-NET
//!   address never does: an entry of its own maps the destination to the
//!   link's broadcast address, so the frame is written at once. An entry
//!   the namespace already has, in any state, is left alone, and only the
//!   entry made here is removed. For a lab's namespace only (a live
//!   gateway's kernel gets nothing of this: `super::live_refusal`).
//!
//! The command lines are pure ([`insert_args`], [`delete_args`]); running
//! them is the edge.

use std::process::Command;

use leakhound_net::netns::Netns;
use leakhound_prove::Packet;

/// Why the connection or the neighbour entry could not be made.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    /// conntrack holds no connection for this kind of packet.
    #[error("conntrack keeps no connection for {0}")]
    Untrackable(String),
    #[error(
        "running `conntrack` or `ip` in the namespace (conntrack-tools, iproute2; `bash ci/setup.sh` installs them)"
    )]
    Run(#[source] std::io::Error),
    #[error(transparent)]
    Netns(#[from] leakhound_net::netns::NetnsError),
    #[error("refused: {0}")]
    Refused(String),
}

/// A connection put into a namespace's conntrack table for one witness;
/// removed on drop.
pub struct Flow<'a> {
    ns: &'a Netns,
    delete: Vec<String>,
}

/// The connection's original direction: `p`'s addresses and ports, or an
/// echo's identifier (`id`, the one the witness is written with).
fn tuple(p: &Packet, id: u16) -> Result<Vec<String>, FlowError> {
    // The family comes from the addresses (`-I` takes no `-f`).
    let v6 = p.ether_type == 0x86dd;
    let mut a: Vec<String> = vec!["-w".into(), "0".into()];
    let untrackable = || FlowError::Untrackable(p.to_string());
    match (p.l4, p.ports, p.icmp, v6) {
        (6 | 17, Some((sport, dport)), _, _) if !p.fragment => {
            a.extend([
                "-p".into(),
                if p.l4 == 6 { "tcp" } else { "udp" }.into(),
                "-s".into(),
                p.saddr.to_string(),
                "-d".into(),
                p.daddr.to_string(),
                "--sport".into(),
                sport.to_string(),
                "--dport".into(),
                dport.to_string(),
            ]);
        }
        // Echo requests: the one ICMP kind whose reply makes a connection.
        (1, _, Some((8, 0)), false) | (58, _, Some((128, 0)), true) if !p.fragment => {
            let (proto, ty) = if v6 { ("icmpv6", 128) } else { ("icmp", 8) };
            a.extend([
                "-p".into(),
                proto.into(),
                "-s".into(),
                p.saddr.to_string(),
                "-d".into(),
                p.daddr.to_string(),
                format!("--{proto}-type"),
                ty.to_string(),
                format!("--{proto}-code"),
                "0".into(),
                format!("--{proto}-id"),
                id.to_string(),
            ]);
        }
        _ => return Err(untrackable()),
    }
    Ok(a)
}

/// `conntrack -I`'s arguments for the connection `p` (written with `id`)
/// needs: its peer seen answering (SEEN_REPLY), a TCP one ESTABLISHED, for
/// a minute at most.
pub fn insert_args(p: &Packet, id: u16) -> Result<Vec<String>, FlowError> {
    let mut a = vec!["-I".to_string()];
    a.extend(tuple(p, id)?);
    if p.l4 == 6 {
        a.extend(["--state".into(), "ESTABLISHED".into()]);
    }
    a.extend(["-u".into(), "SEEN_REPLY".into(), "-t".into(), "60".into()]);
    Ok(a)
}

/// `conntrack -D`'s arguments for the same connection.
pub fn delete_args(p: &Packet, id: u16) -> Result<Vec<String>, FlowError> {
    let mut a = vec!["-D".to_string()];
    a.extend(tuple(p, id)?);
    Ok(a)
}

fn conntrack(ns: &Netns, args: &[String]) -> Result<std::process::Output, FlowError> {
    let mut cmd = Command::new("conntrack");
    cmd.args(args);
    ns.command(&mut cmd)?;
    cmd.output().map_err(FlowError::Run)
}

impl<'a> Flow<'a> {
    /// Puts the connection `p` needs into `ns`'s conntrack table.
    pub fn build(ns: &'a Netns, p: &Packet, id: u16) -> Result<Self, FlowError> {
        let insert = insert_args(p, id)?;
        let delete = delete_args(p, id)?;
        let out = conntrack(ns, &insert)?;
        if !out.status.success() {
            return Err(FlowError::Refused(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(Flow { ns, delete })
    }
}

impl Drop for Flow<'_> {
    fn drop(&mut self) {
        match conntrack(self.ns, &self.delete) {
            Ok(o) if o.status.success() => {}
            // It times out by itself within a minute (-t 60).
            Ok(o) => tracing::warn!(
                "removing the witness's connection: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => tracing::warn!("removing the witness's connection: {e}"),
        }
    }
}

/// A neighbour entry made for one witness's destination; removed on drop.
pub struct Neighbour<'a> {
    ns: &'a Netns,
    addr: std::net::IpAddr,
    dev: String,
}

fn ip(ns: &Netns, args: &[&str]) -> Result<std::process::Output, FlowError> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    ns.command(&mut cmd)?;
    cmd.output().map_err(FlowError::Run)
}

impl<'a> Neighbour<'a> {
    /// Maps `addr` to the broadcast address on `dev`, unless `ns` has an
    /// entry for it there in any state (`ip neigh add` fails then, and
    /// nothing is made: `None`).
    pub fn ensure(
        ns: &'a Netns,
        addr: std::net::IpAddr,
        dev: &str,
    ) -> Result<Option<Self>, FlowError> {
        let a = addr.to_string();
        let out = ip(
            ns,
            &[
                "neigh",
                "add",
                &a,
                "lladdr",
                BROADCAST,
                "dev",
                dev,
                "nud",
                "permanent",
            ],
        )?;
        Ok(out.status.success().then(|| Neighbour {
            ns,
            addr,
            dev: dev.to_string(),
        }))
    }
}

const BROADCAST: &str = "ff:ff:ff:ff:ff:ff";

impl Drop for Neighbour<'_> {
    fn drop(&mut self) {
        let a = self.addr.to_string();
        // Only the entry made here: still permanent, still the broadcast
        // address.
        let ours = ip(self.ns, &["neigh", "show", "to", &a, "dev", &self.dev])
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .is_some_and(|t| t.contains(BROADCAST) && t.contains("PERMANENT"));
        if !ours {
            return;
        }
        match ip(self.ns, &["neigh", "del", &a, "dev", &self.dev]) {
            Ok(o) if o.status.success() => {}
            Ok(o) => tracing::warn!(
                "removing the witness's neighbour entry {a}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => tracing::warn!("removing the witness's neighbour entry {a}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakhound_prove::Path;

    fn packet(l4: u8) -> Packet {
        Packet {
            path: Path::Output,
            ether_type: 0x0800,
            l4,
            saddr: "172.21.0.2".parse().unwrap(),
            daddr: "192.0.2.80".parse().unwrap(),
            ports: matches!(l4, 6 | 17).then_some((40000, 80)),
            icmp: (l4 == 1).then_some((8, 0)),
            tcp_flags: (l4 == 6).then_some(0x10),
            mark: 0,
            ct_state: "established",
            fragment: false,
            dscp: 0,
            iif: None,
        }
    }

    #[test]
    fn a_tcp_witness_gets_an_established_connection_with_its_own_tuple() {
        let a = insert_args(&packet(6), 7).unwrap().join(" ");
        assert_eq!(
            a,
            "-I -w 0 -p tcp -s 172.21.0.2 -d 192.0.2.80 --sport 40000 --dport 80 --state ESTABLISHED -u SEEN_REPLY -t 60"
        );
        assert_eq!(
            delete_args(&packet(6), 7).unwrap().join(" "),
            "-D -w 0 -p tcp -s 172.21.0.2 -d 192.0.2.80 --sport 40000 --dport 80"
        );
    }

    #[test]
    fn an_echo_witness_is_tracked_by_the_id_it_is_written_with() {
        let a = insert_args(&packet(1), 7).unwrap().join(" ");
        assert!(
            a.contains("-p icmp") && a.contains("--icmp-type 8") && a.contains("--icmp-id 7"),
            "{a}"
        );
    }

    #[test]
    fn what_conntrack_cannot_hold_says_so() {
        let mut p = packet(47);
        p.ports = None;
        assert!(matches!(insert_args(&p, 1), Err(FlowError::Untrackable(_))));
        let mut p = packet(17);
        p.fragment = true;
        assert!(insert_args(&p, 1).is_err());
    }
}
