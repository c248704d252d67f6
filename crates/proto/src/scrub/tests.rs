use super::*;

#[test]
fn registered_secrets_are_replaced_longest_first_and_short_ones_ignored() {
    register("canary-scrub-unit-1234");
    register("canary-scrub-unit-1234-longer");
    register("abc");
    let t = redact("a canary-scrub-unit-1234-longer and canary-scrub-unit-1234, abc");
    assert_eq!(t, "a <redacted> and <redacted>, abc");
    assert!(registered() >= 2);
}

#[test]
fn bytes_are_redacted_byte_for_byte() {
    register("canary-bytes-unit-2718");
    assert_eq!(
        redact_bytes(b"\xff\x00canary-bytes-unit-2718\xfe"),
        b"\xff\x00<redacted>\xfe"
    );
}

#[test]
fn a_replacement_is_not_replaced_again() {
    // "dact" is inside "<redacted>": one pass leaves the marker whole.
    assert_eq!(
        redact_with("xx dact yy redact", &["dact", "redact"]),
        "xx <redacted> yy <redacted>"
    );
    assert_eq!(redact_with("héllo wörld", &["wörld"]), "héllo <redacted>");
    assert_eq!(redact_with("text", &[""]), "text");
}

#[test]
fn forbidden_and_control_characters_are_shown_escaped() {
    assert_eq!(
        sanitize("a\u{0}b\u{1}c\u{5}\td\ne\r\u{1b}[31m\u{7f}\u{9b}\u{fffe}é"),
        "a\\x00b\\x01c\\x05\td\ne\\x0d\\x1b[31m\\x7f\\u{9b}\\u{fffe}é"
    );
    assert_eq!(sanitize_bytes(b"ok\xff\x00\xc3\xa9", 100), "ok\\xff\\x00é");
    assert_eq!(clean_bytes(b"\xfe"), "\\xfe");
}

#[test]
fn long_texts_are_cut_with_what_is_left() {
    let s = "é".repeat(10); // 20 bytes
    assert_eq!(sanitize_capped(&s, 5), "éé… (16 bytes more)");
    assert_eq!(sanitize_capped("short", 5), "short");
    assert_eq!(sanitize_bytes(&[b'a'; 10], 4), "aaaa… (6 bytes more)");
}

#[test]
fn json_strings_and_keys_are_cleaned() {
    register("canary-json-unit-5678");
    let mut v = serde_json::json!({
        "a\u{0}": ["x\u{1}", {"k": "canary-json-unit-5678 here"}], "n": 3
    });
    clean_json(&mut v);
    assert_eq!(
        v,
        serde_json::json!({"a\\x00": ["x\\x01", {"k": "<redacted> here"}], "n": 3})
    );
}

#[test]
fn secret_names_follow_the_documented_rule() {
    for k in [
        "WIREGUARD_PRIVATE_KEY",
        "WIREGUARD_PRESHARED_KEY",
        "OPENVPN_PASSWORD",
        "PASS",
        "DB_PASS",
        "CI_JOB_TOKEN",
        "MY_SECRET",
        "SONARR_API_KEY",
        "APIKEY",
        "OPENVPN_KEY",
        "KEY",
        "AWS_CREDENTIALS",
        "wg_psk",
        "HTTP_CONTROL_SERVER_AUTH_DEFAULT_ROLE",
        "VPN_UP_COMMAND",
        "vpn_down_command",
        "SHADOWSOCKS_PASSWD",
    ] {
        assert!(is_secret_name(k), "{k}");
    }
    for k in [
        "FIREWALL_INPUT_PORTS",
        "WIREGUARD_PUBLIC_KEY",
        "WIREGUARD_PRIVATE_KEY_SECRETFILE",
        "HTTP_CONTROL_SERVER_AUTH_CONFIG_FILEPATH",
        "PASSAGE",
        "KEYBOARD",
        "VPN_TYPE",
        "TZ",
        "VPN_PORT_FORWARDING_UP_COMMAND",
    ] {
        assert!(!is_secret_name(k), "{k}");
    }
}

#[test]
fn plain_values_are_told_from_suspect_ones() {
    for v in [
        "on",
        "wireguard",
        "8080",
        "10.2.0.2/32",
        "172.21.0.0/16,172.20.0.0/16",
        "192.168.10.0/24=8080,9696;192.168.40.0/24=8080",
        "2001:db8::1",
        "/run/secrets/wg",
        "1.5",
    ] {
        assert!(plainly_not_secret(v), "{v}");
    }
    for v in [
        "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=",
        "glpat-AbCdEf123456",
        "hunter2hunter2",
        "deadbeefcafe1234",
        "Europe/Berlin",
    ] {
        assert!(!plainly_not_secret(v), "{v}");
    }
}

#[test]
fn credentials_are_found_inside_commands() {
    let c = command_credentials(
        "/bin/sh -c 'wget -O- --post-data \"json={}\" http://admin:s3cr3tpw@127.0.0.1:8080/api?apikey=K3YK3YK3Y&x=1'",
    );
    assert!(c.contains(&"s3cr3tpw".to_string()), "{c:?}");
    assert!(c.contains(&"admin:s3cr3tpw".to_string()), "{c:?}");
    assert!(c.contains(&"K3YK3YK3Y".to_string()), "{c:?}");
    let c = command_credentials(
        "curl -u qbt:pa55word -H 'Authorization: Bearer tok-123456' --header=X-API-Key:abcdefgh --password=pw-987654 http://x/ -d PASSWORD=hunter22",
    );
    for want in [
        "qbt:pa55word",
        "pa55word",
        "tok-123456",
        "abcdefgh",
        "pw-987654",
        "hunter22",
    ] {
        assert!(c.contains(&want.to_string()), "{want}: {c:?}");
    }
    // Nothing secret in a plain command; the port template is not one.
    assert!(command_credentials("echo {{PORT}} > /tmp/port").is_empty());
    // Glued to -u; the password alone is too short to register.
    assert_eq!(command_credentials("curl -uab:cd http://x"), ["ab:cd"]);
}

#[test]
fn a_variable_registers_its_secret_or_its_command_credentials() {
    register_variable("MY_TOKEN", "canary-variable-name-3141");
    register_variable("VPN_UP", "curl -u me:canary-variable-up-3141 http://x/");
    register_variable(
        "VPN_PORT_FORWARDING_UP_COMMAND",
        "curl --token canary-variable-cmd-3141",
    );
    register_variable("TZ", "canary-variable-plain-3141");
    assert_eq!(
        redact(
            "canary-variable-name-3141 canary-variable-up-3141 canary-variable-cmd-3141 canary-variable-plain-3141"
        ),
        "<redacted> <redacted> <redacted> canary-variable-plain-3141"
    );
    // Gluetun's tunnel hooks are secrets whole, credentials or not.
    register_variable("VPN_UP_COMMAND", "/usr/local/bin/notify canary-hook-3141");
    assert_eq!(
        redact("ran /usr/local/bin/notify canary-hook-3141"),
        "ran <redacted>"
    );
}
