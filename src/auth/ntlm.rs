//! NTLM for on-premises Exchange (research/anchors.md §5: `ntlmclient`, pure Rust, NTLMv2).
//!
//! NTLM authenticates a connection, not a request: the probe's HTTP client for this mode drives
//! one pinned HTTP/1.1 connection with its cookies (`transport/pinned.rs`),
//! the handshake is a GET (`auth.ntlm`: NEGOTIATE → 401 CHALLENGE → AUTHENTICATE), and every
//! EWS request afterwards is sent one at a time on that connection ([`NtlmConfig::serial`]),
//! without an `Authorization` header, as Thunderbird and the crate's own EWS example do.
//!
//! Negotiate-only servers: Windows' Negotiate package accepts a raw NTLMSSP token, so the same
//! messages are sent under the `Negotiate` scheme; Kerberos (what Negotiate prefers) is not
//! implemented, and the step says so when the server refuses.
//!
//! Extended Protection for Authentication (channel binding) needs the TLS channel's hash in
//! the NTLMv2 response; `ntlmclient` sends none, so a server that enforces it refuses a correct
//! password, and so does any enforcing server behind TLS inspection. The diagnosis names it.

use super::facts::AuthFacts;
use crate::evidence::{Failure, HttpFacts, Outcome, Step, StepKind};
use crate::transport::{Header, HttpRequest, HttpResponse, Method, Transport};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

pub const ID: &str = "auth.ntlm";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// NTLM credentials and the lock that keeps requests on the authenticated connection in turn.
pub struct NtlmConfig {
    /// `DOMAIN` of `DOMAIN\user`; empty for a UPN.
    pub domain: String,
    /// `user` of `DOMAIN\user`, or the whole UPN (`user@contoso.com`).
    pub user: String,
    pub password: SecretString,
    pub workstation: String,
    serial: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for NtlmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NtlmConfig({}, [redacted])", self.display_user())
    }
}

/// Splits `DOMAIN\user` into (domain, user); a UPN or a bare name keeps an empty domain.
pub fn split_user(name: &str) -> (String, String) {
    match name.split_once('\\') {
        Some((d, u)) => (d.to_string(), u.to_string()),
        None => (String::new(), name.to_string()),
    }
}

impl NtlmConfig {
    pub fn new(name: &str, password: SecretString) -> Self {
        let (domain, user) = split_user(name);
        NtlmConfig {
            domain,
            user,
            password,
            workstation: "EWS-PROBE".into(),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// A replayed bundle: the messages are computed but never sent anywhere.
    pub fn replayed() -> Self {
        NtlmConfig::new("(the recorded user)", SecretString::from("[redacted]"))
    }

    pub fn display_user(&self) -> String {
        if self.domain.is_empty() {
            self.user.clone()
        } else {
            format!("{}\\{}", self.domain, self.user)
        }
    }

    /// Held while one request is on the authenticated connection.
    pub async fn serial(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.serial.lock().await
    }

    pub fn register_secrets(&self, r: &mut crate::transport::redact::Redactor) {
        r.add_secret(self.password.expose_secret());
    }

    fn negotiate(&self) -> Option<String> {
        let flags = ntlmclient::Flags::NEGOTIATE_UNICODE
            | ntlmclient::Flags::REQUEST_TARGET
            | ntlmclient::Flags::NEGOTIATE_NTLM
            | ntlmclient::Flags::NEGOTIATE_ALWAYS_SIGN
            | ntlmclient::Flags::NEGOTIATE_NTLM2_KEY
            | ntlmclient::Flags::NEGOTIATE_WORKSTATION_SUPPLIED;
        let m = ntlmclient::Message::Negotiate(ntlmclient::NegotiateMessage {
            flags,
            supplied_domain: String::new(),
            supplied_workstation: self.workstation.clone(),
            os_version: Default::default(),
        });
        m.to_bytes().ok().map(|b| B64.encode(b))
    }

    /// The AUTHENTICATE message answering a CHALLENGE (base64 in, base64 out).
    fn authenticate(&self, challenge_b64: &str) -> Result<String, String> {
        let bytes = B64
            .decode(challenge_b64.trim())
            .map_err(|e| format!("the NTLM challenge is not base64: {e}"))?;
        let msg = ntlmclient::Message::try_from(bytes.as_slice())
            .map_err(|e| format!("the NTLM challenge cannot be read: {e:?}"))?;
        let ntlmclient::Message::Challenge(c) = msg else {
            return Err("the server's NTLM message is not a CHALLENGE".into());
        };
        let target_info: Vec<u8> = c
            .target_information
            .iter()
            .flat_map(|ie| ie.to_bytes())
            .collect();
        let creds = ntlmclient::Credentials {
            username: self.user.clone(),
            password: self.password.expose_secret().to_string(),
            domain: self.domain.clone(),
        };
        let resp = ntlmclient::respond_challenge_ntlm_v2(
            c.challenge,
            &target_info,
            ntlmclient::get_ntlm_time(),
            &creds,
        );
        let flags = ntlmclient::Flags::NEGOTIATE_UNICODE
            | ntlmclient::Flags::NEGOTIATE_NTLM
            | ntlmclient::Flags::NEGOTIATE_ALWAYS_SIGN
            | ntlmclient::Flags::NEGOTIATE_NTLM2_KEY;
        let m = resp.to_message(&creds, &self.workstation, flags);
        m.to_bytes()
            .map(|b| B64.encode(b))
            .map_err(|e| format!("cannot build the NTLM AUTHENTICATE message: {e:?}"))
    }

    /// The handshake on the endpoint; `offered` are the schemes the challenge step saw. Boxed
    /// as a `Send` future (see `OAuthConfig::acquire`).
    pub fn handshake<'a>(
        &'a self,
        t: &'a Transport,
        endpoint: &'a url::Url,
        offered: &'a [String],
    ) -> futures_util::future::BoxFuture<'a, Step> {
        Box::pin(self.handshake_inner(t, endpoint, offered))
    }

    async fn handshake_inner(
        &self,
        t: &Transport,
        endpoint: &url::Url,
        offered: &[String],
    ) -> Step {
        let offers = |n: &str| offered.iter().any(|x| x.eq_ignore_ascii_case(n));
        // NTLM when offered (or nothing is known); else a raw NTLM token under Negotiate.
        let scheme = if offers("NTLM") || !offers("Negotiate") {
            "NTLM"
        } else {
            "Negotiate"
        };
        let mut step = Step::skipped(ID, StepKind::Auth, None, String::new());
        step.skipped = None;
        step.outcome = Outcome::Fail;
        let started = std::time::Instant::now();
        let facts = |stage: &str| {
            Some(AuthFacts::Ntlm {
                stage: stage.into(),
            })
        };
        let Some(type1) = self.negotiate() else {
            step.detail = "cannot build the NTLM NEGOTIATE message".into();
            step.auth = facts("negotiate");
            return step;
        };
        let send = |token: String| {
            let req = HttpRequest {
                key: ID.into(),
                method: Method::Get,
                url: endpoint.clone(),
                headers: vec![Header {
                    name: "Authorization".into(),
                    value: format!("{scheme} {token}"),
                    sensitive: true,
                }],
                body: None,
                retryable: false,
            };
            async move { t.send(&req).await }
        };
        // The handshake stopped on a transport failure at `stage`.
        let broken = |mut step: Step, e: &crate::transport::TransportError, stage: &str| {
            step.duration_ms = crate::util::millis(started.elapsed());
            let mut f = Failure::from(e);
            f.message = t.redactor().text(&f.message);
            step.detail = f.message.clone();
            step.failure = Some(f);
            step.auth = facts(stage);
            step
        };
        let finish = |mut step: Step, resp: &HttpResponse| {
            let http = HttpFacts::from_response(resp);
            step.http = Some(http);
            step
        };
        let first = match send(type1).await {
            Ok(r) => r,
            Err(e) => return broken(step, &e, "negotiate"),
        };
        let challenge = first
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .find_map(|(_, v)| {
                let (s, tok) = v.split_once(' ')?;
                s.eq_ignore_ascii_case(scheme)
                    .then(|| tok.trim().to_string())
            });
        let Some(challenge) = challenge.filter(|_| first.status == 401) else {
            step.duration_ms = crate::util::millis(started.elapsed());
            if (200..300).contains(&first.status) {
                step.outcome = Outcome::Pass;
                step.detail = format!(
                    "HTTP {} {}: the server asked for no authentication",
                    first.status, first.reason
                );
            } else {
                step.detail = format!(
                    "HTTP {} {} to the {scheme} NEGOTIATE message, no CHALLENGE{}",
                    first.status,
                    first.reason,
                    if scheme == "Negotiate" {
                        ": the server offers only Negotiate and did not take a raw NTLM token; Kerberos is not implemented in this tool"
                    } else {
                        ""
                    }
                );
            }
            step.auth = facts("negotiate");
            return finish(step, &first);
        };
        let type3 = match self.authenticate(&challenge) {
            Ok(t3) => t3,
            Err(e) => {
                step.duration_ms = crate::util::millis(started.elapsed());
                step.detail = e;
                step.auth = facts("challenge");
                return finish(step, &first);
            }
        };
        t.redactor().learn(&type3);
        let last = match send(type3).await {
            Ok(r) => r,
            Err(e) => return broken(step, &e, "authenticate"),
        };
        step.duration_ms = if t.is_replay() {
            crate::util::millis(first.elapsed + last.elapsed)
        } else {
            crate::util::millis(started.elapsed())
        };
        step.attempts.count = 2;
        if last.status == 401 {
            step.detail = format!(
                "HTTP 401 {} after the complete {scheme} handshake as {}",
                last.reason,
                self.display_user()
            );
            step.auth = facts("rejected");
        } else {
            step.outcome = Outcome::Pass;
            step.detail = format!(
                "HTTP {} {}: {scheme} handshake complete as {} (connection kept for the SOAP requests)",
                last.status,
                last.reason,
                self.display_user()
            );
            step.auth = facts("authenticated");
        }
        finish(step, &last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_forms() {
        assert_eq!(
            split_user("CONTOSO\\j.smith"),
            ("CONTOSO".into(), "j.smith".into())
        );
        assert_eq!(
            split_user("j.smith@contoso.com"),
            (String::new(), "j.smith@contoso.com".into())
        );
        let c = NtlmConfig::new("CONTOSO\\j.smith", SecretString::from("pw"));
        assert_eq!(c.display_user(), "CONTOSO\\j.smith");
        assert!(!format!("{c:?}").contains("pw"));
        assert!(c.negotiate().unwrap().starts_with("TlRMTVNTUAAB"));
        assert!(c.authenticate("bm90IG50bG0=").is_err());
    }
}
