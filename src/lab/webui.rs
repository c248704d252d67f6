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
pub fn parse_info(body: &str, hash: &str) -> Result<Option<TorrentInfo>, String> {
    let all: Vec<TorrentInfo> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(all.into_iter().find(|t| t.hash.eq_ignore_ascii_case(hash)))
}

/// The tracker at `url` in a `torrents/trackers` answer.
pub fn parse_tracker(body: &str, url: &str) -> Result<Option<TrackerInfo>, String> {
    let all: Vec<TrackerInfo> = serde_json::from_str(body).map_err(|e| e.to_string())?;
    Ok(all.into_iter().find(|t| t.url == url))
}

/// The listening port in an `app/preferences` answer.
pub fn parse_listen_port(body: &str) -> Result<u16, String> {
    #[derive(Deserialize)]
    struct Prefs {
        listen_port: i64,
    }
    let p: Prefs = serde_json::from_str(body).map_err(|e| e.to_string())?;
    u16::try_from(p.listen_port).map_err(|_| format!("listen_port {} is no port", p.listen_port))
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
    ) -> Result<String, String> {
        let headers = if body.is_empty() {
            vec![]
        } else {
            vec![("content-type".to_string(), content_type.to_string())]
        };
        let r: Result<(u16, String), ProbeError> =
            probe::http_request(self.ns, method, self.at(), path, &headers, body, CALL).await;
        match r {
            Ok((200, body)) => Ok(body),
            Ok((status, body)) => Err(format!("{method} {path}: HTTP {status} {body}")),
            Err(e) => Err(format!("{method} {path}: {e}")),
        }
    }

    async fn form(&self, path: &str, form: String) -> Result<String, String> {
        self.call(
            "POST",
            path,
            "application/x-www-form-urlencoded",
            form.into_bytes(),
        )
        .await
    }

    /// Adds a torrent (its metainfo file's bytes); it starts at once.
    pub async fn add(&self, name: &str, torrent: &[u8]) -> Result<(), String> {
        let boundary = format!("leakhound{}", probe::nonce());
        let (body, ct) = add_torrent_body(&format!("{name}.torrent"), torrent, &boundary);
        let answer = self.call("POST", "/api/v2/torrents/add", &ct, body).await?;
        if answer.trim() == "Fails." {
            return Err("qBittorrent refused the torrent (Fails.)".into());
        }
        Ok(())
    }

    pub async fn info(&self, hash: &str) -> Result<Option<TorrentInfo>, String> {
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

    pub async fn tracker(&self, hash: &str, url: &str) -> Result<Option<TrackerInfo>, String> {
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

    pub async fn reannounce(&self, hash: &str) -> Result<(), String> {
        self.form("/api/v2/torrents/reannounce", format!("hashes={hash}"))
            .await
            .map(drop)
    }

    pub async fn listen_port(&self) -> Result<u16, String> {
        let body = self
            .call("GET", "/api/v2/app/preferences", "", vec![])
            .await?;
        parse_listen_port(&body)
    }

    pub async fn set_listen_port(&self, port: u16) -> Result<(), String> {
        self.form(
            "/api/v2/app/setPreferences",
            format!("json=%7B%22listen_port%22%3A{port}%7D"),
        )
        .await
        .map(drop)
    }

    /// Removes the torrent and its files.
    pub async fn delete(&self, hash: &str) -> Result<(), String> {
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
        assert!(parse_info("Forbidden", "abc").is_err());
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
            parse_listen_port(r#"{"listen_port":43210,"dht":true}"#),
            Ok(43210)
        );
        assert!(parse_listen_port(r#"{"listen_port":70000}"#).is_err());
        assert!(parse_listen_port(r#"{}"#).is_err());
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
