//! What every transport of the upstream client shares: the firewall mark
//! on its sockets, marked TCP connections, random query IDs, and how a
//! try (or the client's setup) fails.

use std::net::SocketAddr;

use hickory_proto::op::ResponseCode;

/// The firewall mark on the resolver's upstream sockets: the kill switch
/// lets port 53 out only with it, so only the gateway's resolver (not a
/// dependent) reaches the upstream.
pub const UPSTREAM_MARK: u32 = 0x6c68;

/// Why the client cannot be made from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{name:?} is not a name a certificate can be checked for")]
    ServerName {
        name: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("DoT and DoH need a TLS client configuration")]
    NoTls,
    #[error("the DoH URL {url}")]
    DohUrl {
        url: String,
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
}

/// Why one try, or a whole query, failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{server}: no answer in time")]
    Timeout { server: SocketAddr },
    #[error("{server}: {what}")]
    Io {
        server: SocketAddr,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{server}: the connection closed before the answer")]
    Closed { server: SocketAddr },
    #[error("{server}: too many queries waiting")]
    Busy { server: SocketAddr },
    #[error("{server} answered {code}")]
    Rcode {
        server: SocketAddr,
        code: ResponseCode,
    },
    #[error("{server}: a malformed answer")]
    Malformed {
        server: SocketAddr,
        #[source]
        source: hickory_proto::serialize::binary::DecodeError,
    },
    #[error("{server}: an answer to another question")]
    WrongAnswer { server: SocketAddr },
    #[error("{server}: HTTP")]
    Http {
        server: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("{server}: reading the HTTP answer")]
    Body {
        server: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{server}: HTTP status {status}")]
    HttpStatus { server: SocketAddr, status: u16 },
}

/// A marked TCP connection to `server` (plain DNS's fallback, DoT, DoH).
pub(crate) async fn connect_tcp(
    server: SocketAddr,
) -> Result<tokio::net::TcpStream, UpstreamError> {
    let io = |what| {
        move |source| UpstreamError::Io {
            server,
            what,
            source,
        }
    };
    let socket = if server.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(io("opening a TCP socket"))?;
    socket2::SockRef::from(&socket)
        .set_mark(UPSTREAM_MARK)
        .map_err(io("marking a TCP socket"))?;
    socket.set_nodelay(true).map_err(io("TCP_NODELAY"))?;
    socket.connect(server).await.map_err(io("connecting"))
}

/// How DoT and DoH open their kept connections: a marked TCP connection,
/// then a TLS handshake checking the server's certificate for one name.
pub(crate) struct TlsClient {
    name: rustls::pki_types::ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl TlsClient {
    /// `tls` checks the certificate for `server_name`, speaking `alpn`.
    pub(crate) fn new(
        server_name: &str,
        mut tls: rustls::ClientConfig,
        alpn: &[u8],
    ) -> Result<TlsClient, SetupError> {
        let name =
            rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|source| {
                SetupError::ServerName {
                    name: server_name.to_string(),
                    source,
                }
            })?;
        tls.alpn_protocols = vec![alpn.to_vec()];
        Ok(TlsClient {
            name,
            connector: tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls)),
        })
    }

    pub(crate) async fn connect(
        &self,
        server: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, UpstreamError> {
        let tcp = connect_tcp(server).await?;
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|source| UpstreamError::Io {
                server,
                what: "the TLS handshake",
                source,
            })
    }
}

/// A random query ID.
pub(crate) fn random_id() -> u16 {
    rand::random()
}
