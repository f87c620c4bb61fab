//! The committed `ui/src/bindings.ts` must be exactly what the Rust commands export, so the UI can
//! never call a command with a stale shape. `scripts/bindings` rewrites the file.

// Helpers in a test file are test code too: a failed unwrap is the test failing, with its cause.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

#[test]
fn committed_bindings_match_the_rust_commands() {
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings.ts");
    let scratch = tempfile::tempdir().unwrap();
    let fresh_path = scratch.path().join("bindings.ts");
    ward_desktop::ipc::bindings_builder()
        .export(ward_desktop::ipc::typescript(), &fresh_path)
        .unwrap();
    let fresh = std::fs::read_to_string(&fresh_path).unwrap();

    if std::env::var_os("WARD_UPDATE_BINDINGS").is_some() {
        std::fs::write(&committed_path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ui/src/bindings.ts is stale: run scripts/bindings and commit the result"
    );
}
