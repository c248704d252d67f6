//! Every Gluetun environment variable of the two Gluetun versions read for
//! leakhound (release v3.41.1, images `:v3`/`:v3.41`; and master b1193252,
//! image `:latest`), with what leakhound's gateway does with it: one row
//! per variable, or per family of variables that share a fate. The
//! configuration parser ([`crate::config`]) applies the rows that need no
//! code of their own (accepted without effect: a warning; refused: an
//! error), and docs/gluetun-variables.md is [`render_markdown`]'s output,
//! checked by a test. Pure data.

/// What leakhound's gateway does with a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Read, with Gluetun's meaning (the row says where leakhound differs).
    Implemented,
    /// A retired name, read as `to` (before it, as Gluetun reads retired
    /// names first), with a deprecation warning naming `to`.
    Mapped { to: &'static str },
    /// Accepted and checked for nothing but its presence: a warning at
    /// start says it has no effect, and why.
    NoEffect { why: &'static str },
    /// The gateway refuses to start when it is set to anything but one of
    /// `unless` (compared without case): it cannot do what it asks.
    Refused {
        unless: &'static [&'static str],
        why: &'static str,
    },
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    /// A family's name (one row for many variables), or `None`.
    pub family: Option<&'static str>,
    /// The variables of the row, exactly as Gluetun spells them.
    pub names: &'static [&'static str],
    pub status: Status,
    /// The default in the v3.41.1 image (`–`: not in that version).
    pub v3_41_1: &'static str,
    /// The default in the master (`:latest`) image.
    pub master: &'static str,
    /// The Gluetun version where it appeared or last changed.
    pub changed: &'static str,
    /// What leakhound's gateway does with it (for refused and no-effect
    /// rows, the status's `why` says it).
    pub here: &'static str,
}

const OFF: &[&str] = &["off", "no", "false", "disabled"];

const fn row(
    names: &'static [&'static str],
    status: Status,
    v3_41_1: &'static str,
    master: &'static str,
    changed: &'static str,
    here: &'static str,
) -> Variable {
    Variable {
        family: None,
        names,
        status,
        v3_41_1,
        master,
        changed,
        here,
    }
}

const fn family(
    name: &'static str,
    names: &'static [&'static str],
    status: Status,
    v3_41_1: &'static str,
    master: &'static str,
    changed: &'static str,
) -> Variable {
    Variable {
        family: Some(name),
        names,
        status,
        v3_41_1,
        master,
        changed,
        here: "",
    }
}

use Status::{Implemented, Mapped, NoEffect, Refused};

/// The table. Order: Gluetun's wiki sections (VPN, WireGuard, server
/// selection, DNS, firewall, health, control server, proxies, port
/// forwarding, public IP, updater and the rest).
pub const VARIABLES: &[Variable] = &[
    // VPN and WireGuard.
    row(
        &["VPN_SERVICE_PROVIDER"],
        Implemented,
        "`pia`",
        "`pia`",
        "v3.28",
        "`custom` only (the default here); any other provider is refused",
    ),
    row(
        &["VPNSP"],
        Mapped {
            to: "VPN_SERVICE_PROVIDER",
        },
        "retired",
        "retired",
        "before v3.28",
        "",
    ),
    row(
        &["VPN_TYPE"],
        Implemented,
        "`openvpn`",
        "`openvpn`",
        "v3.23; `amneziawg` master only",
        "`wireguard` only (the default here); `openvpn` and `amneziawg` are refused",
    ),
    row(
        &["VPN_INTERFACE"],
        Implemented,
        "`tun0`",
        "`tun0`",
        "v3.28",
        "default `wg0` here",
    ),
    row(
        &["WIREGUARD_INTERFACE", "OPENVPN_INTERFACE"],
        Mapped {
            to: "VPN_INTERFACE",
        },
        "retired",
        "retired",
        "v3.28",
        "",
    ),
    row(
        &["VPN_UP_COMMAND", "VPN_DOWN_COMMAND"],
        Implemented,
        "–",
        "empty",
        "master only (57c53bc1)",
        "run after each tunnel-up / before each tunnel-down, `{{VPN_INTERFACE}}` replaced, split like shell words and run without a shell; killed after 5 s; their values are secrets",
    ),
    row(
        &[
            "WIREGUARD_PRIVATE_KEY",
            "WIREGUARD_PUBLIC_KEY",
            "WIREGUARD_PRESHARED_KEY",
        ],
        Implemented,
        "empty",
        "empty",
        "v3.23 (public key v3.25)",
        "",
    ),
    row(
        &[
            "WIREGUARD_PRIVATE_KEY_SECRETFILE",
            "WIREGUARD_PRESHARED_KEY_SECRETFILE",
            "WIREGUARD_ADDRESSES_SECRETFILE",
        ],
        Implemented,
        "`/run/secrets/...`",
        "`/run/secrets/...`",
        "generic `*_SECRETFILE`",
        "read when the variable itself is unset (Gluetun: an existing file wins over the variable); no default path is looked at",
    ),
    row(
        &["WIREGUARD_ADDRESSES"],
        Implemented,
        "empty",
        "empty",
        "v3.28",
        "",
    ),
    row(
        &["WIREGUARD_ADDRESS"],
        Mapped {
            to: "WIREGUARD_ADDRESSES",
        },
        "retired",
        "retired",
        "v3.28",
        "",
    ),
    row(
        &["WIREGUARD_ENDPOINT_IP", "WIREGUARD_ENDPOINT_PORT"],
        Implemented,
        "empty",
        "empty",
        "v3.25",
        "",
    ),
    row(
        &["VPN_ENDPOINT_IP", "VPN_ENDPOINT_PORT"],
        Mapped {
            to: "WIREGUARD_ENDPOINT_IP, WIREGUARD_ENDPOINT_PORT",
        },
        "retired",
        "retired",
        "v3.25",
        "",
    ),
    row(
        &["WIREGUARD_ALLOWED_IPS"],
        Refused {
            unless: &["0.0.0.0/0,::/0", "0.0.0.0/0", "::/0,0.0.0.0/0"],
            why: "everything goes through the tunnel; a split tunnel is not offered",
        },
        "empty (`0.0.0.0/0,::/0`)",
        "empty (`0.0.0.0/0,::/0`)",
        "v3.36",
        "",
    ),
    row(
        &["WIREGUARD_MTU"],
        Implemented,
        "`1320`",
        "empty (path-MTU discovery)",
        "v3.35; 1320 in v3.40.0; discovery on master (be92aa2a)",
        "default 1420 here, no path-MTU discovery",
    ),
    row(
        &["WIREGUARD_IMPLEMENTATION"],
        NoEffect {
            why: "the tunnel is always userspace (boringtun)",
        },
        "`auto`",
        "`auto`",
        "v3.33",
        "",
    ),
    row(
        &["WIREGUARD_PERSISTENT_KEEPALIVE_INTERVAL"],
        Implemented,
        "`0`",
        "`0`",
        "v3.39",
        "",
    ),
    row(
        &["WIREGUARD_CONF_SECRETFILE"],
        Refused {
            unless: &["/run/secrets/wg0.conf"],
            why: "wg-quick files are not read; give the keys and addresses as variables",
        },
        "`/run/secrets/wg0.conf`",
        "`/run/secrets/wg0.conf`",
        "v3.38",
        "",
    ),
    row(
        &["PMTUD_ICMP_ADDRESSES", "PMTUD_TCP_ADDRESSES"],
        NoEffect {
            why: "no path-MTU discovery: the MTU is WIREGUARD_MTU",
        },
        "–",
        "public resolvers",
        "master only (be92aa2a)",
        "",
    ),
    row(
        &["IPV6_CHECK_ADDRESSES"],
        NoEffect {
            why: "nothing is dialled to decide: IPv6 goes into the tunnel when WIREGUARD_ADDRESSES has an IPv6 address",
        },
        "–",
        "public resolvers",
        "master only (11883aa8)",
        "",
    ),
    family(
        "AmneziaWG",
        &[
            "AMNEZIAWG_PRIVATE_KEY",
            "AMNEZIAWG_PRESHARED_KEY",
            "AMNEZIAWG_PUBLIC_KEY",
            "AMNEZIAWG_ADDRESSES",
            "AMNEZIAWG_ALLOWED_IPS",
            "AMNEZIAWG_ENDPOINT_IP",
            "AMNEZIAWG_ENDPOINT_PORT",
            "AMNEZIAWG_MTU",
            "AMNEZIAWG_PERSISTENT_KEEPALIVE_INTERVAL",
            "AMNEZIAWG_CONF_SECRETFILE",
            "AMNEZIAWG_JC",
            "AMNEZIAWG_JMIN",
            "AMNEZIAWG_JMAX",
            "AMNEZIAWG_S1",
            "AMNEZIAWG_S2",
            "AMNEZIAWG_S3",
            "AMNEZIAWG_S4",
            "AMNEZIAWG_H1",
            "AMNEZIAWG_H2",
            "AMNEZIAWG_H3",
            "AMNEZIAWG_H4",
            "AMNEZIAWG_I1",
            "AMNEZIAWG_I2",
            "AMNEZIAWG_I3",
            "AMNEZIAWG_I4",
            "AMNEZIAWG_I5",
            "AMNEZIAWG_INTERFACE",
            "AMNEZIAWG_ADDRESS",
        ],
        NoEffect {
            why: "read by Gluetun only with VPN_TYPE=amneziawg, which is refused",
        },
        "–",
        "mostly empty",
        "master only (e6fc792f)",
    ),
    family(
        "OpenVPN",
        &[
            "OPENVPN_USER",
            "OPENVPN_PASSWORD",
            "OPENVPN_USER_SECRETFILE",
            "OPENVPN_PASSWORD_SECRETFILE",
            "OPENVPN_VERSION",
            "OPENVPN_VERBOSITY",
            "OPENVPN_FLAGS",
            "OPENVPN_CIPHERS",
            "OPENVPN_AUTH",
            "OPENVPN_PROCESS_USER",
            "OPENVPN_MSSFIX",
            "OPENVPN_CUSTOM_CONFIG",
            "OPENVPN_PROTOCOL",
            "OPENVPN_ENDPOINT_IP",
            "OPENVPN_ENDPOINT_PORT",
            "OPENVPN_CERT",
            "OPENVPN_KEY",
            "OPENVPN_ENCRYPTED_KEY",
            "OPENVPN_KEY_PASSPHRASE",
            "OPENVPN_CLIENTCRT_SECRETFILE",
            "OPENVPN_CLIENTKEY_SECRETFILE",
            "OPENVPN_ENCRYPTED_KEY_SECRETFILE",
            "OPENVPN_KEY_PASSPHRASE_SECRETFILE",
            "OPENVPN_CIPHER",
            "OPENVPN_TARGET_IP",
            "OPENVPN_PORT",
            "OPENVPN_ROOT",
        ],
        NoEffect {
            why: "read by Gluetun only with VPN_TYPE=openvpn, which is refused (the retired `USER`, `PASSWORD`, `PROTOCOL`, `PORT` are too common to be taken for Gluetun's and are not read)",
        },
        "`OPENVPN_VERSION=2.6`, `OPENVPN_PROTOCOL=udp`, ...",
        "same",
        "–",
    ),
    family(
        "Provider extras",
        &[
            "PRIVATE_INTERNET_ACCESS_OPENVPN_ENCRYPTION_PRESET",
            "ENCRYPTION",
            "PIA_ENCRYPTION",
        ],
        NoEffect {
            why: "provider-specific (Private Internet Access), and only `custom` is offered",
        },
        "`strong`",
        "`strong`",
        "–",
    ),
    // Server selection.
    family(
        "Server selection filters",
        &[
            "SERVER_COUNTRIES",
            "SERVER_REGIONS",
            "SERVER_CITIES",
            "SERVER_HOSTNAMES",
            "SERVER_NAMES",
            "SERVER_CATEGORIES",
            "SERVER_NUMBER",
            "ISP",
            "COUNTRY",
            "REGION",
            "CITY",
            "SERVER_HOSTNAME",
            "SERVER_NAME",
        ],
        NoEffect {
            why: "the `custom` provider has one server, the endpoint; there is no server list to filter",
        },
        "empty",
        "empty",
        "–",
    ),
    family(
        "Server selection switches",
        &[
            "OWNED_ONLY",
            "FREE_ONLY",
            "PREMIUM_ONLY",
            "STREAM_ONLY",
            "MULTIHOP_ONLY",
            "SECURE_CORE_ONLY",
            "TOR_ONLY",
            "PORT_FORWARD_ONLY",
            "OWNED",
        ],
        NoEffect {
            why: "the `custom` provider has one server, the endpoint; there is no server list to filter",
        },
        "`OWNED_ONLY=no`, others empty",
        "same",
        "–",
    ),
    // DNS.
    row(
        &["DNS_SERVER"],
        Implemented,
        "`on`",
        "`on`",
        "v3.41.0; removed then back on master (4ea23376)",
        "`off`: no resolver on 127.0.0.1:53; resolv.conf names DNS_UPSTREAM_PLAIN_ADDRESSES (type `plain` and port 53 required, as on master), which the kill switch lets everyone reach through the tunnel only; block lists and rebinding protection then do nothing",
    ),
    row(
        &["DOT"],
        Mapped { to: "DNS_SERVER" },
        "retired",
        "retired",
        "v3.41.0",
        "**meaning changed**: `DOT=off` switches the built-in DNS server off (it used to mean plain DNS); `DOT=on` no longer asks for TLS",
    ),
    row(
        &["DNS_UPSTREAM_RESOLVER_TYPE"],
        Implemented,
        "`DoT` (`dot`)",
        "`DoT` (`dot`; `plain` when the server is off)",
        "v3.41.0",
        "`dot`, `doh` or `plain`, default `dot` (`plain` when the server is off)",
    ),
    row(
        &["DNS_UPSTREAM_RESOLVERS"],
        Implemented,
        "`cloudflare`",
        "empty (`cloudflare`)",
        "v3.41.0; image default emptied on master (9a5995fa)",
        "Gluetun's provider names, checked; every name means the one resolver leakhound's own DOT_SERVER_ADDRESS (DoT) or DOH_SERVER_ADDRESS (DoH) names (the lab's provider): no public resolver is ever asked. Without them the resolver has no upstream (every query fails, loudly)",
    ),
    row(
        &["DOT_PROVIDERS"],
        Mapped {
            to: "DNS_UPSTREAM_RESOLVERS",
        },
        "retired",
        "retired",
        "v3.41.0",
        "",
    ),
    row(
        &["DNS_UPSTREAM_PLAIN_ADDRESSES"],
        Implemented,
        "–",
        "empty",
        "master only (199ad77e)",
        "`IP:PORT` list, used with type `plain`; refused inside FIREWALL_OUTBOUND_SUBNETS (it would be asked outside the tunnel)",
    ),
    row(
        &["DNS_ADDRESS", "DNS_PLAINTEXT_ADDRESS"],
        Mapped {
            to: "DNS_UPSTREAM_PLAIN_ADDRESSES",
        },
        "`127.0.0.1` (`DNS_ADDRESS` current)",
        "unset (retired)",
        "retired on master (199ad77e)",
        "as master: `127.0.0.1` is ignored; another address becomes `ADDRESS:53` and forces type `plain`",
    ),
    row(
        &["DNS_UPSTREAM_IPV6"],
        Implemented,
        "`off`",
        "`off`",
        "v3.41.0",
        "`on`: only the upstreams' IPv6 addresses are asked (the tunnel needs an IPv6 address)",
    ),
    row(
        &["DOT_IPV6"],
        Mapped {
            to: "DNS_UPSTREAM_IPV6",
        },
        "retired",
        "retired",
        "v3.41.0",
        "",
    ),
    row(&["DNS_CACHING"], Implemented, "`on`", "`on`", "v3.41.0", ""),
    row(
        &["DOT_CACHING"],
        Mapped { to: "DNS_CACHING" },
        "retired",
        "retired",
        "v3.41.0",
        "",
    ),
    row(
        &["DNS_UPDATE_PERIOD"],
        NoEffect {
            why: "the block lists are local files read once at start (nothing is downloaded, so nothing is refreshed); the value is still checked (0, or at least 30s)",
        },
        "`24h`",
        "`24h`",
        "v3.0",
        "",
    ),
    row(
        &["DNS_BLOCK_IPS", "DNS_BLOCK_IP_PREFIXES"],
        Implemented,
        "empty",
        "empty",
        "v3.41.0 (d4831ad4)",
        "an upstream answer holding one of these addresses is answered REFUSED as a whole, as Gluetun's filter does",
    ),
    row(
        &["DOT_PRIVATE_ADDRESS"],
        Mapped {
            to: "DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES",
        },
        "retired",
        "retired",
        "v3.41.0",
        "each address goes to DNS_BLOCK_IPS, each CIDR to DNS_BLOCK_IP_PREFIXES",
    ),
    row(
        &["DNS_UNBLOCK_HOSTNAMES"],
        Implemented,
        "empty",
        "empty",
        "v3.41.0",
        "",
    ),
    row(
        &["UNBLOCK"],
        Mapped {
            to: "DNS_UNBLOCK_HOSTNAMES",
        },
        "retired",
        "retired",
        "v3.41.0",
        "",
    ),
    row(
        &["DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES"],
        Implemented,
        "empty",
        "empty",
        "v3.41.0; `*.` accepted on master",
        "",
    ),
    row(
        &["BLOCK_MALICIOUS", "BLOCK_SURVEILLANCE", "BLOCK_ADS"],
        Implemented,
        "`on`, `off`, `off`",
        "`on`, `off`, `off`",
        "v2",
        "lists from local files (leakhound's own DNS_BLOCKLIST_DIR); default off here",
    ),
    row(
        &["BLOCK_NSA"],
        Mapped {
            to: "BLOCK_SURVEILLANCE",
        },
        "retired",
        "retired",
        "v3",
        "",
    ),
    row(
        &["DNS_KEEP_NAMESERVER"],
        NoEffect {
            why: "obsolete in Gluetun (master); leakhound's gateway never hands queries to the network's own resolver",
        },
        "`off`",
        "obsolete",
        "obsolete on master (199ad77e)",
        "",
    ),
    row(
        &[
            "DOT_VERBOSITY",
            "DOT_VERBOSITY_DETAILS",
            "DOT_VALIDATION_LOGLEVEL",
        ],
        NoEffect {
            why: "obsolete in Gluetun (Unbound's settings)",
        },
        "obsolete",
        "obsolete",
        "v3.41.0",
        "",
    ),
    // Firewall.
    row(
        &["FIREWALL_ENABLED_DISABLING_IT_SHOOTS_YOU_IN_YOUR_FOOT"],
        Implemented,
        "`on`",
        "`on`",
        "v3.39",
        "",
    ),
    row(
        &["FIREWALL"],
        NoEffect {
            why: "renamed without a retired-name mapping in Gluetun v3.39, which ignores it since; so does leakhound",
        },
        "ignored",
        "ignored",
        "v3.39 (e7381b38)",
        "",
    ),
    row(
        &["FIREWALL_OUTBOUND_SUBNETS"],
        Implemented,
        "empty",
        "empty",
        "v3.5.1",
        "only local networks (RFC 1918, link-local, IPv6 unique-local): a subnet covering public addresses is left out with a warning (TunnelCrack LocalNet); Gluetun accepts it",
    ),
    row(
        &["EXTRA_SUBNETS"],
        Mapped {
            to: "FIREWALL_OUTBOUND_SUBNETS",
        },
        "retired",
        "retired",
        "v3.5.1",
        "",
    ),
    row(
        &["FIREWALL_INPUT_PORTS", "FIREWALL_VPN_INPUT_PORTS"],
        Implemented,
        "empty",
        "empty",
        "v3.5, v3.1",
        "",
    ),
    row(
        &["FIREWALL_IPTABLES_LOG_LEVEL"],
        Implemented,
        "–",
        "`info`",
        "master only (2438fc2c)",
        "`debug`: a counter on every kill-switch rule and a logged line per dropped packet; other levels: neither",
    ),
    row(
        &["FIREWALL_DEBUG"],
        Mapped {
            to: "FIREWALL_IPTABLES_LOG_LEVEL",
        },
        "`off` (current)",
        "retired",
        "retired on master (2438fc2c)",
        "`on` means `debug`",
    ),
    // Health.
    row(
        &["HEALTH_SERVER_ADDRESS"],
        Implemented,
        "`127.0.0.1:9999`",
        "`127.0.0.1:9999`",
        "v3.21",
        "",
    ),
    row(
        &["HEALTH_TARGET_ADDRESSES"],
        Implemented,
        "`cloudflare.com:443,github.com:443`",
        "same",
        "v3.41.0 (482421dd)",
        "a target without port means port 443; TLS on port 443 only, a TCP connect elsewhere",
    ),
    row(
        &["HEALTH_TARGET_ADDRESS", "HEALTH_ADDRESS_TO_PING"],
        Mapped {
            to: "HEALTH_TARGET_ADDRESSES",
        },
        "retired",
        "retired",
        "v3.41.0",
        "",
    ),
    row(
        &["HEALTH_ICMP_TARGET_IPS"],
        Implemented,
        "`1.1.1.1,8.8.8.8`",
        "same",
        "v3.41.0 (9f39d471)",
        "a single `0.0.0.0` means the VPN server (VPN endpoint), pinged through the tunnel",
    ),
    row(
        &["HEALTH_ICMP_TARGET_IP"],
        Mapped {
            to: "HEALTH_ICMP_TARGET_IPS",
        },
        "retired",
        "retired",
        "v3.41.0",
        "",
    ),
    row(
        &["HEALTH_SMALL_CHECK_TYPE", "HEALTH_RESTART_VPN"],
        Implemented,
        "`icmp`, `on`",
        "`icmp`, `on`",
        "v3.41.0",
        "",
    ),
    row(
        &[
            "HEALTH_VPN_DURATION_INITIAL",
            "HEALTH_VPN_DURATION_ADDITION",
            "HEALTH_OPENVPN_DURATION_INITIAL",
            "HEALTH_OPENVPN_DURATION_ADDITION",
            "HEALTH_SUCCESS_WAIT_DURATION",
        ],
        NoEffect {
            why: "obsolete in Gluetun; no restart comes sooner than 6 s after a tunnel-up, whatever they say",
        },
        "obsolete",
        "obsolete",
        "v3.41.0 (85890520)",
        "",
    ),
    // Control server.
    row(
        &["HTTP_CONTROL_SERVER_ADDRESS"],
        Implemented,
        "`:8000`",
        "`:8000`",
        "v3.28",
        "",
    ),
    row(
        &["HTTP_CONTROL_SERVER_LOG"],
        NoEffect {
            why: "requests are not logged one by one",
        },
        "`on`",
        "`on`",
        "v3.5",
        "",
    ),
    row(
        &["HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH"],
        Implemented,
        "`/gluetun/auth/config.toml`",
        "same",
        "v3.40.0",
        "",
    ),
    row(
        &["HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE"],
        Implemented,
        "`{}`",
        "`{}`",
        "v3.41.0 (3fac02a8); every route needs a role on master (0c3e5d94)",
        "as master: a JSON role (`auth` `none`, `basic` or `apikey`) for every route no file role lists; `{}`: none, and without a roles file every route answers 401 (v3.41.1 left 16 routes public). Its value is a secret",
    ),
    // Proxies.
    row(
        &["HTTPPROXY", "PROXY", "TINYPROXY"],
        Refused {
            unless: OFF,
            why: "there is no HTTP proxy in leakhound's gateway",
        },
        "empty (off)",
        "empty (off)",
        "–",
        "",
    ),
    family(
        "HTTP proxy settings",
        &[
            "HTTPPROXY_LISTENING_ADDRESS",
            "HTTPPROXY_USER",
            "HTTPPROXY_PASSWORD",
            "HTTPPROXY_USER_SECRETFILE",
            "HTTPPROXY_PASSWORD_SECRETFILE",
            "HTTPPROXY_STEALTH",
            "HTTPPROXY_LOG",
            "HTTPPROXY_PORT",
            "TINYPROXY_PORT",
            "PROXY_PORT",
            "PROXY_USER",
            "PROXY_PASSWORD",
            "TINYPROXY_USER",
            "TINYPROXY_PASSWORD",
            "PROXY_LOG",
            "TINYPROXY_LOG",
        ],
        NoEffect {
            why: "settings of the HTTP proxy, which is refused",
        },
        "`:8888`, ...",
        "same",
        "v3.27",
    ),
    row(
        &["SHADOWSOCKS"],
        Refused {
            unless: OFF,
            why: "there is no Shadowsocks server in leakhound's gateway",
        },
        "`off`",
        "`off`",
        "–",
        "",
    ),
    family(
        "Shadowsocks settings",
        &[
            "SHADOWSOCKS_LISTENING_ADDRESS",
            "SHADOWSOCKS_PORT",
            "SHADOWSOCKS_PASSWORD",
            "SHADOWSOCKS_PASSWORD_SECRETFILE",
            "SHADOWSOCKS_CIPHER",
            "SHADOWSOCKS_METHOD",
            "SHADOWSOCKS_LOG",
        ],
        NoEffect {
            why: "settings of the Shadowsocks server, which is refused",
        },
        "`:8388`, ...",
        "same",
        "v3.22",
    ),
    // Port forwarding.
    row(
        &["VPN_PORT_FORWARDING"],
        Implemented,
        "`off`",
        "`off`",
        "v3.34",
        "NAT-PMP through the tunnel (with leakhound's own VPN_PORT_FORWARDING_GATEWAY)",
    ),
    row(
        &[
            "PORT_FORWARDING",
            "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING",
        ],
        Mapped {
            to: "VPN_PORT_FORWARDING",
        },
        "retired",
        "retired",
        "v3.34",
        "",
    ),
    row(
        &["VPN_PORT_FORWARDING_PROVIDER"],
        Refused {
            unless: &["protonvpn"],
            why: "only NAT-PMP (ProtonVPN's way) is offered",
        },
        "empty",
        "empty",
        "v3.36",
        "",
    ),
    row(
        &["VPN_PORT_FORWARDING_STATUS_FILE"],
        Implemented,
        "`/tmp/gluetun/forwarded_port`",
        "same",
        "v3.34",
        "",
    ),
    row(
        &[
            "PORT_FORWARDING_STATUS_FILE",
            "PRIVATE_INTERNET_ACCESS_VPN_PORT_FORWARDING_STATUS_FILE",
        ],
        Mapped {
            to: "VPN_PORT_FORWARDING_STATUS_FILE",
        },
        "retired",
        "retired",
        "v3.34",
        "",
    ),
    row(
        &["VPN_PORT_FORWARDING_LISTENING_PORTS"],
        Implemented,
        "–",
        "`0`",
        "master only (d5eeec6f)",
        "one port only",
    ),
    row(
        &["VPN_PORT_FORWARDING_LISTENING_PORT"],
        Mapped {
            to: "VPN_PORT_FORWARDING_LISTENING_PORTS",
        },
        "`0` (current)",
        "retired",
        "v3.37; retired on master (d5eeec6f)",
        "",
    ),
    row(
        &["VPN_PORT_FORWARDING_PORTS_COUNT"],
        Refused {
            unless: &["1"],
            why: "one port is asked for",
        },
        "–",
        "`1`",
        "master only (d5eeec6f)",
        "",
    ),
    row(
        &[
            "VPN_PORT_FORWARDING_UP_COMMAND",
            "VPN_PORT_FORWARDING_DOWN_COMMAND",
        ],
        Implemented,
        "empty",
        "empty",
        "v3.40.0",
        "split like shell words and run without a shell, as Gluetun does (it used to be `sh -c`)",
    ),
    row(
        &[
            "VPN_PORT_FORWARDING_USERNAME",
            "VPN_PORT_FORWARDING_PASSWORD",
        ],
        NoEffect {
            why: "Private Internet Access's port-forwarding login; NAT-PMP needs none",
        },
        "empty",
        "empty",
        "–",
        "",
    ),
    // Public IP.
    row(
        &["PUBLICIP_ENABLED"],
        Implemented,
        "`on`",
        "`on`",
        "v3.40.0",
        "`off`: no public-IP lookup (it is asked of leakhound's own PUBLICIP_URL)",
    ),
    row(
        &["PUBLICIP_PERIOD"],
        Mapped {
            to: "PUBLICIP_ENABLED",
        },
        "retired",
        "retired",
        "v3.40.0",
        "`0` means off",
    ),
    row(
        &["PUBLICIP_API", "PUBLICIP_API_TOKEN"],
        NoEffect {
            why: "no public-IP service is asked but leakhound's own PUBLICIP_URL",
        },
        "`ipinfo,ifconfigco,ip2location,cloudflare`",
        "same",
        "v3.38; `echoip#` v3.40.0",
        "",
    ),
    row(
        &["PUBLICIP_FILE"],
        Implemented,
        "`/tmp/gluetun/ip`",
        "same",
        "v3.9",
        "",
    ),
    row(
        &["IP_STATUS_FILE"],
        Mapped {
            to: "PUBLICIP_FILE",
        },
        "retired",
        "retired",
        "v3.9",
        "",
    ),
    // Updater, storage and the rest.
    family(
        "Servers updater",
        &[
            "UPDATER_PERIOD",
            "UPDATER_MIN_RATIO",
            "UPDATER_VPN_SERVICE_PROVIDERS",
            "UPDATER_PREFER_DIRECT_DOWNLOAD",
            "UPDATER_PROTONVPN_EMAIL",
            "UPDATER_PROTONVPN_PASSWORD",
            "UPDATER_PROTONVPN_USERNAME",
        ],
        NoEffect {
            why: "there is no servers data to update (the `custom` provider)",
        },
        "`0`, `0.8`, ...",
        "same (+`UPDATER_PREFER_DIRECT_DOWNLOAD=no`)",
        "v3.3 to master",
    ),
    family(
        "Servers storage",
        &[
            "STORAGE_FILEPATH",
            "STORAGE_SERVERS_ENABLED",
            "STORAGE_SERVERS_DIRECTORY_PATH",
        ],
        NoEffect {
            why: "there is no servers data to store (the `custom` provider)",
        },
        "`/gluetun/servers.json`",
        "`on`, `/gluetun/servers/`",
        "v3.40.0; directory on master (8f823769)",
    ),
    row(
        &["VERSION_INFORMATION"],
        NoEffect {
            why: "the gateway never asks GitHub for a newer version",
        },
        "`on`",
        "`on`",
        "v3.3",
        "",
    ),
    row(
        &["BORINGPOLL_GLUETUNCOM"],
        NoEffect {
            why: "the gateway never polls gluetun.com",
        },
        "–",
        "unset (off)",
        "master only (457e5597)",
        "",
    ),
    row(
        &["LOG_LEVEL"],
        NoEffect {
            why: "leakhound's own LEAKHOUND_LOG chooses the log level",
        },
        "`info`",
        "`info`",
        "v3.24",
        "",
    ),
    row(
        &["TZ", "PUID", "PGID"],
        NoEffect {
            why: "the gateway writes its files as the user it runs as, with UTC times (the retired `UID`, `GID` are not read: shells set them)",
        },
        "empty, `1000`, `1000`",
        "same",
        "v3.0, v3.10",
        "",
    ),
    family(
        "Profiling",
        &[
            "PPROF_ENABLED",
            "PPROF_BLOCK_PROFILE_RATE",
            "PPROF_MUTEX_PROFILE_RATE",
            "PPROF_HTTP_SERVER_ADDRESS",
        ],
        NoEffect {
            why: "Go's profiler; there is no such server here",
        },
        "`no`, `0`, `0`, `:6060`",
        "same",
        "v3.28",
    ),
];

impl Status {
    /// The status column's words.
    pub fn label(&self) -> String {
        match self {
            Status::Implemented => "implemented".into(),
            Status::Mapped { to } => {
                let names: Vec<String> = to.split(", ").map(|n| format!("`{n}`")).collect();
                format!("mapped to {}", names.join(", "))
            }
            Status::NoEffect { .. } => "accepted without effect".into(),
            Status::Refused { unless, .. } => {
                let ok: Vec<String> = unless.iter().map(|v| format!("`{v}`")).collect();
                format!("refused unless {}", ok.join(" or "))
            }
        }
    }
}

/// The row naming `name`, if any.
pub fn find(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.names.contains(&name))
}

/// What a configuration finding says about a variable a user set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// Today's Gluetun reads the name with another meaning than it had.
    MeaningChanged,
    /// A retired name, still read, as the current one.
    Retired,
    /// Accepted, without effect.
    NoEffect,
    /// An outbound subnet that covers public addresses: Gluetun sends
    /// them around the tunnel (TunnelCrack LocalNet); this gateway leaves
    /// the subnet out.
    PublicSubnet,
}

/// A variable that today's Gluetun (and leakhound's gateway, which follows
/// it) reads otherwise than the name suggests: shown to the user in the
/// reports as a configuration finding. Names only, never values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub variable: String,
    pub kind: FindingKind,
    /// The current name it is read as (a retired name's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now_read_as: Option<String>,
    /// The Gluetun version where it changed.
    pub gluetun: String,
    /// What it does now, in a sentence.
    pub says: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            FindingKind::MeaningChanged => "meaning changed",
            FindingKind::Retired => "retired name",
            FindingKind::NoEffect => "no effect",
            FindingKind::PublicSubnet => "covers public addresses",
        };
        if self.gluetun.starts_with('v') {
            write!(
                f,
                "{}: {what} since Gluetun {}",
                self.variable, self.gluetun
            )?;
        } else {
            write!(
                f,
                "{}: {what} (in Gluetun: {})",
                self.variable, self.gluetun
            )?;
        }
        if let Some(to) = &self.now_read_as {
            write!(f, ", read as {to}")?;
        }
        write!(f, ": {}", self.says)
    }
}

/// The finding for an outbound subnet that covers public addresses
/// (TunnelCrack LocalNet, CVE-2023-36672 and CVE-2023-35838).
pub fn public_subnet_finding(subnet: &ipnet::IpNet) -> Finding {
    Finding {
        variable: "FIREWALL_OUTBOUND_SUBNETS".into(),
        kind: FindingKind::PublicSubnet,
        now_read_as: None,
        gluetun: "every version".into(),
        says: format!(
            "{subnet} is no local network: Gluetun lets traffic to it out around the tunnel \
             (TunnelCrack LocalNet, CVE-2023-36672, CVE-2023-35838); leakhound's gateway leaves \
             it out, and the lab never sends to real public addresses (the local-net scenario \
             shows the class with a documentation range)"
        ),
    }
}

/// The configuration finding for a variable set to a non-empty value, if
/// today's Gluetun reads it otherwise than its name says: a changed
/// meaning, a retired name, or no effect. Implemented and refused
/// variables have none (a refused one stops the gateway instead).
pub fn finding(name: &str) -> Option<Finding> {
    let row = find(name)?;
    let plain = |s: &str| s.replace("**meaning changed**: ", "").replace('`', "");
    let (kind, now_read_as, says) = match row.status {
        Status::Mapped { to } if row.here.starts_with("**meaning changed**") => (
            FindingKind::MeaningChanged,
            Some(to.to_string()),
            plain(row.here),
        ),
        Status::Mapped { to } => (
            FindingKind::Retired,
            Some(to.to_string()),
            if row.here.is_empty() {
                format!("rename it to {to}")
            } else {
                plain(row.here)
            },
        ),
        Status::NoEffect { why } => (FindingKind::NoEffect, None, plain(why)),
        Status::Implemented | Status::Refused { .. } => return None,
    };
    Some(Finding {
        variable: name.to_string(),
        kind,
        now_read_as,
        gluetun: plain(row.changed),
        says,
    })
}

/// The configuration findings for the variables `names` (each once, in
/// the order given).
pub fn findings<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Finding> {
    let mut seen = std::collections::BTreeSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(*n))
        .filter_map(finding)
        .collect()
}

/// (implemented, mapped, accepted without effect, refused), counted in
/// rows.
pub fn counts() -> (usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0);
    for v in VARIABLES {
        match v.status {
            Status::Implemented => c.0 += 1,
            Status::Mapped { .. } => c.1 += 1,
            Status::NoEffect { .. } => c.2 += 1,
            Status::Refused { .. } => c.3 += 1,
        }
    }
    c
}

/// A cell's text with `|` escaped, so a table row stays one row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The table as Markdown: what docs/gluetun-variables.md holds between its
/// markers.
pub fn render_markdown() -> String {
    let mut out = String::from(
        "| variable | leakhound's gateway | v3.41.1 (`:v3`) | master (`:latest`) | changed in Gluetun | notes |\n|---|---|---|---|---|---|\n",
    );
    for v in VARIABLES {
        let names: Vec<String> = v.names.iter().map(|n| format!("`{n}`")).collect();
        let first = match v.family {
            Some(f) => format!("{f}: {}", names.join(", ")),
            None => names.join(", "),
        };
        let notes = match v.status {
            Status::NoEffect { why } | Status::Refused { why, .. } => why,
            _ => v.here,
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            cell(&first),
            cell(&v.status.label()),
            cell(v.v3_41_1),
            cell(v.master),
            cell(v.changed),
            cell(notes),
        ));
    }
    let (i, m, n, r) = counts();
    out.push_str(&format!(
        "\n{} rows: {i} implemented, {m} mapped from a retired name, {n} accepted without effect, {r} refused.\n",
        VARIABLES.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markers around the generated part of the document.
    const BEGIN: &str = "<!-- begin: generated from crates/gateway/src/variables.rs -->";
    const END: &str = "<!-- end: generated -->";

    #[test]
    fn the_document_holds_the_codes_table() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/gluetun-variables.md"
        );
        let doc = std::fs::read_to_string(path).expect("docs/gluetun-variables.md");
        let start = doc.find(BEGIN).expect("the begin marker") + BEGIN.len();
        let end = doc.find(END).expect("the end marker");
        let in_doc = doc[start..end].trim();
        let rendered = render_markdown();
        assert!(
            in_doc == rendered.trim(),
            "docs/gluetun-variables.md's table is not crates/gateway/src/variables.rs's: paste this between the markers:\n{rendered}"
        );
    }

    #[test]
    fn every_name_is_in_one_row_only_and_no_cell_is_empty() {
        let mut seen = std::collections::BTreeSet::new();
        for v in VARIABLES {
            assert!(!v.names.is_empty());
            for n in v.names {
                assert!(seen.insert(*n), "{n} is in two rows");
                assert!(
                    n.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                    "{n}"
                );
            }
            assert!(!v.v3_41_1.is_empty() && !v.master.is_empty() && !v.changed.is_empty());
            if let Status::Mapped { to } = v.status {
                for t in to.split(", ") {
                    let target = find(t).unwrap_or_else(|| panic!("{t} has no row"));
                    assert!(
                        !matches!(target.status, Status::Mapped { .. }),
                        "{t} is retired too"
                    );
                }
            }
        }
        // The retired names the brief names are all there.
        for n in ["DNS_ADDRESS", "DNS_KEEP_NAMESERVER", "DOT", "DOT_PROVIDERS"] {
            assert!(find(n).is_some(), "{n}");
        }
    }
    #[test]
    fn the_seed_s_dns_variables_are_findings_and_current_ones_are_not() {
        let f = findings([
            "DNS_KEEP_NAMESERVER",
            "DOT",
            "DNS_ADDRESS",
            "BLOCK_MALICIOUS",
            "DOT",
        ]);
        let kinds: Vec<(&str, &FindingKind)> =
            f.iter().map(|f| (f.variable.as_str(), &f.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("DNS_KEEP_NAMESERVER", &FindingKind::NoEffect),
                ("DOT", &FindingKind::MeaningChanged),
                ("DNS_ADDRESS", &FindingKind::Retired),
            ]
        );
        assert_eq!(f[1].now_read_as.as_deref(), Some("DNS_SERVER"));
        assert!(
            f[1].to_string()
                .contains("switches the built-in DNS server off"),
            "{}",
            f[1]
        );
        assert_eq!(
            f[2].now_read_as.as_deref(),
            Some("DNS_UPSTREAM_PLAIN_ADDRESSES")
        );
        assert!(
            !f.iter()
                .any(|f| f.says.contains('`') || f.says.contains("**"))
        );
        assert_eq!(finding("WIREGUARD_PRIVATE_KEY"), None);
        assert_eq!(finding("NOT_A_GLUETUN_VARIABLE"), None);
    }
}
