//! Relay load, measured side by side with redis in one run (`scripts/bench-relay`):
//!
//! 1. Durable throughput of the real `ward-relay` binary for 1 KB envelopes from 100 connections,
//!    each an enrolled, signed-in device sending into its own group as fast as the relay answers.
//! 2. p50 and p99 latency at half that throughput, paced evenly over the same 100 connections.
//! 3. `redis-benchmark` SET with 1 KB values and 100 clients against a redis-server that fsyncs
//!    every write (`appendfsync always`), on this host, now: the reference. The ratio is ours ÷
//!    redis; the goal is ≥ 0.25.
//! 4. Send-to-receive latency between two `ward` CLI clients on loopback (needs a keyring, which
//!    `scripts/bench-relay` provides): one sends a timestamped line, the other prints it.
//!
//! Only ratios and percentiles are printed; no test depends on them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::{BufRead, BufReader, Write};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use ward_client::relay_client::RelayClient;
use ward_core::identity::{AccountKey, DeviceKey};
use ward_proto::relay_api::CommitRequest;
use ward_proto::{DeviceId, UserId};

const CONNECTIONS: usize = 100;
const ENVELOPE: usize = 1024;
const PHASE: Duration = Duration::from_secs(10);

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
}

fn relay_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ward")).with_file_name("ward-relay")
}

struct Relay {
    dir: PathBuf,
    child: Child,
    address: String,
}

impl Relay {
    fn start(dir: &Path) -> Self {
        let mut child = Command::new(relay_bin())
            .arg("--data-dir")
            .arg(dir)
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
            .unwrap()
            .to_owned();
        Self {
            dir: dir.to_path_buf(),
            child,
            address,
        }
    }

    fn invite(&self, name: &str) -> String {
        let output = Command::new(relay_bin())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["invite", "create", "--name", name])
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One enrolled device with its own group and a keep-alive connection, ready to send. The sends
/// are written as raw HTTP/1.1 so the load generator, which shares this machine's two cores with
/// the relay, spends as little as redis-benchmark's C client does.
struct Sender {
    stream: std::net::TcpStream,
    head: String,
    group: String,
    buffer: Vec<u8>,
}

fn sender(url: &str, invite: &str) -> Sender {
    let (account, _) = AccountKey::generate().unwrap();
    let key = DeviceKey::generate().unwrap();
    let credential = account.issue(UserId(random()), DeviceId(random()), &key);
    let mut client = RelayClient::new(url, credential.device).unwrap();
    client.enroll(invite, &credential).unwrap();
    client.sign_in(&key).unwrap();
    let group = hex::encode(random::<16>());
    // The relay never reads a commit, so an opaque one creates the group for this device.
    client
        .commit(
            &key,
            &CommitRequest {
                group: group.clone(),
                epoch: 0,
                send_id: hex::encode(random::<16>()),
                message: "00".to_owned(),
                added: Vec::new(),
                removed: Vec::new(),
                welcome: None,
            },
        )
        .unwrap();
    let address = url.trim_start_matches("http://").to_owned();
    let stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_nodelay(true).unwrap();
    let head = format!(
        "POST /v1/message HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\n",
        client.session_token().unwrap()
    );
    Sender {
        stream,
        head,
        group,
        buffer: Vec::with_capacity(4096),
    }
}

/// Sends one envelope and reads the answer; retries while the relay says it is over its rate.
fn send_one(sender: &mut Sender, body: &str) {
    use std::io::Read;
    loop {
        let json = format!(
            r#"{{"group":"{}","epoch":1,"send_id":"{}","message":"{body}"}}"#,
            sender.group,
            hex::encode(random::<16>())
        );
        let request = format!(
            "{}Content-Length: {}\r\n\r\n{json}",
            sender.head,
            json.len()
        );
        sender.stream.write_all(request.as_bytes()).unwrap();
        sender.buffer.clear();
        let mut chunk = [0u8; 1024];
        let (status, body_start, length) = loop {
            let read = sender.stream.read(&mut chunk).unwrap();
            assert!(read > 0, "the relay closed the connection");
            sender.buffer.extend_from_slice(&chunk[..read]);
            if let Some(end) = sender
                .buffer
                .windows(4)
                .position(|window| window == b"\r\n\r\n")
            {
                let head = String::from_utf8_lossy(&sender.buffer[..end]).to_ascii_lowercase();
                let status: u16 = head[9..12].parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .map_or(0, |value| value.trim().parse().unwrap());
                break (status, end + 4, length);
            }
        };
        while sender.buffer.len() < body_start + length {
            let read = sender.stream.read(&mut chunk).unwrap();
            assert!(read > 0, "the relay closed the connection");
            sender.buffer.extend_from_slice(&chunk[..read]);
        }
        match status {
            200 => return,
            // Over the per-connection rate limit: the relay protecting itself, not a failure.
            429 => std::thread::sleep(Duration::from_millis(1)),
            other => panic!("send failed with {other}"),
        }
    }
}

/// Runs `work` on every sender at once, for one phase; returns what each returned.
fn phase<T: Send + 'static>(
    senders: Vec<Sender>,
    work: impl Fn(&mut Sender, Instant) -> T + Send + Sync + 'static,
) -> (Vec<Sender>, Vec<T>) {
    let barrier = Arc::new(Barrier::new(senders.len()));
    let work = Arc::new(work);
    let handles: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let barrier = Arc::clone(&barrier);
            let work = Arc::clone(&work);
            std::thread::spawn(move || {
                barrier.wait();
                let result = work(&mut sender, Instant::now());
                (sender, result)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .unzip()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn redis_set_per_second(dir: &Path) -> Option<f64> {
    std::fs::create_dir_all(dir).ok()?;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
        listener.local_addr().ok()?.port()
    };
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--dir",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let _ = server.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "set", "-d", &ENVELOPE.to_string()])
        .args(["-c", &CONNECTIONS.to_string(), "-n", "200000", "-q"])
        .output()
        .ok()?;
    let _ = server.kill();
    let _ = server.wait();
    // `-q` prints "SET: 12345.67 requests per second, p50=… msec" (after progress lines).
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.split(['\r', '\n'])
        .rev()
        .filter_map(|line| line.trim().strip_prefix("SET: "))
        .find_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
}

fn ward(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ward"));
    command.arg("--data-dir").arg(dir).args(args);
    command
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Timestamped lines from one CLI to the other; the latencies, sorted.
fn cli_latency(relay: &Relay, root: &Path) -> Vec<Duration> {
    let url = format!("http://{}", relay.address);
    let (alice, bob) = (root.join("alice"), root.join("bob"));
    for (dir, name) in [(&alice, "Alice"), (&bob, "Bob")] {
        let invite = relay.invite(name);
        let status = ward(dir, &["enroll", "--relay", &url, "--invite", &invite])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "enrolling needs a keyring: run scripts/bench-relay"
        );
    }
    assert!(ward(
        &alice,
        &["chat", "create", "--name", "Pair", "--members", "Bob"]
    )
    .stdout(Stdio::null())
    .status()
    .unwrap()
    .success());
    let mut receiver = ward(&bob, &["receive", "--follow", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let mut sender = ward(&alice, &["send", "--to", "Pair", "--lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = sender.stdin.take().unwrap();
    let mut latencies = Vec::new();
    for n in 0..60 {
        writeln!(input, "latency {n} {}", unix_nanos()).unwrap();
        input.flush().unwrap();
        let line = lines.next().unwrap().unwrap();
        let received = unix_nanos();
        let message: serde_json::Value = serde_json::from_str(&line).unwrap();
        let sent: u128 = message["text"]
            .as_str()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // The first few include opening the push socket.
        if n >= 10 {
            latencies.push(Duration::from_nanos(
                u64::try_from(received - sent).unwrap_or(u64::MAX),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(input);
    let _ = sender.wait();
    let _ = receiver.kill();
    let _ = receiver.wait();
    latencies.sort();
    latencies
}

fn main() {
    let root = tempfile::Builder::new()
        .prefix("ward-bench-")
        .tempdir()
        .unwrap();
    let relay = Relay::start(&root.path().join("relay"));
    let url = format!("http://{}", relay.address);
    let invites: Vec<String> = (0..CONNECTIONS)
        .map(|n| relay.invite(&format!("Load {n}")))
        .collect();
    let senders: Vec<Sender> = invites.iter().map(|invite| sender(&url, invite)).collect();
    let body = hex::encode(random::<ENVELOPE>());

    let envelope = body.clone();
    let (senders, counts) = phase(senders, move |sender, started| {
        let mut sent = 0u64;
        while started.elapsed() < PHASE {
            send_one(sender, &envelope);
            sent += 1;
        }
        sent
    });
    let throughput = counts.iter().sum::<u64>() as f64 / PHASE.as_secs_f64();

    let interval = Duration::from_secs_f64(CONNECTIONS as f64 / (throughput / 2.0));
    let envelope = body.clone();
    let (_senders, latencies) = phase(senders, move |sender, started| {
        // Spread the connections' first sends over one interval so the load is even.
        let offset = interval.mul_f64(f64::from(random::<1>()[0]) / 256.0);
        let mut next = started + offset;
        let mut latencies = Vec::new();
        while next < started + PHASE {
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let sent = Instant::now();
            send_one(sender, &envelope);
            latencies.push(sent.elapsed());
            next += interval;
        }
        latencies
    });
    let mut latencies: Vec<Duration> = latencies.into_iter().flatten().collect();
    latencies.sort();

    println!(
        "relay: {CONNECTIONS} connections, {ENVELOPE}-byte envelopes, durable (synchronous=FULL)"
    );
    println!("  throughput                 {throughput:>10.0} envelopes/s");
    println!(
        "  at half load ({:.0}/s)   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} sends)",
        throughput / 2.0,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
    match redis_set_per_second(&root.path().join("redis")) {
        Some(redis) => {
            println!("redis-benchmark SET, 1 KB, {CONNECTIONS} clients, appendfsync always");
            println!("  throughput                 {redis:>10.0} sets/s");
            println!(
                "  ratio ward ÷ redis         {:>10.3}   (goal ≥ 0.25)",
                throughput / redis
            );
        }
        None => println!("redis-server or redis-benchmark is missing: run scripts/bench-relay"),
    }
    let cli = cli_latency(&relay, root.path());
    println!(
        "ward CLI send → ward CLI receive --follow, loopback: p50 {:.1} ms   p99 {:.1} ms   ({} messages)",
        percentile(&cli, 0.50).as_secs_f64() * 1e3,
        percentile(&cli, 0.99).as_secs_f64() * 1e3,
        cli.len()
    );
}
