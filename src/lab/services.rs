//! Starts and holds the lab's services (ISP resolver, whoami, the provider's
//! WireGuard server and resolver), each writing to the one log they share
//! ([`ServiceLog`], in its own module, re-exported here).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio_util::sync::CancellationToken;

use super::wgserver::{ProviderKind, WgServer, WgServerSpec};
use super::{Lab, LabError, dependents, dns, echo, http, whoami};
use crate::model::topology::{addr, host};
use crate::tunnel::generate_keypair;

pub use super::service_log::{LogEntry, ServiceLog};
pub use crate::model::topology::service::{ISP_DNS, LAN_DNS, LAN_HTTP, PROVIDER_DNS, PROVIDER_DOT};

/// The key material of one run: the provider's and the gateway's.
#[derive(Clone)]
pub struct LabKeys {
    pub server_private: [u8; 32],
    pub server_public: [u8; 32],
    pub client_private: [u8; 32],
    pub client_public: [u8; 32],
    pub psk: [u8; 32],
}

impl LabKeys {
    pub fn generate() -> LabKeys {
        let (server_private, server_public) = generate_keypair();
        let (client_private, client_public) = generate_keypair();
        let psk: [u8; 32] = rand::random();
        // The private halves as the gateway's environment carries them:
        // never in a report or a log.
        {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            for k in [&server_private, &client_private, &psk] {
                crate::model::scrub::register(&b64.encode(k));
            }
        }
        LabKeys {
            server_private,
            server_public,
            client_private,
            client_public,
            psk,
        }
    }
}

/// The running services of a lab.
pub struct LabServices {
    pub log: ServiceLog,
    /// The lab's CA and the DoH/DoT server certificate.
    pub tls: super::tls::LabTls,
    pub wg: WgServer,
    pub keys: LabKeys,
    /// While set, the provider refuses every port-forwarding request.
    pub natpmp_refuse: Arc<AtomicBool>,
    /// Set: the provider's next mapping request finds the old mappings
    /// forgotten and their ports retired.
    pub natpmp_renumber: Arc<AtomicBool>,
    /// The Usenet server on the lab's internet (news.lab:563).
    pub news: super::news::NewsServer,
    /// The real dependents, when the run asked for them
    /// ([`LabServices::start_apps`]).
    pub apps: Option<super::apps::Apps>,
    cancel: CancellationToken,
    _dns: Vec<hickory_server::Server<dns::LabResolver>>,
}

impl LabServices {
    /// Starts every service, with boringtun as the provider's server.
    pub async fn start(lab: &Lab, keys: LabKeys) -> Result<LabServices, LabError> {
        LabServices::start_with(
            lab,
            keys,
            ProviderKind::Boringtun,
            &super::dependents::default_stand_ins(),
        )
        .await
    }

    /// Starts every service, with `provider` as the provider's server and
    /// the dependents' stand-ins on `stand_ins` (port, application).
    pub async fn start_with(
        lab: &Lab,
        keys: LabKeys,
        provider: ProviderKind,
        stand_ins: &[(u16, String)],
    ) -> Result<LabServices, LabError> {
        let log = ServiceLog::default();
        let cancel = CancellationToken::new();
        let isp_dns = start_plain_internet(lab, &log, &cancel)?;
        let (tls, news) = start_tls_internet(lab, &log, &cancel)?;
        dependents::start(lab.ns(host::GW)?, stand_ins, log.clone(), cancel.clone())?;
        start_lan_http(lab, &log, &cancel)?;
        let wg = start_provider_server(lab, &keys, provider).await?;
        let lan_dns = start_lan_dns(lab, &log)?;
        let provider_dns = dns::start(
            lab.ns(host::VPN)?,
            PROVIDER_DNS,
            SocketAddr::new(addr::TUNNEL_SERVER.into(), 53),
            log.clone(),
        )?;
        super::encrypted_dns::start_dot(
            lab.ns(host::VPN)?,
            PROVIDER_DOT,
            SocketAddr::new(addr::TUNNEL_SERVER.into(), 853),
            &tls,
            log.clone(),
            cancel.clone(),
        )?;
        let natpmp_refuse = Arc::new(AtomicBool::new(false));
        let natpmp_renumber = Arc::new(AtomicBool::new(false));
        super::natpmp_server::start(
            lab.ns(host::VPN)?,
            log.clone(),
            natpmp_refuse.clone(),
            natpmp_renumber.clone(),
            cancel.clone(),
        )?;
        Ok(LabServices {
            log,
            tls,
            wg,
            keys,
            natpmp_refuse,
            natpmp_renumber,
            news,
            apps: None,
            cancel,
            _dns: [Some(isp_dns), Some(provider_dns), lan_dns]
                .into_iter()
                .flatten()
                .collect(),
        })
    }

    /// Starts the real applications on their ports in the gateway's
    /// namespace (instead of stand-ins there), for the lab's whole life.
    pub async fn start_apps(
        &mut self,
        lab: &Lab,
        apps: &[(super::apps::App, u16)],
    ) -> Result<(), LabError> {
        let started = super::apps::Apps::start(lab, self.log.clone(), apps).await?;
        // A stand-in on each port whose application did not start: the
        // LAN scenarios still have something there; the scenarios that
        // drive the application fail with its reason.
        for (app, _) in &started.failed {
            if let Some((_, port)) = apps.iter().find(|(a, _)| a == app) {
                let stand_in = [(*port, app.name().to_string())];
                if let Err(e) = dependents::start(
                    lab.ns(host::GW)?,
                    &stand_in,
                    self.log.clone(),
                    self.cancel.clone(),
                ) {
                    tracing::warn!("no stand-in for {} on {port} either: {e}", app.name());
                }
            }
        }
        self.apps = Some(started);
        Ok(())
    }

    pub fn stop(&self) {
        self.cancel.cancel();
        self.wg.stop();
    }
}

/// The lab's internet in plain text: the ISP's resolver (returned), whoami
/// and echo; and the home router's NAT-PMP and UPnP on its LAN side (a
/// dependent asking it to expose a port, a leak class of its own, is seen
/// there with the port it asked for).
fn start_plain_internet(
    lab: &Lab,
    log: &ServiceLog,
    cancel: &CancellationToken,
) -> Result<hickory_server::Server<dns::LabResolver>, LabError> {
    let isp = lab.ns(host::ISP)?;
    let isp_dns = dns::start(
        isp,
        ISP_DNS,
        SocketAddr::new(addr::ISP_DNS.into(), 53),
        log.clone(),
    )?;
    whoami::start(
        isp,
        &[
            SocketAddr::new(addr::WHOAMI.into(), 80),
            SocketAddr::new(addr::WHOAMI_V6.into(), 80),
        ],
        log.clone(),
        cancel.clone(),
    )?;
    echo::start(
        isp,
        echo::SERVICE,
        &[
            SocketAddr::new(addr::WHOAMI.into(), echo::PORT),
            SocketAddr::new(addr::WHOAMI_V6.into(), echo::PORT),
        ],
        log.clone(),
        cancel.clone(),
    )?;
    super::upnp::start(
        lab.ns(host::HOME)?,
        addr::HOME_GW_SIDE,
        addr::HOME_GW_SIDE_V6,
        addr::HOME_UPLINK,
        log.clone(),
        cancel.clone(),
    )?;
    Ok(isp_dns)
}

/// The lab's CA (its certificate written to the lab's CA file) and the
/// internet's TLS services: DoT, whoami on 443, the Usenet server
/// (returned), the browser's far end and DoH.
fn start_tls_internet(
    lab: &Lab,
    log: &ServiceLog,
    cancel: &CancellationToken,
) -> Result<(super::tls::LabTls, super::news::NewsServer), LabError> {
    let isp = lab.ns(host::ISP)?;
    let tls = super::tls::LabTls::generate().map_err(|e| LabError::Service {
        service: "lab CA".into(),
        source: std::io::Error::other(e),
    })?;
    super::encrypted_dns::start_dot(
        isp,
        super::encrypted_dns::DOT,
        SocketAddr::new(addr::DOH.into(), 853),
        &tls,
        log.clone(),
        cancel.clone(),
    )?;
    whoami::start_tls(
        isp,
        &[
            SocketAddr::new(addr::WHOAMI.into(), 443),
            SocketAddr::new(addr::WHOAMI_V6.into(), 443),
        ],
        &tls,
        log.clone(),
        cancel.clone(),
    )?;
    let news = super::news::NewsServer::start(isp, &tls, log.clone(), cancel.clone())?;
    super::browser::start_far_end(isp, log.clone(), cancel.clone())?;
    std::fs::write(lab.ca_file(), &tls.ca_pem).map_err(|source| LabError::Service {
        service: "lab CA".into(),
        source,
    })?;
    super::encrypted_dns::start_doh(
        isp,
        SocketAddr::new(addr::DOH.into(), 443),
        &tls,
        log.clone(),
        cancel.clone(),
    )?;
    Ok((tls, news))
}

/// HTTP on every LAN host of this lab (the default's four, or those a
/// user's configuration made) and on the home router's LAN side.
fn start_lan_http(lab: &Lab, log: &ServiceLog, cancel: &CancellationToken) -> Result<(), LabError> {
    let topo = lab.topology();
    let mut lan_hosts: Vec<(&'static str, IpAddr)> = topo
        .lan_hosts()
        .iter()
        .filter_map(|h| topo.ipv4_of(h.name).map(|ip| (h.name, IpAddr::from(ip))))
        .collect();
    lan_hosts.push((host::HOME, addr::HOME_GW_SIDE.into()));
    for (h, ip) in lan_hosts {
        http::serve(
            lab.ns(h)?,
            LAN_HTTP,
            &[SocketAddr::new(ip, 80)],
            log.clone(),
            cancel.clone(),
            move |_| format!("{h}\n"),
        )?;
    }
    Ok(())
}

/// The provider's WireGuard server (`provider`), for the gateway's keys.
async fn start_provider_server(
    lab: &Lab,
    keys: &LabKeys,
    provider: ProviderKind,
) -> Result<WgServer, LabError> {
    WgServer::start_kind(
        lab,
        WgServerSpec {
            private: keys.server_private,
            client_public: keys.client_public,
            psk: Some(keys.psk),
            listen: SocketAddr::new(addr::VPN_ENDPOINT.into(), addr::VPN_ENDPOINT_PORT),
            tun_addrs: vec![
                "10.64.0.1/16".parse().expect("net"),
                "fd00:64::1/64".parse().expect("net"),
            ],
            client_allowed: vec![
                IpAddr::from(addr::TUNNEL_CLIENT).into(),
                IpAddr::from(addr::TUNNEL_CLIENT_V6).into(),
            ],
            mtu: 1420,
        },
        provider,
    )
    .await
}

/// A resolver on the LAN the gateway may reach (the seed's homelab), where
/// the lab has one: the `{lan-dns}` of scenario files.
fn start_lan_dns(
    lab: &Lab,
    log: &ServiceLog,
) -> Result<Option<hickory_server::Server<dns::LabResolver>>, LabError> {
    let roles = &lab.topology().roles;
    match (
        roles.get("lan-out-host"),
        roles.get("lan-dns").and_then(|a| a.parse::<IpAddr>().ok()),
    ) {
        (Some(h), Some(ip)) => Ok(Some(dns::start(
            lab.ns(h)?,
            LAN_DNS,
            SocketAddr::new(ip, 53),
            log.clone(),
        )?)),
        _ => Ok(None),
    }
}

impl Drop for LabServices {
    fn drop(&mut self) {
        self.stop();
        for s in &self._dns {
            s.shutdown_token().cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_finds_entries_by_service_and_nonce() {
        let log = ServiceLog::default();
        let src: SocketAddr = "203.0.113.77:4000".parse().unwrap();
        log.record(ISP_DNS, src, "A abc123.probe.lab.".into());
        log.record(PROVIDER_DNS, src, "A def456.probe.lab.".into());
        assert_eq!(log.find(ISP_DNS, "abc123").len(), 1);
        assert!(log.find(ISP_DNS, "def456").is_empty());
        assert_eq!(log.find(PROVIDER_DNS, "def456")[0].source, src);
        assert_eq!(log.len(), 2);
    }
}
