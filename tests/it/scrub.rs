//! Secrets by value, end to end (needs root): a run with a canary per path
//! a secret reaches leakhound by (a value interpolated from the host's
//! environment under a plain name, a `PASS` in `.env`, a value read through
//! `env_file:`, the credentials inside an UP command given with `--env`, a
//! secret-looking `--env`), then a grep of everything it leaves (reports,
//! logs, pcaps, made scenarios) and of what it printed finds none; the
//! gateway's own log shows the UP command ran, redacted. And `lab up`
//! keeps `--env` values out of every argument list it starts.

use std::path::Path;

use crate::common::{UpLab, files_under as files, fresh_path, printed};

fn holds(bytes: &[u8], s: &str) -> bool {
    bytes.windows(s.len()).any(|w| w == s.as_bytes())
}

#[test]
fn a_run_leaves_no_canary_anywhere() {
    let tag = std::process::id();
    let host = format!("canary-hostenv-{tag}-a1");
    let dotenv_pass = format!("canary-dotenv-pass-{tag}-b2");
    let env_file = format!("canary-envfile-{tag}-c3");
    let up_cred = format!("canary-upcred-{tag}-d4");
    let argv_token = format!("canary-argvtoken-{tag}-e5");
    let canaries = [&host, &dotenv_pass, &env_file, &up_cred, &argv_token];

    let dir = tempfile::tempdir().unwrap();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/seed");
    let compose = std::fs::read_to_string(seed.join("docker-compose.yml"))
        .unwrap()
        .replace(
            "      - LOG_LEVEL=info\n",
            "      - LOG_LEVEL=info\n      - VPN_PORT_FORWARDING=on\n      - VPN_PORT_FORWARDING_GATEWAY=10.64.0.1\n      - VPN_PORT_FORWARDING_DOWN_COMMAND=true ${LH_SCRUB_HOST_VALUE} ${PASS}\n",
        )
        .replace(
            "    environment:\n",
            "    env_file: gluetun.env\n    environment:\n",
        );
    assert!(compose.contains("${LH_SCRUB_HOST_VALUE}") && compose.contains("env_file"));
    std::fs::write(dir.path().join("docker-compose.yml"), compose).unwrap();
    let dot =
        std::fs::read_to_string(seed.join(".env")).unwrap() + &format!("PASS={dotenv_pass}\n");
    std::fs::write(dir.path().join(".env"), dot).unwrap();
    // TZ is read and left out (no meaning for the network): still a value
    // that was read.
    std::fs::write(dir.path().join("gluetun.env"), format!("TZ={env_file}\n")).unwrap();

    let out = fresh_path("scrub-canaries");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .arg("run")
        .arg("--compose")
        .arg(dir.path().join("docker-compose.yml"))
        .args(["--only", "forwarded-port", "--env"])
        .arg(format!(
            "VPN_PORT_FORWARDING_UP_COMMAND=true --password {up_cred}"
        ))
        .arg("--env")
        .arg(format!("MY_API_TOKEN={argv_token}"))
        .arg("--out")
        .arg(&out)
        .env("LH_SCRUB_HOST_VALUE", &host)
        .output()
        .unwrap();
    let t = printed(&o);
    // It ran (a verdict, not a refusal), and said to use a file.
    assert!(matches!(o.status.code(), Some(0 | 1)), "{t}");
    assert!(t.contains("warning: --env MY_API_TOKEN"), "{t}");
    // The paths were taken: the gateway ran the UP command and logged it,
    // and summary.json's configuration holds the DOWN command, redacted.
    let all = files(&out);
    let gateway_logs: Vec<String> = all
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".log"))
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .filter(|t| t.contains("up command"))
        .collect();
    assert!(
        gateway_logs
            .iter()
            .any(|l| l.contains("true --password <redacted>")),
        "no gateway log shows the UP command: {:?}",
        all
    );
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(
        summary.contains("\"VPN_PORT_FORWARDING_DOWN_COMMAND\": \"true <redacted> <redacted>\""),
        "{summary}"
    );
    assert!(
        all.iter()
            .any(|f| f.extension().is_some_and(|e| e == "pcap"))
    );
    for c in canaries {
        assert!(!t.contains(c.as_str()), "{c} printed:\n{t}");
        for f in &all {
            let bytes = std::fs::read(f).unwrap();
            assert!(!holds(&bytes, c), "{c} in {}", f.display());
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

/// The processes whose argument list holds `s`.
fn cmdlines_holding(s: &str) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && holds(&c, s)
        {
            found.push(String::from_utf8_lossy(&c).replace('\0', " "));
        }
    }
    found
}

#[test]
fn lab_up_keeps_env_values_out_of_every_argument_list() {
    let tag = std::process::id();
    let token = format!("canary-labup-token-{tag}-f6");
    let up_cred = format!("canary-labup-upcred-{tag}-g7");
    let lab = UpLab::up_with(&[
        format!("MY_API_TOKEN={token}"),
        format!("VPN_PORT_FORWARDING_UP_COMMAND=true --password {up_cred}"),
    ]);
    // The gateway got them, by its environment (root only reads it).
    let gw = lab.state.gateway_pid.expect("the gateway's process");
    let environ = std::fs::read(format!("/proc/{gw}/environ")).unwrap();
    assert!(holds(&environ, &format!("MY_API_TOKEN={token}")));
    // No argument list holds them: not the lab's process, not the gateway,
    // not anything they started.
    for c in [&token, &up_cred] {
        assert_eq!(cmdlines_holding(c), Vec::<String>::new(), "{c}");
        for f in files(&lab.state.logs) {
            assert!(
                !holds(&std::fs::read(&f).unwrap(), c),
                "{c} in {}",
                f.display()
            );
        }
    }
}

#[test]
fn a_stock_gateways_raw_bytes_leave_every_report_readable() {
    // The stock gateway without its kill switch lets the port mapping
    // requests reach the home router (its correct form drops them on the
    // egress hook too, raw frames included): the router's service log
    // holds the raw queries it heard and the failure messages quote them.
    let out = fresh_path("scrub-stock");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docker/reference/wg-quick-gw.sh");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_leakhound"))
        .args([
            "run",
            "--target",
            "command",
            "--only",
            "port-mapping-requests",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .arg("--")
        .arg(&script)
        .arg("--no-killswitch")
        .output()
        .unwrap();
    let t = printed(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    // The bytes were there, and are shown escaped.
    assert!(junit.contains("home-router heard from"), "{junit}");
    assert!(junit.contains("\\x00"), "{junit}");
    let x = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg(out.join("junit.xml"))
        .output()
        .unwrap();
    assert!(x.status.success(), "{}", printed(&x));
    let summary = std::fs::read_to_string(out.join("summary.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&summary).expect("summary.json parses");
    for (name, text) in [
        ("junit.xml", &junit),
        ("summary.json", &summary),
        (
            "report.html",
            &std::fs::read_to_string(out.join("report.html")).unwrap(),
        ),
        ("the terminal", &t),
    ] {
        assert!(
            !text
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "a control character in {name}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
