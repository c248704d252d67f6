//! A small rtnetlink client for the few things leakhound configures: links
//! (veth pairs, up, move to a namespace, rename), addresses and routes. Used
//! by the lab builder (one connection per lab namespace, opened from inside
//! it) and by the gateway (in its own namespace).

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::netns::{Netns, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("opening a netlink socket")]
    Socket(#[source] std::io::Error),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("no interface named {0}")]
    NoSuchLink(String),
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, NetlinkError>;

fn req(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

/// A netlink connection bound to one network namespace.
#[derive(Clone)]
pub struct Nl {
    handle: Handle,
}

/// One route as read back from the kernel (main table).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteInfo {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

impl Nl {
    /// A connection in the namespace this thread is in (the gateway's own).
    pub fn here() -> Result<Nl> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Socket)?;
        tokio::spawn(conn);
        Ok(Nl { handle })
    }

    /// A connection whose socket lives in `ns` (opened on a thread inside it).
    pub fn in_netns(ns: &Netns) -> Result<Nl> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _) = ns
            .run(move || {
                let _guard = rt.enter();
                rtnetlink::new_connection()
            })?
            .map_err(NetlinkError::Socket)?;
        tokio::spawn(conn);
        Ok(Nl { handle })
    }

    pub async fn index(&self, name: &str) -> Result<u32> {
        Ok(self.link(name).await?.header.index)
    }

    /// The interface called `name`, as the kernel describes it.
    async fn link(&self, name: &str) -> Result<rtnetlink::packet_route::link::LinkMessage> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(msg),
            Ok(None) => Err(NetlinkError::NoSuchLink(name.to_string())),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc_enodev() => {
                Err(NetlinkError::NoSuchLink(name.to_string()))
            }
            Err(e) => Err(req(format!("looking up {name}"))(e)),
        }
    }

    /// Names of every interface in this namespace.
    pub async fn link_names(&self) -> Result<Vec<String>> {
        use rtnetlink::packet_route::link::LinkAttribute;
        let mut links = self.handle.link().get().execute();
        let mut names = Vec::new();
        while let Some(msg) = links.try_next().await.map_err(req("listing interfaces"))? {
            names.extend(msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            }));
        }
        Ok(names)
    }

    /// The other end of interface `name` when it is one end of a pair
    /// (veth): the peer's index in its own namespace and the id (nsid) this
    /// namespace knows that namespace by. `None` for an interface without a
    /// peer.
    pub async fn link_peer(&self, name: &str) -> Result<Option<(u32, Option<i32>)>> {
        use rtnetlink::packet_route::link::LinkAttribute;
        let msg = self.link(name).await?;
        let mut link = None;
        let mut nsid = None;
        for a in &msg.attributes {
            match a {
                LinkAttribute::Link(i) => link = Some(*i),
                LinkAttribute::LinkNetNsId(n) => nsid = Some(*n),
                _ => {}
            }
        }
        Ok(link.filter(|&i| i != msg.header.index).map(|i| (i, nsid)))
    }

    /// The id (nsid) this namespace knows the namespace behind `ns` by, if
    /// it has given it one (it has, for the namespace a veth's peer lives
    /// in). As iproute2's `ip netns list-id`, for a descriptor.
    pub async fn nsid_of(&self, ns: std::os::fd::BorrowedFd<'_>) -> Result<Option<i32>> {
        use futures::StreamExt;
        use rtnetlink::packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
        use rtnetlink::packet_route::RouteNetlinkMessage;
        use rtnetlink::packet_route::nsid::{NsidAttribute, NsidMessage};
        use std::os::fd::AsRawFd;
        let mut msg = NsidMessage::default();
        msg.attributes = vec![NsidAttribute::Fd(ns.as_raw_fd() as u32)];
        let mut req_msg = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
        req_msg.header.flags = NLM_F_REQUEST;
        let mut handle = self.handle.clone();
        let mut replies = handle
            .request(req_msg)
            .map_err(req("asking for a namespace's id"))?;
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::Error(e) => {
                    return Err(req("asking for a namespace's id")(
                        rtnetlink::Error::NetlinkError(e),
                    ));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                    return Ok(m.attributes.iter().find_map(|a| match a {
                        NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                        _ => None,
                    }));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// The name of the interface with this index.
    pub async fn name_of(&self, index: u32) -> Result<String> {
        use rtnetlink::packet_route::link::LinkAttribute;
        let mut links = self.handle.link().get().match_index(index).execute();
        let msg = links
            .try_next()
            .await
            .map_err(req(format!("looking up interface {index}")))?
            .ok_or_else(|| NetlinkError::NoSuchLink(format!("index {index}")))?;
        msg.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::NoSuchLink(format!("index {index}")))
    }

    /// The hardware address of an interface.
    pub async fn mac_of(&self, name: &str) -> Result<[u8; 6]> {
        use rtnetlink::packet_route::link::LinkAttribute;
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let msg = links
            .try_next()
            .await
            .map_err(req(format!("looking up {name}")))?
            .ok_or_else(|| NetlinkError::NoSuchLink(name.to_string()))?;
        msg.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::Address(m) => m.as_slice().try_into().ok(),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::Invalid(format!("{name} has no MAC address")))
    }

    pub async fn set_up(&self, name: &str) -> Result<()> {
        let idx = self.index(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(idx).up().build())
            .execute()
            .await
            .map_err(req(format!("setting {name} up")))
    }

    /// Deletes an interface (a TUN device: its routes go with it).
    pub async fn del_link(&self, name: &str) -> Result<()> {
        let idx = self.index(name).await?;
        self.handle
            .link()
            .del(idx)
            .execute()
            .await
            .map_err(req(format!("deleting {name}")))
    }

    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<()> {
        let idx = self.index(name).await?;
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(idx).mtu(mtu).build())
            .execute()
            .await
            .map_err(req(format!("setting MTU of {name}")))
    }

    /// Creates a veth pair here, `name` staying here and `peer` moved into
    /// `peer_ns` under the name `peer_name`, both up.
    pub async fn veth_to(
        &self,
        name: &str,
        peer_ns: &Netns,
        peer_nl: &Nl,
        peer_name: &str,
    ) -> Result<()> {
        let tmp = format!("lhp{}", std::process::id() % 100_000);
        self.handle
            .link()
            .add(LinkVeth::new(name, &tmp).build())
            .execute()
            .await
            .map_err(req(format!("creating veth {name}")))?;
        let idx = self.index(&tmp).await?;
        use std::os::fd::AsRawFd;
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(idx)
                    .setns_by_fd(peer_ns.fd().as_raw_fd())
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("moving {tmp} into {}", peer_ns.name())))?;
        let pidx = peer_nl.index(&tmp).await?;
        peer_nl
            .handle
            .link()
            .set(
                LinkUnspec::new_with_index(pidx)
                    .name(peer_name.to_string())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(req(format!("renaming {tmp} to {peer_name}")))?;
        self.set_up(name).await
    }

    /// Adds an address; one that is already there is fine (idempotent).
    pub async fn add_addr(&self, ifname: &str, addr: IpNet) -> Result<()> {
        let idx = self.index(ifname).await?;
        let r = self
            .handle
            .address()
            .add(idx, addr.addr(), addr.prefix_len())
            .execute()
            .await;
        match r {
            Err(e) if errno_of(&e) == Some(EEXIST) => Ok(()),
            r => r.map_err(req(format!("adding {addr} to {ifname}"))),
        }
    }

    /// The addresses on an interface, with their prefixes.
    pub async fn addrs(&self, ifname: &str) -> Result<Vec<IpNet>> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let idx = self.index(ifname).await?;
        let mut msgs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(idx)
            .execute();
        let mut v = Vec::new();
        while let Some(m) = msgs
            .try_next()
            .await
            .map_err(req(format!("listing the addresses of {ifname}")))?
        {
            let prefix = m.header.prefix_len;
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a
                    && let Ok(n) = IpNet::new(*ip, prefix)
                {
                    v.push(n);
                }
            }
        }
        Ok(v)
    }

    fn route_msg(dst: IpNet, via: Option<IpAddr>, oif: Option<u32>) -> Result<RouteMessage> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(|e| NetlinkError::Invalid(format!("route {dst}: {e:?}")))?;
        if let Some(gw) = via {
            b = b
                .gateway(gw)
                .map_err(|e| NetlinkError::Invalid(format!("route {dst}: {e:?}")))?;
        }
        if let Some(i) = oif {
            b = b.output_interface(i);
        }
        Ok(b.build())
    }

    /// Adds (or replaces) a route to `dst` via a gateway and/or out of an interface.
    pub async fn replace_route(
        &self,
        dst: IpNet,
        via: Option<IpAddr>,
        dev: Option<&str>,
    ) -> Result<()> {
        let oif = match dev {
            Some(d) => Some(self.index(d).await?),
            None => None,
        };
        self.replace_route_idx(dst, via, oif).await
    }

    /// Adds (or replaces) a route out of an interface given by index.
    pub async fn replace_route_idx(
        &self,
        dst: IpNet,
        via: Option<IpAddr>,
        oif: Option<u32>,
    ) -> Result<()> {
        let msg = Self::route_msg(dst, via, oif)?;
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(req(format!("adding route {dst}")))
    }

    /// Deletes a route; one that is already gone is fine (idempotent:
    /// something else in the namespace may have removed it meanwhile).
    pub async fn del_route(&self, r: &RouteInfo) -> Result<()> {
        let msg = Self::route_msg(r.dst, r.gateway, r.oif)?;
        match self.handle.route().del(msg).execute().await {
            Err(e) if errno_of(&e) == Some(ESRCH) => Ok(()),
            r2 => r2.map_err(req(format!("deleting route {}", r.dst))),
        }
    }

    /// The main table's route messages of one address family.
    async fn main_table(&self, v6: bool) -> Result<Vec<RouteMessage>> {
        let q = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let mut s = self.handle.route().get(q).execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await.map_err(req("listing routes"))? {
            if m.header.table == 254 {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Routes of the main table for one address family.
    pub async fn routes(&self, v6: bool) -> Result<Vec<RouteInfo>> {
        let mut out = Vec::new();
        for m in self.main_table(v6).await? {
            let mut dst = None;
            let mut gateway = None;
            let mut oif = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Destination(d) => dst = route_addr(d),
                    RouteAttribute::Gateway(g) => gateway = route_addr(g),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            let any: IpAddr = if v6 {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            };
            let dst = IpNet::new(dst.unwrap_or(any), m.header.destination_prefix_length)
                .map_err(|e| NetlinkError::Invalid(e.to_string()))?;
            out.push(RouteInfo { dst, gateway, oif });
        }
        Ok(out)
    }

    /// The main table's default routes of one family: each one's metric (0
    /// without one) and gateway.
    pub async fn default_routes(&self, v6: bool) -> Result<Vec<(u32, Option<IpAddr>)>> {
        let mut out = Vec::new();
        for m in self.main_table(v6).await? {
            if m.header.destination_prefix_length != 0 {
                continue;
            }
            let mut metric = 0;
            let mut gateway = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Priority(p) => metric = *p,
                    RouteAttribute::Gateway(g) => gateway = route_addr(g),
                    _ => {}
                }
            }
            out.push((metric, gateway));
        }
        Ok(out)
    }
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some((*v4).into()),
        RouteAddress::Inet6(v6) => Some((*v6).into()),
        _ => None,
    }
}

const fn libc_enodev() -> i32 {
    19
}

const ESRCH: i32 = 3;
const EEXIST: i32 = 17;

/// The errno of a kernel refusal, if that is what `e` is.
fn errno_of(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_message_has_prefix_zero() {
        let m = Nl::route_msg("0.0.0.0/0".parse().unwrap(), None, Some(3)).unwrap();
        assert_eq!(m.header.destination_prefix_length, 0, "{m:?}");
    }
}
