//! The client address of a call, as the limits, the login throttle and the audit log see it.
//!
//! Decisions:
//! - The TCP peer is the client, unless the peer is a trusted reverse proxy
//!   (`AKIG_TRUSTED_PROXIES`): then `x-forwarded-for` is read from the right, and the first hop
//!   that is not itself a trusted proxy is the client. Hops left of it were written by the
//!   client and are never believed.
//! - Resolved once per call, by the outermost layer that needs it ([`layer`]), and kept in the
//!   request extensions as [`ClientIp`], so every later layer and handler uses the same value.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, Request};
use ipnet::IpNet;
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tower::util::MapRequestLayer;

/// The client address of a call, as resolved by [`client_ip`], in the request extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

/// A layer putting the [`ClientIp`] of each call in its extensions (none when the transport
/// gives no peer, as in-process).
pub fn layer(
    trusted: &[IpNet],
) -> MapRequestLayer<impl Fn(Request<Body>) -> Request<Body> + Clone + Send + Sync + 'static> {
    let trusted: Arc<[IpNet]> = trusted.into();
    MapRequestLayer::new(move |mut request: Request<Body>| {
        if let Some(ip) = client_ip(&request, &trusted) {
            request.extensions_mut().insert(ClientIp(ip));
        }
        request
    })
}

/// The client address of a call: the TCP peer, or, when the peer is a trusted proxy, the
/// rightmost `x-forwarded-for` hop that is not itself a trusted proxy. `None` when the
/// transport gives no peer.
pub fn client_ip<B>(request: &Request<B>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<TcpConnectInfo>()?
        .remote_addr()?
        .ip()
        .to_canonical();
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    Some(forwarded_client(request.headers(), trusted).unwrap_or(peer))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// Walks `x-forwarded-for` from the right (several headers are one list, in order). Each hop
/// was appended by the proxy on its right, so it is believed as long as that proxy is trusted.
/// A malformed hop stops the walk at the last good one: what lies left of it is unknown.
fn forwarded_client(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let mut client = None;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return client;
        };
        for hop in value.rsplit(',') {
            let Some(ip) = parse_hop(hop.trim()) else {
                return client;
            };
            client = Some(ip);
            if !is_trusted(ip, trusted) {
                return client;
            }
        }
    }
    client
}

/// A hop is an address, or an address and port as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let ip = match hop.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => hop.parse::<SocketAddr>().ok()?.ip(),
    };
    Some(ip.to_canonical())
}

/// Requests as the server sees them, for the unit tests of the layers that read the address.
#[cfg(test)]
pub(crate) mod testing {
    use std::net::SocketAddr;

    use http::Request;
    use tonic::body::Body;
    use tonic::transport::server::TcpConnectInfo;

    /// A request for `path` from the TCP peer `peer` (an IP address).
    pub(crate) fn request(path: &str, peer: &str) -> Request<Body> {
        let mut request = Request::builder()
            .uri(format!("http://akig{path}"))
            .body(Body::empty())
            .unwrap();
        request.extensions_mut().insert(TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(SocketAddr::new(peer.parse().unwrap(), 40000)),
        });
        request
    }

    /// `request` with an `x-forwarded-for` header appended.
    pub(crate) fn forwarded(mut request: Request<Body>, value: &'static str) -> Request<Body> {
        request
            .headers_mut()
            .append("x-forwarded-for", http::HeaderValue::from_static(value));
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO_AM_I: &str = "/akig.v1.AuthService/WhoAmI";

    pub(crate) use super::testing::{forwarded, request};

    #[test]
    fn client_ip_edge_cases() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // An IPv4 peer seen on a dual-stack socket.
        let mapped = request(WHO_AM_I, "::ffff:198.51.100.3");
        assert_eq!(client_ip(&mapped, &trusted), ip("198.51.100.3"));
        // Several headers form one list; a port is allowed.
        let mut two = forwarded(request(WHO_AM_I, "10.0.0.1"), "192.0.2.9");
        two = forwarded(two, "198.51.100.4:5555, 10.0.0.3");
        assert_eq!(client_ip(&two, &trusted), ip("198.51.100.4"));
        // A malformed hop stops the walk at the last trusted hop.
        let garbled = forwarded(request(WHO_AM_I, "10.0.0.1"), "192.0.2.9, junk, 10.0.0.3");
        assert_eq!(client_ip(&garbled, &trusted), ip("10.0.0.3"));
        // Only proxies: the leftmost one, which a trusted proxy wrote.
        let internal = forwarded(request(WHO_AM_I, "10.0.0.1"), "10.0.0.7, 10.0.0.3");
        assert_eq!(client_ip(&internal, &trusted), ip("10.0.0.7"));
        // A proxy that sent no header, and a call without a TCP peer.
        let bare = request(WHO_AM_I, "10.0.0.1");
        assert_eq!(client_ip(&bare, &trusted), ip("10.0.0.1"));
        assert_eq!(client_ip(&Request::new(()), &trusted), None);
    }
}
