//! A gateway image run as a container (testcontainers, on this machine's
//! Docker engine; nothing is ever pulled: images must exist locally).
//!
//! The lab's gateway host is the network namespace of a small *holder*
//! container started first with `--network none` (leakhound's own image
//! running `leakhound-gateway hold`, as Kubernetes' pause container does);
//! the lab adopts that namespace and builds its links into it, from inside
//! the lab, never through the host's namespace. Every gateway container
//! then joins it (`--network container:<holder>`), with NET_ADMIN,
//! /dev/net/tun, the scenario's variables, the run's files bound at their
//! own paths and the run's resolv.conf on /etc/resolv.conf: what
//! `network_mode: service:gluetun` gives a user's dependents, which run in
//! the same namespace here. Every container of a run is recorded in the
//! run's records (by name, before it is created) and carries the labels
//! `leakhound.run=<id>`, `leakhound.owner=<identity>` (this machine and
//! leakhound's PID namespace) and `leakhound.boot=<boot id>`; the run
//! removes them, and a later run of the same identity removes those a
//! killed run recorded. A container of another identity (another CI job on
//! the same Docker engine) is never touched.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use tokio::sync::watch;

use super::{GatewayEnd, GatewayHandle, GatewayTarget, StartContext, TargetError, TargetKind};
use crate::model::scenario::Capability;

/// The label every container of a run carries (its value: the run id).
pub const RUN_LABEL: &str = "leakhound.run";
/// Who made it ([`owned::Identity`]).
pub const OWNER_LABEL: &str = "leakhound.owner";
/// The boot it was made in.
pub const BOOT_LABEL: &str = "leakhound.boot";

use crate::lab::owned;

/// What went wrong with Docker, an image or a container.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("no Docker engine")]
    NoEngine(#[source] bollard::errors::Error),
    #[error("the Docker engine does not answer")]
    NoAnswer(#[source] bollard::errors::Error),
    #[error(
        "image {image} is not on this machine; nothing is pulled: build or load it first (our own: bash docker/build.sh)"
    )]
    NoImage {
        image: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("inspecting container {id}")]
    Inspect {
        id: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("container {id} has no running process")]
    NoProcess { id: String },
    #[error(
        "container {id}'s process ({pid} to the engine) is not that container's here: leakhound runs in another PID namespace than the Docker engine (a container sharing its socket) or the engine is remote; container targets need leakhound on the engine's own host"
    )]
    ForeignPid { id: String, pid: i32 },
    #[error("recording container {name} in run {run_id}'s records")]
    Record {
        name: String,
        run_id: String,
        #[source]
        source: std::io::Error,
    },
    #[error("label {CAPABILITIES_LABEL}")]
    Label(#[source] crate::model::scenario::UnknownCapability),
    #[error("starting the holder ({image})")]
    StartHolder {
        image: String,
        #[source]
        source: testcontainers::TestcontainersError,
    },
    #[error("starting image {image}")]
    StartImage {
        image: String,
        #[source]
        source: testcontainers::TestcontainersError,
    },
    #[error("no holder container: the lab was not built for a container target")]
    NoHolder,
}

/// Records container `name` for run `run_id` (before it is created) and
/// returns the labels it must carry.
fn claim_container(
    run_id: &str,
    name: &str,
) -> Result<Vec<(&'static str, String)>, ContainerError> {
    owned::record(
        run_id,
        &owned::Record::Container {
            name: name.to_string(),
        },
    )
    .map_err(|source| ContainerError::Record {
        name: name.to_string(),
        run_id: run_id.to_string(),
        source,
    })?;
    Ok(vec![
        (RUN_LABEL, run_id.to_string()),
        (OWNER_LABEL, owned::Identity::current().as_str().to_string()),
        (BOOT_LABEL, owned::boot_id()),
    ])
}

/// The image whose `leakhound-gateway hold` holds the lab's gateway
/// namespace (built by docker/build.sh); `LEAKHOUND_HOLDER_IMAGE` names
/// another.
pub fn holder_image() -> String {
    std::env::var("LEAKHOUND_HOLDER_IMAGE").unwrap_or_else(|_| "leakhound/gateway:local".into())
}

/// `repo[:tag]` split as Docker reads it (a registry's port is not a tag).
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

fn docker() -> Result<Docker, ContainerError> {
    Docker::connect_with_local_defaults().map_err(ContainerError::NoEngine)
}

/// Is a Docker engine answering? (Tests skip container work, visibly,
/// when none does.)
pub async fn engine_answers() -> Result<(), ContainerError> {
    let d = docker()?;
    d.ping().await.map(|_| ()).map_err(ContainerError::NoAnswer)
}

/// Does `image` exist locally?
pub async fn image_exists(image: &str) -> Result<(), ContainerError> {
    let d = docker()?;
    d.inspect_image(image)
        .await
        .map(|_| ())
        .map_err(|source| ContainerError::NoImage {
            image: image.to_string(),
            source,
        })
}

/// The process of container `id`, as this machine's /proc shows it. The
/// engine gives a PID in its own PID namespace: where leakhound runs in
/// another one (a CI job in a container sharing the engine) or the engine
/// is remote, that number names some other process here, whose namespace
/// leakhound would then adopt and later empty. So the PID counts only if
/// that process's cgroup names the container.
async fn pid_of(d: &Docker, id: &str) -> Result<i32, ContainerError> {
    let info = d
        .inspect_container(id, None)
        .await
        .map_err(|source| ContainerError::Inspect {
            id: id.to_string(),
            source,
        })?;
    let full = info.id.clone().unwrap_or_else(|| id.to_string());
    let pid = info
        .state
        .and_then(|s| s.pid)
        .filter(|p| *p > 0)
        .map(|p| p as i32)
        .ok_or_else(|| ContainerError::NoProcess { id: id.to_string() })?;
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    if !cgroup_names_container(&cgroup, &full) {
        return Err(ContainerError::ForeignPid {
            id: id.to_string(),
            pid,
        });
    }
    Ok(pid)
}

/// Does a /proc/PID/cgroup text place the process in container `id` (its
/// full 64-hex id in a cgroup path, as Docker names them)?
pub fn cgroup_names_container(cgroup: &str, id: &str) -> bool {
    id.len() == 64
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && cgroup
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .any(|path| path.split('/').any(|part| part.contains(id)))
}

/// The container holding the lab's gateway namespace.
pub struct Holder {
    container: ContainerAsync<GenericImage>,
    /// Its process: the lab adopts its network namespace.
    pub pid: i32,
}

impl Holder {
    /// Starts the holder for run `run_id` from `image` (one that runs
    /// `hold`: leakhound's own).
    pub async fn start(run_id: &str, image: &str) -> Result<Holder, TargetError> {
        let image = image.to_string();
        let fail = |e: ContainerError| TargetError::unusable("container holder", e);
        image_exists(&image).await.map_err(fail)?;
        let (repo, tag) = split_image(&image);
        let name = format!("lh-{run_id}-holder");
        let labels = claim_container(run_id, &name).map_err(fail)?;
        let container = GenericImage::new(repo, tag)
            .with_wait_for(WaitFor::Nothing)
            .with_cmd(["hold"])
            .with_container_name(name)
            .with_labels(labels)
            .with_host_config_modifier(|hc| {
                hc.network_mode = Some("none".into());
                hc.publish_all_ports = None;
                hc.port_bindings = None;
            })
            .start()
            .await
            .map_err(|source| {
                fail(ContainerError::StartHolder {
                    image: image.clone(),
                    source,
                })
            })?;
        let d = docker().map_err(fail)?;
        let pid = pid_of(&d, container.id()).await.map_err(fail)?;
        Ok(Holder { container, pid })
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }
}

/// Removes the containers of dead runs that this leakhound's identity made
/// and the run recorded (`recorded`: `(run id, container name)` pairs from
/// [`crate::lab::netns::dead_runs_containers`], read before the namespace
/// reaper removes the records), and those of this identity made before this
/// boot. Anything else (another identity's, an unrecorded one, a live run's)
/// is left alone. Returns the names removed; an engine that does not answer
/// removes nothing.
pub async fn reap_stale(recorded: &[(String, String)]) -> Vec<String> {
    let Ok(d) = docker() else {
        return Vec::new();
    };
    let filters = HashMap::from([("label", vec![RUN_LABEL])]);
    let opts = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let Ok(list) = d.list_containers(Some(opts)).await else {
        return Vec::new();
    };
    let me = owned::Identity::current();
    let boot = owned::boot_id();
    let mut removed = Vec::new();
    for c in list {
        let label = |k: &str| c.labels.as_ref().and_then(|l| l.get(k)).cloned();
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first().cloned())
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let fate = owned::container_fate(
            label(OWNER_LABEL).as_deref(),
            label(RUN_LABEL).as_deref(),
            label(BOOT_LABEL).as_deref(),
            &me,
            &boot,
            crate::lab::netns::run_is_alive,
            |run| recorded.iter().any(|(r, n)| r == run && *n == name),
        );
        if fate != owned::ContainerFate::Remove {
            continue;
        }
        let Some(id) = c.id else { continue };
        let rm = RemoveContainerOptionsBuilder::new().force(true).build();
        if d.remove_container(&id, Some(rm)).await.is_ok() {
            removed.push(if name.is_empty() { id } else { name });
        }
    }
    removed
}

/// A container image under test.
#[derive(Debug)]
pub struct Container {
    name: String,
    image: String,
    holder: String,
    caps: BTreeSet<Capability>,
    /// What the image's `leakhound.capabilities` label says, read at
    /// preflight; used when no capability was given.
    label_caps: std::sync::OnceLock<BTreeSet<Capability>>,
    starts: AtomicU32,
    /// The `gluetun` preset: its capabilities are the preset's (the
    /// image's label is not read) and its variables go over every
    /// scenario's.
    gluetun: bool,
}

/// The image label that says what a gateway image can do: capability
/// names, comma-separated (see `leakhound actions`).
pub const CAPABILITIES_LABEL: &str = "leakhound.capabilities";

/// The capabilities a label's value names; unknown names are an error
/// naming them.
pub fn parse_capabilities_label(value: &str) -> Result<BTreeSet<Capability>, ContainerError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.parse::<Capability>().map_err(ContainerError::Label))
        .collect()
}

impl Container {
    pub fn new(name: &str, image: String, _exe: PathBuf, caps: BTreeSet<Capability>) -> Self {
        Container {
            name: name.to_string(),
            image,
            holder: holder_image(),
            caps,
            label_caps: std::sync::OnceLock::new(),
            starts: AtomicU32::new(0),
            gluetun: false,
        }
    }

    /// Gluetun's image with the `gluetun` preset ([`super::gluetun`]): the
    /// preset's capabilities and any declared beside them.
    pub fn gluetun(name: &str, image: String, exe: PathBuf, caps: BTreeSet<Capability>) -> Self {
        let mut caps = caps;
        caps.extend(super::gluetun::CAPABILITIES);
        Container {
            gluetun: true,
            ..Container::new(name, image, exe, caps)
        }
    }

    /// The holder's image, if not the default.
    pub fn with_holder_image(mut self, image: &str) -> Self {
        self.holder = image.to_string();
        self
    }
}

#[async_trait]
impl GatewayTarget for Container {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> TargetKind {
        if self.gluetun {
            TargetKind::Gluetun
        } else {
            TargetKind::Container
        }
    }
    fn preset_variables(&self) -> Vec<(&'static str, String)> {
        if !self.gluetun {
            return Vec::new();
        }
        super::gluetun::lab_variables()
            .into_iter()
            .map(|v| (v.name, v.value))
            .collect()
    }
    fn capabilities(&self) -> &BTreeSet<Capability> {
        if self.caps.is_empty() {
            self.label_caps.get().unwrap_or(&self.caps)
        } else {
            &self.caps
        }
    }
    fn describe(&self) -> String {
        format!("image {}", self.image)
    }
    fn holder_image(&self) -> Option<String> {
        Some(self.holder.clone())
    }
    async fn preflight(&self) -> Result<(), TargetError> {
        let fail = |e: ContainerError| TargetError::unusable(&self.name, e);
        engine_answers().await.map_err(fail)?;
        image_exists(&self.image).await.map_err(fail)?;
        image_exists(&self.holder).await.map_err(fail)?;
        if self.caps.is_empty() {
            // No --capability given: the image says what it can do.
            let d = docker().map_err(fail)?;
            let label = d
                .inspect_image(&self.image)
                .await
                .ok()
                .and_then(|i| i.config)
                .and_then(|c| c.labels)
                .and_then(|l| l.get(CAPABILITIES_LABEL).cloned());
            if let Some(value) = label {
                let caps = parse_capabilities_label(&value).map_err(fail)?;
                let _ = self.label_caps.set(caps);
            }
        }
        Ok(())
    }

    async fn start(&self, ctx: StartContext<'_>) -> Result<Box<dyn GatewayHandle>, TargetError> {
        let fail = |e: ContainerError| TargetError::unusable(&self.name, e);
        let Some(holder) = ctx.holder else {
            return Err(fail(ContainerError::NoHolder));
        };
        let run_id = ctx
            .run_dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let n = self.starts.fetch_add(1, Ordering::Relaxed);
        let (repo, tag) = split_image(&self.image);
        let run_dir = ctx.run_dir.display().to_string();
        let gateway_dir = owned::gateway_dir(&run_id).display().to_string();
        let network = format!("container:{holder}");
        let name = format!("lh-{run_id}-{}-{n}", self.name);
        let labels = claim_container(&run_id, &name).map_err(fail)?;
        let mut req = GenericImage::new(repo, tag)
            .with_wait_for(WaitFor::Nothing)
            .with_container_name(name)
            .with_labels(labels)
            .with_cap_add("NET_ADMIN")
            // The run's files read-only, but for the one folder a gateway
            // may write to: nothing else there can be swapped for a link
            // by the gateway under test (it is not trusted).
            .with_mount(
                Mount::bind_mount(run_dir.clone(), run_dir)
                    .with_access_mode(testcontainers::core::AccessMode::ReadOnly),
            )
            .with_mount(Mount::bind_mount(gateway_dir.clone(), gateway_dir))
            .with_mount(Mount::bind_mount(
                ctx.resolv_conf.display().to_string(),
                "/etc/resolv.conf",
            ))
            .with_host_config_modifier(move |hc| {
                hc.network_mode = Some(network.clone());
                hc.publish_all_ports = None;
                hc.port_bindings = None;
                hc.devices = Some(vec![bollard::models::DeviceMapping {
                    path_on_host: Some("/dev/net/tun".into()),
                    path_in_container: Some("/dev/net/tun".into()),
                    cgroup_permissions: Some("rwm".into()),
                }]);
            })
            .with_startup_timeout(Duration::from_secs(30));
        for (k, v) in &ctx.env {
            req = req.with_env_var(k, v);
        }
        let started = Instant::now();
        let container = req.start().await.map_err(|source| {
            fail(ContainerError::StartImage {
                image: self.image.clone(),
                source,
            })
        })?;
        let d = docker().map_err(fail)?;
        let id = container.id().to_string();
        let pid = pid_of(&d, &id).await.ok();
        // Its output, line by line, into the scenario's gateway log.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ctx.log)
            .map_err(|source| TargetError::Start {
                target: self.name.clone(),
                source,
            })?;
        let log = Arc::new(Mutex::new(log));
        let logs = {
            let d = d.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let opts = LogsOptionsBuilder::new()
                    .follow(true)
                    .stdout(true)
                    .stderr(true)
                    .build();
                let mut s = d.logs(&id, Some(opts));
                while let Some(Ok(out)) = s.next().await {
                    if let Ok(mut f) = log.lock() {
                        let _ = f.write_all(out.as_ref());
                    }
                }
            })
        };
        // Its end, as soon as the engine knows it.
        let (exit_tx, exit_rx) = watch::channel(None);
        {
            let d = d.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let mut w = d.wait_container(&id, None);
                let how = match w.next().await {
                    Some(Ok(r)) => GatewayEnd::ContainerExited(r.status_code),
                    Some(Err(bollard::errors::Error::DockerContainerWaitError {
                        code, ..
                    })) => GatewayEnd::ContainerExited(code),
                    Some(Err(e)) => GatewayEnd::ContainerLost(Arc::new(e)),
                    None => GatewayEnd::ContainerGone,
                };
                let _ = exit_tx.send(Some(how));
            });
        }
        Ok(Box::new(ContainerHandle {
            container: Some(container),
            docker: d,
            id,
            pid,
            started,
            exit: exit_rx,
            logs: Some(logs),
        }))
    }
}

/// A started gateway container.
pub struct ContainerHandle {
    container: Option<ContainerAsync<GenericImage>>,
    docker: Docker,
    id: String,
    pid: Option<i32>,
    started: Instant,
    exit: watch::Receiver<Option<GatewayEnd>>,
    logs: Option<tokio::task::JoinHandle<()>>,
}

impl ContainerHandle {
    async fn remove(&mut self) {
        if let Some(c) = self.container.take() {
            let _ = c.rm().await;
        }
    }
}

#[async_trait]
impl GatewayHandle for ContainerHandle {
    fn started(&self) -> Instant {
        self.started
    }

    fn try_exited(&mut self) -> Option<GatewayEnd> {
        self.exit.borrow().clone()
    }

    async fn exited(&mut self) -> GatewayEnd {
        match self.exit.wait_for(|e| e.is_some()).await {
            Ok(e) => e.clone().unwrap_or(GatewayEnd::ContainerGone),
            Err(_) => GatewayEnd::ContainerGone,
        }
    }

    async fn stop(mut self: Box<Self>) {
        if let Some(c) = &self.container {
            let _ = c.stop_with_timeout(Some(5)).await;
        }
        self.log_flushed().await;
        self.remove().await;
    }

    async fn kill(mut self: Box<Self>) {
        let opts = KillContainerOptionsBuilder::new().signal("SIGKILL").build();
        let _ = self.docker.kill_container(&self.id, Some(opts)).await;
        let _ = self.exited().await;
        self.log_flushed().await;
        self.remove().await;
    }

    async fn log_flushed(&mut self) {
        if self.try_exited().is_some()
            && let Some(t) = self.logs.take()
        {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }

    fn pid(&self) -> Option<nix::unistd::Pid> {
        self.pid.map(nix::unistd::Pid::from_raw)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_pid_counts_only_in_its_containers_cgroup() {
        let id = "eb6397f344ebc28c414341e2526fbe2c9a69c09c6be4f6bffd7156f435a4dee1";
        let v1 = format!("9:name=systemd:/docker/{id}\n0::/docker/{id}\n");
        let v2 = format!("0::/system.slice/docker-{id}.scope\n");
        assert!(cgroup_names_container(&v1, id));
        assert!(cgroup_names_container(&v2, id));
        // Another process (another namespace's PID 1234 here): not it.
        assert!(!cgroup_names_container(
            "0::/user.slice/session-3.scope\n",
            id
        ));
        assert!(!cgroup_names_container("0::/\n", id));
        assert!(!cgroup_names_container(&v1, "eb6397f344eb"));
        assert!(!cgroup_names_container("", id));
    }

    use super::*;

    #[test]
    fn image_references_split_like_docker() {
        assert_eq!(
            split_image("leakhound/gateway:local"),
            ("leakhound/gateway".into(), "local".into())
        );
        assert_eq!(split_image("gluetun"), ("gluetun".into(), "latest".into()));
        assert_eq!(
            split_image("registry:5000/my/gluetun"),
            ("registry:5000/my/gluetun".into(), "latest".into())
        );
        assert_eq!(
            split_image("registry:5000/my/gluetun:v3"),
            ("registry:5000/my/gluetun".into(), "v3".into())
        );
    }
}
