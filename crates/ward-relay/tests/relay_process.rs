//! The real `ward-relay` binary: admin commands on its data dir, `serve` on a random loopback
//! port, status while it serves, and a clean stop on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn relay(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ward-relay"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("WARD_RELAY_CONFIG")
        .env_remove("WARD_RELAY_LISTEN")
        .output()
        .unwrap()
}

/// Starts `serve` on port 0 and returns the child and the address it printed.
fn serve(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward-relay"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("WARD_RELAY_CONFIG")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, address)
}

/// One HTTP/1.1 request; returns the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn admin_commands_work_on_the_data_dir_and_print_only_what_scripts_need() {
    let dir = tempfile::tempdir().unwrap();
    let created = relay(
        dir.path(),
        &[
            "invite",
            "create",
            "--name",
            "Dr. Ana Ruiz",
            "--role",
            "physician",
            "--expires",
            "72h",
        ],
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let code = String::from_utf8(created.stdout).unwrap();
    let code = code.strip_suffix('\n').unwrap();
    assert_eq!(code.len(), 19, "{code:?}");
    assert!(code
        .split('-')
        .all(|group| group.len() == 4 && group.chars().all(|c| c.is_ascii_alphanumeric())));

    let listed = String::from_utf8(relay(dir.path(), &["invite", "list"]).stdout).unwrap();
    assert!(
        listed.contains("\topen\t") && listed.contains("Dr. Ana Ruiz"),
        "{listed}"
    );
    let id = listed.split('\t').next().unwrap();
    assert!(relay(dir.path(), &["invite", "revoke", id])
        .status
        .success());
    let listed = String::from_utf8(relay(dir.path(), &["invite", "list"]).stdout).unwrap();
    assert!(listed.contains("\trevoked\t"), "{listed}");

    let missing = relay(
        dir.path(),
        &["user", "disable", "00112233445566778899aabbccddeeff"],
    );
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user has the id"));
    let bad = relay(dir.path(), &["device", "revoke", "nope"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not an id"));
    let unknown = relay(dir.path(), &["frobnicate"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("usage:"));
    let no_name = relay(dir.path(), &["invite", "create"]);
    assert!(String::from_utf8_lossy(&no_name.stderr).contains("--name"));
}

#[test]
fn serve_answers_on_loopback_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    assert!(relay(dir.path(), &["invite", "create", "--name", "N"])
        .status
        .success());
    let (mut child, address) = serve(dir.path());
    assert!(address.starts_with("127.0.0.1:"), "{address}");

    assert_eq!(get(&address, "/healthz"), (200, "ok\n".to_owned()));
    let (status, metrics) = get(&address, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("ward_relay_open_invites 1\n"), "{metrics}");
    let (status, _) = get(&address, "/v1/directory");
    assert_eq!(status, 401);

    // IT can look while the relay runs: both open the same SQLite file.
    let status_output = relay(dir.path(), &["status"]);
    assert!(status_output.status.success());
    let status_text = String::from_utf8_lossy(&status_output.stdout);
    assert!(status_text.contains("open invites: 1"), "{status_text}");
    assert!(status_text.contains("schema version: 2"), "{status_text}");
    assert!(status_text.contains("generation: "), "{status_text}");

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn plain_http_beyond_loopback_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let output = relay(dir.path(), &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("loopback") && stderr.contains("listen"),
        "{stderr}"
    );
}

/// A self-signed certificate for 127.0.0.1, as PEM: (certificate, key).
fn self_signed() -> (String, String) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    (certified.cert.pem(), certified.signing_key.serialize_pem())
}

/// GET over HTTPS trusting only `ca`; the body, or the error's text.
fn get_tls(address: &str, ca: &str) -> Result<String, String> {
    let roots: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(ca.as_bytes())
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
                .unversioned_rustls_crypto_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build(),
        )
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    agent
        .get(format!("https://{address}/healthz"))
        .call()
        .map_err(|error| error.to_string())?
        .body_mut()
        .read_to_string()
        .map_err(|error| error.to_string())
}

#[test]
fn serve_speaks_https_with_a_certificate_and_reloads_it_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();

    // A mismatched key is refused at start, naming the file and not its contents.
    let (other_cert, other_key) = self_signed();
    let other_key_path = dir.path().join("other-key.pem");
    std::fs::write(&other_key_path, &other_key).unwrap();
    let refused = relay(
        dir.path(),
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            other_key_path.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("other-key.pem"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");

    // TLS lifts the loopback-only rule: this listens on every interface.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ward-relay"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0", "--tls-cert"])
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .env_remove("WARD_RELAY_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().rsplit(':').next().unwrap().to_owned();
    let address = format!("127.0.0.1:{port}");

    assert_eq!(get_tls(&address, &cert).unwrap(), "ok\n");
    assert!(
        get_tls(&address, &other_cert).is_err(),
        "only the real CA is trusted"
    );
    // Plain HTTP to the TLS port gets no answer a client could take for the API.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));

    // Renewal: new files, SIGHUP, and new connections see the new certificate.
    std::fs::write(&cert_path, &other_cert).unwrap();
    std::fs::write(&key_path, &other_key).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_tls(&address, &other_cert).is_err() {
        assert!(
            Instant::now() < deadline,
            "the certificate was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(get_tls(&address, &cert).is_err());
    child.kill().unwrap();
    child.wait().unwrap();
}
