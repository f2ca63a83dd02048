//! TLS of the `postgres` storage, with the meaning libpq gives each `sslmode`: `prefer` and
//! `require` encrypt without authenticating the server (a server's self-signed certificate,
//! such as Debian's default one, is accepted), `verify-full` checks the certificate against the
//! system's roots (`SSL_CERT_FILE` adds a private CA) and the host name against it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use tokio_postgres_rustls::MakeRustlsConnect;

/// `sslmode`, as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS, the certificate checked against the system's roots and the host name.
    VerifyFull,
}

impl SslMode {
    /// tokio-postgres's mode: `verify-full` is `require` with a verifying connector.
    pub fn driver_mode(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Driver;
        match self {
            SslMode::Disable => Driver::Disable,
            SslMode::Prefer => Driver::Prefer,
            SslMode::Require | SslMode::VerifyFull => Driver::Require,
        }
    }

    /// The connector of this mode; `None` for `disable`. An error only when the system's
    /// roots cannot be read for `verify-full`.
    pub fn connector(self) -> Result<Option<MakeRustlsConnect>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let config = match self {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptionOnly(provider))),
            SslMode::VerifyFull => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(
                    rustls_platform_verifier::Verifier::new(provider)?,
                )),
        };
        Ok(Some(MakeRustlsConnect::new(config.with_no_client_auth())))
    }
}

/// Accepts the server's certificate as it is (libpq's `prefer`/`require`), but still checks
/// that the server holds its key: the handshake's signatures are verified.
#[derive(Debug)]
struct EncryptionOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptionOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_has_its_driver_mode_and_connector() {
        use tokio_postgres::config::SslMode as Driver;
        assert_eq!(SslMode::Disable.driver_mode(), Driver::Disable);
        assert_eq!(SslMode::Prefer.driver_mode(), Driver::Prefer);
        assert_eq!(SslMode::Require.driver_mode(), Driver::Require);
        assert_eq!(SslMode::VerifyFull.driver_mode(), Driver::Require);
        assert!(SslMode::Disable.connector().unwrap().is_none());
        for mode in [SslMode::Prefer, SslMode::Require, SslMode::VerifyFull] {
            assert!(mode.connector().unwrap().is_some(), "{mode:?}");
        }
    }
}
