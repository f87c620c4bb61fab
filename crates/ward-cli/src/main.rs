//! `ward`: a headless Ward client for tests, load runs and integrations. Every command works on
//! one profile folder (`--data-dir`), whose keys are in this computer's keychain exactly as the
//! desktop app keeps them.
//!
//! Output is for scripts as much as for people: `--json` prints one JSON object per line, and
//! errors go to stderr as one sentence, with exit status 1.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ward_client::client::ShownMessage;
use ward_client::profile::ProfileDir;
use ward_client::{Client, ClientError, SyncReport};

/// A headless Ward client.
#[derive(Debug, Parser)]
#[command(name = "ward", version)]
struct Cli {
    /// The profile folder: its history store, attachments and keychain entries.
    #[arg(long, global = true, env = "WARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Reach the relay at this address for this run instead of the one enrolled with.
    #[arg(long, global = true, env = "WARD_RELAY_URL")]
    relay_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enrolls this profile with an invite code from IT.
    Enroll {
        /// The relay's address, such as https://ward.hospital.org.
        #[arg(long)]
        relay: String,
        /// The invite code.
        #[arg(long)]
        invite: String,
        /// Your name as IT entered it on the invite; a different name is reported, not used.
        #[arg(long)]
        name: Option<String>,
        /// Trust only the CA certificates in this PEM file for the relay's HTTPS (otherwise this
        /// computer's trust store); it is kept for later runs.
        #[arg(long)]
        relay_ca: Option<PathBuf>,
    },
    /// Lists the clinicians in the directory.
    Contacts {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Care teams: create, list, add and remove members.
    Chat {
        #[command(subcommand)]
        command: ChatCommand,
    },
    /// Sends a text to a care team or to a clinician by name.
    Send {
        /// A care team's name, or a clinician's name for a 1:1 chat.
        #[arg(long)]
        to: String,
        /// The text.
        #[arg(required_unless_present = "lines")]
        text: Option<String>,
        /// Send each line of standard input as one message, then wait until the relay has all
        /// of them.
        #[arg(long, conflicts_with = "text")]
        lines: bool,
    },
    /// Sends a file, encrypted, to a care team or a clinician.
    SendFile {
        /// A care team's name, or a clinician's name for a 1:1 chat.
        #[arg(long)]
        to: String,
        /// The file.
        path: PathBuf,
    },
    /// Prints messages not shown before, in each conversation's order.
    Receive {
        /// Keep running and print messages as they arrive.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Prints a conversation's whole history, in its order.
    History {
        /// A care team's name, or a clinician's name for a 1:1 chat.
        #[arg(long)]
        chat: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Decrypts a received attachment into a new file.
    FetchFile {
        /// The message's client id, as `receive` prints it.
        message_id: String,
        /// Where to write the file; it must not exist.
        #[arg(long)]
        out: PathBuf,
    },
    /// Shows the safety number with a clinician, to compare in person.
    SafetyNumber {
        /// The clinician's name.
        name: String,
        /// Marks their current key as verified.
        #[arg(long)]
        mark_verified: bool,
    },
    /// Sends the outbox and fetches new messages, without printing them.
    Sync,
}

#[derive(Debug, Subcommand)]
enum ChatCommand {
    /// Creates a care team.
    Create {
        /// The team's name.
        #[arg(long)]
        name: String,
        /// Members by name, comma-separated.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        /// The patient the team is about.
        #[arg(long)]
        patient_tag: Option<String>,
    },
    /// Lists conversations.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Adds members to a care team.
    Add {
        /// The team.
        #[arg(long)]
        chat: String,
        /// Members by name, comma-separated.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
    /// Replaces this device's keys in a conversation.
    UpdateKeys {
        /// The conversation.
        #[arg(long)]
        chat: String,
    },
    /// Removes members from a care team.
    Remove {
        /// The team.
        #[arg(long)]
        chat: String,
        /// Members by name, comma-separated.
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
    },
}

/// Why the CLI stopped.
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    Usage(String),
    Output(std::io::Error),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        Self::Client(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::Output(error)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(error: serde_json::Error) -> Self {
        Self::Output(error.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let text = match failure {
                Failure::Client(error) => error.to_string(),
                Failure::Usage(text) => text,
                // A closed pipe (`ward receive | head`) is how a reader says it has enough.
                Failure::Output(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {
                    return ExitCode::SUCCESS
                }
                Failure::Output(error) => format!("could not write the output: {error}"),
            };
            eprintln!("ward: {text}");
            ExitCode::FAILURE
        }
    }
}

fn profile_dir(cli: &Cli) -> Result<ProfileDir, Failure> {
    match &cli.data_dir {
        Some(dir) => ProfileDir::new(dir.clone())
            .map_err(|error| Failure::Usage(format!("the data folder cannot be used: {error}"))),
        None => ProfileDir::default_location().ok_or_else(|| {
            Failure::Usage("no data folder: pass --data-dir or set WARD_DATA_DIR".to_owned())
        }),
    }
}

fn warn_rejected(report: &SyncReport) {
    for rejected in &report.rejected {
        eprintln!("ward: warning: {rejected}");
    }
}

fn line(out: &mut impl Write, text: &str) -> Result<(), Failure> {
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    Ok(())
}

fn print_messages(
    out: &mut impl Write,
    messages: &[ShownMessage],
    json: bool,
) -> Result<(), Failure> {
    for message in messages {
        if json {
            line(out, &serde_json::to_string(message)?)?;
        } else if message.kind == "attachment" {
            line(
                out,
                &format!(
                    "[{}] {}: file {} ({} bytes) id {}",
                    message.chat,
                    message.sender,
                    message.text,
                    message.size.unwrap_or(0),
                    message.client_id
                ),
            )?;
        } else {
            line(
                out,
                &format!("[{}] {}: {}", message.chat, message.sender, message.text),
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

fn run(cli: Cli) -> Result<(), Failure> {
    let dir = profile_dir(&cli)?;
    let relay_url = cli.relay_url.clone();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Enroll {
            relay,
            invite,
            name,
            relay_ca,
        } => {
            let relay_ca = relay_ca
                .map(|path| {
                    std::fs::read_to_string(&path).map_err(|error| {
                        Failure::Usage(format!("cannot read {}: {error}", path.display()))
                    })
                })
                .transpose()?;
            let client = Client::enroll(&dir, &relay, &invite, relay_ca.as_deref())?;
            let account = client.account();
            if let Some(name) = name {
                if !name.trim().eq_ignore_ascii_case(account.name.trim()) {
                    eprintln!(
                        "ward: note: IT enrolled you as \"{}\"; that is the name others see",
                        account.name
                    );
                }
            }
            line(
                &mut out,
                &format!("Enrolled as {} ({}).", account.name, account.role),
            )?;
        }
        Command::Contacts { json } => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            client.refresh_contacts()?;
            for contact in client.contacts()? {
                if json {
                    line(&mut out, &serde_json::to_string(&contact)?)?;
                } else {
                    line(
                        &mut out,
                        &format!(
                            "{}{} ({}){}",
                            contact.name,
                            if contact.me { " (you)" } else { "" },
                            contact.role,
                            if contact.key_changed {
                                ", KEY CHANGED: compare safety numbers before trusting it"
                            } else if contact.verified {
                                ", verified"
                            } else {
                                ""
                            }
                        ),
                    )?;
                }
            }
        }
        Command::Chat { command } => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            match command {
                ChatCommand::Create {
                    name,
                    members,
                    patient_tag,
                } => {
                    if name.trim().is_empty() {
                        return Err(Failure::Usage("a care team needs a name".to_owned()));
                    }
                    let group = client.create_chat(&name, &members, patient_tag.as_deref())?;
                    line(&mut out, &hex_id(group.as_bytes()))?;
                }
                ChatCommand::List { json } => {
                    if let Err(error) = client.sync().map(|report| warn_rejected(&report)) {
                        eprintln!("ward: showing what this device has: {error}");
                    }
                    for chat in client.chats()? {
                        if json {
                            line(&mut out, &serde_json::to_string(&chat)?)?;
                        } else {
                            line(
                                &mut out,
                                &format!("{} ({})", chat.name, chat.members.join(", ")),
                            )?;
                        }
                    }
                }
                ChatCommand::Add { chat, members } => {
                    client.sync().map(|report| warn_rejected(&report))?;
                    client.add_members(&chat, &members)?;
                }
                ChatCommand::Remove { chat, members } => {
                    client.sync().map(|report| warn_rejected(&report))?;
                    client.remove_members(&chat, &members)?;
                }
                ChatCommand::UpdateKeys { chat } => {
                    if let Err(error) = client.sync().map(|report| warn_rejected(&report)) {
                        eprintln!("ward: continuing offline: {error}");
                    }
                    client.update_keys(&chat)?;
                }
            }
            report_queued(&client)?;
        }
        Command::Send { to, text, lines } => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            match text {
                Some(text) if !lines => {
                    let id = client.send_text(&to, &text)?;
                    line(&mut out, &hex_id(id.as_bytes()))?;
                    report_queued(&client)?;
                }
                _ => send_lines(&mut client, &to, &mut out)?,
            }
        }
        Command::SendFile { to, path } => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            let id = client.send_file(&to, &path)?;
            line(&mut out, &hex_id(id.as_bytes()))?;
            report_queued(&client)?;
        }
        Command::Receive { follow, json } => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            if follow {
                follow_messages(&mut client, &mut out, json)?;
            } else {
                let report = client.sync()?;
                warn_rejected(&report);
                let messages = client.unshown_messages()?;
                print_messages(&mut out, &messages, json)?;
                client.mark_shown(&messages)?;
            }
        }
        Command::History { chat, json } => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            if let Err(error) = client.sync().map(|report| warn_rejected(&report)) {
                eprintln!("ward: showing what this device has: {error}");
            }
            let messages = client.messages(&chat)?;
            print_messages(&mut out, &messages, json)?;
        }
        Command::FetchFile {
            message_id,
            out: path,
        } => {
            if path.exists() {
                return Err(Failure::Usage(format!(
                    "{} exists already; choose a new file name",
                    path.display()
                )));
            }
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            if let Err(error) = client.sync().map(|report| warn_rejected(&report)) {
                eprintln!("ward: continuing with what this device has: {error}");
            }
            let size = client.fetch_file(&message_id, &path)?;
            line(
                &mut out,
                &format!("{size} bytes written to {}", path.display()),
            )?;
        }
        Command::SafetyNumber {
            name,
            mark_verified,
        } => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            let groups = client.safety_number(&name)?;
            for row in groups.chunks(4) {
                line(&mut out, &row.join(" "))?;
            }
            if mark_verified {
                client.mark_verified(&name)?;
                line(&mut out, &format!("{name} is marked verified."))?;
            }
        }
        Command::Sync => {
            let mut client = Client::open_via(&dir, relay_url.as_deref())?;
            let report = client.sync()?;
            warn_rejected(&report);
            line(
                &mut out,
                &format!(
                    "sent {}, received {}, joined {}, queued {}",
                    report.sent, report.received, report.joined, report.queued
                ),
            )?;
        }
    }
    Ok(())
}

fn hex_id(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn report_queued(client: &Client) -> Result<(), Failure> {
    let queued = client.queued()?;
    if queued > 0 {
        eprintln!(
            "ward: the relay could not be reached; {queued} item(s) wait in the outbox and are sent \
             at the next sync"
        );
    }
    Ok(())
}

/// Sends each line of standard input, then keeps syncing (with backoff, for at most
/// [`DRAIN_LIMIT`]) until the outbox is empty.
fn send_lines(client: &mut Client, to: &str, out: &mut impl Write) -> Result<(), Failure> {
    const DRAIN_LIMIT: Duration = Duration::from_secs(300);
    // Lines that arrive together are encrypted and queued together, in one transaction; a line
    // with nothing behind it goes out at once.
    const BATCH: usize = 100;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, std::io::stdin());
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let mut text = String::new();
        let read = std::io::BufRead::read_line(&mut reader, &mut text)?;
        if read > 0 {
            let text = text.strip_suffix('\n').unwrap_or(&text);
            batch.push(text.strip_suffix('\r').unwrap_or(text).to_owned());
        }
        let send_now = read == 0 || batch.len() >= BATCH || reader.buffer().is_empty();
        if send_now && !batch.is_empty() {
            for id in client.send_texts(to, &batch)? {
                line(out, &hex_id(id.as_bytes()))?;
            }
            out.flush()?;
            batch.clear();
        }
        if read == 0 {
            break;
        }
    }
    out.flush()?;
    let started = std::time::Instant::now();
    let mut backoff = Duration::from_millis(100);
    while client.queued()? > 0 {
        if started.elapsed() > DRAIN_LIMIT {
            return Err(Failure::Usage(format!(
                "the relay could not be reached; {} message(s) wait in the outbox",
                client.queued()?
            )));
        }
        match client.sync() {
            Ok(report) => warn_rejected(&report),
            Err(ClientError::Relay(error)) if error.is_transient() => {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Prints messages as they arrive until the process is stopped. The relay's push socket says when
/// to sync; without it the client polls. A relay that goes away is retried with backoff.
fn follow_messages(client: &mut Client, out: &mut impl Write, json: bool) -> Result<(), Failure> {
    const POLL: Duration = Duration::from_secs(20);
    const FIRST_BACKOFF: Duration = Duration::from_millis(250);
    const MAX_BACKOFF: Duration = Duration::from_secs(15);
    let mut backoff = FIRST_BACKOFF;
    let mut push = None;
    loop {
        match client.sync() {
            Ok(report) => {
                warn_rejected(&report);
                backoff = FIRST_BACKOFF;
            }
            Err(ClientError::Relay(error)) if error.is_transient() => {
                push = None;
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(error) => return Err(error.into()),
        }
        let messages = client.unshown_messages()?;
        print_messages(out, &messages, json)?;
        client.mark_shown(&messages)?;
        if push.is_none() {
            push = client.push_socket().ok();
        }
        match push.as_mut() {
            Some(socket) => {
                if socket.wait(POLL).is_err() {
                    push = None;
                }
            }
            None => std::thread::sleep(backoff.max(Duration::from_secs(1))),
        }
    }
}
