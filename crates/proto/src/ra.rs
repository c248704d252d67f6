//! IPv6 router advertisements (RFC 4861 section 4.2) as a rogue router on
//! the gateway's LAN sends them: itself as a default router and one prefix
//! for stateless address autoconfiguration (RFC 4862). Built here, sent by
//! the lab from the home router's namespace on a raw ICMPv6 socket (the
//! kernel fills in the checksum; the hop limit must be 255).

use std::net::Ipv6Addr;

/// ICMPv6 type of a router advertisement.
pub const TYPE: u8 = 134;
/// The hop limit a router advertisement must arrive with.
pub const HOP_LIMIT: u32 = 255;

/// What a rogue router says about itself and its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advert {
    /// The advertised prefix (its first 64 bits; SLAAC needs a /64).
    pub prefix: Ipv6Addr,
    /// How long, in seconds, the sender stays a default router (0: not
    /// one).
    pub router_lifetime: u16,
    /// How long, in seconds, addresses from the prefix stay valid and
    /// preferred.
    pub valid: u32,
    pub preferred: u32,
}

/// The ICMPv6 message (checksum zero: the kernel fills it in on a raw
/// ICMPv6 socket): the header, then a Prefix Information option with the
/// on-link and autonomous flags.
pub fn encode(a: &Advert) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + 32);
    m.extend_from_slice(&[TYPE, 0, 0, 0]);
    // Current hop limit 64, no M/O flags, router lifetime, reachable time
    // and retransmission timer unspecified.
    m.extend_from_slice(&[64, 0]);
    m.extend_from_slice(&a.router_lifetime.to_be_bytes());
    m.extend_from_slice(&[0; 8]);
    // Prefix Information: type 3, length 4 (32 bytes), /64, L and A.
    m.extend_from_slice(&[3, 4, 64, 0xc0]);
    m.extend_from_slice(&a.valid.to_be_bytes());
    m.extend_from_slice(&a.preferred.to_be_bytes());
    m.extend_from_slice(&[0; 4]);
    let mut prefix = a.prefix.octets();
    prefix[8..].fill(0);
    m.extend_from_slice(&prefix);
    m
}

/// Whether `addr` is inside the advertised /64.
pub fn in_prefix(prefix: Ipv6Addr, addr: Ipv6Addr) -> bool {
    prefix.octets()[..8] == addr.octets()[..8]
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::Packet;
    use pnet_packet::icmpv6::ndp::{NdpOptionTypes, RouterAdvertPacket};

    #[test]
    fn an_advert_parses_as_a_router_advertisement_with_its_prefix() {
        let a = Advert {
            prefix: "2001:db8:ad::1".parse().unwrap(),
            router_lifetime: 1800,
            valid: 86400,
            preferred: 14400,
        };
        let bytes = encode(&a);
        assert_eq!(bytes.len(), 48);
        let ra = RouterAdvertPacket::new(&bytes).expect("long enough");
        assert_eq!(ra.get_icmpv6_type().0, TYPE);
        assert_eq!(ra.get_hop_limit(), 64);
        assert_eq!(ra.get_lifetime(), 1800);
        let opts = ra.get_options();
        assert_eq!(opts.len(), 1, "{opts:?}");
        assert_eq!(opts[0].option_type, NdpOptionTypes::PrefixInformation);
        assert_eq!(opts[0].length, 4);
        let body = &opts[0].data;
        assert_eq!(body[0], 64, "prefix length");
        assert_eq!(body[1], 0xc0, "on-link and autonomous");
        assert_eq!(u32::from_be_bytes(body[2..6].try_into().unwrap()), 86400);
        assert_eq!(u32::from_be_bytes(body[6..10].try_into().unwrap()), 14400);
        // The host bits are cleared.
        let prefix: [u8; 16] = body[14..30].try_into().unwrap();
        assert_eq!(
            Ipv6Addr::from(prefix),
            "2001:db8:ad::".parse::<Ipv6Addr>().unwrap()
        );
        assert!(ra.payload().is_empty());
    }

    #[test]
    fn addresses_are_in_the_prefix_by_their_first_64_bits() {
        let p: Ipv6Addr = "2001:db8:ad::".parse().unwrap();
        assert!(in_prefix(p, "2001:db8:ad::abcd:1".parse().unwrap()));
        assert!(!in_prefix(p, "2001:db8:ad:1::1".parse().unwrap()));
        assert!(!in_prefix(p, "2001:db8:21::2".parse().unwrap()));
    }
}
