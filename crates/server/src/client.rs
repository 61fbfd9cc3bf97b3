//! Where a request comes from, and which of its claims about that to believe.
//!
//! `Forwarded` (RFC 7239) and `X-Forwarded-For`/`-Host`/`-Proto` are written by whoever sends
//! the request. They are believed only from a peer in the trusted proxies; from anyone else the
//! client is the socket's peer, and the base URL is the configured one or the socket's own
//! address. The client address keys the failed-authentication limit and is the audit's
//! `source_addr`, so a forged header must not move either.

use actix_web::HttpRequest;
use actix_web::http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding headers are believed (`SCIM_BRIDGE_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A trusted-proxy entry that is neither an IP address nor a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an IP address or a CIDR block such as 10.0.0.0/8")]
pub struct InvalidProxy(pub String);

impl TrustedProxies {
    /// No proxy is trusted: every forwarding header is ignored.
    pub fn none() -> TrustedProxies {
        TrustedProxies(Vec::new())
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for TrustedProxies {
    type Err = InvalidProxy;

    /// Comma- or space-separated IP addresses and CIDR blocks.
    fn from_str(s: &str) -> Result<TrustedProxies, InvalidProxy> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| InvalidProxy(part.to_string()))
            })
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a dual-stack socket reports IPv4 peers)
/// is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Whether the request's peer is a trusted proxy.
pub fn from_trusted_proxy(req: &HttpRequest, trusted: &TrustedProxies) -> bool {
    !trusted.is_empty()
        && req
            .peer_addr()
            .is_some_and(|peer| trusted.contains(peer.ip()))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address
/// in its forwarding chain that is not a trusted proxy (the chain is read from the right, the
/// end the proxies wrote; what a client wrote on the left cannot push past them).
pub fn client_ip(req: &HttpRequest, trusted: &TrustedProxies) -> Option<IpAddr> {
    let peer = canonical(req.peer_addr()?.ip());
    if !from_trusted_proxy(req, trusted) {
        return Some(peer);
    }
    let hops = forwarded_for(req);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(*ip);
                if !trusted.contains(client) {
                    break;
                }
            }
            // An obfuscated or garbled hop: the proxy that forwarded it is the last one known.
            None => break,
        }
    }
    Some(client)
}

/// The `for=` hops of `Forwarded`, else the entries of `X-Forwarded-For`, left to right.
fn forwarded_for(req: &HttpRequest) -> Vec<Option<IpAddr>> {
    let headers = req.headers();
    let joined = |name: &HeaderName| {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",")
    };
    let forwarded = joined(&FORWARDED);
    if !forwarded.trim().is_empty() {
        return forwarded
            .split(',')
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_node(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    joined(&X_FORWARDED_FOR)
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(parse_node)
        .collect()
}

/// RFC 7239 §6 node: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::1]`, `[2001:db8::1]:4711`;
/// `unknown` and obfuscated identifiers are `None`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    node.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// The socket address the connection was accepted on, recorded when it opened.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// `scheme://authority` of the request for the base URL: from a trusted proxy, what it
/// forwards (`Forwarded`, `X-Forwarded-Proto`/`-Host`, then `Host`); from anyone else, plain
/// HTTP (the service terminates no TLS) to the socket's own address.
pub fn origin(req: &HttpRequest, trusted: &TrustedProxies) -> String {
    if from_trusted_proxy(req, trusted) {
        let info = req.connection_info();
        return format!("{}://{}", info.scheme(), info.host());
    }
    let local = req
        .conn_data::<LocalAddr>()
        .map_or_else(|| req.app_config().local_addr(), |local| local.0);
    format!("http://{local}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn trusted(list: &str) -> TrustedProxies {
        list.parse().unwrap()
    }

    #[test]
    fn proxies_are_addresses_or_blocks() {
        let proxies = trusted("10.0.0.0/8, 192.168.1.7 2001:db8::/32");
        assert!(proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(proxies.contains("192.168.1.7".parse().unwrap()));
        assert!(!proxies.contains("192.168.1.8".parse().unwrap()));
        assert!(proxies.contains("2001:db8::5".parse().unwrap()));
        assert!(proxies.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert_eq!(
            "10.0.0.0/33".parse::<TrustedProxies>(),
            Err(InvalidProxy("10.0.0.0/33".into()))
        );
        assert_eq!(
            "proxy.local".parse::<TrustedProxies>(),
            Err(InvalidProxy("proxy.local".into()))
        );
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut req = TestRequest::default().peer_addr(peer.parse().unwrap());
        for (name, value) in headers {
            req = req.append_header((*name, *value));
        }
        req.to_http_request()
    }

    fn ip(address: &str) -> Option<IpAddr> {
        Some(address.parse().unwrap())
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_peer() {
        let proxies = trusted("10.0.0.1");
        let forged = request("203.0.113.9:5000", &[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_ip(&forged, &proxies), ip("203.0.113.9"));
        let proxied = request("10.0.0.1:5000", &[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(client_ip(&proxied, &proxies), ip("198.51.100.1"));
        // What the client wrote on the left does not count: the proxy appended the real peer.
        let spoofed = request(
            "10.0.0.1:5000",
            &[("x-forwarded-for", "1.2.3.4, 198.51.100.1")],
        );
        assert_eq!(client_ip(&spoofed, &proxies), ip("198.51.100.1"));
        // Behind two trusted proxies.
        let chain = trusted("10.0.0.0/8");
        let two = request(
            "10.0.0.1:5000",
            &[("x-forwarded-for", "198.51.100.1, 10.0.0.2")],
        );
        assert_eq!(client_ip(&two, &chain), ip("198.51.100.1"));
        // RFC 7239 wins over X-Forwarded-For; ports and brackets are taken off.
        let rfc = request(
            "10.0.0.1:5000",
            &[
                ("forwarded", "for=\"[2001:db8::7]:4711\";proto=https"),
                ("x-forwarded-for", "198.51.100.1"),
            ],
        );
        assert_eq!(client_ip(&rfc, &proxies), ip("2001:db8::7"));
        // An obfuscated hop leaves the proxy as the client.
        let hidden = request("10.0.0.1:5000", &[("forwarded", "for=_hidden")]);
        assert_eq!(client_ip(&hidden, &proxies), ip("10.0.0.1"));
    }

    #[test]
    fn the_origin_is_the_socket_unless_a_trusted_proxy_names_one() {
        let proxies = trusted("10.0.0.1");
        let headers = [
            ("host", "evil.example"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "https"),
        ];
        let forged = request("203.0.113.9:5000", &headers);
        assert_eq!(
            origin(&forged, &proxies),
            format!("http://{}", forged.app_config().local_addr())
        );
        let proxied = request(
            "10.0.0.1:5000",
            &[
                ("host", "10.0.0.5:8080"),
                ("x-forwarded-host", "scim.example.com"),
                ("x-forwarded-proto", "https"),
            ],
        );
        assert_eq!(origin(&proxied, &proxies), "https://scim.example.com");
    }
}
