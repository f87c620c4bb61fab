//! Raises desktop notifications through notify-rust. What they say is decided by
//! `ward_client::notification` from the level in force; this module only shows them and turns a
//! click into "open that conversation". A notification that cannot be shown (no notification
//! service, no session bus) is logged without its text, and messaging carries on.

use std::sync::Mutex;

use tauri::{AppHandle, Manager};
use tauri_specta::Event;
use ward_client::client::ShownMessage;
use ward_client::notification::{notifications_for, Notification};
use ward_client::policy::NotificationLevel;

use crate::ipc::OpenChatRequested;

/// Shows notifications at the level in force.
pub struct Notifier {
    level: Mutex<NotificationLevel>,
}

impl Notifier {
    /// A notifier at `level`, the effective setting (the organization's policy, or the default)
    /// until the clinician's own choice is read at sign-in.
    pub fn new(level: NotificationLevel) -> Self {
        Self {
            level: Mutex::new(level),
        }
    }

    /// Changes the level, as the clinician chose it under the policy.
    pub fn set_level(&self, level: NotificationLevel) {
        if let Ok(mut current) = self.level.lock() {
            *current = level;
        }
    }

    /// Raises the notifications `arrived` calls for; `in_view` is the conversation on screen in
    /// the focused window, which raises none.
    pub fn announce(&self, app: &AppHandle, arrived: &[ShownMessage], in_view: Option<&str>) {
        // A poisoned lock falls back to the default: the generic text, never more.
        let level = self
            .level
            .lock()
            .map_or(NotificationLevel::Generic, |level| *level);
        for notification in notifications_for(level, arrived, in_view) {
            show(app, notification);
        }
    }
}

fn show(app: &AppHandle, notification: Notification) {
    let shown = notify_rust::Notification::new()
        .appname("Ward")
        .summary(&notification.summary)
        .body(&notification.body)
        .action("default", "Open")
        .hint(notify_rust::Hint::Category("im.received".to_owned()))
        .show();
    match shown {
        Ok(handle) => follow_click(app, handle, notification.chat_id),
        // The error names the D-Bus failure, never the notification's text.
        Err(error) => eprintln!("ward-desktop: a notification could not be shown: {error}"),
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
fn follow_click(app: &AppHandle, handle: notify_rust::NotificationHandle, chat_id: String) {
    let app = app.clone();
    // The freedesktop service reports the click on the bus; waiting for it blocks, so each
    // notification gets a thread that ends when the notification closes.
    std::thread::spawn(move || {
        handle.wait_for_action(|action| {
            if action == "default" {
                open_chat(&app, chat_id);
            }
        });
    });
}

#[cfg(not(all(unix, not(target_os = "macos"))))]
fn follow_click(_app: &AppHandle, _handle: notify_rust::NotificationHandle, _chat_id: String) {
    // Windows and macOS bring the app forward on a click themselves.
}

fn open_chat(app: &AppHandle, chat_id: String) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
    if let Err(error) = (OpenChatRequested { chat_id }).emit(app) {
        eprintln!("ward-desktop: could not notify the window: {error}");
    }
}
