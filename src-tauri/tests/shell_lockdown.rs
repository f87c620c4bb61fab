//! The shell's lock-down, read from the files Tauri builds from: the CSP allows only Ward's own
//! origin, and the capability grants exactly one permission per command the UI can invoke, with no
//! wildcards and no default permission sets.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn read_json(relative: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The commands the UI invokes, as `app_status`, `restart_app`, …: those of the generated
/// bindings, and the two attachment commands that carry raw bytes and are invoked by hand.
fn invoked_commands() -> BTreeSet<String> {
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src");
    let mut commands = BTreeSet::new();
    for entry in std::fs::read_dir(sources).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let marker = if path.ends_with("bindings.ts") {
            "__TAURI_INVOKE"
        } else {
            "invoke"
        };
        commands.extend(
            text.split(marker)
                .skip(1)
                // A call is `invoke("name")` or `invoke<T>("name")`; an import is neither.
                .filter(|rest| rest.starts_with("(\"") || rest.starts_with('<'))
                .filter_map(|rest| rest.split('"').nth(1))
                .map(str::to_owned),
        );
    }
    commands
}

#[test]
fn the_csp_allows_only_self() {
    let config = read_json("../tauri.conf.json");
    let csp = config["app"]["security"]["csp"].as_object().unwrap();
    assert_eq!(csp["default-src"], "'self'");
    for (directive, sources) in csp {
        for source in sources.as_str().unwrap().split_whitespace() {
            let allowed = match directive.as_str() {
                // Tauri's IPC reaches the Rust side through these schemes, never the network.
                "connect-src" => ["'self'", "ipc:", "http://ipc.localhost"].contains(&source),
                // An image viewer shows bytes decrypted into memory through a blob: URL, which
                // names memory in this page, not a file or the network.
                "img-src" => ["'self'", "blob:"].contains(&source),
                _ => ["'self'", "'none'"].contains(&source),
            };
            assert!(allowed, "{directive} allows {source}");
        }
    }
    assert_eq!(config["app"]["security"]["freezePrototype"], true);
    assert_eq!(config["app"]["withGlobalTauri"], false);
    assert!(config["app"]["security"]["dangerousDisableAssetCspModification"].is_null());
}

#[test]
fn each_command_has_exactly_one_permission_and_nothing_is_wildcarded() {
    let capability = read_json("capabilities/main.json");
    assert_eq!(capability["windows"], serde_json::json!(["main"]));
    let permissions: Vec<&str> = capability["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|permission| permission.as_str().unwrap())
        .collect();

    let mut granted_commands = BTreeSet::new();
    for permission in &permissions {
        assert!(!permission.contains('*'), "wildcard: {permission}");
        assert!(
            !permission.ends_with(":default"),
            "default set: {permission}"
        );
        match permission.strip_prefix("allow-") {
            Some(command) => {
                assert!(
                    granted_commands.insert(command.replace('-', "_")),
                    "granted twice: {permission}"
                );
            }
            // Listening for Ward's status event is the only core API the UI needs.
            None => assert!(
                ["core:event:allow-listen", "core:event:allow-unlisten"].contains(permission),
                "unexpected permission {permission}"
            ),
        }
    }
    assert_eq!(granted_commands, invoked_commands());
}
