//! ci/module-cycles.py, which .ci/run uses to keep the crates free of
//! import cycles, tried on small made-up crates: a cycle through `use` and
//! through a `super::` path is found and named with its file and line; a
//! module's re-export of its own child, `mod` declarations and a test
//! module's `use super::*` are not edges.

use std::path::Path;
use std::process::Command;

fn check(files: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let o = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("ci/module-cycles.py"))
        .arg("--root")
        .arg(dir.path())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn a_cycle_between_two_modules_is_found_with_where() {
    let (code, out) = check(&[
        ("src/lib.rs", "pub mod a;\npub mod b;\n"),
        (
            "src/a.rs",
            "use crate::b::{Thing, other::More};\npub struct A;\n",
        ),
        (
            "src/b.rs",
            "pub struct Thing;\npub fn f() -> super::a::A { crate::a::A }\n",
        ),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("cycle among 2 modules: crate::a, crate::b"),
        "{out}"
    );
    assert!(out.contains("crate::a -> crate::b  (src/a.rs:1)"), "{out}");
    assert!(out.contains("crate::b -> crate::a  (src/b.rs:2"), "{out}");
}

#[test]
fn re_exports_of_children_mod_lines_and_test_modules_are_not_edges() {
    let (code, out) = check(&[
        (
            "src/lib.rs",
            "pub mod net;\npub use net::Socket;\n// use crate::net::x; in a comment\n",
        ),
        (
            "src/net/mod.rs",
            "mod socket;\npub use socket::Socket;\npub use self::socket::Kind;\n",
        ),
        (
            "src/net/socket.rs",
            "pub struct Socket;\npub enum Kind {}\nfn s() -> &'static str { \"crate::net\" }\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
        ),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no cycle in any crate"), "{out}");
}
