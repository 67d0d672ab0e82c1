//! Turns credentials into what each request carries. One scheme per file: none, Basic and a
//! given bearer token here; `oauth.rs` (device code, client credentials, with `jwt.rs` for the
//! certificate assertion and token claims); `challenge.rs` the unauthenticated first request. Secrets live in `secrecy` types, reach
//! the wire only through a sensitive header value, and are registered with the redactor so
//! no output path can show them.

pub mod cache;
pub mod challenge;
pub mod facts;
pub mod jwt;
pub mod ntlm;
pub mod oauth;
pub mod secret;

use crate::transport::Header;
use crate::transport::redact::Redactor;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// The `--auth` schemes of the command-line contract.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    None,
    Basic,
    Ntlm,
    Bearer,
    DeviceCode,
    ClientCredentials,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Basic => "basic",
            AuthMode::Ntlm => "ntlm",
            AuthMode::Bearer => "bearer",
            AuthMode::DeviceCode => "device-code",
            AuthMode::ClientCredentials => "client-credentials",
        }
    }
    /// Modes whose credential is an OAuth access token.
    pub fn is_token(self) -> bool {
        matches!(
            self,
            AuthMode::Bearer | AuthMode::DeviceCode | AuthMode::ClientCredentials
        )
    }
}

/// Credentials ready to sign requests.
pub enum Credentials {
    None,
    Basic {
        user: String,
        password: SecretString,
    },
    Bearer {
        token: SecretString,
    },
    /// A replayed run: the recorded scheme, no secret (none was ever recorded).
    Replayed(AuthMode),
    /// OAuth 2.0 (device code or client credentials): the token is fetched during the run,
    /// once; a fleet's mailboxes share one configuration (and so one token).
    OAuth(std::sync::Arc<oauth::OAuthConfig>),
    /// NTLM: a handshake authenticates the connection the SOAP requests then use.
    Ntlm(Box<ntlm::NtlmConfig>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::Basic { user, .. } => write!(f, "Credentials::Basic({user}, [redacted])"),
            Credentials::Bearer { .. } => f.write_str("Credentials::Bearer([redacted])"),
            Credentials::Replayed(m) => write!(f, "Credentials::Replayed({})", m.as_str()),
            Credentials::OAuth(o) => write!(f, "Credentials::{o:?}"),
            Credentials::Ntlm(n) => write!(f, "Credentials::{n:?}"),
        }
    }
}

impl Credentials {
    pub fn mode(&self) -> AuthMode {
        match self {
            Credentials::None => AuthMode::None,
            Credentials::Basic { .. } => AuthMode::Basic,
            Credentials::Bearer { .. } => AuthMode::Bearer,
            Credentials::Replayed(m) => *m,
            Credentials::OAuth(o) => o.mode,
            Credentials::Ntlm(_) => AuthMode::Ntlm,
        }
    }

    /// Teaches the redactor every form of the secret that could appear in output.
    pub fn register_secrets(&self, r: &mut Redactor) {
        match self {
            Credentials::None | Credentials::Replayed(_) => {}
            Credentials::Basic { user, password } => r.add_basic(user, password.expose_secret()),
            Credentials::Bearer { token } => r.add_secret(token.expose_secret()),
            Credentials::OAuth(o) => o.register_secrets(r),
            Credentials::Ntlm(n) => n.register_secrets(r),
        }
    }

    /// The `Authorization` header, marked sensitive.
    pub fn authorization(&self) -> Option<Header> {
        let value = match self {
            // NTLM authenticates the connection, not each request.
            Credentials::None | Credentials::Replayed(_) | Credentials::Ntlm(_) => return None,
            Credentials::Basic { user, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", password.expose_secret()))
            ),
            Credentials::Bearer { token } => format!("Bearer {}", token.expose_secret()),
            Credentials::OAuth(o) => format!("Bearer {}", o.token()?.expose_secret()),
        };
        Some(Header {
            name: "Authorization".into(),
            value,
            sensitive: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_and_redaction() {
        let c = Credentials::Basic {
            user: "alice@contoso.com".into(),
            password: SecretString::from("pässwörd"),
        };
        let h = c.authorization().unwrap();
        assert!(h.sensitive);
        assert_eq!(
            h.value,
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("alice@contoso.com:pässwörd")
            )
        );
        let mut r = Redactor::default();
        c.register_secrets(&mut r);
        assert_eq!(r.text(&h.value), "Basic [redacted]");
        assert!(!format!("{c:?} {h:?}").contains("pässwörd"));
    }

    #[test]
    fn bearer_header() {
        let c = Credentials::Bearer {
            token: SecretString::from("eyJ.abc.def"),
        };
        assert_eq!(c.authorization().unwrap().value, "Bearer eyJ.abc.def");
        assert!(!format!("{c:?}").contains("eyJ"));
        assert!(Credentials::None.authorization().is_none());
    }
}
