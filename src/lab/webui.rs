//! The real qBittorrent driven through its WebUI API (v2), from the
//! gateway's own loopback, as a Gluetun user's port-forwarding hook does:
//! the lab's qBittorrent lets clients on localhost in without a login
//! (`WebUI\LocalHostAuth=false`, what Gluetun's documentation tells users
//! to set for that hook), so no credential ever crosses a wire or a pcap.
//! Request bodies and answers are made and read by pure functions here;
//! [`Qbittorrent`] is the I/O edge.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::lab::netns::Netns;
use crate::probe::{self, ProbeError};

/// Why a WebUI call gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum WebUiError {
    /// The call got no answer (`what`: its method and path).
    #[error("{what}: {source}")]
    Call {
        what: String,
        #[source]
        source: ProbeError,
    },
    /// The WebUI answered with another status than 200.
    #[error("{what}: HTTP {status} {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("not the JSON qBittorrent answers: {0}")]
    Json(#[source] serde_json::Error),
    #[error("listen_port {0} is no port")]
    ListenPort(i64),
    #[error("qBittorrent refused the torrent (Fails.)")]
    Refused,
}

/// One torrent as `torrents/info` reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TorrentInfo {
    pub hash: String,
    /// 0.0 ..= 1.0.
    pub progress: f64,
    pub state: String,
    #[serde(default)]
    pub num_seeds: i64,
    #[serde(default)]
    pub dlspeed: i64,
}

/// One tracker of a torrent, as `torrents/trackers` reports it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TrackerInfo {
    pub url: String,
    /// 0 disabled, 1 not contacted yet, 2 working, 3 updating, 4 not working.
    pub status: i64,
    #[serde(default)]
    pub msg: String,
}

pub const TRACKER_UPDATING: i64 = 3;
pub const TRACKER_NOT_WORKING: i64 = 4;

/// Is a torrent in this state running (exchanging pieces with peers, or
/// ready to): not checking its files, queued, paused, or in error.
pub fn is_running(state: &str) -> bool {
    matches!(
        state,
        "downloading" | "stalledDL" | "forcedDL" | "uploading" | "stalledUP" | "forcedUP"
    )
}

/// The torrent with `hash` in a `torrents/info` answer.
pub fn parse_info(body: &str, hash: &str) -> Result<Option<TorrentInfo>, WebUiError> {
    let all: Vec<TorrentInfo> = serde_json::from_str(body).map_err(WebUiError::Json)?;
    Ok(all.into_iter().find(|t| t.hash.eq_ignore_ascii_case(hash)))
}

/// The tracker at `url` in a `torrents/trackers` answer.
pub fn parse_tracker(body: &str, url: &str) -> Result<Option<TrackerInfo>, WebUiError> {
    let all: Vec<TrackerInfo> = serde_json::from_str(body).map_err(WebUiError::Json)?;
    Ok(all.into_iter().find(|t| t.url == url))
}

/// The listening port in an `app/preferences` answer.
pub fn parse_listen_port(body: &str) -> Result<u16, WebUiError> {
    #[derive(Deserialize)]
    struct Prefs {
        listen_port: i64,
    }
    let p: Prefs = serde_json::from_str(body).map_err(WebUiError::Json)?;
    u16::try_from(p.listen_port).map_err(|_| WebUiError::ListenPort(p.listen_port))
}

/// A multipart/form-data body with one file field `torrents` (what
/// `torrents/add` takes), and its content type.
pub fn add_torrent_body(file_name: &str, torrent: &[u8], boundary: &str) -> (Vec<u8>, String) {
    let mut b = Vec::with_capacity(torrent.len() + 256);
    b.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"{file_name}\"\r\nContent-Type: application/x-bittorrent\r\n\r\n").as_bytes());
    b.extend(torrent);
    b.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (b, format!("multipart/form-data; boundary={boundary}"))
}

/// qBittorrent's WebUI on the gateway's loopback.
pub struct Qbittorrent<'a> {
    pub ns: &'a Netns,
    pub port: u16,
}

const CALL: Duration = Duration::from_secs(3);

impl Qbittorrent<'_> {
    fn at(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<String, WebUiError> {
        let mut req = probe::request(method, self.at(), path);
        if !body.is_empty() {
            req = req.header("content-type", content_type).body(body);
        }
        let what = || format!("{method} {path}");
        match probe::http(self.ns, self.at(), req, CALL).await {
            Ok(r) if r.status == 200 => Ok(r.body),
            Ok(r) => Err(WebUiError::Status {
                what: what(),
                status: r.status,
                body: r.body,
            }),
            Err(source) => Err(WebUiError::Call {
                what: what(),
                source,
            }),
        }
    }

    async fn form(&self, path: &str, form: String) -> Result<String, WebUiError> {
        self.call(
            "POST",
            path,
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await
    }

    /// Adds a torrent (its metainfo file's bytes); it starts at once.
    pub async fn add(&self, name: &str, torrent: &[u8]) -> Result<(), WebUiError> {
        let boundary = format!("leakhound{}", probe::nonce());
        let (body, ct) = add_torrent_body(&format!("{name}.torrent"), torrent, &boundary);
        let answer = self.call("POST", "/api/v2/torrents/add", &ct, body).await?;
        if answer.trim() == "Fails." {
            return Err(WebUiError::Refused);
        }
        Ok(())
    }

    pub async fn info(&self, hash: &str) -> Result<Option<TorrentInfo>, WebUiError> {
        let body = self
            .call(
                "GET",
                &format!("/api/v2/torrents/info?hashes={hash}"),
                "",
                vec![],
            )
            .await?;
        parse_info(&body, hash)
    }

    pub async fn tracker(&self, hash: &str, url: &str) -> Result<Option<TrackerInfo>, WebUiError> {
        let body = self
            .call(
                "GET",
                &format!("/api/v2/torrents/trackers?hash={hash}"),
                "",
                vec![],
            )
            .await?;
        parse_tracker(&body, url)
    }

    pub async fn reannounce(&self, hash: &str) -> Result<(), WebUiError> {
        self.form("/api/v2/torrents/reannounce", format!("hashes={hash}"))
            .await
            .map(drop)
    }

    pub async fn listen_port(&self) -> Result<u16, WebUiError> {
        let body = self
            .call("GET", "/api/v2/app/preferences", "", vec![])
            .await?;
        parse_listen_port(&body)
    }

    pub async fn set_listen_port(&self, port: u16) -> Result<(), WebUiError> {
        self.form(
            "/api/v2/app/setPreferences",
            format!("json=%7B%22listen_port%22%3A{port}%7D"),
        )
        .await
        .map(drop)
    }

    /// Removes the torrent and its files.
    pub async fn delete(&self, hash: &str) -> Result<(), WebUiError> {
        self.form(
            "/api/v2/torrents/delete",
            format!("hashes={hash}&deleteFiles=true"),
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read() {
        let info = r#"[{"hash":"ABC","progress":0.5,"state":"downloading","num_seeds":1,"dlspeed":1000,"name":"x"}]"#;
        let t = parse_info(info, "abc").unwrap().unwrap();
        assert_eq!(t.progress, 0.5);
        assert_eq!(t.state, "downloading");
        assert_eq!(parse_info(info, "def").unwrap(), None);
        assert!(matches!(
            parse_info("Forbidden", "abc"),
            Err(WebUiError::Json(_))
        ));
        assert!(is_running("stalledDL") && is_running("uploading"));
        assert!(!is_running("checkingResumeData") && !is_running("pausedDL"));
        let tr = r#"[{"url":"** [DHT] **","status":0,"msg":""},{"url":"http://192.0.2.69:6969/announce","status":4,"msg":"timed out","num_peers":0}]"#;
        let t = parse_tracker(tr, "http://192.0.2.69:6969/announce")
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.status, t.msg.as_str()),
            (TRACKER_NOT_WORKING, "timed out")
        );
        assert_eq!(
            parse_listen_port(r#"{"listen_port":43210,"dht":true}"#).unwrap(),
            43210
        );
        assert_eq!(
            parse_listen_port(r#"{"listen_port":70000}"#)
                .unwrap_err()
                .to_string(),
            "listen_port 70000 is no port"
        );
        let e = parse_listen_port(r#"{}"#).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("not the JSON qBittorrent answers: missing field `listen_port`"),
            "{e}"
        );
    }

    #[test]
    fn the_upload_is_one_multipart_file_field() {
        let (b, ct) = add_torrent_body("a.torrent", b"d4:infoe", "XyZ");
        assert_eq!(ct, "multipart/form-data; boundary=XyZ");
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "--XyZ\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"a.torrent\"\r\nContent-Type: application/x-bittorrent\r\n\r\nd4:infoe\r\n--XyZ--\r\n"
        );
    }
}
