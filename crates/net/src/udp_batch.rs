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
        let slices: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(b, _)| [IoSlice::new(b)]).collect();
        let addrs: Vec<Option<SockaddrStorage>> = chunk
            .iter()
            .map(|(_, a)| Some(SockaddrStorage::from(*a)))
            .collect();
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
        let n = match sendmmsg(
            fd,
            &mut headers,
            &slices,
            &addrs,
            [],
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(r) => r.count(),
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

#[cfg(test)]
mod tests {
    use super::*;

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
