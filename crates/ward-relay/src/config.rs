//! The relay's settings: built-in defaults, then `relay.toml`, then the environment, then the
//! command line. With nothing set it listens on 127.0.0.1 and keeps its SQLite under `./relay-data`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::api::Limits;

/// Everything `ward-relay serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen. Plain HTTP is refused anywhere but loopback.
    pub listen: SocketAddr,
    /// Where the SQLite file and the blobs live.
    pub data_dir: PathBuf,
    /// Request and session limits.
    pub limits: Limits,
    /// Log entries older than this are deleted even if unread.
    pub retention: Duration,
    /// The TLS certificate chain (PEM). With `tls_key`, the relay speaks HTTPS and may listen
    /// on any address; SIGHUP reloads both files.
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            data_dir: PathBuf::from("relay-data"),
            limits: Limits::default(),
            retention: Duration::from_secs(30 * 24 * 3600),
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `relay.toml`; every key is optional. Unknown keys are an error, so a typo is not ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    retention_days: Option<u64>,
    max_request_bytes: Option<usize>,
    session_hours: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Why the settings could not be used. Each message names the setting and its source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or parsed.
    #[error("cannot read the config file {path}: {reason}")]
    File {
        /// Which file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// A value is not valid.
    #[error("invalid {key} in {origin}: {reason}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Where it came from: the file's path, the variable's name or the option.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

impl Config {
    /// Defaults, overridden by the file at `path` (if given), then by `WARD_RELAY_*` variables
    /// read through `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::File {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
            let file: File = toml::from_str(&text).map_err(|error| ConfigError::File {
                path: path.to_owned(),
                reason: error.message().to_owned(),
            })?;
            let source = path.display().to_string();
            if let Some(listen) = file.listen {
                config.listen = parse_listen(&listen, &source)?;
            }
            if let Some(dir) = file.data_dir {
                config.data_dir = dir;
            }
            if let Some(days) = file.retention_days {
                config.retention = days_to_duration(days, &source)?;
            }
            if let Some(bytes) = file.max_request_bytes {
                config.limits.max_request_bytes = bytes;
            }
            if let Some(hours) = file.session_hours {
                config.limits.session_lifetime = Duration::from_secs(hours.saturating_mul(3600));
            }
            // Relative paths in the file are relative to the file, as an admin reading it expects.
            let beside = |file_path: PathBuf| match path.parent() {
                Some(folder) if file_path.is_relative() => folder.join(file_path),
                _ => file_path,
            };
            config.tls_cert = file.tls_cert.map(beside).or(config.tls_cert);
            config.tls_key = file.tls_key.map(beside).or(config.tls_key);
        }
        if let Some(cert) = env("WARD_RELAY_TLS_CERT") {
            config.tls_cert = Some(PathBuf::from(cert));
        }
        if let Some(key) = env("WARD_RELAY_TLS_KEY") {
            config.tls_key = Some(PathBuf::from(key));
        }
        if let Some(listen) = env("WARD_RELAY_LISTEN") {
            config.listen = parse_listen(&listen, "WARD_RELAY_LISTEN")?;
        }
        if let Some(dir) = env("WARD_RELAY_DATA_DIR") {
            config.data_dir = PathBuf::from(dir);
        }
        if let Some(days) = env("WARD_RELAY_RETENTION_DAYS") {
            let days = days.parse().map_err(|_| ConfigError::Invalid {
                key: "retention_days",
                origin: "WARD_RELAY_RETENTION_DAYS".to_owned(),
                reason: "not a whole number of days".to_owned(),
            })?;
            config.retention = days_to_duration(days, "WARD_RELAY_RETENTION_DAYS")?;
        }
        Ok(config)
    }

    /// Refuses settings that would expose plain HTTP beyond this machine.
    pub fn check(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), Some(_)) => return Ok(()),
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: if self.tls_cert.is_some() {
                        "tls_key"
                    } else {
                        "tls_cert"
                    },
                    origin: "the settings".to_owned(),
                    reason: "TLS needs both tls_cert and tls_key".to_owned(),
                })
            }
            (None, None) => {}
        }
        if !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "listen",
                origin: self.listen.to_string(),
                reason: "plain HTTP is only allowed on loopback; set tls_cert and tls_key, put \
                         the relay behind a TLS reverse proxy, or listen on 127.0.0.1"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// Parses a listen address such as `127.0.0.1:7443`.
pub fn parse_listen(text: &str, source: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| ConfigError::Invalid {
        key: "listen",
        origin: source.to_owned(),
        reason: format!("{text:?} is not an address and port such as 127.0.0.1:7443"),
    })
}

fn days_to_duration(days: u64, source: &str) -> Result<Duration, ConfigError> {
    if days == 0 {
        return Err(ConfigError::Invalid {
            key: "retention_days",
            origin: source.to_owned(),
            reason: "must be at least 1".to_owned(),
        });
    }
    Ok(Duration::from_secs(days.saturating_mul(24 * 3600)))
}

/// Parses `30m`, `72h`, `7d` or a number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last()? {
        (index, 's' | 'm' | 'h' | 'd') => (&text[..index], &text[index..]),
        _ => (text, "s"),
    };
    let value: u64 = number.parse().ok()?;
    let seconds = match unit {
        "m" => value.checked_mul(60)?,
        "h" => value.checked_mul(3600)?,
        "d" => value.checked_mul(86_400)?,
        _ => value,
    };
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The sample IT starts from (`packaging/relay/relay.toml`) must load, set every key the file
    /// format has, and pass the same checks `serve` makes.
    #[test]
    fn the_sample_config_sets_every_key_and_loads() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/relay/relay.toml");
        let text = std::fs::read_to_string(&sample).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "data_dir",
                "listen",
                "max_request_bytes",
                "retention_days",
                "session_hours",
                "tls_cert",
                "tls_key"
            ]
        );
        let config = Config::load(Some(&sample), no_env).unwrap();
        assert_eq!(config.listen.to_string(), "0.0.0.0:7443");
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/ward-relay"));
        assert_eq!(config.retention, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(config.limits.max_request_bytes, 16 * 1024 * 1024);
        assert_eq!(
            config.limits.session_lifetime,
            Duration::from_secs(12 * 3600)
        );
        assert_eq!(
            config.tls_cert,
            Some(PathBuf::from("/etc/ward/relay-cert.pem"))
        );
        assert_eq!(
            config.tls_key,
            Some(PathBuf::from("/etc/ward/relay-key.pem"))
        );
        config.check().unwrap();
    }

    #[test]
    fn defaults_listen_on_loopback() {
        let config = Config::load(None, no_env).unwrap();
        assert!(config.listen.ip().is_loopback());
        config.check().unwrap();
    }

    #[test]
    fn the_file_then_the_environment_override_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nretention_days = 7\n").unwrap();
        let config = Config::load(Some(&path), no_env).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.retention, Duration::from_secs(7 * 86_400));
        let config = Config::load(Some(&path), |key| {
            (key == "WARD_RELAY_LISTEN").then(|| "127.0.0.1:9001".to_owned())
        })
        .unwrap();
        assert_eq!(config.listen.port(), 9001);
    }

    #[test]
    fn bad_settings_name_the_key_and_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9000\"\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(
            error.contains("relay.toml") && error.contains("lisen"),
            "{error}"
        );
        std::fs::write(&path, "listen = \"everywhere\"\n").unwrap();
        let error = Config::load(Some(&path), no_env).unwrap_err().to_string();
        assert!(
            error.contains("listen") && error.contains("relay.toml"),
            "{error}"
        );
        let config = Config::load(None, |key| {
            (key == "WARD_RELAY_LISTEN").then(|| "0.0.0.0:7443".to_owned())
        })
        .unwrap();
        assert!(config.check().unwrap_err().to_string().contains("loopback"));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("72h"), Some(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("0d"), None);
        assert_eq!(parse_duration("soon"), None);
    }
}
