//! Datagrams in batches: up to [`BATCH`] received with one `recvmmsg` and
//! sent with one `sendmmsg` (nix's wrappers), for a server loop that would
//! otherwise make two system calls per small datagram (the gateway's
//! resolver).

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Bytes kept of each received datagram (DNS queries are far shorter; a
/// longer one is cut and then fails to parse).
pub const DATAGRAM: usize = 4096;

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4)))
    } else {
        a.as_sockaddr_in6()
            .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
    }
}

/// Receive buffers for one loop.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    got: Vec<(usize, SocketAddr)>,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; DATAGRAM]).collect(),
            got: Vec::with_capacity(BATCH),
        }
    }
}

impl RecvBatch {
    /// Receives what is queued on `fd` (non-blocking; `WouldBlock` when
    /// nothing is) and returns how many datagrams arrived.
    pub fn recv(&mut self, fd: RawFd) -> std::io::Result<usize> {
        self.got.clear();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .bufs
            .iter_mut()
            .map(|b| [IoSliceMut::new(&mut b[..])])
            .collect();
        let results = recvmmsg(
            fd,
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(std::io::Error::from)?;
        for r in results {
            if let Some(addr) = r.address.as_ref().and_then(to_std) {
                self.got.push((r.bytes, addr));
            } else {
                // Not an IP sender (cannot happen on a UDP socket): dropped,
                // but its slot keeps the indexes aligned.
                self.got.push((0, SocketAddr::from(([0, 0, 0, 0], 0))));
            }
        }
        Ok(self.got.len())
    }

    /// The `i`-th datagram of the last [`RecvBatch::recv`] and its sender.
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        let (n, from) = self.got[i];
        (&self.bufs[i][..n.min(DATAGRAM)], from)
    }
}

/// One `sendmmsg` of `datagrams` to `addrs` (one each) from `fd`,
/// non-blocking: how many the kernel took.
fn sendmmsg_once<'a>(
    fd: RawFd,
    datagrams: impl Iterator<Item = &'a [u8]>,
    addrs: &[Option<SockaddrStorage>],
) -> nix::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = datagrams.map(|d| [IoSlice::new(d)]).collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(slices.len(), None);
    sendmmsg(fd, &mut headers, &slices, addrs, [], MsgFlags::MSG_DONTWAIT).map(|r| r.count())
}

/// Socket buffers for a tunnel's datagrams, as wireguard-go sizes them
/// (7 MiB each way): a burst from a fast peer waits in the kernel instead
/// of being dropped while the driver is busy sealing or writing to the TUN
/// device. With CAP_NET_ADMIN the size is forced past the namespace's
/// `rmem_max`; without, it is asked for and the kernel caps it. Returns
/// the sizes the kernel granted (it reports double what it keeps).
pub fn size_buffers(fd: &impl std::os::fd::AsFd) -> (usize, usize) {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    const SIZE: usize = 7 << 20;
    if setsockopt(fd, sockopt::RcvBufForce, &SIZE).is_err() {
        let _ = setsockopt(fd, sockopt::RcvBuf, &SIZE);
    }
    if setsockopt(fd, sockopt::SndBufForce, &SIZE).is_err() {
        let _ = setsockopt(fd, sockopt::SndBuf, &SIZE);
    }
    (
        getsockopt(fd, sockopt::RcvBuf).unwrap_or(0),
        getsockopt(fd, sockopt::SndBuf).unwrap_or(0),
    )
}

/// Sends `datagrams` (bytes, destination) from `fd` with as few system
/// calls as the kernel takes; returns how many went out. A full socket
/// buffer (`WouldBlock`) ends the batch early: what did not fit is dropped,
/// as a busy server's answers are.
pub fn send_batch(
    fd: &impl AsRawFd,
    datagrams: &[(Vec<u8>, SocketAddr)],
) -> std::io::Result<usize> {
    let fd = fd.as_raw_fd();
    let mut sent = 0;
    while sent < datagrams.len() {
        let chunk = &datagrams[sent..datagrams.len().min(sent + BATCH)];
        let addrs: Vec<Option<SockaddrStorage>> = chunk
            .iter()
            .map(|(_, a)| Some(SockaddrStorage::from(*a)))
            .collect();
        let n = match sendmmsg_once(fd, chunk.iter().map(|(b, _)| b.as_slice()), &addrs) {
            Ok(n) => n,
            Err(nix::errno::Errno::EAGAIN) => return Ok(sent),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            break;
        }
        sent += n;
    }
    Ok(sent)
}

/// Most segments the kernel takes in one UDP GSO send (UDP_MAX_SEGMENTS
/// of older kernels).
const GSO_MAX_SEGMENTS: usize = 64;

/// How datagrams of lengths `lens` can go out as UDP GSO sends: runs of
/// one size (the last of a run may be shorter), at most 64 and 64 KiB each,
/// as (first index, end index, segment size), in order. Pure.
pub fn gso_runs(lens: &[usize]) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let size = *lens.get(i)?;
        let mut j = i + 1;
        let mut bytes = size;
        while j < lens.len()
            && j - i < GSO_MAX_SEGMENTS
            && lens[j] <= size
            && bytes + lens[j] <= 65_000
        {
            bytes += lens[j];
            j += 1;
            if lens[j - 1] < size {
                break; // a shorter one ends the run
            }
        }
        let run = (i, j, size);
        i = j;
        Some(run)
    })
}

/// Whether UDP GSO was refused once (then `send_all` uses sendmmsg only).
static NO_GSO: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends datagrams laid out back to back in `buf` (their lengths in
/// `lens`) to `to` from `sock`, waiting for room in the socket buffer when
/// it is full (a tunnel must not drop what it was given): runs of
/// equal-sized datagrams as one UDP GSO send each, straight from `buf`
/// (the kernel splits them: one trip through the stack and the firewall),
/// the rest, or all once GSO was refused, in `sendmmsg` batches.
pub async fn send_all(
    sock: &tokio::net::UdpSocket,
    buf: &[u8],
    lens: &[usize],
    to: SocketAddr,
) -> std::io::Result<()> {
    let addr = SockaddrStorage::from(to);
    // Datagram `start` begins at byte `pos` of `buf`.
    let (mut start, mut pos) = (0, 0);
    if !NO_GSO.load(std::sync::atomic::Ordering::Relaxed) {
        for (a, b, size) in gso_runs(lens) {
            let run = &buf[pos..pos + lens[a..b].iter().sum::<usize>()];
            if b - a == 1 {
                sock.send_to(run, to).await?;
            } else {
                let seg = size as u16;
                let r = sock
                    .async_io(tokio::io::Interest::WRITABLE, || {
                        let iov = [IoSlice::new(run)];
                        let cmsg = [nix::sys::socket::ControlMessage::UdpGsoSegments(&seg)];
                        nix::sys::socket::sendmsg(
                            sock.as_raw_fd(),
                            &iov,
                            &cmsg,
                            MsgFlags::MSG_DONTWAIT,
                            Some(&addr),
                        )
                        .map_err(std::io::Error::from)
                    })
                    .await;
                match r {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(nix::libc::EIO | nix::libc::EINVAL | nix::libc::EOPNOTSUPP)
                        ) =>
                    {
                        tracing::debug!("UDP GSO refused ({e}): sendmmsg from now on");
                        NO_GSO.store(true, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            start = b;
            pos += run.len();
        }
    }
    let addrs = [Some(addr); BATCH];
    while start < lens.len() {
        let end = lens.len().min(start + BATCH);
        let n = sock
            .async_io(tokio::io::Interest::WRITABLE, || {
                let mut p = pos;
                let datagrams = lens[start..end].iter().map(|l| {
                    p += l;
                    &buf[p - l..p]
                });
                sendmmsg_once(sock.as_raw_fd(), datagrams, &addrs[..end - start])
                    .map_err(std::io::Error::from)
            })
            .await?
            .max(1);
        pos += lens[start..start + n].iter().sum::<usize>();
        start += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sized_datagrams_make_gso_runs_ended_by_a_shorter_one() {
        let runs = |lens: &[usize]| gso_runs(lens).collect::<Vec<_>>();
        assert_eq!(
            runs(&[1452, 1452, 1452, 600, 1452, 80]),
            vec![(0, 4, 1452), (4, 6, 1452)]
        );
        let runs = runs(&[1000; 100]);
        assert!(
            runs.iter()
                .all(|(a, b, _)| b - a <= 64 && (b - a) * 1000 <= 65_000)
        );
        assert_eq!(runs.iter().map(|(a, b, _)| b - a).sum::<usize>(), 100);
        assert_eq!(
            gso_runs(&[500, 900]).collect::<Vec<_>>(),
            vec![(0, 1, 500), (1, 2, 900)]
        );
    }

    #[tokio::test]
    async fn a_gso_send_arrives_as_separate_datagrams() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = server.local_addr().unwrap();
        let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let v: Vec<Vec<u8>> = (0..5u8)
            .map(|i| vec![i; if i == 4 { 300 } else { 1200 }])
            .collect();
        let lens: Vec<usize> = v.iter().map(Vec::len).collect();
        send_all(&client, &v.concat(), &lens, to).await.unwrap();
        let mut buf = vec![0u8; 65_536];
        for i in 0..5u8 {
            let n = server.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], v[usize::from(i)].as_slice());
        }
    }

    #[test]
    fn a_batch_goes_out_and_comes_back_with_its_senders() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let to = server.local_addr().unwrap();
        let clients: Vec<_> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let datagrams: Vec<(Vec<u8>, SocketAddr)> = (0..40u8)
            .map(|i| (vec![i; usize::from(i) + 1], to))
            .collect();
        assert_eq!(send_batch(&clients[0], &datagrams).unwrap(), 40);
        clients[1].send_to(b"hello", to).unwrap();
        let mut b = RecvBatch::default();
        let first = b.recv(server.as_raw_fd()).unwrap();
        assert_eq!(first, BATCH);
        for i in 0..first {
            let (bytes, from) = b.get(i);
            assert_eq!(bytes, vec![i as u8; i + 1].as_slice());
            assert_eq!(from, clients[0].local_addr().unwrap());
        }
        let rest = b.recv(server.as_raw_fd()).unwrap();
        assert_eq!(rest, 9);
        assert_eq!(b.get(8).0, b"hello");
        assert_eq!(b.get(8).1, clients[1].local_addr().unwrap());
        let empty = b.recv(server.as_raw_fd()).unwrap_err();
        assert_eq!(empty.kind(), std::io::ErrorKind::WouldBlock);
    }
}
