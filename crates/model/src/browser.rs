//! The browser probe's pure side (Byparr's stand-in: a headless Chromium in
//! the gateway's namespace): the page it loads, the report that page posts
//! back, reading WebRTC's ICE candidates, the STUN server's answer, and the
//! verdict on what the browser did. A real browser brings the leaks of its
//! own: DNS-over-HTTPS chosen by the browser, QUIC on UDP 443, and WebRTC
//! asking a STUN server for its public address. With the tunnel up all of
//! them must show the VPN's exit address and nothing else; with the tunnel
//! down none of them may arrive anywhere.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// The name every STUN URL of the page is under (the lab's resolvers answer
/// every name with whoami's addresses, where the STUN server listens).
pub const STUN_ZONE: &str = "stun.lab";
/// The name QUIC is forced on for (`--origin-to-force-quic-on`).
pub const QUIC_ZONE: &str = "quic.lab";
/// The STUN server's port (RFC 8489's default).
pub const STUN_PORT: u16 = 3478;
/// How long the page gives each of its checks (the page's own clock).
pub const PAGE_CHECK_MS: u64 = 6000;

/// The page the browser loads from the gateway's loopback. Three checks
/// run at once and their results go back as JSON to `/report` on the same
/// origin: `fetch`es of whoami by a name carrying `nonce` and by its
/// address `whoami` (each answer is the source whoami saw), WebRTC's ICE
/// gathering against the lab's STUN server by name and by address, and
/// `fetch`es over QUIC (the browser is started with QUIC forced on for
/// [`quic_origins`]). By name, the browser's own resolver (and DoH) is
/// exercised; by address, the kill switch is, even when no name resolves.
/// Each check ends after [`PAGE_CHECK_MS`] at the latest.
pub fn page(nonce: &str, whoami: std::net::Ipv4Addr) -> String {
    let [q_name, q_addr] = quic_origins(nonce, whoami);
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>leakhound browser probe {nonce}</title></head>
<body><script>
"use strict";
const out = {{whoami: [], candidates: [], webrtc_error: null, quic: []}};
function within(ms) {{ const c = new AbortController(); setTimeout(() => c.abort(), ms); return c.signal; }}
async function get(list, url, opts, read) {{
  const r = {{url: url, answer: null, error: null}};
  list.push(r);
  try {{
    const resp = await fetch(url, Object.assign({{cache: "no-store", signal: within({PAGE_CHECK_MS})}}, opts));
    r.answer = read ? (await resp.text()).trim() : "answered";
  }} catch (e) {{ r.error = String(e); }}
}}
async function webrtc() {{
  try {{
    const pc = new RTCPeerConnection({{iceServers: [{{urls: ["stun:{nonce}.{STUN_ZONE}:{STUN_PORT}", "stun:{whoami}:{STUN_PORT}"]}}]}});
    pc.createDataChannel("leakhound");
    const done = new Promise(r => {{
      pc.onicecandidate = e => {{ if (e.candidate) out.candidates.push(e.candidate.candidate); else r(); }};
      setTimeout(r, {PAGE_CHECK_MS});
    }});
    await pc.setLocalDescription(await pc.createOffer());
    await done;
    pc.close();
  }} catch (e) {{ out.webrtc_error = String(e); }}
}}
Promise.all([
  get(out.whoami, "http://{nonce}.probe.lab/leakhound/{nonce}", {{}}, true),
  get(out.whoami, "http://{whoami}/leakhound/{nonce}", {{}}, true),
  webrtc(),
  get(out.quic, "https://{q_name}/leakhound/{nonce}", {{mode: "no-cors"}}, false),
  get(out.quic, "https://{q_addr}/leakhound/{nonce}", {{mode: "no-cors"}}, false),
]).then(() => fetch("/report", {{method: "POST", body: JSON.stringify(out)}}));
</script></body></html>
"#
    )
}

/// The origins the browser is started with QUIC forced on for
/// (`--origin-to-force-quic-on`): one by name, one by whoami's address.
pub fn quic_origins(nonce: &str, whoami: std::net::Ipv4Addr) -> [String; 2] {
    [format!("{nonce}.{QUIC_ZONE}:443"), format!("{whoami}:443")]
}

/// One `fetch` of the page: its URL, and the answer or the error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Fetched {
    pub url: String,
    /// whoami's answer (the source it saw), or "answered".
    pub answer: Option<String>,
    pub error: Option<String>,
}

/// What the page posts back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Report {
    /// whoami by name, then by address.
    #[serde(default)]
    pub whoami: Vec<Fetched>,
    /// ICE candidates as the browser wrote them (`candidate:...`).
    #[serde(default)]
    pub candidates: Vec<String>,
    pub webrtc_error: Option<String>,
    /// The fetches over QUIC (none can complete: the lab's UDP 443 only
    /// listens).
    #[serde(default)]
    pub quic: Vec<Fetched>,
}

/// The page's report is not the JSON it should be.
#[derive(Debug, thiserror::Error)]
#[error("the page's report is not valid: {0}")]
pub struct ReportError(#[source] serde_json::Error);

/// The report's JSON, or what is wrong with it (the page is ours, but it
/// comes back over a socket: bad input gets an error, not a panic).
pub fn parse_report(body: &[u8]) -> Result<Report, ReportError> {
    serde_json::from_slice(body).map_err(ReportError)
}

/// The addresses of the server-reflexive candidates (what a STUN server
/// saw): the address WebRTC would tell a website.
pub fn reflexive_addresses(candidates: &[String]) -> Vec<IpAddr> {
    candidates
        .iter()
        .filter_map(|c| {
            // candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ TYPE ...
            let fields: Vec<&str> = c.split_whitespace().collect();
            let typ = fields.iter().position(|f| *f == "typ")?;
            if fields.get(typ + 1) != Some(&"srflx") {
                return None;
            }
            fields.get(4)?.parse().ok()
        })
        .collect()
}

/// What a browser probe should show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// Everything arrives, and only from this address (the VPN's exit).
    SeenAs(IpAddr),
    /// Nothing arrives anywhere.
    Nothing,
}

/// What the far end saw during the probe: the sources of the STUN
/// requests, of the QUIC datagrams, of the whoami requests with the
/// probe's nonce, and of any DoH query (the browser's own DoH: its probe
/// of the server, then its names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FarEnd {
    pub stun: Vec<SocketAddr>,
    pub quic: Vec<SocketAddr>,
    pub whoami: Vec<SocketAddr>,
    pub doh: Vec<SocketAddr>,
}

/// The verdict: what did not meet `expect` (empty when all is well).
pub fn problems(report: &Report, far: &FarEnd, expect: Expectation) -> Vec<String> {
    let mut p = Vec::new();
    let reflexive = reflexive_addresses(&report.candidates);
    let others = |what: &str, seen: &[SocketAddr], ok: Option<IpAddr>| -> Option<String> {
        let bad: Vec<String> = seen
            .iter()
            .filter(|s| Some(s.ip()) != ok)
            .map(|s| s.ip().to_string())
            .collect();
        (!bad.is_empty()).then(|| format!("{what} arrived from {} (a leak)", dedup(bad)))
    };
    for s in &far.doh {
        p.push(format!(
            "the DoH server got a query from {} during the visit (the browser's own DoH went past the gateway's resolver)",
            s.ip()
        ));
    }
    match expect {
        Expectation::SeenAs(exit) => {
            if report.whoami.is_empty() {
                p.push("the page fetched nothing from whoami".into());
            }
            for f in &report.whoami {
                match (&f.answer, &f.error) {
                    (Some(w), _) if w == &exit.to_string() => {}
                    (Some(w), _) => p.push(format!(
                        "whoami ({}) saw the browser as {w}, expected {exit}",
                        f.url
                    )),
                    (None, e) => p.push(format!(
                        "the page could not load {}: {}",
                        f.url,
                        e.as_deref().unwrap_or("no answer")
                    )),
                }
            }
            if !far.whoami.iter().any(|s| s.ip() == exit) {
                p.push(format!(
                    "whoami's log has no request with the page's nonce from {exit}"
                ));
            }
            p.extend(others("the page's whoami request", &far.whoami, Some(exit)));
            if reflexive.is_empty() {
                p.push(format!(
                    "WebRTC found no public address (no server-reflexive candidate{})",
                    report
                        .webrtc_error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ));
            }
            let wrong: Vec<String> = reflexive
                .iter()
                .filter(|a| **a != exit)
                .map(|a| a.to_string())
                .collect();
            if !wrong.is_empty() {
                p.push(format!(
                    "WebRTC told the page the public address {} (a leak: only {exit} may show)",
                    dedup(wrong)
                ));
            }
            if !far.stun.iter().any(|s| s.ip() == exit) {
                p.push(format!("the STUN server got no request from {exit}"));
            }
            p.extend(others("a STUN request", &far.stun, Some(exit)));
            if !far.quic.iter().any(|s| s.ip() == exit) {
                p.push(format!("no QUIC datagram arrived from {exit} on UDP 443"));
            }
            p.extend(others("QUIC on UDP 443", &far.quic, Some(exit)));
        }
        Expectation::Nothing => {
            for f in &report.whoami {
                if let Some(w) = &f.answer {
                    p.push(format!(
                        "the page loaded {}, which saw {w} (should have failed)",
                        f.url
                    ));
                }
            }
            if !reflexive.is_empty() {
                let all: Vec<String> = reflexive.iter().map(|a| a.to_string()).collect();
                p.push(format!(
                    "WebRTC found the public address {} (should have found none)",
                    dedup(all)
                ));
            }
            p.extend(others("the page's whoami request", &far.whoami, None));
            p.extend(others("a STUN request", &far.stun, None));
            p.extend(others("QUIC on UDP 443", &far.quic, None));
        }
    }
    p
}

/// The STUN server's answer to a datagram from `from`: a Binding success
/// carrying `from` as XOR-MAPPED-ADDRESS, or `None` when the datagram is
/// not a Binding request (bad input from the wire is dropped, not fatal).
pub fn stun_answer(datagram: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    use bytecodec::{DecodeExt, EncodeExt};
    use stun_codec::rfc5389::{Attribute, attributes::XorMappedAddress, methods::BINDING};
    use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder};
    let request = MessageDecoder::<Attribute>::new()
        .decode_from_bytes(datagram)
        .ok()?
        .ok()?;
    if request.class() != MessageClass::Request || request.method() != BINDING {
        return None;
    }
    let mut answer = Message::<Attribute>::new(
        MessageClass::SuccessResponse,
        BINDING,
        request.transaction_id(),
    );
    answer.add_attribute(Attribute::XorMappedAddress(XorMappedAddress::new(from)));
    MessageEncoder::new().encode_into_bytes(answer).ok()
}

fn dedup(mut v: Vec<String>) -> String {
    v.sort();
    v.dedup();
    v.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT: &str = "203.0.113.77";
    const HOME: &str = "198.51.100.2";

    fn sa(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn srflx(ip: &str) -> String {
        format!(
            "candidate:1571329302 1 udp 1677729535 {ip} 53209 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag 4yke network-cost 999"
        )
    }

    fn answered(url: &str) -> Fetched {
        Fetched {
            url: url.into(),
            answer: Some(EXIT.into()),
            error: None,
        }
    }

    fn good() -> (Report, FarEnd) {
        (
            Report {
                whoami: vec![
                    answered("http://n.probe.lab/"),
                    answered("http://192.0.2.80/"),
                ],
                candidates: vec![
                    "candidate:1 1 udp 2122260223 0a1b2c3d-uuid.local 51234 typ host generation 0"
                        .into(),
                    srflx(EXIT),
                ],
                quic: vec![Fetched {
                    url: "https://n.quic.lab/".into(),
                    answer: None,
                    error: Some("TypeError: Failed to fetch".into()),
                }],
                ..Report::default()
            },
            FarEnd {
                stun: vec![sa(EXIT)],
                quic: vec![sa(EXIT)],
                whoami: vec![sa(EXIT)],
                doh: vec![],
            },
        )
    }

    #[test]
    fn stun_binding_requests_get_the_source_back() {
        use bytecodec::{DecodeExt, EncodeExt};
        use stun_codec::rfc5389::{Attribute, methods::BINDING};
        use stun_codec::{Message, MessageClass, MessageDecoder, MessageEncoder, TransactionId};
        // Chromium's request as it came off the wire in a trial: 20 bytes,
        // no attributes.
        let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        req.extend_from_slice(&[7; 12]);
        for from in [sa(EXIT), "[2001:db8:77::77]:5000".parse().unwrap()] {
            let a = stun_answer(&req, from).unwrap();
            let m = MessageDecoder::<Attribute>::new()
                .decode_from_bytes(&a)
                .unwrap()
                .unwrap();
            assert_eq!(m.class(), MessageClass::SuccessResponse);
            assert_eq!(m.transaction_id(), TransactionId::new([7; 12]));
            let mapped = m.attributes().find_map(|a| match a {
                Attribute::XorMappedAddress(x) => Some(x.address()),
                _ => None,
            });
            assert_eq!(mapped, Some(from));
            // Its XOR form on the wire is not the plain address.
            if let std::net::IpAddr::V4(v4) = from.ip() {
                assert!(!a.windows(4).any(|w| w == v4.octets()));
            }
        }
        // Not a request, not STUN, truncated: no answer.
        let resp = MessageEncoder::new()
            .encode_into_bytes(Message::<Attribute>::new(
                MessageClass::SuccessResponse,
                BINDING,
                TransactionId::new([1; 12]),
            ))
            .unwrap();
        assert_eq!(stun_answer(&resp, sa(EXIT)), None);
        assert_eq!(stun_answer(b"leakhound nonce", sa(EXIT)), None);
        assert_eq!(stun_answer(&req[..10], sa(EXIT)), None);
        assert_eq!(stun_answer(&[], sa(EXIT)), None);
    }

    #[test]
    fn the_page_carries_the_nonce_everywhere_it_asks() {
        let whoami = std::net::Ipv4Addr::new(192, 0, 2, 80);
        let p = page("abc123def456", whoami);
        assert!(p.contains("http://abc123def456.probe.lab/leakhound/abc123def456"));
        assert!(p.contains("http://192.0.2.80/leakhound/abc123def456"));
        assert!(p.contains("stun:abc123def456.stun.lab:3478"));
        assert!(p.contains("stun:192.0.2.80:3478"));
        assert!(p.contains("https://abc123def456.quic.lab:443/leakhound/abc123def456"));
        assert!(p.contains("https://192.0.2.80:443/leakhound/abc123def456"));
        assert_eq!(
            quic_origins("abc123def456", whoami),
            ["abc123def456.quic.lab:443", "192.0.2.80:443"]
        );
        assert!(p.contains("fetch(\"/report\""));
    }

    #[test]
    fn the_report_parses_and_bad_json_is_an_error() {
        let r = parse_report(br#"{"whoami":[{"url":"u","answer":"203.0.113.77","error":null}],"candidates":["a"],"webrtc_error":null,"quic":[]}"#).unwrap();
        assert_eq!(r.whoami[0].answer.as_deref(), Some(EXIT));
        assert_eq!(r.candidates, vec!["a"]);
        let e = parse_report(b"{not json").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the page's report is not valid: key must be a string"),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        assert!(parse_report(br#"{"candidates": 3}"#).is_err());
    }

    #[test]
    fn only_server_reflexive_candidates_give_public_addresses() {
        let c = vec![
            srflx(EXIT),
            "candidate:2 1 udp 2122260223 172.21.0.2 5000 typ host".into(),
            "candidate:3 1 udp 1 2001:db8:77::77 6000 typ srflx raddr :: rport 0".into(),
            "garbage".into(),
            "candidate:4 1 udp 1 not-an-ip 1 typ srflx".into(),
        ];
        assert_eq!(
            reflexive_addresses(&c),
            vec![
                EXIT.parse::<IpAddr>().unwrap(),
                "2001:db8:77::77".parse().unwrap()
            ]
        );
    }

    #[test]
    fn all_through_the_exit_passes() {
        let (r, f) = good();
        let exit = EXIT.parse().unwrap();
        assert_eq!(
            problems(&r, &f, Expectation::SeenAs(exit)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn each_leak_through_the_tunnel_is_named() {
        let exit: IpAddr = EXIT.parse().unwrap();
        let (mut r, mut f) = good();
        r.candidates.push(srflx(HOME));
        f.stun.push(sa(HOME));
        f.quic.push(sa(HOME));
        f.doh.push(sa(EXIT));
        let p = problems(&r, &f, Expectation::SeenAs(exit));
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            p.iter()
                .any(|x| x.contains("WebRTC told the page the public address 198.51.100.2"))
        );
        assert!(
            p.iter()
                .any(|x| x.contains("a STUN request arrived from 198.51.100.2"))
        );
        assert!(
            p.iter()
                .any(|x| x.contains("QUIC on UDP 443 arrived from 198.51.100.2"))
        );
        assert!(
            p.iter()
                .any(|x| x.contains("DoH server got a query from 203.0.113.77"))
        );
    }

    #[test]
    fn missing_evidence_through_the_tunnel_fails() {
        let exit: IpAddr = EXIT.parse().unwrap();
        let p = problems(
            &Report::default(),
            &FarEnd::default(),
            Expectation::SeenAs(exit),
        );
        assert_eq!(p.len(), 5, "{p:?}");
        let (mut r, f) = good();
        r.whoami[1].answer = Some(HOME.into());
        let p = problems(&r, &f, Expectation::SeenAs(exit));
        assert_eq!(
            p,
            vec![
                "whoami (http://192.0.2.80/) saw the browser as 198.51.100.2, expected 203.0.113.77"
            ]
        );
        r.whoami[1].answer = None;
        r.whoami[1].error = Some("AbortError".into());
        assert_eq!(problems(&r, &f, Expectation::SeenAs(exit)).len(), 1);
    }

    #[test]
    fn with_the_tunnel_down_anything_arriving_is_a_leak() {
        let quiet = Report {
            whoami: vec![Fetched {
                url: "http://192.0.2.80/".into(),
                answer: None,
                error: Some("AbortError".into()),
            }],
            candidates: vec!["candidate:1 1 udp 1 x.local 1 typ host".into()],
            ..Report::default()
        };
        assert!(problems(&quiet, &FarEnd::default(), Expectation::Nothing).is_empty());
        let (r, f) = good();
        let p = problems(&r, &f, Expectation::Nothing);
        assert_eq!(p.len(), 6, "{p:?}");
    }
}
