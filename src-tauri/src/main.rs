//! The `ward-desktop` binary: everything happens in the library, so tests can reach it too.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    ward_desktop::run()
}
