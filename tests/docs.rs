//! The documentation stays usable: the README fits a few screens and keeps
//! the two commands `.ci/run` reads out of it; in the READMEs, docs/*.md
//! and scenarios/*.md every relative link leads to a file (and heading) that
//! exists, every repository path cited in backticks exists and no table is
//! cut in two; the default suite's table names every scenario file. Pure
//! file reads: no root, no lab.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 250;

/// The README's two marked commands: the marker line, then the command on
/// the next line, indented four spaces (what `.ci/run` extracts).
const MARKED: [(&str, &str); 2] = [
    (
        "<!-- ci: main-job (.ci/run runs the next command verbatim) -->",
        "    bash ci/setup.sh && cargo run --release -- run",
    ),
    (
        "<!-- ci: tests (.ci/run runs the next command verbatim) -->",
        "    bash ci/setup.sh && cargo test --release",
    ),
];

/// Top-level folders of the repository whose paths, cited in backticks,
/// must exist.
const CITED_ROOTS: [&str; 9] = [
    "src/",
    "crates/",
    "tests/",
    "ci/",
    ".ci/",
    "docker/",
    "docs/",
    "scenarios/",
    "fuzz/",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// README.md, reports/README.md and every docs/*.md and scenarios/*.md,
/// as (path relative to the root, text).
fn documents() -> Vec<(PathBuf, String)> {
    let root = root();
    let mut docs = Vec::new();
    for file in ["README.md", "reports/README.md"] {
        docs.push((PathBuf::from(file), read(&root.join(file))));
    }
    let mut names: Vec<PathBuf> = Vec::new();
    for dir in ["docs", "scenarios"] {
        names.extend(
            fs::read_dir(root.join(dir))
                .unwrap_or_else(|e| panic!("reading {dir}/: {e}"))
                .map(|e| e.expect("a directory entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    names.sort();
    for p in names {
        let rel = p.strip_prefix(&root).expect("under the root").to_path_buf();
        docs.push((rel, read(&p)));
    }
    docs
}

/// The lines of a Markdown text outside fenced code blocks, with their
/// numbers (1-based).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// Every `[text](target)` and `![alt](target)` target on a line.
fn link_targets(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                out.push(after[..j].trim().to_string());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

/// Every backtick span on a line.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings, repeated ones numbered as
/// GitHub numbers them (`name`, `name-1`, ...).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut name = base.clone();
        let mut n = 0;
        while seen.contains(&name) {
            n += 1;
            name = format!("{base}-{n}");
        }
        seen.insert(name);
    }
    seen
}

#[test]
fn the_readme_fits_a_few_screens() {
    let text = read(&root().join("README.md"));
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; at most {README_MAX_LINES}: move detail to docs/ and link it"
    );
}

#[test]
fn the_readme_keeps_both_marked_commands() {
    let text = read(&root().join("README.md"));
    let lines: Vec<&str> = text.lines().collect();
    for (marker, command) in MARKED {
        let at = lines
            .iter()
            .position(|l| *l == marker)
            .unwrap_or_else(|| panic!("README.md lost the marker line {marker:?}"));
        assert_eq!(
            lines.get(at + 1).copied(),
            Some(command),
            "README.md line {}: the line after {marker:?} must be exactly {command:?}",
            at + 2
        );
    }
}

#[test]
fn every_relative_link_leads_to_a_file_and_heading_that_exist() {
    let root = root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (doc, text) in documents() {
        let dir = doc.parent().unwrap_or(Path::new("")).to_path_buf();
        for (n, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let (path, linked_text) = if file.is_empty() {
                    (root.join(&doc), Some(text.clone()))
                } else {
                    let p = root.join(&dir).join(file);
                    if !p.exists() {
                        broken.push(format!("{}:{n}: {target}: no such file", doc.display()));
                        continue;
                    }
                    let md = p.extension().is_some_and(|x| x == "md");
                    (p.clone(), md.then(|| read(&p)))
                };
                if let (Some(anchor), Some(linked)) = (anchor, linked_text)
                    && !anchors(&linked).contains(anchor)
                {
                    broken.push(format!(
                        "{}:{n}: {target}: {} has no heading #{anchor}",
                        doc.display(),
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} links found: the scan is broken"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_path_cited_in_backticks_exists() {
    let root = root();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (doc, text) in documents() {
        for (n, line) in prose_lines(&text) {
            for span in code_spans(line) {
                let cited = CITED_ROOTS.iter().any(|r| span.starts_with(r));
                let literal = !span
                    .chars()
                    .any(|c| c.is_whitespace() || "*<>{}$".contains(c));
                if !cited || !literal {
                    continue;
                }
                checked += 1;
                if !root.join(span).exists() {
                    missing.push(format!("{}:{n}: `{span}` does not exist", doc.display()));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} paths found: the scan is broken"
    );
    assert!(missing.is_empty(), "cited paths:\n{}", missing.join("\n"));
}

#[test]
fn no_table_is_cut_by_a_blank_line() {
    // A table row after a blank line starts a new table, which needs its
    // own header and delimiter rows; without them GitHub shows the rows as
    // plain text (the gateway's variable table once lost 27 rows so).
    let mut cut = Vec::new();
    for (doc, text) in documents() {
        let lines = prose_lines(&text);
        for w in lines.windows(3) {
            let [(_, before), (n, row), (_, next)] = w else {
                continue;
            };
            let starts_table = before.trim().is_empty() && row.starts_with('|');
            if starts_table && !next.starts_with("|-") && !next.starts_with("| -") {
                cut.push(format!(
                    "{}:{n}: a table row after a blank line, with no header above it",
                    doc.display()
                ));
            }
        }
    }
    assert!(cut.is_empty(), "tables cut in two:\n{}", cut.join("\n"));
}

#[test]
fn the_suite_table_names_every_scenario_file() {
    let root = root();
    let table = read(&root.join("docs/suite.md"));
    let rows: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, _)| name.to_string())
        .collect();
    let files: BTreeSet<String> = fs::read_dir(root.join("scenarios"))
        .expect("reading scenarios/")
        .map(|e| e.expect("a scenarios/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(!files.is_empty(), "no scenario files found");
    let unlisted: Vec<_> = files.difference(&rows).collect();
    let unknown: Vec<_> = rows.difference(&files).collect();
    assert!(
        unlisted.is_empty() && unknown.is_empty(),
        "docs/suite.md's table and scenarios/*.toml disagree: not in the table {unlisted:?}, no such scenario {unknown:?}"
    );
}

#[test]
fn the_readme_writes_no_scenario_count() {
    // One source for the count: `leakhound list`.
    let text = read(&root().join("README.md"));
    for (n, line) in text.lines().enumerate() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            let number = w[0].trim_start_matches('(');
            assert!(
                !(number.parse::<u32>().is_ok() && w[1].starts_with("scenario")),
                "README.md:{}: {line:?} writes a scenario count; say \"run `leakhound list`\" instead",
                n + 1
            );
        }
    }
}

#[test]
fn the_helpers_find_what_they_look_for() {
    assert_eq!(
        link_targets("see [a](docs/a.md#x) and ![b](b.png)."),
        ["docs/a.md#x", "b.png"]
    );
    assert_eq!(code_spans("a `src/x.rs` b `c d` e"), ["src/x.rs", "c d"]);
    assert_eq!(
        slug("A lab to audit: `lab up` / `lab down`"),
        "a-lab-to-audit-lab-up--lab-down"
    );
    let a = anchors("# T\n## Setup\n```\n## not a heading\n```\n## Setup\n#nope\n");
    assert_eq!(
        a,
        ["setup", "setup-1", "t"]
            .into_iter()
            .map(String::from)
            .collect()
    );
}
