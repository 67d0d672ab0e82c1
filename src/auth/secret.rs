//! Where a secret comes from. Never an argument value (it would show in `ps`): a named
//! environment variable, a file, standard input, or a no-echo prompt on a terminal.

use secrecy::SecretString;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    Stdin,
    /// Ask on the terminal without echo; refused when stdin is not a terminal.
    Prompt(String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("environment variable {0} is empty")]
    EnvEmpty(String),
    #[error("cannot read secret file {0}: {1}")]
    File(String, String),
    #[error("secret file {0} is empty")]
    FileEmpty(String),
    #[error("nothing on standard input")]
    StdinEmpty,
    #[error("cannot read standard input: {0}")]
    Stdin(String),
    #[error("{0} needs a secret, and there is no terminal to ask on: use {1}")]
    NoTerminal(&'static str, &'static str),
}

/// Largest secret accepted (a JWT access token with many claims is a few KB).
const MAX_SECRET: u64 = 64 * 1024;

/// Strips one trailing line end, as `echo` and editors add it.
fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

impl SecretSource {
    pub fn read(&self) -> Result<SecretString, SecretError> {
        match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) if v.is_empty() => Err(SecretError::EnvEmpty(var.clone())),
                Ok(v) => Ok(SecretString::from(v)),
                Err(_) => Err(SecretError::EnvMissing(var.clone())),
            },
            SecretSource::File(p) => {
                let shown = p.display().to_string();
                let meta = std::fs::metadata(p)
                    .map_err(|e| SecretError::File(shown.clone(), e.to_string()))?;
                if meta.len() > MAX_SECRET {
                    return Err(SecretError::File(shown, "larger than 64 KiB".into()));
                }
                let v = std::fs::read_to_string(p)
                    .map_err(|e| SecretError::File(shown.clone(), e.to_string()))?;
                let v = strip_newline(v);
                if v.is_empty() {
                    return Err(SecretError::FileEmpty(shown));
                }
                Ok(SecretString::from(v))
            }
            SecretSource::Stdin => {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| SecretError::Stdin(e.to_string()))?;
                let v = strip_newline(line);
                if v.is_empty() {
                    return Err(SecretError::StdinEmpty);
                }
                Ok(SecretString::from(v))
            }
            SecretSource::Prompt(prompt) => {
                if !std::io::stdin().is_terminal() {
                    return Err(SecretError::NoTerminal(
                        "this run",
                        "--password-env, --password-file or --password-stdin (or the --token-* forms)",
                    ));
                }
                let v = rpassword::prompt_password(prompt)
                    .map_err(|e| SecretError::Stdin(e.to_string()))?;
                Ok(SecretString::from(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn file_source_strips_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret  \n").unwrap();
        let s = SecretSource::File(p.clone()).read().unwrap();
        assert_eq!(s.expose_secret(), "s3cret  ");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            SecretSource::File(p).read(),
            Err(SecretError::FileEmpty(_))
        ));
        assert!(matches!(
            SecretSource::File(dir.path().join("missing")).read(),
            Err(SecretError::File(..))
        ));
    }

    #[test]
    fn env_source_reports_missing_variable() {
        assert_eq!(
            SecretSource::Env("EWS_PROBE_TEST_SURELY_UNSET_VAR".into())
                .read()
                .unwrap_err(),
            SecretError::EnvMissing("EWS_PROBE_TEST_SURELY_UNSET_VAR".into())
        );
    }
}
