//! Optional TLS on the listener (CONTRACT §9: `RELAY_TLS_CERT` and `RELAY_TLS_KEY`, PEM paths):
//! rustls with the aws-lc-rs provider, TLS 1.2 and 1.3 only, ALPN for HTTP/2 and HTTP/1.1. The
//! files are read at start; a new certificate takes a restart (a rolling one in a fleet), or
//! terminate TLS at a load balancer instead.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The acceptor for `cert` (the chain, leaf first) and `key`.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("RELAY_TLS_CERT {}: not readable", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("RELAY_TLS_CERT {}: not a PEM certificate chain", cert.display()))?;
    if chain.is_empty() {
        bail!("RELAY_TLS_CERT {}: holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("RELAY_TLS_KEY {}: not a readable PEM private key", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("RELAY_TLS_CERT and RELAY_TLS_KEY do not make a usable certificate")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
