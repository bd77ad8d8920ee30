//! Mutual TLS 1.3 on every node connection (rustls, *ring* provider).
//!
//! From a node's [`TlsIdentity`] and configuration, [`TlsContext::new`]
//! builds one rustls server and one client configuration:
//!
//! - **TLS 1.3 only**, ECDHE key exchange, no session resumption (every
//!   connection verifies a full certificate chain, so a reloaded CA bundle
//!   or member list applies to the next connection);
//! - **accepting**: the client must present a certificate that chains to
//!   one of the trusted CA certificates (rustls's `WebPkiClientVerifier`);
//!   on top of that, [`MemberVerifier`] refuses, inside the TLS handshake,
//!   a certificate that names no node of the cluster, or a node not on the
//!   member list;
//! - **dialing**: the server must present a certificate of a trusted CA
//!   valid for `node-<expected>.<cluster>.accordant` (rustls's server name
//!   check), and after the handshake its identity URI must name the
//!   expected id.
//!
//! After the handshake the peer's node id is read from its certificate
//! ([`identity`](super::identity)); the handshake frame that follows must
//! repeat it, but never decides it.
//!
//! The *ring* provider is used because it builds from the registry with a
//! C compiler alone (a few C and assembly files); aws-lc-rs, rustls's
//! default, compiles the whole AWS-LC C library (and wants cmake or NASM
//! on some targets), for no gain here: both offer the TLS 1.3 suites and
//! the ECDSA P-256 keys the cluster's certificates use.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::config::NodeConfig;
use super::error::NetError;
use super::identity::{cert_node_id, node_dns_name, valid_cluster_name, TlsError, TlsIdentity};

/// The built TLS configurations of a node.
pub(crate) struct TlsContext {
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    cluster: String,
    members: BTreeSet<u64>,
}

impl TlsContext {
    /// Builds the configurations for `config`'s node from `identity`.
    /// Refuses material whose certificate does not name this node.
    pub(crate) fn new(config: &NodeConfig, identity: &TlsIdentity) -> Result<Self, TlsError> {
        if !valid_cluster_name(&config.cluster) {
            return Err(TlsError::Cluster(config.cluster.clone()));
        }
        if identity.node_id(&config.cluster)? != config.id {
            return Err(TlsError::Identity(
                "this node's certificate names another node id than the configured one",
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in &identity.roots {
            roots.add(ca.clone())?;
        }
        let roots = Arc::new(roots);
        let general = |e: rustls::server::VerifierBuilderError| {
            TlsError::Rustls(rustls::Error::General(e.to_string()))
        };
        let inner =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(general)?;
        let verifier = Arc::new(MemberVerifier {
            inner,
            cluster: config.cluster.clone(),
            members: config.members.clone(),
        });
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
        server.session_storage = Arc::new(NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots)
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())?;
        client.resumption = Resumption::disabled();
        Ok(TlsContext {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            cluster: config.cluster.clone(),
            members: config.members.clone(),
        })
    }

    /// Runs the server side of the TLS handshake; returns the stream and
    /// the client's node id (a member, verified).
    pub(crate) async fn accept<S>(&self, io: S) -> Result<(server::TlsStream<S>, u64), NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = self.acceptor.accept(io).await.map_err(tls_failed)?;
        let id = peer_id(tls.get_ref().1.peer_certificates(), &self.cluster)?;
        if !self.members.contains(&id) {
            return Err(NetError::Identity("the peer is not on the member list"));
        }
        Ok((tls, id))
    }

    /// Runs the client side of the TLS handshake with the node that must
    /// be `expected`; returns the stream.
    pub(crate) async fn connect<S>(
        &self,
        io: S,
        expected: u64,
    ) -> Result<client::TlsStream<S>, NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let name = ServerName::try_from(node_dns_name(&self.cluster, expected))
            .map_err(|_| NetError::Identity("no valid server name for that node"))?;
        let tls = self.connector.connect(name, io).await.map_err(tls_failed)?;
        let id = peer_id(tls.get_ref().1.peer_certificates(), &self.cluster)?;
        if id != expected {
            return Err(NetError::Identity(
                "the peer's certificate names another node than the one dialed",
            ));
        }
        Ok(tls)
    }
}

/// A failed TLS handshake. A peer that closed the stream in the middle
/// (say, a dialer whose older connection resumed first) refused nothing:
/// that is [`NetError::Closed`], not an authentication failure.
fn tls_failed(e: std::io::Error) -> NetError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return NetError::Closed;
    }
    NetError::Tls(e.to_string())
}

fn peer_id(certs: Option<&[CertificateDer<'_>]>, cluster: &str) -> Result<u64, NetError> {
    let leaf = certs
        .and_then(|c| c.first())
        .ok_or(NetError::Identity("the peer presented no certificate"))?;
    cert_node_id(leaf, cluster).map_err(NetError::Identity)
}

/// rustls's chain verification, then: the certificate names exactly one
/// node of this cluster, and that node is a member.
#[derive(Debug)]
pub(crate) struct MemberVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cluster: String,
    members: BTreeSet<u64>,
}

impl ClientCertVerifier for MemberVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match cert_node_id(end_entity, &self.cluster) {
            Ok(id) if self.members.contains(&id) => Ok(verified),
            _ => Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
