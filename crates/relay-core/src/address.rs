//! The destination address policy (CONTRACT §4, SSRF): which URLs a destination may have and which
//! IP addresses an attempt may connect to. Pure: it parses and judges, and never resolves a name;
//! the admin API resolves names when a destination is created or changed, and the dispatcher's
//! HTTP client judges every resolved address of every attempt (DNS rebinding).
//!
//! Invariant: an address is allowed only if it is globally reachable unicast. Every numeric
//! spelling of a host (`2130706433`, `0x7f.1`, `127.1`, `%31%32%37.0.0.1`, `[::ffff:127.0.0.1]`)
//! is normalised by the WHATWG host parser of the `url` crate before it is judged, and IPv6
//! addresses that embed an IPv4 address (mapped, compatible, NAT64, 6to4) are judged as that
//! IPv4 address. Cloud metadata endpoints stay refused even when private destinations are allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// A destination URL that passed the syntax checks, with its host already normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationUrl {
    pub url: Url,
    pub host: DestinationHost,
}

/// The host of a destination URL: an IP literal (in any spelling) or a lower-case name without a
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationHost {
    Ip(IpAddr),
    Name(String),
}

/// Why a destination URL or address is refused. The admin API answers every variant with 422
/// `destination_not_allowed`; the dispatcher records a refused attempt as `blocked`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("not a valid URL: {0}")]
    InvalidUrl(#[from] url::ParseError),
    #[error("the URL scheme `{0}` is not allowed: use http or https")]
    UnsupportedScheme(String),
    #[error("the URL must use https")]
    HttpsRequired,
    #[error("the URL must not contain a user name or password")]
    UserInfo,
    #[error("the URL has no host")]
    MissingHost,
    #[error(
        "the address {0} is not allowed: loopback, private, link-local, CGNAT, multicast, reserved, \
         documentation and cloud-metadata addresses are refused"
    )]
    ForbiddenAddress(IpAddr),
    #[error("the host name `{0}` is not allowed: it names a local or cloud-metadata service")]
    ForbiddenName(String),
}

/// Parses a destination URL: http(s) only (https only when `require_https`), no user info, a host
/// present; the host comes back normalised. This checks syntax only: call [`check_destination`]
/// to judge the host.
pub fn parse_destination_url(url: &str, require_https: bool) -> Result<DestinationUrl, AddressError> {
    let url = Url::parse(url.trim())?;
    match url.scheme() {
        "https" => {}
        "http" if !require_https => {}
        "http" => return Err(AddressError::HttpsRequired),
        other => return Err(AddressError::UnsupportedScheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AddressError::UserInfo);
    }
    let host = match url.host() {
        None => return Err(AddressError::MissingHost),
        Some(Host::Ipv4(ip)) => DestinationHost::Ip(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => DestinationHost::Ip(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                return Err(AddressError::MissingHost);
            }
            DestinationHost::Name(name)
        }
    };
    Ok(DestinationUrl { url, host })
}

/// Judges a parsed destination: an IP-literal host by [`ip_permitted`], a name against the names
/// that always mean a local or metadata service. Resolving a name and judging its addresses is
/// the caller's job.
pub fn check_destination(dest: &DestinationUrl, allow_private: bool) -> Result<(), AddressError> {
    match &dest.host {
        DestinationHost::Ip(ip) => check_ip(*ip, allow_private),
        DestinationHost::Name(name) => check_name(name, allow_private),
    }
}

/// [`ip_permitted`] as a `Result`, for callers that judge resolved addresses.
pub fn check_ip(ip: IpAddr, allow_private: bool) -> Result<(), AddressError> {
    if ip_permitted(ip, allow_private) { Ok(()) } else { Err(AddressError::ForbiddenAddress(ip)) }
}

/// Whether a host name may be used. Metadata names are refused always; local names (`localhost`,
/// `*.localhost`, `*.local`, `*.internal`, `*.home.arpa`, `*.localdomain`) unless private
/// destinations are allowed.
pub fn check_name(name: &str, allow_private: bool) -> Result<(), AddressError> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let refused = || Err(AddressError::ForbiddenName(name.clone()));
    if METADATA_NAMES.contains(&name.as_str()) {
        return refused();
    }
    if allow_private {
        return Ok(());
    }
    let is_or_under = |zone: &str| name == zone || name.ends_with(&format!(".{zone}"));
    if LOCAL_ZONES.iter().any(|zone| is_or_under(zone)) { refused() } else { Ok(()) }
}

const METADATA_NAMES: &[&str] = &[
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
];

const LOCAL_ZONES: &[&str] =
    &["localhost", "localdomain", "local", "internal", "home.arpa", "ip6-localhost", "ip6-loopback"];

/// Whether an attempt may connect to `ip`: [`ip_allowed`], or with `allow_private` anything but a
/// cloud-metadata or unspecified address.
pub fn ip_permitted(ip: IpAddr, allow_private: bool) -> bool {
    if allow_private {
        let ip = canonical(ip);
        !is_metadata(ip) && !ip.is_unspecified()
    } else {
        ip_allowed(ip)
    }
}

/// Whether `ip` is a globally reachable unicast address that a destination may use.
pub fn ip_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4),
        IpAddr::V6(v6) => v6_allowed(v6),
    }
}

/// The IPv4 address an IPv6 address stands for, when it is a mapped or compatible one.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn is_metadata(ip: IpAddr) -> bool {
    const METADATA: [IpAddr; 3] = [
        IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
        IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    ];
    METADATA.contains(&ip)
}

/// IPv4 ranges that are not globally reachable unicast (IANA special-purpose registry, plus
/// CGNAT and multicast), as (network, prefix length).
const V4_FORBIDDEN: &[([u8; 4], u32)] = &[
    ([0, 0, 0, 0], 8),       // "this network", unspecified
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // CGNAT shared space (holds Alibaba's 100.100.100.200 metadata)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local (holds the 169.254.169.254 metadata)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // TEST-NET-1
    ([192, 31, 196, 0], 24), // AS112
    ([192, 52, 193, 0], 24), // AMT
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
    ([192, 168, 0, 0], 16),  // private
    ([192, 175, 48, 0], 24), // direct delegation AS112
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // TEST-NET-2
    ([203, 0, 113, 0], 24),  // TEST-NET-3
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and 255.255.255.255 broadcast
];

fn v4_allowed(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !V4_FORBIDDEN.iter().any(|(net, len)| {
        let mask = u32::MAX << (32 - len);
        bits & mask == u32::from_be_bytes(*net)
    })
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:0:0/96`), IPv4-compatible (`::/96`, which also
/// covers `::` and `::1`), SIIT (`::ffff:0:0:0/96`) or NAT64 (`64:ff9b::/96`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let high_zero = |n: usize| s[..n].iter().all(|&x| x == 0);
    let embeds = (high_zero(5) && (s[5] == 0 || s[5] == 0xffff))
        || (high_zero(4) && s[4] == 0xffff && s[5] == 0)
        || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0));
    embeds.then_some(low)
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u32) -> bool {
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    u128::from(ip) & mask == u128::from(net) & mask
}

fn v6_allowed(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return v4_allowed(v4);
    }
    let s = ip.segments();
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        let v4 = Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8);
        return v4_allowed(v4);
    }
    // Only 2000::/3 is allocated as global unicast: this refuses ::/8 leftovers, 100::/64
    // (discard), 64:ff9b:1::/48 (local NAT64), fc00::/7 (unique local, including the fd00:ec2::254
    // metadata), fe80::/10 (link-local), fec0::/10 (site-local) and ff00::/8 (multicast).
    if !in_v6(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return false;
    }
    // Inside 2000::/3: IETF protocol assignments 2001::/23 (Teredo 2001::/32, whose embedded
    // addresses cannot be trusted, benchmarking 2001:2::/48, ORCHID), documentation 2001:db8::/32
    // and 3fff::/20.
    const V6_FORBIDDEN: [(Ipv6Addr, u32); 3] = [
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),
    ];
    !V6_FORBIDDEN.iter().any(|(net, len)| in_v6(ip, *net, *len))
}

#[cfg(test)]
mod tests;
