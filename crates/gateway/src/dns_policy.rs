//! What the gateway's resolver answers without asking upstream, and what it
//! removes from upstream answers. Pure: names and records in, decisions out.
//!
//! * Blocklists (BLOCK_MALICIOUS, BLOCK_SURVEILLANCE, BLOCK_ADS): a name on a
//!   list, or under one, is refused, unless DNS_UNBLOCK_HOSTNAMES exempts it.
//! * DoH hostnames (well-known ones, plus DNS_BLOCK_DOH_HOSTNAMES, plus
//!   Firefox's `use-application-dns.net` canary) answer NXDOMAIN, so apps
//!   cannot find a way around the gateway's resolver.
//! * Rebinding protection: private, loopback and link-local addresses are
//!   removed from upstream answers, also when an IPv6 address carries them
//!   (mapped, compatible, NAT64, 6to4), unless the name is in
//!   DNS_REBINDING_PROTECTION_EXEMPT_HOSTNAMES.
//! * Blocked addresses (DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES): an answer
//!   holding one of them is refused as a whole, as Gluetun's filter does
//!   (qdm12/dns `mapfilter.FilterResponse`), exemptions or not.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Well-known DNS-over-HTTPS hostnames (and the canary Firefox asks before
/// enabling DoH by itself).
pub const KNOWN_DOH_HOSTNAMES: [&str; 11] = [
    "use-application-dns.net",
    "dns.google",
    "cloudflare-dns.com",
    "one.one.one.one",
    "dns.quad9.net",
    "doh.opendns.com",
    "dns.adguard.com",
    "dns.adguard-dns.com",
    "dns.nextdns.io",
    "doh.cleanbrowsing.org",
    "doh.mullvad.net",
];

/// A set of names; a name matches if it or any parent is in the set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NameSet(HashSet<String>);

/// Lower case, no trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

impl NameSet {
    pub fn insert(&mut self, name: &str) {
        let n = normalize(name);
        if !n.is_empty() {
            self.0.insert(n);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True if `name` or one of its parent domains is in the set.
    pub fn matches(&self, name: &str) -> bool {
        self.matches_normalized(&normalize(name))
    }

    /// [`NameSet::matches`] for a name already in [`normalize`]d form.
    pub fn matches_normalized(&self, n: &str) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let mut rest = n;
        loop {
            if self.0.contains(rest) {
                return true;
            }
            match rest.split_once('.') {
                Some((_, parent)) => rest = parent,
                None => return false,
            }
        }
    }

    /// Reads a list: one name per line, or hosts-file lines
    /// (`0.0.0.0 name`); `#` starts a comment. Returns the names it could
    /// not accept, with their line numbers, so a bad list is reported.
    pub fn parse_list(&mut self, text: &str) -> Vec<(usize, String)> {
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            // `name`, or hosts-file `ADDRESS name [name...]`.
            let names = match words.as_slice() {
                [one] => vec![*one],
                [addr, rest @ ..] if addr.parse::<IpAddr>().is_ok() => rest.to_vec(),
                _ => vec![],
            };
            if names.is_empty() || !names.iter().all(|n| is_hostname(n)) {
                bad.push((i + 1, line.to_string()));
                continue;
            }
            for n in names {
                self.insert(n);
            }
        }
        bad
    }
}

pub(crate) fn is_hostname(s: &str) -> bool {
    let s = s.trim_end_matches('.');
    s.parse::<IpAddr>().is_err()
        && !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// What the resolver does with a question before asking upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Ask,
    /// On a blocklist: REFUSED.
    Blocked,
    /// A DoH hostname: NXDOMAIN.
    DohName,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsPolicy {
    pub blocked: NameSet,
    pub unblocked: NameSet,
    pub doh_names: NameSet,
    pub rebinding_exempt: NameSet,
    /// DNS_BLOCK_IPS (as host prefixes) and DNS_BLOCK_IP_PREFIXES.
    pub blocked_ips: Vec<ipnet::IpNet>,
}

impl DnsPolicy {
    pub fn decide(&self, name: &str) -> Decision {
        self.decide_normalized(&normalize(name))
    }

    /// [`DnsPolicy::decide`] for a name already in [`normalize`]d form (the
    /// resolver's fast path has it so).
    pub fn decide_normalized(&self, name: &str) -> Decision {
        if self.doh_names.matches_normalized(name) {
            Decision::DohName
        } else if self.blocked.matches_normalized(name) && !self.unblocked.matches_normalized(name)
        {
            Decision::Blocked
        } else {
            Decision::Ask
        }
    }

    /// Whether an answer holding `ip` must be refused whole
    /// (DNS_BLOCK_IPS, DNS_BLOCK_IP_PREFIXES).
    pub fn answer_blocked(&self, ip: IpAddr) -> bool {
        self.blocked_ips.iter().any(|n| n.contains(&ip))
    }

    /// Whether an address in an answer for `name` may be passed on.
    pub fn address_allowed(&self, name: &str, ip: IpAddr) -> bool {
        !is_private(ip) || self.rebinding_exempt.matches(name)
    }
}

/// Addresses a public name must not resolve to (DNS rebinding): private,
/// shared (CGNAT), loopback, link-local, unique-local, "this network"
/// (0.0.0.0/8), NAT64's local-use prefix 64:ff9b:1::/48, and any IPv6
/// address carrying one of those IPv4 addresses (see [`embedded_ipv4`]).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[..3] == [0x64, 0xff9b, 1]
                || embedded_ipv4(v6).is_some_and(|v4| is_private(v4.into()))
        }
    }
}

/// The IPv4 address an IPv6 address carries, where the kernel or a
/// translator on the way would reach that IPv4 address: IPv4-mapped
/// `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64's well-known
/// prefix `64:ff9b::a.b.c.d` (RFC 6052) and 6to4 `2002:AABB:CCDD::/48`
/// (RFC 3056).
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    if let Some(v4) = v6.to_ipv4() {
        return Some(v4);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> DnsPolicy {
        let mut p = DnsPolicy::default();
        assert!(
            p.blocked
                .parse_list("# malware\nmalware.lab\n0.0.0.0 tracker.lab # hosts format\n\n")
                .is_empty()
        );
        p.unblocked.insert("good.malware.lab");
        for n in KNOWN_DOH_HOSTNAMES {
            p.doh_names.insert(n);
        }
        p.rebinding_exempt.insert("nas.home.arpa");
        p
    }

    #[test]
    fn listed_names_and_their_subdomains_are_blocked() {
        let p = policy();
        assert_eq!(p.decide("malware.lab."), Decision::Blocked);
        assert_eq!(p.decide("X1.Malware.LAB"), Decision::Blocked);
        assert_eq!(p.decide("tracker.lab"), Decision::Blocked);
        assert_eq!(p.decide("notmalware.lab"), Decision::Ask);
        assert_eq!(p.decide("lab"), Decision::Ask);
        assert_eq!(p.decide("good.malware.lab"), Decision::Ask);
        assert_eq!(p.decide("x.good.malware.lab"), Decision::Ask);
    }

    #[test]
    fn doh_hostnames_and_the_firefox_canary_are_nxdomain() {
        let p = policy();
        assert_eq!(p.decide("use-application-dns.net."), Decision::DohName);
        assert_eq!(p.decide("dns.google"), Decision::DohName);
        assert_eq!(p.decide("mozilla.cloudflare-dns.com"), Decision::DohName);
        assert_eq!(p.decide("google.com"), Decision::Ask);
    }

    #[test]
    fn bad_list_lines_are_reported_with_their_numbers() {
        let mut s = NameSet::default();
        let bad = s.parse_list("ok.lab\nbad name!\n-dash.lab\n0.0.0.0\n");
        assert_eq!(s.len(), 1);
        assert_eq!(
            bad.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
    }

    #[test]
    fn private_answers_are_dropped_unless_exempt() {
        let p = policy();
        for ip in [
            "192.168.1.1",
            "10.0.0.1",
            "172.16.5.4",
            "127.0.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:192.168.1.1",
            // "This network", not only 0.0.0.0 itself.
            "0.1.2.3",
            "0.255.255.255",
            // IPv4-compatible, NAT64 (well-known and local-use), 6to4.
            "::192.168.1.1",
            "::10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::192.168.1.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::c000:250",
            "2002:c0a8:0101::1",
            "2002:0a00:0001:1::5",
            "2002:7f00:0001::",
            "2002:6440:0001::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!p.address_allowed("evil.example", ip), "{ip}");
            assert!(p.address_allowed("nas.home.arpa", ip), "{ip}");
        }
        for ip in [
            "192.0.2.80",
            "203.0.113.77",
            "2001:db8::1",
            "100.128.0.1",
            "1.0.0.1",
            // The same forms carrying public addresses pass.
            "::ffff:192.0.2.80",
            "::203.0.113.77",
            "64:ff9b::192.0.2.80",
            "64:ff9b::cb00:714d",
            "2002:c000:0250::1",
            "2002:cb00:714d:1::5",
        ] {
            assert!(
                p.address_allowed("example.com", ip.parse().unwrap()),
                "{ip}"
            );
        }
    }

    #[test]
    fn blocked_addresses_and_prefixes_refuse_the_answer() {
        let mut p = policy();
        p.blocked_ips = vec![
            "192.0.2.66/32".parse().unwrap(),
            "198.18.0.0/15".parse().unwrap(),
            "2001:db8:bad::/48".parse().unwrap(),
        ];
        for ip in ["192.0.2.66", "198.19.1.1", "2001:db8:bad::1"] {
            assert!(p.answer_blocked(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.2.67", "198.20.0.1", "2001:db8:bae::1"] {
            assert!(!p.answer_blocked(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_ipv4_inside_an_ipv6_address_is_read_where_it_sits() {
        let v4 = |s: &str| embedded_ipv4(s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(v4("::ffff:10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(v4("::10.1.2.3").as_deref(), Some("10.1.2.3"));
        assert_eq!(v4("64:ff9b::a01:203").as_deref(), Some("10.1.2.3"));
        assert_eq!(v4("2002:a01:203:4::5").as_deref(), Some("10.1.2.3"));
        assert_eq!(v4("2001:db8::a01:203"), None);
        assert_eq!(v4("64:ff9b:0:0:1::a01:203"), None);
    }
}
