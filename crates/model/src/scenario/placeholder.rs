//! The run-specific values a scenario's gateway variables may name as
//! `{name}` (`{lab_ca}`, `{lab_dir}`, ...): the one list of them
//! ([`Placeholder`]), where they are in a value ([`find`]), and the
//! substitution the runner makes ([`fill`]). The parser refuses a `{name}`
//! that is none of them (nor a lab role, filled before), so a misspelt one
//! cannot pass silently.
//!
//! What is not a placeholder, and stays untouched: Gluetun's own double
//! braces (`{{VPN_INTERFACE}}`, `{{PORTS}}`, `{{PORT}}`), a shell's
//! `${VAR}`, and braces around anything but a name (`{"port":0}`).

/// A run-specific value a gateway variable may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placeholder {
    /// `{lab_ca}`: the lab CA's certificate file.
    LabCa,
    /// `{lab_dir}`: the run's gateway folder, the one folder a gateway may
    /// write to.
    LabDir,
    /// `{port_commands}`: the file the scenarios' port-forwarding UP/DOWN
    /// commands write.
    PortCommands,
    /// `{qbittorrent_webui}`: the real qBittorrent's WebUI, ADDRESS:PORT
    /// in the gateway's namespace.
    QbittorrentWebui,
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Placeholder; 4] = [
        Placeholder::LabCa,
        Placeholder::LabDir,
        Placeholder::PortCommands,
        Placeholder::QbittorrentWebui,
    ];

    /// Its name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::LabCa => "lab_ca",
            Placeholder::LabDir => "lab_dir",
            Placeholder::PortCommands => "port_commands",
            Placeholder::QbittorrentWebui => "qbittorrent_webui",
        }
    }

    /// What the runner puts in its place.
    pub fn meaning(self) -> &'static str {
        match self {
            Placeholder::LabCa => "the lab CA's certificate file",
            Placeholder::LabDir => "the run's gateway folder",
            Placeholder::PortCommands => {
                "the file the port-forwarding UP/DOWN commands of scenarios write"
            }
            Placeholder::QbittorrentWebui => "the real qBittorrent's WebUI, ADDRESS:PORT",
        }
    }

    pub fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// A `{name}` in a value: where (the byte offset of its `{`), the name,
/// and the placeholder it is, if it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<'a> {
    pub at: usize,
    pub name: &'a str,
    pub placeholder: Option<Placeholder>,
}

/// Every `{name}` in `value` (name: letters, digits, `_` and `-`), but
/// those inside double braces (`{{PORTS}}`) or after `$` (`${HOME}`).
pub fn find(value: &str) -> Vec<Found<'_>> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        // `{{` opens Gluetun's own placeholder: skip the whole run of braces.
        if bytes.get(i + 1) == Some(&b'{') {
            while bytes.get(i) == Some(&b'{') {
                i += 1;
            }
            continue;
        }
        let shell = i > 0 && bytes[i - 1] == b'$';
        let len = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b == b'-')
            .count();
        let close = i + 1 + len;
        if !shell && len > 0 && bytes.get(close) == Some(&b'}') {
            let name = &value[i + 1..close];
            out.push(Found {
                at: i,
                name,
                placeholder: Placeholder::from_name(name),
            });
            i = close + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// `value` with every placeholder it names replaced by `value_of`'s
/// answer; everything else (unknown names among it) stays as it is.
pub fn fill(value: &str, value_of: impl Fn(Placeholder) -> String) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = 0;
    for f in find(value) {
        if let Some(p) = f.placeholder {
            out.push_str(&value[rest..f.at]);
            out.push_str(&value_of(p));
            rest = f.at + f.name.len() + 2;
        }
    }
    out.push_str(&value[rest..]);
    out
}

/// The placeholders' names, comma-separated, for messages.
pub fn known() -> String {
    Placeholder::ALL
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_and_gluetuns_double_braces_are_not() {
        let v = "/bin/sh -c 'echo {{PORTS}} {{VPN_INTERFACE}} > {port_commands}; cat ${HOME}/x {lab_dir}/y {lab-dri} {\"port\":0} {}'";
        let found: Vec<(&str, Option<Placeholder>)> =
            find(v).iter().map(|f| (f.name, f.placeholder)).collect();
        assert_eq!(
            found,
            [
                ("port_commands", Some(Placeholder::PortCommands)),
                ("lab_dir", Some(Placeholder::LabDir)),
                ("lab-dri", None),
            ]
        );
        let at = find(v)[2].at;
        assert_eq!(&v[at..at + 9], "{lab-dri}");
        // JSON around Gluetun's braces, as torrent-forwarded-port writes it.
        assert!(find("json={\"listen_port\":{{PORTS}}}").is_empty());
    }

    #[test]
    fn filling_replaces_the_known_and_leaves_everything_else() {
        let v = "{lab_dir}/a {{PORT}} {lab_ca}{lab_ca} {nope} ${X} {qbittorrent_webui}";
        let filled = fill(v, |p| format!("<{}>", p.name().to_uppercase()));
        assert_eq!(
            filled,
            "<LAB_DIR>/a {{PORT}} <LAB_CA><LAB_CA> {nope} ${X} <QBITTORRENT_WEBUI>"
        );
        for p in Placeholder::ALL {
            assert_eq!(Placeholder::from_name(p.name()), Some(p));
            assert!(!p.meaning().is_empty());
        }
        assert_eq!(known(), "lab_ca, lab_dir, port_commands, qbittorrent_webui");
    }
}
