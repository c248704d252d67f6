//! The gateway's control API: the `control` step's requests, the tunnel
//! stopped and started through it (with the lab's ops role), and the key
//! rotated through it (the lab as the provider's API), with the check that
//! the provider refuses the old key.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::lifecycle::write_key_file;
use super::report::lab_err;
use crate::lab::LabError;
use crate::model::scenario::Action;
use crate::model::topology::{addr, host};
use crate::model::verdict::Outcome;
use crate::probe;
use crate::scenario::runner::{PROBE_TIMEOUT, RunState, Runner, fail, run_file};
use crate::target::{GatewayHandle, tail};

/// How long a `control` step with `grows` reads the metrics again: the
/// gateway publishes its tunnel's counters on the tunnel's timer tick
/// (250 ms), so growth may show a tick late.
const METRICS_LAG: Duration = Duration::from_secs(2);

/// Where the gateway's control server listens, from its variables (Gluetun's
/// default `:8000`), as seen from inside its namespace.
fn control_address(env: &std::collections::BTreeMap<String, String>) -> SocketAddr {
    let raw = env
        .get("HTTP_CONTROL_SERVER_ADDRESS")
        .map(String::as_str)
        .unwrap_or(":8000");
    let full = if raw.starts_with(':') {
        format!("127.0.0.1{raw}")
    } else {
        raw.replace("0.0.0.0", "127.0.0.1")
    };
    full.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8000)))
}

/// The header that authenticates the lab's ops role on the gateway's
/// control server (stop/start the tunnel, rotate the key).
fn ops_role() -> Vec<(String, String)> {
    vec![(
        "x-api-key".to_string(),
        crate::lab::CONTROL_API_KEY.to_string(),
    )]
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
) -> Result<String, String> {
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
            Ok((code, text)) => {
                return Err(format!(
                    "the control server refused the request: {code} {text}"
                ));
            }
            Err(e) => {
                if let Some(status) = gateway.try_exited() {
                    return Err(format!(
                        "the gateway exited ({status}) before it took the request"
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "the control server at {target} did not take the request within 10s: {e}"
                    ));
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
    pub(crate) async fn control_step(
        &self,
        st: &mut RunState<'_>,
        action: &Action,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
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
            return Err(lab_err("control", "not a control action"));
        };
        log.push(format!(
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
        Ok(loop {
            let r = probe::http_request(
                self.lab.ns(host::GW)?,
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
                    break fail(
                        format!("no answer from the control server: {e}"),
                        log.join("\n"),
                    );
                }
                Ok(a) => a,
            };
            if code != *status {
                log.push(format!("{code}: {text}"));
                break fail(
                    format!("expected {status}, got {code}: {text}"),
                    log.join("\n"),
                );
            }
            if let Some(c) = contains.as_ref().filter(|c| !text.contains(c.as_str())) {
                log.push(format!("{code}: {text}"));
                break fail(
                    format!("the answer does not contain {c:?}: {text}"),
                    log.join("\n"),
                );
            }
            let now = crate::model::prom::samples(&text);
            if grows.is_empty() {
                log.push(format!("{code}: {text}"));
                st.metrics.extend(now);
                break Outcome::Passed;
            }
            match crate::model::prom::growth(&before, &now, grows) {
                Ok(g) => {
                    log.push(format!("{code}; grown since the last reading: {g}"));
                    st.metrics.extend(now);
                    break Outcome::Passed;
                }
                Err(why) if tokio::time::Instant::now() >= deadline => {
                    log.push(format!("{code}: {text}"));
                    st.metrics.extend(now);
                    break fail(
                        format!("{why} (read again for {METRICS_LAG:?})"),
                        log.join("\n"),
                    );
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    }

    /// The tunnel stops or starts through the gateway's own control API
    /// (`PUT /v1/vpn/status` with the lab's ops role), which answers once
    /// the tunnel is in the asked state.
    pub(crate) async fn tunnel_by_control(
        &self,
        st: &mut RunState<'_>,
        running: bool,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let Some(g) = st.gateway.as_mut() else {
            return Ok(fail("there is no gateway running", ""));
        };
        let target = control_address(&st.env);
        let ns = self.lab.ns(host::GW)?;
        log.push(format!(
            "PUT http://{target}/v1/vpn/status {{\"status\":\"{}\"}} (the lab's ops role)",
            if running { "running" } else { "stopped" }
        ));
        Ok(match put_vpn_status(ns, target, running, g).await {
            Ok(answer) => {
                log.push(format!("the gateway answered: {answer}"));
                Outcome::Passed
            }
            Err(why) => {
                g.log_flushed().await;
                fail(why, tail(&st.gw_log, 20))
            }
        })
    }

    /// The lab as the provider's API: a new key pair; the private key goes
    /// (atomically) into the gateway's WIREGUARD_PRIVATE_KEY_SECRETFILE,
    /// the provider accepts the public key from now on and forgets the old
    /// one, and the gateway is told through its control server. The next
    /// `wait-handshake` waits for a handshake on the new key.
    pub(crate) async fn rotate_key(
        &self,
        st: &mut RunState<'_>,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let file = match run_file(
            self.lab.run_id(),
            &st.env,
            "WIREGUARD_PRIVATE_KEY_SECRETFILE",
        ) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(lab_err(
                    "rotate-key",
                    std::io::Error::other("the scenario sets no WIREGUARD_PRIVATE_KEY_SECRETFILE"),
                ));
            }
            Err(e) => return Err(lab_err("rotate-key", std::io::Error::other(e))),
        };
        let Some(g) = st.gateway.as_mut() else {
            return Ok(fail("there is no gateway running", ""));
        };
        let (private, public) = crate::tunnel::generate_keypair();
        write_key_file(&file, &private).map_err(|e| lab_err("rotate-key", e))?;
        self.services.wg.set_peer(public).await?;
        st.handshakes_before = self.services.wg.status.borrow().handshakes;
        st.old_key = Some(st.current_key);
        st.current_key = private;
        log.push(format!(
            "a new key in {}; the provider accepts only it from now on",
            file.display()
        ));
        let target = control_address(&st.env);
        let ns = self.lab.ns(host::GW)?;
        let headers = ops_role();
        log.push(format!(
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
                log.push(format!("the gateway answered: {}", text.trim()));
                Outcome::Passed
            }
            Ok((code, text)) => {
                g.log_flushed().await;
                fail(
                    format!("the gateway refused the new key: {code} {}", text.trim()),
                    tail(&st.gw_log, 20),
                )
            }
            Err(e) => {
                g.log_flushed().await;
                fail(
                    format!("the control server did not take the new key: {e}"),
                    tail(&st.gw_log, 20),
                )
            }
        })
    }

    /// A handshake initiation made with the key from before the last
    /// rotation, sent to the provider from the internet side: passes when
    /// nothing answers within the probe timeout.
    pub(crate) async fn old_key_refused(
        &self,
        st: &mut RunState<'_>,
        log: &mut Vec<String>,
    ) -> Result<Outcome, LabError> {
        let Some(old) = st.old_key else {
            return Ok(fail(
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
                return Err(lab_err(
                    "old-key-refused",
                    std::io::Error::other("boringtun made no handshake initiation"),
                ));
            }
        };
        let ns = self.lab.ns(host::ISP)?;
        let sock =
            probe::udp_socket_for(ns, endpoint).map_err(|e| lab_err("old-key-refused", e))?;
        sock.send_to(&init, endpoint)
            .await
            .map_err(|e| lab_err("old-key-refused", e))?;
        log.push(format!(
            "a handshake initiation with the old key, from the ISP to {endpoint}"
        ));
        let mut reply = vec![0u8; 2048];
        Ok(
            match tokio::time::timeout(PROBE_TIMEOUT, sock.recv_from(&mut reply)).await {
                Err(_) => {
                    log.push(format!("no answer within {PROBE_TIMEOUT:?}"));
                    Outcome::Passed
                }
                Ok(Ok((n, from))) => fail(
                    format!("the provider answered the old key: {n} bytes from {from}"),
                    "",
                ),
                Ok(Err(e)) => return Err(lab_err("old-key-refused", e)),
            },
        )
    }
}
