//! `leakhound prove`: reads a namespace's ruleset (live, or saved files)
//! and prints the proof that nothing but the policy's packets leaves on
//! the underlay, a witness packet, or why it cannot prove it.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use leakhound::prove::{self, State};
use leakhound_prove::{Answer, Forwarding, Policy};

use super::args::ProveArgs;

fn read(path: &std::path::Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Exit status: 0 a proof, 1 a witness or "cannot prove".
pub(crate) fn prove(args: ProveArgs) -> Result<bool> {
    let mut policy = match &args.env {
        Some(f) => prove::policy_from_env(&f.display().to_string(), &read(f)?)?,
        None => Policy {
            endpoints: Vec::new(),
            allow: Vec::new(),
        },
    };
    for e in &args.endpoint {
        policy
            .endpoints
            .push(prove::parse_endpoint(e).map_err(|m| anyhow::anyhow!("--endpoint {m}"))?);
    }
    policy.allow.extend(args.allow.iter().copied());
    if policy.endpoints.is_empty() {
        bail!("no VPN endpoint: give --endpoint IP:PORT, or --env with VPN_ENDPOINT_IP");
    }
    let (state, source): (State, String) = match &args.ruleset {
        Some(rs) => {
            let forwarding = match args.forwarding.as_str() {
                "on" => Forwarding { v4: true, v6: true },
                "off" => Forwarding::default(),
                "v4" => Forwarding {
                    v4: true,
                    v6: false,
                },
                "v6" => Forwarding {
                    v4: false,
                    v6: true,
                },
                other => bail!("--forwarding {other:?}: use on, off, v4 or v6"),
            };
            let addr = args.addresses.as_ref().expect("clap requires it");
            let text = args.ruleset_text.as_deref().map(read).transpose()?;
            let state = prove::read_files(
                (&rs.display().to_string(), &read(rs)?),
                text.as_deref(),
                (&addr.display().to_string(), &read(addr)?),
                &args.underlay,
                forwarding,
            )?;
            (state, format!("saved state {}", rs.display()))
        }
        None => {
            let Some(attach) = args.at.attach() else {
                bail!("name the gateway: --netns, --pid or --container, or give --ruleset");
            };
            super::require_root("prove", super::ENTERS_NAMESPACE)?;
            let ns = leakhound::audit::attach(&attach)?;
            (prove::read_live(&ns, &args.underlay)?, attach.to_string())
        }
    };
    let started = Instant::now();
    let answer = prove::answer(&state, &policy);
    let took = started.elapsed();
    println!(
        "leakhound prove: {source}, underlay {}; may leave: {}",
        args.underlay,
        policy
            .endpoints
            .iter()
            .map(|(a, p)| format!("UDP to {}", std::net::SocketAddr::new(*a, *p)))
            .chain(policy.allow.iter().map(|n| n.to_string()))
            .chain([
                "ARP".to_string(),
                "ICMPv6 neighbour discovery and MLD from link-local".to_string()
            ])
            .collect::<Vec<_>>()
            .join(", ")
    );
    let ms = took.as_secs_f64() * 1e3;
    let (ok, assumptions) = match &answer {
        Answer::Proof { assumptions } => {
            println!(
                "PROOF: no other packet leaves on {} ({ms:.1} ms)",
                args.underlay
            );
            (true, Some(assumptions))
        }
        Answer::Witness {
            packet,
            assumptions,
        } => {
            println!("WITNESS: {packet} ({ms:.1} ms)");
            (false, Some(assumptions))
        }
        Answer::Cannot(c) => {
            println!("CANNOT PROVE: {}: {} ({ms:.1} ms)", c.rule, c.why);
            (false, None)
        }
    };
    if let Some(a) = assumptions {
        println!("assuming:");
        for line in a {
            println!("  - {line}");
        }
    }
    Ok(ok)
}
