//! TLS to the relay with the organization's pinned keys (`relay_spki_sha256` in managed policy).
//!
//! A pin is checked on top of the normal certificate checks, never instead of them: a certificate
//! must chain to a trusted CA *and* carry one of the pinned public keys. That defends against a
//! CA that issues a certificate for the relay's name to someone else. ureq cannot take a rustls
//! verifier of our own, so this module supplies the TLS step of its connection chain.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, StreamOwned,
};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};

/// Refuses a certificate whose SubjectPublicKeyInfo hashes to none of the pins, after the inner
/// verifier has accepted it.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    pins: Vec<[u8; 32]>,
}

/// SHA-256 of a certificate's DER SubjectPublicKeyInfo: what `openssl … | openssl dgst -sha256`
/// prints for it, and what the policy's pins hold.
pub fn spki_sha256(certificate: &[u8]) -> Option<[u8; 32]> {
    let der = CertificateDer::from(certificate);
    let parsed = webpki::EndEntityCert::try_from(&der).ok()?;
    let spki = parsed.subject_public_key_info();
    ring::digest::digest(&ring::digest::SHA256, spki.as_ref())
        .as_ref()
        .try_into()
        .ok()
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        match spki_sha256(end_entity.as_ref()) {
            Some(hash) if self.pins.contains(&hash) => Ok(verified),
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether a TLS failure is a pin mismatch (and not an untrusted certificate).
pub(crate) fn is_pin_mismatch(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
    )
}

/// The rustls configuration: the platform's verifier or the given CA certificates, then the pins.
fn client_config(
    relay_ca: Option<&[CertificateDer<'static>]>,
    pins: &[[u8; 32]],
) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner: Arc<dyn ServerCertVerifier> = match relay_ca {
        Some(certificates) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(certificates.iter().cloned());
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::clone(&provider),
            )
            .build()
            .map_err(|error| rustls::Error::General(error.to_string()))?
        }
        None => Arc::new(rustls_platform_verifier::Verifier::new(Arc::clone(
            &provider,
        ))?),
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinningVerifier {
            inner,
            pins: pins.to_vec(),
        }))
        .with_no_client_auth())
}

/// A ureq agent whose HTTPS connections go through [`PinningVerifier`].
pub(crate) fn pinned_agent(
    config: ureq::config::Config,
    relay_ca: Option<&[CertificateDer<'static>]>,
    pins: &[[u8; 32]],
) -> Result<ureq::Agent, rustls::Error> {
    let connector = TcpConnector::default().chain(PinnedTlsConnector {
        config: Arc::new(client_config(relay_ca, pins)?),
    });
    Ok(ureq::Agent::with_parts(
        config,
        connector,
        DefaultResolver::default(),
    ))
}

struct PinnedTlsConnector {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for PinnedTlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinnedTlsConnector")
    }
}

impl<In: Transport> Connector<In> for PinnedTlsConnector {
    type Out = Either<In, PinnedTlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .authority()
            .map(|authority| {
                authority
                    .host()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
            })
            .ok_or(ureq::Error::Tls("the relay address has no host"))?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ureq::Error::Tls("the relay address is not a valid host name"))?;
        let mut connection = ClientConnection::new(Arc::clone(&self.config), name)
            .map_err(|error| ureq::Error::Io(std::io::Error::other(error)))?;
        let mut socket = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        socket.set_timeout(details.timeout);
        connection.complete_io(&mut socket)?;
        Ok(Some(Either::B(PinnedTlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned::new(connection, socket),
        })))
    }
}

/// One TLS connection to the relay, after the pins matched.
pub(crate) struct PinnedTlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl fmt::Debug for PinnedTlsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinnedTlsTransport")
    }
}

impl Transport for PinnedTlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = self.buffers.output().get(..amount).unwrap_or_default();
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
