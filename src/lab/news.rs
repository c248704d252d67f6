//! The lab's Usenet news server on its internet: NNTP over TLS (port 563,
//! the lab CA's certificate, `news.lab`) on whoami's addresses, where every
//! lab name resolves. It serves the articles scenarios publish (yEnc, made
//! per scenario, `crate::model::usenet`) and logs every connection and every
//! article asked for with its source, as the `news` service, so the far end
//! proves which address NZBGet came from.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::LabError;
use super::netns::Netns;
use super::service_log::ServiceLog;
use super::tls::LabTls;
use crate::model::topology::{addr, service};
use crate::model::usenet::{self, Article, Command};

/// NNTP over TLS.
pub const PORT: u16 = 563;
/// The server's name (every lab name resolves to whoami's addresses); the
/// certificate's module owns it.
pub const HOST: &str = super::tls::NEWS_NAME;
/// The newsgroup the lab's posts are in.
pub const GROUP: &str = "alt.binaries.leakhound";
/// Longest command line read.
const MAX_LINE: usize = 512;

/// The running server and the articles it serves.
#[derive(Clone, Default)]
pub struct NewsServer {
    articles: Arc<Mutex<HashMap<String, Article>>>,
}

impl NewsServer {
    /// Serves on whoami's IPv4 and IPv6 addresses in `ns` until `cancel`.
    pub fn start(
        ns: &Netns,
        tls: &LabTls,
        log: ServiceLog,
        cancel: CancellationToken,
    ) -> Result<NewsServer, LabError> {
        let server = NewsServer::default();
        for ip in [std::net::IpAddr::from(addr::WHOAMI), addr::WHOAMI_V6.into()] {
            let (log, articles) = (log.clone(), server.articles.clone());
            super::encrypted_dns::serve_tls(
                ns,
                service::NEWS,
                SocketAddr::new(ip, PORT),
                tls,
                &[],
                cancel.clone(),
                move |s, peer| serve(s, peer, log.clone(), articles.clone()),
            )?;
        }
        Ok(server)
    }

    /// Makes `articles` available.
    pub fn publish(&self, articles: &[Article]) {
        let mut m = self.articles.lock().unwrap_or_else(|e| e.into_inner());
        for a in articles {
            m.insert(a.message_id.clone(), a.clone());
        }
    }
}

async fn serve(
    s: super::encrypted_dns::Tls,
    peer: SocketAddr,
    log: ServiceLog,
    articles: Arc<Mutex<HashMap<String, Article>>>,
) {
    log.record(service::NEWS, peer, "connection".into());
    let (r, mut w) = tokio::io::split(s);
    let mut r = BufReader::new(r);
    if w.write_all(b"200 news.lab (leakhound lab) ready\r\n")
        .await
        .is_err()
        || w.flush().await.is_err()
    {
        return;
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most one line's worth: a client that never ends its line gets
        // an error, not the server's memory.
        match (&mut r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.len() > MAX_LINE || !line.ends_with(b"\n") {
            let _ = w.write_all(b"501 line too long\r\n").await;
            let _ = w.flush().await;
            return;
        }
        let text = String::from_utf8_lossy(&line);
        tracing::debug!(%peer, "news: {}", text.trim_end());
        let answer: Vec<u8> = match usenet::parse_command(text.trim_end()) {
            Command::Capabilities => {
                b"101 Capability list:\r\nVERSION 2\r\nREADER\r\nAUTHINFO USER\r\n.\r\n".to_vec()
            }
            Command::ModeReader => b"201 Posting prohibited\r\n".to_vec(),
            Command::AuthUser => b"381 Password required\r\n".to_vec(),
            Command::AuthPass => b"281 Authentication accepted\r\n".to_vec(),
            Command::Group(g) => format!("211 0 0 0 {g}\r\n").into_bytes(),
            Command::Date => b"111 20261201000000\r\n".to_vec(),
            Command::Quit => {
                let _ = w.write_all(b"205 bye\r\n").await;
                let _ = w.flush().await;
                return;
            }
            Command::Fetch { what, message_id } => {
                let a = articles
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&message_id)
                    .cloned();
                log.record(
                    service::NEWS,
                    peer,
                    format!(
                        "{what:?} <{message_id}>{}",
                        if a.is_some() {
                            ""
                        } else {
                            " (no such article)"
                        }
                    ),
                );
                usenet::fetch_answer(what, &message_id, a.as_ref(), GROUP)
            }
            Command::Unknown(v) => format!("500 {v}: unknown command\r\n").into_bytes(),
        };
        // TLS holds what it could not send yet until flushed.
        if w.write_all(&answer).await.is_err() || w.flush().await.is_err() {
            return;
        }
    }
}
