//! The one redaction function for every output path: traces, recordings, reports, errors.
//!
//! Two rules (research/security.md SE-4): credential headers keep only their scheme word
//! (`Bearer [redacted]`), and every known secret value (password, token, the Basic header's
//! base64) is replaced wherever it appears, so a secret echoed back in a body or an error
//! message is still caught.

use base64::Engine;

pub const MASK: &str = "[redacted]";

/// Headers whose values are credentials or session material.
const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

#[derive(Default, Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Registers a secret value (and its base64 and `user:secret` Basic forms are added by
    /// [`Redactor::add_basic`]). Values shorter than 3 characters are still masked in headers
    /// but not searched for in free text, where they would mangle everything.
    pub fn add_secret(&mut self, secret: &str) {
        if secret.len() >= 3 && !self.secrets.iter().any(|s| s == secret) {
            self.secrets.push(secret.to_string());
            // Longest first, so a secret containing another is masked whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Registers a Basic credential: the password and the header's base64 form.
    pub fn add_basic(&mut self, user: &str, password: &str) {
        self.add_secret(password);
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.add_secret(&b64);
    }

    /// Masks every known secret in free text.
    pub fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// A header value as it may be shown.
    pub fn header(&self, name: &str, value: &str) -> String {
        if SENSITIVE_HEADERS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
        {
            match value.split_once(' ') {
                Some((scheme, _))
                    if name.to_ascii_lowercase().contains("authorization")
                        && !scheme.is_empty() =>
                {
                    format!("{scheme} {MASK}")
                }
                _ => MASK.to_string(),
            }
        } else {
            self.text(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_credential_headers_keeping_the_scheme() {
        let r = Redactor::default();
        assert_eq!(
            r.header("Authorization", "Bearer eyJ0eXAi.x.y"),
            "Bearer [redacted]"
        );
        assert_eq!(
            r.header("proxy-authorization", "NTLM TlRMTVNT"),
            "NTLM [redacted]"
        );
        assert_eq!(r.header("Cookie", "a=b; c=d"), "[redacted]");
        assert_eq!(r.header("Set-Cookie", "X-BackEndCookie=abc"), "[redacted]");
        assert_eq!(r.header("X-FEServer", "AM0PR06CA0096"), "AM0PR06CA0096");
    }

    #[test]
    fn masks_known_secrets_anywhere() {
        let mut r = Redactor::default();
        r.add_basic("alice", "S3cret!pw");
        r.add_secret("tok-123456");
        r.add_secret("ab"); // too short to search for
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:S3cret!pw");
        let s = format!("pw=S3cret!pw header=Basic {b64} token tok-123456 ab");
        assert_eq!(
            r.text(&s),
            "pw=[redacted] header=Basic [redacted] token [redacted] ab"
        );
        assert_eq!(r.header("X-Echo", "S3cret!pw"), "[redacted]");
    }
}
