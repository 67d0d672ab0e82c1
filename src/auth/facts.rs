//! Facts about authentication kept as evidence on a step: what the unauthenticated challenge
//! offered, what the token endpoint answered, and the access token's claims (read, never
//! trusted: research/security.md OA-9). No judgement here; `diagnose` reads them.

use serde::Serialize;

/// What the server offered to an unauthenticated request (`auth.challenge`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Challenge {
    /// Schemes in `WWW-Authenticate`, in order (`Bearer`, `NTLM`, `Negotiate`, `Basic`).
    pub schemes: Vec<String>,
    /// Bearer's `authorization_uri` parameter (Exchange Online names its sign-in authority).
    pub authorization_uri: Option<String>,
    /// The `X-OAuth-Enabled` header (Exchange Server with hybrid modern auth).
    pub oauth_enabled: Option<String>,
}

/// A token endpoint's error answer (Microsoft identity platform, RFC 6749 §5.2).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TokenError {
    pub error: String,
    pub error_codes: Vec<u32>,
    pub description: Option<String>,
    pub trace_id: Option<String>,
    pub correlation_id: Option<String>,
    pub timestamp: Option<String>,
}

/// Claims of an access token, decoded without verifying it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Claims {
    pub aud: Option<String>,
    pub tid: Option<String>,
    /// Delegated permissions (space separated in the token).
    pub scp: Vec<String>,
    /// Application permissions.
    pub roles: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: Option<i64>,
    pub upn: Option<String>,
    pub appid: Option<String>,
    /// Whether the token was a JWT at all (consumer tokens are opaque).
    pub is_jwt: bool,
}

/// The flow a token step belongs to.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    DeviceCode,
    ClientSecret,
    ClientCertificate,
}

/// Authentication facts of one step.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AuthFacts {
    Challenge(Challenge),
    Token {
        flow: Flow,
        /// The token endpoint's error, when it refused.
        error: Option<Box<TokenError>>,
        /// The issued token's claims, when it issued one.
        claims: Option<Box<Claims>>,
        /// The run's clock when the token arrived (Unix seconds), to judge `exp`.
        received_unix: i64,
        /// Device code: how many times the token endpoint was polled.
        polls: u32,
    },
    /// NTLM handshake (`auth.ntlm`).
    Ntlm {
        stage: String,
    },
}
