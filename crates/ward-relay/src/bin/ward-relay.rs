//! `ward-relay`: the relay server and the admin commands IT runs beside it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ward_relay::config::{parse_duration, parse_listen, Config};
use ward_relay::sqlite_store::SqliteStore;
use ward_relay::{admin, backup, serve};

const USAGE: &str = "\
usage: ward-relay [--config FILE] [--data-dir DIR] COMMAND

commands:
  serve [--listen ADDR] [--tls-cert PEM --tls-key PEM]
                                        run the relay (default 127.0.0.1:7443); with a
                                        certificate and key it speaks HTTPS, and SIGHUP
                                        reloads them
  invite create --name NAME [--role ROLE] [--expires DURATION]
                                        print a one-time invite code (default 7d)
  invite list | invite revoke ID
  user list | user disable USER_ID
  device revoke DEVICE_ID
  status                                counts and the state of the store
  backup --to DIR                       copy the relay into the new folder DIR, while it runs
  restore --from DIR                    restore a backup into the (stopped) relay's empty data
                                        folder; clients notice and send again what it lost

settings come from relay.toml (--config or WARD_RELAY_CONFIG), then WARD_RELAY_LISTEN,
WARD_RELAY_DATA_DIR, WARD_RELAY_RETENTION_DAYS, WARD_RELAY_TLS_CERT and WARD_RELAY_TLS_KEY,
then the options above.";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(output) => {
            #[allow(clippy::print_stdout)]
            {
                print!("{output}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("ward-relay: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Takes `--flag VALUE` out of `args`.
fn take_option(args: &mut Vec<String>, flag: &str) -> Result<Option<String>, String> {
    let Some(index) = args.iter().position(|arg| arg == flag) else {
        return Ok(None);
    };
    if index + 1 >= args.len() {
        return Err(format!("{flag} needs a value\n\n{USAGE}"));
    }
    let value = args.remove(index + 1);
    args.remove(index);
    Ok(Some(value))
}

fn run(mut args: Vec<String>) -> Result<String, String> {
    if args.iter().any(|arg| arg == "--help" || arg == "-h") || args.is_empty() {
        return Ok(format!("{USAGE}\n"));
    }
    if args.iter().any(|arg| arg == "--version") {
        return Ok(format!("ward-relay {}\n", env!("CARGO_PKG_VERSION")));
    }
    let config_path = take_option(&mut args, "--config")?
        .or_else(|| std::env::var("WARD_RELAY_CONFIG").ok())
        .map(PathBuf::from);
    let data_dir = take_option(&mut args, "--data-dir")?;
    let listen = take_option(&mut args, "--listen")?;
    let tls_cert = take_option(&mut args, "--tls-cert")?;
    let tls_key = take_option(&mut args, "--tls-key")?;
    let name = take_option(&mut args, "--name")?;
    let role = take_option(&mut args, "--role")?;
    let expires = take_option(&mut args, "--expires")?;
    let backup_to = take_option(&mut args, "--to")?;
    let restore_from = take_option(&mut args, "--from")?;
    let mut config = Config::load(config_path.as_deref(), |key| std::env::var(key).ok())
        .map_err(|error| error.to_string())?;
    if let Some(dir) = data_dir {
        config.data_dir = PathBuf::from(dir);
    }
    if let Some(listen) = listen {
        config.listen = parse_listen(&listen, "--listen").map_err(|error| error.to_string())?;
    }
    if let Some(cert) = tls_cert {
        config.tls_cert = Some(PathBuf::from(cert));
    }
    if let Some(key) = tls_key {
        config.tls_key = Some(PathBuf::from(key));
    }
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    if words == ["serve"] {
        let runtime = tokio::runtime::Runtime::new().map_err(|error| error.to_string())?;
        runtime
            .block_on(serve::serve(config))
            .map_err(|error| error.to_string())?;
        return Ok(String::new());
    }
    match (words.as_slice(), backup_to, restore_from) {
        (["backup"], Some(to), None) => {
            let summary = backup::backup(&config.data_dir, Path::new(&to))
                .map_err(|error| error.to_string())?;
            return Ok(format!(
                "backed up to {to}: schema {}, {} encrypted files ({} bytes)\n",
                summary.schema_version, summary.blobs, summary.blob_bytes
            ));
        }
        (["restore"], None, Some(from)) => {
            let summary = backup::restore(Path::new(&from), &config.data_dir)
                .map_err(|error| error.to_string())?;
            return Ok(format!(
                "restored {from} into {}: schema {}, {} encrypted files; start the relay, and \
                 clients will send again what the backup lacks\n",
                config.data_dir.display(),
                summary.schema_version,
                summary.blobs
            ));
        }
        (["backup"], ..) => return Err(format!("backup needs --to DIR\n\n{USAGE}")),
        (["restore"], ..) => return Err(format!("restore needs --from DIR\n\n{USAGE}")),
        _ => {}
    }
    let store = SqliteStore::open(&config.data_dir).map_err(|error| error.to_string())?;
    let result = match words.as_slice() {
        ["invite", "create"] => {
            let name = name.ok_or_else(|| format!("invite create needs --name\n\n{USAGE}"))?;
            let lifetime = match expires {
                Some(text) => parse_duration(&text)
                    .ok_or_else(|| format!("--expires {text:?}: use 30m, 72h or 7d"))?,
                None => Duration::from_secs(7 * 86_400),
            };
            let role = role.unwrap_or_else(|| "clinician".to_owned());
            admin::create_invite(&store, &name, &role, lifetime).map(|code| format!("{code}\n"))
        }
        ["invite", "list"] => admin::list_invites(&store),
        ["invite", "revoke", id] => admin::revoke_invite(&store, id).map(|()| String::new()),
        ["user", "list"] => admin::list_users(&store),
        ["user", "disable", id] => admin::disable_user(&store, id).map(|()| String::new()),
        ["device", "revoke", id] => admin::revoke_device(&store, id).map(|()| String::new()),
        ["status"] => {
            let schema_version = store.schema_version().map_err(|error| error.to_string())?;
            admin::status(&store, schema_version)
        }
        _ => return Err(format!("unknown command: {}\n\n{USAGE}", args.join(" "))),
    };
    result.map_err(|error| error.to_string())
}
