//! The reports folder (`--out`): made and marked by leakhound, emptied at
//! the start of a run only when it is marked as leakhound's.
//!
//! leakhound runs as root, so `--out` must never delete what it did not
//! write: `--out .` in a working tree, or `--out /etc`, is refused with an
//! error that says what to do instead. A folder is leakhound's when it
//! carries the mark file [`MARK`] (leakhound made it, or adopted it: empty,
//! or holding only report files an earlier version wrote before folders
//! were marked). Only the entries of a marked folder are removed, never
//! the folder itself and never through a link. The folder is 0700: its
//! pcaps and logs hold LAN clients' cleartext requests.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file that marks a folder as leakhound's reports folder.
pub const MARK: &str = ".leakhound-reports";

const MARK_TEXT: &str = "This folder is leakhound's reports folder: each run empties it first.\n";

#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    #[error(
        "--out {}: this folder holds files leakhound did not write ({}) and is not a leakhound reports folder; leakhound empties its reports folder at each run, so it will not use this one. Name a new folder (leakhound makes it), e.g. --out reports/latest, or an empty one",
        path.display(), examples.join(", ")
    )]
    Foreign {
        path: PathBuf,
        examples: Vec<String>,
    },
    #[error(
        "--out {}: this is a link (or not a folder); name the folder itself",
        path.display()
    )]
    NotAFolder { path: PathBuf },
    #[error(
        "--out {}: {what}; leakhound runs as root and will not write reports where another user could swap them for links. Name a folder of your own, e.g. --out reports/latest",
        path.display()
    )]
    NotPrivate { path: PathBuf, what: String },
    #[error("--out {}: {what}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// What a folder's entries say about it (pure).
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Marked, or empty, or only an earlier version's report files: use it.
    Ours,
    /// Something else is in it: these entries, for the message.
    Foreign(Vec<String>),
}

/// A folder's entry: its name, and for a sub-folder the names in it.
pub type Entry = (String, Option<Vec<String>>);

/// Report files earlier versions wrote (before folders were marked).
fn is_report_file(name: &str) -> bool {
    const EXACT: [&str; 9] = [
        "junit.xml",
        "summary.json",
        "report.html",
        "compare.md",
        "configuration.json",
        "leakhound.prom",
        "outside.pcap",
        "gateway.log",
        "lab.log",
    ];
    EXACT.contains(&name)
        || [".pcap", ".log", ".jsonl"]
            .iter()
            .any(|s| name.strip_suffix(s).is_some_and(is_word))
}

fn is_word(w: &str) -> bool {
    !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Judges a folder from its entries: `(name, children)` where `children` is
/// `Some(entries)` for a folder (one level: a comparison's per-target
/// folders and `made-scenarios`) and `None` for a file.
pub fn judge(entries: &[Entry]) -> Verdict {
    if entries.iter().any(|(n, kids)| n == MARK && kids.is_none()) {
        return Verdict::Ours;
    }
    let foreign: Vec<String> = entries
        .iter()
        .filter(|(name, kids)| match kids {
            None => !is_report_file(name),
            Some(kids) if name == "made-scenarios" => !kids
                .iter()
                .all(|k| k.strip_suffix(".toml").is_some_and(is_word)),
            Some(kids) => {
                !(is_word(name)
                    && kids
                        .iter()
                        .all(|k| is_report_file(k) || k == "made-scenarios/"))
            }
        })
        .map(|(n, _)| n.clone())
        .collect();
    // An unmarked folder with files is an earlier version's reports folder
    // only if it holds what every run wrote (a folder of someone's own
    // *.log or *.pcap files is not).
    let has = |n: &str| entries.iter().any(|(e, kids)| e == n && kids.is_none());
    if foreign.is_empty() && (entries.is_empty() || has("junit.xml") && has("summary.json")) {
        Verdict::Ours
    } else if foreign.is_empty() {
        Verdict::Foreign(entries.iter().map(|(n, _)| n.clone()).collect())
    } else {
        Verdict::Foreign(foreign)
    }
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> OutDirError + 'a {
    move |source| OutDirError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// Makes `out` ready for a run: a new folder is made (0700) and marked; an
/// existing one is used only if [`judge`] finds it leakhound's, then marked,
/// made 0700 and emptied (its entries only, never through a link).
pub fn prepare(out: &Path) -> Result<(), OutDirError> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent).map_err(io_err(out, "making its parent folders"))?;
            }
            fs::DirBuilder::new()
                .mode(0o700)
                .create(out)
                .map_err(io_err(out, "making the folder"))?;
        }
        Err(e) => return Err(io_err(out, "reading it")(e)),
        Ok(m) if !m.is_dir() => {
            return Err(OutDirError::NotAFolder {
                path: out.to_path_buf(),
            });
        }
        Ok(m) => {
            check_private(out, &m)?;
            let entries = read_entries(out)?;
            if let Verdict::Foreign(mut examples) = judge(&entries) {
                examples.sort();
                examples.truncate(5);
                return Err(OutDirError::Foreign {
                    path: out.to_path_buf(),
                    examples,
                });
            }
            fs::set_permissions(out, fs::Permissions::from_mode(0o700))
                .map_err(io_err(out, "making it 0700"))?;
            for (name, _) in entries.iter().filter(|(n, _)| n != MARK) {
                let p = out.join(name);
                let m = fs::symlink_metadata(&p).map_err(io_err(out, "reading an entry"))?;
                if m.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                }
                .map_err(io_err(out, "emptying it"))?;
            }
        }
    }
    write_mark(out)
}

/// Writes the mark, never through a link (a planted `.leakhound-reports`
/// link must not make root write elsewhere).
fn write_mark(out: &Path) -> Result<(), OutDirError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(out.join(MARK))
        .map_err(io_err(out, "marking it"))?;
    f.write_all(MARK_TEXT.as_bytes())
        .map_err(io_err(out, "marking it"))
}

/// An existing folder is used only if this user owns it, and its parent is
/// this user's or root's, or sticky (as /tmp is): otherwise another user
/// could plant links in it, or swap it, between our checks and our writes.
fn check_private(out: &Path, m: &fs::Metadata) -> Result<(), OutDirError> {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::Uid::effective().as_raw();
    let not_private = |what: String| OutDirError::NotPrivate {
        path: out.to_path_buf(),
        what,
    };
    if m.uid() != me {
        return Err(not_private(format!("it belongs to user {}", m.uid())));
    }
    let parent = match out.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(p) => p.to_path_buf(),
        None => PathBuf::from("."),
    };
    let pm = fs::metadata(&parent).map_err(io_err(out, "reading its parent folder"))?;
    let sticky = pm.mode() & 0o1000 != 0;
    let others_write = pm.mode() & 0o022 != 0;
    if pm.uid() != me && pm.uid() != 0 || others_write && !sticky {
        return Err(not_private(format!(
            "its parent folder {} can be changed by other users",
            parent.display()
        )));
    }
    Ok(())
}

/// The folder's entries, one level into sub-folders (never through links:
/// a link counts as a file, and is foreign unless named like a report).
fn read_entries(out: &Path) -> Result<Vec<Entry>, OutDirError> {
    let names = |dir: &Path| -> Result<Vec<(String, bool)>, OutDirError> {
        let mut v = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err(out, "listing it"))? {
            let e = e.map_err(io_err(out, "listing it"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let t = e.file_type().map_err(io_err(out, "listing it"))?;
            // A link is never a report file nor the mark: it is foreign.
            let name = if t.is_symlink() {
                format!("{name} (a link)")
            } else {
                name
            };
            v.push((name, t.is_dir()));
        }
        Ok(v)
    };
    let mut entries = Vec::new();
    for (name, is_dir) in names(out)? {
        let kids = if is_dir {
            Some(
                names(&out.join(&name))?
                    .into_iter()
                    .map(|(n, d)| if d { format!("{n}/") } else { n })
                    .collect(),
            )
        } else {
            None
        };
        entries.push((name, kids));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: &str) -> Entry {
        (n.into(), None)
    }
    fn dir(n: &str, kids: &[&str]) -> Entry {
        (n.into(), Some(kids.iter().map(|k| k.to_string()).collect()))
    }

    #[test]
    fn a_working_tree_is_foreign() {
        let v = judge(&[
            file("Cargo.toml"),
            file("README.md"),
            dir("src", &["main.rs"]),
            dir("reports", &["README.md"]),
            file("junit.xml"),
        ]);
        assert_eq!(
            v,
            Verdict::Foreign(vec![
                "Cargo.toml".into(),
                "README.md".into(),
                "src".into(),
                "reports".into()
            ])
        );
    }

    #[test]
    fn empty_marked_and_earlier_report_folders_are_ours() {
        assert_eq!(judge(&[]), Verdict::Ours);
        assert_eq!(judge(&[file(MARK), file("anything")]), Verdict::Ours);
        assert_eq!(
            judge(&[
                file("junit.xml"),
                file("summary.json"),
                file("report.html"),
                file("baseline-gw.pcap"),
                file("baseline-gateway.log"),
                dir("made-scenarios", &["x.toml"]),
                dir("ours", &["junit.xml", "dns-leak-uplink.pcap"]),
            ]),
            Verdict::Ours
        );
    }

    #[test]
    fn a_mark_must_be_a_file_and_names_must_be_words() {
        assert!(matches!(judge(&[dir(MARK, &[])]), Verdict::Foreign(_)));
        assert!(matches!(judge(&[file("../x.pcap")]), Verdict::Foreign(_)));
        assert!(matches!(judge(&[file(".pcap")]), Verdict::Foreign(_)));
        assert!(matches!(
            judge(&[dir("ours", &["junit.xml", "notes.txt"])]),
            Verdict::Foreign(_)
        ));
        assert!(matches!(
            judge(&[dir("made-scenarios", &["x.toml", "sub/"])]),
            Verdict::Foreign(_)
        ));
    }

    #[test]
    fn prepare_makes_marks_empties_and_refuses() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("a/b/latest");
        prepare(&out).unwrap();
        assert!(out.join(MARK).is_file());
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::write(out.join("notes.txt"), "x").unwrap();
        fs::create_dir(out.join("sub")).unwrap();
        // Marked: emptied, whatever is inside, the mark kept.
        prepare(&out).unwrap();
        let left: Vec<_> = fs::read_dir(&out).unwrap().flatten().collect();
        assert_eq!(left.len(), 1, "{left:?}");

        // A folder of somebody else's: refused, untouched, and the error
        // names it and says what to do.
        let tree = t.path().join("tree");
        fs::create_dir(&tree).unwrap();
        fs::write(tree.join("Cargo.toml"), "x").unwrap();
        let e = prepare(&tree).unwrap_err().to_string();
        assert!(
            e.contains("tree") && e.contains("Cargo.toml") && e.contains("Name a new folder"),
            "{e}"
        );
        assert!(tree.join("Cargo.toml").exists());
        assert!(!tree.join(MARK).exists());

        // A link to a folder is refused, and what it names is untouched.
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        assert!(matches!(
            prepare(&link),
            Err(OutDirError::NotAFolder { .. })
        ));

        // An earlier version's reports folder is adopted.
        let old = t.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::write(old.join("junit.xml"), "x").unwrap();
        fs::write(old.join("summary.json"), "x").unwrap();
        fs::write(old.join("baseline-gw.pcap"), "x").unwrap();
        prepare(&old).unwrap();
        assert!(old.join(MARK).is_file() && !old.join("junit.xml").exists());

        // A folder of someone's own logs and captures is not one.
        let logs = t.path().join("captures");
        fs::create_dir(&logs).unwrap();
        fs::write(logs.join("dump-1.pcap"), "x").unwrap();
        fs::write(logs.join("app.log"), "x").unwrap();
        assert!(prepare(&logs).is_err());
        assert!(logs.join("dump-1.pcap").exists());

        // A planted mark that is a link is no mark, and is never written
        // through.
        let planted = t.path().join("planted");
        fs::create_dir(&planted).unwrap();
        let victim = t.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, planted.join(MARK)).unwrap();
        assert!(prepare(&planted).is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn a_folder_other_users_can_change_is_refused() {
        let t = tempfile::tempdir().unwrap();
        // A parent anyone may write to, without the sticky bit.
        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let out = open.join("reports");
        fs::create_dir(&out).unwrap();
        let e = prepare(&out).unwrap_err().to_string();
        assert!(e.contains("can be changed by other users"), "{e}");
        // Somebody else's folder.
        let theirs = t.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), None).unwrap();
        let e = prepare(&theirs).unwrap_err().to_string();
        assert!(e.contains("belongs to user 65534"), "{e}");
    }
}
