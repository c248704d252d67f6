//! ICMP and ICMPv6 echo messages as raw sockets send and receive them: the
//! request a probe or health check writes, and the test that a received
//! datagram is the reply to it. Pure, so it is unit-tested on byte arrays.

/// An echo request (ICMP type 8, or ICMPv6 type 128) carrying `payload`.
/// The ICMPv4 checksum is filled in; the kernel computes ICMPv6 checksums
/// for raw ICMPv6 sockets itself (it needs the addresses of the pseudo
/// header), so that field stays zero.
pub fn request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut msg = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(payload);
    if !v6 {
        let c = pnet_packet::util::checksum(&msg, 1);
        msg[2..4].copy_from_slice(&c.to_be_bytes());
    }
    msg
}

/// Whether `datagram`, as a raw socket of that family delivers it (IPv4
/// raw sockets include the IP header, IPv6 ones do not), is the echo reply
/// to a request with `id` and `payload`.
pub fn is_reply(v6: bool, datagram: &[u8], id: u16, payload: &[u8]) -> bool {
    let icmp = if v6 {
        datagram
    } else {
        let Some(first) = datagram.first() else {
            return false;
        };
        datagram
            .get(4 * (first & 0x0f) as usize..)
            .unwrap_or_default()
    };
    icmp.len() >= 8
        && icmp[0] == if v6 { 129 } else { 0 }
        && icmp[1] == 0
        && icmp[4..6] == id.to_be_bytes()
        && icmp[8..] == *payload
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply a host makes: type 0 (or 129), same id, seq and payload.
    fn reply_to(v6: bool, req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        r[0] = if v6 { 129 } else { 0 };
        r
    }

    fn with_ipv4_header(icmp: &[u8]) -> Vec<u8> {
        let mut d = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 192, 0, 2, 80, 10, 64, 0, 2,
        ];
        d.extend_from_slice(icmp);
        d
    }

    #[test]
    fn an_ipv4_request_has_a_valid_checksum() {
        let r = request(false, 0x1234, 1, b"leakhound");
        assert_eq!(&r[..2], &[8, 0]);
        assert_eq!(&r[4..8], &[0x12, 0x34, 0, 1]);
        // A message with its checksum in place sums to zero.
        assert_eq!(pnet_packet::util::checksum(&r, 99), 0);
        let ipv6 = request(true, 1, 1, b"x");
        assert_eq!(ipv6[0], 128);
        assert_eq!(&ipv6[2..4], &[0, 0]);
    }

    #[test]
    fn only_the_matching_reply_counts() {
        let req = request(false, 7, 1, b"nonce");
        assert!(is_reply(
            false,
            &with_ipv4_header(&reply_to(false, &req)),
            7,
            b"nonce"
        ));
        // Our own request looped back, another id, another payload, garbage.
        assert!(!is_reply(false, &with_ipv4_header(&req), 7, b"nonce"));
        assert!(!is_reply(
            false,
            &with_ipv4_header(&reply_to(false, &req)),
            8,
            b"nonce"
        ));
        assert!(!is_reply(
            false,
            &with_ipv4_header(&reply_to(false, &req)),
            7,
            b"other"
        ));
        assert!(!is_reply(false, &[], 7, b"nonce"));
        assert!(!is_reply(false, &[0x4f, 1, 2], 7, b"nonce"));
        let req6 = request(true, 9, 1, b"n6");
        assert!(is_reply(true, &reply_to(true, &req6), 9, b"n6"));
        assert!(!is_reply(true, &req6, 9, b"n6"));
        assert!(!is_reply(true, &[129, 0, 0], 9, b"n6"));
    }
}
