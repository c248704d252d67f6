//! BitTorrent as the lab's swarm needs it, pure: a single-file torrent made
//! from bytes (bencoded with serde_bencode, the info hash over the exact
//! `info` bytes), the peer wire handshake (BEP 3) both ways, what an HTTP
//! announce seen on a wire says about who asked, and a tracker's scrape
//! answer. No I/O.

use serde::{Deserialize, Serialize};

/// SHA-1 of `data`.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

/// The `info` dictionary of a single-file torrent (BEP 3). serde_bencode
/// writes a dictionary's keys sorted, as bencode requires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Info {
    length: u64,
    name: String,
    #[serde(rename = "piece length")]
    piece_length: u64,
    #[serde(with = "serde_bytes")]
    pieces: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct MetaInfo {
    announce: String,
    info: Info,
}

/// A torrent made for one run: the metainfo file's bytes and its info hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Torrent {
    pub name: String,
    pub bytes: Vec<u8>,
    pub info_hash: [u8; 20],
    pub length: u64,
}

impl Torrent {
    /// A single-file torrent of `data` named `name`, announced at
    /// `announce`, in pieces of `piece_length` bytes.
    pub fn make(name: &str, data: &[u8], piece_length: usize, announce: &str) -> Torrent {
        let pieces: Vec<u8> = data.chunks(piece_length.max(1)).flat_map(sha1).collect();
        let info = Info {
            length: data.len() as u64,
            name: name.to_string(),
            piece_length: piece_length as u64,
            pieces,
        };
        let info_bytes = serde_bencode::to_bytes(&info).expect("bencode of plain data");
        let meta = MetaInfo {
            announce: announce.to_string(),
            info,
        };
        Torrent {
            name: name.to_string(),
            bytes: serde_bencode::to_bytes(&meta).expect("bencode of plain data"),
            info_hash: sha1(&info_bytes),
            length: data.len() as u64,
        }
    }

    /// The info hash as 40 lowercase hex digits (qBittorrent's `hash`,
    /// opentracker's whitelist).
    pub fn hex_hash(&self) -> String {
        hex(&self.info_hash)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The protocol string of the peer wire handshake.
const PSTR: &[u8] = b"BitTorrent protocol";
/// Length of a handshake: pstrlen, pstr, reserved, info hash, peer id.
pub const HANDSHAKE_LEN: usize = 1 + 19 + 8 + 20 + 20;

/// A peer wire handshake for `info_hash` from `peer_id`.
pub fn handshake(info_hash: &[u8; 20], peer_id: &[u8; 20]) -> [u8; HANDSHAKE_LEN] {
    let mut h = [0u8; HANDSHAKE_LEN];
    h[0] = 19;
    h[1..20].copy_from_slice(PSTR);
    h[28..48].copy_from_slice(info_hash);
    h[48..68].copy_from_slice(peer_id);
    h
}

/// Why received bytes are not a peer handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0} bytes, a handshake has 68")]
    Short(usize),
    #[error("not a BitTorrent handshake")]
    NotBitTorrent,
}

/// The info hash a received handshake names, or why it is not one. Only
/// the first 48 bytes are needed (a peer may wait for ours before sending
/// its id).
pub fn parse_handshake(bytes: &[u8]) -> Result<[u8; 20], HandshakeError> {
    if bytes.len() < 48 {
        return Err(HandshakeError::Short(bytes.len()));
    }
    if bytes[0] != 19 || &bytes[1..20] != PSTR {
        return Err(HandshakeError::NotBitTorrent);
    }
    let mut h = [0u8; 20];
    h.copy_from_slice(&bytes[28..48]);
    Ok(h)
}

/// What an HTTP announce says: the torrent, the port the client listens on,
/// and every address it volunteers (`ip`, `ipv4`, `ipv6`, as BEP 3 and
/// BEP 7 allow).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Announce {
    pub info_hash: Vec<u8>,
    pub port: Option<u16>,
    pub addresses: Vec<String>,
    pub event: Option<String>,
}

/// Reads an HTTP request line (`GET /announce?... HTTP/1.1`); `None` when
/// it is not an announce.
pub fn parse_announce(line: &str) -> Option<Announce> {
    let target = line.split(' ').nth(1)?;
    let (path, query) = target.split_once('?')?;
    if !path.ends_with("/announce") {
        return None;
    }
    let mut a = Announce::default();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // `%xx` decoded; a malformed escape is kept as it is.
        let v: Vec<u8> = percent_encoding::percent_decode_str(v).collect();
        match k {
            "info_hash" => a.info_hash = v,
            "port" => a.port = String::from_utf8_lossy(&v).parse().ok(),
            "event" => a.event = Some(String::from_utf8_lossy(&v).into_owned()),
            "ip" | "ipv4" | "ipv6" => a.addresses.push(String::from_utf8_lossy(&v).into_owned()),
            _ => {}
        }
    }
    Some(a)
}

#[derive(Debug, Deserialize)]
struct Scrape {
    files: std::collections::BTreeMap<serde_bytes::ByteBuf, ScrapeFile>,
}

#[derive(Debug, Deserialize)]
struct ScrapeFile {
    complete: u64,
}

/// A tracker's scrape answer that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("the scrape answer is not one: {0}")]
pub struct ScrapeError(#[source] serde_bencode::Error);

/// How many seeders a tracker's scrape answer counts for `info_hash`, or
/// why the answer cannot be read.
pub fn scrape_seeders(body: &[u8], info_hash: &[u8; 20]) -> Result<u64, ScrapeError> {
    let s: Scrape = serde_bencode::from_bytes(body).map_err(ScrapeError)?;
    Ok(s.files
        .get(serde_bytes::Bytes::new(info_hash))
        .map_or(0, |f| f.complete))
}

/// `info_hash` as an URL query value (every byte but letters and digits
/// escaped).
pub fn url_escape(bytes: &[u8]) -> String {
    percent_encoding::percent_encode(bytes, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torrent_is_bencoded_with_sorted_keys_and_hashed_over_its_info() {
        let t = Torrent::make(
            "a.bin",
            b"hello world",
            4,
            "http://192.0.2.69:6969/announce",
        );
        let pieces: Vec<u8> = [&b"hell"[..], b"o wo", b"rld"]
            .iter()
            .flat_map(|p| sha1(p))
            .collect();
        let mut info = b"d6:lengthi11e4:name5:a.bin12:piece lengthi4e6:pieces60:".to_vec();
        info.extend(&pieces);
        info.push(b'e');
        let mut whole = b"d8:announce31:http://192.0.2.69:6969/announce4:info".to_vec();
        whole.extend(&info);
        whole.push(b'e');
        assert_eq!(t.bytes, whole);
        assert_eq!(t.info_hash, sha1(&info));
        assert_eq!(t.hex_hash().len(), 40);
        assert_eq!(t.length, 11);
    }

    #[test]
    fn sha1_is_sha1() {
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn handshakes_round_trip_and_garbage_is_refused() {
        let h = handshake(&[7; 20], &[9; 20]);
        assert_eq!(parse_handshake(&h), Ok([7; 20]));
        assert_eq!(parse_handshake(&h[..48]), Ok([7; 20]));
        assert_eq!(
            parse_handshake(&h[..47]).map_err(|e| e.to_string()),
            Err("47 bytes, a handshake has 68".into())
        );
        assert_eq!(
            parse_handshake(b"HTTP/1.1 200 OK\r\n\r\n........................................")
                .map_err(|e| e.to_string()),
            Err("not a BitTorrent handshake".into())
        );
    }

    #[test]
    fn an_announce_names_its_torrent_port_and_volunteered_addresses() {
        let line = "GET /announce?info_hash=%12%34V%ab&peer_id=-qB4520-xyz&port=43321&uploaded=0&event=started&ipv6=2001%3adb8%3a21%3a%3a2&ip=192.168.10.4 HTTP/1.1";
        let a = parse_announce(line).unwrap();
        assert_eq!(a.info_hash, vec![0x12, 0x34, b'V', 0xab]);
        assert_eq!(a.port, Some(43321));
        assert_eq!(a.event.as_deref(), Some("started"));
        assert_eq!(a.addresses, vec!["2001:db8:21::2", "192.168.10.4"]);
        assert_eq!(parse_announce("GET /scrape?info_hash=%12 HTTP/1.1"), None);
        assert_eq!(parse_announce("GET /announce HTTP/1.1"), None);
        assert_eq!(parse_announce(""), None);
        // Broken escapes stay as they are.
        let a = parse_announce("GET /announce?ip=%zz%4 HTTP/1.1").unwrap();
        assert_eq!(a.addresses, vec!["%zz%4"]);
    }

    #[test]
    fn a_scrape_counts_the_seeders_of_one_torrent() {
        let mut body = b"d5:filesd20:".to_vec();
        body.extend([5u8; 20]);
        body.extend(b"d8:completei1e10:downloadedi0e10:incompletei2eeee");
        assert_eq!(scrape_seeders(&body, &[5; 20]).unwrap(), 1);
        assert_eq!(scrape_seeders(&body, &[6; 20]).unwrap(), 0);
        assert!(scrape_seeders(b"d5:filesd", &[5; 20]).is_err());
        let e = scrape_seeders(b"<html>", &[5; 20]).unwrap_err();
        assert!(
            e.to_string().starts_with("the scrape answer is not one: "),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
    }
}
