//! The relay's HTTP API from a device's side: blocking calls, one JSON body each, with the session
//! token taken and renewed by signing the relay's challenge with the device key.
//!
//! Every failure is sorted into what the caller does next: [`RelayError::Unreachable`] and
//! [`RelayError::Busy`] are retried later (the outbox keeps what was not sent),
//! [`RelayError::EpochMoved`] makes the caller read the log and make its change again, and
//! [`RelayError::Refused`] carries the relay's fixed sentence for the clinician.

use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

use openmls_traits::signatures::Signer;
use serde::de::DeserializeOwned;
use serde::Serialize;
use ward_core::identity::{DeviceCredential, DeviceKey};
use ward_proto::relay_api::{
    AckRequest, ChallengeRequest, ChallengeResponse, ClaimRequest, ClaimResponse, CommitRequest,
    DirectoryUser, EnrollRequest, EnrollResponse, ErrorBody, Inbox, KeyPackagesRequest,
    MessageRequest, Sequenced, SessionRequest, SessionResponse, AUTH_LABEL,
};
use ward_proto::{BlobId, DeviceId};
use zeroize::Zeroizing;

/// How long one request may take before the relay counts as unreachable. Blob transfers are
/// bounded by progress, not by this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest JSON answer read into memory: an inbox page of the relay's largest reads.
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

/// Why a call to the relay failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The relay could not be reached or the connection broke; nothing is known to have happened.
    #[error("the relay could not be reached")]
    Unreachable,
    /// The relay is overloaded or restarting; try again shortly.
    #[error("the relay is busy")]
    Busy,
    /// Another member's commit won the epoch.
    #[error("the conversation changed on the relay (epoch {current_epoch})")]
    EpochMoved {
        /// The group's epoch on the relay.
        current_epoch: u64,
    },
    /// The relay refused the request; `message` is its fixed text for people.
    #[error("{message}")]
    Refused {
        /// The relay's stable error code.
        code: String,
        /// The relay's sentence for the clinician.
        message: String,
    },
    /// The relay's certificate is not trusted: the wrong address, an expired certificate, or
    /// someone in between.
    #[error(
        "the relay's certificate is not trusted; check the relay address, and ask IT whether \
         the hospital's certificate is installed"
    )]
    Untrusted,
    /// The relay's certificate is trusted but does not carry a key the organization pinned: a
    /// certificate issued to someone else for the relay's name, or a key rotated without
    /// updating the policy.
    #[error(
        "the relay's certificate does not carry the key your organization pinned; Ward did not \
         connect. Tell IT"
    )]
    PinMismatch,
    /// The relay answered something that is not Ward's API.
    #[error("the relay's answer was not understood")]
    Protocol,
    /// A local file could not be read or written during a transfer.
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
}

impl RelayError {
    /// Whether trying the same call again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable | Self::Busy)
    }

    /// The relay's code, when it refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A connection to one relay for one device.
pub struct RelayClient {
    base: String,
    agent: ureq::Agent,
    device: DeviceId,
    token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base", &self.base)
            .field("signed_in", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

/// Checks a relay URL: `http://` is allowed only to this computer, since nothing else may see
/// even the ciphertext's metadata unprotected.
pub fn check_relay_url(url: &str) -> Result<String, RelayError> {
    let trimmed = url.trim().trim_end_matches('/');
    let refused = |message: &str| RelayError::Refused {
        code: "bad_relay_url".to_owned(),
        message: message.to_owned(),
    };
    let rest = if let Some(rest) = trimmed.strip_prefix("https://") {
        rest
    } else if let Some(rest) = trimmed.strip_prefix("http://") {
        let host = rest.split('/').next().unwrap_or_default();
        let host = host.rsplit_once(':').map_or(host, |(host, _port)| host);
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(refused(
                "The relay address must start with https:// (plain http:// is only for a relay on \
                 this computer).",
            ));
        }
        rest
    } else {
        return Err(refused(
            "The relay address must start with https://, for example https://ward.hospital.org",
        ));
    };
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(refused("The relay address is not a web address."));
    }
    Ok(trimmed.to_owned())
}

/// The certificates a relay's TLS is checked against: this computer's trust store, where IT
/// installs the hospital's CA, or only the CA certificates given (PEM).
/// With `pins` (the policy's `relay_spki_sha256`), the certificate must also carry one of them.
fn agent(relay_ca: Option<&[u8]>, pins: Option<&[[u8; 32]]>) -> Result<ureq::Agent, RelayError> {
    let roots = match relay_ca {
        None => ureq::tls::RootCerts::PlatformVerifier,
        Some(pem) => {
            let certificates: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(certificate),
                    _ => None,
                })
                .collect();
            if certificates.is_empty() {
                return Err(RelayError::Refused {
                    code: "bad_relay_ca".to_owned(),
                    message: "The relay CA file holds no certificate.".to_owned(),
                });
            }
            ureq::tls::RootCerts::Specific(std::sync::Arc::new(certificates))
        }
    };
    let builder = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(REQUEST_TIMEOUT));
    if let Some(pins) = pins {
        let relay_ca = match &roots {
            ureq::tls::RootCerts::Specific(certificates) => Some(
                certificates
                    .iter()
                    .map(|certificate| {
                        rustls::pki_types::CertificateDer::from(certificate.der().to_vec())
                    })
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        };
        return crate::pinned_tls::pinned_agent(builder.build(), relay_ca.as_deref(), pins)
            .map_err(|_| RelayError::Untrusted);
    }
    Ok(builder
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(roots)
                .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build(),
        )
        .build()
        .into())
}

/// Whether a TLS failure is the relay's certificate not being trusted.
fn untrusted(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}

fn transport_error(error: ureq::Error) -> RelayError {
    // rustls reports a failed handshake through the socket's io::Error.
    if let ureq::Error::Io(io) = &error {
        if let Some(tls) = io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return if crate::pinned_tls::is_pin_mismatch(tls) {
                RelayError::PinMismatch
            } else if untrusted(tls) {
                RelayError::Untrusted
            } else {
                RelayError::Protocol
            };
        }
    }
    match error {
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound => RelayError::Unreachable,
        ureq::Error::Rustls(tls) if crate::pinned_tls::is_pin_mismatch(&tls) => {
            RelayError::PinMismatch
        }
        ureq::Error::Rustls(tls) if untrusted(&tls) => RelayError::Untrusted,
        _ => RelayError::Protocol,
    }
}

/// Turns an answer into `T`, or into the error its status and body describe.
fn answer<T: DeserializeOwned>(
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<T, RelayError> {
    let status = response.status();
    if status.is_success() {
        return response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_json()
            .map_err(|error| match error {
                ureq::Error::Io(_) | ureq::Error::Timeout(_) => RelayError::Unreachable,
                _ => RelayError::Protocol,
            });
    }
    Err(refusal(response))
}

fn no_content(response: ureq::http::Response<ureq::Body>) -> Result<(), RelayError> {
    if response.status().is_success() {
        Ok(())
    } else {
        Err(refusal(response))
    }
}

fn refusal(mut response: ureq::http::Response<ureq::Body>) -> RelayError {
    let status = response.status().as_u16();
    if status == 429 || status == 503 || status == 502 || status == 504 {
        return RelayError::Busy;
    }
    let body: Option<ErrorBody> = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_json()
        .ok();
    match body {
        Some(ErrorBody {
            code,
            current_epoch: Some(current_epoch),
            ..
        }) if code == "epoch_moved" => RelayError::EpochMoved { current_epoch },
        Some(ErrorBody { code, message, .. }) => RelayError::Refused { code, message },
        None if status >= 500 => RelayError::Busy,
        None => RelayError::Protocol,
    }
}

impl RelayClient {
    /// A client for the relay at `base_url` (checked with [`check_relay_url`]), for `device`,
    /// trusting this computer's certificate store.
    pub fn new(base_url: &str, device: DeviceId) -> Result<Self, RelayError> {
        Self::with_trust(base_url, device, None, None)
    }

    /// A client that trusts only the CA certificates in `relay_ca` (PEM) when given, and with
    /// `pins` only a certificate carrying one of those public keys (SHA-256 of its SPKI).
    pub fn with_trust(
        base_url: &str,
        device: DeviceId,
        relay_ca: Option<&[u8]>,
        pins: Option<&[[u8; 32]]>,
    ) -> Result<Self, RelayError> {
        Ok(Self {
            base: check_relay_url(base_url)?,
            agent: agent(relay_ca, pins)?,
            device,
            token: None,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, RelayError> {
        let response = self
            .agent
            .post(self.url(path))
            .send_json(body)
            .map_err(transport_error)?;
        answer(response)
    }

    /// Enrolls this device with a one-time invite. Needs no session.
    pub fn enroll(
        &self,
        invite: &str,
        credential: &DeviceCredential,
    ) -> Result<EnrollResponse, RelayError> {
        self.post_json(
            "/v1/enroll",
            &EnrollRequest {
                invite: invite.trim().to_owned(),
                credential: hex::encode(credential.encode()),
            },
        )
    }

    /// Signs in: asks for a challenge and answers it with the device key.
    pub fn sign_in(&mut self, key: &DeviceKey) -> Result<(), RelayError> {
        let device = hex::encode(self.device.as_bytes());
        let challenge: ChallengeResponse = self.post_json(
            "/v1/auth/challenge",
            &ChallengeRequest {
                device: device.clone(),
            },
        )?;
        let challenge_bytes =
            hex::decode(&challenge.challenge).map_err(|_| RelayError::Protocol)?;
        let mut signed = AUTH_LABEL.to_vec();
        signed.extend_from_slice(&challenge_bytes);
        let signature = key.sign(&signed).map_err(|_| RelayError::Protocol)?;
        let session: SessionResponse = self.post_json(
            "/v1/auth/session",
            &SessionRequest {
                device,
                challenge: challenge.challenge,
                signature: hex::encode(signature),
            },
        )?;
        self.token = Some(Zeroizing::new(session.token));
        Ok(())
    }

    /// The current session token, for tools that speak HTTP to the relay themselves (the load
    /// benchmark). `None` before signing in.
    pub fn session_token(&self) -> Option<&str> {
        self.token.as_deref().map(String::as_str)
    }

    fn bearer(&self) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "Bearer {}",
            self.token.as_deref().map_or("", String::as_str)
        ))
    }

    /// Runs `call` with a session, signing in first when there is none and once more when the
    /// relay says the session ended (it forgets sessions when it restarts).
    fn with_session<T>(
        &mut self,
        key: &DeviceKey,
        call: impl Fn(&Self, &str) -> Result<T, RelayError>,
    ) -> Result<T, RelayError> {
        if self.token.is_none() {
            self.sign_in(key)?;
        }
        match call(self, &self.bearer()) {
            Err(error) if error.code() == Some("unauthorized") => {
                self.sign_in(key)?;
                call(self, &self.bearer())
            }
            other => other,
        }
    }

    /// POSTs `body` with a session; `read` turns the answer into the result.
    fn authed_post<B: Serialize, T>(
        &mut self,
        key: &DeviceKey,
        path: &str,
        body: &B,
        read: fn(ureq::http::Response<ureq::Body>) -> Result<T, RelayError>,
    ) -> Result<T, RelayError> {
        self.with_session(key, |client, bearer| {
            let response = client
                .agent
                .post(client.url(path))
                .header("Authorization", bearer)
                .send_json(body)
                .map_err(transport_error)?;
            read(response)
        })
    }

    fn authed_get<T: DeserializeOwned>(
        &mut self,
        key: &DeviceKey,
        path: &str,
    ) -> Result<T, RelayError> {
        self.with_session(key, |client, bearer| {
            let response = client
                .agent
                .get(client.url(path))
                .header("Authorization", bearer)
                .call()
                .map_err(transport_error)?;
            answer(response)
        })
    }

    /// Every clinician in the directory.
    pub fn directory(&mut self, key: &DeviceKey) -> Result<Vec<DirectoryUser>, RelayError> {
        self.authed_get(key, "/v1/directory")
    }

    /// Uploads one-time key packages and a last-resort one.
    pub fn upload_key_packages(
        &mut self,
        key: &DeviceKey,
        key_packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
    ) -> Result<(), RelayError> {
        let request = KeyPackagesRequest {
            key_packages: key_packages.iter().map(hex::encode).collect(),
            last_resort: last_resort.map(hex::encode),
        };
        self.authed_post(key, "/v1/key-packages", &request, no_content)
    }

    /// Claims one key package of `device`.
    pub fn claim_key_package(
        &mut self,
        key: &DeviceKey,
        device: &DeviceId,
    ) -> Result<Option<Vec<u8>>, RelayError> {
        let claimed: ClaimResponse = self.authed_post(
            key,
            "/v1/key-packages/claim",
            &ClaimRequest {
                device: hex::encode(device.as_bytes()),
            },
            answer,
        )?;
        claimed
            .key_package
            .map(|text| hex::decode(text).map_err(|_| RelayError::Protocol))
            .transpose()
    }

    /// Uploads a commit; its place in the log, or [`RelayError::EpochMoved`].
    pub fn commit(&mut self, key: &DeviceKey, request: &CommitRequest) -> Result<u64, RelayError> {
        let stored: Sequenced = self.authed_post(key, "/v1/commit", request, answer)?;
        Ok(stored.sequence)
    }

    /// Uploads an application message; its place in the log.
    pub fn message(
        &mut self,
        key: &DeviceKey,
        request: &MessageRequest,
    ) -> Result<u64, RelayError> {
        let stored: Sequenced = self.authed_post(key, "/v1/message", request, answer)?;
        Ok(stored.sequence)
    }

    /// What waits for this device: Welcomes, then log entries after its cursors.
    pub fn inbox(&mut self, key: &DeviceKey) -> Result<Inbox, RelayError> {
        self.authed_get(key, "/v1/inbox")
    }

    /// Moves this device's cursor in `group` to `sequence`.
    pub fn ack(
        &mut self,
        key: &DeviceKey,
        group: &ward_proto::GroupId,
        sequence: u64,
    ) -> Result<(), RelayError> {
        self.authed_post(
            key,
            "/v1/ack",
            &AckRequest {
                group: hex::encode(group.as_bytes()),
                sequence,
            },
            no_content,
        )
    }

    /// Streams the file at `path` to the blob store as blob `id`.
    pub fn put_blob(
        &mut self,
        key: &DeviceKey,
        id: &BlobId,
        path: &std::path::Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), RelayError> {
        let url = self.url(&format!("/v1/blobs/{}", hex::encode(id.as_bytes())));
        // A retried upload reports from zero again; the session call may run twice.
        let progress = std::cell::RefCell::new(progress);
        self.with_session(key, |client, bearer| {
            let file = std::fs::File::open(path)?;
            let len = file.metadata()?.len();
            let mut reporting = progress.borrow_mut();
            let mut file = CountingReader {
                inner: file,
                done: 0,
                total: len,
                progress: &mut **reporting,
            };
            let response = client
                .agent
                .put(&url)
                .config()
                .timeout_global(None)
                .timeout_send_body(Some(REQUEST_TIMEOUT))
                .build()
                .header("Authorization", bearer)
                .header("Content-Length", len.to_string())
                .send(ureq::SendBody::from_reader(&mut file))
                .map_err(transport_error)?;
            no_content(response)
        })
    }

    /// Streams blob `id` into `out`; returns the bytes written.
    pub fn get_blob(
        &mut self,
        key: &DeviceKey,
        id: &BlobId,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, RelayError> {
        let url = self.url(&format!("/v1/blobs/{}", hex::encode(id.as_bytes())));
        if self.token.is_none() {
            self.sign_in(key)?;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .agent
                .get(&url)
                .config()
                .timeout_global(None)
                .timeout_recv_body(Some(REQUEST_TIMEOUT))
                .build()
                .header("Authorization", self.bearer().as_str())
                .call()
                .map_err(transport_error)?;
            if response.status().as_u16() == 401 && attempt == 1 {
                self.sign_in(key)?;
                continue;
            }
            if !response.status().is_success() {
                return Err(refusal(response));
            }
            let mut reader = response.into_body().into_reader();
            let mut buffer = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let read = reader
                    .read(&mut buffer)
                    .map_err(|_| RelayError::Unreachable)?;
                if read == 0 {
                    return Ok(total);
                }
                out.write_all(&buffer[..read])?;
                total += read as u64;
            }
        }
    }

    /// Opens the push socket: the relay sends `sync` on it whenever this device has something new.
    pub fn push_socket(&mut self, key: &DeviceKey) -> Result<PushSocket, RelayError> {
        if self.token.is_none() {
            self.sign_in(key)?;
        }
        let ws_url = if let Some(rest) = self.base.strip_prefix("http://") {
            format!("ws://{rest}/v1/push")
        } else {
            // The push socket rides the same TLS as the API once the client speaks it; until
            // then a TLS relay is synced by polling.
            return Err(RelayError::Unreachable);
        };
        let mut request = tungstenite::client::IntoClientRequest::into_client_request(ws_url)
            .map_err(|_| RelayError::Protocol)?;
        let bearer = self.bearer();
        request.headers_mut().insert(
            "Authorization",
            bearer.as_str().parse().map_err(|_| RelayError::Protocol)?,
        );
        let host = request
            .uri()
            .authority()
            .map(|authority| authority.as_str().to_owned())
            .ok_or(RelayError::Protocol)?;
        let stream = TcpStream::connect(host).map_err(|_| RelayError::Unreachable)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        let (socket, _) =
            tungstenite::client::client(request, stream).map_err(|error| match error {
                tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))
                    if response.status().as_u16() == 401 =>
                {
                    RelayError::Refused {
                        code: "unauthorized".to_owned(),
                        message: "Sign in again.".to_owned(),
                    }
                }
                _ => RelayError::Unreachable,
            })?;
        Ok(PushSocket { socket })
    }
}

/// The relay's push socket: it says when to sync, never what arrived.
pub struct PushSocket {
    socket: tungstenite::WebSocket<TcpStream>,
}

impl PushSocket {
    /// Waits up to `timeout` for a `sync` push. `Ok(true)` on a push, `Ok(false)` when the time
    /// ran out, and an error when the socket closed.
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, RelayError> {
        self.socket
            .get_mut()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        loop {
            match self.socket.read() {
                Ok(tungstenite::Message::Text(text)) if text.as_str() == "sync" => return Ok(true),
                Ok(tungstenite::Message::Close(_)) => return Err(RelayError::Unreachable),
                Ok(_) => {}
                Err(tungstenite::Error::Io(error))
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(false)
                }
                Err(_) => return Err(RelayError::Unreachable),
            }
        }
    }
}

/// A reader that reports how far it has got, for the app's upload progress bar.
struct CountingReader<'a, R> {
    inner: R,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64),
}

impl<R: std::io::Read> std::io::Read for CountingReader<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.done += read as u64;
        (self.progress)(self.done, self.total);
        Ok(read)
    }
}
