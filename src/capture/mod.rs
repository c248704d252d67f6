//! Raw packet capture on the lab's watched wires: an AF_PACKET socket
//! opened inside the namespace at the far end of each wire, on its own
//! thread, keeping every frame with the kernel's receive timestamp
//! (SO_TIMESTAMPNS), so a frame read late by a busy thread is still tied to
//! the step during which it crossed the wire. Classification is the pure
//! [`crate::model::classify`]; this module only collects bytes and writes
//! pcap files.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::libc;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};

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
    Pcap {
        path: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub use crate::model::verdict::Frame;

/// A running capture on one wire.
pub struct Capture {
    pub wire: &'static str,
    frames: Arc<Mutex<Vec<Frame>>>,
    watch: Watch,
}

/// An AF_PACKET socket seeing every frame on `ifname`, both directions,
/// stamped by the kernel on arrival; reads time out every 50 ms so the
/// thread can notice it should stop.
fn open_packet_socket(ifname: &str) -> std::io::Result<OwnedFd> {
    let ifindex = nix::net::if_::if_nametoindex(ifname)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::NotFound, ifname.to_string()))?;
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain syscalls; the descriptor is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(proto),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll is a valid sockaddr_ll of the length given.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 50_000),
    )?;
    setsockopt(&fd, sockopt::RcvBuf, &(4 << 20))?;
    Ok(fd)
}

/// One frame: its length in `buf` and the kernel's timestamp; `None` when
/// the read timed out.
/// `cmsg` is the control-message buffer, made once per capture with
/// `nix::cmsg_space!(TimeSpec)` (this runs for every frame).
/// With `nonblocking`, an empty queue answers `None` at once.
fn recv_frame(
    fd: &OwnedFd,
    buf: &mut [u8],
    cmsg: &mut [u8],
    nonblocking: bool,
) -> std::io::Result<Option<(usize, SystemTime)>> {
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let flags = if nonblocking {
        MsgFlags::MSG_DONTWAIT
    } else {
        MsgFlags::empty()
    };
    let (n, stamp) = match recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(cmsg), flags) {
        Ok(m) => {
            let stamp = m.cmsgs().ok().and_then(|mut c| {
                c.find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(ts) => {
                        Some(UNIX_EPOCH + Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32))
                    }
                    _ => None,
                })
            });
            (m.bytes, stamp)
        }
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some((n, stamp.unwrap_or_else(SystemTime::now))))
}

/// A running AF_PACKET reader handing every frame on one interface to a
/// callback, on its own thread in the interface's namespace, until dropped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), NetnsError>>>,
}

impl Watch {
    /// Opens the socket on `ifname` inside `ns` and returns once it is open
    /// (nothing that crosses the interface afterwards can be missed); then
    /// `on_frame` gets every frame with its kernel timestamp.
    pub fn start(
        ns: &Netns,
        ifname: &str,
        mut on_frame: impl FnMut(&[u8], SystemTime) + Send + 'static,
    ) -> Result<Watch, CaptureError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), CaptureError>>();
        let (s, ifn, nsn) = (stop.clone(), ifname.to_string(), ns.name().to_string());
        let thread = ns.spawn(move || {
            let fd = match open_packet_socket(&ifn) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = ready_tx.send(Err(CaptureError::NoInterface {
                        ns: nsn,
                        ifname: ifn,
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
            let mut buf = vec![0u8; 1 << 16];
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            // Once asked to stop, the socket is drained without waiting:
            // every frame that crossed the wire before the stop is already
            // queued (the tap sees it on ingress, before anything answers
            // it), and a busy machine may not have read it yet. Seen: the
            // last step's frames missing from a capture under load.
            loop {
                let stopping = s.load(Ordering::Relaxed);
                match recv_frame(&fd, &mut buf, &mut cmsg, stopping) {
                    Ok(Some((n, at))) => on_frame(&buf[..n], at),
                    Ok(None) if stopping => break,
                    Ok(None) => {}
                    // The interface went down (a reset between scenarios
                    // restores its addresses): the socket stays bound and
                    // reads again once it is back up.
                    Err(e) if !stopping && e.raw_os_error() == Some(libc::ENETDOWN) => {
                        tracing::debug!("capture on {ifn}: {e}; reading on");
                    }
                    Err(e) => {
                        tracing::warn!("capture on {ifn}: {e}");
                        break;
                    }
                }
            }
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Watch {
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

    /// Stops reading (after draining what is queued) and waits for the thread.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Capture {
    /// Starts capturing on `ifname` inside `ns`. Returns once the socket is
    /// open, so nothing sent afterwards can be missed.
    pub fn start(ns: &Netns, ifname: &str, wire: &'static str) -> Result<Capture, CaptureError> {
        let frames = Arc::new(Mutex::new(Vec::new()));
        let f = frames.clone();
        let watch = Watch::start(ns, ifname, move |data, at| {
            f.lock().expect("frames lock").push(Frame {
                at,
                data: data.to_vec(),
            })
        })?;
        Ok(Capture {
            wire,
            frames,
            watch,
        })
    }

    /// Has a frame containing `marker` been seen yet?
    pub fn seen(&self, marker: &[u8]) -> bool {
        self.frames
            .lock()
            .expect("frames lock")
            .iter()
            .any(|f| crate::model::verdict::contains(&f.data, marker))
    }

    /// Stops capturing and returns every frame seen.
    pub fn stop(mut self) -> Vec<Frame> {
        self.watch.finish();
        std::mem::take(&mut *self.frames.lock().expect("frames lock"))
    }
}

/// Writes frames as a classic pcap file (Ethernet), readable by Wireshark
/// and tcpdump.
pub fn write_pcap(path: &Path, frames: &[Frame]) -> Result<(), CaptureError> {
    let err = |e: Box<dyn std::error::Error + Send + Sync>| CaptureError::Pcap {
        path: path.display().to_string(),
        source: e,
    };
    let file = std::fs::File::create(path).map_err(|e| err(e.into()))?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::io::BufWriter::new(file), header)
        .map_err(|e| err(e.into()))?;
    for f in frames {
        let ts = f.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        w.write_packet(&PcapPacket::new(ts, f.data.len() as u32, &f.data))
            .map_err(|e| err(e.into()))?;
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
