//! The home router's port-mapping responders on its LAN side, as a
//! consumer router runs them (miniupnpd): NAT-PMP on UDP 5351 (IPv4 and
//! IPv6), UPnP's SSDP discovery on 239.255.255.250:1900, and the Internet
//! Gateway Device's description and WANIPConnection control over HTTP
//! (port [`upnp::HTTP_PORT`]). They grant every mapping, and every request
//! is logged as the `home-router` service with what it asked for: a
//! dependent that reaches them has published itself at the home address,
//! a leak class of its own although the gateway's network is allowed. What
//! they answer is pure ([`crate::model::upnp`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode, header};
use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;
use super::service_log::ServiceLog;
use crate::model::upnp;

pub const SERVICE: &str = crate::model::topology::service::HOME_ROUTER;
/// UPnP's SSDP group and port.
pub const SSDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);

/// Starts the responders in `ns` (the home router) on its LAN side
/// `lan`/`lan_v6`; `external` is the home address they map to.
pub fn start(
    ns: &Netns,
    lan: Ipv4Addr,
    lan_v6: Ipv6Addr,
    external: Ipv4Addr,
    log: ServiceLog,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    use super::udp;
    let started = std::time::Instant::now();
    // NAT-PMP (and whatever else comes to its port: PCP, a probe's nonce).
    for at in [
        SocketAddr::new(lan.into(), crate::model::classify::PCP_PORT),
        SocketAddr::new(lan_v6.into(), crate::model::classify::PCP_PORT),
    ] {
        let sock = udp::bind(ns, SERVICE, move || std::net::UdpSocket::bind(at))?;
        let log = log.clone();
        udp::serve(sock, None, cancel.clone(), move |datagram, from| {
            let epoch = started.elapsed().as_secs() as u32;
            let (what, reply) = upnp::natpmp_answer(datagram, external, epoch);
            log.record(SERVICE, from, what);
            reply
        });
    }
    // SSDP: searches for a gateway are answered with the description's URL,
    // from the router's own address, as miniupnpd's are.
    let http = SocketAddr::new(lan.into(), upnp::HTTP_PORT);
    let sock = udp::bind(ns, SERVICE, move || {
        let s = std::net::UdpSocket::bind(SSDP)?;
        let IpAddr::V4(group) = SSDP.ip() else {
            unreachable!("SSDP's group is IPv4")
        };
        s.join_multicast_v4(&group, &lan)?;
        Ok(s)
    })?;
    let answer_from = udp::bind(ns, SERVICE, move || {
        std::net::UdpSocket::bind(SocketAddr::new(lan.into(), 0))
    })?;
    let ssdp_log = log.clone();
    udp::serve(
        sock,
        Some(answer_from),
        cancel.clone(),
        move |datagram, from| {
            let (what, reply) = match upnp::parse_search(datagram) {
                Some(s) if upnp::finds_gateway(&s.target) => (
                    format!("SSDP M-SEARCH for {} (answered)", s.target),
                    Some(upnp::search_answer(&s.target, http).into_bytes()),
                ),
                Some(s) => (format!("SSDP M-SEARCH for {}", s.target), None),
                None => (format!("ssdp {}", String::from_utf8_lossy(datagram)), None),
            };
            ssdp_log.record(SERVICE, from, what);
            reply
        },
    );
    // The description and the control URL.
    let listener = super::http::listen(ns, SERVICE, http)?;
    let description = upnp::description(http);
    let (log_d, log_c) = (log.clone(), log);
    let app = Router::new()
        .route(
            upnp::DESCRIPTION_PATH,
            axum::routing::get(move |ConnectInfo(peer): ConnectInfo<SocketAddr>| {
                let (log, description) = (log_d.clone(), description.clone());
                async move {
                    log.record(
                        SERVICE,
                        peer,
                        format!("UPnP GET {}", upnp::DESCRIPTION_PATH),
                    );
                    (
                        [(header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")],
                        description,
                    )
                }
            }),
        )
        .route(
            upnp::CONTROL_PATH,
            axum::routing::post(
                move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                      headers: HeaderMap,
                      body: String| {
                    let log = log_c.clone();
                    async move {
                        let action = headers.get("soapaction").and_then(|v| v.to_str().ok());
                        match upnp::parse_call(action, &body) {
                            Some(call) => {
                                let (what, status, answer) = upnp::answer_call(&call, external);
                                log.record(SERVICE, peer, what);
                                (
                                    StatusCode::from_u16(status)
                                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                                    [(header::CONTENT_TYPE, "text/xml; charset=\"utf-8\"")],
                                    answer,
                                )
                            }
                            None => {
                                log.record(
                                    SERVICE,
                                    peer,
                                    "UPnP control request that is not SOAP".into(),
                                );
                                (
                                    StatusCode::BAD_REQUEST,
                                    [(header::CONTENT_TYPE, "text/plain")],
                                    String::new(),
                                )
                            }
                        }
                    }
                },
            ),
        );
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await;
    });
    Ok(())
}
