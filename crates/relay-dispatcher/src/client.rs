//! The outbound HTTP client: one pooled, keep-alive `reqwest::Client` for every destination,
//! with redirects off, proxies off, and a DNS resolver that refuses forbidden addresses.
//!
//! Invariant: no connection is ever opened to an address the policy refuses. Names are judged by
//! [`GuardedResolver`] on every fresh resolution (so DNS rebinding is caught); IP-literal URLs
//! never reach a resolver, so the attempt checks them before sending (see `attempt`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relay_core::address::{AddressError, check_ip};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The error a refused resolution carries; the attempt finds it in the error chain and records
/// the outcome `blocked`.
#[derive(Debug)]
pub(crate) struct Blocked(pub AddressError);

impl std::error::Error for Blocked {}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blocked: {}", self.0)
    }
}

/// Resolves with the system resolver, then refuses the whole answer if any address is forbidden
/// (a name that mixes public and private addresses is not trusted).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl GuardedResolver {
    /// Resolves `host` and judges every address.
    pub async fn lookup(
        self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
        for addr in &addrs {
            check_ip(addr.ip(), self.allow_private).map_err(Blocked)?;
        }
        if addrs.is_empty() {
            return Err(format!("no addresses for {host}").into());
        }
        Ok(addrs)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let this = *self;
        Box::pin(async move {
            let addrs = this.lookup(name.as_str()).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The shared client. Per-destination timeouts are set on each request.
pub fn build_client(allow_private: bool) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver { allow_private }))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("wap-relay/", env!("CARGO_PKG_VERSION")))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_resolver_refuses_names_that_resolve_to_loopback() {
        let strict = GuardedResolver { allow_private: false };
        let err = strict.lookup("localhost").await.unwrap_err();
        let blocked = err.downcast_ref::<Blocked>().expect("a Blocked error");
        assert!(matches!(blocked.0, AddressError::ForbiddenAddress(ip) if ip.is_loopback()));
        let lenient = GuardedResolver { allow_private: true };
        let addrs = lenient.lookup("localhost").await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
