//! The home router's port-mapping responders, pure: what a home router
//! answers when a device on its LAN asks it to expose a port, and how the
//! lab logs it. NAT-PMP (RFC 6886) on UDP 5351, and UPnP's Internet Gateway
//! Device: SSDP discovery (M-SEARCH to 239.255.255.250:1900, answered with
//! the description's URL), the device description, and the SOAP actions of
//! WANIPConnection:1 (AddPortMapping and friends). The router grants every
//! mapping, as a consumer router would: a dependent that gets this far has
//! published itself at the home address, and the router's log (the far
//! end) says which port it asked for. No gateway should ever let a request
//! reach it.

use std::net::{Ipv4Addr, SocketAddr};

use crate::natpmp::{self, Mapping, ResultCode, ServerRequest};

/// The description's path on the router's HTTP port.
pub const DESCRIPTION_PATH: &str = "/rootDesc.xml";
/// The WANIPConnection service's control path.
pub const CONTROL_PATH: &str = "/ctl/IPConn";
/// The router's UPnP HTTP port (miniupnpd's usual one).
pub const HTTP_PORT: u16 = 5000;
/// The service type that carries port mappings.
pub const WAN_IP_CONNECTION: &str = "urn:schemas-upnp-org:service:WANIPConnection:1";
/// The device type a client searches for.
pub const IGD: &str = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";
/// The longest mapping lifetime the router grants over NAT-PMP.
pub const NATPMP_LIFETIME: u32 = 3600;

/// The router's NAT-PMP answer to `datagram` (pure): what to log, and the
/// reply, if any. Mapping requests are granted on the same external port
/// at the home address `external`; what is not NAT-PMP (PCP, a probe's
/// nonce) is logged as it came and not answered.
pub fn natpmp_answer(datagram: &[u8], external: Ipv4Addr, epoch: u32) -> (String, Option<Vec<u8>>) {
    match natpmp::decode_request(datagram) {
        Ok(ServerRequest::ExternalAddress) => (
            "NAT-PMP external address request".into(),
            Some(
                natpmp::encode_external_address_response(ResultCode::Success, epoch, external)
                    .to_vec(),
            ),
        ),
        Ok(ServerRequest::Map(req)) => {
            let m = Mapping {
                protocol: req.protocol,
                epoch,
                internal_port: req.internal_port,
                external_port: if req.lifetime == 0 {
                    0
                } else {
                    req.internal_port
                },
                lifetime: req.lifetime.min(NATPMP_LIFETIME),
            };
            let what = if req.lifetime == 0 {
                format!(
                    "NAT-PMP unmap {:?} internal port {}",
                    req.protocol, req.internal_port
                )
            } else {
                format!(
                    "NAT-PMP map {:?} {external}:{} -> internal port {} (granted: the dependent is published at the home address)",
                    req.protocol, req.internal_port, req.internal_port
                )
            };
            (
                what,
                Some(natpmp::encode_mapping_response(ResultCode::Success, &m).to_vec()),
            )
        }
        // PCP (RFC 6887): the router speaks NAT-PMP only and says so with
        // NAT-PMP's "unsupported version" (RFC 6887 section 9), on which a
        // client falls back to NAT-PMP, as with miniupnpd without PCP.
        Err(_) if datagram.first() == Some(&2) && datagram.len() >= 2 => {
            let op = datagram[1] & 0x7f;
            let what = match pcp_map(datagram) {
                Some((proto, internal, suggested)) => format!(
                    "PCP MAP {proto} internal port {internal}, suggested external {suggested} (answered: version unsupported, use NAT-PMP)"
                ),
                None => format!(
                    "PCP request, opcode {op}, {} bytes (answered: version unsupported, use NAT-PMP)",
                    datagram.len()
                ),
            };
            let mut reply = vec![0u8; 8];
            reply[1] = 128 | op;
            reply[2..4].copy_from_slice(&1u16.to_be_bytes());
            reply[4..8].copy_from_slice(&epoch.to_be_bytes());
            (what, Some(reply))
        }
        Err(_) => (format!("udp {}", String::from_utf8_lossy(datagram)), None),
    }
}

/// A PCP MAP request's protocol, internal port and suggested external
/// port (RFC 6887 sections 7.1 and 11.1), when `b` is one.
fn pcp_map(b: &[u8]) -> Option<(&'static str, u16, u16)> {
    // Header 24 bytes, MAP body 36: nonce 12, protocol 1, reserved 3,
    // internal port 2, suggested external port 2, address 16.
    if b.len() < 60 || b[0] != 2 || b[1] & 0x7f != 1 {
        return None;
    }
    let proto = match b[36] {
        6 => "TCP",
        17 => "UDP",
        0 => "any",
        _ => "other",
    };
    Some((
        proto,
        u16::from_be_bytes([b[40], b[41]]),
        u16::from_be_bytes([b[42], b[43]]),
    ))
}

/// An SSDP search as the router reads it: its search target (`ST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub target: String,
}

/// Reads an SSDP M-SEARCH (pure); anything else is `None`.
pub fn parse_search(datagram: &[u8]) -> Option<Search> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let first = lines.next()?.trim();
    if !first.eq_ignore_ascii_case("M-SEARCH * HTTP/1.1") {
        return None;
    }
    let mut target = None;
    let mut discover = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("ST") {
            target = Some(v.to_string());
        } else if k.eq_ignore_ascii_case("MAN") {
            discover = v.trim_matches('"') == "ssdp:discover";
        }
    }
    discover.then_some(Search { target: target? })
}

/// Does a search for `target` find an Internet Gateway Device?
pub fn finds_gateway(target: &str) -> bool {
    matches!(
        target,
        "ssdp:all" | "upnp:rootdevice" | IGD | WAN_IP_CONNECTION
    ) || target.starts_with("urn:schemas-upnp-org:device:InternetGatewayDevice:")
        || target.starts_with("urn:schemas-upnp-org:device:WANDevice:")
        || target.starts_with("urn:schemas-upnp-org:device:WANConnectionDevice:")
        || target.starts_with("urn:schemas-upnp-org:service:WANIPConnection:")
}

/// The router's answer to a search for `target` (pure): unicast HTTP over
/// UDP pointing at the description on `router`.
pub fn search_answer(target: &str, router: SocketAddr) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nEXT:\r\nLOCATION: http://{router}{DESCRIPTION_PATH}\r\nSERVER: Linux UPnP/1.1 leakhound-home-router/1\r\nST: {target}\r\nUSN: uuid:6c6561b6-686f-756e-6400-000000000001::{target}\r\n\r\n"
    )
}

/// The device description (pure): an IGD with one WANIPConnection:1.
pub fn description(router: SocketAddr) -> String {
    format!(
        r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<URLBase>http://{router}</URLBase>
<device>
<deviceType>{IGD}</deviceType>
<friendlyName>leakhound home router</friendlyName>
<manufacturer>leakhound</manufacturer>
<modelName>lab home router</modelName>
<UDN>uuid:6c6561b6-686f-756e-6400-000000000001</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<friendlyName>WAN</friendlyName>
<UDN>uuid:6c6561b6-686f-756e-6400-000000000002</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<friendlyName>WAN connection</friendlyName>
<UDN>uuid:6c6561b6-686f-756e-6400-000000000003</UDN>
<serviceList><service>
<serviceType>{WAN_IP_CONNECTION}</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/WANIPCn.xml</SCPDURL>
<controlURL>{CONTROL_PATH}</controlURL>
<eventSubURL>/evt/IPConn</eventSubURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>
"#
    )
}

/// A SOAP call to the router's WANIPConnection: its action and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub action: String,
    pub args: Vec<(String, String)>,
}

impl Call {
    pub fn arg(&self, name: &str) -> &str {
        self.args
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Reads a SOAP call (pure, with quick-xml): the action from the
/// `SOAPAction` header (`"urn:...#Action"`), or failing that the first
/// element inside `Body`, and that element's children as arguments. A call
/// that is not well-formed XML or has no action is `None` (the router
/// answers 400).
pub fn parse_call(soap_action: Option<&str>, body: &str) -> Option<Call> {
    use quick_xml::events::Event;
    let local = |n: &[u8]| String::from_utf8_lossy(n).into_owned();
    let mut reader = quick_xml::Reader::from_str(body);
    let mut in_body = false;
    let mut element: Option<String> = None;
    // Depth below the action element; the argument being read.
    let mut depth = 0usize;
    let mut args: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let name = local(e.local_name().as_ref());
                if !in_body {
                    in_body = name == "Body";
                } else if element.is_none() {
                    element = Some(name);
                    depth = 1;
                } else {
                    depth += 1;
                    if depth == 2 {
                        current = Some((name, String::new()));
                    }
                }
            }
            Event::Empty(e) => {
                let name = local(e.local_name().as_ref());
                if in_body && element.is_none() {
                    element = Some(name);
                } else if in_body && depth == 1 {
                    args.push((name, String::new()));
                }
            }
            Event::Text(t) => {
                if let Some((_, v)) = current.as_mut() {
                    v.push_str(&t.decode().ok()?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, v)) = current.as_mut() {
                    match r.resolve_char_ref().ok()? {
                        Some(c) => v.push(c),
                        None => v.push_str(quick_xml::escape::resolve_predefined_entity(
                            &r.decode().ok()?,
                        )?),
                    }
                }
            }
            Event::End(_) if element.is_some() && depth > 0 => {
                if depth == 2
                    && let Some((k, v)) = current.take()
                {
                    args.push((k, v.trim().to_string()));
                }
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let from_header = soap_action
        .and_then(|h| h.trim().trim_matches('"').rsplit_once('#'))
        .map(|(_, a)| a.to_string())
        .filter(|a| !a.is_empty());
    let action = from_header.or(element)?;
    Some(Call { action, args })
}

/// The router's answer to a call (pure): the log line, the HTTP status and
/// the SOAP body. Mappings are granted; the external address is the home
/// address `external`; an unknown action is UPnP error 401.
pub fn answer_call(call: &Call, external: Ipv4Addr) -> (String, u16, String) {
    let ok = |inner: String| {
        (
            200,
            format!(
                "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{a}Response xmlns:u=\"{WAN_IP_CONNECTION}\">{inner}</u:{a}Response></s:Body></s:Envelope>\r\n",
                a = call.action
            ),
        )
    };
    let (log, (status, body)) = match call.action.as_str() {
        "AddPortMapping" | "AddAnyPortMapping" => {
            let port = call.arg("NewExternalPort");
            let extra = if call.action == "AddAnyPortMapping" {
                format!(
                    "<NewReservedPort>{}</NewReservedPort>",
                    quick_xml::escape::escape(port)
                )
            } else {
                String::new()
            };
            (
                format!(
                    "UPnP {} {} {external}:{} -> {}:{} ({:?}; granted: the dependent is published at the home address)",
                    call.action,
                    call.arg("NewProtocol"),
                    port,
                    call.arg("NewInternalClient"),
                    call.arg("NewInternalPort"),
                    call.arg("NewPortMappingDescription"),
                ),
                ok(extra),
            )
        }
        "DeletePortMapping" => (
            format!(
                "UPnP DeletePortMapping {} {}",
                call.arg("NewProtocol"),
                call.arg("NewExternalPort")
            ),
            ok(String::new()),
        ),
        "GetExternalIPAddress" => (
            "UPnP GetExternalIPAddress".into(),
            ok(format!(
                "<NewExternalIPAddress>{external}</NewExternalIPAddress>"
            )),
        ),
        "GetStatusInfo" => (
            "UPnP GetStatusInfo".into(),
            ok("<NewConnectionStatus>Connected</NewConnectionStatus><NewLastConnectionError>ERROR_NONE</NewLastConnectionError><NewUptime>1000</NewUptime>".into()),
        ),
        "GetConnectionTypeInfo" => (
            "UPnP GetConnectionTypeInfo".into(),
            ok("<NewConnectionType>IP_Routed</NewConnectionType><NewPossibleConnectionTypes>IP_Routed</NewPossibleConnectionTypes>".into()),
        ),
        other => (
            format!("UPnP {other} (not offered: error 401)"),
            (
                500,
                "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:control-1-0\"><errorCode>401</errorCode><errorDescription>Invalid Action</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>\r\n"
                    .to_string(),
            ),
        ),
    };
    (log, status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    #[test]
    fn natpmp_mappings_are_granted_at_the_home_address_and_logged() {
        // Map TCP 51413, suggested 51413, 7200 s (qBittorrent's libtorrent).
        let req = [0, 2, 0, 0, 0xc8, 0xd5, 0xc8, 0xd5, 0, 0, 0x1c, 0x20];
        let (log, reply) = natpmp_answer(&req, HOME, 9);
        assert!(log.contains("NAT-PMP map Tcp 198.51.100.2:51413"), "{log}");
        let m = natpmp::decode_mapping(&reply.unwrap(), natpmp::Protocol::Tcp).unwrap();
        assert_eq!(
            (m.internal_port, m.external_port, m.lifetime),
            (51413, 51413, 3600)
        );
        let (log, reply) = natpmp_answer(&[0, 0], HOME, 9);
        assert_eq!(log, "NAT-PMP external address request");
        assert_eq!(
            natpmp::decode_external_address(&reply.unwrap()).unwrap().1,
            HOME
        );
        // A probe's nonce is logged, not answered.
        let (log, reply) = natpmp_answer(b"abc123 nonce", HOME, 9);
        assert_eq!((log.as_str(), reply), ("udp abc123 nonce", None));
        // PCP MAP TCP 51413 (as qBittorrent sends it first) is logged and
        // answered with NAT-PMP's unsupported version, so it falls back.
        let mut pcp = vec![2u8, 1];
        pcp.resize(60, 0);
        pcp[36] = 6;
        pcp[40..42].copy_from_slice(&51413u16.to_be_bytes());
        pcp[42..44].copy_from_slice(&51413u16.to_be_bytes());
        let (log, reply) = natpmp_answer(&pcp, HOME, 9);
        assert_eq!(
            log,
            "PCP MAP TCP internal port 51413, suggested external 51413 (answered: version unsupported, use NAT-PMP)"
        );
        assert_eq!(reply.unwrap(), vec![0, 129, 0, 1, 0, 0, 0, 9]);
        let (log, reply) = natpmp_answer(&[2, 0, 0], HOME, 9);
        assert!(log.starts_with("PCP request, opcode 0, 3 bytes"), "{log}");
        assert_eq!(reply.unwrap()[..4], [0, 128, 0, 1]);
        assert_eq!(natpmp_answer(&[], HOME, 9).1, None);
    }

    #[test]
    fn searches_are_read_and_answered_for_gateways_only() {
        let s = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n";
        let found = parse_search(s.as_bytes()).unwrap();
        assert_eq!(found.target, IGD);
        assert!(finds_gateway(&found.target));
        assert!(finds_gateway(
            "urn:schemas-upnp-org:service:WANIPConnection:2"
        ));
        assert!(!finds_gateway(
            "urn:schemas-upnp-org:device:MediaRenderer:1"
        ));
        // Not a search: a NOTIFY, a search without MAN, a nonce.
        assert_eq!(parse_search(b"NOTIFY * HTTP/1.1\r\nNT: x\r\n\r\n"), None);
        assert_eq!(
            parse_search(b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n"),
            None
        );
        assert_eq!(parse_search(b"abc123"), None);
        assert_eq!(parse_search(&[0xff, 0xfe]), None);
        let router: SocketAddr = "172.21.0.1:5000".parse().unwrap();
        let a = search_answer(IGD, router);
        assert!(a.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(a.contains("\r\nLOCATION: http://172.21.0.1:5000/rootDesc.xml\r\n"));
        assert!(a.contains(&format!("\r\nST: {IGD}\r\n")));
        let d = description(router);
        assert!(d.contains("<controlURL>/ctl/IPConn</controlURL>"));
        assert!(d.contains(WAN_IP_CONNECTION));
    }

    #[test]
    fn add_port_mapping_is_read_granted_and_logged() {
        // As miniupnpc (qBittorrent's libtorrent speaks the same) sends it.
        let body = "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:AddPortMapping xmlns:u=\"urn:schemas-upnp-org:service:WANIPConnection:1\"><NewRemoteHost></NewRemoteHost><NewExternalPort>51413</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>51413</NewInternalPort><NewInternalClient>172.21.0.2</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>qBittorrent &amp; co</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>\r\n";
        let c = parse_call(
            Some("\"urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping\""),
            body,
        )
        .unwrap();
        assert_eq!(c.action, "AddPortMapping");
        assert_eq!(c.arg("NewExternalPort"), "51413");
        assert_eq!(c.arg("NewInternalClient"), "172.21.0.2");
        assert_eq!(c.arg("NewRemoteHost"), "");
        assert_eq!(c.arg("NewPortMappingDescription"), "qBittorrent & co");
        let (log, status, answer) = answer_call(&c, HOME);
        assert_eq!(status, 200);
        assert!(
            log.starts_with("UPnP AddPortMapping TCP 198.51.100.2:51413 -> 172.21.0.2:51413"),
            "{log}"
        );
        assert!(answer.contains("<u:AddPortMappingResponse"));
        // Without the header, the body says which action.
        let c2 = parse_call(None, body).unwrap();
        assert_eq!(c2, c);
        let ip = parse_call(
            Some("\"urn:schemas-upnp-org:service:WANIPConnection:1#GetExternalIPAddress\""),
            "<s:Envelope><s:Body><u:GetExternalIPAddress xmlns:u=\"x\"/></s:Body></s:Envelope>",
        )
        .unwrap();
        let (_, _, answer) = answer_call(&ip, HOME);
        assert!(answer.contains("<NewExternalIPAddress>198.51.100.2</NewExternalIPAddress>"));
        let (log, status, answer) = answer_call(
            &Call {
                action: "ForceTermination".into(),
                args: vec![],
            },
            HOME,
        );
        assert_eq!(status, 500);
        assert!(log.contains("not offered") && answer.contains("<errorCode>401</errorCode>"));
        // Not SOAP at all, or not well-formed.
        assert_eq!(parse_call(None, "hello"), None);
        assert_eq!(parse_call(None, ""), None);
        assert_eq!(
            parse_call(
                None,
                "<s:Envelope><s:Body><u:AddPortMapping><a>1</b></u:AddPortMapping></s:Body></s:Envelope>"
            ),
            None
        );
    }
}
