//! Stamps the commit for `leakhound-gateway --version` (build/commit.rs at
//! the workspace's root).

include!("../../build/commit.rs");

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../../build/commit.rs");
    emit_commit();
}
