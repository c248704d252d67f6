//! The real NZBGet driven through its JSON-RPC API, from the gateway's own
//! loopback: the lab's NZBGet lets 127.0.0.1 in without a login
//! (`AuthorizedIP=127.0.0.1`, as for qBittorrent's localhost bypass), so
//! no credential crosses a wire. Requests and answers are made and read by
//! pure functions; [`Nzbget`] is the I/O edge.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::lab::netns::Netns;
use crate::probe;

/// The JSON-RPC body of `append`: an NZB file's content (base64) under
/// `name`, at default priority, not paused.
pub fn append_body(name: &str, nzb: &str) -> String {
    let content = base64::engine::general_purpose::STANDARD.encode(nzb);
    serde_json::json!({
        "method": "append",
        "params": [name, content, "", 0, false, false, "", 0, "SCORE", []],
    })
    .to_string()
}

/// Why a JSON-RPC call to NZBGet gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum NzbgetError {
    #[error("NZBGet's JSON-RPC: {0}")]
    Call(#[source] probe::ProbeError),
    #[error("NZBGet's JSON-RPC: HTTP {status} {body}")]
    Status { status: u16, body: String },
    #[error("not NZBGet's JSON-RPC answer: {0}")]
    Json(#[source] serde_json::Error),
    /// NZBGet's own error object.
    #[error("NZBGet: {0}")]
    Rpc(serde_json::Value),
    #[error("NZBGet answered without a result")]
    NoResult,
    /// `append` gives an id of 0 or less when it could not add the NZB.
    #[error("NZBGet did not add the NZB (id {0})")]
    NotAdded(i64),
}

#[derive(Debug, Deserialize)]
struct RpcAnswer<T> {
    result: Option<T>,
    error: Option<serde_json::Value>,
}

fn result<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, NzbgetError> {
    let a: RpcAnswer<T> = serde_json::from_str(body).map_err(NzbgetError::Json)?;
    match (a.result, a.error) {
        (_, Some(e)) if !e.is_null() => Err(NzbgetError::Rpc(e)),
        (Some(r), _) => Ok(r),
        (None, _) => Err(NzbgetError::NoResult),
    }
}

/// The NZB's id in an `append` answer (NZBGet returns 0 or less when it
/// could not add it).
pub fn parse_append(body: &str) -> Result<i64, NzbgetError> {
    let id: i64 = result(body)?;
    if id <= 0 {
        return Err(NzbgetError::NotAdded(id));
    }
    Ok(id)
}

/// One entry of the queue (`listgroups`) or the history (`history`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Job {
    #[serde(rename = "NZBID")]
    pub nzb_id: i64,
    pub status: String,
    #[serde(default, rename = "RemainingSizeMB")]
    pub remaining_mb: i64,
}

/// Where NZB `id` is: in the queue, in the history (done), or nowhere.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Queued(Job),
    Done(Job),
    Unknown,
}

/// Reads the `listgroups` and `history` answers for NZB `id`.
pub fn progress(queue: &str, history: &str, id: i64) -> Result<Progress, NzbgetError> {
    let q: Vec<Job> = result(queue)?;
    if let Some(j) = q.into_iter().find(|j| j.nzb_id == id) {
        return Ok(Progress::Queued(j));
    }
    let h: Vec<Job> = result(history)?;
    Ok(h.into_iter()
        .find(|j| j.nzb_id == id)
        .map_or(Progress::Unknown, Progress::Done))
}

/// NZBGet's JSON-RPC on the gateway's loopback.
pub struct Nzbget<'a> {
    pub ns: &'a Netns,
    pub port: u16,
}

const CALL: Duration = Duration::from_secs(3);

impl Nzbget<'_> {
    async fn rpc(&self, body: String) -> Result<String, NzbgetError> {
        let at = SocketAddr::from(([127, 0, 0, 1], self.port));
        let req = probe::request("POST", at, "/jsonrpc")
            .header("content-type", "application/json")
            .body(body);
        match probe::http(self.ns, at, req, CALL).await {
            Ok(r) if r.status == 200 => Ok(r.body),
            Ok(r) => Err(NzbgetError::Status {
                status: r.status,
                body: r.body,
            }),
            Err(e) => Err(NzbgetError::Call(e)),
        }
    }

    /// Adds an NZB; returns its id.
    pub async fn append(&self, name: &str, nzb: &str) -> Result<i64, NzbgetError> {
        parse_append(&self.rpc(append_body(name, nzb)).await?)
    }

    pub async fn progress(&self, id: i64) -> Result<Progress, NzbgetError> {
        let q = self
            .rpc(r#"{"method":"listgroups","params":[0]}"#.into())
            .await?;
        let h = self
            .rpc(r#"{"method":"history","params":[false]}"#.into())
            .await?;
        progress(&q, &h, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_answers() {
        let b: serde_json::Value = serde_json::from_str(&append_body("a.nzb", "<nzb/>")).unwrap();
        assert_eq!(b["method"], "append");
        assert_eq!(b["params"][0], "a.nzb");
        assert_eq!(b["params"][1], "PG56Yi8+");
        assert_eq!(parse_append(r#"{"version":"1.1","result":7}"#).unwrap(), 7);
        let e = |body: &str| parse_append(body).unwrap_err().to_string();
        assert_eq!(
            e(r#"{"version":"1.1","result":0}"#),
            "NZBGet did not add the NZB (id 0)"
        );
        assert_eq!(
            e(r#"{"version":"1.1","error":{"code":1,"message":"Invalid procedure"}}"#),
            r#"NZBGet: {"code":1,"message":"Invalid procedure"}"#
        );
        assert_eq!(
            e(r#"{"version":"1.1"}"#),
            "NZBGet answered without a result"
        );
        assert!(
            e("<html>").starts_with("not NZBGet's JSON-RPC answer: "),
            "{}",
            e("<html>")
        );
        let q = r#"{"result":[{"NZBID":3,"Status":"DOWNLOADING","RemainingSizeMB":1}]}"#;
        let h = r#"{"result":[{"NZBID":2,"Status":"SUCCESS/ALL"}]}"#;
        assert!(matches!(progress(q, h, 3), Ok(Progress::Queued(j)) if j.status == "DOWNLOADING"));
        assert!(matches!(progress(q, h, 2), Ok(Progress::Done(j)) if j.status == "SUCCESS/ALL"));
        assert!(matches!(progress(q, h, 9), Ok(Progress::Unknown)));
    }
}
