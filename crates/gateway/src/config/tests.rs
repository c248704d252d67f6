use super::*;
use leakhound_net::tunnel::{encode_key, generate_keypair};

fn base() -> Vec<(String, String)> {
    let (p, _) = generate_keypair();
    let (_, q) = generate_keypair();
    [
        ("VPN_SERVICE_PROVIDER", "custom".to_string()),
        ("VPN_TYPE", "wireguard".into()),
        ("WIREGUARD_PRIVATE_KEY", encode_key(&p)),
        ("WIREGUARD_PUBLIC_KEY", encode_key(&q)),
        ("WIREGUARD_ADDRESSES", "10.64.0.2/32".into()),
        ("WIREGUARD_ENDPOINT_IP", "203.0.113.10".into()),
        ("WIREGUARD_ENDPOINT_PORT", "51820".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn with(var: &str, value: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = base().into_iter().filter(|(k, _)| k != var).collect();
    v.push((var.to_string(), value.to_string()));
    v
}

fn without(var: &str) -> Vec<(String, String)> {
    base().into_iter().filter(|(k, _)| k != var).collect()
}

#[test]
fn the_private_key_may_come_from_a_secret_file_never_quoted() {
    let dir = std::env::temp_dir().join(format!("lh-keyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("wireguard_private_key");
    let k = [7u8; 32];
    std::fs::write(&f, format!("{}\n", encode_key(&k))).unwrap();
    let mut env = without("WIREGUARD_PRIVATE_KEY");
    env.push((
        "WIREGUARD_PRIVATE_KEY_SECRETFILE".into(),
        f.display().to_string(),
    ));
    let c = GatewayConfig::from_env(env.clone()).unwrap();
    assert_eq!(c.private_key, k);
    assert_eq!(c.private_key_file.as_deref(), Some(f.as_path()));
    std::fs::write(&f, "bm90LWEta2V5LWJ1dC1hLXNlY3JldA==").unwrap();
    let e = GatewayConfig::from_env(env).unwrap_err().to_string();
    assert!(e.starts_with("WIREGUARD_PRIVATE_KEY_SECRETFILE="), "{e}");
    assert!(e.contains("its content is not a key"), "{e}");
    assert!(!e.contains("bm90"), "{e}");
    // Both contents were registered as secrets, key or not.
    assert_eq!(
        leakhound_proto::scrub::redact(&format!(
            "{} bm90LWEta2V5LWJ1dC1hLXNlY3JldA==",
            encode_key(&k)
        )),
        "<redacted> <redacted>"
    );
    let e = GatewayConfig::from_env(without("WIREGUARD_PRIVATE_KEY"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("WIREGUARD_PRIVATE_KEY_SECRETFILE"), "{e}");
    // Why the file gives no key, its source kept.
    let e = read_key_file(&dir.join("missing")).unwrap_err();
    assert!(matches!(e, KeyFileError::Read(_)), "{e:?}");
    assert!(e.to_string().starts_with("cannot read it: "), "{e}");
    let e = read_key_file(&f).unwrap_err();
    assert!(
        e.to_string().starts_with("its content is not a key: "),
        "{e}"
    );
    assert!(std::error::Error::source(&e).is_some());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_public_ip_url_is_parsed_once_and_never_shows_credentials() {
    let c = GatewayConfig::from_env(with("PUBLICIP_URL", "http://192.0.2.80:8080/ip")).unwrap();
    let u = c.control.public_ip_url.unwrap();
    assert_eq!(
        (u.ip(), u.port, u.path.as_str()),
        (Some("192.0.2.80".parse().unwrap()), 8080, "/ip")
    );
    let e = GatewayConfig::from_env(with("PUBLICIP_URL", "https://ipinfo.io"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(
            "PUBLICIP_URL=\"https://ipinfo.io\" is not valid: expected http://IP[:PORT]/path ("
        ),
        "{e}"
    );
    let e = GatewayConfig::from_env(with("PUBLICIP_URL", "http://me:hunter2@192.0.2.80/"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no credentials in URLs"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn the_seeds_example_parses() {
    let c = GatewayConfig::from_env(with(
        "FIREWALL_OUTBOUND_SUBNETS",
        "172.21.0.0/16,172.20.0.0/16",
    ))
    .unwrap();
    assert_eq!(c.endpoint, "203.0.113.10:51820".parse().unwrap());
    assert_eq!(c.mtu, 1420);
    assert_eq!(c.interface, "wg0");
    assert_eq!(c.outbound_subnets.len(), 2);
    assert!(!c.has_ipv6());
}

#[test]
fn the_older_singular_address_variable_is_read() {
    let mut v = without("WIREGUARD_ADDRESSES");
    v.push((
        "WIREGUARD_ADDRESS".into(),
        "10.64.0.2/32,fd00:64::2/128".into(),
    ));
    let c = GatewayConfig::from_env(v).unwrap();
    assert!(c.has_ipv6());
}

#[test]
fn each_required_variable_is_named_when_missing() {
    for var in [
        "WIREGUARD_PRIVATE_KEY",
        "WIREGUARD_PUBLIC_KEY",
        "WIREGUARD_ADDRESSES",
        "WIREGUARD_ENDPOINT_IP",
        "WIREGUARD_ENDPOINT_PORT",
    ] {
        let e = GatewayConfig::from_env(without(var)).unwrap_err();
        assert!(e.to_string().starts_with(var), "{var}: {e}");
    }
}

#[test]
fn malformed_values_are_named_with_the_value() {
    for (var, value) in [
        ("WIREGUARD_ENDPOINT_IP", "203.0.113"),
        ("WIREGUARD_ENDPOINT_IP", "0.0.0.0"),
        ("WIREGUARD_ENDPOINT_PORT", "0"),
        ("WIREGUARD_ENDPOINT_PORT", "70000"),
        ("VPN_ENDPOINT_IP", "203.0.113"),
        ("WIREGUARD_MTU", "abc"),
        ("WIREGUARD_MTU", "576"),
        ("WIREGUARD_ADDRESSES", "10.64.0.2/33"),
        ("FIREWALL_OUTBOUND_SUBNETS", "172.20.0.1/16"),
        ("FIREWALL_OUTBOUND_SUBNETS", "lan"),
        ("WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL", "often"),
        ("DNS_UPSTREAM_RESOLVER_TYPE", "tls"),
        ("DNS_UPSTREAM_RESOLVERS", "cloudflare,mycorp"),
        ("DNS_UPSTREAM_PLAIN_ADDRESSES", "10.64.0.1"),
        ("DNS_UPDATE_PERIOD", "10s"),
        ("DNS_BLOCK_IPS", "10.0.0.0/8"),
        ("DNS_BLOCK_IP_PREFIXES", "bad"),
        ("FIREWALL_IPTABLES_LOG_LEVEL", "loud"),
        ("VPN_UP_COMMAND", "echo 'unclosed"),
        ("DNS_ADDRESS", "provider"),
        ("DNS_BLOCK_DOH_ADDRESSES", "1.2.3.4,doh.example"),
        ("DNS_UNBLOCK_HOSTNAMES", "ok.lab,bad host"),
        ("HEALTH_SERVER_ADDRESS", "localhost"),
        ("HEALTH_TARGET_ADDRESSES", "cloudflare.com:0"),
        ("HEALTH_TARGET_ADDRESSES", "2001:db8::1:443"),
        ("HEALTH_TARGET_ADDRESSES", "bad host:443"),
        ("HEALTH_ICMP_TARGET_IPS", "one.one.one.one"),
        ("HEALTH_ICMP_TARGET_IPS", "127.0.0.1"),
        ("HEALTH_SMALL_CHECK_TYPE", "tcp"),
        ("HEALTH_FULL_CHECK_INTERVAL", "soon"),
        ("HEALTH_SMALL_CHECK_INTERVAL", "1ms"),
        ("HTTP_CONTROL_SERVER_ADDRESS", "port8000"),
        ("PUBLICIP_URL", "https://ipinfo.io"),
        ("BLOCK_ADS", "sometimes"),
        ("DNS_CACHING", "maybe"),
        ("DNS_CACHE_SIZE", "lots"),
        ("VPN_INTERFACE", "a-very-long-interface-name"),
        ("FIREWALL_INPUT_PORTS", "8080,http"),
        ("FIREWALL_VPN_INPUT_PORTS", "0"),
        ("FIREWALL_DEBUG", "verbose"),
        (
            "FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT",
            "nah",
        ),
        ("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.0/24:8080"),
        ("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.1/24=8080"),
        ("FIREWALL_INPUT_SUBNET_PORTS", "lan=8080"),
        ("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.0/24=99999"),
        ("FIREWALL_ON_EXIT", "open"),
    ] {
        let e = GatewayConfig::from_env(with(var, value)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(var), "{var}={value}: {msg}");
        assert!(msg.contains(value), "{var}={value}: {msg}");
    }
}

#[test]
fn bad_keys_are_named_but_never_echoed() {
    let e = GatewayConfig::from_env(with("WIREGUARD_PRIVATE_KEY", "c2VjcmV0")).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("WIREGUARD_PRIVATE_KEY"), "{msg}");
    assert!(!msg.contains("c2VjcmV0"), "{msg}");
    assert!(msg.contains("32 bytes"), "{msg}");
}

#[test]
fn the_seeds_firewall_rules_parse() {
    let mut v = with(
        "FIREWALL_INPUT_SUBNET_PORTS",
        "192.168.10.0/24=8080,9696,6789; 192.168.40.0/24=8080,9696",
    );
    v.push(("FIREWALL_VPN_INPUT_PORTS".into(), "51413".into()));
    v.push(("FIREWALL_DEBUG".into(), "on".into()));
    let c = GatewayConfig::from_env(v).unwrap();
    let f = &c.firewall;
    assert!(f.enabled && f.debug && !f.remove_on_exit);
    assert_eq!(f.vpn_input_ports, vec![51413]);
    assert_eq!(f.subnet_ports.len(), 2);
    assert_eq!(f.subnet_ports[0].ports, vec![8080, 9696, 6789]);
    assert_eq!(f.subnet_ports[1].subnet.to_string(), "192.168.40.0/24");
    // Defaults: on, nothing open.
    let d = GatewayConfig::from_env(base()).unwrap().firewall;
    assert!(d.enabled && !d.debug && d.input_ports.is_empty() && d.subnet_ports.is_empty());
}

#[test]
fn the_retired_dns_address_is_a_plain_upstream_as_master_reads_it() {
    let c = GatewayConfig::from_env(with("DNS_ADDRESS", "10.64.0.1")).unwrap();
    assert_eq!(
        c.dns.upstream,
        Upstream::Plain(vec!["10.64.0.1:53".parse().unwrap()])
    );
    assert!(c.dns.server);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("DNS_ADDRESS") && w.contains("DNS_UPSTREAM_PLAIN_ADDRESSES")),
        "{:?}",
        c.warnings
    );
    assert!(c.dns.doh_addresses.contains(&"1.1.1.1".parse().unwrap()));
    // 127.0.0.1 is "the built-in server": ignored, the default type stays.
    assert!(matches!(
        GatewayConfig::from_env(with("DNS_ADDRESS", "127.0.0.1"))
            .unwrap()
            .dns
            .upstream,
        Upstream::None(_)
    ));
    // A resolver on an outbound subnet is reached outside the tunnel.
    for var in ["DNS_ADDRESS", "DNS_UPSTREAM_PLAIN_ADDRESSES"] {
        let value = if var == "DNS_ADDRESS" {
            "172.20.0.53"
        } else {
            "172.20.0.53:53"
        };
        let mut v = with(var, value);
        v.push(("DNS_UPSTREAM_RESOLVER_TYPE".into(), "plain".into()));
        v.push(("FIREWALL_OUTBOUND_SUBNETS".into(), "172.20.0.0/16".into()));
        let e = GatewayConfig::from_env(v).unwrap_err().to_string();
        assert!(e.starts_with(var) && e.contains("172.20.0.0/16"), "{e}");
    }
    // DNS_KEEP_NAMESERVER is obsolete: accepted, without effect, said so.
    let c = GatewayConfig::from_env(with("DNS_KEEP_NAMESERVER", "on")).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("DNS_KEEP_NAMESERVER has no effect")),
        "{:?}",
        c.warnings
    );
    let c = GatewayConfig::from_env(with("DNS_BLOCK_DOH_ADDRESSES", "192.0.2.43")).unwrap();
    assert!(c.dns.doh_addresses.contains(&"192.0.2.43".parse().unwrap()));
}

#[test]
fn plain_upstreams_take_ip_and_port_and_follow_dns_upstream_ipv6() {
    let mut v = with("DNS_UPSTREAM_RESOLVER_TYPE", "Plain");
    v.push((
        "DNS_UPSTREAM_PLAIN_ADDRESSES".into(),
        "10.64.0.1:53,[fd00:64::1]:5353".into(),
    ));
    let c = GatewayConfig::from_env(v.clone()).unwrap();
    assert_eq!(
        c.dns.upstream,
        Upstream::Plain(vec!["10.64.0.1:53".parse().unwrap()])
    );
    // IPv6 upstreams need an IPv6 tunnel.
    v.push(("DNS_UPSTREAM_IPV6".into(), "on".into()));
    let e = GatewayConfig::from_env(v.clone()).unwrap_err().to_string();
    assert!(e.starts_with("DNS_UPSTREAM_IPV6"), "{e}");
    v.retain(|(k, _)| k != "WIREGUARD_ADDRESSES");
    v.push((
        "WIREGUARD_ADDRESSES".into(),
        "10.64.0.2/32,fd00:64::2/128".into(),
    ));
    let c = GatewayConfig::from_env(v).unwrap();
    assert_eq!(
        c.dns.upstream,
        Upstream::Plain(vec!["[fd00:64::1]:5353".parse().unwrap()])
    );
    // Plain without addresses: master's error.
    let e = GatewayConfig::from_env(with("DNS_UPSTREAM_RESOLVER_TYPE", "plain"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("DNS_UPSTREAM_PLAIN_ADDRESSES") && e.contains("no IPv4 address"),
        "{e}"
    );
}

#[test]
fn named_resolvers_mean_the_lab_resolver_never_a_public_one() {
    // DoT to cloudflare (the defaults) without leakhound's own address:
    // nowhere to ask, and the reason names the variables.
    let c = GatewayConfig::from_env(base()).unwrap();
    match &c.dns.upstream {
        Upstream::None(why) => assert!(why.contains("DOT_SERVER_ADDRESS"), "{why}"),
        other => panic!("{other:?}"),
    }
    let mut v = with("DNS_UPSTREAM_RESOLVERS", "Cloudflare,quad9 secured");
    v.push(("DOT_SERVER_ADDRESS".into(), "10.64.0.1".into()));
    let e = GatewayConfig::from_env(v.clone()).unwrap_err().to_string();
    assert!(e.starts_with("DOT_SERVER_NAME"), "{e}");
    v.push(("DOT_SERVER_NAME".into(), "dns.provider.lab".into()));
    v.push(("DOT_CA_FILE".into(), "/run/ca.pem".into()));
    let c = GatewayConfig::from_env(v).unwrap();
    assert_eq!(
        c.dns.upstream,
        Upstream::Tls {
            servers: vec!["10.64.0.1:853".parse().unwrap()],
            server_name: "dns.provider.lab".into(),
            ca_file: Some("/run/ca.pem".into()),
        }
    );
    let mut v = with("DNS_UPSTREAM_RESOLVER_TYPE", "DoH");
    v.push(("DOH_SERVER_ADDRESS".into(), "192.0.2.43".into()));
    v.push(("DOH_SERVER_URL".into(), "https://doh.lab/dns-query".into()));
    let c = GatewayConfig::from_env(v.clone()).unwrap();
    assert_eq!(
        c.dns.upstream,
        Upstream::Https {
            servers: vec!["192.0.2.43:443".parse().unwrap()],
            server_name: "doh.lab".into(),
            path: "/dns-query".into(),
            ca_file: None,
        }
    );
    for bad in ["http://doh.lab/dns-query", "https://doh.lab:8443/q"] {
        let mut w = v.clone();
        w.retain(|(k, _)| k != "DOH_SERVER_URL");
        w.push(("DOH_SERVER_URL".into(), bad.into()));
        let e = GatewayConfig::from_env(w).unwrap_err().to_string();
        assert!(e.starts_with("DOH_SERVER_URL"), "{e}");
    }
    // The retired name of the list, and the old DoT switch's new meaning.
    let c = GatewayConfig::from_env(with("DOT_PROVIDERS", "google")).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("DOT_PROVIDERS") && w.contains("DNS_UPSTREAM_RESOLVERS"))
    );
}

#[test]
fn dot_off_switches_the_dns_server_off_as_todays_gluetun_reads_it() {
    // The seed's DOT=off with DNS_ADDRESS: no server, the provider's
    // resolver asked directly.
    let mut v = with("DOT", "off");
    v.push(("DNS_ADDRESS".into(), "10.64.0.1".into()));
    let c = GatewayConfig::from_env(v.clone()).unwrap();
    assert!(!c.dns.server);
    assert_eq!(
        crate::resolver_address(&c.dns),
        Some("10.64.0.1:53".parse().unwrap())
    );
    for (words, why) in [
        (["DOT", "DNS_SERVER"], "deprecation"),
        (["DOT=off", "block lists"], "changed meaning"),
    ] {
        assert!(
            c.warnings
                .iter()
                .any(|w| words.iter().all(|x| w.contains(x))),
            "{why}: {:?}",
            c.warnings
        );
    }
    // Blocklists have nothing to filter then: said.
    v.push(("BLOCK_MALICIOUS".into(), "on".into()));
    let c = GatewayConfig::from_env(v).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.starts_with("BLOCK_MALICIOUS=on has no effect"))
    );
    // Off without plain addresses, or with another type: master's errors.
    let e = GatewayConfig::from_env(with("DNS_SERVER", "off"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("DNS_UPSTREAM_PLAIN_ADDRESSES is required"),
        "{e}"
    );
    let mut v = with("DNS_SERVER", "off");
    v.push(("DNS_UPSTREAM_RESOLVER_TYPE".into(), "dot".into()));
    let e = GatewayConfig::from_env(v).unwrap_err().to_string();
    assert!(e.starts_with("DNS_UPSTREAM_RESOLVER_TYPE"), "{e}");
    let mut v = with("DNS_SERVER", "off");
    v.push((
        "DNS_UPSTREAM_PLAIN_ADDRESSES".into(),
        "10.64.0.1:5353".into(),
    ));
    let e = GatewayConfig::from_env(v).unwrap_err().to_string();
    assert!(e.contains("port 53"), "{e}");
}

#[test]
fn blocked_answer_addresses_come_from_both_lists_and_the_retired_one() {
    let mut v = with("DNS_BLOCK_IPS", "192.0.2.66, 2001:db8::66");
    v.push(("DNS_BLOCK_IP_PREFIXES".into(), "198.18.0.0/15".into()));
    v.push(("DOT_PRIVATE_ADDRESS".into(), "10.0.0.0/8,172.16.0.1".into()));
    let c = GatewayConfig::from_env(v).unwrap();
    let shown: Vec<String> = c
        .dns
        .policy
        .blocked_ips
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "192.0.2.66/32",
            "2001:db8::66/128",
            "198.18.0.0/15",
            "10.0.0.0/8",
            "172.16.0.1/32"
        ]
    );
}

#[test]
fn other_providers_and_openvpn_are_refused() {
    assert!(matches!(
        GatewayConfig::from_env(with("VPN_SERVICE_PROVIDER", "mullvad")),
        Err(ConfigError::Unsupported {
            var: "VPN_SERVICE_PROVIDER",
            ..
        })
    ));
    assert!(matches!(
        GatewayConfig::from_env(with("VPN_TYPE", "openvpn")),
        Err(ConfigError::Unsupported {
            var: "VPN_TYPE",
            ..
        })
    ));
}

#[test]
fn a_listening_port_is_one_port_and_zero_means_none() {
    let pf = |k: &str, v: &str| {
        let mut e = with("VPN_PORT_FORWARDING", "on");
        e.push(("VPN_PORT_FORWARDING_GATEWAY".into(), "10.64.0.1".into()));
        e.push((k.into(), v.into()));
        GatewayConfig::from_env(e).map(|c| c.port_forwarding.unwrap().listening_port)
    };
    assert_eq!(
        pf("VPN_PORT_FORWARDING_LISTENING_PORT", "6881"),
        Ok(Some(6881))
    );
    assert_eq!(
        pf("VPN_PORT_FORWARDING_LISTENING_PORTS", "6881"),
        Ok(Some(6881))
    );
    assert_eq!(pf("VPN_PORT_FORWARDING_LISTENING_PORT", "0"), Ok(None));
    for bad in ["6881,6882", "http", "70000"] {
        let e = pf("VPN_PORT_FORWARDING_LISTENING_PORT", bad)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("VPN_PORT_FORWARDING_LISTENING_PORT"), "{e}");
    }
}

#[test]
fn port_forwarding_needs_the_providers_gateway() {
    let e = GatewayConfig::from_env(with("VPN_PORT_FORWARDING", "on"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("VPN_PORT_FORWARDING_GATEWAY"), "{e}");
    let mut v = with("VPN_PORT_FORWARDING", "on");
    v.push(("VPN_PORT_FORWARDING_GATEWAY".into(), "10.64.0.1".into()));
    v.push((
        "VPN_PORT_FORWARDING_UP_COMMAND".into(),
        "echo {{PORT}}".into(),
    ));
    let pf = GatewayConfig::from_env(v).unwrap().port_forwarding.unwrap();
    assert_eq!(pf.gateway, "10.64.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(pf.up_command.as_deref(), Some("echo {{PORT}}"));
    assert!(
        GatewayConfig::from_env(base())
            .unwrap()
            .port_forwarding
            .is_none()
    );
}

#[test]
fn health_settings_default_to_gluetuns_and_refuse_targets_outside_the_tunnel() {
    let h = GatewayConfig::from_env(base()).unwrap().health;
    assert_eq!(h.server, "127.0.0.1:9999".parse().unwrap());
    let shown: Vec<String> = h.targets.iter().map(|t| t.to_string()).collect();
    assert_eq!(shown, ["cloudflare.com:443", "github.com:443"]);
    assert_eq!(
        h.small,
        SmallCheck::Icmp(vec!["1.1.1.1".parse().unwrap(), "8.8.8.8".parse().unwrap()])
    );
    assert_eq!(h.full_interval, std::time::Duration::from_secs(300));
    let h = GatewayConfig::from_env(with("HEALTH_SERVER_ADDRESS", ":9999"))
        .unwrap()
        .health;
    assert_eq!(h.server, "0.0.0.0:9999".parse().unwrap());
    for (var, value) in [
        ("HEALTH_TARGET_ADDRESSES", "172.20.0.10:80"),
        ("HEALTH_ICMP_TARGET_IPS", "1.1.1.1,172.20.0.10"),
    ] {
        let mut v = with(var, value);
        v.push(("FIREWALL_OUTBOUND_SUBNETS".into(), "172.20.0.0/16".into()));
        let e = GatewayConfig::from_env(v).unwrap_err().to_string();
        assert!(
            e.starts_with(var) && e.contains("would not test the tunnel"),
            "{e}"
        );
    }
}

#[test]
fn health_targets_are_names_or_addresses_with_a_port() {
    let h = GatewayConfig::from_env(with(
        "HEALTH_TARGET_ADDRESSES",
        "WhoAmI.lab.:443, 192.0.2.80:443,[2001:db8:80::80]:8443",
    ))
    .unwrap()
    .health;
    let shown: Vec<String> = h.targets.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        shown,
        ["whoami.lab:443", "192.0.2.80:443", "[2001:db8:80::80]:8443"]
    );
    let e = GatewayConfig::from_env(with("HEALTH_TARGET_ADDRESSES", "2001:db8::1:443"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("in brackets"), "{e}");
    for (entry, why) in [
        ("a.lab:0", "\"a.lab:0\": \"0\" is not a port"),
        (
            "bad host:443",
            "\"bad host:443\": \"bad host\" is not a host name or IP address",
        ),
    ] {
        let e = GatewayConfig::from_env(with("HEALTH_TARGET_ADDRESSES", entry))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with(why), "{e}");
    }
}

#[test]
fn variables_that_mean_nothing_here_are_reported() {
    assert!(GatewayConfig::from_env(base()).unwrap().unused.is_empty());
    // The seed's HEALTH_TARGET and HEALTH_INTERVAL are not Gluetun's
    // names; DOT_SERVER_NAME has no effect without DOT=on; PATH is
    // nobody's business.
    let mut v = with("HEALTH_TARGET", "google.com");
    v.push(("HEALTH_INTERVAL".into(), "60".into()));
    v.push(("DOT_SERVER_NAME".into(), "dns.example".into()));
    v.push(("PATH".into(), "/usr/bin".into()));
    v.push(("DOTNET_ROOT".into(), "/usr/share/dotnet".into()));
    let c = GatewayConfig::from_env(v).unwrap();
    assert_eq!(
        c.unused,
        ["DOT_SERVER_NAME", "HEALTH_INTERVAL", "HEALTH_TARGET"]
    );
    // Gluetun's older name for the targets still works.
    let c = GatewayConfig::from_env(with("HEALTH_TARGET_ADDRESS", "github.com:443")).unwrap();
    assert_eq!(c.health.targets[0].to_string(), "github.com:443");
    assert!(c.unused.is_empty(), "{:?}", c.unused);
}

#[test]
fn the_dns_cache_is_bounded_and_can_be_off() {
    assert_eq!(
        GatewayConfig::from_env(base()).unwrap().dns.cache_size,
        1024
    );
    let c = GatewayConfig::from_env(with("DNS_CACHE_SIZE", "64")).unwrap();
    assert_eq!(c.dns.cache_size, 64);
    let mut v = with("DNS_CACHING", "off");
    v.push(("DNS_CACHE_SIZE".into(), "64".into()));
    assert_eq!(GatewayConfig::from_env(v).unwrap().dns.cache_size, 0);
}

#[test]
fn the_dns_small_check_needs_an_upstream() {
    let e = GatewayConfig::from_env(with("HEALTH_SMALL_CHECK_TYPE", "dns"))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("HEALTH_SMALL_CHECK_TYPE") && e.contains("DNS_UPSTREAM_PLAIN_ADDRESSES"),
        "{e}"
    );
    let mut v = with("HEALTH_SMALL_CHECK_TYPE", "DNS");
    v.push(("DNS_ADDRESS".into(), "10.64.0.1".into()));
    assert_eq!(
        GatewayConfig::from_env(v).unwrap().health.small,
        SmallCheck::Dns
    );
}

#[test]
fn blocklists_are_the_files_the_block_variables_ask_for() {
    let mut v = with("BLOCK_MALICIOUS", "on");
    v.push(("BLOCK_ADS".into(), "on".into()));
    v.push(("DNS_BLOCKLIST_DIR".into(), "/lists".into()));
    v.push((
        "DNS_UNBLOCK_HOSTNAMES".into(),
        "ok.malware.lab, fine.lab".into(),
    ));
    let c = GatewayConfig::from_env(v).unwrap();
    let files: Vec<_> = c
        .dns
        .blocklists
        .iter()
        .map(|(v, p)| (*v, p.display().to_string()))
        .collect();
    assert_eq!(
        files,
        vec![
            ("BLOCK_MALICIOUS", "/lists/malicious.txt".to_string()),
            ("BLOCK_ADS", "/lists/ads.txt".to_string())
        ]
    );
    assert!(c.dns.policy.unblocked.matches("ok.malware.lab"));
    assert!(c.dns.policy.doh_names.matches("dns.google"));
    assert!(
        GatewayConfig::from_env(base())
            .unwrap()
            .dns
            .blocklists
            .is_empty()
    );
}

#[test]
fn hook_commands_are_checked_and_kept_as_written() {
    let mut v = with("VPN_UP_COMMAND", "/bin/sh -c 'echo up {{VPN_INTERFACE}}'");
    v.push(("VPN_DOWN_COMMAND".into(), "echo down".into()));
    let c = GatewayConfig::from_env(v).unwrap();
    assert_eq!(
        c.up_command.as_deref(),
        Some("/bin/sh -c 'echo up {{VPN_INTERFACE}}'")
    );
    assert_eq!(c.down_command.as_deref(), Some("echo down"));
    let mut v = with("VPN_PORT_FORWARDING", "on");
    v.push(("VPN_PORT_FORWARDING_GATEWAY".into(), "10.64.0.1".into()));
    v.push(("VPN_PORT_FORWARDING_DOWN_COMMAND".into(), "echo \"x".into()));
    let e = GatewayConfig::from_env(v).unwrap_err().to_string();
    assert!(
        e.starts_with("VPN_PORT_FORWARDING_DOWN_COMMAND") && e.contains("quote"),
        "{e}"
    );
}

#[test]
fn the_default_role_is_parsed_and_never_echoed() {
    let c = GatewayConfig::from_env(with(
        "HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE",
        r#"{"auth":"apikey","apikey":"0123456789abcdef"}"#,
    ))
    .unwrap();
    assert_eq!(
        c.control.default_role,
        Some(crate::control_auth::Auth::ApiKey("0123456789abcdef".into()))
    );
    assert_eq!(
        GatewayConfig::from_env(with("HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE", "{}"))
            .unwrap()
            .control
            .default_role,
        None
    );
    let e = GatewayConfig::from_env(with(
        "HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE",
        r#"{"auth":"basic","username":"u","password":"canary-default-role-1"}x"#,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE"),
        "{e}"
    );
    assert!(!e.contains("canary-default-role-1"), "{e}");
}

#[test]
fn a_lone_unspecified_icmp_target_is_the_vpn_server() {
    let h = GatewayConfig::from_env(with("HEALTH_ICMP_TARGET_IPS", "0.0.0.0"))
        .unwrap()
        .health;
    assert_eq!(
        h.small,
        SmallCheck::Icmp(vec!["203.0.113.10".parse().unwrap()])
    );
    let e = GatewayConfig::from_env(with("HEALTH_ICMP_TARGET_IPS", "0.0.0.0,1.1.1.1"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be pinged"), "{e}");
    // A target without port is Gluetun's :443.
    let h = GatewayConfig::from_env(with("HEALTH_TARGET_ADDRESSES", "whoami.lab,192.0.2.80"))
        .unwrap()
        .health;
    let shown: Vec<String> = h.targets.iter().map(|t| t.to_string()).collect();
    assert_eq!(shown, ["whoami.lab:443", "192.0.2.80:443"]);
}

#[test]
fn the_public_ip_can_be_switched_off() {
    let mut v = with("PUBLICIP_URL", "http://192.0.2.80/");
    assert!(
        GatewayConfig::from_env(v.clone())
            .unwrap()
            .control
            .public_ip_url
            .is_some()
    );
    v.push(("PUBLICIP_ENABLED".into(), "no".into()));
    let c = GatewayConfig::from_env(v.clone()).unwrap();
    assert_eq!(c.control.public_ip_url, None);
    assert!(c.unused.is_empty(), "{:?}", c.unused);
    v.retain(|(k, _)| k != "PUBLICIP_ENABLED");
    v.push(("PUBLICIP_PERIOD".into(), "0".into()));
    assert_eq!(
        GatewayConfig::from_env(v).unwrap().control.public_ip_url,
        None
    );
}

#[test]
fn retired_names_are_read_first_as_gluetun_reads_them() {
    let mut v = with("WIREGUARD_ADDRESS", "10.64.0.9/32");
    v.push(("FIREWALL_DEBUG".into(), "on".into()));
    let c = GatewayConfig::from_env(v).unwrap();
    assert_eq!(c.addresses, ["10.64.0.9/32".parse::<IpNet>().unwrap()]);
    assert!(c.firewall.debug);
    for (old, new) in [
        ("WIREGUARD_ADDRESS", "WIREGUARD_ADDRESSES"),
        ("FIREWALL_DEBUG", "FIREWALL_IPTABLES_LOG_LEVEL"),
    ] {
        assert!(
            c.warnings.contains(&format!(
                "You are using the old environment variable {old}, please consider changing it to {new}"
            )),
            "{:?}",
            c.warnings
        );
    }
}

#[test]
fn unknown_gluetun_style_variables_still_warn() {
    let c = GatewayConfig::from_env(with("DNS_UPSTREAM_RESOLVER", "dot")).unwrap();
    assert_eq!(c.unused, ["DNS_UPSTREAM_RESOLVER"]);
}

/// What to remove from [`base`] and add to it so that `name` is read in a
/// configuration that parses (for the table's test).
fn sample(name: &str, dir: &std::path::Path) -> (Vec<&'static str>, Vec<(String, String)>) {
    let pf = |k: &str, v: &str| {
        vec![
            ("VPN_PORT_FORWARDING".to_string(), "on".to_string()),
            ("VPN_PORT_FORWARDING_GATEWAY".into(), "10.64.0.1".into()),
            (k.to_string(), v.to_string()),
        ]
    };
    let one = |v: &str| vec![(name.to_string(), v.to_string())];
    let key_file = |file: &str| {
        let f = dir.join(file);
        std::fs::write(&f, encode_key(&[9u8; 32])).unwrap();
        vec![(name.to_string(), f.display().to_string())]
    };
    match name {
        // Already in the base configuration.
        "WIREGUARD_PRIVATE_KEY"
        | "WIREGUARD_PUBLIC_KEY"
        | "WIREGUARD_ADDRESSES"
        | "WIREGUARD_ENDPOINT_IP"
        | "WIREGUARD_ENDPOINT_PORT"
        | "VPN_SERVICE_PROVIDER"
        | "VPN_TYPE" => (vec![], vec![]),
        "WIREGUARD_PRESHARED_KEY" => (vec![], one(&encode_key(&[5u8; 32]))),
        "WIREGUARD_PRIVATE_KEY_SECRETFILE" => (vec!["WIREGUARD_PRIVATE_KEY"], key_file("pk")),
        "WIREGUARD_PRESHARED_KEY_SECRETFILE" => (vec![], key_file("psk")),
        "WIREGUARD_ADDRESSES_SECRETFILE" => {
            let f = dir.join("addresses");
            std::fs::write(&f, "10.64.0.2/32\n").unwrap();
            (vec!["WIREGUARD_ADDRESSES"], one(&f.display().to_string()))
        }
        "VPNSP" => (vec![], one("custom")),
        "VPN_INTERFACE" | "WIREGUARD_INTERFACE" | "OPENVPN_INTERFACE" => (vec![], one("wg1")),
        "VPN_UP_COMMAND" | "VPN_DOWN_COMMAND" => (vec![], one("echo {{VPN_INTERFACE}}")),
        "WIREGUARD_ADDRESS" => (vec![], one("10.64.0.2/32")),
        "VPN_ENDPOINT_IP" => (vec![], one("203.0.113.10")),
        "VPN_ENDPOINT_PORT" => (vec![], one("51820")),
        "WIREGUARD_MTU" => (vec![], one("1400")),
        "WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL" => (vec![], one("25s")),
        "DNS_UPSTREAM_RESOLVER_TYPE" | "DNS_UPSTREAM_PLAIN_ADDRESSES" => (
            vec![],
            vec![
                ("DNS_UPSTREAM_RESOLVER_TYPE".into(), "plain".into()),
                ("DNS_UPSTREAM_PLAIN_ADDRESSES".into(), "10.64.0.1:53".into()),
            ],
        ),
        "DNS_UPSTREAM_RESOLVERS" | "DOT_PROVIDERS" => (vec![], one("quad9")),
        "DNS_ADDRESS" | "DNS_PLAINTEXT_ADDRESS" => (vec![], one("10.64.0.1")),
        "DNS_BLOCK_IPS" => (vec![], one("192.0.2.66")),
        "DNS_BLOCK_IP_PREFIXES" | "DOT_PRIVATE_ADDRESS" => (vec![], one("198.18.0.0/15")),
        "DNS_UNBLOCK_HOSTNAMES" | "UNBLOCK" | "DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES" => {
            (vec![], one("ok.lab"))
        }
        "DNS_UPDATE_PERIOD" => (vec![], one("24h")),
        "FIREWALL_OUTBOUND_SUBNETS" | "EXTRA_SUBNETS" => (vec![], one("172.20.0.0/16")),
        "FIREWALL_INPUT_PORTS" | "FIREWALL_VPN_INPUT_PORTS" => (vec![], one("8080")),
        "FIREWALL_IPTABLES_LOG_LEVEL" => (vec![], one("debug")),
        "HEALTH_SERVER_ADDRESS" => (vec![], one(":9999")),
        "HEALTH_TARGET_ADDRESSES" | "HEALTH_TARGET_ADDRESS" | "HEALTH_ADDRESS_TO_PING" => {
            (vec![], one("whoami.lab:443"))
        }
        "HEALTH_ICMP_TARGET_IPS" | "HEALTH_ICMP_TARGET_IP" => (vec![], one("192.0.2.80")),
        "HEALTH_SMALL_CHECK_TYPE" => (vec![], one("icmp")),
        "HTTP_CONTROL_SERVER_ADDRESS" => (vec![], one(":8000")),
        "HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH" => (vec![], one("/auth.toml")),
        "HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE" => (vec![], one(r#"{"auth":"none"}"#)),
        "VPN_PORT_FORWARDING"
        | "PORT_FORWARDING"
        | "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING" => (vec![], pf(name, "on")),
        "VPN_PORT_FORWARDING_STATUS_FILE"
        | "PORT_FORWARDING_STATUS_FILE"
        | "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING_STATUS_FILE" => {
            (vec![], pf(name, "/tmp/gluetun/port"))
        }
        "VPN_PORT_FORWARDING_LISTENING_PORTS" | "VPN_PORT_FORWARDING_LISTENING_PORT" => {
            (vec![], pf(name, "6881"))
        }
        "VPN_PORT_FORWARDING_UP_COMMAND" | "VPN_PORT_FORWARDING_DOWN_COMMAND" => {
            (vec![], pf(name, "echo {{PORT}}"))
        }
        "PUBLICIP_PERIOD" => (vec![], one("0")),
        "DNS_UPSTREAM_IPV6" | "DOT_IPV6" => (vec![], one("off")),
        "PUBLICIP_FILE" | "IP_STATUS_FILE" => (vec![], one("/tmp/ip")),
        _ => (vec![], one("on")),
    }
}

#[test]
fn the_parser_does_what_the_variables_table_says() {
    use crate::variables::{Status, VARIABLES};
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for row in VARIABLES {
        for name in row.names {
            let (remove, add) = sample(name, dir.path());
            let mut vars: Vec<(String, String)> = base()
                .into_iter()
                .filter(|(k, _)| !remove.contains(&k.as_str()))
                .filter(|(k, _)| !add.iter().any(|(a, _)| a == k))
                .collect();
            vars.extend(add);
            let env = Env::new(vars);
            let r = parse(&env);
            let read = env.read.borrow().contains(*name);
            match row.status {
                Status::Implemented => {
                    let c = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(read, "{name} is implemented but never read");
                    assert!(
                        !c.warnings
                            .iter()
                            .any(|w| w.contains(&format!("{name} has no effect"))),
                        "{name}: {:?}",
                        c.warnings
                    );
                }
                Status::Mapped { to } => {
                    let c = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(read, "{name} is mapped but never read");
                    assert!(
                        c.warnings
                            .iter()
                            .any(|w| w.contains(name) && to.split(", ").any(|t| w.contains(t))),
                        "{name}: no warning naming it and {to}: {:?}",
                        c.warnings
                    );
                }
                Status::NoEffect { .. } => {
                    let c = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(
                        c.warnings
                            .iter()
                            .any(|w| w.starts_with(&format!("{name} has no effect"))),
                        "{name}: {:?}",
                        c.warnings
                    );
                    assert!(!c.unused.contains(&name.to_string()), "{name}");
                }
                Status::Refused { unless, .. } => {
                    assert!(
                        matches!(r, Err(ConfigError::Refused { var, .. }) if var == *name),
                        "{name}: {r:?}"
                    );
                    for ok in unless {
                        let c = GatewayConfig::from_env(with(name, ok));
                        assert!(c.is_ok(), "{name}={ok}: {c:?}");
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 150, "{checked}");
}

#[test]
fn an_outbound_subnet_covering_public_addresses_is_left_out_with_a_warning() {
    let c = GatewayConfig::from_env(with(
        "FIREWALL_OUTBOUND_SUBNETS",
        "172.20.0.0/16,192.0.2.80/32,10.0.0.0/8,fd00:1::/64,8.8.8.0/24,172.0.0.0/8",
    ))
    .unwrap();
    let s = |v: &[&str]| v.iter().map(|s| s.parse().unwrap()).collect::<Vec<IpNet>>();
    assert_eq!(
        c.outbound_subnets,
        s(&["172.20.0.0/16", "10.0.0.0/8", "fd00:1::/64"])
    );
    // 172.0.0.0/8 holds 172.16.0.0/12 but is not inside it.
    assert_eq!(
        c.public_outbound_subnets,
        s(&["192.0.2.80/32", "8.8.8.0/24", "172.0.0.0/8"])
    );
    let w: Vec<&String> = c
        .warnings
        .iter()
        .filter(|w| w.contains("TunnelCrack LocalNet"))
        .collect();
    assert_eq!(w.len(), 3, "{:#?}", c.warnings);
    assert!(w[0].starts_with("FIREWALL_OUTBOUND_SUBNETS: 192.0.2.80/32 is not a local network"));
    assert!(is_local_subnet(&"169.254.1.0/24".parse().unwrap()));
    assert!(is_local_subnet(&"fe80::/64".parse().unwrap()));
    assert!(!is_local_subnet(&"100.64.0.0/10".parse().unwrap()));
}

#[test]
fn a_subnet_port_for_a_public_subnet_is_refused() {
    for v in [
        "0.0.0.0/0=8080",
        "192.0.2.0/24=8080",
        "192.168.10.0/24=8080;8.8.8.0/24=53",
    ] {
        let e = GatewayConfig::from_env(with("FIREWALL_INPUT_SUBNET_PORTS", v))
            .err()
            .unwrap_or_else(|| panic!("{v} was taken"))
            .to_string();
        assert!(
            e.contains("FIREWALL_INPUT_SUBNET_PORTS") && e.contains("is not a local network"),
            "{v}: {e}"
        );
    }
    assert!(
        GatewayConfig::from_env(with("FIREWALL_INPUT_SUBNET_PORTS", "192.168.10.0/24=8080"))
            .is_ok()
    );
}
