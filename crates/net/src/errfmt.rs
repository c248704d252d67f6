//! How errors are shown to people: an error and each of its sources on one
//! line ("what failed: why: why"), skipping a source whose text the message
//! already contains.

/// `e` and its sources, joined with ": ".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("removing {0}")]
    struct Outer(&'static str, #[source] std::io::Error);

    #[test]
    fn the_chain_names_every_source_once() {
        let e = Outer("lh-x", std::io::Error::from_raw_os_error(16));
        let c = chain(&e);
        assert!(c.starts_with("removing lh-x: "), "{c}");
        assert!(c.contains("busy"), "{c}");
    }
}
