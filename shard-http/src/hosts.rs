//! Which `Host` and `Origin` the control API and the web UI answer: only their own.
//!
//! A web page on another site can make the browser send requests to 127.0.0.1 — and, with DNS
//! rebinding, make them look same-origin to the browser (its name resolves to 127.0.0.1 after
//! the page loaded). What it cannot change is the `Host` header (the page's own name) and the
//! `Origin` header of a change. So every request must name the address the listener is bound
//! to (or `localhost` for a loopback one), else 421; and a change (not GET/HEAD) coming from a
//! browser must carry an `Origin` of that same address, else 403. The web UI requires the
//! `Origin` on changes (browsers always send it); the control API refuses a foreign one and
//! accepts none (the `shard` command sends none, and holds the API token besides).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The names one listener answers to.
#[derive(Debug, Clone)]
pub struct Hosts {
    bound: SocketAddr,
    /// Changes must carry a matching `Origin` (the web UI), not just a non-foreign one.
    require_origin: bool,
}

impl Hosts {
    /// For a listener bound to `bound`.
    pub fn new(bound: SocketAddr, require_origin: bool) -> Self {
        Self {
            bound,
            require_origin,
        }
    }

    /// Whether `host` (a `Host` header: name or address, and port) is this listener.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        if port != self.bound.port() {
            return false;
        }
        let ip = self.bound.ip();
        if name.eq_ignore_ascii_case("localhost") {
            return ip.is_loopback() || ip.is_unspecified();
        }
        match name.parse::<IpAddr>() {
            Ok(asked) if ip.is_unspecified() => {
                asked.is_ipv4() == ip.is_ipv4() || asked.is_loopback()
            }
            Ok(asked) => asked == ip || (ip.is_loopback() && asked.is_loopback()),
            Err(_) => false,
        }
    }

    /// Whether `origin` (an `Origin` header) is this listener, over plain HTTP.
    pub fn allows_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|rest| !rest.contains('/') && self.allows(rest))
    }

    /// How people reach this listener (for the refusal's hint).
    fn address(&self) -> String {
        if self.bound.ip().is_loopback() {
            format!(
                "http://localhost:{} or http://{}",
                self.bound.port(),
                self.bound
            )
        } else {
            format!("http://{}", self.bound)
        }
    }
}

/// `name:port` or `[v6]:port` (port 80 when absent) → (name, port).
fn split_host(host: &str) -> Option<(&str, u16)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (addr, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => 80,
            None => return None,
        };
        return Some((addr, port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, port.parse().ok()?)),
        None => Some((host, 80)),
    }
}

/// The middleware: refuses requests for another `Host` (421) and changes from another
/// `Origin` (403), each with the reason.
pub async fn guard(State(hosts): State<Arc<Hosts>>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !hosts.allows(host) {
        tracing::warn!(
            "refused a request for host {}: not this node's address",
            crate::shown(host)
        );
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!("this node answers only at its own address, not {host:?}"),
            format!(
                "open {} (a page of another site cannot reach this node)",
                hosts.address()
            ),
        )
        .into_response();
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok());
        let refused = match origin {
            Some(o) => !hosts.allows_origin(o),
            None => hosts.require_origin,
        };
        if refused {
            tracing::warn!(
                "refused a change to {} from origin {}",
                crate::shown(request.uri().path()),
                crate::shown(origin.unwrap_or("(none)"))
            );
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "a change from origin {} is refused: only this node's own pages may make changes",
                    origin.unwrap_or("(none)")
                ),
                format!("use the web UI at {}", hosts.address()),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bound_address_and_localhost_are_allowed() {
        let h = Hosts::new("127.0.0.1:7716".parse().unwrap(), true);
        for ok in [
            "127.0.0.1:7716",
            "localhost:7716",
            "LOCALHOST:7716",
            "[::1]:7716",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:7717",
            "attacker.example:7716",
            "attacker.example",
            "192.168.1.5:7716",
            "127.0.0.1:7716:1",
            "[::1]",
            "[::1]x:7716",
            "localhost.attacker.example:7716",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        assert!(h.allows_origin("http://127.0.0.1:7716"));
        assert!(h.allows_origin("http://localhost:7716"));
        for bad in [
            "null",
            "https://127.0.0.1:7716",
            "http://attacker.example:7716",
            "http://127.0.0.1:7716/x",
            "http://127.0.0.1:80",
        ] {
            assert!(!h.allows_origin(bad), "{bad}");
        }
        let public = Hosts::new("192.168.1.5:7716".parse().unwrap(), true);
        assert!(public.allows("192.168.1.5:7716"));
        assert!(!public.allows("localhost:7716"));
        assert!(!public.allows("nas.local:7716"));
    }
}
