//! The lab's own certificate authority (rcgen) and what it signs: one server
//! certificate for the lab's DoH/DoT host (doh.lab, dot.lab, 192.0.2.43),
//! the provider's DoT resolver, whoami's TLS (whoami.lab, 192.0.2.80) and
//! the news server on the same host (news.lab).
//! Clients in the lab trust only this CA. Made fresh for every run.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::model::topology::addr;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("making the lab's certificates")]
    Rcgen(#[from] rcgen::Error),
    #[error("setting up TLS")]
    Rustls(#[from] rustls::Error),
}

/// The name on the provider's DNS-over-TLS resolver (10.64.0.1:853).
pub const PROVIDER_DOT_NAME: &str = "dns.provider.lab";
/// The name on whoami's TLS (the lab's resolvers answer it, as every name,
/// with whoami's addresses); [`super::whoami::TLS_NAME`].
pub const WHOAMI_NAME: &str = "whoami.lab";
/// The news server's name, on whoami's host; [`super::news::HOST`].
pub const NEWS_NAME: &str = "news.lab";

pub struct LabTls {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    server_cert: CertificateDer<'static>,
    server_key: Vec<u8>,
    /// The servers' SubjectPublicKeyInfo (DER), for clients that pin it.
    pub server_spki: Vec<u8>,
}

impl LabTls {
    pub fn generate() -> Result<LabTls, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "leakhound lab CA");
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate()?;
        let server_params = CertificateParams::new(vec![
            "doh.lab".to_string(),
            "dot.lab".to_string(),
            addr::DOH.to_string(),
            PROVIDER_DOT_NAME.to_string(),
            addr::TUNNEL_SERVER.to_string(),
            WHOAMI_NAME.to_string(),
            addr::WHOAMI.to_string(),
            addr::WHOAMI_V6.to_string(),
            NEWS_NAME.to_string(),
        ])?;
        let server_cert = server_params.signed_by(&server_key, &issuer)?;
        Ok(LabTls {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            server_cert: server_cert.der().clone(),
            server_key: server_key.serialize_der(),
            server_spki: rcgen::PublicKeyData::subject_public_key_info(&server_key),
        })
    }

    /// The servers' TLS configuration, offering `alpn` protocols.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut c = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![self.server_cert.clone()], key)?;
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(c))
    }

    /// A client configuration trusting only the lab's CA.
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        let mut c = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lab_ca_signs_a_server_cert_its_clients_accept() {
        let t = LabTls::generate().unwrap();
        assert!(t.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        t.server_config(&[b"h2"]).unwrap();
        t.client_config(&[b"h2"]).unwrap();
    }
}
