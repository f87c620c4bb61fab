//! The relay's HTTP API through `oneshot`, on the SQLite store over a real file: enrollment by
//! one-time invite, sign-in by challenge, the directory, key packages, ordered commits with the
//! typed "epoch moved" answer, the inbox and acks, revocation, limits and metrics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use openmls_traits::signatures::Signer;
use serde_json::{json, Value};
use tower::ServiceExt;
use ward_core::identity::{AccountKey, DeviceKey};
use ward_proto::relay_api::AUTH_LABEL;
use ward_proto::{DeviceId, UserId};
use ward_relay::api::{app, AppState, Limits};
use ward_relay::sqlite_store::SqliteStore;
use ward_relay::store::{NewInvite, RelayStore};

struct Relay {
    router: Router,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

fn relay() -> Relay {
    relay_with(Limits {
        max_request_bytes: 64 * 1024,
        max_blob_bytes: 1024 * 1024,
        ..Limits::default()
    })
}

fn relay_with(limits: Limits) -> Relay {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    Relay {
        router: app(AppState::new(
            store.clone(),
            &dir.path().join("blobs"),
            limits,
        )),
        store,
        _dir: dir,
    }
}

fn invite(relay: &Relay, code: &str, name: &str) {
    let mut code_hash = [0u8; 32];
    code_hash
        .copy_from_slice(ring::digest::digest(&ring::digest::SHA256, code.as_bytes()).as_ref());
    relay
        .store
        .create_invite(&NewInvite {
            id: format!("id-{code}"),
            code_hash,
            name: name.to_owned(),
            role: "physician".to_owned(),
            expires_at: u64::MAX / 2,
        })
        .unwrap();
}

async fn call(
    relay: &Relay,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = if method == "GET" {
        request.body(Body::empty()).unwrap()
    } else {
        request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let response = relay.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

struct Clinician {
    device: DeviceId,
    key: DeviceKey,
    credential: Vec<u8>,
}

fn clinician(tag: u8) -> Clinician {
    let (account, _) = AccountKey::generate().unwrap();
    let key = DeviceKey::generate().unwrap();
    let credential = account
        .issue(UserId([tag; 16]), DeviceId([tag; 16]), &key)
        .encode();
    Clinician {
        device: DeviceId([tag; 16]),
        key,
        credential,
    }
}

async fn sign_in(relay: &Relay, who: &Clinician) -> String {
    let device = hex::encode(who.device.as_bytes());
    let (status, body) = call(
        relay,
        "POST",
        "/v1/auth/challenge",
        None,
        json!({ "device": device }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let challenge = hex::decode(body["challenge"].as_str().unwrap()).unwrap();
    let signature = who.key.sign(&[AUTH_LABEL, &challenge].concat()).unwrap();
    let (status, body) = call(
        relay,
        "POST",
        "/v1/auth/session",
        None,
        json!({ "device": device, "challenge": hex::encode(&challenge), "signature": hex::encode(signature) }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn enrolled(relay: &Relay, tag: u8, name: &str) -> (Clinician, String) {
    let who = clinician(tag);
    let code = format!("CODE-{tag}");
    invite(relay, &code, name);
    let (status, body) = enroll_with(relay, json!(code), json!(hex::encode(&who.credential))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], name);
    let token = sign_in(relay, &who).await;
    (who, token)
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    // Fixed sentences only: nothing from inside the relay.
    let message = body["message"].as_str().unwrap();
    assert!(
        !message.contains("database") && !message.contains("sqlite"),
        "{message}"
    );
}

async fn enroll_with(relay: &Relay, invite: Value, credential: Value) -> (StatusCode, Value) {
    call(
        relay,
        "POST",
        "/v1/enroll",
        None,
        json!({ "invite": invite, "credential": credential }),
    )
    .await
}

#[tokio::test]
async fn enrollment_takes_a_one_time_invite_and_a_signed_credential() {
    let relay = relay();
    let (alice, _) = enrolled(&relay, 1, "Dr. Alice Moreau").await;

    // The same invite again, an unknown one, a forged credential, the same device again.
    let other = clinician(2);
    let (status, body) = enroll_with(
        &relay,
        json!("CODE-1"),
        json!(hex::encode(&other.credential)),
    )
    .await;
    assert_error(status, &body, StatusCode::GONE, "invite_spent");
    let (status, body) =
        enroll_with(&relay, json!("NOPE"), json!(hex::encode(&other.credential))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "unknown_invite");
    let mut forged = other.credential.clone();
    forged[40] ^= 1;
    invite(&relay, "CODE-X", "X");
    let (status, body) = enroll_with(&relay, json!("CODE-X"), json!(hex::encode(&forged))).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = enroll_with(
        &relay,
        json!("CODE-X"),
        json!(hex::encode(&alice.credential)),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    // Unknown fields are refused rather than ignored.
    let (status, _) = call(
        &relay,
        "POST",
        "/v1/enroll",
        None,
        json!({ "invite": "CODE-X", "credential": "00", "extra": 1 }),
    )
    .await;
    assert!(status.is_client_error());
}

#[tokio::test]
async fn sign_in_needs_the_device_key_and_a_fresh_challenge() {
    let relay = relay();
    let (alice, token) = enrolled(&relay, 1, "Alice").await;
    let (status, body) = call(&relay, "GET", "/v1/directory", Some(&token), json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0]["name"], "Alice");
    assert_eq!(body[0]["devices"][0], hex::encode(&alice.credential));

    let (status, body) = call(&relay, "GET", "/v1/directory", None, json!(null)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, _) = call(
        &relay,
        "GET",
        "/v1/directory",
        Some(&"00".repeat(32)),
        json!(null),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Someone else's key, and a challenge answered twice.
    let device = hex::encode(alice.device.as_bytes());
    let (_, body) = call(
        &relay,
        "POST",
        "/v1/auth/challenge",
        None,
        json!({ "device": device }),
    )
    .await;
    let challenge = hex::decode(body["challenge"].as_str().unwrap()).unwrap();
    let mallory = DeviceKey::generate().unwrap();
    let bad = mallory.sign(&[AUTH_LABEL, &challenge].concat()).unwrap();
    let (status, _) = call(&relay, "POST", "/v1/auth/session", None, json!({ "device": device, "challenge": hex::encode(&challenge), "signature": hex::encode(&bad) })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let good = alice.key.sign(&[AUTH_LABEL, &challenge].concat()).unwrap();
    let (status, _) = call(&relay, "POST", "/v1/auth/session", None, json!({ "device": device, "challenge": hex::encode(&challenge), "signature": hex::encode(&good) })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a challenge answers once");

    // IT disables the account: the next request is refused, and so is a new sign-in.
    relay.store.disable_user(&UserId([1; 16])).unwrap();
    let (status, body) = call(&relay, "GET", "/v1/directory", Some(&token), json!(null)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn key_packages_commits_messages_inbox_and_acks() {
    let relay = relay();
    let (alice, alice_token) = enrolled(&relay, 1, "Alice").await;
    let (bob, bob_token) = enrolled(&relay, 2, "Bob").await;
    let bob_hex = hex::encode(bob.device.as_bytes());

    let (status, _) = call(
        &relay,
        "POST",
        "/v1/key-packages",
        Some(&bob_token),
        json!({ "key_packages": ["aa01", "aa02"], "last_resort": "ff" }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut claimed = Vec::new();
    for _ in 0..3 {
        let (status, body) = call(
            &relay,
            "POST",
            "/v1/key-packages/claim",
            Some(&alice_token),
            json!({ "device": bob_hex }),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        claimed.push(body["key_package"].as_str().unwrap().to_owned());
    }
    assert_eq!(claimed, ["aa01", "aa02", "ff"]);

    let group = "07".repeat(16);
    let (status, body) = call(
        &relay,
        "POST",
        "/v1/commit",
        Some(&alice_token),
        json!({
            "group": group, "epoch": 0, "send_id": "01".repeat(16), "message": "c0",
            "added": [bob_hex], "welcome": "57"
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sequence"], 1);

    // Bob's commit on the old epoch loses, with the epoch to catch up to.
    let (status, body) = call(
        &relay,
        "POST",
        "/v1/commit",
        Some(&bob_token),
        json!({
            "group": group, "epoch": 0, "send_id": "02".repeat(16), "message": "c1"
        }),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "epoch_moved");
    assert_eq!(body["current_epoch"], 1);

    for n in 0..3u8 {
        let (status, body) = call(&relay, "POST", "/v1/message", Some(&alice_token), json!({
            "group": group, "epoch": 1, "send_id": format!("{:02x}", 0x10 + n).repeat(16), "message": format!("a{n}")
        })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // A retry after a lost answer is stored once.
    let (_, body) = call(
        &relay,
        "POST",
        "/v1/message",
        Some(&alice_token),
        json!({
            "group": group, "epoch": 1, "send_id": "10".repeat(16), "message": "a0"
        }),
    )
    .await;
    assert_eq!(body["sequence"], 2);

    let (status, inbox) = call(&relay, "GET", "/v1/inbox", Some(&bob_token), json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(inbox["welcomes"][0]["welcome"], "57");
    let sequences: Vec<u64> = inbox["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [2, 3, 4]);
    assert_eq!(
        inbox["entries"][0]["sender"],
        hex::encode(alice.device.as_bytes())
    );

    let (status, _) = call(
        &relay,
        "POST",
        "/v1/ack",
        Some(&bob_token),
        json!({ "group": group, "sequence": 4 }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, inbox) = call(&relay, "GET", "/v1/inbox", Some(&bob_token), json!(null)).await;
    assert!(inbox["entries"].as_array().unwrap().is_empty());
    assert!(inbox["welcomes"].as_array().unwrap().is_empty());

    // Not a member: no sending into someone else's group.
    let (_carol, carol_token) = enrolled(&relay, 3, "Carol").await;
    let (status, body) = call(
        &relay,
        "POST",
        "/v1/message",
        Some(&carol_token),
        json!({
            "group": group, "epoch": 1, "send_id": "30".repeat(16), "message": "0a"
        }),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "not_a_member");
}

#[tokio::test]
async fn limits_health_and_metrics() {
    let relay = relay();
    let (_, token) = enrolled(&relay, 1, "Alice").await;
    let big = "00".repeat(64 * 1024);
    let (status, _) = call(
        &relay,
        "POST",
        "/v1/message",
        Some(&token),
        json!({
            "group": "07".repeat(16), "epoch": 1, "send_id": "01".repeat(16), "message": big
        }),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let (status, body) = call(
        &relay,
        "POST",
        "/v1/message",
        Some(&token),
        json!({ "group": "zz" }),
    )
    .await;
    assert!(status.is_client_error(), "{body}");

    let (status, body) = call(&relay, "GET", "/healthz", None, json!(null)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, Value::String("ok\n".to_owned()))
    );
    let (status, body) = call(&relay, "GET", "/metrics", None, json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(text.contains("ward_relay_users 1\n"), "{text}");
    assert!(text.contains("ward_relay_sessions_total 1\n"), "{text}");
    // Counts only: no names, no ids.
    assert!(
        !text.contains("Alice") && !text.contains(&"01".repeat(16)),
        "{text}"
    );
}

async fn raw(
    relay: &Relay,
    method: &str,
    uri: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body))
        .unwrap();
    let response = relay.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

#[tokio::test]
async fn blobs_stream_in_and_out_whole_or_not_at_all() {
    let relay = relay();
    let (_, token) = enrolled(&relay, 1, "Alice").await;
    let id = "ab".repeat(32);
    // Larger than the JSON limit: blobs have their own.
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, body) = raw(
        &relay,
        "PUT",
        &format!("/v1/blobs/{id}"),
        &token,
        blob.clone(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = raw(
        &relay,
        "PUT",
        &format!("/v1/blobs/{id}"),
        &token,
        vec![1, 2, 3],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a second upload of an id changes nothing"
    );
    let _ = body;
    let (status, fetched) = raw(
        &relay,
        "GET",
        &format!("/v1/blobs/{id}"),
        &token,
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, blob);

    let too_big = vec![0u8; 1024 * 1024 + 1];
    let other = "cd".repeat(32);
    let (status, body) = raw(
        &relay,
        "PUT",
        &format!("/v1/blobs/{other}"),
        &token,
        too_big,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(String::from_utf8_lossy(&body).contains("blob_too_large"));
    let (status, _) = raw(
        &relay,
        "GET",
        &format!("/v1/blobs/{other}"),
        &token,
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let leftovers: Vec<_> = std::fs::read_dir(relay._dir.path().join("blobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no partial file stays behind: {leftovers:?}"
    );
    let (status, _) = raw(
        &relay,
        "GET",
        &format!("/v1/blobs/{id}"),
        &"00".repeat(32),
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn members_get_a_push_for_their_groups_and_only_theirs() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let relay = relay();
    let (_, alice_token) = enrolled(&relay, 1, "Alice").await;
    let (bob, bob_token) = enrolled(&relay, 2, "Bob").await;
    let (_, carol_token) = enrolled(&relay, 3, "Carol").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = relay.router.clone();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let connect = |token: String| async move {
        let mut request = format!("ws://{address}/v1/push")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    let mut bob_push = connect(bob_token.clone()).await;
    let mut carol_push = connect(carol_token.clone()).await;
    for socket in [&mut bob_push, &mut carol_push] {
        let first = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first, Message::Text("sync".into()), "a push on connecting");
    }

    let group = "09".repeat(16);
    let (status, _) = call(
        &relay,
        "POST",
        "/v1/commit",
        Some(&alice_token),
        json!({
            "group": group, "epoch": 0, "send_id": "01".repeat(16), "message": "c0",
            "added": [hex::encode(bob.device.as_bytes())], "welcome": "57"
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(10), bob_push.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pushed, Message::Text("sync".into()));
    // Carol is in no group with a new entry: nothing for her.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), carol_push.next())
            .await
            .is_err()
    );

    let mut request = format!("ws://{address}/v1/push")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer 00".parse().unwrap());
    assert!(
        tokio_tungstenite::connect_async(request).await.is_err(),
        "no token, no push"
    );
}

#[tokio::test]
async fn a_device_that_floods_the_relay_is_slowed_with_a_typed_answer() {
    let relay = relay_with(Limits {
        requests_per_second: 1,
        request_burst: 3,
        ..Limits::default()
    });
    let (_, token) = enrolled(&relay, 1, "Alice").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, body) = call(&relay, "GET", "/v1/directory", Some(&token), json!(null)).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        }
        statuses.push(status);
    }
    assert_eq!(statuses[..3], [StatusCode::OK; 3]);
    assert!(
        statuses[3..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}
