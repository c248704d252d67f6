//! The gateway's control API: the `control` step's requests, the tunnel
//! stopped and started through it (with the lab's ops role), and the key
//! rotated through it (the lab as the provider's API), with the check that
//! the provider refuses the old key.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::lifecycle::{no_gateway, write_key_file};
use super::report::{StepLog, StepResult, lab_err};
use crate::model::scenario::Action;
use crate::model::topology::{addr, host};
use crate::probe;
use crate::scenario::runner::{PROBE_TIMEOUT, RunState, Runner, run_file};
use crate::target::{GatewayEnd, GatewayHandle, tail};
use leakhound_proto::listen;

/// How long a `control` step with `grows` reads the metrics again: the
/// gateway publishes its tunnel's counters on the tunnel's timer tick
/// (250 ms), so growth may show a tick late.
const METRICS_LAG: Duration = Duration::from_secs(2);

/// Where the gateway's control server is reached from inside its
/// namespace, from its variables (Gluetun's default `:8000`), read as the
/// gateway reads them ([`listen::control_address`]).
fn control_address(
    env: &std::collections::BTreeMap<String, String>,
) -> Result<SocketAddr, listen::AddressError> {
    listen::control_address(env.get(listen::CONTROL_SERVER_VARIABLE).map(String::as_str))
        .map(listen::reach)
}

/// The header that authenticates the lab's ops role on the gateway's
/// control server (stop/start the tunnel, rotate the key).
fn ops_role() -> Vec<(String, String)> {
    vec![(
        "x-api-key".to_string(),
        crate::lab::CONTROL_API_KEY.to_string(),
    )]
}

/// Why the control server did not take a tunnel command.
#[derive(Debug, thiserror::Error)]
enum NotTaken {
    #[error("the control server refused the request: {code} {text}")]
    Refused { code: u16, text: String },
    #[error("the gateway exited ({0}) before it took the request")]
    Exited(GatewayEnd),
    #[error("the control server at {target} did not take the request within 10s")]
    NoAnswer {
        target: SocketAddr,
        #[source]
        source: probe::ProbeError,
    },
}

/// `PUT /v1/vpn/status` with the lab's ops key. The gateway answers once
/// the tunnel is in the asked state (the acknowledgement). While its control
/// server does not accept connections yet (the process is just starting),
/// the request is repeated until the gateway accepts it, exits, or 10 s
/// pass: the readiness fact is the server answering, not a sleep.
async fn put_vpn_status(
    ns: &crate::lab::netns::Netns,
    target: SocketAddr,
    running: bool,
    gateway: &mut Box<dyn GatewayHandle>,
) -> Result<String, NotTaken> {
    let body = format!(
        "{{\"status\":\"{}\"}}",
        if running { "running" } else { "stopped" }
    );
    let headers = ops_role();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = probe::http_request(
            ns,
            "PUT",
            target,
            "/v1/vpn/status",
            &headers,
            body.clone(),
            Duration::from_secs(12),
        )
        .await;
        match r {
            Ok((200, text)) => return Ok(text),
            Ok((code, text)) => return Err(NotTaken::Refused { code, text }),
            Err(source) => {
                if let Some(status) = gateway.try_exited() {
                    return Err(NotTaken::Exited(status));
                }
                if Instant::now() >= deadline {
                    return Err(NotTaken::NoAnswer { target, source });
                }
                // Connection refused: the server is not listening yet.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl Runner<'_> {
    /// A request to the gateway's control server from its namespace: the
    /// status and text it must answer, and Prometheus samples that must have
    /// grown since the last reading (read again for [`METRICS_LAG`] until
    /// they have).
    pub(crate) async fn control_step(&self, st: &mut RunState<'_>, action: &Action) -> StepResult {
        let mut log = StepLog::new();
        let Action::Control {
            method,
            path,
            target,
            headers,
            body,
            status,
            contains,
            grows,
        } = action
        else {
            return Err(log.error(lab_err("control", "not a control action")));
        };
        log.note(format!(
            "{method} http://{target}{path}{}",
            if headers.is_empty() {
                " (no credentials)"
            } else {
                ""
            }
        ));
        // Counters are published on the tunnel's timer tick: a
        // reading that should show growth is repeated (bounded)
        // until it does; any other check is one request.
        let deadline = tokio::time::Instant::now() + METRICS_LAG;
        let before = st.metrics.clone();
        loop {
            let ns = log.harness(self.lab.ns(host::GW))?;
            let r = probe::http_request(
                ns,
                method,
                *target,
                path,
                headers,
                body.clone(),
                PROBE_TIMEOUT,
            )
            .await;
            let (code, text) = match r {
                Err(e) => {
                    return Ok(log.fail(format!("no answer from the control server: {e}")));
                }
                Ok(a) => a,
            };
            if code != *status {
                log.note(format!("{code}: {text}"));
                return Ok(log.fail(format!("expected {status}, got {code}: {text}")));
            }
            if let Some(c) = contains.as_ref().filter(|c| !text.contains(c.as_str())) {
                log.note(format!("{code}: {text}"));
                return Ok(log.fail(format!("the answer does not contain {c:?}: {text}")));
            }
            let now = crate::model::prom::samples(&text);
            if grows.is_empty() {
                log.note(format!("{code}: {text}"));
                st.metrics.extend(now);
                return Ok(log.pass());
            }
            match crate::model::prom::growth(&before, &now, grows) {
                Ok(g) => {
                    log.note(format!("{code}; grown since the last reading: {g}"));
                    st.metrics.extend(now);
                    return Ok(log.pass());
                }
                Err(why) if tokio::time::Instant::now() >= deadline => {
                    log.note(format!("{code}: {text}"));
                    st.metrics.extend(now);
                    return Ok(log.fail(format!("{why} (read again for {METRICS_LAG:?})")));
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The tunnel stops or starts through the gateway's own control API
    /// (`PUT /v1/vpn/status` with the lab's ops role), which answers once
    /// the tunnel is in the asked state.
    pub(crate) async fn tunnel_by_control(
        &self,
        st: &mut RunState<'_>,
        running: bool,
    ) -> StepResult {
        let mut log = StepLog::new();
        let Some(g) = st.gateway.as_mut() else {
            return Ok(no_gateway());
        };
        let target = match control_address(&st.env) {
            Ok(t) => t,
            Err(e) => return Ok(log.fail(format!("{}: {e}", listen::CONTROL_SERVER_VARIABLE))),
        };
        let ns = log.harness(self.lab.ns(host::GW))?;
        log.note(format!(
            "PUT http://{target}/v1/vpn/status {{\"status\":\"{}\"}} (the lab's ops role)",
            if running { "running" } else { "stopped" }
        ));
        Ok(match put_vpn_status(ns, target, running, g).await {
            Ok(answer) => {
                log.note(format!("the gateway answered: {answer}"));
                log.pass()
            }
            Err(why) => {
                g.log_flushed().await;
                log.fail_with(crate::errfmt::chain(&why), tail(&st.gw_log, 20))
            }
        })
    }

    /// The lab as the provider's API: a new key pair; the private key goes
    /// (atomically) into the gateway's WIREGUARD_PRIVATE_KEY_SECRETFILE,
    /// the provider accepts the public key from now on and forgets the old
    /// one, and the gateway is told through its control server. The next
    /// `wait-handshake` waits for a handshake on the new key.
    pub(crate) async fn rotate_key(&self, st: &mut RunState<'_>) -> StepResult {
        let mut log = StepLog::new();
        let file = match run_file(
            self.lab.run_id(),
            &st.env,
            "WIREGUARD_PRIVATE_KEY_SECRETFILE",
        ) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(log.error(lab_err(
                    "rotate-key",
                    std::io::Error::other("the scenario sets no WIREGUARD_PRIVATE_KEY_SECRETFILE"),
                )));
            }
            Err(e) => return Err(log.error(lab_err("rotate-key", e))),
        };
        let Some(g) = st.gateway.as_mut() else {
            return Ok(no_gateway());
        };
        let (private, public) = crate::tunnel::generate_keypair();
        log.harness(write_key_file(&file, &private).map_err(|e| lab_err("rotate-key", e)))?;
        log.harness(self.services.wg.set_peer(public).await)?;
        st.handshakes_before = self.services.wg.status.borrow().handshakes;
        st.old_key = Some(st.current_key);
        st.current_key = private;
        log.note(format!(
            "a new key in {}; the provider accepts only it from now on",
            file.display()
        ));
        let target = match control_address(&st.env) {
            Ok(t) => t,
            Err(e) => return Ok(log.fail(format!("{}: {e}", listen::CONTROL_SERVER_VARIABLE))),
        };
        let ns = log.harness(self.lab.ns(host::GW))?;
        let headers = ops_role();
        log.note(format!(
            "PUT http://{target}/v1/wireguard/key (the lab's ops role)"
        ));
        let r = probe::http_request(
            ns,
            "PUT",
            target,
            "/v1/wireguard/key",
            &headers,
            String::new(),
            PROBE_TIMEOUT,
        )
        .await;
        Ok(match r {
            Ok((200, text)) => {
                log.note(format!("the gateway answered: {}", text.trim()));
                log.pass()
            }
            Ok((code, text)) => {
                g.log_flushed().await;
                log.fail_with(
                    format!("the gateway refused the new key: {code} {}", text.trim()),
                    tail(&st.gw_log, 20),
                )
            }
            Err(e) => {
                g.log_flushed().await;
                log.fail_with(
                    format!("the control server did not take the new key: {e}"),
                    tail(&st.gw_log, 20),
                )
            }
        })
    }

    /// A handshake initiation made with the key from before the last
    /// rotation, sent to the provider from the internet side: passes when
    /// nothing answers within the probe timeout.
    pub(crate) async fn old_key_refused(&self, st: &mut RunState<'_>) -> StepResult {
        let mut log = StepLog::new();
        let Some(old) = st.old_key else {
            return Ok(log.fail_with(
                "no key was rotated before this step (see the rotate-key step)",
                "",
            ));
        };
        let endpoint = SocketAddr::new(addr::VPN_ENDPOINT.into(), addr::VPN_ENDPOINT_PORT);
        let k = &self.services.keys;
        let mut tunn = boringtun::noise::Tunn::new(
            boringtun::x25519::StaticSecret::from(old),
            boringtun::x25519::PublicKey::from(k.server_public),
            Some(k.psk),
            None,
            1,
            None,
        );
        let mut buf = vec![0u8; 256];
        let init = match tunn.format_handshake_initiation(&mut buf, true) {
            boringtun::noise::TunnResult::WriteToNetwork(p) => p.to_vec(),
            _ => {
                return Err(log.error(lab_err(
                    "old-key-refused",
                    std::io::Error::other("boringtun made no handshake initiation"),
                )));
            }
        };
        let ns = log.harness(self.lab.ns(host::ISP))?;
        let sock = log.harness(
            probe::udp_socket_for(ns, endpoint).map_err(|e| lab_err("old-key-refused", e)),
        )?;
        log.harness(
            sock.send_to(&init, endpoint)
                .await
                .map_err(|e| lab_err("old-key-refused", e)),
        )?;
        log.note(format!(
            "a handshake initiation with the old key, from the ISP to {endpoint}"
        ));
        let mut reply = vec![0u8; 2048];
        match tokio::time::timeout(PROBE_TIMEOUT, sock.recv_from(&mut reply)).await {
            Err(_) => {
                log.note(format!("no answer within {PROBE_TIMEOUT:?}"));
                Ok(log.pass())
            }
            Ok(Ok((n, from))) => Ok(log.fail_with(
                format!("the provider answered the old key: {n} bytes from {from}"),
                "",
            )),
            Ok(Err(e)) => Err(log.error(lab_err("old-key-refused", e))),
        }
    }
}
