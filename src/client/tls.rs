//! Trust on first use for the server's certificate, as ssh does for host keys.
//!
//! The first connection records the fingerprint the server presents; a person confirms it (or
//! passes `--trust-new`) and it is pinned. Later connections accept exactly that certificate
//! and fail loudly if it changes. The pin replaces name checks: a self-signed certificate
//! has no authority to vouch for a name.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::crypto::cert_fingerprint;

#[derive(Debug)]
pub struct PinVerifier {
    /// `None` probes: accept any certificate and only record it (used before anything
    /// secret is sent, to show the fingerprint).
    pinned: Option<String>,
    presented: Mutex<Option<String>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinVerifier {
    pub fn new(pinned: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            pinned,
            presented: Mutex::new(None),
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        })
    }

    /// The fingerprint the server presented on the last handshake.
    pub fn presented(&self) -> Option<String> {
        self.presented
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn pinned(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// True if the last handshake failed because the certificate is not the pinned one.
    pub fn mismatched(&self) -> bool {
        match (&self.pinned, self.presented()) {
            (Some(pinned), Some(presented)) => *pinned != presented,
            _ => false,
        }
    }

    pub fn client_config(self: &Arc<Self>) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(self.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = cert_fingerprint(end_entity.as_ref());
        *self.presented.lock().unwrap_or_else(|p| p.into_inner()) = Some(presented.clone());
        match &self.pinned {
            Some(pinned) if *pinned != presented => Err(rustls::Error::General(format!(
                "server certificate {presented} is not the pinned {pinned}"
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
