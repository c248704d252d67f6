//! Raw sockets for ICMP and hand-made packets, shared by the scenario
//! probes and the gateway's health check: opening one and reading from it
//! until a wanted datagram arrives or a deadline passes (blocking; callers
//! run it on a blocking thread).

/// A raw socket of the family and protocol given.
pub fn raw_socket(v6: bool, proto: socket2::Protocol) -> std::io::Result<socket2::Socket> {
    let domain = if v6 {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    socket2::Socket::new(domain, socket2::Type::RAW, Some(proto))
}

/// Reads datagrams until `accept` takes one (true) or `deadline` passes
/// (false).
pub fn recv_until(
    sock: &socket2::Socket,
    deadline: std::time::Instant,
    mut accept: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<bool> {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        sock.set_read_timeout(Some(left))?;
        match sock.recv(&mut buf) {
            Ok(n) => {
                // SAFETY: recv initialised the first n bytes.
                let data: Vec<u8> = buf[..n]
                    .iter()
                    .map(|b| unsafe { b.assume_init() })
                    .collect();
                if accept(&data) {
                    return Ok(true);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
}
