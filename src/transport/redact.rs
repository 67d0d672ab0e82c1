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

/// OAuth fields whose values are credentials wherever they appear, as form fields
/// (`client_secret=…`) or JSON members (`"access_token":"…"`): token requests and responses
/// pass through the transport before the secret in them is known (research/security.md §3.2).
pub const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "client_assertion",
    "device_code",
    "refresh_token",
    "access_token",
    "id_token",
    "password",
];

#[derive(Default)]
pub struct Redactor {
    secrets: Vec<String>,
    /// Secrets learned during the run (an access token fetched by the probe).
    learned: std::sync::RwLock<Vec<String>>,
}

impl Clone for Redactor {
    fn clone(&self) -> Self {
        Redactor {
            secrets: self.secrets.clone(),
            learned: std::sync::RwLock::new(
                self.learned
                    .read()
                    .map(|v| v.clone())
                    .unwrap_or_else(|p| p.into_inner().clone()),
            ),
        }
    }
}

/// Masks the value of each [`SECRET_FIELDS`] member in form or JSON text. A JWT keeps its
/// header and claims (they explain a refusal and are not usable without the signature); the
/// signature is masked.
/// Per [`SECRET_FIELDS`] entry: a finder for the bare name (does the field occur at all?), its
/// JSON form `"field"` and its form form `field=`. Built once: `text` runs on every header
/// value and body shown, so most calls must cost one SIMD scan per field and nothing more.
struct Field {
    name: memchr::memmem::Finder<'static>,
    quoted: String,
    eq: String,
}

static FIELDS: std::sync::LazyLock<Vec<Field>> = std::sync::LazyLock::new(|| {
    SECRET_FIELDS
        .iter()
        .map(|f| Field {
            name: memchr::memmem::Finder::new(f.as_bytes()),
            quoted: format!("\"{f}\""),
            eq: format!("{f}="),
        })
        .collect()
});

fn contains(hay: &str, needle: &str) -> bool {
    memchr::memmem::find(hay.as_bytes(), needle.as_bytes()).is_some()
}

fn mask_fields(s: &str) -> String {
    let mut out = s.to_string();
    for field in FIELDS.iter() {
        if field.name.find(out.as_bytes()).is_none() {
            continue;
        }
        // JSON: "field" : "value"
        let quoted = field.quoted.as_str();
        let mut from = 0;
        while let Some(pos) = out[from..].find(quoted) {
            let after = from + pos + quoted.len();
            let rest = &out[after..];
            let trimmed = rest.trim_start();
            let Some(r2) = trimmed.strip_prefix(':') else {
                from = after;
                continue;
            };
            let r3 = r2.trim_start();
            let Some(r4) = r3.strip_prefix('"') else {
                from = after;
                continue;
            };
            let start = out.len() - r4.len();
            let mut end = start;
            let bytes = out.as_bytes();
            while end < bytes.len() && bytes[end] != b'"' {
                end += if bytes[end] == b'\\' { 2 } else { 1 };
            }
            let end = end.min(out.len());
            let masked = mask_value(&out[start..end]);
            out.replace_range(start..end, &masked);
            from = start + masked.len();
        }
        // Form: field=value at the start, or after '&', '?' or whitespace.
        let eq = field.eq.as_str();
        let mut from = 0;
        while let Some(pos) = out[from..].find(eq) {
            let at = from + pos;
            let boundary = at == 0
                || matches!(
                    out.as_bytes()[at - 1],
                    b'&' | b'?' | b' ' | b'\n' | b'\r' | b'\t'
                );
            let start = at + eq.len();
            if !boundary {
                from = start;
                continue;
            }
            let end = out[start..]
                .find(|c: char| c == '&' || c.is_whitespace())
                .map(|e| start + e)
                .unwrap_or(out.len());
            let masked = mask_value(&out[start..end]);
            out.replace_range(start..end, &masked);
            from = start + masked.len();
        }
    }
    out
}

fn mask_value(v: &str) -> String {
    if v.is_empty() || v == MASK {
        return v.to_string();
    }
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() == 3 && parts[0].starts_with("eyJ") && !parts[2].is_empty() {
        format!("{}.{}.{MASK}", parts[0], parts[1])
    } else {
        MASK.to_string()
    }
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

    /// Registers a secret learned during the run (through a shared reference: the
    /// transport already holds the redactor).
    pub fn learn(&self, secret: &str) {
        if secret.len() < 3 {
            return;
        }
        let mut l = self.learned.write().unwrap_or_else(|p| p.into_inner());
        if !l.iter().any(|s| s == secret) {
            l.push(secret.to_string());
            l.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Masks every known secret in free text, and the values of OAuth secret fields.
    pub fn text(&self, s: &str) -> String {
        let mut out = mask_fields(s);
        for secret in &self.secrets {
            if contains(&out, secret) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        let learned = self.learned.read().unwrap_or_else(|p| p.into_inner());
        for secret in learned.iter() {
            if contains(&out, secret) {
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
        r.learn("learned-token-xyz");
        assert_eq!(r.text("a learned-token-xyz b"), "a [redacted] b");
    }

    #[test]
    fn masks_oauth_fields_in_forms_and_json() {
        let r = Redactor::default();
        let form = "grant_type=client_credentials&client_id=abc&client_secret=s3cr%2Bt&scope=x";
        assert_eq!(
            r.text(form),
            "grant_type=client_credentials&client_id=abc&client_secret=[redacted]&scope=x"
        );
        assert_eq!(
            r.text("client_assertion_type=jwt&client_assertion=eyJa.eyJb.sig&device_code=DC1"),
            "client_assertion_type=jwt&client_assertion=eyJa.eyJb.[redacted]&device_code=[redacted]"
        );
        let json = r#"{"token_type":"Bearer","access_token" : "eyJhdr.eyJclaims.SIGNATURE","refresh_token":"0.AR\"x","device_code":"GAQAB"}"#;
        let out = r.text(json);
        assert!(
            out.contains(r#""access_token" : "eyJhdr.eyJclaims.[redacted]""#),
            "{out}"
        );
        assert!(out.contains(r#""refresh_token":"[redacted]""#), "{out}");
        assert!(out.contains(r#""device_code":"[redacted]""#), "{out}");
        assert!(!out.contains("SIGNATURE") && !out.contains("GAQAB"));
        // Not a field boundary: left alone.
        assert_eq!(r.text("my_password=x"), "my_password=x");
    }
}
