//! `ward-desktop --print-policy`, as IT runs it after a rollout: JSON with each value's source on
//! stdout, and a non-zero exit naming the key and the file when the policy is invalid.
//! Debug builds read WARD_POLICY_FILE in place of /etc/ward/policy.toml.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn print_policy(policy: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ward-desktop"))
        .arg("--print-policy")
        .env("WARD_POLICY_FILE", policy)
        .output()
        .unwrap()
}

#[test]
fn the_sample_policy_prints_with_its_sources() {
    let sample =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/policy/linux/policy.toml");
    let output = print_policy(&sample);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["relay_url"]["value"],
        "https://relay.hospital.example:7443"
    );
    assert_eq!(json["relay_url"]["source"], "policy");
    assert_eq!(json["idle_lock_minutes"]["value"], 15);
    assert_eq!(json["notification_level"]["value"], "generic");
    assert!(json["policy_location"]
        .as_str()
        .unwrap()
        .ends_with("policy.toml"));
}

#[test]
fn without_a_policy_every_value_is_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let output = print_policy(&dir.path().join("policy.toml"));
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["policy_location"], serde_json::Value::Null);
    for key in [
        "notification_level",
        "screen_capture_protection",
        "attachment_max_mb",
    ] {
        assert_eq!(json[key]["source"], "default", "{key}");
    }
}

#[test]
fn an_invalid_policy_exits_non_zero_naming_key_and_file_and_unknown_keys_warn() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "notification_level = \"loud\"\n").unwrap();
    let output = print_policy(&policy);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("notification_level") && said.contains(&*policy.to_string_lossy()),
        "{said}"
    );

    std::fs::write(&policy, "retention_days = 30\ncolour = \"blue\"\n").unwrap();
    let output = print_policy(&policy);
    assert!(output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("warning") && said.contains("colour"),
        "{said}"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["retention_days"]["value"], 30);
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1);
}
