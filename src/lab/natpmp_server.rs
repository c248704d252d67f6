//! The VPN provider's port forwarding, as ProtonVPN does it: a NAT-PMP
//! server (RFC 6886) on the tunnel's server address (10.64.0.1:5351), and,
//! for each mapping a client asks for, a DNAT from the exit address
//! 203.0.113.77:PORT to that client's same port through the tunnel. Only
//! clients inside the tunnel (10.64.0.0/16) may ask. It logs every mapping.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio_util::sync::CancellationToken;

use super::netns::Netns;
use super::service_log::ServiceLog;
use super::{LabError, nft_in};
use crate::model::natpmp::{self, Mapping, Protocol, ResultCode, ServerRequest};
use crate::model::topology::addr;

pub const SERVICE: &str = "natpmp";
/// First port handed out when a client lets the provider choose: below the
/// namespaces' ephemeral range (32768-60999), so the dependent's listener
/// on the forwarded port never finds it taken by an outgoing connection of
/// the gateway's namespace.
pub const FIRST_PORT: u16 = 20_000;
/// Longest lifetime granted (the client must renew).
pub const MAX_LIFETIME: u32 = 60;

const TABLE: &str = "table ip lh_pf {
  chain pre { type nat hook prerouting priority dstnat; policy accept; }
}
";

/// The server's bookkeeping: which external port each client has, and the
/// ports it will not give again.
#[derive(Debug, Default)]
pub struct Mappings {
    by_client: HashMap<(Ipv4Addr, u8), u16>,
    retired: std::collections::HashSet<u16>,
    next: u16,
}

impl Mappings {
    /// The external port for `client`'s request: the one it already has,
    /// else the one it suggests if free, else the next free one. Pure.
    pub fn assign(&mut self, client: Ipv4Addr, protocol: Protocol, suggested: u16) -> (u16, bool) {
        let key = (client, protocol as u8);
        if let Some(p) = self.by_client.get(&key) {
            return (*p, false);
        }
        let taken = |p: u16, s: &Mappings| {
            s.retired.contains(&p)
                || s.by_client
                    .iter()
                    .any(|((_, proto), port)| *proto == protocol as u8 && *port == p)
        };
        let port = if suggested >= 1024 && !taken(suggested, self) {
            suggested
        } else {
            if self.next < FIRST_PORT {
                self.next = FIRST_PORT;
            }
            while taken(self.next, self) {
                self.next += 1;
            }
            self.next
        };
        self.by_client.insert(key, port);
        (port, true)
    }

    /// Forgets every mapping and never gives those ports again (a provider
    /// that moved its clients to another server). Pure.
    pub fn renumber(&mut self) {
        self.retired.extend(self.by_client.values().copied());
        self.by_client.clear();
    }
}

/// Starts the server. While `refuse` is set it answers every mapping
/// request with OUT_OF_RESOURCES (a provider that has no port to give).
/// When `renumber` is set, the next request finds every mapping forgotten
/// and their ports retired (and their forwarding removed).
pub fn start(
    ns: &Netns,
    log: ServiceLog,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    renumber: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cancel: CancellationToken,
) -> Result<(), LabError> {
    let err = |source| LabError::Service {
        service: SERVICE.into(),
        source,
    };
    nft_in(ns, TABLE).map_err(|e| err(std::io::Error::other(e)))?;
    let listen = SocketAddr::new(addr::TUNNEL_SERVER.into(), natpmp::PORT);
    let std_sock = ns
        .run(move || -> std::io::Result<_> {
            let s = std::net::UdpSocket::bind(listen)?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?
        .map_err(err)?;
    let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(err)?;
    let mut server = Server {
        ns: Netns::open(ns.name())?,
        log,
        refuse,
        renumber,
        mappings: Mappings::default(),
        started: std::time::Instant::now(),
    };
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = tokio::select! {
                _ = cancel.cancelled() => return,
                r = sock.recv_from(&mut buf) => match r { Ok(v) => v, Err(_) => continue },
            };
            if let Some(reply) = server.answer(&buf[..n], from).await {
                let _ = sock.send_to(&reply, from).await;
            }
        }
    });
    Ok(())
}

/// The running server's state.
struct Server {
    ns: Netns,
    log: ServiceLog,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    renumber: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mappings: Mappings,
    /// The epoch counts seconds from here.
    started: std::time::Instant,
}

impl Server {
    /// The reply to one datagram from `from`, if it gets one.
    async fn answer(&mut self, request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
        let epoch = self.started.elapsed().as_secs() as u32;
        if self
            .renumber
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.mappings.renumber();
            let flush = "flush chain ip lh_pf pre\n".to_string();
            if let Ok(ns2) = Netns::open(self.ns.name()) {
                let _ = tokio::task::spawn_blocking(move || nft_in(&ns2, &flush)).await;
            }
            self.log.record(
                SERVICE,
                from,
                "mappings forgotten, their ports retired".into(),
            );
        }
        match natpmp::decode_request(request) {
            Err(e) => {
                self.log.record(SERVICE, from, format!("bad request: {e}"));
                None
            }
            Ok(ServerRequest::ExternalAddress) => Some(
                natpmp::encode_external_address_response(
                    ResultCode::Success,
                    epoch,
                    addr::VPN_EXIT,
                )
                .to_vec(),
            ),
            Ok(ServerRequest::Map(req)) => {
                let IpAddr::V4(client) = from.ip() else {
                    return None;
                };
                Some(self.map(req, client, from, epoch).await)
            }
        }
    }

    /// A mapping request's reply: refused outside the tunnel, for a
    /// deletion, or while `refuse` is set; else the port, forwarded from
    /// the exit when it is new.
    async fn map(
        &mut self,
        req: natpmp::MapRequest,
        client: Ipv4Addr,
        from: SocketAddr,
        epoch: u32,
    ) -> Vec<u8> {
        let inside =
            crate::model::topology::addr::TUNNEL_CLIENT.octets()[..2] == client.octets()[..2];
        let mut m = Mapping {
            protocol: req.protocol,
            epoch,
            internal_port: req.internal_port,
            external_port: 0,
            lifetime: 0,
        };
        if !inside || req.lifetime == 0 {
            self.log
                .record(SERVICE, from, format!("refused {:?} mapping", req.protocol));
            return natpmp::encode_mapping_response(ResultCode::NotAuthorized, &m).to_vec();
        }
        if self.refuse.load(std::sync::atomic::Ordering::Relaxed) {
            self.log.record(
                SERVICE,
                from,
                format!("refused {:?} mapping: out of resources", req.protocol),
            );
            return natpmp::encode_mapping_response(ResultCode::OutOfResources, &m).to_vec();
        }
        let (port, new) = self
            .mappings
            .assign(client, req.protocol, req.suggested_external_port);
        if new {
            let proto = if req.protocol == Protocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            if let Err(e) = self.forward(proto, port, client).await {
                self.log.record(
                    SERVICE,
                    from,
                    format!("could not forward {proto} {port}: {e}"),
                );
                return natpmp::encode_mapping_response(ResultCode::NetworkFailure, &m).to_vec();
            }
        }
        m.external_port = port;
        m.lifetime = req.lifetime.min(MAX_LIFETIME);
        self.log.record(
            SERVICE,
            from,
            format!(
                "map {:?} {} -> {}:{port}",
                req.protocol,
                req.internal_port,
                addr::VPN_EXIT
            ),
        );
        natpmp::encode_mapping_response(ResultCode::Success, &m).to_vec()
    }

    /// DNAT from the exit's `port` to `client`'s same port.
    async fn forward(
        &self,
        proto: &str,
        port: u16,
        client: Ipv4Addr,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let rule = format!(
            "add rule ip lh_pf pre ip daddr {} {proto} dport {port} dnat to {client}:{port}\n",
            addr::VPN_EXIT
        );
        let ns2 = Netns::open(self.ns.name())?;
        tokio::task::spawn_blocking(move || nft_in(&ns2, &rule)).await??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_kept_per_client_and_never_shared() {
        let mut m = Mappings::default();
        let a = Ipv4Addr::new(10, 64, 0, 2);
        let b = Ipv4Addr::new(10, 64, 0, 3);
        assert_eq!(m.assign(a, Protocol::Tcp, 0), (FIRST_PORT, true));
        // A renewal keeps the port.
        assert_eq!(m.assign(a, Protocol::Tcp, 0), (FIRST_PORT, false));
        assert_eq!(m.assign(a, Protocol::Tcp, 51413), (FIRST_PORT, false));
        // Another client gets another port, even when it asks for a taken one.
        assert_eq!(
            m.assign(b, Protocol::Tcp, FIRST_PORT),
            (FIRST_PORT + 1, true)
        );
        // A free suggestion is granted.
        assert_eq!(m.assign(b, Protocol::Udp, 51413), (51413, true));
        // Privileged ports are never granted as suggested: the next free
        // port is.
        assert_eq!(m.assign(a, Protocol::Udp, 80), (FIRST_PORT + 1, true));
        // After a renumbering, a client asking for its old port gets a new one.
        m.renumber();
        let (p, new) = m.assign(a, Protocol::Tcp, FIRST_PORT);
        assert!(new);
        assert!(p > FIRST_PORT + 1, "{p}");
        assert_ne!(m.assign(b, Protocol::Udp, 51413).0, 51413);
    }
}
