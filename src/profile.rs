//! The lab's profile: the network and the policy under test.
//! [`Profile::seed`] is the default, the seed's network and firewall rules
//! (docs/DESIGN.md). [`Profile::from_compose`] and
//! [`Profile::from_env_file`] make one from the user's own configuration
//! (`run --compose FILE [--service NAME]`, `run --env-file FILE`): the LANs
//! and the LAN scenarios from its firewall settings
//! ([`crate::model::userlab`]), its variables for the gateway with the lab's
//! WireGuard keys, endpoint and other provider-side values in place of the
//! user's (named in the reports, never their values), its published ports
//! as the dependents' stand-ins. Reading the files is here; the decisions
//! are the model's pure functions. The lab's own gateway variables, under
//! every profile's policy, are [`lab_env`].

use std::collections::BTreeMap;
use std::path::Path;

use ipnet::IpNet;

use crate::model::topology::{Topology, addr};
use crate::model::userconf::{self, Published, Secret, UserConfError, Var};
use crate::model::userlab::{self, PlanError, UserFirewall, UserLab};

/// The seed's section 8, as gateway variables.
pub const SEED_OUTBOUND_SUBNETS: &str = "172.21.0.0/16,172.20.0.0/16";
pub const SEED_INPUT_SUBNET_PORTS: &str =
    "192.168.10.0/24=8080,9696,6789;192.168.40.0/24=8080,9696";

/// The lab's own gateway variables, whatever the policy: its provider
/// (keys, endpoint, tunnel addresses), its resolvers and DoH server, health
/// checks against its whoami, the control server's roles and the public-IP
/// service in the run's files (`{lab_ca}`, `{lab_dir}` (the run's gateway
/// folder) are filled in per run), its blocklists. Here, beside the policy it is the base of: the
/// runner stacks the profile's variables on it, and a user's variables are
/// checked against it.
pub fn lab_env(
    k: &crate::lab::services::LabKeys,
    blocklist_dir: &std::path::Path,
) -> BTreeMap<String, String> {
    [
        ("VPN_SERVICE_PROVIDER", "custom".to_string()),
        ("VPN_TYPE", "wireguard".into()),
        (
            "WIREGUARD_PRIVATE_KEY",
            crate::tunnel::encode_key(&k.client_private),
        ),
        (
            "WIREGUARD_PUBLIC_KEY",
            crate::tunnel::encode_key(&k.server_public),
        ),
        ("WIREGUARD_PRESHARED_KEY", crate::tunnel::encode_key(&k.psk)),
        ("WIREGUARD_ADDRESSES", format!("{}/32", addr::TUNNEL_CLIENT)),
        ("WIREGUARD_MTU", "1420".into()),
        // Retired names (WIREGUARD_ENDPOINT_IP/_PORT today) that every
        // Gluetun still reads, first: a gateway of any version gets them.
        ("VPN_ENDPOINT_IP", addr::VPN_ENDPOINT.to_string()),
        ("VPN_ENDPOINT_PORT", addr::VPN_ENDPOINT_PORT.to_string()),
        // The provider's DNS (the seed's DNS_ADDRESS=VPN_PROVIDER_DNS):
        // retired too, but read by v3.41.1 (its own meaning) and by today's
        // Gluetun (the plain upstream 10.64.0.1:53, overriding
        // DNS_UPSTREAM_RESOLVER_TYPE), where DNS_UPSTREAM_PLAIN_ADDRESSES
        // is master's only; a scenario that wants another upstream sets it
        // empty. The lab's DoH server joins the list of DoH endpoints to
        // refuse.
        ("DNS_ADDRESS", addr::TUNNEL_SERVER.to_string()),
        ("DNS_BLOCK_DOH_ADDRESSES", addr::DOH.to_string()),
        ("DNS_BLOCK_DOH_HOSTNAMES", "doh.lab".to_string()),
        // Health checks through the tunnel to whoami: a ping every second,
        // a TLS handshake with whoami.lab (a name, resolved by the gateway)
        // every 5 s.
        (
            "HEALTH_TARGET_ADDRESSES",
            format!("{}:443", crate::lab::whoami::TLS_NAME),
        ),
        ("HEALTH_TARGET_CA_FILE", "{lab_ca}".to_string()),
        ("HEALTH_ICMP_TARGET_IPS", addr::WHOAMI.to_string()),
        ("HEALTH_SMALL_CHECK_INTERVAL", "1s".to_string()),
        ("HEALTH_FULL_CHECK_INTERVAL", "5s".to_string()),
        (
            "HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH",
            "{lab_dir}/control-auth.toml".to_string(),
        ),
        ("PUBLICIP_URL", format!("http://{}/", addr::WHOAMI)),
        ("PUBLICIP_FILE", "{lab_dir}/publicip".to_string()),
        ("DNS_BLOCKLIST_DIR", blocklist_dir.display().to_string()),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect()
}

#[derive(Clone)]
pub struct Profile {
    pub topology: Topology,
    /// The policy's gateway variables (the seed's firewall rules, or the
    /// user's variables), applied over the lab's own.
    pub policy_env: BTreeMap<String, String>,
    /// What the gateway's wire may carry outside the tunnel besides the
    /// endpoint: its own network and the allowed LANs.
    pub allowed: Vec<IpNet>,
    /// The dependents' stand-ins: (port, application).
    pub stand_ins: Vec<(u16, String)>,
    /// The real applications and their WebUI ports (`run --dependents
    /// real`), in place of their stand-ins.
    pub real: Vec<(crate::lab::apps::App, u16)>,
    /// Where the profile came from, when it is the user's.
    pub user: Option<UserProfile>,
    /// Variables of the configuration under test (the seed's, or the
    /// user's file's) that today's Gluetun reads otherwise than their names
    /// say: changed meanings, retired names, no effect. The reports show
    /// them as configuration findings.
    pub config_findings: Vec<crate::gateway::variables::Finding>,
}

/// The seed's DNS variables (its section 6), as the seed writes them: today's
/// Gluetun retired three and gave `DOT` another meaning.
pub const SEED_DNS_VARIABLES: &[&str] = &[
    "DNS_KEEP_NAMESERVER",
    "DOT",
    "DNS_ADDRESS",
    "BLOCK_MALICIOUS",
];

/// What the reports say about a profile made from the user's files.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UserProfile {
    /// The file, as given on the command line.
    pub file: String,
    pub service: Option<String>,
    /// Services that share the gateway's network (`network_mode:
    /// service:NAME`).
    pub dependents: Vec<String>,
    /// Variables the lab set instead of the user's (names only).
    pub replaced: Vec<String>,
    /// Variables the lab added, with why (values are the lab's own).
    pub added: Vec<String>,
    /// Variables left out as without meaning for the network.
    pub left_out: Vec<String>,
    /// `${VAR}`s that nothing set (substituted as empty).
    pub unset: Vec<String>,
    pub notes: Vec<String>,
    /// The LANs made, as `name subnet (role)`.
    pub lans: Vec<String>,
    /// The scenarios made from the file: (name, TOML).
    #[serde(skip)]
    pub scenarios: Vec<(String, String)>,
    /// Every secret value in the user's files: never printed, and grepped
    /// for in the reports by a test.
    #[serde(skip)]
    pub secrets: Vec<Secret>,
}

/// Why the real applications cannot take their stand-ins' places.
#[derive(Debug, thiserror::Error)]
pub enum RealDependentsError {
    #[error("{program} is not installed ({source}); bash ci/setup.sh installs it")]
    NotInstalled {
        program: &'static str,
        #[source]
        source: crate::target::process::ProgramError,
    },
    #[error("this lab has no qBittorrent (8080) or NZBGet (6789) port")]
    NoPort,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("reading {file}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{file}: an env_file must be a regular file ({what}); leakhound reads no devices, pipes or kernel files"
    )]
    NotRegular { file: String, what: String },
    #[error(transparent)]
    Conf(#[from] UserConfError),
    #[error("{file}{}: {source}", service_part(.service))]
    Plan {
        file: String,
        service: Option<String>,
        #[source]
        source: PlanError,
    },
    #[error("{file}{}: {message}", service_part(.service))]
    Gateway {
        file: String,
        service: Option<String>,
        message: String,
    },
    #[error(
        "{file}{}: {key}: leakhound's gateway cannot honour it (not a variable it knows); remove it, or set it off to test without it",
        service_part(.service)
    )]
    CannotHonour {
        file: String,
        service: Option<String>,
        key: String,
    },
}

fn service_part(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!(": service {s}"))
        .unwrap_or_default()
}

fn read(path: &Path) -> Result<String, ProfileError> {
    std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
        file: path.display().to_string(),
        source,
    })
}

/// An `env_file:`'s text: a regular file only (after links), never a
/// device, a pipe or a file under /proc, /sys or /dev, whose reading could
/// block or hand the process's own secrets to the reports.
fn read_env_file(path: &Path) -> Result<String, ProfileError> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| ProfileError::Read {
        file: file.clone(),
        source,
    })?;
    let real = std::fs::canonicalize(path).map_err(|source| ProfileError::Read {
        file: file.clone(),
        source,
    })?;
    let what = if !meta.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        Some(
            if t.is_dir() {
                "a directory"
            } else if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_fifo() {
                "a pipe"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a file"
            }
            .to_string(),
        )
    } else {
        ["/proc", "/sys", "/dev"]
            .iter()
            .find(|d| real.starts_with(d))
            .map(|d| format!("it is under {d}"))
    };
    match what {
        Some(what) => Err(ProfileError::NotRegular { file, what }),
        None => read(path),
    }
}

/// Replaces every secret value in `text` by `<redacted>`.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut t = text.to_string();
    for s in secrets {
        if !s.expose().is_empty() {
            t = t.replace(s.expose(), "<redacted>");
        }
    }
    t
}

impl Profile {
    /// The real applications where this lab has their port: each takes
    /// its stand-in's place. `strict` (`--dependents real`): one that is
    /// not installed is an error. Otherwise (`auto`) it stays a stand-in,
    /// and the second value says which did and why. No port for any real
    /// application is an error either way.
    pub fn with_real_dependents(
        mut self,
        strict: bool,
    ) -> Result<(Profile, Vec<String>), RealDependentsError> {
        use crate::lab::apps::App;
        let mut stayed = Vec::new();
        for app in App::ALL {
            let Some(i) = self.stand_ins.iter().position(|(_, a)| a == app.name()) else {
                continue;
            };
            if let Err(source) = crate::target::process::executable(app.program()) {
                let why = RealDependentsError::NotInstalled {
                    program: app.program(),
                    source,
                };
                if strict {
                    return Err(why);
                }
                stayed.push(format!("{} stays a stand-in: {why}", app.name()));
                continue;
            }
            let (port, _) = self.stand_ins.remove(i);
            self.real.push((app, port));
        }
        if self.real.is_empty() && stayed.is_empty() {
            return Err(RealDependentsError::NoPort);
        }
        Ok((self, stayed))
    }

    /// The seed's profile, made once, for commands that only ever use it.
    pub fn seed_ref() -> &'static Profile {
        static SEED: std::sync::OnceLock<Profile> = std::sync::OnceLock::new();
        SEED.get_or_init(Profile::seed)
    }

    /// The default: the seed's network and section 8's rules.
    pub fn seed() -> Profile {
        Profile {
            topology: Topology::default_profile(),
            policy_env: [
                ("FIREWALL_OUTBOUND_SUBNETS", SEED_OUTBOUND_SUBNETS),
                ("FIREWALL_INPUT_SUBNET_PORTS", SEED_INPUT_SUBNET_PORTS),
                // The seed's BLOCK_MALICIOUS=on, with the lab's lists.
                ("BLOCK_MALICIOUS", "on"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            allowed: [
                "172.21.0.0/16",
                "172.20.0.0/16",
                "2001:db8:21::/64",
                "192.168.10.0/24",
                "192.168.40.0/24",
            ]
            .iter()
            .map(|n| n.parse().expect("net"))
            .collect(),
            stand_ins: crate::lab::dependents::default_stand_ins(),
            real: Vec::new(),
            user: None,
            config_findings: crate::gateway::variables::findings(
                SEED_DNS_VARIABLES.iter().copied(),
            ),
        }
    }

    /// A compose file's gateway service (`service`, or the one candidate):
    /// `${VAR}` from the environment over the `.env` beside the file, its
    /// `env_file:`s (relative to the file) under its `environment:`.
    pub fn from_compose(path: &Path, service: Option<&str>) -> Result<Profile, ProfileError> {
        let file = path.display().to_string();
        let text = read(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let dot_env = dir.join(".env");
        let dot_vars = if dot_env.exists() {
            userconf::parse_env_file(&dot_env.display().to_string(), &read(&dot_env)?)?
        } else {
            Vec::new()
        };
        let lookup = |k: &str| {
            std::env::var(k).ok().or_else(|| {
                dot_vars
                    .iter()
                    .find(|v| v.key == k)
                    .map(|v| v.value.expose().to_string())
            })
        };
        let g = userconf::parse_compose(&file, &text, service, &lookup)?;
        let mut vars = Vec::new();
        for f in &g.env_files {
            let p = dir.join(f);
            vars.extend(userconf::parse_env_file(
                &p.display().to_string(),
                &read_env_file(&p)?,
            )?);
        }
        vars.extend(g.environment.iter().cloned());
        // Secrets of `.env` too (a key substituted into the file).
        let mut secrets: Vec<Secret> = dot_vars
            .iter()
            .filter(|v| userconf::is_secret(&v.key))
            .map(|v| Secret::new(v.value.expose()))
            .collect();
        let mut p = Profile::from_vars(&file, Some(g.service.clone()), &vars, &g.ports)?;
        if let Some(u) = &mut p.user {
            u.dependents = g.dependents.clone();
            u.unset = g.unset.clone();
            secrets.append(&mut u.secrets);
            u.secrets = secrets;
        }
        Ok(p)
    }

    /// A plain env file (`KEY=VALUE` lines), as Gluetun's `env_file:`.
    pub fn from_env_file(path: &Path) -> Result<Profile, ProfileError> {
        let file = path.display().to_string();
        let vars = userconf::parse_env_file(&file, &read_env_file(path)?)?;
        Profile::from_vars(&file, None, &vars, &[])
    }

    fn from_vars(
        file: &str,
        service: Option<String>,
        vars: &[Var],
        published: &[Published],
    ) -> Result<Profile, ProfileError> {
        let secrets: Vec<Secret> = vars
            .iter()
            .filter_map(|v| match &v.value {
                userconf::Value::Secret(s) => Some(s.clone()),
                userconf::Value::Plain(_) => None,
            })
            .collect();
        let split = userlab::split_env(vars);
        let mut policy_env: BTreeMap<String, String> = split
            .kept
            .iter()
            .map(|v| (v.key.clone(), v.value.expose().to_string()))
            .collect();
        let mut added = lab_resolver_for_encrypted_upstream(&mut policy_env);
        let cfg = gateway_reading(file, &service, &policy_env, &secrets)?;
        let mut notes = gateway_notes(&cfg, &policy_env);
        if let Some(key) = drop_unused_off(&cfg, &mut policy_env, &mut notes) {
            return Err(ProfileError::CannotHonour {
                file: file.into(),
                service: service.clone(),
                key,
            });
        }
        let subnet_ports: Vec<(IpNet, Vec<u16>)> = cfg
            .firewall
            .subnet_ports
            .iter()
            .map(|s| (s.subnet, s.ports.clone()))
            .collect();
        let plan: UserLab = userlab::plan(&UserFirewall {
            outbound_subnets: &cfg.outbound_subnets,
            input_ports: &cfg.firewall.input_ports,
            subnet_ports: &subnet_ports,
            published,
        })
        .map_err(|source| ProfileError::Plan {
            file: file.into(),
            service: service.clone(),
            source,
        })?;
        notes.extend(plan.notes.iter().cloned());
        if subnet_ports.is_empty() {
            added.extend(open_published_ports(&plan, published, &mut policy_env));
        }
        let allowed = allowed_nets(&plan, &cfg);
        let stand_ins = plan
            .ports
            .iter()
            .map(|p| (*p, userlab::application(*p)))
            .collect();
        let lans = lan_lines(&plan);
        let source = match &service {
            Some(s) => format!("{file} (service {s})"),
            None => file.to_string(),
        };
        let scenarios = vec![
            (
                "lan-matrix".to_string(),
                userlab::lan_matrix_toml(&plan, &source),
            ),
            (
                "outbound-subnets".to_string(),
                userlab::outbound_toml(&plan, &source),
            ),
        ];
        // Each variable the file sets (to anything but empty, which Gluetun
        // reads as unset), by name.
        let mut config_findings = crate::gateway::variables::findings(
            vars.iter()
                .filter(|v| !v.value.expose().trim().is_empty())
                .map(|v| v.key.as_str()),
        );
        config_findings.extend(
            cfg.public_outbound_subnets
                .iter()
                .map(crate::gateway::variables::public_subnet_finding),
        );
        Ok(Profile {
            config_findings,
            topology: Topology::with_lans(&plan),
            policy_env,
            allowed,
            stand_ins,
            real: Vec::new(),
            user: Some(UserProfile {
                file: file.into(),
                service,
                dependents: Vec::new(),
                replaced: split.replaced,
                added,
                left_out: split.inert,
                unset: Vec::new(),
                notes,
                lans,
                scenarios,
                secrets,
            }),
        })
    }
}

/// An encrypted upstream the file asks for is the lab provider's: the lab's
/// plain DNS_ADDRESS would make it plain (today's Gluetun reads the retired
/// name so), so it is unset, and leakhound's own variables name the lab's
/// resolver for every named one. Returns what was added, as said in the
/// report.
fn lab_resolver_for_encrypted_upstream(policy_env: &mut BTreeMap<String, String>) -> Vec<String> {
    let mut added = Vec::new();
    let asked_type = policy_env
        .get("DNS_UPSTREAM_RESOLVER_TYPE")
        .map(|t| t.trim().to_ascii_lowercase());
    let encrypted: &[(&str, &str)] = match asked_type.as_deref() {
        Some("dot") => &[
            ("DOT_SERVER_ADDRESS", "10.64.0.1"),
            ("DOT_SERVER_NAME", "dns.provider.lab"),
            ("DOT_CA_FILE", "{lab_ca}"),
        ],
        Some("doh") => &[
            ("DOH_SERVER_ADDRESS", "192.0.2.43"),
            ("DOH_SERVER_URL", "https://doh.lab/dns-query"),
            ("DOH_CA_FILE", "{lab_ca}"),
        ],
        _ => &[],
    };
    if !encrypted.is_empty() {
        policy_env.insert("DNS_ADDRESS".into(), String::new());
        for (k, v) in encrypted {
            added.push(format!(
                "{k}={v} (the lab's resolver for DNS_UPSTREAM_RESOLVERS; leakhound's gateway only)"
            ));
            policy_env.insert(k.to_string(), v.to_string());
        }
    }
    added
}

/// The gateway's own parser decides what the variables mean (and names
/// what is wrong, secrets redacted), with the lab's values beside them.
fn gateway_reading(
    file: &str,
    service: &Option<String>,
    policy_env: &BTreeMap<String, String>,
    secrets: &[Secret],
) -> Result<crate::gateway::config::GatewayConfig, ProfileError> {
    let mut check_env = lab_env(
        &crate::lab::services::LabKeys::generate(),
        Path::new("/nonexistent-blocklists"),
    );
    check_env.extend(policy_env.clone());
    crate::gateway::config::GatewayConfig::from_env(check_env).map_err(|e| ProfileError::Gateway {
        file: file.into(),
        service: service.clone(),
        message: redact(&e.to_string(), secrets),
    })
}

/// What the gateway will say about the file's own variables (retired
/// names, changed meanings, no effect), said in the report too.
fn gateway_notes(
    cfg: &crate::gateway::config::GatewayConfig,
    policy_env: &BTreeMap<String, String>,
) -> Vec<String> {
    let names_user_key = |w: &str| {
        policy_env.keys().any(|k| {
            w.starts_with(&format!("{k} "))
                || w.starts_with(&format!("{k}="))
                || w.contains(&format!("variable {k},"))
        })
    };
    cfg.warnings
        .iter()
        .filter(|w| names_user_key(w))
        .map(|w| format!("leakhound's gateway says: {w}"))
        .collect()
}

/// The file's variables the gateway does not use: one that is off asks for
/// nothing and is left out (noted); the first that asks for something is
/// returned, since the lab could not honour it.
fn drop_unused_off(
    cfg: &crate::gateway::config::GatewayConfig,
    policy_env: &mut BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Option<String> {
    for key in &cfg.unused {
        let value = policy_env.get(key).cloned().unwrap_or_default();
        if !policy_env.contains_key(key) {
            continue;
        }
        if userlab::is_off(&value) {
            notes.push(format!(
                "{key} is off: leakhound's gateway has no such feature, so there is nothing to test"
            ));
            policy_env.remove(key);
        } else {
            return Some(key.clone());
        }
    }
    None
}

/// Publishing a port lets the LANs in (Docker forwards it, Gluetun accepts
/// what is addressed to its own network): for leakhound's gateway that is
/// FIREWALL_INPUT_SUBNET_PORTS for the outbound LANs (set in `policy_env`
/// when the file has none). Returns what was added, as said in the report.
fn open_published_ports(
    plan: &UserLab,
    published: &[Published],
    policy_env: &mut BTreeMap<String, String>,
) -> Option<String> {
    let published_tcp: Vec<String> = plan
        .ports
        .iter()
        .filter(|p| {
            published
                .iter()
                .any(|x| !x.udp && !x.host_only && x.target == **p)
        })
        .map(u16::to_string)
        .collect();
    if published_tcp.is_empty() {
        return None;
    }
    let entries: Vec<String> = plan
        .lans
        .iter()
        .filter(|l| l.roles.is_some_and(|r| r.outbound))
        .map(|l| format!("{}={}", l.subnet, published_tcp.join(",")))
        .collect();
    if entries.is_empty() {
        return None;
    }
    let v = entries.join(";");
    let said = format!(
        "FIREWALL_INPUT_SUBNET_PORTS={v} (the published ports, for the LANs of FIREWALL_OUTBOUND_SUBNETS; leakhound's gateway only)"
    );
    policy_env.insert("FIREWALL_INPUT_SUBNET_PORTS".into(), v);
    Some(said)
}

/// What the wires may carry outside the tunnel: the gateway's network, the
/// allowed LANs and the IPv6 outbound subnets.
fn allowed_nets(plan: &UserLab, cfg: &crate::gateway::config::GatewayConfig) -> Vec<IpNet> {
    let mut allowed: Vec<IpNet> = ["172.21.0.0/16", "2001:db8:21::/64"]
        .iter()
        .map(|n| n.parse().expect("net"))
        .collect();
    allowed.extend(
        plan.lans
            .iter()
            .filter(|l| l.roles.is_some())
            .map(|l| IpNet::V4(l.subnet)),
    );
    allowed.extend(cfg.outbound_subnets.iter().filter(|n| n.addr().is_ipv6()));
    allowed
}

/// Each LAN of the plan as the report names it: name, subnet and roles.
fn lan_lines(plan: &UserLab) -> Vec<String> {
    plan.lans
        .iter()
        .map(|l| {
            let role = match l.roles {
                None => "denied".to_string(),
                Some(r) => [(r.outbound, "outbound"), (r.inbound, "inbound")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, n)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            format!("{} {} ({role})", l.name, l.subnet)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_regular_files_only() {
        let why = |p: &Path| match Profile::from_env_file(p) {
            Err(e @ ProfileError::NotRegular { .. }) => e.to_string(),
            Err(e) => panic!("{p:?}: another error: {e}"),
            Ok(_) => panic!("{p:?} was read"),
        };
        assert!(why(Path::new("/dev/null")).contains("(a device)"));
        assert!(why(Path::new("/tmp")).contains("(a directory)"));
        assert!(why(Path::new("/proc/self/environ")).contains("under /proc"));
        // Through a compose file's env_file: too.
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("compose.yml");
        std::fs::write(
            &c,
            "services:\n  gw:\n    image: qmcgaw/gluetun\n    env_file: /proc/self/environ\n",
        )
        .unwrap();
        let e = Profile::from_compose(&c, None).err().expect("refused");
        assert!(matches!(e, ProfileError::NotRegular { .. }), "{e}");
    }

    /// A compose file's first lines: a Gluetun service with a WireGuard
    /// connection, its environment open for more.
    const WIREGUARD_SERVICE: &str = "services:\n  gluetun:\n    image: qmcgaw/gluetun:latest\n    environment:\n      - VPN_SERVICE_PROVIDER=custom\n      - VPN_TYPE=wireguard\n      - WIREGUARD_PRIVATE_KEY=wOEI9rqqbDwnN8/Bpp22sVz48T71vJ4fYmFWujulwUU=\n      - WIREGUARD_PUBLIC_KEY=PUBLICKEYPUBLICKEYPUBLICKEYPUBLICKEYPUBLI=\n      - WIREGUARD_ADDRESSES=10.2.0.2/32\n      - WIREGUARD_ENDPOINT_IP=198.51.100.200\n      - WIREGUARD_ENDPOINT_PORT=51820\n";

    /// `text` as a compose file in a fresh folder (kept while it lives).
    fn compose(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("compose.yml");
        std::fs::write(&c, text).unwrap();
        (dir, c)
    }

    /// A public range in FIREWALL_OUTBOUND_SUBNETS (TunnelCrack LocalNet)
    /// is a configuration finding, not a refusal: the lab plans without it
    /// and never sends there.
    #[test]
    fn a_public_outbound_subnet_is_a_finding_not_a_refusal() {
        let (_dir, c) = compose(&format!(
            "{WIREGUARD_SERVICE}      - FIREWALL_OUTBOUND_SUBNETS=192.168.1.0/24,8.8.8.0/24\n"
        ));
        let p = Profile::from_compose(&c, None).unwrap_or_else(|e| panic!("{e}"));
        let f: Vec<String> = p
            .config_findings
            .iter()
            .filter(|f| f.kind == crate::gateway::variables::FindingKind::PublicSubnet)
            .map(|f| f.to_string())
            .collect();
        assert_eq!(f.len(), 1, "{:#?}", p.config_findings);
        assert!(
            f[0].starts_with("FIREWALL_OUTBOUND_SUBNETS: covers public addresses")
                && f[0].contains("8.8.8.0/24")
                && f[0].contains("CVE-2023-36672"),
            "{}",
            f[0]
        );
        // The lab's LANs hold the private one only.
        let lans = &p.user.as_ref().unwrap().lans;
        assert!(
            lans.iter().any(|l| l.contains("192.168.1.0/24")),
            "{lans:#?}"
        );
        assert!(!lans.iter().any(|l| l.contains("8.8.8")), "{lans:#?}");
        assert!(!p.allowed.iter().any(|n| n.to_string().starts_with("8.8.8")));
    }

    /// A compose file written with today's Gluetun names (master,
    /// `:latest`) is taken, not refused as unknown variables: the encrypted
    /// upstream is mapped to the lab's resolver, the retired names are
    /// noted with what the gateway will say about them.
    #[test]
    fn a_compose_file_with_todays_names_is_taken() {
        let (_dir, c) = compose(&format!(
            "{WIREGUARD_SERVICE}      - DNS_SERVER=on\n      - DNS_UPSTREAM_RESOLVER_TYPE=DoT\n      - DNS_UPSTREAM_RESOLVERS=cloudflare,quad9\n      - DNS_UPSTREAM_PLAIN_ADDRESSES=10.2.0.1:53\n      - DNS_UPSTREAM_IPV6=off\n      - DNS_BLOCK_IPS=192.0.2.66\n      - DNS_UPDATE_PERIOD=24h\n      - DNS_KEEP_NAMESERVER=off\n      - DOT=on\n      - HEALTH_VPN_DURATION_INITIAL=10s\n      - HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE={{}}\n      - VPN_UP_COMMAND=echo up\n      - FIREWALL_IPTABLES_LOG_LEVEL=info\n      - VPN_PORT_FORWARDING_LISTENING_PORTS=0\n      - PUBLICIP_ENABLED=off\n"
        ));
        let p = Profile::from_compose(&c, None).unwrap_or_else(|e| panic!("{e}"));
        let u = p.user.as_ref().unwrap();
        assert!(
            u.replaced
                .contains(&"DNS_UPSTREAM_PLAIN_ADDRESSES".to_string()),
            "{:?}",
            u.replaced
        );
        assert_eq!(p.policy_env["DOT_SERVER_ADDRESS"], "10.64.0.1");
        assert_eq!(p.policy_env["DNS_ADDRESS"], "");
        // The file's own variables that today's Gluetun reads otherwise, for
        // the reports: names only, each once.
        let found: Vec<(&str, &crate::gateway::variables::FindingKind)> = p
            .config_findings
            .iter()
            .map(|f| (f.variable.as_str(), &f.kind))
            .collect();
        use crate::gateway::variables::FindingKind::*;
        for want in [
            ("DNS_KEEP_NAMESERVER", &NoEffect),
            ("DOT", &MeaningChanged),
            ("HEALTH_VPN_DURATION_INITIAL", &NoEffect),
        ] {
            assert!(found.contains(&want), "{want:?} not in {found:?}");
        }
        assert!(
            !found
                .iter()
                .any(|(v, _)| v.starts_with("WIREGUARD_") || *v == "DNS_SERVER")
        );
        assert_eq!(
            Profile::seed()
                .config_findings
                .iter()
                .map(|f| f.variable.as_str())
                .collect::<Vec<_>>(),
            ["DNS_KEEP_NAMESERVER", "DOT", "DNS_ADDRESS"]
        );
        assert!(
            u.notes
                .iter()
                .any(|n| n.contains("DOT") && n.contains("DNS_SERVER")),
            "{:#?}",
            u.notes
        );
        assert!(
            u.notes
                .iter()
                .any(|n| n.contains("HEALTH_VPN_DURATION_INITIAL has no effect")),
            "{:#?}",
            u.notes
        );
    }
}
