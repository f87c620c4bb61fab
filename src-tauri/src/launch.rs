//! How this process was asked to run: which profile folder, and whether the window is protected
//! from screen capture. Command-line flags beat environment variables, which beat the defaults.

use std::ffi::OsString;
use std::path::PathBuf;

/// Options read from the command line and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchOptions {
    /// The profile folder; `None` means the default profile in the user's data directory.
    pub data_dir: Option<PathBuf>,
    /// Whether the window asks the OS to keep it out of screenshots and screen recordings
    /// (Windows and macOS honour this; Linux compositors offer no such control).
    pub content_protection: bool,
    /// Print usage and exit.
    pub help: bool,
    /// Print the version and exit.
    pub version: bool,
    /// Print the effective managed policy as JSON and exit.
    pub print_policy: bool,
    /// The relay address the enrollment screen starts with (a managed policy's wins).
    pub relay_url: Option<String>,
    /// An invite code the enrollment screen starts with, as `scripts/run` hands out.
    pub invite: Option<String>,
}

/// A command line Ward cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

/// Usage text for `--help` and for mistakes.
pub const USAGE: &str = "\
Usage: ward-desktop [--data-dir DIR] [--content-protection on|off]
       ward-desktop --print-policy

  --data-dir DIR               keep this profile's encrypted history in DIR; each folder is a
                               separate clinician with its own keychain entries
                               (environment: WARD_DATA_DIR)
  --content-protection on|off  keep the window out of screenshots and screen sharing where the
                               OS supports it; on by default (environment: WARD_CONTENT_PROTECTION)
                               (a managed policy's screen_capture_protection wins)
  --relay URL                  the relay address enrollment starts with (environment:
                               WARD_RELAY_URL); a managed policy's relay_url wins
  --invite CODE                the invite code enrollment starts with (environment: WARD_INVITE)
  --print-policy               print the effective managed policy as JSON, each value with its
                               source, and exit; exits 1 when the policy is invalid
  --help                       show this text
  --version                    show Ward's version
";

impl LaunchOptions {
    /// Reads the options from the arguments that follow the program name, and the environment.
    pub fn parse(
        args: impl IntoIterator<Item = OsString>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, UsageError> {
        let mut options = LaunchOptions {
            data_dir: env("WARD_DATA_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
            content_protection: match env("WARD_CONTENT_PROTECTION") {
                Some(value) => on_off(&value, "WARD_CONTENT_PROTECTION")?,
                None => true,
            },
            help: false,
            version: false,
            print_policy: false,
            relay_url: env_text(&env, "WARD_RELAY_URL"),
            invite: env_text(&env, "WARD_INVITE"),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let text = arg.to_string_lossy();
            if let Some(dir) = text.strip_prefix("--data-dir=") {
                options.data_dir = Some(non_empty_dir(dir.into())?);
            } else if let Some(value) = text.strip_prefix("--content-protection=") {
                options.content_protection = on_off(value.as_ref(), "--content-protection")?;
            } else {
                match text.as_ref() {
                    "--data-dir" => {
                        let dir = args.next().ok_or_else(|| missing_value("--data-dir"))?;
                        options.data_dir = Some(non_empty_dir(dir)?);
                    }
                    "--content-protection" => {
                        let value = args
                            .next()
                            .ok_or_else(|| missing_value("--content-protection"))?;
                        options.content_protection = on_off(&value, "--content-protection")?;
                    }
                    "--relay" => {
                        let url = args.next().ok_or_else(|| missing_value("--relay"))?;
                        options.relay_url = Some(url.to_string_lossy().into_owned());
                    }
                    "--invite" => {
                        let code = args.next().ok_or_else(|| missing_value("--invite"))?;
                        options.invite = Some(code.to_string_lossy().into_owned());
                    }
                    "--help" | "-h" => options.help = true,
                    "--version" | "-V" => options.version = true,
                    "--print-policy" => options.print_policy = true,
                    // WebKitWebDriver starts the app it automates with this flag.
                    "--automation" => {}
                    _ => return Err(UsageError(format!("unknown option {text}"))),
                }
            }
        }
        Ok(options)
    }
}

fn env_text(env: &impl Fn(&str) -> Option<OsString>, name: &str) -> Option<String> {
    env(name)
        .map(|value| value.to_string_lossy().trim().to_owned())
        .filter(|value| !value.is_empty())
}

fn missing_value(flag: &str) -> UsageError {
    UsageError(format!("{flag} needs a value"))
}

fn non_empty_dir(dir: OsString) -> Result<PathBuf, UsageError> {
    if dir.is_empty() {
        return Err(UsageError("--data-dir needs a folder".to_owned()));
    }
    Ok(PathBuf::from(dir))
}

fn on_off(value: &std::ffi::OsStr, name: &str) -> Result<bool, UsageError> {
    match value.to_string_lossy().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        other => Err(UsageError(format!(
            "{name} must be on or off, not {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<LaunchOptions, UsageError> {
        let env: Vec<(String, OsString)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        LaunchOptions::parse(args.iter().map(OsString::from), move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_to_the_default_profile_with_content_protection() {
        let options = parse(&[], &[]).unwrap();
        assert_eq!(options.data_dir, None);
        assert!(options.content_protection);
    }

    #[test]
    fn the_flag_beats_the_environment() {
        let options = parse(
            &["--data-dir", "/tmp/b", "--content-protection", "on"],
            &[
                ("WARD_DATA_DIR", "/tmp/a"),
                ("WARD_CONTENT_PROTECTION", "off"),
            ],
        )
        .unwrap();
        assert_eq!(options.data_dir, Some(PathBuf::from("/tmp/b")));
        assert!(options.content_protection);

        let options = parse(&[], &[("WARD_DATA_DIR", "/tmp/a")]).unwrap();
        assert_eq!(options.data_dir, Some(PathBuf::from("/tmp/a")));
        let options = parse(&["--data-dir=/tmp/c", "--content-protection=off"], &[]).unwrap();
        assert_eq!(options.data_dir, Some(PathBuf::from("/tmp/c")));
        assert!(!options.content_protection);
    }

    #[test]
    fn mistakes_are_reported_not_guessed() {
        assert!(parse(&["--data-dir"], &[]).is_err());
        assert!(parse(&["--data-dir", ""], &[]).is_err());
        assert!(parse(&["--data-dri", "/tmp/x"], &[]).is_err());
        assert!(parse(&["--content-protection", "maybe"], &[]).is_err());
        assert!(parse(&[], &[("WARD_CONTENT_PROTECTION", "sometimes")]).is_err());
    }

    #[test]
    fn enrollment_defaults_come_from_flags_or_the_environment() {
        let options = parse(
            &["--invite", "code-1"],
            &[
                ("WARD_RELAY_URL", "http://127.0.0.1:7443"),
                ("WARD_INVITE", "code-0"),
            ],
        )
        .unwrap();
        assert_eq!(options.relay_url.as_deref(), Some("http://127.0.0.1:7443"));
        assert_eq!(options.invite.as_deref(), Some("code-1"));
        assert_eq!(parse(&[], &[("WARD_INVITE", " ")]).unwrap().invite, None);
        assert!(parse(&["--relay"], &[]).is_err());
    }

    #[test]
    fn print_policy_is_a_flag() {
        assert!(parse(&["--print-policy"], &[]).unwrap().print_policy);
        assert!(!parse(&[], &[]).unwrap().print_policy);
    }

    #[test]
    fn the_webdriver_automation_flag_is_accepted() {
        assert!(parse(&["--automation"], &[]).is_ok());
    }
}
