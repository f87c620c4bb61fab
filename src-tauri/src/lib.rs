//! Ward's desktop app: a thin Tauri shell over `ward-client`.
//!
//! It parses the launch options, opens the window, opens the clinician's profile off the main
//! thread, and answers the UI through the typed commands in [`ipc`]. It holds no business logic
//! and no secrets of its own: keys stay in `ward-client`'s types and the OS keychain.

pub mod ipc;
pub mod launch;

pub mod notifications;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder, WindowEvent};
use tauri_specta::Event;
use ward_client::live_sync::{LiveEvent, LiveSync};
use ward_client::policy::{EffectiveSettings, Policy, SettingSource, UserSettings};
use ward_client::{open_profile, Client, ProfileDir};

use crate::ipc::{
    AccountView, AppStatus, ConnectionStatus, EnrollmentDefaults, HistoryChanged, IpcError,
    ProfileStatus, SettingView, ShellState,
};
use crate::launch::{LaunchOptions, USAGE};

/// The product name shown in the window and on the first screen.
pub const APP_NAME: &str = "Ward";

/// Runs the desktop app until its window closes.
pub fn run() -> ExitCode {
    STARTED.get_or_init(std::time::Instant::now);
    let options =
        match LaunchOptions::parse(std::env::args_os().skip(1), |name| std::env::var_os(name)) {
            Ok(options) => options,
            Err(error) => {
                eprintln!("ward-desktop: {}\n\n{USAGE}", error.0);
                return ExitCode::from(2);
            }
        };
    if options.help {
        eprint!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if options.version {
        eprintln!("{APP_NAME} {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    // Policy is read before anything else: Ward does not run half-configured. An invalid policy
    // stops it; the window still opens, to tell the clinician to call IT instead of vanishing.
    let (policy, policy_error) = match Policy::load_machine() {
        Ok(policy) => (policy, None),
        Err(error) => {
            eprintln!("ward-desktop: {error}");
            if options.print_policy {
                return ExitCode::FAILURE;
            }
            (Policy::default(), Some(error))
        }
    };
    for warning in &policy.warnings {
        eprintln!("ward-desktop: warning: {warning}");
    }
    let settings = EffectiveSettings::resolve(&policy, &UserSettings::default());
    if options.print_policy {
        return print_policy(&settings);
    }
    // Without a usable policy, the safe choice.
    let content_protection = policy_error.is_some() || content_protection(&settings, &options);
    let stopped = policy_error.is_some();
    let profile_dir = match profile_dir(&options) {
        Some(dir) => dir,
        None => {
            eprintln!(
                "ward-desktop: cannot find a data directory for the default profile; \
                 pass --data-dir DIR"
            );
            return ExitCode::from(2);
        }
    };

    let title = window_title(&options, &profile_dir);
    let bindings = ipc::bindings_builder();
    let initial = AppStatus {
        app_name: APP_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        keychain_backend: keychain_backend().to_owned(),
        data_dir: profile_dir.root().display().to_string(),
        profile: match &policy_error {
            Some(error) => ProfileStatus::policy_invalid(error),
            None => ProfileStatus::Opening,
        },
        settings: ipc::SettingView::list(&settings),
        idle_lock_minutes: settings.idle_lock_minutes.value,
        enrollment: EnrollmentDefaults {
            relay_locked: settings.relay_url.source == SettingSource::Policy,
            relay_url: settings
                .relay_url
                .value
                .clone()
                .or_else(|| options.relay_url.clone()),
            invite: options.invite.clone(),
        },
    };
    let notification_level = settings.notification_level.value;
    let result = tauri::Builder::default()
        .manage(ShellState {
            status: Mutex::new(initial),
            profile_dir: Some(profile_dir.clone()),
            profile: Mutex::new(None),
            client: Arc::new(Mutex::new(None)),
            live: Mutex::new(None),
            viewing: Mutex::new(None),
            focused: AtomicBool::new(true),
        })
        .manage(notifications::Notifier::new(notification_level))
        .plugin(tauri_plugin_dialog::init())
        .invoke_handler({
            let typed = bindings.invoke_handler();
            // Attachment bytes cross the bridge raw, not as JSON arrays of numbers; specta has no
            // type for that, so these two are plain commands beside the typed set.
            let raw: fn(tauri::ipc::Invoke<tauri::Wry>) -> bool =
                tauri::generate_handler![ipc::send_attachment, ipc::open_attachment];
            move |invoke: tauri::ipc::Invoke<tauri::Wry>| match invoke.message.command() {
                "send_attachment" | "open_attachment" => raw(invoke),
                _ => typed(invoke),
            }
        })
        .setup(move |app| {
            bindings.mount_events(app);
            let window =
                WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
                    .title(&title)
                    .inner_size(1100.0, 760.0)
                    .min_inner_size(640.0, 480.0)
                    // Dropped files reach the page as File objects (bytes), like picked and
                    // pasted ones, rather than as paths on disk.
                    .disable_drag_drop_handler()
                    .content_protected(content_protection)
                    .incognito(ephemeral_webview())
                    .build()?;
            #[cfg(target_os = "linux")]
            lighten_webview(&window);
            let handle = app.handle().clone();
            window.on_window_event(move |event| {
                if let WindowEvent::Focused(focused) = event {
                    handle
                        .state::<ShellState>()
                        .focused
                        .store(*focused, Ordering::Relaxed);
                }
            });
            if !stopped {
                let handle = app.handle().clone();
                // The keychain may prompt or wait on D-Bus; the window must not freeze meanwhile.
                std::thread::spawn(move || open_and_report(&handle, &profile_dir));
            }
            Ok(())
        })
        .run(tauri::generate_context!());
    match result {
        Ok(()) if stopped => ExitCode::FAILURE,
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ward-desktop: the window could not be started: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The flag and the environment are the user's choice; the organization's policy wins.
fn content_protection(settings: &EffectiveSettings, options: &LaunchOptions) -> bool {
    match settings.screen_capture_protection.source {
        SettingSource::Policy => settings.screen_capture_protection.value,
        _ => options.content_protection,
    }
}

/// `--print-policy`: what IT checks after a rollout. JSON on stdout, so it can be piped to jq.
fn print_policy(settings: &EffectiveSettings) -> ExitCode {
    match serde_json::to_string_pretty(settings) {
        Ok(json) => {
            #[allow(clippy::print_stdout)]
            {
                println!("{json}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ward-desktop: the policy could not be printed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// WebKit keeps localStorage, IndexedDB and caches as plain SQLite files, so the page runs in an
/// ephemeral context and nothing it stores reaches the disk. The one exception is a WebDriver session
/// (tauri-driver sets TAURI_WEBVIEW_AUTOMATION): WebKitGTK allows automation only on the shared
/// context, and an ephemeral webview gets one of its own. The end-to-end test then checks the
/// stricter case: with persistent storage available, the UI still writes none.
fn ephemeral_webview() -> bool {
    std::env::var("TAURI_WEBVIEW_AUTOMATION").as_deref() != Ok("true")
}

/// "Ward" for the default profile; with --data-dir the folder's name is added, so two instances
/// side by side can be told apart.
fn window_title(options: &LaunchOptions, dir: &ProfileDir) -> String {
    match (&options.data_dir, dir.root().file_name()) {
        (Some(_), Some(name)) => format!("{APP_NAME} ({})", name.to_string_lossy()),
        _ => APP_NAME.to_owned(),
    }
}

fn profile_dir(options: &LaunchOptions) -> Option<ProfileDir> {
    match &options.data_dir {
        Some(dir) => ProfileDir::new(dir).ok(),
        None => ProfileDir::default_location(),
    }
}

fn open_and_report(app: &AppHandle, dir: &ProfileDir) {
    let outcome = open_profile(dir);
    if let Err(error) = &outcome {
        // The code and the cause name no secret and no patient; they are what IT needs.
        eprintln!("ward-desktop: profile not opened: {error}");
    }
    let mut profile_status = ProfileStatus::from_outcome(&outcome);
    let state = app.state::<ShellState>();
    if let Ok(profile) = outcome {
        match Client::is_enrolled(&profile.store) {
            Ok(true) => match Client::resume(dir, profile, None) {
                Ok(client) => {
                    if let ProfileStatus::Ready { account, .. } = &mut profile_status {
                        *account = Some(AccountView::of(&client));
                    }
                    set_profile_status(app, profile_status);
                    start_live_sync(app, client);
                    return;
                }
                Err(error) => {
                    eprintln!("ward-desktop: profile not opened: {error}");
                    profile_status = ProfileStatus::Failed {
                        error: IpcError::from(error),
                        keychain_available: Some(true),
                    };
                }
            },
            Ok(false) => {
                if let Ok(mut slot) = state.profile.lock() {
                    *slot = Some(profile);
                }
            }
            Err(error) => {
                profile_status = ProfileStatus::Failed {
                    error: IpcError::from(error),
                    keychain_available: Some(true),
                };
            }
        }
    }
    set_profile_status(app, profile_status);
}

fn set_profile_status(app: &AppHandle, profile: ProfileStatus) {
    let state = app.state::<ShellState>();
    let status = match state.status.lock() {
        Ok(mut status) => {
            status.profile = profile;
            status.clone()
        }
        Err(_) => return,
    };
    if let Err(error) = status.emit(app) {
        eprintln!("ward-desktop: could not notify the window: {error}");
    }
}

/// The profile has just enrolled: the status shows the clinician, and syncing starts.
pub(crate) fn signed_in(app: &AppHandle, client: Client, account: AccountView) {
    let state = app.state::<ShellState>();
    let profile = state
        .status
        .lock()
        .ok()
        .map(|status| status.profile.clone());
    if let Some(ProfileStatus::Ready { store, .. }) = profile {
        set_profile_status(
            app,
            ProfileStatus::Ready {
                store,
                account: Some(account),
            },
        );
    }
    start_live_sync(app, client);
}

/// Shares the client with the commands and starts the loop that keeps it in step with the relay;
/// its events become UI events and notifications.
fn start_live_sync(app: &AppHandle, client: Client) {
    let state = app.state::<ShellState>();
    if let Ok(mut slot) = state.client.lock() {
        *slot = Some(client);
    }
    apply_user_settings(app);
    let handle = app.clone();
    let live = LiveSync::start(Arc::clone(&state.client), move |event| {
        report_live_event(&handle, event);
    });
    let stored = state.live.lock().map(|mut slot| *slot = Some(live));
    if stored.is_err() {
        eprintln!("ward-desktop: the sync loop could not be kept");
    }
}

/// Puts the clinician's saved settings in force under the policy: the notifier's level and the
/// settings list the window shows. Their settings live in the encrypted history, so they apply
/// from sign-in on.
pub(crate) fn apply_user_settings(app: &AppHandle) {
    let state = app.state::<ShellState>();
    let settings = {
        let Ok(slot) = state.client.lock() else {
            return;
        };
        let Some(client) = slot.as_ref() else {
            return;
        };
        let user = client.user_settings().unwrap_or_default();
        EffectiveSettings::resolve(client.policy(), &user)
    };
    app.state::<notifications::Notifier>()
        .set_level(settings.notification_level.value);
    let status = match state.status.lock() {
        Ok(mut status) => {
            status.settings = SettingView::list(&settings);
            status.clone()
        }
        Err(_) => return,
    };
    if let Err(error) = status.emit(app) {
        eprintln!("ward-desktop: could not notify the window: {error}");
    }
}

fn report_live_event(app: &AppHandle, event: LiveEvent) {
    let emitted = match event {
        LiveEvent::Connection { online, queued } => ConnectionStatus {
            online,
            queued: u32::try_from(queued).unwrap_or(u32::MAX),
            problem: None,
        }
        .emit(app),
        LiveEvent::Failed(problem) => ConnectionStatus {
            online: false,
            queued: 0,
            problem: Some(problem),
        }
        .emit(app),
        LiveEvent::Arrived(messages) => {
            let in_view = app.state::<ShellState>().in_view();
            app.state::<notifications::Notifier>()
                .announce(app, &messages, in_view.as_deref());
            HistoryChanged {
                arrived: u32::try_from(messages.len()).unwrap_or(u32::MAX),
            }
            .emit(app)
        }
        LiveEvent::HistoryChanged => HistoryChanged { arrived: 0 }.emit(app),
    };
    if let Err(error) = emitted {
        eprintln!("ward-desktop: could not notify the window: {error}");
    }
}

/// Ward's page is text, lists and a few canvases: GPU compositing buys it nothing, and where
/// there is no GPU (ward PCs on VDI, CI) WebKit composites in software GL for about 100 MB more
/// per window (docs/BENCHMARKS.md). The page is one document that never navigates, so WebKit's
/// back-forward and memory caches are sized for a document viewer.
#[cfg(target_os = "linux")]
fn lighten_webview(window: &tauri::WebviewWindow) {
    use webkit2gtk::{
        CacheModel, HardwareAccelerationPolicy, SettingsExt, WebContextExt, WebViewExt,
    };
    let applied = window.with_webview(|webview| {
        let view = webview.inner();
        if let Some(settings) = WebViewExt::settings(&view) {
            if !keep_compositing() {
                settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
            }
        }
        if let Some(context) = view.context() {
            context.set_cache_model(CacheModel::DocumentViewer);
        }
    });
    if let Err(error) = applied {
        eprintln!("ward-desktop: webview settings not applied: {error}");
    }
}

/// Whether the webview keeps WebKit's compositing: only under WebDriver (tauri-driver sets
/// TAURI_WEBVIEW_AUTOMATION), whose screenshots stall without it in WebKitGTK 2.50, and not when
/// a benchmark (WARD_BENCH=1) measures the app as clinicians run it.
#[cfg(target_os = "linux")]
fn keep_compositing() -> bool {
    std::env::var("TAURI_WEBVIEW_AUTOMATION").as_deref() == Ok("true")
        && std::env::var_os("WARD_BENCH").is_none()
}

/// When the process started, for the start-up benchmark.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// With WARD_BENCH=1, reports once on stderr how long the window took to show its first
/// screen: the page asks for the status right after its first render. `scripts/bench-desktop`
/// reads it; without the variable nothing is printed.
pub(crate) fn report_first_render() {
    static REPORTED: std::sync::Once = std::sync::Once::new();
    if std::env::var_os("WARD_BENCH").is_none() {
        return;
    }
    REPORTED.call_once(|| {
        if let Some(started) = STARTED.get() {
            eprintln!(
                "ward-desktop: first render after {} ms",
                started.elapsed().as_millis()
            );
        }
    });
}

fn keychain_backend() -> &'static str {
    if cfg!(target_os = "macos") {
        "macOS Keychain"
    } else if cfg!(target_os = "windows") {
        "Windows Credential Manager"
    } else {
        "Secret Service (GNOME Keyring or KWallet)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launched(args: &[&str]) -> LaunchOptions {
        LaunchOptions::parse(args.iter().map(std::ffi::OsString::from), |_| None).unwrap()
    }

    #[test]
    fn screen_capture_policy_beats_the_command_line() {
        let free = EffectiveSettings::resolve(&Policy::default(), &UserSettings::default());
        assert!(content_protection(&free, &launched(&[])));
        assert!(!content_protection(
            &free,
            &launched(&["--content-protection", "off"])
        ));
        let managed = EffectiveSettings::resolve(
            &Policy::from_toml("screen_capture_protection = true", "policy.toml").unwrap(),
            &UserSettings::default(),
        );
        assert!(content_protection(
            &managed,
            &launched(&["--content-protection", "off"])
        ));
        let managed_off = EffectiveSettings::resolve(
            &Policy::from_toml("screen_capture_protection = false", "policy.toml").unwrap(),
            &UserSettings::default(),
        );
        assert!(!content_protection(&managed_off, &launched(&[])));
    }
}
