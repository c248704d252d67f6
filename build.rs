//! Tells the tests whether this machine has a Docker engine socket: the
//! container target's tests are then run, and otherwise reported as ignored
//! with the reason (never as passed). Also stamps the commit for
//! `--version` (build/commit.rs).

include!("build/commit.rs");

fn main() {
    println!("cargo::rustc-check-cfg=cfg(docker_engine)");
    println!("cargo::rerun-if-changed=/var/run/docker.sock");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=build/commit.rs");
    if std::path::Path::new("/var/run/docker.sock").exists() {
        println!("cargo::rustc-cfg=docker_engine");
    }
    emit_commit();
}
