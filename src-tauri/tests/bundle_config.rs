//! The installers' configuration, which only Windows and macOS machines can build: the MSI's
//! WARD_RELAY_URL property must land where the app reads policy, and the version must come from
//! the one place it is set (Cargo's workspace version), never from tauri.conf.json.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

fn config() -> serde_json::Value {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tauri.conf.json"))
            .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Paths in tauri.conf.json are relative to src-tauri.
fn from_config(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn the_version_is_set_only_in_cargo() {
    let config = config();
    assert!(
        config.get("version").is_none(),
        "tauri.conf.json must not set a version"
    );
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from_config("../ui/package.json")).unwrap())
            .unwrap();
    assert!(
        package.get("version").is_none(),
        "ui/package.json must not set a version"
    );
}

#[test]
fn the_msi_writes_the_relay_url_property_as_policy() {
    let config = config();
    let wix = &config["bundle"]["windows"]["wix"];
    let fragments = wix["fragmentPaths"].as_array().unwrap();
    let references: Vec<&str> = wix["componentRefs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap())
        .collect();
    assert_eq!(fragments.len(), 1);
    let fragment = std::fs::read_to_string(from_config(fragments[0].as_str().unwrap())).unwrap();
    assert!(fragment.contains(r#"<Property Id="WARD_RELAY_URL" Secure="yes" />"#));
    for reference in &references {
        assert!(
            fragment.contains(&format!(r#"<Component Id="{reference}""#)),
            "{reference}"
        );
    }
    assert!(fragment.contains(r#"Root="HKLM" Key="Software\Policies\Ward""#));
    assert!(fragment.contains(r#"Name="relay_url" Type="string" Value="[WARD_RELAY_URL]""#));
    // Nothing is written unless IT passed the property.
    assert!(fragment.contains("<Condition><![CDATA[WARD_RELAY_URL]]></Condition>"));
}

#[test]
fn every_installer_is_configured_and_linux_ships_the_policy_sample() {
    let config = config();
    let targets: Vec<&str> = config["bundle"]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|value| value.as_str().unwrap())
        .collect();
    for target in ["deb", "rpm", "msi", "dmg"] {
        assert!(targets.contains(&target), "{target}");
    }
    assert!(config["bundle"]["macOS"]["dmg"].is_object());
    for format in ["deb", "rpm"] {
        let sample = config["bundle"]["linux"][format]["files"]
            ["/usr/share/doc/ward/policy.toml.sample"]
            .as_str()
            .unwrap();
        assert!(from_config(sample).is_file(), "{format}: {sample}");
    }
}
