//! The user's hook commands (VPN_UP_COMMAND, VPN_DOWN_COMMAND and the port
//! forwarding's UP/DOWN commands), run as Gluetun runs them: placeholders
//! replaced in the text, the text split into words like a POSIX shell
//! would (backslash escapes, single and double quotes, escaped newlines;
//! no expansion of any kind: no `$VAR`, no globs, no redirections), the
//! first word executed directly with the rest as its arguments. Shell
//! features need a shell: `/bin/sh -c '...'`. Output lines go to the log
//! (so through its secret redaction), stdout at info, stderr as warnings.

use std::time::Duration;

/// How long a command may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("the command is empty")]
    Empty,
    #[error("a {0} quote is not closed")]
    Unclosed(&'static str),
    #[error("it ends with a lone backslash")]
    TrailingBackslash,
}

/// Splits `cmd` into words as Gluetun does (see the module's rules). Pure.
pub fn split(cmd: &str) -> Result<Vec<String>, SplitError> {
    let mut words = Vec::new();
    let mut word = String::new();
    // A word exists once anything (even an empty quote pair) started it.
    let mut started = false;
    let mut chars = cmd.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            '\\' => match chars.next() {
                None => return Err(SplitError::TrailingBackslash),
                // An escaped newline joins two lines.
                Some('\n') => {}
                Some(n) => {
                    word.push(n);
                    started = true;
                }
            },
            '\'' => {
                started = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitError::Unclosed("single")),
                        Some('\'') => break,
                        Some(n) => word.push(n),
                    }
                }
            }
            '"' => {
                started = true;
                loop {
                    match chars.next() {
                        None => return Err(SplitError::Unclosed("double")),
                        Some('"') => break,
                        // Inside double quotes a backslash escapes only
                        // these; before anything else it stays.
                        Some('\\') => match chars.peek().copied() {
                            Some('\n') => {
                                chars.next();
                            }
                            Some(e @ ('$' | '`' | '"' | '\\')) => {
                                chars.next();
                                word.push(e);
                            }
                            _ => word.push('\\'),
                        },
                        Some(n) => word.push(n),
                    }
                }
            }
            other => {
                word.push(other);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

/// Runs `cmd` (placeholders already replaced) within [`TIMEOUT`]; `what`
/// names it in the log ("VPN up", "port forwarding down"). Never fails:
/// what went wrong is logged.
pub async fn run(cmd: &str, what: &str) {
    let words = match split(cmd) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("{what} command not run: {e}: {cmd}");
            return;
        }
    };
    let child = tokio::process::Command::new(&words[0])
        .args(&words[1..])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(TIMEOUT, child).await {
        Ok(Ok(out)) => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                tracing::info!("{what} command: {line}");
            }
            for line in String::from_utf8_lossy(&out.stderr).lines() {
                tracing::warn!("{what} command: {line}");
            }
            if out.status.success() {
                tracing::info!("{what} command done: {cmd}");
            } else {
                tracing::warn!("{what} command failed ({}): {cmd}", out.status);
            }
        }
        Ok(Err(e)) => tracing::warn!("{what} command could not run ({}): {e}", words[0]),
        Err(_) => tracing::warn!("{what} command killed after {TIMEOUT:?}: {cmd}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(cmd: &str) -> Vec<String> {
        split(cmd).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
    }

    #[test]
    fn words_split_like_a_shell_without_expansion() {
        assert_eq!(ok("echo up 6881 wg0"), ["echo", "up", "6881", "wg0"]);
        assert_eq!(ok("  echo\t a \n b  "), ["echo", "a", "b"]);
        assert_eq!(
            ok(r#"/bin/sh -c "echo hello > /tmp/x""#),
            ["/bin/sh", "-c", "echo hello > /tmp/x"]
        );
        assert_eq!(ok("echo 'a  b' c"), ["echo", "a  b", "c"]);
        assert_eq!(ok(r#"echo a\ b"#), ["echo", "a b"]);
        assert_eq!(ok("echo a\\\nb"), ["echo", "ab"]);
        assert_eq!(
            ok(r#"echo "a\"b" "\$HOME" "\x""#),
            ["echo", "a\"b", "$HOME", "\\x"]
        );
        assert_eq!(ok(r#"echo '\n' '' x"#), ["echo", "\\n", "", "x"]);
        assert_eq!(ok("echo a'b'\"c\"d"), ["echo", "abcd"]);
        // No expansion, no redirection: they are plain words.
        assert_eq!(
            ok("echo $HOME *.txt >> f"),
            ["echo", "$HOME", "*.txt", ">>", "f"]
        );
    }

    #[test]
    fn broken_commands_are_errors() {
        assert_eq!(split(""), Err(SplitError::Empty));
        assert_eq!(split(" \n "), Err(SplitError::Empty));
        assert_eq!(split("echo 'a"), Err(SplitError::Unclosed("single")));
        assert_eq!(split("echo \"a"), Err(SplitError::Unclosed("double")));
        assert_eq!(split("echo a\\"), Err(SplitError::TrailingBackslash));
    }

    #[tokio::test]
    async fn a_command_runs_without_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("out");
        // With a shell the redirection would write the file; without one
        // `>` is an argument of echo.
        run(&format!("echo hi > {}", f.display()), "test").await;
        assert!(!f.exists());
        run(&format!("/bin/sh -c 'echo hi > {}'", f.display()), "test").await;
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "hi\n");
    }
}
