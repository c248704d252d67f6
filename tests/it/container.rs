//! The container target on this machine's Docker engine (no registry:
//! images are built here). Our gateway, packed into an image from this
//! build's binary (docker/build.sh --from), runs the smoke subset in a
//! container whose network namespace is the lab's gateway host (held by a
//! holder container); a container that dies at once is a finding; a
//! missing image stops the run before any scenario; a run killed with
//! containers up leaves nothing `reap` does not remove; the Compose file
//! mirroring the user's deployment is valid. Without an engine these tests
//! are ignored, with the reason (never passed). Needs root.
#![cfg_attr(not(docker_engine), allow(dead_code, unused_imports))]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::common::{TestLab, builtin};
use leakhound::model::scenario::Capability;
use leakhound::model::topology::host;
use leakhound::target::GatewayTarget;
use leakhound::target::container::{Container, Holder, RUN_LABEL};

const IMAGE: &str = "leakhound/gateway:test";

/// Builds the test image once per test process.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("docker/build.sh"))
            .args(["--from", env!("CARGO_BIN_EXE_leakhound"), IMAGE])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "building {IMAGE}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    IMAGE
}

fn ours() -> Arc<dyn GatewayTarget> {
    let caps: BTreeSet<Capability> = [
        Capability::LeakhoundVariables,
        Capability::HealthServer,
        Capability::ControlServer,
    ]
    .into();
    Arc::new(
        Container::new(
            "ours",
            image().into(),
            env!("CARGO_BIN_EXE_leakhound").into(),
            caps,
        )
        .with_holder_image(image()),
    )
}

/// Containers of run `run_id` that still exist.
fn containers_of(run_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label={RUN_LABEL}={run_id}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

async fn lab_with_holder() -> (TestLab, Holder) {
    // The run id is claimed first: a concurrent run's reaper must not take
    // the holder for a killed run's.
    let lock = leakhound::lab::Lab::claim(&leakhound::lab::new_run_id()).unwrap();
    let holder = Holder::start(lock.id(), image()).await.unwrap();
    let t = TestLab::adopting_locked(lock, BTreeMap::from([(host::GW, holder.pid)])).await;
    (t, holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
async fn our_image_passes_the_smoke_subset_as_a_container() {
    let target = ours();
    target.preflight().await.unwrap();
    let (t, holder) = lab_with_holder().await;
    let run_id = t.run_id.clone();
    let out = tempfile::tempdir().unwrap();
    let mut runner = t.runner_for(out.path(), &[], target);
    runner.holder = Some(holder.id().to_string());
    let mut results = Vec::new();
    for n in ["baseline", "killswitch-tunnel-down", "ipv6-leak"] {
        results.push(runner.run(&builtin(n)).await);
    }
    drop(runner);
    t.finish();
    drop(holder);
    for r in &results {
        assert!(r.passed(), "{}: {:#?}", r.name, r.failures());
    }
    // The gateway really ran in a container: its log is the container's.
    let log = std::fs::read_to_string(out.path().join("baseline-gateway.log")).unwrap();
    assert!(log.contains("firewall closed"), "{log}");
    assert!(
        containers_of(&run_id).is_empty(),
        "left: {:?}",
        containers_of(&run_id)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
async fn a_container_that_exits_at_once_is_a_finding_and_the_run_goes_on() {
    let target = ours();
    let (t, holder) = lab_with_holder().await;
    let out = tempfile::tempdir().unwrap();
    let mut bad = t.runner_for(
        out.path(),
        &[("WIREGUARD_PRIVATE_KEY", "not-a-key".into())],
        target.clone(),
    );
    bad.holder = Some(holder.id().to_string());
    let r1 = bad.run(&builtin("baseline")).await;
    drop(bad);
    let mut good = t.runner_for(out.path(), &[], target);
    good.holder = Some(holder.id().to_string());
    let r2 = good.run(&builtin("baseline")).await;
    drop(good);
    t.finish();
    drop(holder);
    let f = r1.failures();
    let (_, msg) = f
        .iter()
        .find(|(c, _)| c == "the WireGuard handshake completes")
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(
        msg.contains("container exit status: 2") && msg.contains("WIREGUARD_PRIVATE_KEY"),
        "{msg}"
    );
    assert!(!msg.contains("not-a-key"), "a key is never echoed: {msg}");
    assert!(r2.passed(), "{:#?}", r2.failures());
}

#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn an_image_that_does_not_exist_stops_the_run_before_any_scenario() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "run",
            "--quiet",
            "--only",
            "baseline",
            "--target",
            "container",
            "--image",
            "no/such-gateway:never",
            "--out",
        ])
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no/such-gateway:never") && err.contains("is not on this machine"),
        "{err}"
    );
    assert!(!out.path().join("junit.xml").exists());
}

/// A run SIGKILLed while its holder and gateway containers are up leaves
/// containers and namespaces behind; the next `reap` removes them all.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn a_killed_run_with_containers_up_is_reaped() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "run",
            "--only",
            "killswitch-tunnel-down",
            "--target",
            "container",
            "--image",
            image(),
            "--capability",
            "leakhound-variables",
            "--capability",
            "control-server",
            "--out",
        ])
        .arg(out.path())
        .env("LEAKHOUND_HOLDER_IMAGE", image())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Its run id, from its first line ("leakhound run ID: building the lab").
    // (The pipe stays open until the run is killed: a closed one would fail
    // its next message.)
    let mut err = std::io::BufReader::new(run.stderr.take().unwrap());
    // Lines about reaping may come first.
    let run_id = loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0);
        if let Some(id) = line
            .strip_prefix("leakhound run ")
            .and_then(|r| r.split(':').next())
        {
            break id.to_string();
        }
    };
    // Wait until its gateway container runs in the lab.
    let t = Instant::now();
    while containers_of(&run_id).len() < 2 || common::ours(&run_id).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the run's containers never appeared"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    run.kill().unwrap();
    run.wait().unwrap();
    drop(err);
    assert!(!containers_of(&run_id).is_empty());
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .arg("reap")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{said}");
    assert!(
        containers_of(&run_id).is_empty(),
        "left: {:?}; reap said: {said}",
        containers_of(&run_id)
    );
    assert!(
        common::ours(&run_id).is_empty(),
        "left: {:?}",
        common::ours(&run_id)
    );
}

/// docker/compose.yml, the user's deployment as Compose sees it: valid, and
/// it names a missing secret instead of starting without it.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn the_compose_file_is_valid_and_requires_its_secrets() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/compose.yml");
    let vars = [
        ("WG_PRIVATE_KEY", "x"),
        ("WG_ADDRESS", "10.64.0.2/32"),
        ("WG_PUBLIC_KEY", "y"),
        ("VPN_IP", "203.0.113.10"),
        ("VPN_PROVIDER_DNS", "10.64.0.1"),
    ];
    let o = Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .arg("config")
        .envs(vars)
        .output()
        .expect("docker-compose (the Compose tool) is not installed");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "network_mode: service:gateway",
        "NET_ADMIN",
        "/dev/net/tun",
        "condition: service_healthy",
        "172.21.0.2",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let o = Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .arg("config")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("WG_PRIVATE_KEY"));
}

/// Two runs with container targets at once: each has its own holder and
/// gateway containers and lab, both pass, and neither leaves a container.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn two_container_runs_at_once_both_pass() {
    common::require_root();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = |out: &Path| {
        Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .args([
                "run",
                "--only",
                "baseline",
                "--only",
                "killswitch-gateway-crash",
                "--target",
                "container",
                "--image",
                image(),
                "--capability",
                "leakhound-variables",
                "--capability",
                "control-server",
                "--out",
            ])
            .arg(out)
            .env("LEAKHOUND_HOLDER_IMAGE", image())
            .output()
            .unwrap()
    };
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| run(a.path()));
        let hb = s.spawn(|| run(b.path()));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    for r in [&ra, &rb] {
        assert_eq!(
            r.status.code(),
            Some(0),
            "{}\n{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        let err = String::from_utf8_lossy(&r.stderr);
        let id = err
            .lines()
            .find_map(|l| l.strip_prefix("leakhound run "))
            .and_then(|r| r.split(':').next())
            .expect("a run id");
        assert_eq!(containers_of(id), Vec::<String>::new());
        assert_eq!(common::ours(id), Vec::<String>::new());
    }
}

/// The `gluetun` preset, with leakhound's own image playing Gluetun's part
/// (Gluetun's image cannot be pulled here): the preset's variables reach the
/// gateway (a plain upstream at the provider's resolver, health targets at
/// whoami's port 80, which Gluetun only connects to: TLS is for 443), its
/// capabilities are the preset's and the declared ones (the image's label,
/// which says more, is not read), and the scenarios needing more are
/// skipped naming what is missing. leakhound-variables is declared because
/// leakhound's gateway opens LAN ports only by its own
/// FIREWALL_INPUT_SUBNET_PORTS, where Gluetun accepts its own network.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn the_gluetun_preset_keeps_the_image_in_the_lab_and_skips_what_it_lacks() {
    common::require_root();
    let out = tempfile::tempdir().unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "run",
            "--only",
            "baseline",
            "--only",
            "health",
            "--only",
            "dns-over-tls",
            "--only",
            "key-rotation",
            "--target",
            "gluetun",
            "--image",
            image(),
            "--capability",
            "leakhound-variables",
            "--out",
        ])
        .arg(out.path())
        .env("LEAKHOUND_HOLDER_IMAGE", image())
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(r.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS baseline"), "{text}");
    assert!(text.contains("PASS health"), "{text}");
    for (skipped, lacks) in [
        ("dns-over-tls", "dot-ca-file"),
        ("key-rotation", "key-rotation"),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("SKIP {skipped}"))),
            "{skipped} not skipped: {text}"
        );
        assert!(
            text.contains(&format!("target gluetun (gluetun) lacks {lacks}")),
            "{text}"
        );
    }
    let log = std::fs::read_to_string(out.path().join("baseline-gateway.log")).unwrap();
    assert!(log.contains("plain DNS to 10.64.0.1:53"), "{log}");
    let summary = std::fs::read_to_string(out.path().join("summary.json")).unwrap();
    assert!(summary.contains("\"kind\": \"gluetun\""), "{summary}");
}

/// `audit --container ID` enters a running container's namespace (through
/// its main process), not the host's, and leaves the container running.
#[test]
fn an_audit_attaches_to_a_running_container() {
    common::require_root();
    let image = image();
    let out = Command::new("docker")
        .args(["run", "-d", "--rm", "--network", "none", image, "hold"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _gone = Gone(id.clone());
    let dir = tempfile::tempdir().unwrap();
    // A container without a network has loopback only: the LAN matrix
    // there is a port on loopback nobody listens on (refused: reached), and
    // an address nothing routes to (blocked).
    let profile = dir.path().join("p.toml");
    std::fs::write(
        &profile,
        "name = \"c\"\n[[lan]]\ntarget = \"127.0.0.1:9\"\nexpect = \"reachable\"\n[[lan]]\ntarget = \"192.0.2.1:80\"\nexpect = \"blocked\"\n[capture]\ninterface = \"lo\"\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "audit",
            "--container",
            &id,
            "--allow-skip",
            "no-leak",
            "--profile",
        ])
        .arg(&profile)
        .arg("--out")
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("container {id}")), "{t}");
    // Nothing routes anywhere from a container without a network.
    assert!(t.contains("PASS  lan 192.0.2.1:80"), "{t}");
    assert!(t.contains("Network is unreachable"), "{t}");
    assert!(t.contains("SKIP  no-leak"), "{t}");
    let running = Command::new("docker")
        .args(["inspect", "--format", "{{.State.Running}}", &id])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "true");
}

/// Another leakhound's container (another CI job on the same Docker engine:
/// the same machine, another PID namespace) is never touched, even when it
/// carries a dead run's labels and that run's records name it; our own
/// identity's recorded container of the same dead run is removed.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn a_container_of_another_identity_survives_reaping() {
    use leakhound::lab::owned::{self, Identity, Record};
    use leakhound::target::container::{BOOT_LABEL, OWNER_LABEL};
    common::require_root();
    let img = image();
    let dead = leakhound::lab::new_run_id();
    let lock = leakhound::lab::netns::RunLock::acquire(&dead).unwrap();
    let me = Identity::current();
    let other = format!("{}-other-job", me.as_str());
    let boot = owned::boot_id();
    let theirs = format!("lh-{dead}-theirs");
    let mine = format!("lh-{dead}-mine");
    let start = |name: &str, owner: &str| {
        owned::record(
            &dead,
            &Record::Container {
                name: name.to_string(),
            },
        )
        .unwrap();
        let o = Command::new("docker")
            .args(["run", "-d", "--network", "none", "--name", name])
            .arg("--label")
            .arg(format!("{RUN_LABEL}={dead}"))
            .arg("--label")
            .arg(format!("{OWNER_LABEL}={owner}"))
            .arg("--label")
            .arg(format!("{BOOT_LABEL}={boot}"))
            .args([img, "hold"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    start(&theirs, &other);
    start(&mine, me.as_str());
    // The run is killed: lock released, records left.
    lock.abandon();
    let o = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .arg("reap")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    let left = containers_of(&dead);
    let _ = Command::new("docker")
        .args(["rm", "-f", &theirs, &mine])
        .output();
    assert!(o.status.success(), "{said}");
    assert!(
        left.contains(&theirs),
        "another identity's container went: {said}"
    );
    assert!(
        !left.contains(&mine),
        "our recorded container stayed: {said}"
    );
}

/// The image docker/build.sh makes carries every file the gateway reads at
/// start with the seed's configuration (the blocklists of BLOCK_MALICIOUS
/// and friends: without them the gateway refuses to start), busybox's
/// notice, and a capabilities label the container target understands.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn the_image_holds_what_the_gateway_reads_at_start() {
    let img = image();
    let files = image_files(img);
    for f in [
        "etc/leakhound/blocklists/malicious.txt",
        "etc/leakhound/blocklists/surveillance.txt",
        "etc/leakhound/blocklists/ads.txt",
        "usr/share/doc/busybox/copyright",
        "usr/share/doc/busybox/SOURCE",
        "usr/share/doc/leakhound/LICENSE",
        "leakhound-gateway",
    ] {
        assert!(files.lines().any(|l| l == f), "{f} is not in {img}");
    }
    let label = Command::new("docker")
        .args([
            "image",
            "inspect",
            img,
            "--format",
            "{{index .Config.Labels \"leakhound.capabilities\"}}",
        ])
        .output()
        .unwrap();
    let caps = leakhound::target::container::parse_capabilities_label(
        String::from_utf8_lossy(&label.stdout).trim(),
    )
    .unwrap();
    assert!(caps.contains(&Capability::ControlServer), "{caps:?}");
}

/// The paths in image `img`'s file system.
fn image_files(img: &str) -> String {
    let created = Command::new("docker")
        .args(["create", img])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", common::printed(&created));
    let id = String::from_utf8_lossy(&created.stdout).trim().to_string();
    let export = Command::new("sh")
        .arg("-c")
        .arg(format!("docker export {id} | tar -t"))
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rm", &id]).output();
    String::from_utf8_lossy(&export.stdout).into_owned()
}

/// The audit image docker/build.sh --audit makes runs the Kubernetes
/// sidecar's command as written (its arguments and capabilities from the
/// template; the lab's profile and temporary folders mounted where the
/// template mounts its own) in a container sharing a live lab gateway's
/// network (`--network container:` the lab's holder), writes its metrics
/// after the first audit, and ends with status 0 on SIGTERM, as when its
/// pod stops. The image is packed from this build's binary (--from), as
/// the gateway image of these tests is.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn the_audit_image_runs_the_sidecars_command_against_a_live_gateway() {
    sidecar_against_a_live_gateway("", "--audit", "leakhound/leakhound:local");
}

/// The same for the template's prove variant (ci/kubernetes/prove): the
/// image of `docker/build.sh --audit-prove` reads the live gateway's
/// ruleset with its own nft, with the capabilities the variant grants, and
/// its `prove` check passes with a proof. The GPL programs it carries come
/// with their copyright notices and the source packages they were built
/// from.
#[test]
#[cfg_attr(
    not(docker_engine),
    ignore = "no Docker engine on this machine (/var/run/docker.sock)"
)]
fn the_prove_image_runs_the_prove_variants_command_against_a_live_gateway() {
    let junit =
        sidecar_against_a_live_gateway("prove", "--audit-prove", "leakhound/leakhound:prove");
    let case = junit
        .split("<testcase")
        .find(|c| c.contains("name=\"prove\""))
        .unwrap_or_else(|| panic!("no prove check: {junit}"));
    let case = case.split("</testcase>").next().unwrap();
    assert!(
        !case.contains("<failure") && !case.contains("<error") && !case.contains("<skipped"),
        "{case}"
    );
    assert!(case.contains("PROOF"), "{case}");
    let files = image_files("leakhound/leakhound:prove-test");
    for f in [
        "usr/sbin/nft",
        "usr/sbin/ip",
        "usr/sbin/conntrack",
        "usr/share/doc/nftables/copyright",
        "usr/share/doc/nftables/SOURCE",
        "usr/share/doc/iproute2/copyright",
        "usr/share/doc/conntrack/SOURCE",
        "usr/share/doc/iptables/copyright",
    ] {
        assert!(
            files.lines().any(|l| l == f),
            "{f} is not in the prove image"
        );
    }
}

/// Runs the leakhound container of ci/kubernetes/`overlay`'s manifest (its
/// image `expected`, built with `build_flag`) beside a live lab gateway;
/// its junit.xml.
fn sidecar_against_a_live_gateway(overlay: &str, build_flag: &str, expected: &str) -> String {
    common::require_root();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let audit_image = format!("{expected}-test");
    let built = Command::new("bash")
        .arg(root.join("docker/build.sh"))
        .args([
            build_flag,
            "--from",
            env!("CARGO_BIN_EXE_leakhound"),
            &audit_image,
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", common::printed(&built));
    // The sidecar's arguments and capabilities, as the template writes them.
    let c = crate::ci_templates::sidecar(&root.join("ci/kubernetes").join(overlay));
    assert_eq!(c["image"], expected);
    let strings = |v: &serde_yaml_ng::Value| {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let args = strings(&c["args"]);
    let caps = strings(&c["securityContext"]["capabilities"]["add"]);
    // A live lab whose gateway runs in a container (its holder's network).
    let lab = Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args(["lab", "up", "--target", "container", "--image", image()])
        .args([
            "--capability",
            "leakhound-variables",
            "--capability",
            "control-server",
        ])
        .env("LEAKHOUND_HOLDER_IMAGE", image())
        .output()
        .unwrap();
    assert!(lab.status.success(), "{}", common::printed(&lab));
    let said = String::from_utf8_lossy(&lab.stdout).to_string();
    let id = said.split_whitespace().nth(1).unwrap().to_string();
    let down = || {
        Command::new(env!("CARGO_BIN_EXE_leakhound"))
            .args(["lab", "down", &id])
            .output()
            .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("metrics")).unwrap();
    std::fs::create_dir_all(dir.path().join("reports")).unwrap();
    let name = format!("lh-{id}-sidecar-test");
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &name])
        .arg("--network")
        .arg(format!("container:lh-{id}-holder"))
        .args(caps.iter().flat_map(|c| ["--cap-add", c.as_str()]))
        .arg("-v")
        .arg(format!(
            "{}:/etc/leakhound/audit.toml:ro",
            root.join("docs/examples/audit/lab.toml").display()
        ))
        .arg("-v")
        .arg(format!("{}:/metrics", dir.path().join("metrics").display()))
        .arg("-v")
        .arg(format!(
            "{}:/var/lib/leakhound",
            dir.path().join("reports").display()
        ))
        .arg(&audit_image)
        .args(&args)
        .output()
        .unwrap();
    let cleanup = |down_too: bool| {
        let _ = Command::new("docker").args(["rm", "-f", &name]).output();
        if down_too {
            down();
        }
    };
    if !run.status.success() {
        cleanup(true);
        panic!("{}", common::printed(&run));
    }
    let prom = dir.path().join("metrics/leakhound-audit.prom");
    let t = Instant::now();
    while !prom.exists() && t.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("docker")
        .args(["kill", "--signal", "TERM", &name])
        .output();
    let waited = Command::new("docker")
        .args(["wait", &name])
        .output()
        .unwrap();
    let logs = Command::new("docker")
        .args(["logs", &name])
        .output()
        .unwrap();
    cleanup(true);
    let code = String::from_utf8_lossy(&waited.stdout).trim().to_string();
    let metrics = std::fs::read_to_string(&prom).unwrap_or_default();
    assert!(
        metrics.lines().any(|l| l == "leakhound_run_success 1"),
        "no successful audit: {metrics}\n{}",
        common::printed(&logs)
    );
    assert_eq!(code, "0", "{}", common::printed(&logs));
    std::fs::read_to_string(dir.path().join("reports/audit/junit.xml")).unwrap_or_default()
}
