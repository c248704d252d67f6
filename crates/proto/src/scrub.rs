//! The one choke point for text leaving leakhound (terminal, logs, JUnit,
//! summary.json, JSON Lines, report.html, Prometheus labels): the
//! process-wide registry of secret values and [`redact`], which replaces
//! each by `<redacted>`; [`sanitize`], which makes any text (or bytes) safe
//! for every report format; and the rules deciding what is a secret
//! ([`is_secret_name`], [`plainly_not_secret`], [`command_credentials`]).
//! Pure but for the registry, which is filled as soon as a secret is read
//! and only ever grows.
//!
//! Rules, in short:
//! * A value is registered when it reached leakhound as a secret: under a
//!   secret-looking name, from a secret file, from an `env_file:`/`.env` or
//!   the host's environment through `${VAR}` (unless [`plainly_not_secret`]),
//!   the credentials inside UP/DOWN commands, control-server keys and
//!   passwords, the per-run WebUI credentials, WireGuard keys.
//! * Values shorter than [`MIN_SECRET_LEN`] bytes are not registered:
//!   replacing every `on` or `80` would wreck the reports, and so short a
//!   secret protects nothing anyway.
//! * [`sanitize`] keeps tab, newline and every character XML 1.0 allows
//!   except control characters; the others (NUL, ESC, CR, DEL, C1 controls,
//!   U+FFFE/U+FFFF) and bytes that are not UTF-8 are shown escaped (`\x00`,
//!   `\u{9b}`), and a text longer than its cap is cut with
//!   "… (n bytes more)".

use std::sync::RwLock;

/// What a secret is replaced by.
pub const REDACTED: &str = "<redacted>";

/// Shorter values are not registered (see the module's rules).
pub const MIN_SECRET_LEN: usize = 4;

/// The cap [`clean`] and [`sanitize`] apply to one text, in bytes.
pub const DEFAULT_CAP: usize = 16 * 1024;

/// The registered secrets, longest first (so a secret containing another
/// is replaced whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers `value` as a secret: from now on [`redact`] replaces it. Values
/// shorter than [`MIN_SECRET_LEN`] are ignored; so is the value's
/// surrounding whitespace.
pub fn register(value: &str) {
    let v = value.trim();
    if v.len() < MIN_SECRET_LEN {
        return;
    }
    let mut s = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !s.iter().any(|x| x == v) {
        s.push(v.to_string());
        s.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    }
}

/// Registers `value` unless it is [`plainly_not_secret`]: for values whose
/// origin (an env file, the host's environment) makes them suspect though
/// their name does not.
pub fn register_unless_plain(value: &str) {
    if !plainly_not_secret(value) {
        register(value);
    }
}

/// Whether a variable holds a command the gateway runs (Gluetun's
/// `VPN_PORT_FORWARDING_UP_COMMAND`/`_DOWN_COMMAND`, any `*_COMMAND`, and
/// `VPN_UP`/`VPN_DOWN`-style hooks): its credentials are secrets.
pub fn is_command_name(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    k.ends_with("_COMMAND") || k.ends_with("_UP") || k.ends_with("_DOWN")
}

/// The one rule for a variable given to leakhound (`NAME=VALUE` from a
/// file, `--env`, the environment): under a secret-looking name its whole
/// value is registered; in a command, the credentials inside it.
pub fn register_variable(key: &str, value: &str) {
    if is_secret_name(key) {
        register(value);
    }
    if is_command_name(key) {
        for c in command_credentials(value) {
            register(&c);
        }
    }
}

/// How many secrets are registered (for tests and diagnostics; never the
/// values).
pub fn registered() -> usize {
    SECRETS.read().unwrap_or_else(|e| e.into_inner()).len()
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    let s = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    redact_with(text, &s)
}

/// `text` with each of `secrets` replaced by [`REDACTED`] in one pass
/// (longest match first at each position, so a replacement is never
/// replaced again). Pure.
pub fn redact_with<S: AsRef<str>>(text: &str, secrets: &[S]) -> String {
    let secrets: Vec<&str> = secrets
        .iter()
        .map(AsRef::as_ref)
        .filter(|s| !s.is_empty())
        .collect();
    if secrets.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    let b = text.as_bytes();
    while i < b.len() {
        let hit = secrets
            .iter()
            .filter(|s| b[i..].starts_with(s.as_bytes()))
            .map(|s| s.len())
            .max();
        match hit {
            Some(n) => {
                out.push_str(&text[copied..i]);
                out.push_str(REDACTED);
                i += n;
                copied = i;
            }
            None => i += 1,
        }
    }
    // Secrets are whole strings, so every cut above is on a char boundary.
    out.push_str(&text[copied..]);
    out
}

/// Bytes with every registered secret replaced (a log a program wrote
/// itself: not necessarily UTF-8, kept byte for byte elsewhere).
pub fn redact_bytes(bytes: &[u8]) -> Vec<u8> {
    let s = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match s
            .iter()
            .find(|x| bytes[i..].starts_with(x.as_bytes()))
            .map(|x| x.len())
        {
            // Longest first: the registry is sorted that way.
            Some(n) => {
                out.extend_from_slice(REDACTED.as_bytes());
                i += n;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// [`redact`] then [`sanitize`]: what every writer does to a foreign text.
pub fn clean(text: &str) -> String {
    sanitize(&redact(text))
}

/// [`clean`] with another cap (a Prometheus label, a title).
pub fn clean_capped(text: &str, cap: usize) -> String {
    sanitize_capped(&redact(text), cap)
}

/// Bytes from outside (a service's log, a captured payload) cleaned:
/// invalid UTF-8 shown escaped, then [`clean`].
pub fn clean_bytes(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        s.push_str(chunk.valid());
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    clean(&s)
}

/// `text` safe for every report: see the module's rules. Capped at
/// [`DEFAULT_CAP`] bytes.
pub fn sanitize(text: &str) -> String {
    sanitize_capped(text, DEFAULT_CAP)
}

/// Whether `c` is kept as it is by [`sanitize`].
fn kept(c: char) -> bool {
    match c {
        '\t' | '\n' => true,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' => false,
        '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    }
}

/// [`sanitize`] with a cap of `cap` bytes of the input (cut at a character
/// boundary; the rest is counted in "(n bytes more)").
pub fn sanitize_capped(text: &str, cap: usize) -> String {
    let mut end = text.len().min(cap);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + 16);
    for c in text[..end].chars() {
        if kept(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    if end < text.len() {
        out.push_str(&format!("… ({} bytes more)", text.len() - end));
    }
    out
}

/// [`sanitize`] for bytes that may not be UTF-8 (no redaction).
pub fn sanitize_bytes(bytes: &[u8], cap: usize) -> String {
    let cut = bytes.len().min(cap);
    let mut s = String::with_capacity(cut);
    for chunk in bytes[..cut].utf8_chunks() {
        s.push_str(&sanitize_capped(chunk.valid(), usize::MAX));
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if cut < bytes.len() {
        s.push_str(&format!("… ({} bytes more)", bytes.len() - cut));
    }
    s
}

/// Every string in a JSON value (keys too) [`clean`]ed, in place: the one
/// place summary.json and the JSON Lines pass through.
pub fn clean_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) => *s = clean(s),
        serde_json::Value::Array(a) => a.iter_mut().for_each(clean_json),
        serde_json::Value::Object(o) => {
            let old = std::mem::take(o);
            for (k, mut x) in old {
                clean_json(&mut x);
                o.insert(clean(&k), x);
            }
        }
        _ => {}
    }
}

/// Whether a variable's name says it holds a secret. The rule: the name,
/// upper-cased, contains PASSWORD, PASSWD, PASSPHRASE, SECRET, TOKEN,
/// API_KEY, APIKEY, PRIVATE_KEY, PRESHARED_KEY or CREDENTIAL; or one of its
/// `_`-separated words is PASS, PSK, COOKIE or KEY (not after PUBLIC); or
/// it is HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE (a role with credentials),
/// VPN_UP_COMMAND or VPN_DOWN_COMMAND (Gluetun's tunnel hooks: the whole
/// command is a secret, not only the credentials [`command_credentials`]
/// finds in it).
/// A name ending in _FILE, _FILEPATH, _SECRETFILE or _PATH names a file,
/// not a secret (the file's content is one when read).
pub fn is_secret_name(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    if ["_FILE", "_FILEPATH", "_SECRETFILE", "_PATH"]
        .iter()
        .any(|s| k.ends_with(s))
    {
        return false;
    }
    const PARTS: [&str; 10] = [
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "PRESHARED_KEY",
        "CREDENTIAL",
    ];
    const WHOLE: [&str; 3] = [
        "HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE",
        "VPN_UP_COMMAND",
        "VPN_DOWN_COMMAND",
    ];
    if WHOLE.contains(&k.as_str()) || PARTS.iter().any(|p| k.contains(p)) {
        return true;
    }
    let words: Vec<&str> = k.split('_').collect();
    words.iter().enumerate().any(|(i, w)| match *w {
        "PASS" | "PSK" | "COOKIE" => true,
        "KEY" => i == 0 || words[i - 1] != "PUBLIC",
        _ => false,
    })
}

/// Whether a value is plainly not a secret, whatever its origin: shorter
/// than [`MIN_SECRET_LEN`], a number, a switch (on/off, yes/no,
/// true/false), one lowercase word of at most 16 letters (`wireguard`,
/// `custom`), an absolute path, or addresses, networks and ports (digits,
/// hex, `.:/,;=[]` and `-` only, with at least one digit and one `.` or `:`
/// or `,`).
pub fn plainly_not_secret(value: &str) -> bool {
    let v = value.trim();
    if v.len() < MIN_SECRET_LEN || v.parse::<f64>().is_ok() {
        return true;
    }
    let low = v.to_ascii_lowercase();
    if ["on", "off", "yes", "no", "true", "false"].contains(&low.as_str()) {
        return true;
    }
    if v.len() <= 16 && v.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return true;
    }
    if v.starts_with('/') && !v.contains(char::is_whitespace) && !v.contains("//") {
        return true;
    }
    v.bytes()
        .all(|b| b.is_ascii_hexdigit() || b".:/,;=[]-".contains(&b))
        && v.bytes().any(|b| b.is_ascii_digit())
        && v.bytes().any(|b| b".:,".contains(&b))
}

/// The credentials inside a command line (an UP/DOWN command): URL user
/// info (`scheme://user:pass@`: the password and `user:pass`), the value of
/// `-u`/`--user`/`-U` (`user:pass`, and its password), of `--password`,
/// `--pass`, `--passwd`, `--http-password`, `--http-passwd`,
/// `--api-key`/`--apikey`/`--token` (also written `--opt=VALUE`), of an
/// `Authorization:`/`X-API-Key:`/`Cookie:` header (the part after its
/// scheme), and of `KEY=VALUE` pairs (query strings, form bodies,
/// assignments) whose key [`is_secret_name`]. Pure.
pub fn command_credentials(cmd: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let words = shell_words(cmd);
    let value_opts = [
        "--password",
        "--pass",
        "--passwd",
        "--http-password",
        "--http-passwd",
        "--api-key",
        "--apikey",
        "--token",
    ];
    let user_opts = ["-u", "--user", "-U"];
    let userpass = |up: &str, out: &mut Vec<String>| {
        out.push(up.to_string());
        if let Some((_, p)) = up.split_once(':') {
            out.push(p.to_string());
        }
    };
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str);
        if let Some(v) = next {
            if value_opts.contains(&w.as_str()) {
                out.push(v.to_string());
            }
            if user_opts.contains(&w.as_str()) {
                userpass(v, &mut out);
            }
            if ["-H", "--header"].contains(&w.as_str()) {
                out.extend(header_secret(v));
            }
        }
        if let Some((opt, v)) = w.split_once('=') {
            if value_opts.contains(&opt) {
                out.push(v.to_string());
            } else if ["--user", "--http-user"].contains(&opt) {
                userpass(v, &mut out);
            } else if opt == "--header" {
                out.extend(header_secret(v));
            }
        }
        if let Some(v) = w
            .strip_prefix("-u")
            .filter(|v| !v.is_empty() && !w.starts_with("--"))
        {
            userpass(v, &mut out);
        }
        out.extend(header_secret(w));
        // URL user info.
        let mut rest = w.as_str();
        while let Some(i) = rest.find("://") {
            let after = &rest[i + 3..];
            let auth_end = after.find(['/', '?', '#']).unwrap_or(after.len());
            if let Some(at) = after[..auth_end].rfind('@') {
                userpass(&after[..at], &mut out);
            }
            rest = after;
        }
        // KEY=VALUE pairs anywhere in the word (query strings, forms,
        // JSON-ish bodies are split on their separators).
        for part in w.split(['&', '?', ' ', ',', ';', '{', '}']) {
            if let Some((k, v)) = part.split_once('=') {
                let k = k.trim_start_matches('-').trim_matches(['"', '\'']);
                if !k.is_empty() && is_secret_name(k) {
                    out.push(v.trim_matches(['"', '\'']).to_string());
                }
            }
        }
    }
    out.retain(|s| s.trim().len() >= MIN_SECRET_LEN);
    out.sort();
    out.dedup();
    out
}

/// The secret part of a header line given as one word: after
/// `Authorization:` its last word (`Basic xxx`, `Bearer xxx`), after
/// `X-API-Key:`/`Cookie:` its value.
fn header_secret(h: &str) -> Option<String> {
    let (name, value) = h.split_once(':')?;
    let name = name.trim().to_ascii_lowercase();
    let value = value.trim();
    match name.as_str() {
        "authorization" | "proxy-authorization" => {
            value.split_whitespace().last().map(str::to_string)
        }
        "x-api-key" | "cookie" => Some(value.to_string()),
        _ => None,
    }
}

/// A command line split into words as a POSIX shell would (quotes and
/// backslashes; no expansion), good enough to find credentials; a `sh -c
/// '...'` argument is split again.
fn shell_words(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut chars = cmd.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                any = true;
            }
            (_, c) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(cur);
    }
    let mut all = Vec::new();
    for w in words {
        if w.contains(char::is_whitespace) {
            all.extend(shell_words(&w));
        }
        all.push(w);
    }
    all
}

#[cfg(test)]
mod tests;
