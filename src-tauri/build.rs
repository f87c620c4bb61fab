//! Generates one `allow-<command>` permission per IPC command, so the capability file can grant
//! each command by name and nothing by wildcard.

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(&[
        "app_status",
        "restart_app",
        "enroll",
        "list_chats",
        "chat_messages",
        "view_chat",
        "send_text",
        "list_contacts",
        "open_direct_chat",
        "create_team",
        "contact_verification",
        "mark_verified",
        "search_messages",
        "retry_now",
        "send_attachment",
        "open_attachment",
        "ecg_recording",
        "save_attachment",
        "edit_message",
        "delete_message",
        "add_members",
        "remove_members",
        "set_notification_level",
    ]);
    if let Err(err) = tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest))
    {
        // A build script reports failure by exiting non-zero with the reason on stderr.
        eprintln!("tauri-build failed: {err:#}");
        std::process::exit(1);
    }
}
