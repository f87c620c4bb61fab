//! Real processes: the `ward-relay` binary on a random loopback port and several `ward` CLI
//! clients, each with its own data dir, all against a real gnome-keyring. `scripts/test-processes`
//! runs these inside a D-Bus session with the keyring; they are ignored under plain `cargo test`,
//! which has no keyring to give them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

fn ward_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ward"))
}

/// The relay binary is built beside `ward` (`scripts/test-processes` builds both).
fn relay_bin() -> PathBuf {
    ward_bin().with_file_name("ward-relay")
}

struct Relay {
    dir: PathBuf,
    address: String,
    child: Option<Child>,
    /// Certificate and key files when the relay speaks HTTPS.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Relay {
    fn start(root: &Path) -> Self {
        let dir = root.join("relay");
        let mut relay = Self {
            dir,
            address: "127.0.0.1:0".to_owned(),
            child: None,
            tls: None,
        };
        relay.spawn();
        relay
    }

    /// A relay that speaks HTTPS with a fresh self-signed certificate.
    fn start_tls(root: &Path) -> Self {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let (cert, key) = (root.join("relay-cert.pem"), root.join("relay-key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        let mut relay = Self {
            dir: root.join("relay"),
            address: "127.0.0.1:0".to_owned(),
            child: None,
            tls: Some((cert, key)),
        };
        relay.spawn();
        relay
    }

    fn spawn(&mut self) {
        // A port just released by a killed relay can take a moment to bind again.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut command = Command::new(relay_bin());
            if let Some((cert, key)) = &self.tls {
                command
                    .arg("--tls-cert")
                    .arg(cert)
                    .arg("--tls-key")
                    .arg(key);
            }
            let mut child = command
                .arg("--data-dir")
                .arg(&self.dir)
                .args(["serve", "--listen", &self.address])
                .env_remove("WARD_RELAY_CONFIG")
                .env_remove("WARD_RELAY_LISTEN")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if let Some(address) = line.trim().strip_prefix("listening on ") {
                self.address = address.to_owned();
                self.child = Some(child);
                return;
            }
            let _ = child.wait();
            assert!(Instant::now() < deadline, "the relay did not start again");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.address)
    }

    fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Runs an admin command on this relay's data folder, as IT would.
    fn admin(&self, args: &[&std::ffi::OsStr]) -> Output {
        Command::new(relay_bin())
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("WARD_RELAY_CONFIG")
            .output()
            .unwrap()
    }

    fn invite(&self, name: &str) -> String {
        let output = self.admin(
            &["invite", "create", "--name", name, "--role", "nurse"].map(std::ffi::OsStr::new),
        );
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    fn metric(&self, name: &str) -> u64 {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no metric {name}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

#[derive(Clone)]
struct Clinician {
    name: String,
    dir: PathBuf,
}

impl Clinician {
    fn enroll(root: &Path, relay: &Relay, name: &str) -> Self {
        let clinician = Self {
            name: name.to_owned(),
            dir: root.join(name.to_lowercase()),
        };
        let invite = relay.invite(name);
        let url = relay.url();
        let mut args = vec![
            "enroll", "--relay", &url, "--invite", &invite, "--name", name,
        ];
        let ca;
        if let Some((cert, _)) = &relay.tls {
            ca = cert.to_str().unwrap().to_owned();
            args.extend(["--relay-ca", ca.as_str()]);
        }
        clinician.ok(&args);
        clinician
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(ward_bin());
        command
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .env_remove("WARD_DATA_DIR");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Sends each line with one `send --lines` run, and waits until the relay has them all.
    fn send_lines(&self, chat: &str, lines: impl Iterator<Item = String>) {
        let mut sender = self
            .command(&["send", "--to", chat, "--lines"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let text: String = lines.collect();
        sender
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        assert!(sender.wait().unwrap().success());
    }

    fn receive(&self) -> Vec<Received> {
        json_lines(&self.ok(&["receive", "--json"]))
    }

    fn history(&self, chat: &str) -> Vec<Received> {
        json_lines(&self.ok(&["history", "--chat", chat, "--json"]))
    }

    fn chats(&self) -> Vec<Chat> {
        json_lines(&self.ok(&["chat", "list", "--json"]))
    }

    fn chat(&self, name: &str) -> Chat {
        self.chats()
            .into_iter()
            .find(|chat| chat.name == name)
            .unwrap_or_else(|| panic!("{} has no chat {name}", self.name))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct Received {
    chat_id: String,
    chat: String,
    sender: String,
    client_id: String,
    sequence: Option<u64>,
    kind: String,
    text: String,
    size: Option<u64>,
    status: String,
}

#[derive(Debug, Clone, Deserialize)]
#[allow(dead_code)]
struct Chat {
    id: String,
    name: String,
    active: bool,
    members: Vec<String>,
    epoch: u64,
    epoch_authenticator: String,
}

fn json_lines<T: for<'a> Deserialize<'a>>(text: &str) -> Vec<T> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect()
}

fn texts(messages: &[Received]) -> Vec<&str> {
    messages
        .iter()
        .map(|message| message.text.as_str())
        .collect()
}

fn root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ward-processes-")
        .tempdir()
        .unwrap()
}

/// Every file under `dir` that contains `needle`, as bytes, UTF-16 or hex.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let utf16: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let hex = hex::encode(needle);
    let patterns = [needle.as_bytes().to_vec(), utf16, hex.into_bytes()];
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if patterns
                .iter()
                .any(|pattern| bytes.windows(pattern.len()).any(|window| window == pattern))
            {
                found.push(path);
            }
        }
    }
    found
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn clinicians_chat_one_to_one_and_in_a_team_with_adds_and_removes() {
    let root = root();
    let relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    let carol = Clinician::enroll(root.path(), &relay, "Carol");
    let dan = Clinician::enroll(root.path(), &relay, "Dan");

    let contacts = alice.ok(&["contacts", "--json"]);
    for name in ["Alice", "Bob", "Carol", "Dan"] {
        assert!(
            contacts.contains(&format!("\"name\":\"{name}\"")),
            "{contacts}"
        );
    }

    // 1:1, both ways, in one conversation.
    alice.ok(&["send", "--to", "Bob", "Hello Bob"]);
    let got = bob.receive();
    assert_eq!(texts(&got), ["Hello Bob"]);
    assert_eq!(got[0].sender, "Alice");
    assert_eq!(got[0].chat, "Alice");
    bob.ok(&["send", "--to", "Alice", "Hi Alice"]);
    let back = alice.receive();
    assert_eq!(texts(&back), ["Hi Alice"]);
    assert_eq!(
        back[0].chat_id, got[0].chat_id,
        "one 1:1 conversation, not two"
    );
    assert!(bob.receive().is_empty(), "nothing is shown twice");

    // A care team of three, then a fourth member, then one removed.
    alice.ok(&[
        "chat",
        "create",
        "--name",
        "Ward 4B",
        "--members",
        "Bob,Carol",
        "--patient-tag",
        "MRN-77",
    ]);
    carol.ok(&["send", "--to", "Ward 4B", "Carol here"]);
    assert_eq!(texts(&alice.receive()), ["Carol here"]);
    assert_eq!(texts(&bob.receive()), ["Carol here"]);
    alice.ok(&["chat", "add", "--chat", "Ward 4B", "--members", "Dan"]);
    dan.ok(&["send", "--to", "Ward 4B", "Dan joined"]);
    for member in [&alice, &bob, &carol] {
        assert_eq!(texts(&member.receive()), ["Dan joined"], "{}", member.name);
    }
    alice.ok(&["chat", "remove", "--chat", "Ward 4B", "--members", "Carol"]);
    alice.ok(&["send", "--to", "Ward 4B", "After Carol left"]);
    assert_eq!(texts(&bob.receive()), ["After Carol left"]);
    assert_eq!(texts(&dan.receive()), ["After Carol left"]);
    assert!(
        carol.receive().is_empty(),
        "a removed member reads nothing new"
    );
    assert!(!carol.chat("Ward 4B").active);

    let team: Vec<Chat> = [&alice, &bob, &dan]
        .iter()
        .map(|member| member.chat("Ward 4B"))
        .collect();
    for chat in &team {
        assert_eq!(chat.epoch_authenticator, team[0].epoch_authenticator);
        assert_eq!(chat.epoch, team[0].epoch);
        assert_eq!(chat.members, ["Alice", "Bob", "Dan"]);
    }

    // Each side computes the same 60 digits.
    let alice_sees = alice.ok(&["safety-number", "Bob"]);
    let bob_sees = bob.ok(&["safety-number", "Alice"]);
    assert_eq!(alice_sees, bob_sees);
    let digits: Vec<&str> = alice_sees.split_whitespace().collect();
    assert_eq!(digits.len(), 12);
    assert!(digits.iter().all(|group| group.len() == 5));
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn clinicians_chat_over_https_trusting_only_the_hospitals_ca() {
    let root = root();
    let relay = Relay::start_tls(root.path());
    // Without the hospital's CA, this computer's trust store does not know the relay.
    let stranger = Clinician {
        name: "Stranger".to_owned(),
        dir: root.path().join("stranger"),
    };
    let invite = relay.invite("Stranger");
    let refused = stranger.run(&["enroll", "--relay", &relay.url(), "--invite", &invite]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate is not trusted"), "{stderr}");

    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    alice.ok(&["send", "--to", "Bob", "over TLS"]);
    assert_eq!(texts(&bob.receive()), ["over TLS"]);
    // The stranger's invite was not spent by the refused attempt.
    let stranger = Clinician {
        name: "Stranger".to_owned(),
        dir: root.path().join("stranger-2"),
    };
    let ca = relay.tls.as_ref().unwrap().0.to_str().unwrap().to_owned();
    stranger.ok(&[
        "enroll",
        "--relay",
        &relay.url(),
        "--invite",
        &invite,
        "--relay-ca",
        &ca,
    ]);
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn a_50_mb_file_round_trips_and_is_kept_only_as_ciphertext() {
    let root = root();
    let relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");

    let source = root.path().join("ekg-export.bin");
    let mut contents = vec![0u8; 50 * 1000 * 1000];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut contents).unwrap();
    // A recognisable run inside, to look for later in every folder.
    contents[1_000_000..1_000_032].copy_from_slice(b"FILE-SENTINEL-0123456789abcdefgh");
    std::fs::write(&source, &contents).unwrap();
    alice.ok(&["send-file", "--to", "Bob", source.to_str().unwrap()]);

    let got = bob.receive();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, "attachment");
    assert_eq!(got[0].text, "ekg-export.bin");
    assert_eq!(got[0].size, Some(contents.len() as u64));
    let out = root.path().join("saved.bin");
    bob.ok(&[
        "fetch-file",
        &got[0].client_id,
        "--out",
        out.to_str().unwrap(),
    ]);
    let digest = |bytes: &[u8]| ring::digest::digest(&ring::digest::SHA256, bytes);
    assert_eq!(
        digest(&std::fs::read(&out).unwrap()).as_ref(),
        digest(&contents).as_ref()
    );
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(&source).unwrap();
    for dir in [&alice.dir, &bob.dir, &relay.dir] {
        assert!(
            files_containing(dir, "FILE-SENTINEL-0123456789abcdefgh").is_empty(),
            "{dir:?}"
        );
    }
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn concurrent_commits_one_wins_the_loser_retries_and_all_converge() {
    let root = root();
    let mut relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    let carol = Clinician::enroll(root.path(), &relay, "Carol");
    alice.ok(&[
        "chat",
        "create",
        "--name",
        "Ward 4B",
        "--members",
        "Bob,Carol",
    ]);
    bob.ok(&["sync"]);
    carol.ok(&["sync"]);

    // Bob's commit is built while the relay is down, on the epoch Alice's commit will win.
    relay.kill_hard();
    let queued = bob.run(&["chat", "update-keys", "--chat", "Ward 4B"]);
    assert!(queued.status.success(), "{queued:?}");
    assert!(String::from_utf8_lossy(&queued.stderr).contains("outbox"));
    relay.spawn();
    alice.ok(&["chat", "update-keys", "--chat", "Ward 4B"]);
    let refused_before = relay.metric("ward_relay_commits_refused_total");
    bob.ok(&["sync"]);
    assert_eq!(
        relay.metric("ward_relay_commits_refused_total"),
        refused_before + 1,
        "Bob's first commit lost the race"
    );
    for member in [&alice, &carol] {
        member.ok(&["sync"]);
    }
    let chats: Vec<Chat> = [&alice, &bob, &carol]
        .iter()
        .map(|member| member.chat("Ward 4B"))
        .collect();
    // Creation with the adds, Alice's update, Bob's update made again on top of it.
    assert_eq!(chats[0].epoch, 3);
    for chat in &chats {
        assert_eq!(chat.epoch, chats[0].epoch);
        assert_eq!(chat.epoch_authenticator, chats[0].epoch_authenticator);
    }

    // And truly at the same time: both add a member at once; both additions land.
    let dan = Clinician::enroll(root.path(), &relay, "Dan");
    let erin = Clinician::enroll(root.path(), &relay, "Erin");
    let mut first = alice
        .command(&["chat", "add", "--chat", "Ward 4B", "--members", "Dan"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = bob
        .command(&["chat", "add", "--chat", "Ward 4B", "--members", "Erin"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(first.wait().unwrap().success());
    assert!(second.wait().unwrap().success());
    for member in [&alice, &bob, &carol, &dan, &erin] {
        member.ok(&["sync"]);
    }
    let chats: Vec<Chat> = [&alice, &bob, &carol, &dan, &erin]
        .iter()
        .map(|member| member.chat("Ward 4B"))
        .collect();
    for chat in &chats {
        assert_eq!(
            chat.epoch_authenticator, chats[0].epoch_authenticator,
            "{chats:#?}"
        );
        assert_eq!(
            chat.members,
            ["Alice", "Bob", "Carol", "Dan", "Erin"],
            "{chats:#?}"
        );
    }
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn a_client_offline_for_1000_messages_gets_them_all_in_sender_order() {
    let root = root();
    let relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    let carol = Clinician::enroll(root.path(), &relay, "Carol");
    alice.ok(&[
        "chat",
        "create",
        "--name",
        "Night",
        "--members",
        "Bob,Carol",
    ]);

    alice.send_lines("Night", (0..1000).map(|n| format!("night note {n:04}\n")));
    // Bob was online (he syncs now and then); Carol only now.
    bob.ok(&["sync"]);
    for member in [&bob, &carol] {
        let got = member.receive();
        let expected: Vec<String> = (0..1000).map(|n| format!("night note {n:04}")).collect();
        assert_eq!(texts(&got), expected, "{}", member.name);
        let sequences: Vec<u64> = got
            .iter()
            .map(|message| message.sequence.unwrap())
            .collect();
        assert!(sequences.windows(2).all(|pair| pair[0] < pair[1]));
    }
}

/// The sentinel that must never reach a disk in the clear.
const SENTINEL: &str = "PHI-SENTINEL-7d1c9e";

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn kill_9_of_the_relay_five_times_during_10000_messages_loses_nothing() {
    let root = root();
    let relay = Arc::new(Mutex::new(Relay::start(root.path())));
    let (senders, reader) = {
        let relay = relay.lock().unwrap();
        let senders: Vec<Clinician> = ["Alice", "Bob", "Carol"]
            .iter()
            .map(|name| Clinician::enroll(root.path(), &relay, name))
            .collect();
        let reader = Clinician::enroll(root.path(), &relay, "Dan");
        (senders, reader)
    };
    senders[0].ok(&[
        "chat",
        "create",
        "--name",
        "Load",
        "--members",
        "Bob,Carol,Dan",
    ]);
    for member in &senders[1..] {
        member.ok(&["sync"]);
    }

    const PER_SENDER: usize = 3334;
    const KILLS: usize = 5;
    // Each sender's input arrives in six parts, the next one only after the next kill, so every
    // kill lands while messages are being encrypted, queued and sent.
    let kills = Arc::new(AtomicUsize::new(0));
    let killer = {
        let relay = Arc::clone(&relay);
        let kills = Arc::clone(&kills);
        std::thread::spawn(move || {
            for _ in 0..KILLS {
                std::thread::sleep(Duration::from_millis(150));
                let mut relay = relay.lock().unwrap();
                relay.kill_hard();
                std::thread::sleep(Duration::from_millis(200));
                relay.spawn();
                kills.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let mut children: Vec<Child> = senders
        .iter()
        .map(|sender| {
            let mut child = sender
                .command(&["send", "--to", "Load", "--lines"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let lines: Vec<String> = (0..PER_SENDER)
                .map(|n| format!("{} {SENTINEL} {n:05}\n", sender.name))
                .collect();
            let mut stdin = child.stdin.take().unwrap();
            let kills = Arc::clone(&kills);
            std::thread::spawn(move || {
                for (part, chunk) in lines.chunks(PER_SENDER.div_ceil(KILLS + 1)).enumerate() {
                    while kills.load(Ordering::SeqCst) < part {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    stdin.write_all(chunk.concat().as_bytes()).unwrap();
                    stdin.flush().unwrap();
                }
            });
            child
        })
        .collect();
    for child in &mut children {
        assert!(child.wait().unwrap().success());
    }
    killer.join().unwrap();
    assert_eq!(kills.load(Ordering::SeqCst), KILLS);

    let got = reader.receive();
    let mut per_sender: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for message in &got {
        assert!(
            seen.insert(message.client_id.clone()),
            "shown twice: {message:?}"
        );
        let (name, rest) = message.text.split_once(' ').unwrap();
        let number: usize = rest.rsplit(' ').next().unwrap().parse().unwrap();
        per_sender.entry(name.to_owned()).or_default().push(number);
    }
    for sender in &senders {
        let numbers = &per_sender[&sender.name];
        let expected: Vec<usize> = (0..PER_SENDER).collect();
        assert_eq!(
            numbers, &expected,
            "{} in sender order, none lost",
            sender.name
        );
    }
    let relay_dir = relay.lock().unwrap().dir.clone();
    for dir in senders
        .iter()
        .map(|sender| &sender.dir)
        .chain([&reader.dir, &relay_dir])
    {
        assert!(
            files_containing(dir, SENTINEL).is_empty(),
            "sentinel in {dir:?}"
        );
    }
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn kill_9_of_a_receiving_client_loses_nothing_and_leaves_a_sound_store() {
    let root = root();
    let relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    alice.ok(&["chat", "create", "--name", "Pair", "--members", "Bob"]);
    alice.send_lines("Pair", (0..2000).map(|n| format!("note {n:04}\n")));

    // Bob's receiver is killed mid-sync, three times, at growing delays.
    for delay in [150, 400, 900] {
        let mut receiver = bob
            .command(&["sync"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        receiver.kill().unwrap();
        receiver.wait().unwrap();
    }
    // Opening the store again runs cipher_integrity_check and refuses a damaged file.
    let got = bob.history("Pair");
    let expected: Vec<String> = (0..2000).map(|n| format!("note {n:04}")).collect();
    assert_eq!(texts(&got), expected);
    let ids: HashSet<&str> = got
        .iter()
        .map(|message| message.client_id.as_str())
        .collect();
    assert_eq!(ids.len(), 2000);
}

/// A relay in the middle that damages what it forwards: it flips a byte in one entry of each
/// inbox page it has not damaged before, replays an old entry in place of a new one, reverses
/// each page, and leaves out one entry. Everything else passes through unchanged.
struct AdversarialProxy {
    address: String,
    damaged: Arc<Mutex<u32>>,
    stop: Arc<AtomicBool>,
}

impl AdversarialProxy {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let damaged = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(ProxyMemory::default()));
        {
            let damaged = Arc::clone(&damaged);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let upstream = upstream.clone();
                    let damaged = Arc::clone(&damaged);
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || {
                        let _ = proxy_one(stream, &upstream, &damaged, &state);
                    });
                }
            });
        }
        Self {
            address,
            damaged,
            stop,
        }
    }
}

impl Drop for AdversarialProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.address);
    }
}

#[derive(Default)]
struct ProxyMemory {
    /// Entries already damaged once, by (group, sequence): each is damaged at most once, so the
    /// client's retry gets the real one.
    touched: HashSet<(String, u64)>,
    /// The first application entry seen, replayed later in place of another.
    old: Option<serde_json::Value>,
}

/// Reads one HTTP/1.1 message (headers and a Content-Length body).
fn read_message(stream: &mut impl Read) -> std::io::Result<(String, Vec<u8>)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok((head, body))
}

fn with_connection_close(head: &str, length: usize) -> String {
    let mut out = String::new();
    for line in head.trim_end().lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("content-length:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "Connection: close\r\nContent-Length: {length}\r\n\r\n"
    ));
    out
}

fn proxy_one(
    client: TcpStream,
    upstream: &str,
    damaged: &Mutex<u32>,
    state: &Mutex<ProxyMemory>,
) -> std::io::Result<()> {
    forward_one(client, upstream, |head, answer| {
        if head.starts_with("GET /v1/inbox") {
            tamper_with_inbox(&answer, damaged, state)
        } else {
            answer
        }
    })
}

/// Forwards one request to `upstream` and its answer back, letting `rewrite` change a successful
/// answer's body, given the request's head.
fn forward_one(
    mut client: TcpStream,
    upstream: &str,
    rewrite: impl FnOnce(&str, Vec<u8>) -> Vec<u8>,
) -> std::io::Result<()> {
    let (head, body) = read_message(&mut client)?;
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(with_connection_close(&head, body.len()).as_bytes())?;
    server.write_all(&body)?;
    let (answer_head, mut answer) = read_message(&mut server)?;
    if answer_head.starts_with("HTTP/1.1 200") {
        answer = rewrite(&head, answer);
    }
    client.write_all(with_connection_close(&answer_head, answer.len()).as_bytes())?;
    client.write_all(&answer)?;
    Ok(())
}

fn tamper_with_inbox(body: &[u8], damaged: &Mutex<u32>, state: &Mutex<ProxyMemory>) -> Vec<u8> {
    let mut inbox: serde_json::Value = serde_json::from_slice(body).unwrap();
    let mut memory = state.lock().unwrap();
    let entries = inbox["entries"].as_array_mut().unwrap();
    let key = |entry: &serde_json::Value| {
        (
            entry["group"].as_str().unwrap().to_owned(),
            entry["sequence"].as_u64().unwrap(),
        )
    };
    let mut count = 0;
    let mut index = 0;
    let mut dropped_one = false;
    while index < entries.len() {
        let entry_key = key(&entries[index]);
        let is_application = !entries[index]["commit"].as_bool().unwrap();
        if !is_application || memory.touched.contains(&entry_key) {
            index += 1;
            continue;
        }
        if memory.old.is_none() {
            memory.old = Some(entries[index].clone());
            index += 1;
            continue;
        }
        memory.touched.insert(entry_key.clone());
        match count % 3 {
            0 => {
                // Flip one byte of the ciphertext.
                let message = entries[index]["message"].as_str().unwrap().to_owned();
                let mut bytes = hex::decode(&message).unwrap();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x40;
                entries[index]["message"] = hex::encode(bytes).into();
            }
            1 => {
                // Replay an old entry's ciphertext under this entry's place in the log.
                let old = memory.old.as_ref().unwrap();
                if old["group"] == entries[index]["group"] {
                    entries[index]["message"] = old["message"].clone();
                    entries[index]["sender"] = old["sender"].clone();
                    entries[index]["epoch"] = old["epoch"].clone();
                }
            }
            _ if !dropped_one => {
                entries.remove(index);
                dropped_one = true;
                count += 1;
                continue;
            }
            _ => {}
        }
        count += 1;
        index += 1;
    }
    entries.reverse();
    *damaged.lock().unwrap() += count;
    serde_json::to_vec(&inbox).unwrap()
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn an_adversarial_relay_cannot_make_a_client_accept_tampering_or_lose_messages() {
    let root = root();
    let relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob_direct = Clinician::enroll(root.path(), &relay, "Bob");
    alice.ok(&["chat", "create", "--name", "Pair", "--members", "Bob"]);
    bob_direct.ok(&["sync"]);
    for n in 0..30 {
        alice.ok(&["send", "--to", "Pair", &format!("order {n:02}")]);
    }

    // Bob now talks to the relay only through the proxy.
    let proxy = AdversarialProxy::start(relay.address.clone());
    let store = bob_direct.dir.join("ward.db");
    assert!(store.exists());
    let bob = Clinician {
        name: "Bob".to_owned(),
        dir: bob_direct.dir.clone(),
    };
    let mut shown: Vec<Received> = Vec::new();
    let mut warnings = String::new();
    for _ in 0..20 {
        let output = bob
            .command(&["receive", "--json"])
            .env("WARD_RELAY_URL", format!("http://{}", proxy.address))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        warnings.push_str(&String::from_utf8_lossy(&output.stderr));
        shown.extend(json_lines::<Received>(&String::from_utf8_lossy(
            &output.stdout,
        )));
        if shown.len() >= 30 {
            break;
        }
    }
    assert!(
        *proxy.damaged.lock().unwrap() > 0,
        "the proxy damaged entries"
    );
    assert!(
        warnings.contains("refused"),
        "tampering is reported: {warnings}"
    );
    let expected: Vec<String> = (0..30).map(|n| format!("order {n:02}")).collect();
    assert_eq!(texts(&shown), expected, "every message once, in order");
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for message in &shown {
        *by_id.entry(message.client_id.as_str()).or_default() += 1;
    }
    assert!(by_id.values().all(|count| *count == 1));
}

/// Points every `ward` this test starts at a policy file (debug builds honour
/// WARD_POLICY_FILE), and takes it away again even when the test fails.
struct PolicyFile;

impl PolicyFile {
    fn set(path: &Path) -> Self {
        std::env::set_var("WARD_POLICY_FILE", path);
        Self
    }
}

impl Drop for PolicyFile {
    fn drop(&mut self) {
        std::env::remove_var("WARD_POLICY_FILE");
    }
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn the_managed_policy_fixes_the_relay_and_limits_attachments() {
    let root = root();
    let relay = Relay::start(root.path());
    let policy = root.path().join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "relay_url = \"{}\"\nattachment_max_mb = 1\n\
             attachment_allowed_types = [\"application/pdf\", \"image/*\"]\n",
            relay.url()
        ),
    )
    .unwrap();
    let _policy = PolicyFile::set(&policy);

    // Enrolling with another relay is refused before anything is made or spent.
    let elsewhere = root.path().join("elsewhere");
    let invite = relay.invite("Eve");
    let output = Command::new(ward_bin())
        .args(["--data-dir", elsewhere.to_str().unwrap()])
        .args([
            "enroll",
            "--relay",
            "https://relay.elsewhere.example",
            "--invite",
            &invite,
        ])
        .args(["--name", "Eve"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("your organization has set Ward's relay to"),
        "{said}"
    );
    assert!(!elsewhere.join("ward.db").exists());

    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let _bob = Clinician::enroll(root.path(), &relay, "Bob");
    // Pointing an enrolled profile at another relay is refused too.
    let output = alice
        .command(&["--relay-url", "https://relay.elsewhere.example", "sync"])
        .output()
        .unwrap();
    assert!(!output.status.success());

    let send = |name: &str, bytes: usize| {
        let path = root.path().join(name);
        std::fs::write(&path, vec![7u8; bytes]).unwrap();
        alice.run(&["send-file", "--to", "Bob", path.to_str().unwrap()])
    };
    let refused = send("export.bin", 10);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("does not allow sending application/octet-stream files"),
        "{said}"
    );
    let refused = send("scan.png", 1_000_001);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("allows attachments up to 1 MB"), "{said}");
    assert!(send("report.pdf", 1_000_000).status.success());

    // A policy Ward cannot honour stops the CLI too, naming the key and the file.
    std::fs::write(&policy, "attachment_max_mb = 0\n").unwrap();
    let output = alice.run(&["sync"]);
    assert!(!output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("attachment_max_mb") && said.contains("policy.toml"),
        "{said}"
    );
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn a_pinned_relay_key_is_required_on_top_of_the_ca() {
    use rcgen::PublicKeyData;

    let root = root();
    let relay = Relay::start_tls(root.path());
    let (cert, key) = relay.tls.clone().unwrap();
    let spki = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&key).unwrap())
        .unwrap()
        .subject_public_key_info();
    let right = hex::encode(ring::digest::digest(&ring::digest::SHA256, &spki));
    // The pin the client computes from the certificate is the one IT computes from the key.
    let pem = std::fs::read_to_string(&cert).unwrap();
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap();
    assert_eq!(
        ward_client::pinned_tls::spki_sha256(&der).map(hex::encode),
        Some(right.clone())
    );

    let policy = root.path().join("policy.toml");
    let _policy = PolicyFile::set(&policy);
    let wrong = "00".repeat(32);
    std::fs::write(&policy, format!("relay_spki_sha256 = [\"{wrong}\"]\n")).unwrap();
    // The CA is trusted, but the key is not the pinned one: refused, and the invite not spent.
    let invite = relay.invite("Alice");
    let alice = Clinician {
        name: "Alice".to_owned(),
        dir: root.path().join("alice"),
    };
    let ca = cert.to_str().unwrap();
    let enroll = [
        "enroll",
        "--relay",
        &relay.url(),
        "--invite",
        &invite,
        "--relay-ca",
        ca,
    ];
    let refused = alice.run(&enroll);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("does not carry the key your organization pinned"),
        "{said}"
    );

    // The next key and the current one, as IT lists them during a rotation.
    std::fs::write(
        &policy,
        format!("relay_spki_sha256 = [\"{wrong}\", \"{right}\"]\n"),
    )
    .unwrap();
    alice.ok(&enroll);
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    alice.ok(&["send", "--to", "Bob", "pinned"]);
    assert_eq!(texts(&bob.receive()), ["pinned"]);

    // A pin that stops matching stops an enrolled device too.
    std::fs::write(&policy, format!("relay_spki_sha256 = [\"{wrong}\"]\n")).unwrap();
    let refused = alice.run(&["send", "--to", "Bob", "not sent"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("pinned"), "{said}");
}

/// The texts `sender` sent, in the order shown.
fn texts_from<'a>(messages: &'a [Received], sender: &str) -> Vec<&'a str> {
    messages
        .iter()
        .filter(|message| message.sender == sender)
        .map(|message| message.text.as_str())
        .collect()
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn a_backup_taken_while_the_relay_runs_restores_and_clients_carry_on_without_loss() {
    let root = root();
    let mut relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    let carol = Clinician::enroll(root.path(), &relay, "Carol");
    alice.ok(&[
        "chat",
        "create",
        "--name",
        "Ward 7",
        "--members",
        "Bob,Carol",
    ]);
    let lines =
        |label: &'static str, count: usize| (0..count).map(move |n| format!("{label} {n:03}\n"));
    let expect = |label: &str, count: usize| -> Vec<String> {
        (0..count).map(|n| format!("{label} {n:03}")).collect()
    };
    alice.send_lines("Bob", lines("before", 20));
    alice.send_lines("Ward 7", lines("team before", 5));
    bob.send_lines("Alice", lines("reply before", 5));
    for clinician in [&alice, &bob, &carol] {
        clinician.ok(&["sync"]);
    }

    // The backup is taken while Alice sends.
    let mut sender = alice
        .command(&["send", "--to", "Bob", "--lines"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = sender.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for line in lines("during", 200) {
            input.write_all(line.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    std::thread::sleep(Duration::from_millis(150));
    let backup = root.path().join("backup");
    let output = relay.admin(&["backup".as_ref(), "--to".as_ref(), backup.as_os_str()]);
    assert!(output.status.success(), "{output:?}");
    writer.join().unwrap();
    assert!(sender.wait().unwrap().success());

    // After the backup: more traffic, read by Alice and Bob, while Carol is away.
    alice.send_lines("Bob", lines("after", 30));
    alice.send_lines("Ward 7", lines("team after", 10));
    bob.send_lines("Alice", lines("reply after", 10));
    alice.ok(&["sync"]);
    bob.ok(&["sync"]);

    // The relay's disk is lost. Its data folder is rebuilt from the backup, on the same address.
    relay.kill_hard();
    std::fs::rename(&relay.dir, root.path().join("relay-lost")).unwrap();
    let restore = ["restore".as_ref(), "--from".as_ref(), backup.as_os_str()];
    let output = relay.admin(&restore);
    assert!(output.status.success(), "{output:?}");
    // A second restore over the first is refused: nothing is overwritten.
    let again = relay.admin(&restore);
    assert!(!again.status.success());
    relay.spawn();

    // Everyone carries on. Those who sent after the backup send it again on their next sync.
    let said = alice.run(&["sync"]);
    assert!(said.status.success(), "{said:?}");
    let stderr = String::from_utf8_lossy(&said.stderr);
    assert!(stderr.contains("restored from a backup"), "{stderr}");
    bob.ok(&["sync"]);
    alice.ok(&["send", "--to", "Bob", "after restore"]);
    bob.ok(&["send", "--to", "Alice", "reply after restore"]);
    alice.ok(&["send", "--to", "Ward 7", "team after restore"]);
    for clinician in [&alice, &bob, &carol] {
        clinician.ok(&["sync"]);
    }

    let mut from_alice = expect("before", 20);
    from_alice.extend(expect("during", 200));
    from_alice.extend(expect("after", 30));
    from_alice.push("after restore".to_owned());
    let mut from_bob = expect("reply before", 5);
    from_bob.extend(expect("reply after", 10));
    from_bob.push("reply after restore".to_owned());
    let bob_sees = bob.history("Alice");
    assert_eq!(texts_from(&bob_sees, "Alice"), from_alice, "Bob's history");
    assert_eq!(texts_from(&bob_sees, "Bob"), from_bob);
    let alice_sees = alice.history("Bob");
    assert_eq!(texts_from(&alice_sees, "Bob"), from_bob, "Alice's history");
    assert_eq!(texts_from(&alice_sees, "Alice"), from_alice);

    // Carol was away for everything after the backup: what the relay lost reached her all the same.
    let mut team = expect("team before", 5);
    team.extend(expect("team after", 10));
    team.push("team after restore".to_owned());
    assert_eq!(
        texts_from(&carol.history("Ward 7"), "Alice"),
        team,
        "Carol's history"
    );
    assert_eq!(texts_from(&bob.history("Ward 7"), "Alice"), team);
}

/// A relay in the middle that answers the directory with another account key for `victim`, as a
/// relay that wants to read their messages would.
fn start_key_swapping_proxy(upstream: String, victim: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(client) = stream else { continue };
            let upstream = upstream.clone();
            std::thread::spawn(move || {
                forward_one(client, &upstream, |head, answer| {
                    if !head.starts_with("GET /v1/directory") {
                        return answer;
                    }
                    let mut users: serde_json::Value = serde_json::from_slice(&answer).unwrap();
                    for user in users.as_array_mut().unwrap() {
                        if user["name"] == victim {
                            user["account_key"] = serde_json::Value::String("11".repeat(32));
                        }
                    }
                    serde_json::to_vec(&users).unwrap()
                })
            });
        }
    });
    address
}

#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn a_changed_key_blocks_sending_under_policy_until_it_is_verified() {
    #[derive(Deserialize)]
    struct ContactJson {
        name: String,
        key_changed: bool,
    }
    let root = root();
    let relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    let carol = Clinician::enroll(root.path(), &relay, "Carol");
    alice.ok(&["send", "--to", "Bob", "first"]);
    alice.ok(&["chat", "create", "--name", "Team", "--members", "Carol"]);
    assert_eq!(texts(&bob.receive()), ["first"]);

    // Through a relay that swaps Bob's key, Alice's contacts flag the change.
    let proxy = format!(
        "http://{}",
        start_key_swapping_proxy(relay.address.clone(), "Bob")
    );
    let contacts: Vec<ContactJson> =
        json_lines(&alice.ok(&["--relay-url", &proxy, "contacts", "--json"]));
    let flagged: Vec<&str> = contacts
        .iter()
        .filter(|contact| contact.key_changed)
        .map(|contact| contact.name.as_str())
        .collect();
    assert_eq!(flagged, ["Bob"]);
    assert!(alice.ok(&["contacts"]).contains("Bob (nurse), KEY CHANGED"));

    // Without the policy Ward warns (above) and still sends.
    alice.ok(&["send", "--to", "Bob", "warned only"]);
    assert_eq!(texts(&bob.receive()), ["warned only"]);

    let policy = root.path().join("policy.toml");
    std::fs::write(&policy, "block_changed_unverified_keys = true\n").unwrap();
    let _policy = PolicyFile::set(&policy);
    let refused = alice.run(&["send", "--to", "Bob", "blocked"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("Bob's security key has changed"), "{said}");
    // Nor may Bob be added to a team, and others are not held up.
    let refused = alice.run(&["chat", "add", "--chat", "Team", "--members", "Bob"]);
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("Bob's security key has changed"), "{said}");
    alice.ok(&["send", "--to", "Team", "carol is fine"]);
    assert_eq!(texts(&carol.receive()), ["carol is fine"]);

    // Once Alice has compared safety numbers and marked Bob verified, sending works again.
    alice.ok(&["safety-number", "Bob", "--mark-verified"]);
    alice.ok(&["send", "--to", "Bob", "after verifying"]);
    assert_eq!(texts(&bob.receive()), ["after verifying"]);
    assert!(texts(&bob.history("Alice"))
        .iter()
        .all(|text| *text != "blocked"));
}

/// The calls the desktop app makes, on the library the app links, against the real relay and
/// keyring: unread counts and read receipts, delivery receipts, edit and delete for everyone,
/// search by patient tag, a file sent from memory and opened into memory, and the clinician's
/// notification setting.
#[test]
#[ignore = "needs a Secret Service: scripts/test-processes"]
fn the_apps_calls_edit_delete_receipt_search_and_open_files_in_memory() {
    use ward_client::client::ShownMessage;
    use ward_client::policy::NotificationLevel;
    use ward_client::{Client, ProfileDir};

    let root = root();
    let relay = Relay::start(root.path());
    let alice = Clinician::enroll(root.path(), &relay, "Alice");
    let bob = Clinician::enroll(root.path(), &relay, "Bob");
    let mut a = Client::open(&ProfileDir::new(&alice.dir).unwrap()).unwrap();
    let mut b = Client::open(&ProfileDir::new(&bob.dir).unwrap()).unwrap();
    a.refresh_contacts().unwrap();
    let team = a
        .create_chat("Ward 3", &["Bob".to_owned()], Some("MRN-1001"))
        .unwrap();
    let chat = hex::encode(team.as_bytes());
    let last =
        |client: &mut Client| -> ShownMessage { client.messages(&chat).unwrap().pop().unwrap() };

    a.send_text(&chat, "potassium 5.9, recheck").unwrap();
    let first = last(&mut a).client_id;
    b.sync().unwrap();
    let unread = |client: &Client| client.chats().unwrap()[0].unread;
    assert_eq!(unread(&b), 1);

    // Delivered when Bob's device has it; read once he opens the conversation.
    b.send_delivery_receipts().unwrap();
    a.sync().unwrap();
    assert_eq!(last(&mut a).status, "delivered");
    assert_eq!(b.mark_read(&chat).unwrap(), 1);
    assert_eq!(unread(&b), 0);
    a.sync().unwrap();
    assert_eq!(last(&mut a).status, "read");
    // A receipt is not news: the list order and unread counts stay as they were.
    assert_eq!(unread(&a), 0);

    // Alice corrects her message, and search follows the new text.
    a.edit_message(&first, "potassium 6.1, recheck now")
        .unwrap();
    b.sync().unwrap();
    let edited = last(&mut b);
    assert_eq!(
        (edited.text.as_str(), edited.edited),
        ("potassium 6.1, recheck now", true)
    );
    assert_eq!(b.search("potass 6.1", None).unwrap().len(), 1);
    assert_eq!(b.search("potass", Some("MRN-1001")).unwrap().len(), 1);
    assert!(b.search("potass", Some("MRN-2002")).unwrap().is_empty());
    assert!(b.search("5.9", None).unwrap().is_empty());
    // Only the sender can edit or delete.
    assert!(b.edit_message(&first, "not mine").is_err());
    assert!(b.delete_message(&first).is_err());

    // A 12-lead ECG sent from memory, as the app sends a dropped file; the name loses its path.
    let ecg = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ward-client/tests/data/waveform_ecg.dcm"),
    )
    .unwrap();
    let mut uploaded = Vec::new();
    a.send_bytes(
        &chat,
        "../../exports/waveform_ecg.dcm",
        &ecg,
        &mut |done, total| {
            uploaded.push((done, total));
        },
    )
    .unwrap();
    assert!(uploaded.windows(2).all(|pair| pair[0].0 <= pair[1].0));
    let (done, total) = *uploaded.last().unwrap();
    assert_eq!(done, total);
    assert!(total > ecg.len() as u64);
    b.sync().unwrap();
    let file = last(&mut b);
    assert_eq!(file.kind, "attachment");
    assert_eq!(file.text, "waveform_ecg.dcm");
    assert_eq!(file.media_type.as_deref(), Some("application/dicom"));
    let mut downloaded = Vec::new();
    let bytes = b
        .attachment_bytes(&file.client_id, &mut |done, total| {
            downloaded.push((done, total))
        })
        .unwrap();
    assert_eq!(bytes.as_slice(), ecg.as_slice());
    assert!(!downloaded.is_empty());
    let recording = ward_client::ecg::decode(&bytes).unwrap();
    assert_eq!(recording.leads.len(), 12);
    // Opened twice: the second time from the local ciphertext, with no download.
    let mut again = Vec::new();
    b.attachment_bytes(&file.client_id, &mut |done, total| {
        again.push((done, total))
    })
    .unwrap();
    assert!(again.is_empty());
    drop(bytes);

    // Deleting reaches Bob: the text is gone from his history and from search.
    a.delete_message(&first).unwrap();
    b.sync().unwrap();
    let deleted = b
        .messages(&chat)
        .unwrap()
        .into_iter()
        .find(|message| message.client_id == first)
        .unwrap();
    assert!(deleted.deleted && deleted.text.is_empty());
    assert!(b.search("potassium", None).unwrap().is_empty());

    // The app reads a conversation a page at a time, newest first, reaching back to a search hit.
    let (page, total) = b.messages_page(&chat, 1, None).unwrap();
    assert_eq!((page.len(), total), (1, 2));
    assert_eq!(page[0].kind, "attachment");
    let (page, _) = b.messages_page(&chat, 1, Some(&first)).unwrap();
    let ids: Vec<&str> = page
        .iter()
        .map(|message| message.client_id.as_str())
        .collect();
    assert_eq!(ids, [first.as_str(), file.client_id.as_str()]);

    // The notification setting is kept with the history; message text is not the user's call.
    assert_eq!(b.user_settings().unwrap().notification_level, None);
    b.set_notification_level(NotificationLevel::Sender).unwrap();
    assert!(b
        .set_notification_level(NotificationLevel::Content)
        .is_err());
    drop(a);
    drop(b);
    let b = Client::open(&ProfileDir::new(&bob.dir).unwrap()).unwrap();
    assert_eq!(
        b.user_settings().unwrap().notification_level,
        Some(NotificationLevel::Sender)
    );
    drop(b);

    // Nothing of the ECG or the texts is on disk in clear, on either side or on the relay.
    for needle in ["Lead I (Einthoven)", "potassium"] {
        for dir in [&alice.dir, &bob.dir, &relay.dir] {
            assert_eq!(
                files_containing(dir, needle),
                Vec::<PathBuf>::new(),
                "{needle}"
            );
        }
    }
}
