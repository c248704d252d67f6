use super::*;

const COMPOSE: &str = r#"
services:
  gluetun:
    image: qmcgaw/gluetun:v3
    cap_add: [NET_ADMIN]
    environment:
      VPN_SERVICE_PROVIDER: custom
      VPN_TYPE: wireguard
      WIREGUARD_PRIVATE_KEY: "c2VjcmV0LWtleS1kby1ub3QtcHJpbnQtbWUtZXZlcj0="
      FIREWALL_OUTBOUND_SUBNETS: 192.168.10.0/24
      FIREWALL_INPUT_PORTS: 8080
      DOT: "off"
    env_file:
      - gluetun.env
      - path: more.env
    ports:
      - 8080:8080
      - "127.0.0.1:9696:9696/tcp"
      - target: 6789
        published: "16789"
      - "6881:6881/udp"
  qbittorrent:
    image: linuxserver/qbittorrent
    network_mode: service:gluetun
  prowlarr:
    image: linuxserver/prowlarr
    network_mode: "service:gluetun"
  other:
    image: nginx
"#;

#[test]
fn the_gateway_service_its_variables_ports_and_dependents_are_read() {
    let g = parse_compose("docker-compose.yml", COMPOSE, None, &|_| None).unwrap();
    assert_eq!(g.service, "gluetun");
    assert_eq!(g.dependents, ["prowlarr", "qbittorrent"]);
    assert_eq!(g.env_files, ["gluetun.env", "more.env"]);
    let get = |k: &str| {
        g.environment
            .iter()
            .find(|v| v.key == k)
            .map(|v| v.value.expose().to_string())
    };
    assert_eq!(get("FIREWALL_INPUT_PORTS").as_deref(), Some("8080"));
    assert_eq!(get("DOT").as_deref(), Some("off"));
    assert_eq!(
        g.ports,
        [
            Published {
                published: 8080,
                target: 8080,
                udp: false,
                host_only: false,
            },
            Published {
                published: 9696,
                target: 9696,
                udp: false,
                host_only: true,
            },
            Published {
                published: 16789,
                target: 6789,
                udp: false,
                host_only: false,
            },
            Published {
                published: 6881,
                target: 6881,
                udp: true,
                host_only: false,
            },
        ]
    );
}

#[test]
fn secrets_never_print() {
    let g = parse_compose("docker-compose.yml", COMPOSE, None, &|_| None).unwrap();
    let shown = format!("{g:?}");
    assert!(!shown.contains("c2VjcmV0"), "{shown}");
    assert!(shown.contains("<redacted>"));
    let key = g
        .environment
        .iter()
        .find(|v| v.key == "WIREGUARD_PRIVATE_KEY")
        .unwrap();
    assert!(matches!(key.value, Value::Secret(_)));
    assert!(key.value.expose().starts_with("c2VjcmV0"));
    for k in [
        "WIREGUARD_PRESHARED_KEY",
        "OPENVPN_PASSWORD",
        "QBT_WEBUI_PASSWORD",
        "API_TOKEN",
    ] {
        assert!(is_secret(k), "{k}");
    }
    assert!(!is_secret("FIREWALL_INPUT_PORTS"));
}

#[test]
fn the_list_form_of_environment_is_read_too() {
    let text = "services:\n  vpn:\n    image: gluetun\n    environment:\n      - VPN_TYPE=wireguard\n      - WIREGUARD_ADDRESSES=10.64.0.2/32\n      - EMPTY\n";
    let g = parse_compose("c.yml", text, None, &|_| None).unwrap();
    let keys: Vec<&str> = g.environment.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(keys, ["VPN_TYPE", "WIREGUARD_ADDRESSES", "EMPTY"]);
    assert_eq!(g.environment[1].value.expose(), "10.64.0.2/32");
    assert_eq!(g.environment[2].value.expose(), "");
}

#[test]
fn which_service_is_the_gateway_is_never_guessed() {
    let none = "services:\n  web:\n    image: nginx\n";
    let e = parse_compose("c.yml", none, None, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("c.yml: no WireGuard gateway service"), "{e}");

    let two = "services:\n  a:\n    image: qmcgaw/gluetun\n  b:\n    environment:\n      VPN_TYPE: wireguard\n";
    let e = parse_compose("c.yml", two, None, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("2 services could be the gateway (a, b): name one with --service"),
        "{e}"
    );
    assert_eq!(
        parse_compose("c.yml", two, Some("b"), &|_| None)
            .unwrap()
            .service,
        "b"
    );

    let e = parse_compose("c.yml", two, Some("c"), &|_| None)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "c.yml: no service \"c\" (services: a, b)");
}

#[test]
fn what_the_gateway_cannot_honour_names_file_service_and_key() {
    let ovpn = "services:\n  g:\n    image: qmcgaw/gluetun\n    environment:\n      VPN_TYPE: openvpn\n      OPENVPN_PASSWORD: hunter2\n";
    let e = parse_compose("c.yml", ovpn, None, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("c.yml: service g: VPN_TYPE: \"openvpn\""),
        "{e}"
    );
    assert!(!e.contains("hunter2"));

    let range =
        "services:\n  g:\n    image: qmcgaw/gluetun\n    ports:\n      - \"8000-8010:8000-8010\"\n";
    let e = parse_compose("c.yml", range, None, &|_| None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("c.yml: service g: ports: \"8000-8010\" is not a port"),
        "{e}"
    );
    let port = |entry: &str| {
        let text = format!(
            "services:\n  g:\n    image: qmcgaw/gluetun\n    ports:\n      - \"{entry}\"\n"
        );
        parse_compose("c.yml", &text, None, &|_| None).unwrap_err()
    };
    let e = port("8000:8000/sctp");
    assert_eq!(
        e.to_string(),
        "c.yml: service g: ports: \"8000:8000/sctp\": protocol \"sctp\" is not tcp or udp"
    );
    assert!(matches!(
        &e,
        UserConfError::Key { problem, .. }
            if matches!(**problem, KeyProblem::Port(PortError::Protocol { .. }))
    ));
    assert!(std::error::Error::source(&e).is_some());
    assert_eq!(
        port("1:2:3:4").to_string(),
        "c.yml: service g: ports: \"1:2:3:4\" is not [IP:]PUBLISHED:TARGET"
    );
}

#[test]
fn yaml_errors_name_line_and_column() {
    let bad = "services:\n  g:\n    image: [unclosed\n";
    match parse_compose("c.yml", bad, None, &|_| None).unwrap_err() {
        UserConfError::In(FileError::At {
            file, line, column, ..
        }) => {
            assert_eq!(file, "c.yml");
            assert!(line >= 3, "line {line}");
            assert!(column >= 1);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn env_files_read_like_compose_and_errors_point_at_the_line() {
    let text = "# comment\n\nVPN_TYPE=wireguard\n  WIREGUARD_PRIVATE_KEY='abc='\nDNS_ADDRESS=\"127.0.0.1\"\nEMPTY=\n";
    let v = parse_env_file("gluetun.env", text).unwrap();
    let keys: Vec<(&str, Option<usize>)> = v.iter().map(|v| (v.key.as_str(), v.line)).collect();
    assert_eq!(
        keys,
        [
            ("VPN_TYPE", Some(3)),
            ("WIREGUARD_PRIVATE_KEY", Some(4)),
            ("DNS_ADDRESS", Some(5)),
            ("EMPTY", Some(6)),
        ]
    );
    assert_eq!(v[1].value.expose(), "abc=");
    assert!(matches!(v[1].value, Value::Secret(_)));
    assert_eq!(v[2].value.expose(), "127.0.0.1");

    // A line without '=' may be a pasted key: the error points at it
    // without quoting it.
    let e = parse_env_file("gluetun.env", "VPN_TYPE=wireguard\n  c2VjcmV0LWtleQ+/\n")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "gluetun.env:2:3: no '=' on this line (expected KEY=VALUE)"
    );
    let e = parse_env_file("gluetun.env", "1c2VjcmV0+/=x\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("gluetun.env:1:1: the name before '=' is not a variable name"),
        "{e}"
    );
    assert!(!e.contains("c2VjcmV0"), "{e}");
}

fn vars(k: &str) -> Option<String> {
    match k {
        "WG_PRIVATE_KEY" => Some("a2V5LWZyb20tZG90LWVudi1uZXZlci1wcmludGVkIT0=".into()),
        "FORWARD_PORT" => Some("6881".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn interpolation_follows_compose() {
    let i = |s: &str| {
        let mut unset = Vec::new();
        interpolate(s, &vars, &mut unset).map(|v| (v, unset))
    };
    let ok = |s: &str| i(s).unwrap().0;
    assert_eq!(ok("port ${FORWARD_PORT}"), "port 6881");
    assert_eq!(ok("$FORWARD_PORT/udp"), "6881/udp");
    assert_eq!(ok("$$FORWARD_PORT"), "$FORWARD_PORT");
    assert_eq!(ok("${NOPE:-51820}"), "51820");
    assert_eq!(ok("${EMPTY:-x}"), "x");
    assert_eq!(ok("${EMPTY-x}"), "");
    assert_eq!(ok("${NOPE-${FORWARD_PORT}}"), "6881");
    assert_eq!(ok("${FORWARD_PORT:+set}"), "set");
    assert_eq!(ok("${EMPTY:+set}"), "");
    assert_eq!(ok("a $ b"), "a $ b");
    assert_eq!(i("${NOPE}x").unwrap(), ("x".into(), vec!["NOPE".into()]));
    let e = |s: &str| i(s).unwrap_err().to_string();
    assert_eq!(
        e("${NOPE:?set it in .env}"),
        "NOPE is required: set it in .env"
    );
    assert_eq!(e("${NOPE?}"), "NOPE is required");
    assert_eq!(e("a ${FORWARD_PORT"), "\"${FORWARD_PORT\": no closing '}'");
    assert_eq!(e("${1X}"), "\"${1X}\": not a variable name");
    assert_eq!(e("${X/a/b}"), "\"${X/a/b}\": unknown substitution");
}

#[test]
fn the_seed_style_file_takes_its_values_from_the_variables() {
    let text = r#"
services:
  gluetun:
    image: qmcgaw/gluetun
    ports: ["${FORWARD_PORT}:${FORWARD_PORT}/udp", "8080:8080"]
    environment:
      - VPN_SERVICE_PROVIDER=custom
      - VPN_TYPE=wireguard
      - WIREGUARD_PRIVATE_KEY=${WG_PRIVATE_KEY}
      - VPN_ENDPOINT_IP=${VPN_IP}
      - FIREWALL_VPN_INPUT_PORTS=${FORWARD_PORT}
  qbittorrent:
    network_mode: "service:${GW:-gluetun}"
"#;
    let g = parse_compose("c.yml", text, None, &vars).unwrap();
    let get = |k: &str| {
        g.environment
            .iter()
            .find(|v| v.key == k)
            .map(|v| v.value.expose().to_string())
    };
    assert_eq!(get("FIREWALL_VPN_INPUT_PORTS").as_deref(), Some("6881"));
    assert_eq!(get("VPN_ENDPOINT_IP").as_deref(), Some(""));
    assert_eq!(g.unset, ["VPN_IP"]);
    assert_eq!(g.dependents, ["qbittorrent"]);
    assert_eq!(
        g.ports[0],
        Published {
            published: 6881,
            target: 6881,
            udp: true,
            host_only: false,
        }
    );
    // The substituted key is still a secret.
    let key = g
        .environment
        .iter()
        .find(|v| v.key == "WIREGUARD_PRIVATE_KEY")
        .unwrap();
    assert!(!format!("{key:?}").contains("a2V5"));
    let e = parse_compose(
        "c.yml",
        "services:\n  g:\n    image: gluetun\n    environment:\n      A: ${B:?needed}\n",
        None,
        &vars,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "c.yml: service g: A: B is required: needed");
}

#[test]
fn secrets_by_value_are_registered_wherever_they_came_from() {
    let host = |k: &str| (k == "CI_JOB_TOKEN").then(|| "canary-host-env-4417".to_string());
    let g = parse_compose(
        "c.yml",
        "services:\n  gw:\n    image: qmcgaw/gluetun\n    environment:\n      FOO: ${CI_JOB_TOKEN}\n      PASS: canary-pass-name-4417\n      VPN_TYPE: wireguard\n",
        None,
        &host,
    )
    .unwrap();
    assert!(matches!(
        g.environment
            .iter()
            .find(|v| v.key == "PASS")
            .unwrap()
            .value,
        Value::Secret(_)
    ));
    parse_env_file("e.env", "PLAIN_NAME=canary-env-file-4417\nPORT=8080\n").unwrap();
    let t = crate::scrub::redact(
        "canary-host-env-4417 canary-pass-name-4417 canary-env-file-4417 8080 wireguard",
    );
    assert_eq!(t, "<redacted> <redacted> <redacted> 8080 wireguard");
}

#[test]
fn interpolation_nests_at_most_max_nesting_deep() {
    let nested = |levels: usize| {
        format!(
            "{}${{FORWARD_PORT}}{}",
            "${NOPE:-".repeat(levels),
            "}".repeat(levels)
        )
    };
    let i = |s: &str| interpolate(s, &vars, &mut Vec::new());
    assert_eq!(i(&nested(MAX_NESTING)).unwrap(), "6881");
    let err = i(&nested(MAX_NESTING + 1)).unwrap_err();
    assert_eq!(err, InterpolateError::TooDeep);
    assert_eq!(
        err.to_string(),
        format!("substitutions nested more than {MAX_NESTING} deep")
    );
    // Deep enough to overflow the stack without the bound: an error.
    assert_eq!(i(&nested(20_000)).unwrap_err(), err);
}
