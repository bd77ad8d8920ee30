//! Node identities in certificates, and a node's TLS material
//! ([`TlsIdentity`]).
//!
//! A cluster has its own certificate authority. Each node's certificate,
//! signed by it, names the node twice in its subject alternative names:
//!
//! - the URI `accordant://<cluster>/node/<id>`: **the identity**. After the
//!   TLS handshake, a node reads the peer's node id from it, and from
//!   nothing else (never from a field the peer chooses);
//! - the DNS name `node-<id>.<cluster>.accordant`: what the dialer asks
//!   rustls to verify as the server name, so that TLS itself refuses a
//!   peer that is not the node dialed.
//!
//! A certificate naming no node of the cluster, or more than one, has no
//! identity and is refused. [`certs`](super::certs) makes such
//! certificates; any CA tooling can, with these two names.
//!
//! Files, as `accordant-node certs` writes them in a directory: `ca.pem`
//! (the CA certificates to trust: one, or several while rotating),
//! `node-<id>.pem` (the node's certificate chain) and `node-<id>-key.pem`
//! (its private key, PKCS#8). `ca-key.pem`, the CA's key, is written too
//! but belongs offline, not on nodes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

/// Why TLS material could not be loaded or used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{0}")]
    Pem(&'static str),
    /// rustls refused the material (a key that does not match, an
    /// unsupported algorithm).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The certificates do not name this node as configured.
    #[error("identity: {0}")]
    Identity(&'static str),
    /// A cluster name that is not a DNS label.
    #[error("invalid cluster name {0:?}: lower-case letters, digits and '-', 1 to 63 of them")]
    Cluster(String),
    /// The node has no TLS material and plaintext was not chosen.
    #[error("no TLS material: give the node its certificate, key and CA (NodeConfig::with_tls; accordant-node --tls DIR), or choose NodeConfig::insecure_plaintext() explicitly")]
    NoMaterial,
    /// Both TLS material and plaintext were configured.
    #[error("both TLS material and insecure_plaintext() are set: choose one")]
    Ambiguous,
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A node's TLS material: its certificate chain and private key, and the
/// CA certificates it trusts. Cheap to clone (the key is shared).
#[derive(Clone)]
pub struct TlsIdentity {
    pub(crate) roots: Vec<CertificateDer<'static>>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("roots", &self.roots.len())
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// From PEM text: the trusted CA certificates (several while
    /// rotating), the node's certificate chain, and its private key.
    pub fn from_pem(ca: &str, chain: &str, key: &str) -> Result<Self, TlsError> {
        let roots = certs_from_pem(ca)?;
        let chain = certs_from_pem(chain)?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|_| TlsError::Pem("no private key in the key PEM"))?;
        Ok(TlsIdentity {
            roots,
            chain,
            key: Arc::new(key),
        })
    }

    /// Loads node `id`'s material from `dir`: `ca.pem`, `node-<id>.pem`,
    /// `node-<id>-key.pem`.
    pub fn load(dir: impl AsRef<Path>, id: u64) -> Result<Self, TlsError> {
        let dir = dir.as_ref();
        let read = |name: String| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| TlsError::Io { path, source })
        };
        Self::from_pem(
            &read("ca.pem".into())?,
            &read(format!("node-{id}.pem"))?,
            &read(format!("node-{id}-key.pem"))?,
        )
    }

    /// The node id this identity's certificate names in `cluster`.
    pub fn node_id(&self, cluster: &str) -> Result<u64, TlsError> {
        let leaf = self
            .chain
            .first()
            .ok_or(TlsError::Pem("no certificate in the chain"))?;
        cert_node_id(leaf, cluster).map_err(TlsError::Identity)
    }
}

fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Pem("a certificate PEM does not parse"))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate in a certificate PEM"));
    }
    Ok(certs)
}

/// Whether `name` can be a cluster name: a DNS label of lower-case
/// letters, digits and `-`, not starting or ending with `-`.
pub fn valid_cluster_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The identity URI of node `id` in `cluster`.
pub fn node_uri(cluster: &str, id: u64) -> String {
    format!("accordant://{cluster}/node/{id}")
}

/// The DNS name of node `id` in `cluster` (what a dialer verifies).
pub fn node_dns_name(cluster: &str, id: u64) -> String {
    format!("node-{id}.{cluster}.accordant")
}

/// The node id that a certificate names in `cluster` (its single
/// `accordant://<cluster>/node/<id>` URI). The certificate must already be
/// verified against the CA: this only reads it.
pub(crate) fn cert_node_id(cert: &CertificateDer<'_>, cluster: &str) -> Result<u64, &'static str> {
    let ee = webpki::EndEntityCert::try_from(cert).map_err(|_| "the certificate does not parse")?;
    let prefix = format!("accordant://{cluster}/node/");
    let mut found = None;
    for uri in ee.valid_uri_names() {
        let Some(id) = uri.strip_prefix(prefix.as_str()) else {
            continue;
        };
        // Canonical decimal only: "7", never "07" or "+7".
        let id = id
            .parse::<u64>()
            .ok()
            .filter(|n| n.to_string() == id)
            .ok_or("the certificate's node URI has no valid id")?;
        if found.replace(id).is_some() {
            return Err("the certificate names more than one node");
        }
    }
    found.ok_or("the certificate names no node of this cluster")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::certs::ClusterCa;

    #[test]
    fn cluster_names_are_dns_labels() {
        for ok in ["accordant", "eu-west-2", "a", "x1"] {
            assert!(valid_cluster_name(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "Prod", "a.b", "a/b", &"a".repeat(64)] {
            assert!(!valid_cluster_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_node_certificate_names_exactly_its_node() {
        let ca = ClusterCa::new("prod").unwrap();
        let n7 = ca.issue(7).unwrap();
        let id = TlsIdentity::from_pem(ca.cert_pem(), &n7.cert_pem, &n7.key_pem).unwrap();
        assert_eq!(id.node_id("prod").unwrap(), 7);
        assert!(matches!(id.node_id("staging"), Err(TlsError::Identity(_))));
        assert!(TlsIdentity::from_pem(ca.cert_pem(), &n7.cert_pem, "junk").is_err());
        assert!(TlsIdentity::from_pem("", &n7.cert_pem, &n7.key_pem).is_err());
    }
}
