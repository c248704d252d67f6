//! The lab's resolvers (hickory-server): the ISP resolver at 192.0.2.53 (a
//! leak target) and the provider's resolver at 10.64.0.1 (reached only through
//! the tunnel). Both answer every name in the lab with whoami's addresses and
//! log every query with its source, so a DNS leak is proven at the far end.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType, rdata};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use super::LabError;
use super::netns::Netns;
use super::service_log::ServiceLog;
use crate::model::topology::addr;

/// A resolver that answers everything with whoami's address and logs.
pub struct LabResolver {
    service: &'static str,
    log: ServiceLog,
}

#[async_trait::async_trait]
impl RequestHandler for LabResolver {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.recursion_available = true;
        let mut answers = Vec::new();
        match request.request_info() {
            Ok(info) => {
                let name = info.query.name().to_string();
                let qtype = info.query.query_type();
                self.log
                    .record(self.service, request.src(), format!("{qtype} {name}"));
                // Names under rebind.lab resolve to a LAN address: what a DNS
                // rebinding attack looks like.
                if let Some(r) = lab_answer(&name, qtype) {
                    answers.push(Record::from_rdata(
                        info.query.original().name().clone(),
                        60,
                        r,
                    ));
                }
            }
            Err(_) => {
                self.log
                    .record(self.service, request.src(), "malformed query".to_string());
                meta.response_code = ResponseCode::FormErr;
            }
        }
        crate::gateway::dns::respond(request, response_handle, meta, &answers, self.service).await
    }
}

/// The lab's answer to one DNS message (for the DoT and DoH servers): the
/// question's name and type, and the response bytes. `None` for bytes that
/// are not a query.
pub fn answer_message(query: &[u8]) -> Option<(String, Vec<u8>)> {
    use hickory_proto::op::Message;
    let q = Message::from_vec(query).ok()?;
    let question = q.queries.first()?.clone();
    let name = question.name().to_string();
    let rdata = lab_answer(&name, question.query_type());
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_query(question.clone());
    if let Some(d) = rdata {
        r.add_answer(Record::from_rdata(question.name().clone(), 60, d));
    }
    Some((
        format!("{} {name}", question.query_type()),
        r.to_vec().ok()?,
    ))
}

/// Starts a resolver on UDP and TCP `addr` inside `ns`.
/// The lab's answer for `name` (pure): whoami's addresses for every name,
/// except the admin LAN's address for names under `rebind.lab` (a DNS
/// rebinding attempt) and no IPv6 address for names under the browser
/// probe's QUIC zone (Chromium's QUIC tries the first address only and
/// does not fall back to IPv4 when the lab's IPv4-only tunnel refuses
/// IPv6, so QUIC would never be tried over IPv4).
pub fn lab_answer(name: &str, qtype: RecordType) -> Option<RData> {
    let name = name.trim_end_matches('.');
    let rebind = name.ends_with("rebind.lab");
    let v4_only = name.ends_with(crate::model::browser::QUIC_ZONE);
    match qtype {
        RecordType::A if rebind => Some(RData::A(rdata::A(addr::LAN_ADMIN))),
        RecordType::A => Some(RData::A(rdata::A(addr::WHOAMI))),
        RecordType::AAAA if v4_only => None,
        RecordType::AAAA => Some(RData::AAAA(rdata::AAAA(addr::WHOAMI_V6))),
        _ => None,
    }
}

pub fn start(
    ns: &Netns,
    service: &'static str,
    listen: SocketAddr,
    log: ServiceLog,
) -> Result<Server<LabResolver>, LabError> {
    let err = |source| LabError::Service {
        service: service.to_string(),
        source,
    };
    let (udp, tcp) = ns
        .run(move || -> std::io::Result<_> {
            let udp = std::net::UdpSocket::bind(listen)?;
            udp.set_nonblocking(true)?;
            let tcp = std::net::TcpListener::bind(listen)?;
            tcp.set_nonblocking(true)?;
            Ok((udp, tcp))
        })?
        .map_err(err)?;
    let mut server = Server::new(LabResolver { service, log });
    server.register_socket(tokio::net::UdpSocket::from_std(udp).map_err(err)?);
    server.register_listener(
        tokio::net::TcpListener::from_std(tcp).map_err(err)?,
        Duration::from_secs(5),
        4096,
    );
    Ok(server)
}
