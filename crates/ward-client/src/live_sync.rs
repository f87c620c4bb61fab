//! Keeps an open [`Client`] in step with the relay while an app runs: it syncs when the relay's
//! push socket says so (or on a timer where there is no push socket), retries with backoff while
//! the relay cannot be reached, and reports what changed through a callback.
//!
//! The client is shared with the app's commands behind one mutex. The loop holds it only for a
//! sync round, never while it waits, so a clinician's action is never stuck behind a quiet socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{Client, ClientError, ShownMessage};
use crate::relay_client::PushSocket;

/// The client the app's commands and the loop share; `None` until the profile has enrolled.
pub type SharedClient = Arc<Mutex<Option<Client>>>;

/// How long a push socket is trusted to stay quiet before the loop syncs anyway.
const PUSH_QUIET: Duration = Duration::from_secs(25);
/// How often a relay without a push socket (TLS relays today) is polled.
const POLL: Duration = Duration::from_secs(5);
/// How often a wake-up from the app is checked for while waiting on the push socket.
const WAKE_CHECK: Duration = Duration::from_millis(500);
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// What the loop reports.
#[derive(Debug)]
pub enum LiveEvent {
    /// Whether the last attempt reached the relay, and how much waits in the outbox.
    Connection {
        /// The relay answered.
        online: bool,
        /// Messages and changes not yet accepted by the relay.
        queued: usize,
    },
    /// Messages that arrived since the last report, each reported once.
    Arrived(Vec<ShownMessage>),
    /// The history changed (sent, received, joined, receipts): lists should be read again.
    HistoryChanged,
    /// A sync failed in a way that retrying alone will not fix; the text is for the clinician and
    /// holds no message content.
    Failed(String),
}

/// The running loop; dropping it stops the loop after its current wait.
pub struct LiveSync {
    wake: mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
}

impl LiveSync {
    /// Starts the loop on its own thread.
    pub fn start(client: SharedClient, on_event: impl FnMut(LiveEvent) + Send + 'static) -> Self {
        let (wake, woken) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        std::thread::spawn(move || run(&client, &woken, &stopping, on_event));
        Self { wake, stop }
    }

    /// Syncs now instead of at the next push or timer: after a send that stayed queued, or when
    /// the clinician asks to retry.
    pub fn wake(&self) {
        let _ = self.wake.send(());
    }
}

impl Drop for LiveSync {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.wake.send(());
    }
}

/// One round's result, gathered under the lock and reported after it is released.
struct Round {
    changed: bool,
    arrived: Vec<ShownMessage>,
    queued: usize,
}

fn round(client: &mut Client, push: &mut Option<PushSocket>) -> Result<Round, ClientError> {
    let report = client.sync()?;
    // Receipts are a courtesy to the senders: one that cannot go now goes with a later round.
    match client.send_delivery_receipts() {
        Err(ClientError::Relay(error)) if error.is_transient() => {}
        other => other?,
    }
    let arrived = client.unshown_messages()?;
    client.mark_shown(&arrived)?;
    if push.is_none() {
        *push = client.push_socket().ok();
    }
    Ok(Round {
        changed: report.sent + report.received + report.joined > 0
            || !report.rejected.is_empty()
            || !arrived.is_empty(),
        arrived,
        queued: report.queued,
    })
}

fn run(
    client: &SharedClient,
    woken: &mpsc::Receiver<()>,
    stop: &AtomicBool,
    mut on_event: impl FnMut(LiveEvent),
) {
    let mut backoff = FIRST_BACKOFF;
    let mut push: Option<PushSocket> = None;
    let mut last_connection: Option<(bool, usize)> = None;
    let mut report_connection =
        |online: bool, queued: usize, on_event: &mut dyn FnMut(LiveEvent)| {
            if last_connection != Some((online, queued)) {
                last_connection = Some((online, queued));
                on_event(LiveEvent::Connection { online, queued });
            }
        };
    while !stop.load(Ordering::Relaxed) {
        let outcome = match client.lock() {
            Ok(mut slot) => slot.as_mut().map(|client| {
                round(client, &mut push).map_err(|error| (error, client.queued().unwrap_or(0)))
            }),
            // A command panicked while holding the client; nothing more can be done safely.
            Err(_) => return,
        };
        let wait = match outcome {
            None => POLL,
            Some(Ok(round)) => {
                backoff = FIRST_BACKOFF;
                report_connection(true, round.queued, &mut on_event);
                if round.changed {
                    if !round.arrived.is_empty() {
                        on_event(LiveEvent::Arrived(round.arrived));
                    }
                    on_event(LiveEvent::HistoryChanged);
                }
                if round.queued > 0 {
                    // Something is still waiting (a commit race, a busy relay): go round again.
                    FIRST_BACKOFF
                } else if let Some(socket) = push.as_mut() {
                    if !wait_for_push(socket, woken, stop) {
                        push = None;
                    }
                    continue;
                } else {
                    POLL
                }
            }
            Some(Err((ClientError::Relay(error), queued))) if error.is_transient() => {
                push = None;
                report_connection(false, queued, &mut on_event);
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
            Some(Err((error, queued))) => {
                push = None;
                report_connection(false, queued, &mut on_event);
                on_event(LiveEvent::Failed(error.to_string()));
                MAX_BACKOFF
            }
        };
        match woken.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Waits for a push, a wake-up or [`PUSH_QUIET`]; false when the socket closed.
fn wait_for_push(socket: &mut PushSocket, woken: &mpsc::Receiver<()>, stop: &AtomicBool) -> bool {
    let mut waited = Duration::ZERO;
    while waited < PUSH_QUIET && !stop.load(Ordering::Relaxed) {
        if !matches!(woken.try_recv(), Err(mpsc::TryRecvError::Empty)) {
            return true;
        }
        match socket.wait(WAKE_CHECK) {
            Ok(true) => return true,
            Ok(false) => waited += WAKE_CHECK,
            Err(_) => return false,
        }
    }
    true
}
