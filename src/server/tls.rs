//! The server's TLS identity: a self-signed certificate made on first start and kept in the
//! data directory, so its fingerprint stays the same and clients can pin it.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::crypto::cert_fingerprint;
use crate::fsutil::{create_private_dir, write_atomic};

pub struct TlsIdentity {
    pub config: Arc<rustls::ServerConfig>,
    /// `SHA256:` and the certificate's hex digest, as clients pin it.
    pub fingerprint: String,
}

pub fn load_or_create(dir: &Path) -> Result<TlsIdentity, String> {
    create_private_dir(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cert_path = dir.join("cert.der");
    let key_path = dir.join("key.der");
    if !cert_path.exists() || !key_path.exists() {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
            if !host.trim().is_empty() {
                names.push(host.trim().to_owned());
            }
        }
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| format!("cannot make a certificate: {e}"))?;
        write_atomic(&key_path, &made.key_pair.serialize_der(), 0o600)
            .and_then(|()| write_atomic(&cert_path, made.cert.der(), 0o644))
            .map_err(|e| format!("cannot save the certificate in {}: {e}", dir.display()))?;
    }
    let cert = std::fs::read(&cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let key = std::fs::read(&key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    let fingerprint = cert_fingerprint(&cert);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(|e| format!("the saved certificate is unusable: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint,
    })
}
