//! Raw packet capture on the lab's watched wires: an AF_PACKET socket (pnet)
//! opened inside the namespace at the far end of each wire, on its own
//! thread, keeping every frame with its timestamp. Classification is the pure
//! [`crate::model::classify`]; this module only collects bytes and writes
//! pcap files.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pnet::datalink::{self, Channel};

use crate::lab::netns::{Netns, NetnsError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("no interface {ifname} in {ns}")]
    NoInterface { ns: String, ifname: String },
    #[error("opening a raw socket on {ifname} in {ns}")]
    Open {
        ns: String,
        ifname: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing pcap file {path}")]
    Pcap { path: String, detail: String },
}

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub at: SystemTime,
    pub data: Vec<u8>,
}

/// A running capture on one wire.
pub struct Capture {
    pub wire: &'static str,
    frames: Arc<Mutex<Vec<Frame>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), NetnsError>>>,
}

impl Capture {
    /// Starts capturing on `ifname` inside `ns`. Returns once the socket is
    /// open, so nothing sent afterwards can be missed.
    pub fn start(ns: &Netns, ifname: &str, wire: &'static str) -> Result<Capture, CaptureError> {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), CaptureError>>();
        let (f, s, ifn, nsn) = (
            frames.clone(),
            stop.clone(),
            ifname.to_string(),
            ns.name().to_string(),
        );
        let thread = ns.spawn(move || {
            let iface = match datalink::interfaces().into_iter().find(|i| i.name == ifn) {
                Some(i) => i,
                None => {
                    let _ = ready_tx.send(Err(CaptureError::NoInterface {
                        ns: nsn,
                        ifname: ifn,
                    }));
                    return;
                }
            };
            let cfg = datalink::Config {
                read_timeout: Some(Duration::from_millis(50)),
                read_buffer_size: 1 << 16,
                ..Default::default()
            };
            let mut rx = match datalink::channel(&iface, cfg) {
                Ok(Channel::Ethernet(_tx, rx)) => rx,
                Ok(_) => {
                    let _ = ready_tx.send(Err(CaptureError::Open {
                        ns: nsn,
                        ifname: ifn,
                        source: std::io::Error::other("not an Ethernet channel"),
                    }));
                    return;
                }
                Err(source) => {
                    let _ = ready_tx.send(Err(CaptureError::Open {
                        ns: nsn,
                        ifname: ifn,
                        source,
                    }));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            while !s.load(Ordering::Relaxed) {
                match rx.next() {
                    Ok(data) => f.lock().expect("frames lock").push(Frame {
                        at: SystemTime::now(),
                        data: data.to_vec(),
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => {
                        tracing::warn!("capture on {ifn}: {e}");
                        break;
                    }
                }
            }
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Capture {
                wire,
                frames,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(CaptureError::Open {
                ns: ns.name().to_string(),
                ifname: ifname.to_string(),
                source: std::io::Error::other("capture thread ended before opening its socket"),
            }),
        }
    }

    /// Stops capturing and returns every frame seen.
    pub fn stop(mut self) -> Vec<Frame> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.frames.lock().expect("frames lock"))
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes frames as a classic pcap file (Ethernet), readable by Wireshark
/// and tcpdump.
pub fn write_pcap(path: &Path, frames: &[Frame]) -> Result<(), CaptureError> {
    let err = |detail: String| CaptureError::Pcap {
        path: path.display().to_string(),
        detail,
    };
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::io::BufWriter::new(file), header)
        .map_err(|e| err(e.to_string()))?;
    for f in frames {
        let ts = f.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        w.write_packet(&PcapPacket::new(ts, f.data.len() as u32, &f.data))
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        let frames = vec![
            Frame {
                at: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
                data: vec![1; 60],
            },
            Frame {
                at: UNIX_EPOCH + Duration::from_secs(1_700_000_001),
                data: vec![2; 1514],
            },
        ];
        write_pcap(&path, &frames).unwrap();
        let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        assert_eq!(r.header().datalink, DataLink::ETHERNET);
        let p1 = r.next_packet().unwrap().unwrap();
        assert_eq!(p1.data.len(), 60);
        assert_eq!(p1.timestamp, Duration::from_micros(1_700_000_000_123_456));
        let p2 = r.next_packet().unwrap().unwrap();
        assert_eq!(p2.orig_len, 1514);
        assert!(r.next_packet().is_none());
    }
}
