//! The WireGuard tunnel driver: a thin loop around boringtun's `Tunn` state
//! machine, joining a TUN device and a UDP socket. Both ends of the lab's
//! tunnel use it: the gateway (initiator, fixed endpoint) and the provider's
//! server (responder, endpoint learned from authenticated packets).
//!
//! `Tunn` is driven exactly as its docs say: after a `WriteToNetwork` from
//! `decapsulate`, call it again with an empty datagram until `Done`; call
//! `update_timers` on a regular tick. Decrypted packets are written to the TUN
//! only if their inner source address is one the peer may use (WireGuard's
//! cryptokey routing), so a peer cannot spoof other addresses.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use ipnet::IpNet;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tun_rs::AsyncDevice;

/// How often `update_timers` runs (boringtun's own device uses 250 ms).
pub const TIMER_TICK: Duration = Duration::from_millis(250);
/// Largest datagram handled; the overhead on top of the MTU is 32 bytes.
const BUF: usize = 65_535 + 32;
/// Segments of one TUN read (a GSO packet of 64 KiB at the smallest MTU
/// WireGuard allows fits).
const SEGMENTS: usize = 64;
/// Room for one segment or one decrypted packet (jumbo MTUs included).
const SEGMENT: usize = 9_216;
/// The virtio-net header an offloading TUN device puts before packets.
const VIRTIO_HDR: usize = tun_rs::VIRTIO_NET_HDR_LEN;
/// Where decrypted packets start in their buffers: room for that header.
const TUN_OFFSET: usize = 16;
/// How often byte counters are published from the packet path.
const COUNTERS_EVERY: Duration = Duration::from_millis(100);

/// A decrypted packet for the TUN device, in a buffer allocated once at
/// full size: `len` bytes of it count (the first [`TUN_OFFSET`] are room
/// for the virtio header). Reusing it costs nothing per packet, where a
/// `Vec` would be zero-filled again each time it is grown back.
struct Opened {
    buf: Vec<u8>,
    len: usize,
}

impl Default for Opened {
    fn default() -> Self {
        Opened {
            buf: vec![0u8; TUN_OFFSET + SEGMENT],
            len: TUN_OFFSET,
        }
    }
}

impl Opened {
    /// Where the next packet is decrypted to.
    fn room(&mut self) -> &mut [u8] {
        &mut self.buf[TUN_OFFSET..]
    }
}

impl AsRef<[u8]> for Opened {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsMut<[u8]> for Opened {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

/// What the TUN device's coalescing (GRO) does to a packet's buffer.
impl tun_rs::ExpandBuffer for Opened {
    fn buf_capacity(&self) -> usize {
        self.buf.len()
    }

    fn buf_resize(&mut self, new_len: usize, value: u8) {
        if new_len > self.buf.len() {
            self.buf.resize(new_len, value);
        }
        if new_len > self.len {
            self.buf[self.len..new_len].fill(value);
        }
        self.len = new_len;
    }

    fn buf_extend_from_slice(&mut self, src: &[u8]) {
        let end = self.len + src.len();
        if end > self.buf.len() {
            self.buf.resize(end, 0);
        }
        self.buf[self.len..end].copy_from_slice(src);
        self.len = end;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not valid base64: {0}")]
    Base64(String),
    #[error("a WireGuard key is 32 bytes, this one is {0}")]
    Length(usize),
}

/// Pads the packet of `len` bytes at the start of `buf` with zeros, as the
/// WireGuard paper's section 5.4.6 says: to a multiple of 16 bytes, but
/// never past the MTU (nor the buffer). Returns the padded length. The
/// receiver reads the packet's own length from its IP header.
fn pad(buf: &mut [u8], len: usize, mtu: Option<usize>) -> usize {
    let target = len
        .next_multiple_of(16)
        .min(mtu.unwrap_or(usize::MAX).max(len))
        .min(buf.len());
    buf[len..target].fill(0);
    target
}

/// Parses a base64 WireGuard key (as `wg` prints them).
pub fn parse_key(s: &str) -> Result<[u8; 32], KeyError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| KeyError::Base64(e.to_string()))?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| KeyError::Length(len))
}

pub fn encode_key(k: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(k)
}

/// A fresh key pair: (private, public).
pub fn generate_keypair() -> ([u8; 32], [u8; 32]) {
    let private: [u8; 32] = rand::random();
    let public = PublicKey::from(&StaticSecret::from(private));
    (private, *public.as_bytes())
}

/// What a driver reports about its tunnel, for health checks and scenarios.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TunnelStatus {
    /// Handshakes completed since start.
    pub handshakes: u64,
    pub last_handshake: Option<SystemTime>,
    /// Datagrams that failed to authenticate or parse.
    pub rejected: u64,
    pub last_rejection: Option<String>,
    /// Decrypted packets dropped because their inner source is not the peer's.
    pub spoofed: u64,
    pub tx_bytes: usize,
    pub rx_bytes: usize,
    pub peer: Option<SocketAddr>,
    /// Where the last datagram came from, authenticated or not, also while
    /// paused (a restarted client tunnel knocks from a new port).
    pub last_datagram_from: Option<SocketAddr>,
}

pub struct DriverConfig {
    /// The peer's UDP endpoint; `None` for a responder that learns it.
    pub endpoint: Option<SocketAddr>,
    /// Inner source addresses the peer may use.
    pub allowed_src: Vec<IpNet>,
    /// While set, the driver neither reads nor sends anything on the
    /// network (a provider that stopped answering).
    pub paused: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Handshakes per second answered before the responder demands cookies
    /// (boringtun's default is 10). `None` keeps boringtun's own limiter.
    pub handshake_rate_limit: Option<u64>,
    /// Notified: send a handshake initiation now, without waiting for
    /// WireGuard's REKEY_TIMEOUT (5 s) between retries. The gateway does it
    /// while its health check fails, so a returning provider is noticed at
    /// the next check.
    pub kick: Option<Arc<tokio::sync::Notify>>,
    /// Set to a key: from now on the peer is that key, and the session and
    /// the last handshake timestamp seen are forgotten: a provider that
    /// accepts a client's rotated key, or a server restarted for a new
    /// client (set to the same key). The latter is needed when one key is
    /// used by implementations whose TAI64N clocks differ: boringtun's runs
    /// 27 s ahead of wireguard-go's (TAI vs. its 10 s base), so after a
    /// boringtun client a wireguard-go client's initiations look like
    /// replays.
    pub new_peer: Option<NewPeer>,
}

/// Where a new peer key is handed to a running driver.
pub type NewPeer = Arc<std::sync::Mutex<Option<[u8; 32]>>>;

pub struct Driver {
    tunn: Tunn,
    /// What a fresh `Tunn` is made from (for `new_peer`).
    keys: ([u8; 32], [u8; 32], Option<[u8; 32]>, Option<u16>),
    /// Our own limiter (when configured), reset every tick as boringtun
    /// resets its own.
    rate_limiter: Option<Arc<boringtun::noise::rate_limiter::RateLimiter>>,
    cfg: DriverConfig,
    status: watch::Sender<TunnelStatus>,
    handshakes: HandshakeTracker,
    counters_at: std::time::Instant,
}

impl Driver {
    pub fn new(
        private: [u8; 32],
        peer_public: [u8; 32],
        psk: Option<[u8; 32]>,
        keepalive: Option<u16>,
        cfg: DriverConfig,
    ) -> (Driver, watch::Receiver<TunnelStatus>) {
        let keys = (private, peer_public, psk, keepalive);
        let secret = StaticSecret::from(private);
        let rate_limiter = cfg.handshake_rate_limit.map(|limit| {
            Arc::new(boringtun::noise::rate_limiter::RateLimiter::new(
                &PublicKey::from(&secret),
                limit,
            ))
        });
        let tunn = Tunn::new(
            secret,
            PublicKey::from(peer_public),
            psk,
            keepalive,
            rand::random::<u32>() >> 8,
            rate_limiter.clone(),
        );
        let (tx, rx) = watch::channel(TunnelStatus {
            peer: cfg.endpoint,
            ..Default::default()
        });
        (
            Driver {
                tunn,
                keys,
                rate_limiter,
                cfg,
                status: tx,
                handshakes: HandshakeTracker::default(),
                counters_at: std::time::Instant::now(),
            },
            rx,
        )
    }

    fn record_handshake(&mut self) {
        self.status.send_modify(|s| {
            s.handshakes += 1;
            s.last_handshake = Some(SystemTime::now());
        });
        tracing::info!("WireGuard handshake completed");
    }

    fn reject(&self, why: String) {
        tracing::debug!("rejected datagram: {why}");
        self.status.send_modify(|s| {
            s.rejected += 1;
            s.last_rejection = Some(why);
        });
    }

    /// Replaces the session state with a fresh one for the peer key handed
    /// in through `new_peer`, if any.
    fn maybe_forget(&mut self) {
        let Some(k) = self
            .cfg
            .new_peer
            .as_ref()
            .and_then(|p| p.lock().unwrap_or_else(|e| e.into_inner()).take())
        else {
            return;
        };
        if k != self.keys.1 {
            tracing::info!("the peer's key changed: the old key is forgotten");
        }
        self.keys.1 = k;
        let (private, peer, psk, keepalive) = self.keys;
        self.tunn = Tunn::new(
            StaticSecret::from(private),
            PublicKey::from(peer),
            psk,
            keepalive,
            rand::random::<u32>() >> 8,
            self.rate_limiter.clone(),
        );
        tracing::debug!("peer session forgotten");
    }

    fn is_paused(&self) -> bool {
        self.cfg
            .paused
            .as_ref()
            .is_some_and(|p| p.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn src_allowed(&self, src: IpAddr) -> bool {
        self.cfg.allowed_src.iter().any(|n| n.contains(&src))
    }

    /// Runs until `cancel` fires or an I/O error ends the tunnel.
    ///
    /// Packets move in batches: the TUN device is read with
    /// `recv_multiple` (one read yields every segment of a GSO packet when
    /// the device was built with offload), whatever else is queued is read
    /// at once into the same batch, and the resulting datagrams leave with
    /// UDP GSO sends (`sendmmsg` where GSO is refused); datagrams arrive with one `recvmmsg` and their
    /// decrypted packets are written with `send_multiple` (TCP segments of
    /// one flow coalesced again when offload is on).
    pub async fn run(
        mut self,
        tun: Arc<AsyncDevice>,
        udp: Arc<UdpSocket>,
        cancel: CancellationToken,
    ) -> std::io::Result<()> {
        use crate::udp_batch::{BATCH, RecvBatch};
        use std::os::fd::AsRawFd;
        let mut out = vec![0u8; BUF];
        let mut tun_orig = vec![0u8; VIRTIO_HDR + BUF];
        // Room for a batch of reads (up to SEGMENTS packets) plus one more
        // read of a whole GSO packet.
        let mut tun_bufs: Vec<Vec<u8>> = (0..2 * SEGMENTS).map(|_| vec![0u8; SEGMENT]).collect();
        let mut sizes = vec![0usize; 2 * SEGMENTS];
        // Sealed datagrams back to back, so a run of them goes out as one
        // UDP GSO send without copying.
        let mut sealed = vec![0u8; 2 * SEGMENTS * (SEGMENT + 64)];
        let mut sealed_lens: Vec<usize> = Vec::with_capacity(2 * SEGMENTS);
        let mut rx = RecvBatch::default();
        let mut opened: Vec<Opened> = (0..BATCH).map(|_| Opened::default()).collect();
        let mut gro = tun_rs::GROTable::default();
        let mut tick = tokio::time::interval(TIMER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let kick = self.cfg.kick.clone();
        // Plaintext is padded as WireGuard says (to 16 bytes, at most to
        // the MTU); boringtun leaves that to its caller.
        let mtu = tun.mtu().ok().map(usize::from);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = async {
                    match &kick {
                        Some(k) => k.notified().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if self.is_paused() { continue }
                    let peer = self.status.borrow().peer;
                    if let (Some(peer), TunnResult::WriteToNetwork(pkt)) =
                        (peer, self.tunn.format_handshake_initiation(&mut out, true))
                    {
                        tracing::debug!("handshake initiation sent on request");
                        let _ = udp.send_to(pkt, peer).await;
                    }
                }
                r = udp.async_io(tokio::io::Interest::READABLE, || rx.recv(udp.as_raw_fd())) => {
                    let got = match r {
                        Ok(v) => v,
                        // ICMP errors surface as ECONNREFUSED etc. on UDP; keep going.
                        Err(e) if e.kind() != std::io::ErrorKind::Other => { tracing::debug!("udp: {e}"); continue }
                        Err(e) => return Err(e),
                    };
                    let mut staged = 0;
                    for i in 0..got {
                        let (datagram, from) = rx.get(i);
                        // Seen even while paused: a provider that drops
                        // everything still knows who knocked.
                        self.status.send_if_modified(|s| {
                            let changed = s.last_datagram_from != Some(from);
                            s.last_datagram_from = Some(from);
                            changed
                        });
                        if self.is_paused() { continue }
                        self.maybe_forget();
                        let buf = &mut opened[staged];
                        if let Some(n) = self.on_datagram(datagram, from, &udp, buf.room()).await {
                            buf.len = TUN_OFFSET + n;
                            staged += 1;
                        }
                    }
                    if staged > 0
                        && let Err(e) = tun.send_multiple(&mut gro, &mut opened[..staged], TUN_OFFSET).await
                    {
                        tracing::debug!("writing to the TUN device: {e}");
                    }
                    self.publish_counters(false);
                }
                r = tun.recv_multiple(&mut tun_orig, &mut tun_bufs[..SEGMENTS], &mut sizes[..SEGMENTS], 0) => {
                    let mut n = r?;
                    // Whatever else is already queued joins this batch (one
                    // read per packet without GSO, as an application's UDP
                    // is): one send for the lot, and one wakeup.
                    while n < SEGMENTS {
                        match tun.try_recv_multiple(&mut tun_orig, &mut tun_bufs[n..n + SEGMENTS], &mut sizes[n..n + SEGMENTS], 0) {
                            Ok(k) => n += k,
                            Err(e) => {
                                if e.kind() != std::io::ErrorKind::WouldBlock {
                                    tracing::debug!("reading the TUN device: {e}");
                                }
                                break;
                            }
                        }
                    }
                    if self.is_paused() { continue }
                    let peer = self.status.borrow().peer;
                    let Some(peer) = peer else { continue };
                    sealed_lens.clear();
                    let mut off = 0;
                    for i in 0..n {
                        let dst = &mut sealed[off..off + SEGMENT + 64];
                        let len = pad(&mut tun_bufs[i], sizes[i], mtu);
                        if let TunnResult::WriteToNetwork(pkt) = self.tunn.encapsulate(&tun_bufs[i][..len], dst) {
                            sealed_lens.push(pkt.len());
                            off += pkt.len();
                        }
                    }
                    if let Err(e) = crate::udp_batch::send_all(&udp, &sealed[..off], &sealed_lens, peer).await {
                        tracing::debug!("udp: {e}");
                    }
                    self.publish_counters(false);
                }
                _ = tick.tick() => {
                    if let Some(r) = &self.rate_limiter {
                        r.reset_count();
                    }
                    self.publish_counters(true);
                    if self.is_paused() { continue }
                    match self.tunn.update_timers(&mut out) {
                        TunnResult::WriteToNetwork(pkt) => {
                            let peer = self.status.borrow().peer;
                            if let Some(peer) = peer {
                                let _ = udp.send_to(pkt, peer).await;
                            }
                        }
                        TunnResult::Err(e) => tracing::debug!("timers: {e:?}"),
                        _ => {}
                    }
                }
            }
        }
    }

    /// One datagram through boringtun: replies go out at once; a decrypted
    /// packet the peer may send is left in `dst` and its length returned.
    async fn on_datagram(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        udp: &UdpSocket,
        dst: &mut [u8],
    ) -> Option<usize> {
        if let Some(ep) = self.cfg.endpoint
            && ep != from
        {
            self.reject(format!("datagram from {from}, not the endpoint {ep}"));
            return None;
        }
        let msg_type = datagram.first().copied().unwrap_or(0);
        let mut first = true;
        let mut opened = None;
        loop {
            let input: &[u8] = if first { datagram } else { &[] };
            let res = self.tunn.decapsulate(Some(from.ip()), input, dst);
            if first {
                let accepted = !matches!(res, TunnResult::Err(_));
                let answered = matches!(res, TunnResult::WriteToNetwork(_));
                if accepted && self.handshakes.on_accepted(msg_type, answered) {
                    self.record_handshake();
                }
            }
            match res {
                TunnResult::Done => break,
                TunnResult::Err(e) => {
                    if first {
                        self.reject(format!("{e:?} from {from}"));
                    }
                    break;
                }
                TunnResult::WriteToNetwork(pkt) => {
                    let _ = udp.send_to(pkt, from).await;
                    if self.cfg.endpoint.is_none() {
                        self.status.send_modify(|s| s.peer = Some(from));
                    }
                }
                TunnResult::WriteToTunnelV4(pkt, src) => {
                    if self.src_allowed(src.into()) {
                        opened = Some(pkt.len());
                    } else {
                        tracing::debug!(
                            "dropped an IPv4 packet from {src}: not the peer's address"
                        );
                        self.status.send_modify(|s| s.spoofed += 1);
                    }
                    if self.cfg.endpoint.is_none() {
                        self.status.send_if_modified(|s| {
                            let changed = s.peer != Some(from);
                            s.peer = Some(from);
                            changed
                        });
                    }
                    break;
                }
                TunnResult::WriteToTunnelV6(pkt, src) => {
                    if self.src_allowed(src.into()) {
                        opened = Some(pkt.len());
                    } else {
                        tracing::debug!(
                            "dropped an IPv6 packet from {src}: not the peer's address"
                        );
                        self.status.send_modify(|s| s.spoofed += 1);
                    }
                    break;
                }
            }
            first = false;
        }
        opened
    }

    /// Publishes the byte counters: at most every [`COUNTERS_EVERY`] from
    /// the packet path (each publication wakes every watcher), always on
    /// the timer tick (`force`).
    fn publish_counters(&mut self, force: bool) {
        let now = std::time::Instant::now();
        if !force && now.duration_since(self.counters_at) < COUNTERS_EVERY {
            return;
        }
        self.counters_at = now;
        let (_, tx, rx, _, _) = self.tunn.stats();
        self.status.send_if_modified(|s| {
            let changed = s.tx_bytes != tx || s.rx_bytes != rx;
            s.tx_bytes = tx;
            s.rx_bytes = rx;
            changed
        });
    }
}

/// Tells from the WireGuard message types of authenticated datagrams when a
/// handshake has completed. (boringtun's own "time since last handshake" is
/// rounded to whole seconds, too coarse to see a quick re-handshake.)
#[derive(Debug, Default)]
struct HandshakeTracker {
    /// The responder answered an initiation and waits for the initiator's
    /// first data (or keepalive) on the new session.
    answered_initiation: bool,
}

const MSG_INITIATION: u8 = 1;
const MSG_RESPONSE: u8 = 2;
const MSG_DATA: u8 = 4;

impl HandshakeTracker {
    /// `msg_type` of a datagram boringtun accepted, and whether it produced
    /// a reply. True when a handshake just completed.
    fn on_accepted(&mut self, msg_type: u8, answered: bool) -> bool {
        match msg_type {
            MSG_INITIATION if answered => {
                self.answered_initiation = true;
                false
            }
            // The initiator: a response it accepted completes the handshake.
            MSG_RESPONSE => true,
            MSG_DATA if self.answered_initiation => {
                self.answered_initiation = false;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_padded_to_16_bytes_but_never_past_the_mtu() {
        let mut buf = vec![0xffu8; 2000];
        assert_eq!(pad(&mut buf, 0, Some(1420)), 0, "a keepalive stays empty");
        assert_eq!(pad(&mut buf, 1, Some(1420)), 16);
        assert!(buf[1..16].iter().all(|b| *b == 0), "padding is zeros");
        assert_eq!(pad(&mut buf, 84, Some(1420)), 96);
        assert_eq!(pad(&mut buf, 96, Some(1420)), 96);
        // 1420 is no multiple of 16: the last bytes before it pad to it.
        assert_eq!(pad(&mut buf, 1410, Some(1420)), 1420);
        assert_eq!(pad(&mut buf, 1420, Some(1420)), 1420);
        assert_eq!(pad(&mut buf, 1410, None), 1424);
        // Never past the buffer.
        assert_eq!(pad(&mut buf[..1412], 1410, None), 1412);
    }

    #[test]
    fn handshakes_are_counted_from_message_types() {
        // Responder: initiation answered, then data on the new session.
        let mut r = HandshakeTracker::default();
        assert!(!r.on_accepted(MSG_INITIATION, true));
        assert!(r.on_accepted(MSG_DATA, false));
        // Further data is no new handshake.
        assert!(!r.on_accepted(MSG_DATA, false));
        // A second handshake a moment later is counted again.
        assert!(!r.on_accepted(MSG_INITIATION, true));
        assert!(r.on_accepted(MSG_DATA, false));
        // Initiator: an accepted response completes it.
        let mut i = HandshakeTracker::default();
        assert!(i.on_accepted(MSG_RESPONSE, true));
        assert!(!i.on_accepted(MSG_DATA, false));
    }

    #[test]
    fn an_opened_buffer_grows_and_shrinks_like_a_vec() {
        use tun_rs::ExpandBuffer;
        let mut o = Opened::default();
        o.room()[..3].copy_from_slice(b"abc");
        o.len = TUN_OFFSET + 3;
        assert_eq!(&o.as_ref()[TUN_OFFSET..], b"abc");
        o.buf_extend_from_slice(b"de");
        assert_eq!(&o.as_ref()[TUN_OFFSET..], b"abcde");
        o.buf_resize(TUN_OFFSET + 7, 9);
        assert_eq!(&o.as_ref()[TUN_OFFSET..], b"abcde\x09\x09");
        o.buf_resize(TUN_OFFSET + 2, 0);
        assert_eq!(&o.as_ref()[TUN_OFFSET..], b"ab");
        // Beyond the allocation: it grows, as a Vec would.
        let big = vec![7u8; SEGMENT + 100];
        o.buf_extend_from_slice(&big);
        assert_eq!(o.as_ref().len(), TUN_OFFSET + 2 + SEGMENT + 100);
        assert!(o.buf_capacity() >= o.as_ref().len());
    }

    #[test]
    fn keys_round_trip_through_base64() {
        let (private, public) = generate_keypair();
        assert_eq!(parse_key(&encode_key(&private)).unwrap(), private);
        assert_eq!(
            *PublicKey::from(&StaticSecret::from(private)).as_bytes(),
            public
        );
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        assert!(matches!(parse_key("not base64!"), Err(KeyError::Base64(_))));
        assert!(matches!(parse_key("AAAA"), Err(KeyError::Length(3))));
    }

    /// Two `Tunn`s handshake in memory, as the gateway and the provider do.
    #[test]
    fn two_tunns_handshake_in_memory() {
        let (a_priv, a_pub) = generate_keypair();
        let (b_priv, b_pub) = generate_keypair();
        let mut a = Tunn::new(
            StaticSecret::from(a_priv),
            PublicKey::from(b_pub),
            None,
            None,
            1,
            None,
        );
        let mut b = Tunn::new(
            StaticSecret::from(b_priv),
            PublicKey::from(a_pub),
            None,
            None,
            2,
            None,
        );
        let mut buf_a = vec![0u8; 2048];
        let mut buf_b = vec![0u8; 2048];
        let init = match a.format_handshake_initiation(&mut buf_a, false) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            r => panic!("expected initiation, got {r:?}"),
        };
        let resp = match b.decapsulate(None, &init, &mut buf_b) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            r => panic!("expected response, got {r:?}"),
        };
        let keepalive = match a.decapsulate(None, &resp, &mut buf_a) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            r => panic!("expected keepalive, got {r:?}"),
        };
        assert!(matches!(
            b.decapsulate(None, &keepalive, &mut buf_b),
            TunnResult::Done
        ));
        assert!(a.time_since_last_handshake().is_some());
        assert!(b.time_since_last_handshake().is_some());
    }

    #[test]
    fn a_wrong_server_key_is_rejected_by_the_server() {
        let (a_priv, _) = generate_keypair();
        let (b_priv, _) = generate_keypair();
        let (_, wrong_pub) = generate_keypair();
        let a_pub = *PublicKey::from(&StaticSecret::from(a_priv)).as_bytes();
        // The client believes the server's key is `wrong_pub`.
        let mut a = Tunn::new(
            StaticSecret::from(a_priv),
            PublicKey::from(wrong_pub),
            None,
            None,
            1,
            None,
        );
        let mut b = Tunn::new(
            StaticSecret::from(b_priv),
            PublicKey::from(a_pub),
            None,
            None,
            2,
            None,
        );
        let mut buf = vec![0u8; 2048];
        let init = match a.format_handshake_initiation(&mut buf, false) {
            TunnResult::WriteToNetwork(p) => p.to_vec(),
            r => panic!("expected initiation, got {r:?}"),
        };
        let mut buf_b = vec![0u8; 2048];
        assert!(matches!(
            b.decapsulate(None, &init, &mut buf_b),
            TunnResult::Err(_)
        ));
    }
}
