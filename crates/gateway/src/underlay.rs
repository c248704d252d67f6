//! The underlay path to the endpoint (interface and next hop), read from
//! the kernel's route listings in `/proc/net/route` and
//! `/proc/net/ipv6_route` of the gateway's namespace: one file read, no
//! netlink connection and no async runtime, so the kill switch can be
//! closed the moment the configuration is parsed. The parsing is pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Where datagrams to the endpoint leave, as found before the tunnel takes
/// over the default route.
#[derive(Debug, Clone, PartialEq)]
pub struct Underlay {
    pub ifname: String,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum UnderlayError {
    #[error("reading {file}")]
    Read {
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} line {line}: {why}")]
    Parse {
        file: &'static str,
        line: usize,
        why: String,
    },
}

/// One route of a listing: destination, prefix, next hop, interface.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    dst: IpAddr,
    prefix: u8,
    gateway: Option<IpAddr>,
    ifname: String,
}

const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

fn bad(file: &'static str, line: usize, why: impl Into<String>) -> UnderlayError {
    UnderlayError::Parse {
        file,
        line,
        why: why.into(),
    }
}

fn hex_u32(file: &'static str, line: usize, s: &str) -> Result<u32, UnderlayError> {
    u32::from_str_radix(s, 16).map_err(|_| bad(file, line, format!("{s:?} is not hex")))
}

/// `/proc/net/route`: the main IPv4 table; addresses are hex in host
/// (little-endian) byte order, the mask gives the prefix.
fn parse_v4(text: &str) -> Result<Vec<Entry>, UnderlayError> {
    const F: &str = "/proc/net/route";
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 8 {
            return Err(bad(F, i + 1, "fewer than 8 fields"));
        }
        let flags = hex_u32(F, i + 1, f[3])?;
        if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 {
            continue;
        }
        // The kernel prints the network-order word as a host integer.
        let addr = |s| hex_u32(F, i + 1, s).map(|v| Ipv4Addr::from(v.to_ne_bytes()));
        let (dst, gw, mask) = (addr(f[1])?, addr(f[2])?, addr(f[7])?);
        let prefix = u32::from(mask).leading_ones() as u8;
        out.push(Entry {
            dst: dst.into(),
            prefix,
            gateway: (!gw.is_unspecified()).then_some(gw.into()),
            ifname: f[0].to_string(),
        });
    }
    Ok(out)
}

/// `/proc/net/ipv6_route`: every table; addresses as 32 hex digits in
/// network order. Routes through `lo` (local addresses) are not a way out.
fn parse_v6(text: &str) -> Result<Vec<Entry>, UnderlayError> {
    const F: &str = "/proc/net/ipv6_route";
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f.len() < 10 {
            return Err(bad(F, i + 1, "fewer than 10 fields"));
        }
        let addr = |s: &str| {
            u128::from_str_radix(s, 16)
                .map(Ipv6Addr::from)
                .map_err(|_| bad(F, i + 1, format!("{s:?} is not an IPv6 address in hex")))
        };
        let flags = hex_u32(F, i + 1, f[8])?;
        if flags & RTF_UP == 0 || flags & RTF_REJECT != 0 || f[9] == "lo" {
            continue;
        }
        let prefix = hex_u32(F, i + 1, f[1])?;
        if prefix > 128 {
            return Err(bad(F, i + 1, format!("prefix length {prefix}")));
        }
        let gw = addr(f[4])?;
        out.push(Entry {
            dst: addr(f[0])?.into(),
            prefix: prefix as u8,
            gateway: (!gw.is_unspecified()).then_some(gw.into()),
            ifname: f[9].to_string(),
        });
    }
    Ok(out)
}

fn contains(e: &Entry, ip: IpAddr) -> bool {
    ipnet::IpNet::new(e.dst, e.prefix).is_ok_and(|n| n.contains(&ip))
}

/// The longest-prefix route towards `dst` in a listing's text (the format
/// follows `dst`'s family). `Ok(None)`: no route at all.
pub fn pick(listing: &str, dst: IpAddr) -> Result<Option<(String, Option<IpAddr>)>, UnderlayError> {
    let entries = if dst.is_ipv6() {
        parse_v6(listing)?
    } else {
        parse_v4(listing)?
    };
    Ok(entries
        .into_iter()
        .filter(|e| contains(e, dst))
        .max_by_key(|e| e.prefix)
        .map(|e| (e.ifname, e.gateway)))
}

/// The underlay towards `dst` in the calling thread's namespace.
pub fn find(dst: IpAddr) -> Result<Option<Underlay>, UnderlayError> {
    let file = if dst.is_ipv6() {
        "/proc/net/ipv6_route"
    } else {
        "/proc/net/route"
    };
    // /proc/net follows the reading thread's namespace.
    let path = format!("/proc/thread-self/net/{}", &file["/proc/net/".len()..]);
    let text =
        std::fs::read_to_string(path).map_err(|source| UnderlayError::Read { file, source })?;
    Ok(pick(&text, dst)?.map(|(ifname, gateway)| Underlay {
        oif: nix::net::if_::if_nametoindex(ifname.as_str()).ok(),
        ifname,
        gateway,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010015AC\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000015AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
wg0\t0A7100CB\t00000000\t0001\t0\t0\t0\tFFFFFFFF\t0\t0\t0
eth1\t0000A8C0\t00000000\t0201\t0\t0\t0\t0000FFFF\t0\t0\t0
";

    #[test]
    fn v4_longest_prefix_wins_and_gateway_is_decoded() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            pick(V4, ip("192.0.2.1")).unwrap(),
            Some(("eth0".into(), Some(ip("172.21.0.1"))))
        );
        assert_eq!(
            pick(V4, ip("172.21.3.4")).unwrap(),
            Some(("eth0".into(), None))
        );
        assert_eq!(
            pick(V4, ip("203.0.113.10")).unwrap(),
            Some(("wg0".into(), None))
        );
        // A reject route is no way out: the default route carries it.
        assert_eq!(
            pick(V4, ip("192.168.1.1")).unwrap().unwrap().0,
            "eth0".to_string()
        );
    }

    #[test]
    fn v6_skips_loopback_and_reads_next_hops() {
        let text = "\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 20010db8002100000000000000000001 00000400 00000001 00000000 00000003     eth0
20010db8002100000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
20010db8002100000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo
";
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            pick(text, ip("2001:db8:77::77")).unwrap(),
            Some(("eth0".into(), Some(ip("2001:db8:21::1"))))
        );
        assert_eq!(
            pick(text, ip("2001:db8:21::2")).unwrap(),
            Some(("eth0".into(), None))
        );
        assert_eq!(pick("", ip("2001:db8::1")).unwrap(), None);
    }

    #[test]
    fn garbage_names_the_file_and_line() {
        let e = pick("h\neth0 zz 0 1 0 0 0 0\n", "192.0.2.1".parse().unwrap()).unwrap_err();
        assert_eq!(e.to_string(), "/proc/net/route line 2: \"zz\" is not hex");
    }

    #[test]
    fn the_running_namespace_has_a_readable_listing() {
        // Whatever this machine's routes are, the reader parses them.
        find("127.0.0.1".parse().unwrap()).unwrap();
    }
}
