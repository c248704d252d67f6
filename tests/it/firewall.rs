//! The kill switch against a real kernel, in a scratch namespace (root).

use leakhound::gateway::firewall::{self, FirewallPolicy, SubnetPorts};
use leakhound::lab::netns::{self, Netns};
use leakhound::lab::new_run_id;

fn policy(debug: bool) -> FirewallPolicy {
    FirewallPolicy {
        underlay: "eth0".into(),
        tunnel: "wg0".into(),
        tunnel_addrs: vec!["10.64.0.2".parse().unwrap(), "fd00:64::2".parse().unwrap()],
        endpoint: "203.0.113.10:51820".parse().unwrap(),
        outbound_subnets: vec![
            "172.21.0.0/16".parse().unwrap(),
            "2001:db8:21::/64".parse().unwrap(),
        ],
        input_ports: vec![8000],
        vpn_input_ports: vec![51413],
        subnet_ports: vec![SubnetPorts {
            subnet: "192.168.10.0/24".parse().unwrap(),
            ports: vec![8080, 9696, 6789],
        }],
        debug,
        dns_upstreams: vec!["10.64.0.1:853".parse().unwrap()],
        dns_direct: Vec::new(),
        doh_addresses: vec!["1.1.1.1".parse().unwrap(), "2620:fe::fe".parse().unwrap()],
        redirects: vec![],
    }
}

/// With VPN_PORT_FORWARDING_LISTENING_PORT: forwarded 40000 to local 6881.
fn redirecting() -> FirewallPolicy {
    FirewallPolicy {
        vpn_input_ports: vec![40000],
        redirects: vec![(40000, 6881)],
        ..policy(false)
    }
}

/// Removes the scratch namespace even when an assertion fails.
/// A scratch namespace and its run's claim (every pin of an lh- name is
/// made under a held run lock, so no concurrent reaper takes it).
struct Scratch(Netns, #[allow(dead_code)] netns::RunLock);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = netns::remove(self.0.name(), self.0.inode().ok());
    }
}

/// A namespace with an `eth0` (one end of a veth pair) for the egress hook.
fn scratch() -> Scratch {
    assert!(nix::unistd::Uid::effective().is_root(), "needs root");
    let id = new_run_id();
    let lock = netns::RunLock::acquire(&id).unwrap();
    let ns = Netns::create(&format!("lh-{id}-fw")).unwrap();
    let st = ns
        .run(|| {
            std::process::Command::new("ip")
                .args(["link", "add", "eth0", "type", "veth", "peer", "name", "p0"])
                .status()
        })
        .unwrap()
        .unwrap();
    assert!(st.success());
    Scratch(ns, lock)
}

#[test]
fn the_policy_applies_verifies_and_reapplies_atomically() {
    let guard = scratch();
    let ns = &guard.0;
    for debug in [false, true, false] {
        let took = ns
            .run(move || firewall::apply(&policy(debug)))
            .unwrap()
            .unwrap();
        // nft reads what was applied over netlink as ordinary rules.
        let listed = ns
            .run(|| {
                std::process::Command::new("nft")
                    .args(["list", "ruleset"])
                    .output()
            })
            .unwrap()
            .unwrap();
        assert!(listed.status.success());
        let raw = String::from_utf8(listed.stdout).unwrap();
        assert_eq!(raw.contains("counter packets"), debug, "{raw}");
        let text = raw.replace("counter packets 0 bytes 0 ", "");
        for want in [
            r#"iifname "lo" accept comment "loopback in""#,
            r#"ip saddr 192.168.10.0/24 tcp dport 9696 accept comment "tcp [8080, 9696, 6789] from 192.168.10.0/24""#,
            r#"ct state established,related accept"#,
            r#"type filter hook egress device "eth0" priority filter; policy drop;"#,
            r#"ip6 saddr fe80::/10 icmpv6 type nd-neighbor-solicit accept"#,
            r#"udp dport 53 reject comment "no other dns (udp 53)""#,
        ] {
            assert!(text.contains(want), "{want} not in\n{text}");
        }
        assert!(
            took.closed.as_secs() < 5 && took.verified.as_secs() < 5,
            "{took:?}"
        );
        // Each policy differs from the one before: written every time.
        assert!(took.rewritten, "{took:?}");
    }
    // Someone removes a rule behind our back: verification notices.
    let st = ns
        .run(|| {
            std::process::Command::new("nft")
                .args(["flush", "chain", "netdev", "leakhound_egress", "egress"])
                .status()
        })
        .unwrap()
        .unwrap();
    assert!(st.success());
    let err = ns
        .run(|| firewall::apply::verify(&policy(false)))
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("not the one applied"), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("leakhound_egress egress: 16 rules applied, 0 read back")
            && msg.contains("wireguard to the endpoint"),
        "{msg}"
    );
    // A rule changed in place, comment kept, is noticed too: the read-back
    // compares expressions, not only comments.
    ns.run(move || firewall::apply(&policy(false)))
        .unwrap()
        .unwrap();
    let nft = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        ns.run(move || std::process::Command::new("nft").args(&args).output())
            .unwrap()
            .unwrap()
    };
    let listed =
        String::from_utf8(nft(&["-a", "list", "chain", "inet", "leakhound", "output"]).stdout)
            .unwrap();
    let handle = listed
        .lines()
        .find(|l| l.contains(r#"comment "loopback out""#))
        .and_then(|l| l.rsplit("# handle ").next())
        .expect("the loopback rule")
        .trim()
        .to_string();
    let o = nft(&[
        "replace",
        "rule",
        "inet",
        "leakhound",
        "output",
        "handle",
        &handle,
        "oifname",
        "eth0",
        "accept",
        "comment",
        "\"loopback out\"",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let msg = ns
        .run(|| firewall::apply::verify(&policy(false)))
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(r#"output rule 1: applied "loopback out""#),
        "{msg}"
    );
    // Applying onto the changed ruleset rewrites it; the same policy once
    // more finds it in place (read back, not rewritten).
    let again = ns
        .run(move || firewall::apply(&policy(false)))
        .unwrap()
        .unwrap();
    assert!(
        again.rewritten,
        "a changed rule must be rewritten: {again:?}"
    );
    ns.run(|| firewall::apply::verify(&policy(false)))
        .unwrap()
        .unwrap();
    let same = ns
        .run(move || firewall::apply(&policy(false)))
        .unwrap()
        .unwrap();
    assert!(!same.rewritten && same.verified.is_zero(), "{same:?}");
    // The redirect's nat chain comes and goes with the policy, atomically,
    // and is verified like the rest.
    for p in [redirecting(), policy(false), redirecting()] {
        ns.run(move || firewall::apply(&p)).unwrap().unwrap();
    }
    let st = ns
        .run(|| {
            std::process::Command::new("nft")
                .args(["flush", "chain", "inet", "leakhound", "prerouting"])
                .status()
        })
        .unwrap()
        .unwrap();
    assert!(st.success());
    let msg = ns
        .run(|| firewall::apply::verify(&redirecting()))
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("VPN_PORT_FORWARDING_LISTENING_PORT tcp 40000 to 6881"),
        "{msg}"
    );
    ns.run(firewall::remove).unwrap().unwrap();
}

/// A receiver on 203.0.113.10:51820 (an address of the namespace's
/// loopback, so a datagram to it crosses the output hook) and a sender,
/// made once in the namespace (sockets stay in the namespace they were made
/// in). Bound once: re-binding the port for every probe raced with forks
/// of the other test in this binary, whose children briefly held the
/// previous socket until their exec (EADDRINUSE under load).
struct TunnelProbe {
    rx: std::net::UdpSocket,
    tx: std::net::UdpSocket,
    sent: std::cell::Cell<u32>,
}

impl TunnelProbe {
    fn new(ns: &Netns) -> TunnelProbe {
        let (rx, tx) = ns
            .run(|| {
                let rx = std::net::UdpSocket::bind("203.0.113.10:51820").unwrap_or_else(|e| {
                    panic!("binding 203.0.113.10:51820 in the scratch namespace: {e}")
                });
                rx.set_read_timeout(Some(std::time::Duration::from_millis(200)))
                    .unwrap();
                (rx, std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            })
            .unwrap();
        TunnelProbe {
            rx,
            tx,
            sent: std::cell::Cell::new(0),
        }
    }

    /// Whether a new datagram arrives within 200 ms (one sent earlier and
    /// late is told apart by its number).
    fn arrives(&self) -> bool {
        let n = self.sent.get() + 1;
        self.sent.set(n);
        let payload = format!("handshake {n}");
        // A drop on the output hook answers the sender EPERM.
        if self
            .tx
            .send_to(payload.as_bytes(), "203.0.113.10:51820")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 32];
        loop {
            match self.rx.recv(&mut buf) {
                Ok(len) if &buf[..len] == payload.as_bytes() => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }
}

#[test]
fn the_audits_cut_drops_the_tunnel_and_the_kernel_lifts_it_by_itself() {
    use firewall::cut;
    use leakhound::gateway::firewall::nfnl::Cut;
    use std::time::{Duration, Instant};
    let guard = scratch();
    let ns = &guard.0;
    let st = ns
        .run(|| {
            std::process::Command::new("sh")
                .args([
                    "-c",
                    "ip link set lo up && ip addr add 203.0.113.10/32 dev lo",
                ])
                .status()
        })
        .unwrap()
        .unwrap();
    assert!(st.success());
    let probe = TunnelProbe::new(ns);
    assert!(probe.arrives(), "before any cut");
    // Nothing there: lifting is a no-op that says so.
    assert!(!ns.run(cut::lift).unwrap().unwrap());
    let c = Cut {
        endpoint: "203.0.113.10:51820".parse().unwrap(),
        timeout: Duration::from_millis(1500),
    };
    let left = ns.run(|| cut::arm(&c)).unwrap().unwrap();
    let armed = Instant::now();
    assert!(
        left <= Duration::from_millis(1500) && left > Duration::ZERO,
        "{left:?}"
    );
    assert!(!probe.arrives(), "the cut holds");
    // Other traffic is untouched: the same address, another port.
    let other = ns
        .run(|| {
            let rx = std::net::UdpSocket::bind("203.0.113.10:51821").unwrap();
            rx.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            tx.send_to(b"x", "203.0.113.10:51821").unwrap();
            rx.recv(&mut [0u8; 4]).is_ok()
        })
        .unwrap();
    assert!(other, "only the tunnel's port is cut");
    // nft sees an ordinary table: a set with a timeout, a rule using it.
    let listed = ns
        .run(|| {
            std::process::Command::new("nft")
                .args(["list", "table", "inet", "leakhound_audit_block"])
                .output()
        })
        .unwrap()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("timeout 1s500ms"), "{listed}");
    assert!(
        listed.contains("elements = { 203.0.113.10 expires"),
        "{listed}"
    );
    assert!(listed.contains("ip daddr @cut drop"), "{listed}");
    assert!(listed.contains("priority -400"), "{listed}");
    // Renewed, it holds past its first expiry ...
    while armed.elapsed() < Duration::from_millis(1000) {
        assert!(!probe.arrives());
    }
    ns.run(|| cut::renew(&c)).unwrap().unwrap();
    let renewed = Instant::now();
    let left = ns.run(|| cut::expiry(&c)).unwrap().unwrap().unwrap();
    assert!(left > Duration::from_millis(1000), "{left:?}");
    while armed.elapsed() < Duration::from_millis(1800) {
        assert!(!probe.arrives(), "renewed, still cut");
    }
    // ... and, no longer renewed, the kernel lifts it by itself: nothing
    // of ours runs meanwhile, as after a SIGKILL.
    while !probe.arrives() {
        assert!(
            renewed.elapsed() < Duration::from_secs(5),
            "the kernel did not lift the cut"
        );
    }
    let lifted = renewed.elapsed();
    assert!(lifted >= Duration::from_millis(1300), "{lifted:?}");
    assert_eq!(ns.run(|| cut::expiry(&c)).unwrap().unwrap(), None);
    // The empty table is still there, harmless; a renewal now is refused
    // and does not cut again; lifting removes the table.
    assert!(ns.run(cut::present).unwrap().unwrap());
    assert!(ns.run(|| cut::renew(&c)).unwrap().is_err());
    assert!(probe.arrives());
    assert!(ns.run(cut::lift).unwrap().unwrap());
    assert!(!ns.run(cut::present).unwrap().unwrap());
    // A renewal with the table gone is refused: it never cuts again.
    assert!(ns.run(|| cut::renew(&c)).unwrap().is_err());
    assert!(probe.arrives());
}
