//! Usenet as the lab's news server and NZBGet need it, pure: yEnc (the
//! encoding binary posts use, with its CRC32 trailer), the NZB file that
//! lists a post's articles, and the NNTP commands a downloader sends with
//! the server's answers (RFC 3977, the part a reader uses). No I/O.

/// One article of a post: its message id (without angle brackets) and its
/// yEnc body.
#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    pub message_id: String,
    pub body: Vec<u8>,
    /// The decoded bytes it carries.
    pub bytes: usize,
}

/// Bytes per yEnc line.
pub const LINE: usize = 128;

/// yEnc-encodes `part` (1-based, of `total`) of a file named `name` whose
/// whole is `file_size` bytes and of which `data` starts at `begin`
/// (0-based): the `=ybegin`/`=ypart` header, the lines, the `=yend`
/// trailer with the part's CRC32. Lines end in CRLF; a line starting with
/// a dot is dot-stuffed for NNTP.
pub fn yenc_part(
    name: &str,
    part: usize,
    total: usize,
    file_size: usize,
    begin: usize,
    data: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 104 / 100 + 256);
    out.extend(
        format!(
            "=ybegin part={part} total={total} line={LINE} size={file_size} name={name}\r\n=ypart begin={} end={}\r\n",
            begin + 1,
            begin + data.len()
        )
        .as_bytes(),
    );
    let mut col = 0;
    for (i, &b) in data.iter().enumerate() {
        let e = b.wrapping_add(42);
        let last_in_line = col + 1 >= LINE || i + 1 == data.len();
        let critical = matches!(e, 0 | b'\n' | b'\r' | b'=')
            || (col == 0 && matches!(e, b'\t' | b' ' | b'.'))
            || (last_in_line && matches!(e, b'\t' | b' '));
        if critical {
            out.push(b'=');
            out.push(e.wrapping_add(64));
            col += 2;
        } else {
            out.push(e);
            col += 1;
        }
        if col >= LINE {
            out.extend(b"\r\n");
            col = 0;
        }
    }
    if col > 0 {
        out.extend(b"\r\n");
    }
    out.extend(
        format!(
            "=yend size={} part={part} pcrc32={:08x}\r\n",
            data.len(),
            crc32fast::hash(data)
        )
        .as_bytes(),
    );
    out
}

/// Why a yEnc part does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YencError {
    #[error("a line ends in an escape")]
    DanglingEscape,
    #[error("CRC32 {got:08x} does not match {want:08x}")]
    Crc { got: u32, want: u32 },
    #[error("no =yend with pcrc32")]
    NoCrc,
}

/// Decodes a yEnc part back to its bytes, checking its CRC32 (for tests,
/// and to prove what the server sends is what NZBGet will check).
pub fn yenc_decode(body: &[u8]) -> Result<Vec<u8>, YencError> {
    let text = body;
    let mut out = Vec::new();
    let mut crc: Option<u32> = None;
    for line in text.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(b"=ybegin") || line.starts_with(b"=ypart") {
            continue;
        }
        if line.starts_with(b"=yend") {
            let s = String::from_utf8_lossy(line);
            crc = s
                .split(' ')
                .find_map(|f| f.strip_prefix("pcrc32="))
                .and_then(|h| u32::from_str_radix(h, 16).ok());
            break;
        }
        let mut it = line.iter();
        while let Some(&c) = it.next() {
            let c = if c == b'=' {
                it.next().ok_or(YencError::DanglingEscape)?.wrapping_sub(64)
            } else {
                c
            };
            out.push(c.wrapping_sub(42));
        }
    }
    match crc {
        Some(c) if c == crc32fast::hash(&out) => Ok(out),
        Some(want) => Err(YencError::Crc {
            got: crc32fast::hash(&out),
            want,
        }),
        None => Err(YencError::NoCrc),
    }
}

/// Splits `data` into articles of `segment` bytes with message ids made
/// from `tag`.
pub fn post(name: &str, data: &[u8], segment: usize, tag: &str) -> Vec<Article> {
    let chunks: Vec<&[u8]> = data.chunks(segment.max(1)).collect();
    let total = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| Article {
            message_id: format!("part{}of{total}.{tag}@news.lab", i + 1),
            body: yenc_part(name, i + 1, total, data.len(), i * segment, c),
            bytes: c.len(),
        })
        .collect()
}

/// The NZB file of a post (newzbin's DTD): one file, its segments in order.
pub fn nzb(name: &str, group: &str, articles: &[Article]) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE nzb PUBLIC \"-//newzBin//DTD NZB 1.1//EN\" \"http://www.newzbin.com/DTD/nzb/nzb-1.1.dtd\">\n<nzb xmlns=\"http://www.newzbin.com/DTD/2003/nzb\">\n",
    );
    x.push_str(&format!(
        " <file poster=\"leakhound &lt;lab@news.lab&gt;\" date=\"1764547200\" subject=\"&quot;{name}&quot; yEnc (1/{})\">\n  <groups><group>{group}</group></groups>\n  <segments>\n",
        articles.len()
    ));
    for (i, a) in articles.iter().enumerate() {
        x.push_str(&format!(
            "   <segment bytes=\"{}\" number=\"{}\">{}</segment>\n",
            a.body.len(),
            i + 1,
            a.message_id
        ));
    }
    x.push_str("  </segments>\n </file>\n</nzb>\n");
    x
}

/// A reader's command, as the news server understands it.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Capabilities,
    ModeReader,
    AuthUser,
    AuthPass,
    Group(String),
    /// ARTICLE, BODY, HEAD or STAT of a message id (without brackets).
    Fetch {
        what: Fetch,
        message_id: String,
    },
    Date,
    Quit,
    Unknown(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fetch {
    Article,
    Body,
    Head,
    Stat,
}

/// Reads one command line (without its CRLF). Case-insensitive verbs.
pub fn parse_command(line: &str) -> Command {
    let mut parts = line.trim().splitn(2, ' ');
    let verb = parts.next().unwrap_or("").to_ascii_uppercase();
    let arg = parts.next().unwrap_or("").trim();
    let fetch = |what| {
        let id = arg.trim_start_matches('<').trim_end_matches('>');
        Command::Fetch {
            what,
            message_id: id.to_string(),
        }
    };
    match verb.as_str() {
        "CAPABILITIES" => Command::Capabilities,
        "MODE" if arg.eq_ignore_ascii_case("READER") => Command::ModeReader,
        "AUTHINFO" => {
            if arg.to_ascii_uppercase().starts_with("USER") {
                Command::AuthUser
            } else {
                Command::AuthPass
            }
        }
        "GROUP" => Command::Group(arg.to_string()),
        "ARTICLE" => fetch(Fetch::Article),
        "BODY" => fetch(Fetch::Body),
        "HEAD" => fetch(Fetch::Head),
        "STAT" => fetch(Fetch::Stat),
        "DATE" => Command::Date,
        "QUIT" => Command::Quit,
        _ => Command::Unknown(verb),
    }
}

/// The server's answer to a fetch of `id` whose article is `article`
/// (`None`: not on this server). Multi-line answers end in ".\r\n".
pub fn fetch_answer(what: Fetch, id: &str, article: Option<&Article>, group: &str) -> Vec<u8> {
    let Some(a) = article else {
        return b"430 No such article\r\n".to_vec();
    };
    let head = format!(
        "From: leakhound <lab@news.lab>\r\nNewsgroups: {group}\r\nSubject: {id}\r\nMessage-ID: <{id}>\r\n"
    );
    let mut out = Vec::with_capacity(a.body.len() + head.len() + 64);
    match what {
        Fetch::Stat => out.extend(format!("223 0 <{id}>\r\n").as_bytes()),
        Fetch::Head => {
            out.extend(format!("221 0 <{id}>\r\n{head}.\r\n").as_bytes());
        }
        Fetch::Body => {
            out.extend(format!("222 0 <{id}>\r\n").as_bytes());
            out.extend(&a.body);
            out.extend(b".\r\n");
        }
        Fetch::Article => {
            out.extend(format!("220 0 <{id}>\r\n{head}\r\n").as_bytes());
            out.extend(&a.body);
            out.extend(b".\r\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yenc_round_trips_every_byte_and_escapes_what_nntp_cannot_carry() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let body = yenc_part("x.bin", 1, 1, 1000, 0, &data);
        assert_eq!(yenc_decode(&body), Ok(data.clone()));
        let text = body.split(|&b| b == b'\n').skip(2);
        for line in text {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(!line.contains(&0) && !line.contains(&b'\r'));
            assert!(!line.starts_with(b"."), "a line starts with a dot");
            assert!(line.len() <= LINE + 1 || line.starts_with(b"=y"));
        }
        let head = String::from_utf8_lossy(&body[..80]);
        assert!(head.starts_with("=ybegin part=1 total=1 line=128 size=1000 name=x.bin\r\n=ypart begin=1 end=1000\r\n"), "{head}");
        // A damaged body fails its CRC.
        let mut bad = body.clone();
        bad[100] ^= 1;
        let e = yenc_decode(&bad).unwrap_err();
        assert!(
            matches!(e, YencError::Crc { got, want } if got != want),
            "{e:?}"
        );
        assert!(e.to_string().starts_with("CRC32 "), "{e}");
        assert_eq!(yenc_decode(b"x\r\n"), Err(YencError::NoCrc));
        assert_eq!(
            yenc_decode(b"ab=\r\n=yend pcrc32=0\r\n").map_err(|e| e.to_string()),
            Err("a line ends in an escape".into())
        );
    }

    #[test]
    fn a_post_is_articles_in_order_and_its_nzb_lists_them() {
        let data = vec![7u8; 1000];
        let arts = post("f.bin", &data, 400, "abc");
        assert_eq!(arts.len(), 3);
        assert_eq!(arts[2].message_id, "part3of3.abc@news.lab");
        assert_eq!(arts.iter().map(|a| a.bytes).sum::<usize>(), 1000);
        assert_eq!(yenc_decode(&arts[1].body).unwrap(), vec![7u8; 400]);
        let x = nzb("f.bin", "alt.binaries.lab", &arts);
        assert!(x.contains("<group>alt.binaries.lab</group>"));
        assert!(x.contains(&format!(
            "<segment bytes=\"{}\" number=\"2\">part2of3.abc@news.lab</segment>",
            arts[1].body.len()
        )));
        assert!(x.contains("subject=\"&quot;f.bin&quot; yEnc (1/3)\""));
    }

    #[test]
    fn commands_are_read_and_fetches_answered() {
        assert_eq!(
            parse_command("body <part1of3.abc@news.lab>"),
            Command::Fetch {
                what: Fetch::Body,
                message_id: "part1of3.abc@news.lab".into()
            }
        );
        assert_eq!(parse_command("AUTHINFO USER lab"), Command::AuthUser);
        assert_eq!(parse_command("AUTHINFO PASS x"), Command::AuthPass);
        assert_eq!(parse_command("mode reader"), Command::ModeReader);
        assert_eq!(parse_command("GROUP alt.x"), Command::Group("alt.x".into()));
        assert_eq!(parse_command("XYZZY 1"), Command::Unknown("XYZZY".into()));
        assert_eq!(parse_command(""), Command::Unknown(String::new()));
        let a = &post("f", b"hi", 10, "t")[0];
        let body = fetch_answer(Fetch::Body, "x@y", Some(a), "g");
        assert!(body.starts_with(b"222 0 <x@y>\r\n=ybegin"));
        assert!(body.ends_with(b"\r\n.\r\n"));
        assert_eq!(
            fetch_answer(Fetch::Body, "x@y", None, "g"),
            b"430 No such article\r\n"
        );
        assert!(
            fetch_answer(Fetch::Article, "x@y", Some(a), "g").starts_with(b"220 0 <x@y>\r\nFrom:")
        );
    }
}
