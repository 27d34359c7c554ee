use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|_| panic!("test address {s}"))
}

#[test]
fn refuses_every_special_ipv4_range() {
    let refused = [
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.127.255.254",
        "100.100.100.200",
        "127.0.0.1",
        "127.255.255.254",
        "169.254.0.1",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.1",
        "192.0.0.170",
        "192.0.2.1",
        "192.88.99.1",
        "192.168.0.1",
        "192.168.255.255",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
    ];
    for a in refused {
        assert!(!ip_allowed(ip(a)), "{a} must be refused");
    }
}

#[test]
fn allows_public_ipv4_next_to_the_ranges() {
    let allowed = [
        "1.1.1.1",
        "8.8.8.8",
        "9.255.255.255",
        "11.0.0.1",
        "100.63.255.255",
        "100.128.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.0.3.1",
        "192.167.255.255",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.1",
        "203.0.114.1",
        "223.255.255.255",
    ];
    for a in allowed {
        assert!(ip_allowed(ip(a)), "{a} must be allowed");
    }
}

#[test]
fn refuses_every_special_ipv6_range_and_embedded_v4() {
    let refused = [
        "::",
        "::1",
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "::10.1.2.3",
        "::ffff:0:127.0.0.1",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "2002:a9fe:a9fe::1",
        "2001::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "2001:2::1",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "3fff::1",
        "100::1",
        "fc00::1",
        "fd00::1",
        "fd00:ec2::254",
        "fe80::1",
        "febf::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "4000::1",
    ];
    for a in refused {
        assert!(!ip_allowed(ip(a)), "{a} must be refused");
    }
}

#[test]
fn allows_public_ipv6_and_embedded_public_v4() {
    let allowed = [
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];
    for a in allowed {
        assert!(ip_allowed(ip(a)), "{a} must be allowed");
    }
}

#[test]
fn allow_private_lifts_all_but_metadata_and_unspecified() {
    for a in ["127.0.0.1", "10.1.2.3", "192.168.1.1", "::1", "fd12::1", "::ffff:127.0.0.1"] {
        assert!(ip_permitted(ip(a), true), "{a}");
        assert!(!ip_permitted(ip(a), false), "{a}");
    }
    for a in
        ["169.254.169.254", "100.100.100.200", "fd00:ec2::254", "::ffff:169.254.169.254", "0.0.0.0", "::"]
    {
        assert!(!ip_permitted(ip(a), true), "{a}");
    }
}

/// Every spelling of a loopback, private or metadata host normalises to the address and is
/// refused.
#[test]
fn every_numeric_spelling_is_normalised_and_refused() {
    let cases = [
        ("http://127.0.0.1/", "127.0.0.1"),
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://127.0.1/", "127.0.0.1"),
        ("http://127.000.000.001/", "127.0.0.1"),
        ("http://127.0.0.1./", "127.0.0.1"),
        ("http://%31%32%37.0.0.1/", "127.0.0.1"),
        ("http://\u{ff11}\u{ff12}\u{ff17}.0.0.1/", "127.0.0.1"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("http://2852039166/", "169.254.169.254"),
        ("http://0xa9fea9fe/", "169.254.169.254"),
        ("http://0/", "0.0.0.0"),
        ("http://10.1/", "10.0.0.1"),
        ("http://[::1]/", "::1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://[::ffff:7f00:1]:8080/x", "::ffff:127.0.0.1"),
        ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://[fd00:ec2::254]/", "fd00:ec2::254"),
    ];
    for (url, expected) in cases {
        let parsed = parse_destination_url(url, false).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(parsed.host, DestinationHost::Ip(ip(expected)), "{url}");
        assert_eq!(
            check_destination(&parsed, false),
            Err(AddressError::ForbiddenAddress(ip(expected))),
            "{url}"
        );
    }
}

#[test]
fn local_and_metadata_names_are_refused() {
    for url in [
        "http://localhost/",
        "http://LOCALHOST:8080/",
        "http://localhost./",
        "http://api.localhost/",
        "http://printer.local/",
        "http://db.internal/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://router.home.arpa/",
    ] {
        let parsed = parse_destination_url(url, false).unwrap();
        assert!(matches!(check_destination(&parsed, false), Err(AddressError::ForbiddenName(_))), "{url}");
    }
    let local = parse_destination_url("http://localhost:3000/hook", false).unwrap();
    assert_eq!(local.host, DestinationHost::Name("localhost".into()));
    assert_eq!(check_destination(&local, true), Ok(()));
    let metadata = parse_destination_url("http://metadata.google.internal/", false).unwrap();
    assert!(check_destination(&metadata, true).is_err());
}

#[test]
fn public_hosts_pass() {
    for url in ["https://example.com/hooks", "https://hooks.EXAMPLE.com./x", "http://93.184.216.34:8443/"] {
        let parsed = parse_destination_url(url, false).unwrap();
        assert_eq!(check_destination(&parsed, false), Ok(()), "{url}");
    }
    let parsed = parse_destination_url("https://Hooks.Example.COM./in?x=1", false).unwrap();
    assert_eq!(parsed.host, DestinationHost::Name("hooks.example.com".into()));
    // Names that only look local are fine: their addresses are judged after resolution.
    let parsed = parse_destination_url("https://localhost.example.com/", false).unwrap();
    assert_eq!(check_destination(&parsed, false), Ok(()));
}

#[test]
fn refuses_bad_schemes_userinfo_and_missing_hosts() {
    assert!(
        matches!(parse_destination_url("ftp://example.com/", false), Err(AddressError::UnsupportedScheme(s)) if s == "ftp")
    );
    assert!(matches!(
        parse_destination_url("file:///etc/passwd", false),
        Err(AddressError::UnsupportedScheme(_))
    ));
    assert!(matches!(parse_destination_url("gopher://x/", false), Err(AddressError::UnsupportedScheme(_))));
    assert_eq!(parse_destination_url("http://example.com/", true), Err(AddressError::HttpsRequired));
    assert!(parse_destination_url("https://example.com/", true).is_ok());
    assert_eq!(parse_destination_url("https://user:pw@example.com/", false), Err(AddressError::UserInfo));
    assert_eq!(parse_destination_url("https://user@example.com/", false), Err(AddressError::UserInfo));
    assert_eq!(
        parse_destination_url("http://127.0.0.1:80@evil.example/", false),
        Err(AddressError::UserInfo)
    );
    assert!(matches!(parse_destination_url("not a url", false), Err(AddressError::InvalidUrl(_))));
    assert!(matches!(parse_destination_url("http://", false), Err(AddressError::InvalidUrl(_))));
    assert!(matches!(parse_destination_url("http://[::1/", false), Err(AddressError::InvalidUrl(_))));
    assert!(parse_destination_url("http://256.0.0.1/", false).is_err());
}

#[test]
fn errors_read_clearly() {
    let e = check_ip(ip("127.0.0.1"), false).unwrap_err();
    assert!(e.to_string().starts_with("the address 127.0.0.1 is not allowed"));
    let e = check_name("localhost", false).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the host name `localhost` is not allowed: it names a local or cloud-metadata service"
    );
}
