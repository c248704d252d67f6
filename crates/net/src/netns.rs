//! Network namespaces that leakhound creates: creating and naming them, running
//! code or processes inside them, removing them, reaping those of killed runs,
//! and the guard that refuses to act on the host's root namespace.
//!
//! A namespace is pinned the way `ip netns add` pins it (a bind mount of the
//! namespace file on `/run/netns/NAME`), so `ip netns list` shows it and any
//! later run can find and remove it. Code "enters" a namespace on a fresh
//! thread that calls `setns`; sockets created on that thread stay bound to the
//! namespace after the thread is gone, which is how in-process lab services and
//! probes live in the lab without the process itself ever leaving the host's
//! namespace.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::owned::{self, Record};
pub use crate::owned::{PREFIX, RUN_DIR, run_id_of};

/// Where pinned namespaces live (the same place as `ip netns`).
pub const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("creating network namespace {name}")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("opening network namespace {name}")]
    Open {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to act on network namespace {name}: it is the host's root namespace (or the one leakhound runs in)"
    )]
    HostNamespace { name: String },
    #[error("entering network namespace {name}")]
    Enter {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("removing network namespace {name}: {step} {}", path.display())]
    Remove {
        name: String,
        /// What failed: "unmounting", "unlinking"...
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "removing network namespace {name}: its pin {} is hidden under a later mount of {NETNS_DIR} (another tool's first `ip netns add` bind-mounts it onto itself) and could not be removed from beneath it; to remove it by hand: unshare --mount --propagation slave sh -c 'umount -l {NETNS_DIR}; umount -l {}; rm {}'",
        path.display(), path.display(), path.display()
    )]
    HiddenPin {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("making {NETNS_DIR} a shared mount of itself (as `ip netns add` does)")]
    NetnsDir(#[source] io::Error),
    #[error("writing sysctl {key} in namespace {name}")]
    Sysctl {
        name: String,
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("a thread working in namespace {name} panicked")]
    ThreadPanic { name: String },
    #[error(
        "refusing to make or remove network namespace {name}: not a name of leakhound's format lh-<run id>-<host>, or not recorded by run {id}"
    )]
    NotOurs { name: String, id: String },
    #[error("recording namespace {name} in its run's records")]
    Record {
        name: String,
        #[source]
        source: io::Error,
    },
}

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

use crate::owned::{INIT_NET_INO, forbidden_ns_inodes as forbidden_inodes};

/// True when this process runs in a PID namespace of its own (a
/// container), where PID 1 is the container's first process, not the
/// host's init: sharing its network namespace is what a sidecar does.
fn in_own_pid_namespace_of_a_container() -> bool {
    const INIT_PID_INO: u64 = 0xEFFF_FFFC;
    fs::metadata("/proc/self/ns/pid").is_ok_and(|m| m.ino() != INIT_PID_INO)
}

/// A network namespace made by leakhound (or, for `audit`, one it was
/// pointed at), held open by a file descriptor.
#[derive(Debug)]
pub struct Netns {
    name: String,
    file: File,
    /// Attached for an audit: may be the namespace this process runs in
    /// (`--netns self`); never pinned, reaped or removed by leakhound.
    attached: bool,
}

impl Netns {
    /// Creates and pins a new, empty namespace called `name`.
    pub fn create(name: &str) -> Result<Netns, NetnsError> {
        let err = |source| NetnsError::Create {
            name: name.to_string(),
            source,
        };
        // A thread of its own enters a new namespace and hands back a
        // descriptor of it (which keeps it alive); the thread then ends.
        let made = std::thread::spawn(move || -> io::Result<File> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(errno)?;
            File::open("/proc/thread-self/ns/net")
        })
        .join()
        .map_err(|_| NetnsError::ThreadPanic {
            name: name.to_string(),
        })?
        .map_err(err)?;
        Self::pin(name, made)
    }

    /// Pins the network namespace of process `pid` (a container leakhound
    /// started, whose namespace becomes a lab host) as `name`, the way
    /// [`Netns::create`] pins a new one. Refuses the host's namespace. The
    /// namespace is opened once, checked through that descriptor, and the
    /// pin is made from the same descriptor: a process that exits (and a
    /// PID that is reused) between the check and the mount cannot swap it.
    pub fn adopt(name: &str, pid: i32) -> Result<Netns, NetnsError> {
        let opened =
            File::open(format!("/proc/{pid}/ns/net")).map_err(|source| NetnsError::Create {
                name: name.to_string(),
                source,
            })?;
        let probe = Netns {
            name: name.to_string(),
            file: opened,
            attached: false,
        };
        probe.check_not_host()?;
        Self::pin(name, probe.file)
    }

    /// Pins the namespace `ns` (an open descriptor of it) as `name` under
    /// /run/netns, as `ip netns add` does: the directory made a shared
    /// mount of itself first, an empty file created, the namespace bind
    /// mounted onto it from the descriptor (the file is removed again if
    /// that fails), then it is opened and checked to be `ns`. `name` must
    /// be of leakhound's format for a run whose folder exists (a claimed
    /// run). The namespace is recorded, with its inode, before its file is
    /// made: a run killed at any point leaves nothing under that name that
    /// its records do not name (a bare file is removed by the reaper, a
    /// pin only if it holds the recorded namespace). A name already taken
    /// is refused before anything is recorded.
    fn pin(name: &str, ns: File) -> Result<Netns, NetnsError> {
        let Some(id) = run_id_of(name) else {
            return Err(NetnsError::NotOurs {
                name: name.to_string(),
                id: String::new(),
            });
        };
        let create_err = |source| NetnsError::Create {
            name: name.to_string(),
            source,
        };
        let ino = ns.metadata().map_err(create_err)?.ino();
        share_netns_dir().map_err(NetnsError::NetnsDir)?;
        let path = Path::new(NETNS_DIR).join(name);
        if fs::symlink_metadata(&path).is_ok() {
            return Err(create_err(io::Error::from(io::ErrorKind::AlreadyExists)));
        }
        owned::record(
            id,
            &Record::Netns {
                name: name.to_string(),
                ino: Some(ino),
            },
        )
        .map_err(|source| NetnsError::Record {
            name: name.to_string(),
            source,
        })?;
        File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(create_err)?;
        let via = PathBuf::from(format!("/proc/self/fd/{}", ns.as_raw_fd()));
        if let Err(e) = mount(
            Some(&via),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            let _ = fs::remove_file(&path);
            return Err(create_err(errno(e)));
        }
        let pinned = Self::open(name)?;
        let found = pinned.inode().map_err(|source| NetnsError::Open {
            name: name.to_string(),
            source,
        })?;
        if found != ino {
            return Err(NetnsError::NotOurs {
                name: name.to_string(),
                id: id.to_string(),
            });
        }
        Ok(pinned)
    }

    /// Opens an existing pinned namespace, refusing the host's own (and a
    /// link in /run/netns: the pin itself is opened, never what it names).
    pub fn open(name: &str) -> Result<Netns, NetnsError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = Path::new(NETNS_DIR).join(name);
        let file = File::options()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| NetnsError::Open {
                name: name.to_string(),
                source,
            })?;
        let ns = Netns {
            name: name.to_string(),
            file,
            attached: false,
        };
        ns.check_not_host()?;
        Ok(ns)
    }

    /// Opens somebody else's namespace for an audit, from a namespace file
    /// (`/run/netns/NAME`, `/proc/PID/ns/net`), labelled `label` in messages.
    /// Nothing is pinned: dropping the handle is all there is to undo, and
    /// leakhound's removal works on names it pinned, never on this. The
    /// namespace this process runs in is accepted (`--netns self`, a sidecar
    /// sharing the gateway's network); the host's initial one never is.
    pub fn attach(label: &str, path: &Path) -> Result<Netns, NetnsError> {
        let file = File::open(path).map_err(|source| NetnsError::Open {
            name: label.to_string(),
            source,
        })?;
        let ns = Netns {
            name: label.to_string(),
            file,
            attached: true,
        };
        ns.check_not_host()?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A second handle on the same namespace (for work moved to another
    /// thread or task).
    pub fn try_clone(&self) -> Result<Netns, NetnsError> {
        let file = self.file.try_clone().map_err(|source| NetnsError::Open {
            name: self.name.clone(),
            source,
        })?;
        Ok(Netns {
            name: self.name.clone(),
            file,
            attached: self.attached,
        })
    }

    pub fn inode(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.ino())
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The guard: every entry into a namespace goes through this check.
    fn check_not_host(&self) -> Result<(), NetnsError> {
        let ino = self.inode().map_err(|source| NetnsError::Open {
            name: self.name.clone(),
            source,
        })?;
        // A file that is not a namespace (an unmounted placeholder) is refused too:
        // its inode lives on tmpfs, not nsfs.
        let is_nsfs = nix::sys::statfs::fstatfs(&self.file)
            .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
            .unwrap_or(false);
        let forbidden = if self.attached {
            // An audit may look at the namespace it runs in, never at the
            // host's initial one.
            let pid1 = fs::metadata("/proc/1/ns/net").ok().map(|m| m.ino());
            ino == INIT_NET_INO || pid1 == Some(ino) && !in_own_pid_namespace_of_a_container()
        } else {
            ino == INIT_NET_INO || forbidden_inodes().contains(&ino)
        };
        if !is_nsfs || forbidden {
            return Err(NetnsError::HostNamespace {
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    /// Runs `f` on a new thread that has entered this namespace. Sockets and
    /// TUN devices created by `f` belong to the namespace.
    pub fn run<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        self.check_not_host()?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                    NetnsError::Enter {
                        name: self.name.clone(),
                        source: errno(e),
                    }
                })?;
                Ok(f())
            })
            .join()
            .map_err(|_| NetnsError::ThreadPanic {
                name: self.name.clone(),
            })?
        })
    }

    /// Spawns a long-lived thread that enters this namespace and runs `f`
    /// (capture loops live on such threads).
    pub fn spawn<T, F>(
        &self,
        f: F,
    ) -> Result<std::thread::JoinHandle<Result<T, NetnsError>>, NetnsError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.check_not_host()?;
        let file = self.file.try_clone().map_err(|source| NetnsError::Enter {
            name: self.name.clone(),
            source,
        })?;
        let name = self.name.clone();
        Ok(std::thread::spawn(move || {
            setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| NetnsError::Enter {
                name,
                source: errno(e),
            })?;
            drop(file);
            Ok(f())
        }))
    }

    /// Writes a sysctl under /proc/sys inside this namespace (e.g.
    /// `net/ipv4/ip_forward`). Only per-namespace `net/` keys are accepted.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        let err = |source| NetnsError::Sysctl {
            name: self.name.clone(),
            key: key.to_string(),
            source,
        };
        if !key.starts_with("net/") || key.contains("..") {
            return Err(err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only per-namespace net/ sysctls may be written",
            )));
        }
        let path = PathBuf::from("/proc/sys").join(key);
        self.run(move || fs::write(&path, value))?.map_err(err)
    }

    /// Like [`Netns::command`], and the process also gets a private mount
    /// namespace in which `resolv_conf` is bind-mounted over
    /// /etc/resolv.conf (what `ip netns exec` does with /etc/netns/NAME), so
    /// a gateway writing its resolv.conf writes the lab's file, never the
    /// host's.
    pub fn command_with_resolv_conf(
        &self,
        cmd: &mut Command,
        resolv_conf: &Path,
    ) -> Result<(), NetnsError> {
        self.command_with_binds(cmd, &[(resolv_conf.into(), "/etc/resolv.conf".into())])
    }

    /// Like [`Netns::command`], and the process also gets a private mount
    /// namespace (a slave of the host's: nothing it mounts goes back) in
    /// which each `(source, target)` is bind-mounted over `target`, which
    /// must exist. Files and directories of the lab's run stand in for the
    /// host's without changing them.
    pub fn command_with_binds(
        &self,
        cmd: &mut Command,
        binds: &[(PathBuf, PathBuf)],
    ) -> Result<(), NetnsError> {
        self.command(cmd)?;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| {
                NetnsError::Enter {
                    name: self.name.clone(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} contains NUL", p.display()),
                    ),
                }
            })
        };
        let pairs = binds
            .iter()
            .map(|(s, t)| Ok((c(s)?, c(t)?)))
            .collect::<Result<Vec<_>, NetnsError>>()?;
        // SAFETY: only syscalls (unshare, mount) between fork and exec; the
        // paths were allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                unshare(CloneFlags::CLONE_NEWNS).map_err(errno)?;
                mount(
                    None::<&std::ffi::CStr>,
                    c"/",
                    None::<&std::ffi::CStr>,
                    MsFlags::MS_REC | MsFlags::MS_SLAVE,
                    None::<&std::ffi::CStr>,
                )
                .map_err(errno)?;
                for (src, dst) in &pairs {
                    mount(
                        Some(src.as_c_str()),
                        dst.as_c_str(),
                        None::<&std::ffi::CStr>,
                        MsFlags::MS_BIND,
                        None::<&std::ffi::CStr>,
                    )
                    .map_err(errno)?;
                }
                Ok(())
            });
        }
        Ok(())
    }

    /// Like [`Netns::command_with_resolv_conf`], and the process also gets
    /// a fresh tmpfs on /run (so per-run sockets and state, e.g.
    /// wireguard-go's /run/wireguard, never meet another run's), with the
    /// directories in `keep` (under /run) bound back at their own paths,
    /// and `resolv_conf` on /etc/resolv.conf. For gateways leakhound did
    /// not write.
    pub fn command_with_private_run(
        &self,
        cmd: &mut Command,
        resolv_conf: &Path,
        keep: &[&Path],
    ) -> Result<(), NetnsError> {
        use std::ffi::CString;
        self.command(cmd)?;
        let bad = |what: &str| NetnsError::Enter {
            name: self.name.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, what.to_string()),
        };
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| bad("a path contains NUL"))
        };
        // Everything the child needs is made before the fork. Each kept
        // directory is opened in the child after it has its own mount
        // namespace (a bind source must be in the caller's namespace) and
        // moved to a fixed descriptor, so its /proc/self/fd path is known
        // here.
        let mut binds: Vec<(CString, CString, Vec<CString>)> = Vec::new();
        for (i, k) in keep.iter().enumerate() {
            let fixed = 900 + i as i32;
            let via = CString::new(format!("/proc/self/fd/{fixed}")).expect("no NUL");
            binds.push((
                c(k)?,
                via,
                prefixes(k).iter().map(|p| c(p)).collect::<Result<_, _>>()?,
            ));
        }
        let resolv_src = c(resolv_conf)?;
        let etc = fs::canonicalize("/etc/resolv.conf")
            .unwrap_or_else(|_| PathBuf::from("/etc/resolv.conf"));
        let resolv_dst = c(&etc)?;
        let resolv_dirs: Vec<CString> = if etc.starts_with("/run") {
            prefixes(etc.parent().unwrap_or(Path::new("/run")))
                .iter()
                .map(|p| c(p))
                .collect::<Result<_, _>>()?
        } else {
            Vec::new()
        };
        let needs_file = etc.starts_with("/run");
        // SAFETY: only system calls (unshare, mount, mkdir, open, close)
        // between fork and exec, on data allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                use nix::fcntl::{OFlag, open};
                use nix::sys::stat::Mode;
                unshare(CloneFlags::CLONE_NEWNS).map_err(errno)?;
                mount(
                    None::<&std::ffi::CStr>,
                    c"/",
                    None::<&std::ffi::CStr>,
                    MsFlags::MS_REC | MsFlags::MS_SLAVE,
                    None::<&std::ffi::CStr>,
                )
                .map_err(errno)?;
                for (i, (path, _, _)) in binds.iter().enumerate() {
                    let fd = open(
                        path.as_c_str(),
                        OFlag::O_PATH | OFlag::O_DIRECTORY,
                        Mode::empty(),
                    )
                    .map_err(errno)?;
                    let fixed = 900 + i as i32;
                    // SAFETY: dup2 onto a descriptor number reserved for this;
                    // the original is closed when `fd` drops.
                    if nix::libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&fd), fixed) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                mount(
                    Some(c"tmpfs"),
                    c"/run",
                    Some(c"tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(c"mode=0755"),
                )
                .map_err(errno)?;
                for (_, via, dirs) in &binds {
                    for d in dirs {
                        match nix::unistd::mkdir(d.as_c_str(), Mode::from_bits_truncate(0o755)) {
                            Ok(()) | Err(nix::Error::EEXIST) => {}
                            Err(e) => return Err(errno(e)),
                        }
                    }
                    let target = dirs.last().expect("a path has itself as a prefix");
                    mount(
                        Some(via.as_c_str()),
                        target.as_c_str(),
                        None::<&std::ffi::CStr>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&std::ffi::CStr>,
                    )
                    .map_err(errno)?;
                }
                // No allocation here (the child of a threaded process): the
                // reserved descriptors are known by number.
                for i in 0..binds.len() {
                    // SAFETY: closes the reserved descriptor made above.
                    nix::libc::close(900 + i as i32);
                }
                for d in &resolv_dirs {
                    match nix::unistd::mkdir(d.as_c_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(nix::Error::EEXIST) => {}
                        Err(e) => return Err(errno(e)),
                    }
                }
                if needs_file {
                    let fd = open(
                        resolv_dst.as_c_str(),
                        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                        Mode::from_bits_truncate(0o644),
                    )
                    .map_err(errno)?;
                    drop(fd);
                }
                mount(
                    Some(resolv_src.as_c_str()),
                    resolv_dst.as_c_str(),
                    None::<&std::ffi::CStr>,
                    MsFlags::MS_BIND,
                    None::<&std::ffi::CStr>,
                )
                .map_err(errno)
            });
        }
        Ok(())
    }

    /// Prepares `cmd` to run inside this namespace (setns between fork and exec).
    pub fn command(&self, cmd: &mut Command) -> Result<(), NetnsError> {
        self.check_not_host()?;
        let fd = self.file.as_raw_fd();
        // SAFETY: only async-signal-safe calls (setns) happen between fork and exec,
        // and the descriptor stays open in the child until exec.
        unsafe {
            cmd.pre_exec(move || {
                let fd = BorrowedFd::borrow_raw(fd);
                setns(fd, CloneFlags::CLONE_NEWNET).map_err(errno)
            });
        }
        Ok(())
    }
}

/// `/a`, `/a/b`, `/a/b/c` for `/a/b/c`.
fn prefixes(p: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = PathBuf::from("/");
    for c in p.components().skip(1) {
        cur.push(c);
        out.push(cur.clone());
    }
    out
}

/// Processes whose network namespace is the one with inode `ino`.
pub fn pids_in(ino: u64) -> Vec<i32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net"))
                .map(|m| m.ino() == ino)
                .unwrap_or(false)
        })
        .collect()
}

/// SIGKILLs every process whose network namespace is `ns` (never this
/// process itself). Returns how many were signalled.
pub fn kill_all_in(ns: &Netns) -> usize {
    kill_all_in_but(ns, &[])
}

/// [`kill_all_in`], sparing the processes in `spare` (the holder of a
/// container target's namespace).
pub fn kill_all_in_but(ns: &Netns, spare: &[i32]) -> usize {
    let Ok(ino) = ns.inode() else {
        return 0;
    };
    let me = std::process::id() as i32;
    pids_in(ino)
        .into_iter()
        .filter(|p| *p != me && !spare.contains(p))
        .filter(|p| kill(Pid::from_raw(*p), Signal::SIGKILL).is_ok())
        .count()
}

/// iproute2's convention, followed before pinning: /run/netns is a shared
/// bind mount of itself (what `ip netns add` makes it the first time it
/// runs), so pins made in it propagate and a later `ip netns add` finds
/// the mount already there instead of covering our pins with a new one.
/// Left in place afterwards, as iproute2 leaves it. Serialized with other
/// leakhound processes by a lock file, so two runs cannot both add a cover.
pub fn share_netns_dir() -> io::Result<()> {
    fs::create_dir_all(NETNS_DIR)?;
    owned::make_base_dir()?;
    let _lock = locked("netns-dir.lock")?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: make it one, then share it.
        Err(nix::Error::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(errno)?;
            shared().map_err(errno)
        }
        Err(e) => Err(errno(e)),
    }
}

/// Runs `f(path)` in a forked child that has a mount namespace of its own
/// (a slave of ours: nothing it unmounts propagates back) from which every
/// mount covering /run/netns has been removed, so that pins hidden under a
/// later bind mount of the directory are visible again. `f` may only make
/// system calls (the child of a threaded process). Returns `f`'s value.
fn beneath_covers(path: &Path, f: fn(&std::ffi::CStr) -> nix::Result<u64>) -> io::Result<u64> {
    use nix::unistd::{ForkResult, fork};
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let (rd, wr) = nix::unistd::pipe().map_err(errno)?;
    // SAFETY: the child only makes system calls (unshare, mount, umount2,
    // stat, unlink, write, _exit) on data allocated before the fork.
    match unsafe { fork() }.map_err(errno)? {
        ForkResult::Child => {
            let r = (|| {
                unshare(CloneFlags::CLONE_NEWNS)?;
                mount(
                    None::<&std::ffi::CStr>,
                    c"/",
                    None::<&std::ffi::CStr>,
                    MsFlags::MS_REC | MsFlags::MS_SLAVE,
                    None::<&std::ffi::CStr>,
                )?;
                for _ in 0..16 {
                    if umount2(c"/run/netns", MntFlags::MNT_DETACH).is_err() {
                        break;
                    }
                }
                f(&c_path)
            })();
            let mut msg = [0u8; 9];
            match r {
                Ok(v) => msg[1..].copy_from_slice(&v.to_le_bytes()),
                Err(e) => {
                    msg[0] = 1;
                    msg[1..].copy_from_slice(&(e as i32 as u64).to_le_bytes());
                }
            }
            let _ = nix::unistd::write(&wr, &msg);
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { nix::libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(wr);
            let mut msg = [0u8; 9];
            let mut got = 0;
            while got < msg.len() {
                match nix::unistd::read(&rd, &mut msg[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(errno(e)),
                }
            }
            let _ = nix::sys::wait::waitpid(child, None);
            if got < msg.len() {
                return Err(io::Error::other("the helper process died"));
            }
            let v = u64::from_le_bytes(msg[1..].try_into().expect("8 bytes"));
            if msg[0] == 0 {
                Ok(v)
            } else {
                Err(io::Error::from_raw_os_error(v as i32))
            }
        }
    }
}

/// Is `path` (as seen from here) a namespace file?
fn is_nsfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// The inode of the namespace pinned at `path` (beneath the covers).
fn pinned_inode(path: &std::ffi::CStr) -> nix::Result<u64> {
    let fs = nix::sys::statfs::statfs(path)?;
    if fs.filesystem_type() != nix::sys::statfs::NSFS_MAGIC {
        return Err(nix::Error::ENOENT);
    }
    Ok(nix::sys::stat::stat(path)?.st_ino)
}

/// Unmounts every pin at `path` and unlinks it (beneath the covers; the
/// kernel then detaches its mounts in every other mount namespace too).
fn unpin(path: &std::ffi::CStr) -> nix::Result<u64> {
    for _ in 0..16 {
        if umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW).is_err() {
            break;
        }
    }
    nix::unistd::unlink(path)?;
    Ok(0)
}

/// Kills every process inside `name` and removes the namespace, if it is
/// one leakhound may act on: of leakhound's name format, never the host's
/// namespace, PID 1's or this process's, and, when `expected` gives the
/// inode it was made with, still that namespace (a pin replaced by somebody
/// else's since is left alone). Missing namespaces are not an error
/// (removal is idempotent). Every error names the step, the path and the
/// errno. A pin hidden under another tool's later mount of /run/netns is
/// removed from beneath it.
pub fn remove(name: &str, expected: Option<u64>) -> Result<(), NetnsError> {
    let Some(id) = run_id_of(name) else {
        return Err(NetnsError::NotOurs {
            name: name.to_string(),
            id: String::new(),
        });
    };
    let path = Path::new(NETNS_DIR).join(name);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(());
    }
    let err = |step, source| NetnsError::Remove {
        name: name.to_string(),
        step,
        path: path.clone(),
        source,
    };
    // Which namespace is pinned there: through the visible pin, or from
    // beneath a later mount of /run/netns. The host's is refused by `open`.
    let ino = match Netns::open(name) {
        Ok(ns) => ns.inode().ok(),
        // A namespace is visible there, and it is one never to act on.
        Err(_) if is_nsfs(&path) => {
            return Err(NetnsError::HostNamespace {
                name: name.to_string(),
            });
        }
        // No namespace visible: a placeholder file (the run died between
        // making the pin's file and mounting onto it), or a pin hidden
        // under a later mount of /run/netns.
        Err(_) => beneath_covers(&path, pinned_inode).ok(),
    };
    if let Some(ino) = ino {
        if !owned::may_act_on(ino, expected, &forbidden_inodes()) {
            tracing::warn!(
                "{name}: pinned namespace {ino} is not the one run {id} recorded ({expected:?}) or is the host's: left alone"
            );
            return Err(NetnsError::NotOurs {
                name: name.to_string(),
                id: id.to_string(),
            });
        }
        // The processes inside go first (the namespace lives while they do).
        let me = std::process::id() as i32;
        for pid in pids_in(ino).into_iter().filter(|p| *p != me) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    if ino.is_none() {
        // No namespace found, visible or hidden: act only on what the run
        // itself would have left, a plain empty file (never a link, never a
        // folder, never somebody's mount).
        let plain = fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0);
        if !plain {
            return Err(NetnsError::NotOurs {
                name: name.to_string(),
                id: id.to_string(),
            });
        }
    }
    // Every pin stacked on the visible path (never through a link).
    for _ in 0..16 {
        match umount2(&path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL) => break,
            // Another reaper (a concurrent run) removed it meanwhile.
            Err(nix::Error::ENOENT) => return Ok(()),
            Err(e) => return Err(err("unmounting", errno(e))),
        }
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
            // Still a mount point, but none we can see: a pin made before
            // another tool covered /run/netns with a bind mount of itself.
            beneath_covers(&path, unpin).map_err(|source| NetnsError::HiddenPin {
                name: name.to_string(),
                path: path.clone(),
                source,
            })?;
            tracing::warn!(
                "{}: the pin was hidden under a later mount of {NETNS_DIR} (another tool's `ip netns add`); removed it from beneath",
                path.display()
            );
            Ok(())
        }
        Err(e) => Err(err("unlinking", e)),
    }
}

/// Names in /run/netns of leakhound's format (any run, live or dead,
/// recorded or not: for listing, never for removing).
pub fn list_ours() -> Vec<String> {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| run_id_of(n).is_some())
        .collect();
    v.sort();
    v
}

/// Names in /run/netns that start like leakhound's but that no run of it
/// recorded (a user's `lh-myvpn-home`, or a pin whose run's records are
/// gone): the reaper leaves them alone and `reap` says so.
pub fn unrecorded() -> Vec<String> {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .filter(|n| match run_id_of(n) {
            None => true,
            Some(id) => {
                run_is_dead(id)
                    && !owned::records(id)
                        .iter()
                        .any(|r| matches!(r, Record::Netns { name, .. } if name == n))
            }
        })
        .collect();
    v.sort();
    v
}

/// A live run's claim on its id: an exclusive `flock` on
/// `/run/leakhound/<id>.lock`, released by the kernel when the process dies,
/// and the run's folder `/run/leakhound/<id>/` (0700) with its records.
#[derive(Debug)]
pub struct RunLock {
    id: String,
    _file: File,
}

impl RunLock {
    /// Claims run id `id` (six lowercase hex digits; anything else is
    /// refused): takes its lock and makes its folder. A folder left by a
    /// dead run of the same id is reaped first.
    pub fn acquire(id: &str) -> io::Result<RunLock> {
        use std::os::unix::fs::OpenOptionsExt;
        if !owned::is_run_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} is not a run id (six lowercase hex digits)"),
            ));
        }
        owned::make_base_dir()?;
        // Not while a reaper looks: it would take the lock file, made but
        // not yet locked, for a dead run's and remove it.
        let _turn = reap_turn()?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(lock_path(id))?;
        if !ofd_try_lock(&file)? {
            return Err(io::Error::other(format!("run id {id} is in use")));
        }
        if fs::symlink_metadata(owned::run_dir(id)).is_ok() {
            // A dead run's (we hold its lock now): what it recorded goes first.
            let left = reap_run(id, &mut Vec::new());
            if !left {
                return Err(io::Error::other(format!(
                    "run id {id} was used by a dead run whose leftovers could not all be removed"
                )));
            }
        }
        owned::make_run_dir(id)?;
        Ok(RunLock {
            id: id.to_string(),
            _file: file,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Lets the claim go the way a SIGKILLed run does: the kernel's lock is
    /// released, the records and everything recorded stay for a reaper.
    /// For tests that play a killed run.
    #[doc(hidden)]
    pub fn abandon(self) {
        let me = std::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again; its file is moved
        // out once and dropped here (closing it releases the flock), and its
        // id is moved out and dropped with it.
        let (file, id) = unsafe { (std::ptr::read(&me._file), std::ptr::read(&me.id)) };
        drop(file);
        drop(id);
    }
}

impl Drop for RunLock {
    /// The run's end: whatever it recorded and did not remove itself goes
    /// now (a lab removes its namespaces first), then its folder and lock.
    fn drop(&mut self) {
        let _turn = reap_turn();
        if !reap_run(&self.id, &mut Vec::new()) {
            let _ = fs::remove_file(lock_path(&self.id));
        }
    }
}

/// Where a run keeps its records and per-host files (resolv.conf): its
/// folder, removed with the run. The id is checked ([`owned::run_dir`]).
pub fn run_files(id: &str) -> PathBuf {
    owned::run_dir(id)
}

fn lock_path(id: &str) -> PathBuf {
    assert!(owned::is_run_id(id), "not a run id: {id:?}");
    Path::new(RUN_DIR).join(format!("{id}.lock"))
}

/// True while a live process holds the lock of run `id`.
pub fn run_is_alive(id: &str) -> bool {
    !run_is_dead(id)
}

/// True when no live process holds the lock of run `id`.
fn run_is_dead(id: &str) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    if !owned::is_run_id(id) {
        return false;
    }
    match File::options()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(lock_path(id))
    {
        // Asked without taking the lock: a look never makes a dead run
        // seem alive to another reaper looking at the same moment.
        Ok(f) => !ofd_held_by_another(&f).unwrap_or(true),
        Err(_) => true,
    }
}

/// The whole-file write lock of an open file description (`F_OFD_SETLK`):
/// held until every descriptor of this opening is closed (as when the
/// process dies), like `flock`, but it can be asked about without being
/// taken ([`ofd_held_by_another`]). `Ok(false)`: another holds it.
fn ofd_try_lock(f: &File) -> io::Result<bool> {
    use nix::fcntl::{FcntlArg, fcntl};
    // SAFETY: a plain C struct, all zeroes is a valid value.
    let mut l: nix::libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = nix::libc::F_WRLCK as i16;
    l.l_whence = nix::libc::SEEK_SET as i16;
    match fcntl(f, FcntlArg::F_OFD_SETLK(&l)) {
        Ok(_) => Ok(true),
        Err(nix::Error::EAGAIN | nix::Error::EACCES) => Ok(false),
        Err(e) => Err(errno(e)),
    }
}

/// Waits until no process holds run `id`'s lock (its process has ended, or
/// let go of it at the end of its teardown). Returns at once when there is
/// no lock file.
pub fn wait_run_ended(id: &str) -> io::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    use std::os::unix::fs::OpenOptionsExt;
    let f = match File::options()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(lock_path(id))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // SAFETY: a plain C struct, all zeroes is a valid value.
    let mut l: nix::libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = nix::libc::F_WRLCK as i16;
    l.l_whence = nix::libc::SEEK_SET as i16;
    loop {
        match fcntl(&f, FcntlArg::F_OFD_SETLKW(&l)) {
            Ok(_) => return Ok(()),
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(errno(e)),
        }
    }
}

/// Does another open file description hold the write lock of `f`'s file?
fn ofd_held_by_another(f: &File) -> io::Result<bool> {
    use nix::fcntl::{FcntlArg, fcntl};
    // SAFETY: a plain C struct, all zeroes is a valid value.
    let mut l: nix::libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = nix::libc::F_WRLCK as i16;
    l.l_whence = nix::libc::SEEK_SET as i16;
    fcntl(f, FcntlArg::F_OFD_GETLK(&mut l)).map_err(errno)?;
    Ok(l.l_type != nix::libc::F_UNLCK as i16)
}

/// The ids of runs that have something in [`RUN_DIR`] (a folder, a lock, a
/// detached lab's state file) and are dead.
fn dead_runs() -> std::collections::BTreeSet<String> {
    let labs = Path::new(RUN_DIR).join("labs");
    let mut dead = std::collections::BTreeSet::new();
    for dir in [fs::read_dir(RUN_DIR), fs::read_dir(&labs)]
        .into_iter()
        .flatten()
    {
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(owned::run_id_of_entry) else {
                continue;
            };
            if !dead.contains(id) && run_is_dead(id) {
                dead.insert(id.to_string());
            }
        }
    }
    dead
}

/// Removes what dead run `id` recorded (namespaces, with their processes),
/// then its files, lock and state file if nothing recorded is left. Names
/// removed are added to `reaped`. Returns whether everything went. Called
/// with the reapers' turn held.
fn reap_run(id: &str, reaped: &mut Vec<String>) -> bool {
    let mut all = true;
    for rec in owned::records(id) {
        match rec {
            Record::Netns { name, ino } => {
                let there = fs::symlink_metadata(Path::new(NETNS_DIR).join(&name)).is_ok();
                match remove(&name, ino) {
                    Ok(()) if there => reaped.push(name),
                    Ok(()) => {}
                    Err(NetnsError::NotOurs { .. } | NetnsError::HostNamespace { .. }) => {
                        // Not the namespace the run made: not ours to remove,
                        // and nothing of the run's is left under that name.
                    }
                    Err(e) => {
                        all = false;
                        tracing::error!("could not reap {name}: {}", crate::errfmt::chain(&e));
                    }
                }
            }
            // Containers are the container reaper's (it reads the records
            // too, before this runs); their records go with the folder.
            Record::Container { .. } => {}
        }
    }
    if all {
        let _ = fs::remove_dir_all(owned::run_dir(id));
        let _ = fs::remove_file(Path::new(RUN_DIR).join("labs").join(format!("{id}.json")));
        let _ = fs::remove_file(lock_path(id));
    }
    all
}

/// Removes what runs that are no longer alive recorded making (namespaces
/// and the processes in them), then their files. Returns the namespace
/// names removed. A namespace that merely looks like ours (`lh-myvpn-home`,
/// or a pin no run recorded) is never touched: see [`unrecorded`].
///
/// Reapers take turns (an exclusive lock on `/run/leakhound/reap.lock`,
/// waited for), so that two never remove the same run at once. Whether a
/// run is alive is asked without taking its lock (`F_OFD_GETLK`), so a look
/// by one reaper (or by the container reaper) never makes a dead run seem
/// alive to another.
pub fn reap_stale() -> Vec<String> {
    let turn = owned::make_base_dir().and_then(|()| reap_turn());
    if let Err(e) = &turn {
        tracing::warn!("reaping without taking turns: {e}");
    }
    let mut reaped = Vec::new();
    for id in dead_runs() {
        reap_run(&id, &mut reaped);
    }
    reaped
}

/// The containers dead runs recorded, as `(run id, container name)`: what
/// the container reaper may remove (before [`reap_stale`] removes the
/// records).
pub fn dead_runs_containers() -> Vec<(String, String)> {
    dead_runs()
        .into_iter()
        .flat_map(|id| {
            owned::records(&id)
                .into_iter()
                .filter_map(move |r| match r {
                    Record::Container { name } => Some((id.clone(), name)),
                    Record::Netns { .. } => None,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The reapers' turn (an exclusive lock on `/run/leakhound/reap.lock`,
/// waited for), also taken while a run claims its id.
fn reap_turn() -> io::Result<File> {
    locked("reap.lock")
}

/// An exclusive lock on `/run/leakhound/NAME`, waited for; released when
/// the file is dropped.
fn locked(name: &str) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(Path::new(RUN_DIR).join(name))?;
    f.lock()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_not_of_our_format_are_refused_before_anything_is_done() {
        for bad in ["lh-myvpn-home", "lh-..-x", "lh-.-x", "lh-ZZZZZZ-x"] {
            assert!(
                matches!(remove(bad, None), Err(NetnsError::NotOurs { .. })),
                "{bad}"
            );
            assert!(
                matches!(Netns::create(bad), Err(NetnsError::NotOurs { .. })),
                "{bad}"
            );
        }
        assert!(RunLock::acquire("..").is_err());
        assert!(RunLock::acquire("lh-x").is_err());
        assert!(
            !run_is_dead(".."),
            "an invalid id is never taken for a dead run"
        );
    }
}
