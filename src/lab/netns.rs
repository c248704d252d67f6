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

/// Where pinned namespaces live (the same place as `ip netns`).
pub const NETNS_DIR: &str = "/run/netns";
/// Every namespace leakhound makes starts with this.
pub const PREFIX: &str = "lh-";
/// Where a live run keeps its lock file (held with `flock` for its lifetime).
pub const RUN_DIR: &str = "/run/leakhound";

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
    #[error("removing network namespace {name}")]
    Remove {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("writing sysctl {key} in namespace {name}")]
    Sysctl {
        name: String,
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("a thread working in namespace {name} panicked")]
    ThreadPanic { name: String },
}

fn errno(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Inode numbers of the namespaces leakhound must never touch: PID 1's (the
/// host's root namespace) and the one this process started in.
fn forbidden_inodes() -> Vec<u64> {
    ["/proc/1/ns/net", "/proc/self/ns/net"]
        .iter()
        .filter_map(|p| fs::metadata(p).ok().map(|m| m.ino()))
        .collect()
}

/// A network namespace made by leakhound, held open by a file descriptor.
#[derive(Debug)]
pub struct Netns {
    name: String,
    file: File,
}

impl Netns {
    /// Creates and pins a new, empty namespace called `name`.
    pub fn create(name: &str) -> Result<Netns, NetnsError> {
        let err = |source| NetnsError::Create {
            name: name.to_string(),
            source,
        };
        fs::create_dir_all(NETNS_DIR).map_err(err)?;
        let path = Path::new(NETNS_DIR).join(name);
        File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(err)?;
        let target = path.clone();
        let pinned = std::thread::spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(errno)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(errno)
        })
        .join()
        .map_err(|_| NetnsError::ThreadPanic {
            name: name.to_string(),
        })?;
        if let Err(e) = pinned {
            let _ = fs::remove_file(&path);
            return Err(err(e));
        }
        Self::open(name)
    }

    /// Opens an existing pinned namespace, refusing the host's own.
    pub fn open(name: &str) -> Result<Netns, NetnsError> {
        let path = Path::new(NETNS_DIR).join(name);
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            name: name.to_string(),
            source,
        })?;
        let ns = Netns {
            name: name.to_string(),
            file,
        };
        ns.check_not_host()?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
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
        if !is_nsfs || forbidden_inodes().contains(&ino) {
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
        self.command(cmd)?;
        let src =
            std::ffi::CString::new(resolv_conf.as_os_str().as_encoded_bytes()).map_err(|_| {
                NetnsError::Enter {
                    name: self.name.clone(),
                    source: io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "resolv.conf path contains NUL",
                    ),
                }
            })?;
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
                mount(
                    Some(src.as_c_str()),
                    c"/etc/resolv.conf",
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

/// Kills every process inside `name` and removes the namespace. Missing
/// namespaces are not an error (removal is idempotent).
pub fn remove(name: &str) -> Result<(), NetnsError> {
    let path = Path::new(NETNS_DIR).join(name);
    if !path.exists() {
        return Ok(());
    }
    let err = |source| NetnsError::Remove {
        name: name.to_string(),
        source,
    };
    if let Ok(ns) = Netns::open(name)
        && let Ok(ino) = ns.inode()
    {
        let me = std::process::id() as i32;
        for pid in pids_in(ino).into_iter().filter(|p| *p != me) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(e) => return Err(err(errno(e))),
    }
    fs::remove_file(&path).or_else(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Ok(())
        } else {
            Err(err(e))
        }
    })
}

/// Names of all namespaces leakhound has pinned, of any run.
pub fn list_ours() -> Vec<String> {
    let Ok(dir) = fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(PREFIX))
        .collect();
    v.sort();
    v
}

/// The run id inside a namespace name `lh-<run>-<host>`.
pub fn run_id_of(ns_name: &str) -> Option<&str> {
    let rest = ns_name.strip_prefix(PREFIX)?;
    let (run, host) = rest.split_once('-')?;
    (!run.is_empty() && !host.is_empty()).then_some(run)
}

/// A live run's claim on its id: an exclusive `flock` on
/// `/run/leakhound/<id>.lock`, released by the kernel when the process dies.
#[derive(Debug)]
pub struct RunLock {
    id: String,
    _file: File,
}

impl RunLock {
    pub fn acquire(id: &str) -> io::Result<RunLock> {
        fs::create_dir_all(RUN_DIR)?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(id))?;
        file.try_lock()
            .map_err(|e| io::Error::other(format!("run id {id} is in use: {e}")))?;
        Ok(RunLock {
            id: id.to_string(),
            _file: file,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(lock_path(&self.id));
    }
}

/// Where a run keeps its per-host files (resolv.conf): removed with the run.
pub fn run_files(id: &str) -> PathBuf {
    Path::new(RUN_DIR).join(id)
}

fn lock_path(id: &str) -> PathBuf {
    Path::new(RUN_DIR).join(format!("{id}.lock"))
}

/// True when no live process holds the lock of run `id`.
fn run_is_dead(id: &str) -> bool {
    match File::options().write(true).open(lock_path(id)) {
        Ok(f) => f.try_lock().is_ok(),
        Err(_) => true,
    }
}

/// Removes namespaces (and their processes) left behind by runs that are no
/// longer alive. Returns the names removed.
pub fn reap_stale() -> Vec<String> {
    let mut reaped = Vec::new();
    for name in list_ours() {
        let Some(id) = run_id_of(&name).map(str::to_string) else {
            continue;
        };
        if run_is_dead(&id) {
            match remove(&name) {
                Ok(()) => reaped.push(name),
                Err(e) => tracing::warn!("could not reap {name}: {e}"),
            }
            let _ = fs::remove_file(lock_path(&id));
            let _ = fs::remove_dir_all(run_files(&id));
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_parsed_from_names() {
        assert_eq!(run_id_of("lh-ab12cd-gw"), Some("ab12cd"));
        assert_eq!(run_id_of("lh-ab12cd-lan-admin"), Some("ab12cd"));
        assert_eq!(run_id_of("lh-ab12cd"), None);
        assert_eq!(run_id_of("other-ab-gw"), None);
    }
}
