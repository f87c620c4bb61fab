//! Managed policy: every key, each platform's form (the samples IT copies from
//! packaging/policy), malformed files, and how policy beats the user's settings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

use ward_client::policy::{
    EffectiveSettings, NotificationLevel, Policy, PolicyError, RawValue, SettingSource,
    UserSettings, POLICY_KEYS,
};

const FILE: &str = "/etc/ward/policy.toml";

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::from_toml(text, FILE)
}

/// The error for `text`, which must name the key and the file.
fn invalid(text: &str, key: &str) -> String {
    match parse(text) {
        Err(error @ PolicyError::Invalid { .. }) => {
            let message = error.to_string();
            assert!(message.contains(key), "{message} does not name {key}");
            assert!(message.contains(FILE), "{message} does not name the file");
            message
        }
        other => panic!("{text:?} should be refused for {key}, got {other:?}"),
    }
}

fn sample_pins() -> Vec<[u8; 32]> {
    // SHA-256 of nothing: the placeholder the samples carry.
    vec![ring::digest::digest(&ring::digest::SHA256, b"")
        .as_ref()
        .try_into()
        .unwrap()]
}

fn expected_sample(location: &str) -> Policy {
    Policy {
        location: Some(location.to_owned()),
        relay_url: Some("https://relay.hospital.example:7443".to_owned()),
        relay_spki_sha256: Some(sample_pins()),
        notification_level: Some(NotificationLevel::Generic),
        screen_capture_protection: Some(true),
        idle_lock_minutes: Some(15),
        attachment_max_mb: Some(100),
        attachment_allowed_types: Some(vec![
            "image/*".to_owned(),
            "application/pdf".to_owned(),
            "application/dicom".to_owned(),
            "application/xml".to_owned(),
        ]),
        retention_days: Some(0),
        block_changed_unverified_keys: Some(true),
        warnings: Vec::new(),
    }
}

#[test]
fn no_policy_file_means_no_policy() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy::load_toml_file(&dir.path().join("policy.toml")).unwrap();
    assert_eq!(policy, Policy::default());
    let plist = Policy::load_plist_file(&dir.path().join("org.ward.desktop.plist")).unwrap();
    assert_eq!(plist, Policy::default());
}

#[test]
fn the_linux_sample_sets_every_key() {
    let path = repo("packaging/policy/linux/policy.toml");
    let policy = Policy::load_toml_file(&path).unwrap();
    assert_eq!(policy, expected_sample(&path.display().to_string()));
}

#[test]
fn the_macos_profile_carries_the_same_settings() {
    // A configuration profile is itself a plist; its org.ward.desktop payload is what macOS
    // writes to the managed preferences file Ward reads.
    let profile =
        plist::Value::from_file(repo("packaging/policy/macos/org.ward.desktop.mobileconfig"))
            .unwrap();
    let payloads = profile
        .as_dictionary()
        .and_then(|profile| profile.get("PayloadContent"))
        .and_then(plist::Value::as_array)
        .unwrap();
    let ward = payloads
        .iter()
        .filter_map(plist::Value::as_dictionary)
        .find(|payload| {
            payload.get("PayloadType").and_then(plist::Value::as_string) == Some("org.ward.desktop")
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let managed = dir.path().join("org.ward.desktop.plist");
    plist::Value::Dictionary(ward.clone())
        .to_file_binary(&managed)
        .unwrap();
    let policy = Policy::load_plist_file(&managed).unwrap();
    assert_eq!(policy, expected_sample(&managed.display().to_string()));
}

#[test]
fn the_windows_template_names_every_key_and_its_registry_form_parses() {
    let admx = std::fs::read_to_string(repo("packaging/policy/windows/ward.admx")).unwrap();
    let adml = std::fs::read_to_string(repo("packaging/policy/windows/en-US/ward.adml")).unwrap();
    assert!(admx.contains(r#"key="Software\Policies\Ward""#));
    for key in POLICY_KEYS
        .iter()
        .filter(|key| **key != "compliance_archive")
    {
        assert!(
            admx.contains(&format!(r#"valueName="{key}""#)),
            "ward.admx has no value {key}"
        );
    }
    // Every string the ADMX refers to is in the ADML.
    for reference in admx.split("$(string.").skip(1) {
        let id = reference.split(')').next().unwrap();
        assert!(
            adml.contains(&format!(r#"id="{id}""#)),
            "ward.adml lacks {id}"
        );
    }
    // What the registry holds after the template is applied: REG_SZ, REG_DWORD, REG_MULTI_SZ.
    let registry = BTreeMap::from([
        (
            "relay_url".to_owned(),
            RawValue::Text("https://relay.hospital.example:7443".to_owned()),
        ),
        (
            "relay_spki_sha256".to_owned(),
            RawValue::List(vec![
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_owned()
            ]),
        ),
        (
            "notification_level".to_owned(),
            RawValue::Text("generic".to_owned()),
        ),
        ("screen_capture_protection".to_owned(), RawValue::Integer(1)),
        ("idle_lock_minutes".to_owned(), RawValue::Integer(15)),
        ("attachment_max_mb".to_owned(), RawValue::Integer(100)),
        (
            "attachment_allowed_types".to_owned(),
            RawValue::List(
                [
                    "image/*",
                    "application/pdf",
                    "application/dicom",
                    "application/xml",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
        ),
        ("retention_days".to_owned(), RawValue::Integer(0)),
        (
            "block_changed_unverified_keys".to_owned(),
            RawValue::Integer(1),
        ),
        ("compliance_archive".to_owned(), RawValue::Integer(0)),
    ]);
    let key = r"HKLM\Software\Policies\Ward";
    assert_eq!(
        Policy::from_values(registry, key).unwrap(),
        expected_sample(key)
    );
    let error = Policy::from_values(
        BTreeMap::from([("screen_capture_protection".to_owned(), RawValue::Integer(2))]),
        key,
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(key) && error.contains("screen_capture_protection"),
        "{error}"
    );
}

#[test]
fn relay_url_must_be_https_or_this_computer() {
    let policy = parse(r#"relay_url = "https://ward.example.org/""#).unwrap();
    assert_eq!(
        policy.relay_url.as_deref(),
        Some("https://ward.example.org")
    );
    assert!(policy.allows_relay_url("https://ward.example.org/"));
    assert!(!policy.allows_relay_url("https://evil.example.org"));
    assert!(parse(r#"relay_url = "http://127.0.0.1:7443""#).is_ok());
    invalid(r#"relay_url = "http://ward.example.org""#, "relay_url");
    invalid(r#"relay_url = "ward.example.org""#, "relay_url");
    invalid("relay_url = 7443", "relay_url");
}

#[test]
fn pins_are_sha256_in_base64_or_hex() {
    let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let policy = parse(&format!(
        r#"relay_spki_sha256 = ["47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "{hex}"]"#
    ))
    .unwrap();
    assert_eq!(
        policy.relay_spki_sha256,
        Some([sample_pins(), sample_pins()].concat())
    );
    // One pin as a plain string is a list of one.
    let one = parse(r#"relay_spki_sha256 = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=""#)
        .unwrap();
    assert_eq!(one.relay_spki_sha256, Some(sample_pins()));
    invalid(
        r#"relay_spki_sha256 = ["47DEQpj8HBSa"]"#,
        "relay_spki_sha256",
    );
    invalid(
        r#"relay_spki_sha256 = ["not base64 at all!"]"#,
        "relay_spki_sha256",
    );
    invalid("relay_spki_sha256 = []", "relay_spki_sha256");
    invalid("relay_spki_sha256 = [1, 2]", "relay_spki_sha256");
}

#[test]
fn notification_level_is_one_of_four() {
    for (text, level) in [
        ("none", NotificationLevel::None),
        ("generic", NotificationLevel::Generic),
        ("sender", NotificationLevel::Sender),
        ("content", NotificationLevel::Content),
    ] {
        let policy = parse(&format!("notification_level = {text:?}")).unwrap();
        assert_eq!(policy.notification_level, Some(level));
    }
    invalid(r#"notification_level = "everything""#, "notification_level");
    invalid(r#"notification_level = "Generic""#, "notification_level");
    invalid("notification_level = true", "notification_level");
}

#[test]
fn switches_take_booleans() {
    for key in ["screen_capture_protection", "block_changed_unverified_keys"] {
        let on = parse(&format!("{key} = true")).unwrap();
        let off = parse(&format!("{key} = false")).unwrap();
        let (on, off) = match key {
            "screen_capture_protection" => {
                (on.screen_capture_protection, off.screen_capture_protection)
            }
            _ => (
                on.block_changed_unverified_keys,
                off.block_changed_unverified_keys,
            ),
        };
        assert_eq!((on, off), (Some(true), Some(false)));
        invalid(&format!(r#"{key} = "yes""#), key);
        invalid(&format!("{key} = 2"), key);
    }
}

#[test]
fn numbers_are_checked_against_their_range() {
    let policy =
        parse("idle_lock_minutes = 0\nattachment_max_mb = 2048\nretention_days = 36500").unwrap();
    assert_eq!(policy.idle_lock_minutes, Some(0));
    assert_eq!(policy.attachment_max_mb, Some(2048));
    assert_eq!(policy.retention_days, Some(36_500));
    invalid("idle_lock_minutes = 1441", "idle_lock_minutes");
    invalid("idle_lock_minutes = -1", "idle_lock_minutes");
    invalid(r#"idle_lock_minutes = "15""#, "idle_lock_minutes");
    invalid("attachment_max_mb = 0", "attachment_max_mb");
    invalid("attachment_max_mb = 2049", "attachment_max_mb");
    invalid("attachment_max_mb = 1.5", "attachment_max_mb");
    invalid("retention_days = 36501", "retention_days");
    invalid("retention_days = 9999999999999", "retention_days");
}

#[test]
fn allowed_types_are_media_types_with_wildcards() {
    let policy =
        parse(r#"attachment_allowed_types = ["image/*", "Application/PDF", "application/dicom"]"#)
            .unwrap();
    assert!(policy.allows_media_type("image/png"));
    assert!(policy.allows_media_type("application/pdf"));
    assert!(policy.allows_media_type("application/dicom"));
    assert!(!policy.allows_media_type("application/zip"));
    assert!(!policy.allows_media_type("text/plain"));
    assert!(Policy::default().allows_media_type("application/zip"));
    invalid(
        r#"attachment_allowed_types = ["pdf"]"#,
        "attachment_allowed_types",
    );
    invalid(
        r#"attachment_allowed_types = ["image/"]"#,
        "attachment_allowed_types",
    );
    invalid(
        r#"attachment_allowed_types = ["image/png; x=1"]"#,
        "attachment_allowed_types",
    );
    invalid("attachment_allowed_types = 5", "attachment_allowed_types");
}

#[test]
fn the_compliance_archive_is_reserved() {
    assert!(parse("compliance_archive = false").is_ok());
    let message = invalid("compliance_archive = true", "compliance_archive");
    assert!(message.contains("reserved"), "{message}");
    invalid(
        r#"compliance_archive = "s3://archive""#,
        "compliance_archive",
    );
}

#[test]
fn unknown_keys_warn_and_do_not_stop_ward() {
    let policy = parse("idle_lock_minutes = 5\nshow_tips = true").unwrap();
    assert_eq!(policy.idle_lock_minutes, Some(5));
    assert_eq!(policy.warnings.len(), 1);
    assert!(policy.warnings[0].contains("show_tips") && policy.warnings[0].contains(FILE));
}

#[test]
fn malformed_files_are_refused_with_the_line() {
    for text in [
        "relay_url = \"https://a.example\nidle_lock_minutes = 5",
        "idle_lock_minutes = 5\nidle_lock_minutes = 6",
        "[relay]\nurl = 1\n= 2",
        "\u{feff}\u{0}",
    ] {
        match parse(text) {
            Err(error @ PolicyError::Malformed { .. }) => {
                let message = error.to_string();
                assert!(message.contains(FILE), "{message}");
            }
            other => panic!("{text:?} should be malformed, got {other:?}"),
        }
    }
    let error = parse("idle_lock_minutes = 5\n\nidle_lock_minutes = 6").unwrap_err();
    assert!(error.to_string().contains("line 3"), "{error}");
    // A table where a value belongs is a wrong value, not a wrong file.
    invalid("[idle_lock_minutes]\nvalue = 5", "idle_lock_minutes");

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("org.ward.desktop.plist");
    std::fs::write(&garbage, b"<plist><dict><key>relay_url</key>").unwrap();
    assert!(matches!(
        Policy::load_plist_file(&garbage),
        Err(PolicyError::Malformed { .. })
    ));
    let not_utf8 = dir.path().join("policy.toml");
    std::fs::write(&not_utf8, [0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        Policy::load_toml_file(&not_utf8),
        Err(PolicyError::Unreadable { .. })
    ));
}

#[test]
fn policy_beats_the_user_and_the_user_beats_the_default() {
    let user = UserSettings {
        notification_level: Some(NotificationLevel::Sender),
        screen_capture_protection: Some(false),
        idle_lock_minutes: Some(30),
    };
    let free = EffectiveSettings::resolve(&Policy::default(), &user);
    assert_eq!(free.notification_level.value, NotificationLevel::Sender);
    assert_eq!(free.notification_level.source, SettingSource::User);
    assert!(!free.screen_capture_protection.value);
    assert_eq!(free.attachment_max_mb.source, SettingSource::Default);
    assert_eq!(free.relay_url.value, None);

    let managed = EffectiveSettings::resolve(
        &parse("notification_level = \"none\"\nscreen_capture_protection = true").unwrap(),
        &user,
    );
    assert_eq!(managed.notification_level.value, NotificationLevel::None);
    assert_eq!(managed.notification_level.source, SettingSource::Policy);
    assert!(managed.screen_capture_protection.value);
    assert_eq!(
        managed.screen_capture_protection.source,
        SettingSource::Policy
    );
    assert_eq!(managed.idle_lock_minutes.source, SettingSource::User);

    let defaults = EffectiveSettings::resolve(&Policy::default(), &UserSettings::default());
    assert_eq!(
        defaults.notification_level.value,
        NotificationLevel::Generic
    );
    assert!(defaults.screen_capture_protection.value);
    assert!(!defaults.block_changed_unverified_keys.value);

    // Message text in notifications is the organization's decision alone.
    let greedy = UserSettings {
        notification_level: Some(NotificationLevel::Content),
        ..UserSettings::default()
    };
    let clamped = EffectiveSettings::resolve(&Policy::default(), &greedy);
    assert_eq!(clamped.notification_level.value, NotificationLevel::Sender);
    let allowed =
        EffectiveSettings::resolve(&parse("notification_level = \"content\"").unwrap(), &greedy);
    assert_eq!(allowed.notification_level.value, NotificationLevel::Content);
}

#[test]
fn the_effective_policy_prints_every_key_with_its_source() {
    let settings = EffectiveSettings::resolve(
        &Policy::load_toml_file(&repo("packaging/policy/linux/policy.toml")).unwrap(),
        &UserSettings::default(),
    );
    let json = serde_json::to_value(&settings).unwrap();
    for key in POLICY_KEYS
        .iter()
        .filter(|key| **key != "compliance_archive")
    {
        assert_eq!(json[key]["source"], "policy", "{key}: {json}");
    }
    assert_eq!(
        json["relay_spki_sha256"]["value"][0],
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    );
}
