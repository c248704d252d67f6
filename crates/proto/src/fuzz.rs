//! The replay of the committed fuzz corpora (`fuzz/corpus/TARGET/`) as
//! plain tests: every seed through a fuzz target's body, which must give a
//! value or a named error, never a panic. Shared by the replay tests of
//! the scenario model (`leakhound_model::fuzz`) and of the gateway
//! (`leakhound_gateway::fuzz`).

/// Every file of `fuzz/corpus/TARGET/` (from the crate at `manifest_dir`)
/// through `body`; a panic names the file. The committed seeds must be
/// there. For the replay tests of the model's and the gateway's targets.
pub fn replay(manifest_dir: &str, target: &str, body: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(manifest_dir)
        .join("../../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the committed seeds?)", dir.display()));
    let mut n = 0;
    for e in entries {
        let path = e.expect("reading the corpus").path();
        let data = std::fs::read(&path).expect("reading a corpus file");
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("{target}: {} makes it panic", path.display());
        }
        n += 1;
    }
    assert!(n > 0, "{}: no corpus", dir.display());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corpus_is_replayed_file_by_file() {
        let n = replay(env!("CARGO_MANIFEST_DIR"), "natpmp", |_| {});
        assert!(n > 0);
    }

    #[test]
    #[should_panic(expected = "makes it panic")]
    fn a_panicking_body_names_the_file() {
        replay(env!("CARGO_MANIFEST_DIR"), "natpmp", |_| panic!("boom"));
    }
}
