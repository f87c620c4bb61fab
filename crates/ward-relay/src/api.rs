//! The relay's HTTP API: `fn app(state) -> Router`, tested with `oneshot` and served by `serve`.
//!
//! Requests and answers are JSON with hex for bytes. Everything but enrollment, the auth
//! handshake, `/healthz` and `/metrics` needs a session token. A device gets one by signing a
//! fresh server challenge with its device key. Errors answer `{code, message}` with fixed text and
//! never with internal detail. The relay keeps no request log; `/metrics` counts what happened.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ring::rand::SecureRandom;
use ward_core::identity::DeviceCredential;
use ward_proto::relay_api::{
    AckRequest, BlobStored, ChallengeRequest, ChallengeResponse, ClaimRequest, ClaimResponse,
    CommitRequest, DirectoryUser, EnrollRequest, EnrollResponse, ErrorBody, Inbox, InboxEntry,
    InboxWelcome, KeyPackagesRequest, MessageRequest, Sequenced, SessionRequest, SessionResponse,
    AUTH_LABEL,
};
use ward_proto::{DeviceId, GroupId};

use crate::blobs::{BlobError, BlobStore, Stored};
use crate::request::{
    commit_upload, enroll_credential, key_package_batch, message_upload, session_parts, unhex,
};
use crate::store::{Appended, EnrollError, Enrollment, EntryKind, RelayStore, StoreError};

/// What every handler shares.
pub struct AppState {
    store: Arc<dyn RelayStore>,
    blobs: BlobStore,
    rng: ring::rand::SystemRandom,
    /// Challenges handed out and not yet answered, by challenge, with the device and expiry.
    challenges: Mutex<HashMap<[u8; 32], (DeviceId, Instant)>>,
    /// Live sessions, by SHA-256 of the token, with the device and expiry.
    sessions: Mutex<HashMap<[u8; 32], (DeviceId, Instant)>>,
    limits: Limits,
    /// Request counters for `/metrics`.
    counters: Counters,
    /// Which group just got a new entry, for the WebSocket pushes.
    appended: tokio::sync::broadcast::Sender<GroupId>,
    /// Open WebSocket connections.
    live_connections: AtomicU64,
    /// Each device's token bucket: tokens left and when it was last filled.
    buckets: Mutex<HashMap<DeviceId, (f64, Instant)>>,
}

/// The knobs hospital IT may turn; see `relay.toml`.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest JSON request body.
    pub max_request_bytes: usize,
    /// How long a session token lasts.
    pub session_lifetime: Duration,
    /// How long a challenge may wait for its answer.
    pub challenge_lifetime: Duration,
    /// Most entries one inbox read returns.
    pub max_read: usize,
    /// Largest attachment blob.
    pub max_blob_bytes: u64,
    /// Requests a device may make per second, on average.
    pub requests_per_second: u32,
    /// Requests a device may make in one burst.
    pub request_burst: u32,
    /// Requests in flight at once, over all connections; more wait.
    pub max_in_flight: usize,
    /// How long one JSON request may take before the relay gives up on it.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Commits with large Welcomes (X-Wing keys for many members) run to a few MiB.
            max_request_bytes: 16 * 1024 * 1024,
            session_lifetime: Duration::from_secs(12 * 3600),
            challenge_lifetime: Duration::from_secs(60),
            max_read: 1000,
            max_blob_bytes: 2 * 1024 * 1024 * 1024,
            requests_per_second: 200,
            request_burst: 1000,
            max_in_flight: 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Default)]
struct Counters {
    enrollments: AtomicU64,
    sessions: AtomicU64,
    commits: AtomicU64,
    commits_refused: AtomicU64,
    messages: AtomicU64,
    errors: AtomicU64,
    rate_limited: AtomicU64,
}

impl AppState {
    /// State over `store`, with blobs under `blob_dir`.
    pub fn new(
        store: Arc<dyn RelayStore>,
        blob_dir: &std::path::Path,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            blobs: BlobStore::new(blob_dir, limits.max_blob_bytes),
            rng: ring::rand::SystemRandom::new(),
            challenges: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            limits,
            counters: Counters::default(),
            appended: tokio::sync::broadcast::channel(1024).0,
            live_connections: AtomicU64::new(0),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one request from `device`'s bucket; false when it is empty.
    fn admit(&self, device: DeviceId) -> Result<bool, ApiError> {
        let mut buckets = self.buckets.lock().map_err(|_| ApiError::Internal)?;
        let now = Instant::now();
        let burst = f64::from(self.limits.request_burst);
        let (tokens, filled) = buckets.entry(device).or_insert((burst, now));
        let refill =
            now.duration_since(*filled).as_secs_f64() * f64::from(self.limits.requests_per_second);
        *tokens = (*tokens + refill).min(burst);
        *filled = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn random<const N: usize>(&self) -> Result<[u8; N], ApiError> {
        let mut bytes = [0u8; N];
        self.rng.fill(&mut bytes).map_err(|_| ApiError::Internal)?;
        Ok(bytes)
    }
}

/// The relay's routes.
pub fn app(state: Arc<AppState>) -> Router {
    let limit = state.limits.max_request_bytes;
    let timeout = state.limits.request_timeout;
    let in_flight = state.limits.max_in_flight;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/enroll", post(enroll))
        .route("/v1/auth/challenge", post(challenge))
        .route("/v1/auth/session", post(session))
        .route("/v1/directory", get(directory))
        .route("/v1/key-packages", post(upload_key_packages))
        .route("/v1/key-packages/claim", post(claim_key_package))
        .route("/v1/commit", post(commit))
        .route("/v1/message", post(message))
        .route("/v1/inbox", get(inbox))
        .route("/v1/ack", post(ack))
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        // Pushes and blobs last as long as they need; they are outside the request timeout.
        .route("/v1/push", get(push))
        // Blobs stream to disk under their own limit, checked as the bytes arrive.
        .route(
            "/v1/blobs/{id}",
            put(put_blob)
                .get(get_blob)
                .layer(DefaultBodyLimit::disable()),
        )
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(in_flight))
        .with_state(state)
}

/// An error as clients see it: a stable code and a fixed sentence, never internal text.
#[derive(Debug)]
pub enum ApiError {
    /// The request body is not what the endpoint takes.
    BadRequest,
    /// No valid session, or a bad signature.
    Unauthorized,
    /// The device is revoked or its user disabled.
    Forbidden,
    /// The invite code is unknown.
    UnknownInvite,
    /// The invite was used, revoked or expired.
    InviteSpent,
    /// The device id or user id is taken.
    Conflict,
    /// Not a member of that group.
    NotAMember,
    /// The device sends faster than its limit.
    RateLimited,
    /// The blob is over the relay's size limit.
    BlobTooLarge,
    /// No blob has that id.
    BlobNotFound,
    /// Another commit won the epoch.
    EpochMoved {
        /// The group's epoch now.
        current_epoch: u64,
    },
    /// Something failed inside the relay; details are in its log, not here.
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, current_epoch) = match self {
            Self::BadRequest => (
                StatusCode::BAD_REQUEST,
                "bad_request",
                "The request is malformed.",
                None,
            ),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Sign in again.",
                None,
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "This device or account has been disabled by IT.",
                None,
            ),
            Self::UnknownInvite => (
                StatusCode::NOT_FOUND,
                "unknown_invite",
                "The invite code is not valid.",
                None,
            ),
            Self::InviteSpent => (
                StatusCode::GONE,
                "invite_spent",
                "The invite was already used, revoked, or has expired.",
                None,
            ),
            Self::Conflict => (
                StatusCode::CONFLICT,
                "conflict",
                "That device is already enrolled.",
                None,
            ),
            Self::NotAMember => (
                StatusCode::FORBIDDEN,
                "not_a_member",
                "This device is not a member of that conversation.",
                None,
            ),
            Self::EpochMoved { current_epoch } => (
                StatusCode::CONFLICT,
                "epoch_moved",
                "The conversation changed; sync and try again.",
                Some(current_epoch),
            ),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests; Ward will retry shortly.",
                None,
            ),
            Self::BlobTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "blob_too_large",
                "The file is larger than your organization allows.",
                None,
            ),
            Self::BlobNotFound => (
                StatusCode::NOT_FOUND,
                "blob_not_found",
                "The file is no longer on the relay.",
                None,
            ),
            Self::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The relay had a problem; try again.",
                None,
            ),
        };
        (
            status,
            Json(ErrorBody {
                code: code.to_owned(),
                message: message.to_owned(),
                current_epoch,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotAMember => Self::NotAMember,
            StoreError::NotAllowed => Self::Forbidden,
            StoreError::Database(reason) => {
                // For IT, on the relay's stderr: SQLite's own words, which hold no bound values.
                eprintln!("ward-relay: store error: {reason}");
                Self::Internal
            }
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// Runs a store call off the async runtime: SQLite blocks while it syncs to disk.
async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    work: impl FnOnce(&dyn RelayStore) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = Arc::clone(&state.store);
    let result = tokio::task::spawn_blocking(move || work(&*store))
        .await
        .map_err(|_| ApiError::Internal)?;
    if let Err(error) = &result {
        count_internal(state, error);
    }
    result
}

/// Counts an internal failure for `/metrics`; the details are on stderr already.
fn count_internal(state: &AppState, error: &ApiError) {
    if let ApiError::Internal = error {
        state.counters.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// The device behind the request's bearer token, if the session is live and the device may still
/// connect.
async fn authenticated(state: &Arc<AppState>, headers: &HeaderMap) -> Result<DeviceId, ApiError> {
    let device = session_device(state, headers)?;
    blocking(state, move |store| still_allowed(store, &device)).await?;
    Ok(device)
}

/// The device behind the request's bearer token, if the session is live and within its rate.
/// Callers must also check [`still_allowed`], in the same store call as their work when they can.
fn session_device(state: &Arc<AppState>, headers: &HeaderMap) -> Result<DeviceId, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    let token: [u8; 32] = unhex(token).map_err(|_| ApiError::Unauthorized)?;
    let key = token_key(&token);
    let device = {
        let mut sessions = state.sessions.lock().map_err(|_| ApiError::Internal)?;
        match sessions.get(&key) {
            Some((device, expires)) if *expires > Instant::now() => *device,
            Some(_) => {
                sessions.remove(&key);
                return Err(ApiError::Unauthorized);
            }
            None => return Err(ApiError::Unauthorized),
        }
    };
    if !state.admit(device)? {
        state.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::RateLimited);
    }
    Ok(device)
}

/// Revocation takes effect on the next request, not at the next sign-in.
fn still_allowed(store: &dyn RelayStore, device: &DeviceId) -> Result<(), ApiError> {
    if store.device(device)?.is_some_and(|(_, allowed)| allowed) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Sessions are looked up by the token's hash, so a memory dump shows no usable token.
fn token_key(token: &[u8; 32]) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token).as_ref());
    key
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<Arc<AppState>>) -> Result<String, ApiError> {
    let counts = blocking(&state, |store| Ok(store.counts()?)).await?;
    let c = &state.counters;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let lines = [
        ("ward_relay_users", "gauge", counts.users),
        ("ward_relay_devices", "gauge", counts.devices),
        ("ward_relay_groups", "gauge", counts.groups),
        ("ward_relay_log_entries", "gauge", counts.log_entries),
        ("ward_relay_key_packages", "gauge", counts.key_packages),
        ("ward_relay_open_invites", "gauge", counts.open_invites),
        (
            "ward_relay_enrollments_total",
            "counter",
            load(&c.enrollments),
        ),
        ("ward_relay_sessions_total", "counter", load(&c.sessions)),
        ("ward_relay_commits_total", "counter", load(&c.commits)),
        (
            "ward_relay_commits_refused_total",
            "counter",
            load(&c.commits_refused),
        ),
        ("ward_relay_messages_total", "counter", load(&c.messages)),
        (
            "ward_relay_internal_errors_total",
            "counter",
            load(&c.errors),
        ),
    ];
    Ok(lines
        .iter()
        .map(|(name, kind, value)| format!("# TYPE {name} {kind}\n{name} {value}\n"))
        .collect())
}

async fn enroll(
    State(state): State<Arc<AppState>>,
    Json(request): Json<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let (credential, credential_bytes) = enroll_credential(&request)?;
    let mut code_hash = [0u8; 32];
    code_hash.copy_from_slice(
        ring::digest::digest(&ring::digest::SHA256, request.invite.trim().as_bytes()).as_ref(),
    );
    let enrollment = Enrollment {
        code_hash,
        user: credential.user,
        account_key: credential.account_key,
        device: credential.device,
        credential: credential_bytes,
    };
    let user = blocking(&state, move |store| {
        if store.device(&enrollment.device)?.is_some() {
            return Err(ApiError::Conflict);
        }
        store
            .enroll(&enrollment, now())
            .map_err(|error| match error {
                EnrollError::UnknownInvite => ApiError::UnknownInvite,
                EnrollError::InviteSpent => ApiError::InviteSpent,
                EnrollError::Store(other) => other.into(),
            })
    })
    .await?;
    state.counters.enrollments.fetch_add(1, Ordering::Relaxed);
    Ok(Json(EnrollResponse {
        name: user.name,
        role: user.role,
    }))
}

/// Challenges that may wait for an answer at once.
const MAX_OPEN_CHALLENGES: usize = 100_000;

async fn challenge(
    State(state): State<Arc<AppState>>,
    Json(request): Json<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>, ApiError> {
    let device = DeviceId(unhex(&request.device)?);
    let challenge: [u8; 32] = state.random()?;
    let expires = Instant::now() + state.limits.challenge_lifetime;
    {
        let mut challenges = state.challenges.lock().map_err(|_| ApiError::Internal)?;
        let now = Instant::now();
        challenges.retain(|_, (_, expiry)| *expiry > now);
        // Anyone may ask for a challenge, so their number is capped, not their askers.
        if challenges.len() >= MAX_OPEN_CHALLENGES {
            return Err(ApiError::RateLimited);
        }
        challenges.insert(challenge, (device, expires));
    }
    Ok(Json(ChallengeResponse {
        challenge: hex::encode(challenge),
    }))
}

async fn session(
    State(state): State<Arc<AppState>>,
    Json(request): Json<SessionRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let (device, challenge, signature) = session_parts(&request)?;
    // A challenge answers once, whatever the outcome.
    let issued = state
        .challenges
        .lock()
        .map_err(|_| ApiError::Internal)?
        .remove(&challenge);
    match issued {
        Some((for_device, expiry)) if for_device == device && expiry > Instant::now() => {}
        _ => return Err(ApiError::Unauthorized),
    }
    let record = blocking(&state, move |store| Ok(store.device(&device)?)).await?;
    let Some((record, allowed)) = record else {
        return Err(ApiError::Unauthorized);
    };
    if !allowed {
        return Err(ApiError::Forbidden);
    }
    let credential =
        DeviceCredential::decode_verified(&record.credential).map_err(|_| ApiError::Internal)?;
    let mut signed = AUTH_LABEL.to_vec();
    signed.extend_from_slice(&challenge);
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, credential.device_key)
        .verify(&signed, &signature)
        .map_err(|_| ApiError::Unauthorized)?;
    let token: [u8; 32] = state.random()?;
    let lifetime = state.limits.session_lifetime;
    {
        let mut sessions = state.sessions.lock().map_err(|_| ApiError::Internal)?;
        let now = Instant::now();
        sessions.retain(|_, (_, expiry)| *expiry > now);
        sessions.insert(token_key(&token), (device, now + lifetime));
    }
    state.counters.sessions.fetch_add(1, Ordering::Relaxed);
    Ok(Json(SessionResponse {
        token: hex::encode(token),
        expires_in: lifetime.as_secs(),
    }))
}

async fn directory(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Vec<DirectoryUser>>, ApiError> {
    authenticated(&state, &headers).await?;
    let users = blocking(&state, |store| Ok(store.users()?)).await?;
    Ok(Json(
        users
            .into_iter()
            .filter(|user| !user.disabled)
            .map(|user| DirectoryUser {
                user: hex::encode(user.user.as_bytes()),
                name: user.name,
                role: user.role,
                account_key: hex::encode(user.account_key),
                devices: user
                    .devices
                    .into_iter()
                    .filter(|device| !device.revoked)
                    .map(|device| hex::encode(device.credential))
                    .collect(),
            })
            .collect(),
    ))
}

async fn upload_key_packages(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(request): Json<KeyPackagesRequest>,
) -> Result<StatusCode, ApiError> {
    let device = authenticated(&state, &headers).await?;
    let (key_packages, last_resort) = key_package_batch(&request)?;
    blocking(&state, move |store| {
        Ok(store.upload_key_packages(&device, &key_packages, last_resort.as_deref())?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn claim_key_package(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(request): Json<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    authenticated(&state, &headers).await?;
    let device = DeviceId(unhex(&request.device)?);
    let key_package = blocking(&state, move |store| Ok(store.claim_key_package(&device)?)).await?;
    Ok(Json(ClaimResponse {
        key_package: key_package.map(hex::encode),
    }))
}

async fn commit(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(request): Json<CommitRequest>,
) -> Result<Json<Sequenced>, ApiError> {
    let sender = authenticated(&state, &headers).await?;
    let upload = commit_upload(request, sender, now())?;
    let group = upload.group;
    let appended = blocking(&state, move |store| Ok(store.append_commit(&upload)?)).await?;
    match appended {
        Appended::Accepted { sequence } | Appended::AlreadyStored { sequence } => {
            state.counters.commits.fetch_add(1, Ordering::Relaxed);
            let _ = state.appended.send(group);
            Ok(Json(Sequenced { sequence }))
        }
        Appended::EpochMoved { current_epoch } => {
            state
                .counters
                .commits_refused
                .fetch_add(1, Ordering::Relaxed);
            Err(ApiError::EpochMoved { current_epoch })
        }
    }
}

async fn message(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(request): Json<MessageRequest>,
) -> Result<Json<Sequenced>, ApiError> {
    let sender = session_device(&state, &headers)?;
    let upload = message_upload(request, sender, now())?;
    let group = upload.group;
    // The hot path: straight to the store's group-commit writer, which also checks that the
    // device is still allowed, with no blocking thread in between.
    let (answer, answered) = tokio::sync::oneshot::channel();
    state.store.submit_message(
        upload,
        Box::new(move |outcome| {
            let _ = answer.send(outcome);
        }),
    );
    let appended = match answered.await.map_err(|_| ApiError::Internal)? {
        Ok(appended) => appended,
        Err(error) => {
            let error = ApiError::from(error);
            count_internal(&state, &error);
            return Err(error);
        }
    };
    match appended {
        Appended::Accepted { sequence } | Appended::AlreadyStored { sequence } => {
            state.counters.messages.fetch_add(1, Ordering::Relaxed);
            let _ = state.appended.send(group);
            Ok(Json(Sequenced { sequence }))
        }
        Appended::EpochMoved { .. } => Err(ApiError::Internal),
    }
}

async fn inbox(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Inbox>, ApiError> {
    let device = authenticated(&state, &headers).await?;
    let limit = state.limits.max_read;
    let (welcomes, entries, generation) = blocking(&state, move |store| {
        Ok((
            store.welcomes(&device)?,
            store.read(&device, limit)?,
            store.generation()?,
        ))
    })
    .await?;
    Ok(Json(Inbox {
        generation: hex::encode(generation),
        welcomes: welcomes
            .into_iter()
            .map(|welcome| InboxWelcome {
                group: hex::encode(welcome.group.as_bytes()),
                after_sequence: welcome.after_sequence,
                welcome: hex::encode(welcome.welcome),
            })
            .collect(),
        entries: entries
            .into_iter()
            .map(|entry| InboxEntry {
                group: hex::encode(entry.group.as_bytes()),
                sequence: entry.sequence,
                epoch: entry.epoch,
                commit: entry.kind == EntryKind::Commit,
                sender: hex::encode(entry.sender.as_bytes()),
                message: hex::encode(entry.message),
            })
            .collect(),
    }))
}

async fn ack(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Json(request): Json<AckRequest>,
) -> Result<StatusCode, ApiError> {
    let device = authenticated(&state, &headers).await?;
    let group = GroupId(unhex(&request.group)?);
    blocking(&state, move |store| {
        Ok(store.ack(&device, &group, request.sequence)?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

impl From<BlobError> for ApiError {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::TooLarge => Self::BlobTooLarge,
            BlobError::NotFound => Self::BlobNotFound,
            BlobError::Incomplete => Self::BadRequest,
            BlobError::Io(error) => {
                eprintln!("ward-relay: blob storage error: {error}");
                Self::Internal
            }
        }
    }
}

async fn put_blob(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<BlobStored>), ApiError> {
    authenticated(&state, &headers).await?;
    let id = ward_proto::BlobId(unhex(&id)?);
    match state.blobs.put(&id, body.into_data_stream()).await? {
        Stored::New(size) => Ok((StatusCode::CREATED, Json(BlobStored { size: Some(size) }))),
        Stored::AlreadyPresent => Ok((StatusCode::OK, Json(BlobStored { size: None }))),
    }
}

async fn get_blob(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    authenticated(&state, &headers).await?;
    let id = ward_proto::BlobId(unhex(&id)?);
    let (body, len) = state.blobs.get(&id).await?;
    Ok((
        [
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/push`: a WebSocket on which the relay sends the text `sync` whenever a group the
/// device reads has a new entry, and once on connecting. The device then reads its inbox; the
/// push itself carries nothing.
async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let device = authenticated(&state, &headers).await?;
    Ok(upgrade.on_upgrade(move |socket| push_loop(state, device, socket)))
}

async fn push_loop(
    state: Arc<AppState>,
    device: DeviceId,
    mut socket: axum::extract::ws::WebSocket,
) {
    use axum::extract::ws::Message;
    use tokio::sync::broadcast::error::RecvError;
    state.live_connections.fetch_add(1, Ordering::Relaxed);
    let mut appended = state.appended.subscribe();
    // Whatever arrived while the device was away.
    let mut wanted = socket.send(Message::Text("sync".into())).await.is_ok();
    while wanted {
        tokio::select! {
            notice = appended.recv() => {
                let relevant = match notice {
                    Ok(group) => blocking(&state, move |store| Ok(store.reads_group(&device, &group)?))
                        .await
                        .unwrap_or(true),
                    // Missed notices: tell the device to look, rather than guess.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => false,
                };
                if relevant {
                    wanted = socket.send(Message::Text("sync".into())).await.is_ok();
                }
            }
            incoming = socket.recv() => {
                wanted = matches!(incoming, Some(Ok(message)) if !matches!(message, Message::Close(_)));
            }
        }
    }
    state.live_connections.fetch_sub(1, Ordering::Relaxed);
}
