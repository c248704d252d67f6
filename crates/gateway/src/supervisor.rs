//! The gateway's supervisor: decides when the tunnel goes up, goes down or
//! is restarted. A pure state machine in the manner of quinn-proto: inputs
//! (an operator's command, a health verdict, the tunnel ending, a timer)
//! come in with `now`, what to do comes out, and [`Supervisor::poll_timeout`]
//! says when to call again. It never reads the clock; the async loop in
//! [`super::run`] only routes inputs in and executes what comes out, so the
//! decisions are tested on virtual time.
//!
//! Rules:
//! * Commands are accepted from the moment the process exists. Before the
//!   gateway has booted (kill switch, routes, resolver) they only change what
//!   the operator wants; a stop that arrives early means the tunnel is never
//!   brought up until a start.
//! * An unhealthy tunnel is restarted (HEALTH_RESTART_VPN) after a backoff of
//!   1 s doubling to 30 s, and never sooner than HEALTH_VPN_DURATION_INITIAL
//!   after its last tunnel-up: two restarts are always at least
//!   `max(1 s, grace)` apart, so a restart storm cannot happen.
//! * A healthy verdict resets the backoff and cancels a pending restart; so
//!   does a stop. A tunnel that ends by itself is restarted the same way.
//! * Port forwarding is withdrawn before the tunnel goes down: every
//!   [`Do::Down`] is preceded by [`Do::WithdrawPort`].

use std::time::{Duration, Instant};

/// What the operator asks for (control server, SIGUSR1/SIGUSR2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VpnCommand {
    Stop,
    Start,
    /// A new WireGuard private key (re-read from
    /// WIREGUARD_PRIVATE_KEY_SECRETFILE): a running tunnel is restarted on
    /// it at once, the kill switch untouched; a stopped one uses it when it
    /// next comes up.
    Rekey(NewKey),
}

/// A private key on its way to the tunnel; never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NewKey(pub [u8; 32]);

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewKey(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The gateway finished setting itself up: the tunnel may come up now.
    Booted,
    Command(VpnCommand),
    /// A health verdict about the current tunnel.
    Health {
        healthy: bool,
    },
    /// The tunnel's driver ended on its own (an I/O error, a lost device).
    TunnelEnded,
    /// The time from [`Supervisor::poll_timeout`] has come.
    Timeout,
}

/// What the loop must do, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Do {
    /// Withdraw the forwarded port (DOWN command, status file) now, while
    /// the tunnel still carries the provider's answer.
    WithdrawPort,
    /// Take the tunnel down (the kill switch stays closed).
    Down,
    /// Bring a new tunnel up.
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// HEALTH_RESTART_VPN.
    pub restart_vpn: bool,
    /// HEALTH_VPN_DURATION_INITIAL: no restart sooner than this after a
    /// tunnel-up.
    pub initial_grace: Duration,
}

/// Exponential backoff between restarts: 1 s, 2 s, 4 s ... 30 s.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    attempts: u32,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);

    /// The wait before the next restart (and count it).
    pub fn next_wait(&mut self) -> Duration {
        let d = Self::FIRST
            .saturating_mul(1 << self.attempts.min(5))
            .min(Self::MAX);
        self.attempts += 1;
        d
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tunnel {
    Down,
    Up { since: Instant },
}

#[derive(Debug, Clone)]
pub struct Supervisor {
    settings: Settings,
    booted: bool,
    /// What the operator last asked for (initially: running).
    want_running: bool,
    tunnel: Tunnel,
    healthy: bool,
    restart_at: Option<Instant>,
    backoff: Backoff,
    restarts: u64,
}

impl Supervisor {
    pub fn new(settings: Settings) -> Self {
        Supervisor {
            settings,
            booted: false,
            want_running: true,
            tunnel: Tunnel::Down,
            healthy: false,
            restart_at: None,
            backoff: Backoff::default(),
            restarts: 0,
        }
    }

    /// Is a tunnel up (what `GET /v1/vpn/status` reports as "running")?
    pub fn running(&self) -> bool {
        matches!(self.tunnel, Tunnel::Up { .. })
    }

    /// What the operator last asked for.
    pub fn wants_running(&self) -> bool {
        self.want_running
    }

    /// Restarts done so far (for logs and metrics).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// When [`Input::Timeout`] is due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.restart_at
    }

    fn up(&mut self, now: Instant, out: &mut Vec<Do>) {
        if let Tunnel::Up { .. } = self.tunnel {
            out.extend([Do::WithdrawPort, Do::Down]);
        }
        out.push(Do::Up);
        self.tunnel = Tunnel::Up { since: now };
        self.healthy = false;
    }

    fn down(&mut self, out: &mut Vec<Do>) {
        if let Tunnel::Up { .. } = self.tunnel {
            out.extend([Do::WithdrawPort, Do::Down]);
        }
        self.tunnel = Tunnel::Down;
        self.restart_at = None;
    }

    /// Schedules a restart unless one is pending: after the backoff, and
    /// not within the grace after the last tunnel-up.
    fn schedule_restart(&mut self, now: Instant) {
        if !self.settings.restart_vpn || !self.want_running || self.restart_at.is_some() {
            return;
        }
        let mut at = now + self.backoff.next_wait();
        if let Tunnel::Up { since } = self.tunnel {
            at = at.max(since + self.settings.initial_grace);
        }
        self.restart_at = Some(at);
    }

    /// Feeds one input; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Do> {
        let mut out = Vec::new();
        match input {
            Input::Booted => {
                self.booted = true;
                if self.want_running {
                    self.up(now, &mut out);
                }
            }
            Input::Command(VpnCommand::Stop) => {
                self.want_running = false;
                self.down(&mut out);
                self.backoff = Backoff::default();
            }
            Input::Command(VpnCommand::Rekey(_)) => {
                self.backoff = Backoff::default();
                if self.booted && self.running() {
                    self.restart_at = None;
                    self.up(now, &mut out);
                }
            }
            Input::Command(VpnCommand::Start) => {
                self.want_running = true;
                self.backoff = Backoff::default();
                if self.booted && !self.running() {
                    self.restart_at = None;
                    self.up(now, &mut out);
                }
            }
            Input::Health { healthy } => {
                if !self.running() {
                    // A verdict about no tunnel says nothing new.
                } else if healthy {
                    self.healthy = true;
                    self.backoff = Backoff::default();
                    self.restart_at = None;
                } else {
                    self.healthy = false;
                    self.schedule_restart(now);
                }
            }
            Input::TunnelEnded => {
                if self.running() {
                    self.tunnel = Tunnel::Down;
                    self.healthy = false;
                    self.restart_at = None;
                    self.schedule_restart(now);
                }
            }
            Input::Timeout => {
                if self.restart_at.is_some_and(|at| at <= now) {
                    self.restart_at = None;
                    if self.want_running && self.booted {
                        self.restarts += 1;
                        self.up(now, &mut out);
                        // Until a healthy verdict, the next restart is
                        // already counted down.
                        self.schedule_restart(now);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(6);

    fn sup() -> (Supervisor, Instant) {
        let s = Supervisor::new(Settings {
            restart_vpn: true,
            initial_grace: GRACE,
        });
        (s, Instant::now())
    }

    fn secs(t0: Instant, s: f64) -> Instant {
        t0 + Duration::from_secs_f64(s)
    }

    /// Drives the machine on virtual time: feeds `Timeout` whenever it is
    /// due before `until`, returns the times at which a tunnel came up.
    fn run_until(s: &mut Supervisor, until: Instant) -> Vec<Instant> {
        let mut ups = Vec::new();
        while let Some(at) = s.poll_timeout().filter(|at| *at <= until) {
            if s.handle(at, Input::Timeout).contains(&Do::Up) {
                ups.push(at);
            }
        }
        ups
    }

    #[test]
    fn the_tunnel_comes_up_at_boot() {
        let (mut s, t0) = sup();
        assert_eq!(s.handle(t0, Input::Booted), vec![Do::Up]);
        assert!(s.running());
    }

    #[test]
    fn a_stop_before_boot_is_remembered_and_no_tunnel_comes_up() {
        let (mut s, t0) = sup();
        assert!(s.handle(t0, Input::Command(VpnCommand::Stop)).is_empty());
        assert!(s.handle(secs(t0, 0.1), Input::Booted).is_empty());
        assert!(!s.running());
        // ... until a start.
        assert_eq!(
            s.handle(secs(t0, 1.0), Input::Command(VpnCommand::Start)),
            vec![Do::Up]
        );
    }

    #[test]
    fn a_start_before_boot_waits_for_boot() {
        let (mut s, t0) = sup();
        s.handle(t0, Input::Command(VpnCommand::Stop));
        assert!(s.handle(t0, Input::Command(VpnCommand::Start)).is_empty());
        assert_eq!(s.handle(secs(t0, 0.1), Input::Booted), vec![Do::Up]);
    }

    #[test]
    fn no_restart_within_the_initial_grace() {
        let (mut s, t0) = sup();
        s.handle(t0, Input::Booted);
        s.handle(secs(t0, 0.5), Input::Health { healthy: false });
        // Backoff alone would say 1.5 s; the grace says 6 s after the up.
        assert_eq!(s.poll_timeout(), Some(t0 + GRACE));
        assert!(run_until(&mut s, secs(t0, 5.999)).is_empty());
        assert_eq!(run_until(&mut s, secs(t0, 6.0)), vec![t0 + GRACE]);
    }

    #[test]
    fn backoff_doubles_while_unhealthy_and_resets_on_health() {
        let (mut s, t0) = sup();
        s.settings.initial_grace = Duration::ZERO;
        s.handle(t0, Input::Booted);
        s.handle(t0, Input::Health { healthy: false });
        let ups = run_until(&mut s, secs(t0, 100.0));
        let gaps: Vec<u64> = std::iter::once(t0)
            .chain(ups.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs())
            .collect();
        assert_eq!(gaps[..7], [1, 2, 4, 8, 16, 30, 30]);
        // Healthy: backoff back to 1 s for the next trouble.
        let t = *ups.last().unwrap() + Duration::from_millis(10);
        s.handle(t, Input::Health { healthy: true });
        assert_eq!(s.poll_timeout(), None);
        s.handle(t, Input::Health { healthy: false });
        assert_eq!(s.poll_timeout(), Some(t + Duration::from_secs(1)));
    }

    #[test]
    fn a_stop_cancels_a_pending_restart() {
        let (mut s, t0) = sup();
        s.handle(t0, Input::Booted);
        s.handle(secs(t0, 1.0), Input::Health { healthy: false });
        assert!(s.poll_timeout().is_some());
        let out = s.handle(secs(t0, 2.0), Input::Command(VpnCommand::Stop));
        assert_eq!(out, vec![Do::WithdrawPort, Do::Down]);
        assert_eq!(s.poll_timeout(), None);
        assert!(run_until(&mut s, secs(t0, 1000.0)).is_empty());
        // Health verdicts about no tunnel change nothing.
        s.handle(secs(t0, 3.0), Input::Health { healthy: false });
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn a_restart_storm_is_impossible() {
        // Unhealthy verdicts every 10 ms for ten minutes, and the tunnel
        // ending after every restart: restarts stay at least a second apart.
        let (mut s, t0) = sup();
        s.settings.initial_grace = Duration::ZERO;
        s.handle(t0, Input::Booted);
        let mut ups = Vec::new();
        let mut t = t0;
        while t < secs(t0, 600.0) {
            t += Duration::from_millis(10);
            s.handle(t, Input::Health { healthy: false });
            if s.poll_timeout().is_some_and(|at| at <= t) {
                let out = s.handle(t, Input::Timeout);
                if out.contains(&Do::Up) {
                    ups.push(t);
                    s.handle(t, Input::TunnelEnded);
                }
            }
        }
        assert!(ups.len() < 30, "{} restarts in ten minutes", ups.len());
        for w in ups.windows(2) {
            assert!(w[1] - w[0] >= Duration::from_secs(1), "{:?}", w[1] - w[0]);
        }
    }

    #[test]
    fn port_forwarding_is_withdrawn_before_the_tunnel_goes() {
        let (mut s, t0) = sup();
        s.settings.initial_grace = Duration::ZERO;
        s.handle(t0, Input::Booted);
        s.handle(t0, Input::Health { healthy: false });
        let restart = s.handle(secs(t0, 1.0), Input::Timeout);
        assert_eq!(restart, vec![Do::WithdrawPort, Do::Down, Do::Up]);
        let stop = s.handle(secs(t0, 2.0), Input::Command(VpnCommand::Stop));
        assert_eq!(stop, vec![Do::WithdrawPort, Do::Down]);
    }

    #[test]
    fn an_ended_tunnel_is_restarted_with_backoff_unless_restarts_are_off() {
        let (mut s, t0) = sup();
        s.handle(t0, Input::Booted);
        s.handle(secs(t0, 10.0), Input::TunnelEnded);
        assert!(!s.running());
        assert_eq!(s.poll_timeout(), Some(secs(t0, 11.0)));
        assert_eq!(s.handle(secs(t0, 11.0), Input::Timeout), vec![Do::Up]);

        let mut off = Supervisor::new(Settings {
            restart_vpn: false,
            initial_grace: GRACE,
        });
        off.handle(t0, Input::Booted);
        off.handle(secs(t0, 10.0), Input::TunnelEnded);
        off.handle(secs(t0, 10.0), Input::Health { healthy: false });
        assert_eq!(off.poll_timeout(), None);
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..8).map(|_| b.next_wait().as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(b.attempts(), 8);
    }

    #[test]
    fn start_and_stop_are_idempotent() {
        let (mut s, t0) = sup();
        s.handle(t0, Input::Booted);
        assert!(
            s.handle(t0, Input::Command(VpnCommand::Start)).is_empty(),
            "already running"
        );
        s.handle(t0, Input::Command(VpnCommand::Stop));
        assert!(s.handle(t0, Input::Command(VpnCommand::Stop)).is_empty());
        assert_eq!(
            s.handle(t0, Input::Command(VpnCommand::Start)),
            vec![Do::Up]
        );
    }

    #[test]
    fn a_new_key_restarts_a_running_tunnel_and_waits_for_a_stopped_one() {
        let t0 = Instant::now();
        let mut s = Supervisor::new(Settings {
            restart_vpn: true,
            initial_grace: Duration::from_secs(6),
        });
        let key = VpnCommand::Rekey(NewKey([1; 32]));
        // Before boot: nothing to restart.
        assert!(s.handle(t0, Input::Command(key)).is_empty());
        assert_eq!(s.handle(t0, Input::Booted), [Do::Up]);
        // Running: restarted at once (port withdrawn first), even within
        // the restart grace, the kill switch untouched (no such action).
        assert_eq!(
            s.handle(secs(t0, 1.0), Input::Command(key)),
            [Do::WithdrawPort, Do::Down, Do::Up]
        );
        s.handle(secs(t0, 2.0), Input::Command(VpnCommand::Stop));
        assert!(s.handle(secs(t0, 3.0), Input::Command(key)).is_empty());
        assert!(!format!("{key:?}").contains('1'));
    }
}
