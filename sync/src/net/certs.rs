//! Making a cluster's certificates: a CA, and one certificate and key per
//! node (with [rcgen](https://docs.rs/rcgen)). `accordant-node certs`, the
//! tests and the demo use it.
//!
//! Keys are ECDSA P-256. The CA certificate is valid for ten years, node
//! certificates for one; each node certificate names its node as
//! the `identity` module of `net` describes and may serve as a TLS client
//! and server. [`write_cluster`] lays out a directory the way
//! [`TlsIdentity::load`](super::TlsIdentity::load) reads it.
//!
//! ```
//! use accordant_sync::net::certs::ClusterCa;
//! use accordant_sync::net::TlsIdentity;
//!
//! let ca = ClusterCa::new("prod").unwrap();
//! let node = ca.issue(3).unwrap();
//! let identity = TlsIdentity::from_pem(ca.cert_pem(), &node.cert_pem, &node.key_pem).unwrap();
//! assert_eq!(identity.node_id("prod").unwrap(), 3);
//! ```
//!
//! Rotation: make a new CA ([`ClusterCa::new`]), trust both CA
//! certificates on every node (`ca.pem` holds both; reload with
//! [`Node::reload_tls`](super::Node::reload_tls)), then issue and load new
//! node certificates one node at a time, then drop the old CA from
//! `ca.pem` and reload again. SECURITY.md has the steps.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::identity::{node_dns_name, node_uri, valid_cluster_name, TlsError};

/// A cluster's certificate authority: signs node certificates.
pub struct ClusterCa {
    cluster: String,
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl core::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

/// A node's certificate and private key, in PEM.
#[derive(Clone)]
pub struct NodeCert {
    /// The node id it names.
    pub node: u64,
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl core::fmt::Debug for NodeCert {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NodeCert")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new CA for `cluster`, with a fresh key.
    pub fn new(cluster: &str) -> Result<Self, TlsError> {
        if !valid_cluster_name(cluster) {
            return Err(TlsError::Cluster(cluster.into()));
        }
        let key = KeyPair::generate()?;
        let params = ca_params(cluster)?;
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cluster: cluster.into(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// An existing CA of `cluster` made by [`ClusterCa::new`], from its
    /// certificate and key (to issue certificates for new nodes). The
    /// issuer's name is rebuilt from the cluster's name, as `new` made it.
    pub fn from_pem(cluster: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        if !valid_cluster_name(cluster) {
            return Err(TlsError::Cluster(cluster.into()));
        }
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::new(ca_params(cluster)?, key);
        Ok(ClusterCa {
            cluster: cluster.into(),
            issuer,
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
        })
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA certificate, to trust on every node.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key: keep it offline, never on a node.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A certificate and key for node `id`.
    pub fn issue(&self, id: u64) -> Result<NodeCert, TlsError> {
        let mut params = CertificateParams::new(vec![node_dns_name(&self.cluster, id)])?;
        params
            .subject_alt_names
            .push(SanType::URI(node_uri(&self.cluster, id).try_into()?));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("node {id} of {}", self.cluster));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(365);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(NodeCert {
            node: id,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn ca_params(cluster: &str) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(
        DnType::CommonName,
        format!("accordant cluster {cluster} CA"),
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(3650);
    Ok(params)
}

/// Writes a new CA for `cluster` and a certificate for each of `nodes`
/// into `dir` (created if missing): `ca.pem`, `ca-key.pem`,
/// `node-<id>.pem`, `node-<id>-key.pem`. Keys are written readable by the
/// owner only (on Unix). Returns the CA (to issue more later).
pub fn write_cluster(dir: &Path, cluster: &str, nodes: &[u64]) -> Result<ClusterCa, TlsError> {
    let ca = ClusterCa::new(cluster)?;
    std::fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.into(),
        source,
    })?;
    write(dir, "ca.pem", ca.cert_pem(), false)?;
    write(dir, "ca-key.pem", ca.key_pem(), true)?;
    for &id in nodes {
        write_node(dir, &ca.issue(id)?)?;
    }
    Ok(ca)
}

/// Writes one node's certificate and key into `dir`.
pub fn write_node(dir: &Path, cert: &NodeCert) -> Result<(), TlsError> {
    write(
        dir,
        &format!("node-{}.pem", cert.node),
        &cert.cert_pem,
        false,
    )?;
    write(
        dir,
        &format!("node-{}-key.pem", cert.node),
        &cert.key_pem,
        true,
    )
}

fn write(dir: &Path, name: &str, text: &str, secret: bool) -> Result<(), TlsError> {
    let path = dir.join(name);
    let io = |source| TlsError::Io {
        path: path.clone(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    use std::io::Write;
    let mut f = opts.open(&path).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::TlsIdentity;

    #[test]
    fn a_written_cluster_loads_back_per_node() {
        let dir = std::env::temp_dir().join(format!("accordant-certs-{}", std::process::id()));
        let ca = write_cluster(&dir, "test", &[1, 2]).unwrap();
        for id in [1, 2] {
            let ident = TlsIdentity::load(&dir, id).unwrap();
            assert_eq!(ident.node_id("test").unwrap(), id);
        }
        assert!(TlsIdentity::load(&dir, 3).is_err());
        // The CA reloads from its files and issues certificates for the
        // same cluster.
        let again = ClusterCa::from_pem(
            "test",
            &std::fs::read_to_string(dir.join("ca.pem")).unwrap(),
            &std::fs::read_to_string(dir.join("ca-key.pem")).unwrap(),
        )
        .unwrap();
        let n9 = again.issue(9).unwrap();
        let ident = TlsIdentity::from_pem(ca.cert_pem(), &n9.cert_pem, &n9.key_pem).unwrap();
        assert_eq!(ident.node_id("test").unwrap(), 9);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("node-1-key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "keys are private");
        }
        assert!(matches!(
            ClusterCa::new("Bad.Name"),
            Err(TlsError::Cluster(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
