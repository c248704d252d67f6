use super::*;

const GOOD: &str = r#"
name = "lab-gateway"
resolver = "127.0.0.1:53"

[exit]
whoami-url = "http://192.0.2.80/"
expected = ["203.0.113.0/24"]
never = ["198.51.100.2"]

[dns]
leak-domain = "dnsleak.lab"
results-url = "http://192.0.2.80/leakhound/dns-leak/{nonce}"
expected-resolvers = ["10.64.0.0/16"]

[bypass]
ipv6 = ["[2001:db8:80::80]:80"]
dns = ["192.0.2.53:53"]
dot = ["192.0.2.43:853"]
doh = ["192.0.2.43:443"]

[[lan]]
target = "172.21.0.1:5000"
expect = "reachable"

[[lan]]
target = "192.168.30.10:80"
expect = "blocked"

[forwarded-port]
control-url = "http://127.0.0.1:8000"
api-key-file = "/run/secrets/key"
prober-url = "http://192.0.2.80/leakhound/probe?port={port}"

[capture]
endpoint = "203.0.113.10:51820"
allowed = ["172.21.0.0/16"]
"#;

#[test]
fn a_full_profile_reads() {
    let p = parse("p.toml", GOOD).unwrap();
    assert_eq!(p.name, "lab-gateway");
    let e = p.exit.unwrap();
    assert_eq!(e.whoami_url.to_string(), "http://192.0.2.80:80/");
    assert_eq!(e.never, vec!["198.51.100.2/32".parse::<IpNet>().unwrap()]);
    assert_eq!(p.bypass.dot, vec!["192.0.2.43:853".parse().unwrap()]);
    assert_eq!(p.lan.len(), 2);
    assert_eq!(p.lan[1].expect, LanExpect::Blocked);
    let f = p.forwarded_port.unwrap();
    assert_eq!(f.auth, ControlAuth::ApiKeyFile("/run/secrets/key".into()));
    assert_eq!(
        f.prober_url.fill("port", "20000").path,
        "/leakhound/probe?port=20000"
    );
    assert_eq!(p.capture.interface, "eth0");
}

fn err(text: &str) -> String {
    parse("p.toml", text).unwrap_err().to_string()
}

#[test]
fn bad_profiles_name_file_line_and_column() {
    // Unknown key.
    let e = err("[exit]\nwhoami-url = \"http://192.0.2.80/\"\nnever = [\"1.2.3.4\"]\ncolour = 1\n");
    assert!(e.starts_with("p.toml:4:1:"), "{e}");
    assert!(e.contains("colour"), "{e}");
    // Wrong type.
    let e = err("[exit]\nwhoami-url = 80\nnever = [\"1.2.3.4\"]\n");
    assert!(e.starts_with("p.toml:2:14:"), "{e}");
    // A value that does not parse.
    let e = err("[exit]\nwhoami-url = \"http://192.0.2.80/\"\nnever = [\"1.2.3.400\"]\n");
    assert!(e.starts_with("p.toml:3:10:"), "{e}");
    assert!(e.contains("exit.never"), "{e}");
    // A missing field.
    let e = err("[dns]\nleak-domain = \"x.lab\"\n");
    assert!(e.contains("results-url"), "{e}");
    assert!(e.starts_with("p.toml:1:1:"), "{e}");
    // https is not spoken.
    let e = err("[exit]\nwhoami-url = \"https://ifconfig.co/\"\nnever = [\"1.2.3.4\"]\n");
    assert!(e.contains("only http://"), "{e}");
    // An IPv4 address among the IPv6 attempts.
    let e = err("[bypass]\nipv6 = [\"192.0.2.1:80\"]\n");
    assert!(e.starts_with("p.toml:2:9:"), "{e}");
    // A LAN row with a verdict that is not one.
    let e = err("[[lan]]\ntarget = \"10.0.0.1:80\"\nexpect = \"open\"\n");
    assert!(e.starts_with("p.toml:3:10:"), "{e}");
    // Nothing to check.
    assert!(err("name = \"x\"\n").contains("no checks"));
    // An exit check that cannot fail.
    assert!(err("[exit]\nwhoami-url = \"http://192.0.2.80/\"\n").contains("without either"));
    // Two ways to authenticate.
    let e = err(
        "[forwarded-port]\ncontrol-url = \"http://127.0.0.1:8000\"\napi-key-file = \"a\"\napi-key-env = \"B\"\nprober-url = \"http://192.0.2.80/p?port={port}\"\n",
    );
    assert!(e.contains("one of api-key-file"), "{e}");
}

#[test]
fn whoami_answers_as_text_or_json() {
    assert_eq!(
        whoami_address("203.0.113.77\n").unwrap(),
        "203.0.113.77".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        whoami_address(r#"{"ip":"2001:db8::1","country":"X"}"#).unwrap(),
        "2001:db8::1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        whoami_address("<html>").unwrap_err().to_string(),
        "not an address nor JSON: \"<html>\""
    );
    assert_eq!(
        whoami_address(r#"{"addr":"1.2.3.4"}"#)
            .unwrap_err()
            .to_string(),
        r#"JSON without an `ip` address: "{\"addr\":\"1.2.3.4\"}""#
    );
    // A long answer is cut in the message.
    let long = "x".repeat(500);
    assert_eq!(
        whoami_address(&long).unwrap_err().to_string().len(),
        "not an address nor JSON: \"\"".len() + 120
    );
}

#[test]
fn the_exit_must_be_expected_and_never_home() {
    let c = ExitCheck {
        whoami_url: HttpUrl::parse("http://192.0.2.80/").unwrap(),
        expected: vec!["203.0.113.0/24".parse().unwrap()],
        never: vec!["198.51.100.2/32".parse().unwrap()],
    };
    assert!(judge_exit("203.0.113.77".parse().unwrap(), &c).is_ok());
    let e = judge_exit("198.51.100.2".parse().unwrap(), &c).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the exit is 198.51.100.2, inside 198.51.100.2/32, which it must never be"
    );
    let e = judge_exit("192.0.2.9".parse().unwrap(), &c).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the exit is 192.0.2.9, outside the expected 203.0.113.0/24"
    );
}

#[test]
fn dns_results_in_their_shapes() {
    let want: Vec<IpAddr> = vec!["10.64.0.2".parse().unwrap()];
    assert_eq!(dns_results(r#"["10.64.0.2"]"#).unwrap(), want);
    assert_eq!(dns_results(r#"[{"ip":"10.64.0.2","x":1}]"#).unwrap(), want);
    assert_eq!(
        dns_results(r#"{"resolvers":[{"ip":"10.64.0.2"}]}"#).unwrap(),
        want
    );
    let e = dns_results("nope").unwrap_err();
    assert!(matches!(e, AnswerError::NotJson { .. }), "{e:?}");
    assert!(e.to_string().starts_with("not JSON (expected "), "{e}");
    assert!(e.to_string().ends_with("): \"nope\""), "{e}");
    assert!(std::error::Error::source(&e).is_some());
    assert_eq!(
        dns_results(r#"[{"addr":"1.1.1.1"}]"#)
            .unwrap_err()
            .to_string(),
        r#"an entry without an address: {"addr":"1.1.1.1"}"#
    );
    assert_eq!(
        dns_results(r#"["1.1.1.300"]"#).unwrap_err().to_string(),
        "\"1.1.1.300\" is not an address"
    );
    assert_eq!(
        dns_results(r#"{"x":1}"#).unwrap_err().to_string(),
        "JSON object without a `resolvers` array"
    );
    assert_eq!(
        dns_results("7").unwrap_err().to_string(),
        "neither a list nor an object: \"7\""
    );
    let expected: Vec<IpNet> = vec!["10.64.0.0/16".parse().unwrap()];
    assert!(judge_resolvers(&want, &expected).is_ok());
    assert_eq!(
        judge_resolvers(&[], &expected),
        Err(ResolverFault::NobodyAsked)
    );
    let e = judge_resolvers(
        &[
            "10.64.0.2".parse().unwrap(),
            "198.51.100.2".parse().unwrap(),
        ],
        &expected,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "asked by 198.51.100.2 outside the expected 10.64.0.0/16");
}

#[test]
fn prober_and_control_answers() {
    assert!(prober_open(r#"{"port":20000,"open":true}"#).unwrap());
    assert!(!prober_open(r#"{"open":false}"#).unwrap());
    assert!(prober_open("yes").is_err());
    assert_eq!(
        prober_open(r#"{"open":"yes"}"#).unwrap_err().to_string(),
        r#"no boolean `open`: "{\"open\":\"yes\"}""#
    );
    assert_eq!(control_port(r#"{"port":20000}"#).unwrap(), 20000);
    assert_eq!(control_port(r#"{"port":0}"#).unwrap(), 0);
    assert_eq!(
        control_port(r#"{"port":70000}"#).unwrap_err().to_string(),
        r#"no `port`: "{\"port\":70000}""#
    );
}

#[test]
fn urls_are_parsed_when_the_profile_is_read() {
    let e = err("[exit]\nwhoami-url = \"http://u:p@192.0.2.80/\"\nnever = [\"1.2.3.4\"]\n");
    assert!(e.starts_with("p.toml:2:14: exit.whoami-url: "), "{e}");
    assert!(e.ends_with("no credentials in URLs"), "{e}");
    let p = parse("p.toml", GOOD).unwrap();
    let f = p.forwarded_port.unwrap();
    assert_eq!(f.control_url.authority(), "127.0.0.1:8000");
    assert_eq!(f.control_url.path, "/");
}

#[test]
fn lan_rows_are_judged_with_the_wire() {
    use LanExpect::*;
    assert!(judge_lan(Reachable, true, false, 3).is_ok());
    // Refused by the host (its reset crossed the wire): reached.
    assert!(judge_lan(Reachable, false, true, 2).is_ok());
    // Refused with nothing on the wire: the gateway's own reject.
    assert!(judge_lan(Reachable, false, true, 0).is_err());
    assert!(judge_lan(Blocked, false, true, 0).is_ok());
    assert!(judge_lan(Blocked, false, false, 0).is_ok());
    // Silence, but the SYNs went out: not blocked by the gateway.
    assert!(judge_lan(Blocked, false, false, 2).is_err());
    assert!(judge_lan(Blocked, true, false, 2).is_err());
}
