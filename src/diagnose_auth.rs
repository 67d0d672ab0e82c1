//! Diagnosis rules for authentication evidence (part of [`crate::diagnose`], pure like it):
//! the challenge (which schemes the server offers against the chosen `--auth`), the token
//! endpoint's errors (AADSTS codes with a plain-language hint, research/security.md §2.6) and
//! the access token's claims (audience, permissions, tenant, expiry; OA-9), judged before any
//! EWS request is sent.

use super::{Code, Severity, Status};
use crate::auth::AuthMode;
use crate::auth::facts::{AuthFacts, Challenge, Claims, TokenError};
use crate::evidence::{Evidence, Outcome, Step, StepKind};
use crate::transport::FailureKind;

/// The `tid` of personal Microsoft accounts (MSAL `TokenClaims`).
pub const MSA_TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
/// Audiences Exchange Online accepts for EWS.
const EWS_AUDIENCES: &[&str] = &[
    "https://outlook.office365.com",
    "https://outlook.office.com",
    "00000002-0000-0ff1-ce00-000000000000",
];

pub struct AuthCause {
    pub code: Code,
    pub severity: Severity,
    pub summary: String,
    pub remedy: String,
    pub evidence: String,
    /// The failing step and its one-line detail (for feature reasons).
    pub short: String,
    /// The sign-in failed: no EWS request could be made with these credentials.
    pub blocks: bool,
}

/// What is wrong with a token's claims for EWS, if anything: the code and a short reason.
pub fn claim_problem(c: &Claims, mode: AuthMode, now_unix: i64) -> Option<(Code, String)> {
    if c.tid.as_deref() == Some(MSA_TENANT) {
        return Some((
            Code::ConsumerAccountNoEws,
            format!("tid {MSA_TENANT} is the personal Microsoft account tenant"),
        ));
    }
    if !c.is_jwt {
        return Some((
            Code::TokenInvalid,
            "the access token is not a JWT; Exchange Online issues JWTs to work accounts, opaque tokens go to personal Microsoft accounts".into(),
        ));
    }
    if let Some(exp) = c.exp
        && exp <= now_unix
    {
        return Some((
            Code::TokenExpired,
            format!("exp {exp} is not after the time it was received ({now_unix})"),
        ));
    }
    let aud = c.aud.as_deref().unwrap_or("").trim_end_matches('/');
    if !EWS_AUDIENCES.iter().any(|a| a.eq_ignore_ascii_case(aud)) {
        return Some((
            Code::TokenWrongAudience,
            format!(
                "aud {} is not Exchange Online (https://outlook.office365.com)",
                if aud.is_empty() { "(none)" } else { aud }
            ),
        ));
    }
    let has = |list: &[String], name: &str| list.iter().any(|x| x.eq_ignore_ascii_case(name));
    match mode {
        AuthMode::ClientCredentials => {
            if !has(&c.roles, "full_access_as_app") && !has(&c.roles, "EWS.AccessAsApp") {
                return Some((
                    Code::TokenMissingPermission,
                    format!(
                        "roles [{}] has neither full_access_as_app nor EWS.AccessAsApp",
                        c.roles.join(" ")
                    ),
                ));
            }
        }
        _ => {
            if !has(&c.scp, "EWS.AccessAsUser.All") {
                return Some((
                    Code::TokenMissingPermission,
                    format!("scp [{}] lacks EWS.AccessAsUser.All", c.scp.join(" ")),
                ));
            }
        }
    }
    None
}

fn token_error_line(s: &Step, e: &TokenError) -> String {
    let mut line = format!("{}: {}; error {}", s.id, s.detail, e.error);
    if !e.error_codes.is_empty() {
        let codes: Vec<String> = e.error_codes.iter().map(|c| format!("AADSTS{c}")).collect();
        line.push_str(&format!("; error_codes {}", codes.join(" ")));
    }
    if let Some(d) = &e.description {
        line.push_str(&format!("; \"{d}\""));
    }
    for (k, v) in [
        ("trace_id", &e.trace_id),
        ("correlation_id", &e.correlation_id),
        ("timestamp", &e.timestamp),
    ] {
        if let Some(v) = v {
            line.push_str(&format!("; {k} {v}"));
        }
    }
    line
}

/// The plain-language meaning of a token endpoint error (branching on `error` and
/// `error_codes`, never on the description text: OA-7).
fn token_error_cause(e: &TokenError, mode: AuthMode) -> (Code, String, String) {
    let has = |c: u32| e.error_codes.contains(&c);
    let aad = e
        .error_codes
        .first()
        .map(|c| format!("AADSTS{c}"))
        .unwrap_or_else(|| e.error.clone());
    if has(50020) {
        return (
            Code::ConsumerAccountNoEws,
            format!("the sign-in was refused ({aad}): the account is not a member of the tenant — a personal Microsoft account (Outlook.com, Hotmail, Live) or a guest; EWS with OAuth needs a work or school mailbox"),
            "Sign in with a Microsoft 365 work or school account of the tenant that hosts the mailbox. Personal Microsoft accounts cannot use EWS.".into(),
        );
    }
    if has(700016) || has(700011) || has(90002) {
        return (
            Code::AppNotFound,
            format!("the identity platform does not know the application or tenant ({aad}): wrong --client-id, wrong --tenant, or the app was never consented in that tenant"),
            "Check --client-id against the app registration's Application (client) ID and --tenant against the directory (tenant) ID; a multi-tenant app needs consent in the mailbox's tenant first.".into(),
        );
    }
    if has(65001) || has(90094) || e.error == "consent_required" {
        return (
            Code::ConsentMissing,
            format!(
                "the application lacks consent for EWS ({aad}): no user or admin has granted its permission"
            ),
            if mode == AuthMode::ClientCredentials {
                "A tenant admin grants admin consent for full_access_as_app (Office 365 Exchange Online) in the app registration's API permissions.".into()
            } else {
                "Grant consent for EWS.AccessAsUser.All: the user consents at sign-in, or a tenant admin grants admin consent in the app registration.".into()
            },
        );
    }
    if has(7000215) || has(7000222) || has(700027) || has(50012) || e.error == "invalid_client" {
        return (
            Code::InvalidCredentials,
            format!("the identity platform refused the application's credential ({aad}): the client secret is wrong or expired, or the certificate is not the one registered"),
            "Create a new client secret (or upload the certificate's public part) under the app registration's Certificates & secrets, and pass it with --client-secret-env or --client-cert.".into(),
        );
    }
    if has(50076) || has(50079) || e.error == "interaction_required" {
        return (
            Code::MfaRequired,
            format!("the sign-in needs multi-factor authentication ({aad})"),
            "Use --auth device-code and complete the MFA prompt in the browser; if MFA is not registered yet, register it at https://aka.ms/mfasetup first.".into(),
        );
    }
    if e.error == "authorization_declined" {
        return (
            Code::SignInFailed,
            "the user declined the sign-in request (authorization_declined)".into(),
            "Run again and accept the sign-in in the browser.".into(),
        );
    }
    if e.error == "expired_token" || has(70019) {
        return (
            Code::SignInFailed,
            "the device code expired before the sign-in was completed (expired_token)".into(),
            "Run again and complete the sign-in in the browser within the time shown.".into(),
        );
    }
    if e.error == "bad_verification_code" || has(70018) {
        return (
            Code::SignInFailed,
            "the identity platform did not recognise the device code (bad_verification_code)"
                .into(),
            "Run again; if it persists, report it with the trace_id and correlation_id.".into(),
        );
    }
    (
        Code::SignInFailed,
        format!("the token endpoint refused the request ({} {aad})", e.error),
        "Look the AADSTS code up in Microsoft's error reference (https://login.microsoftonline.com/error?code=NNNNN); give an admin the trace_id and correlation_id.".into(),
    )
}

/// Why the identity platform refused a cached refresh token, in plain language, with the
/// fields support needs (OA-7). The refresh-specific codes first (entra-docs
/// `reference-error-codes.md`), then the sign-in causes above: an MFA or consent requirement
/// is named, not hidden behind "the refresh failed".
pub fn refresh_refusal(e: &TokenError, mode: AuthMode) -> String {
    let has = |c: u32| e.error_codes.contains(&c);
    let aad = e
        .error_codes
        .first()
        .map(|c| format!("AADSTS{c}"))
        .unwrap_or_else(|| e.error.clone());
    let mut line = if has(70008) || has(700082) {
        format!("it expired, unused for too long ({aad})")
    } else if has(700084) {
        format!("it was issued with a fixed 24-hour lifetime that has passed ({aad})")
    } else if has(50173) || has(50133) || has(50132) {
        format!(
            "it was revoked: the password was changed or reset, or an admin or the user revoked the sessions ({aad})"
        )
    } else if has(70043) || has(70044) {
        format!("a Conditional Access sign-in frequency policy requires signing in again ({aad})")
    } else {
        // The sign-in causes (MFA, consent, unknown app …) already name the code.
        token_error_cause(e, mode).1
    };
    line.push_str(&format!("; error {}", e.error));
    for (k, v) in [
        ("trace_id", &e.trace_id),
        ("correlation_id", &e.correlation_id),
    ] {
        if let Some(v) = v {
            line.push_str(&format!("; {k} {v}"));
        }
    }
    line
}

fn scheme_of(mode: AuthMode) -> &'static [&'static str] {
    match mode {
        AuthMode::Basic => &["Basic"],
        AuthMode::Ntlm => &["NTLM", "Negotiate"],
        AuthMode::Bearer | AuthMode::DeviceCode | AuthMode::ClientCredentials => &["Bearer"],
        AuthMode::None => &[],
    }
}

/// The `--auth` to suggest for what the server offers.
pub fn suggest(c: &Challenge) -> Option<&'static str> {
    let offers = |n: &str| c.schemes.iter().any(|x| x.eq_ignore_ascii_case(n));
    if offers("Bearer") {
        Some("--auth device-code (delegated) or --auth client-credentials (app-only)")
    } else if offers("NTLM") || offers("Negotiate") {
        Some("--auth ntlm")
    } else if offers("Basic") {
        Some("--auth basic")
    } else {
        None
    }
}

/// Every authentication cause in the evidence.
pub fn causes(ev: &Evidence) -> Vec<AuthCause> {
    let mut out = Vec::new();
    for (i, s) in ev.steps.iter().enumerate() {
        if s.kind != StepKind::Auth {
            continue;
        }
        // A refused refresh token is followed by a new sign-in, whose steps decide; the
        // refresh step only says why it was not usable.
        if s.id == crate::auth::oauth::REFRESH_ID
            && ev.steps[i + 1..].iter().any(|x| {
                x.kind == StepKind::Auth
                    && x.id != crate::auth::challenge::ID
                    && x.id != crate::auth::oauth::REFRESH_ID
            })
        {
            continue;
        }
        match &s.auth {
            Some(AuthFacts::Challenge(c)) => {
                let want = scheme_of(ev.auth);
                if want.is_empty() || c.schemes.is_empty() {
                    continue;
                }
                let offered = want
                    .iter()
                    .any(|w| c.schemes.iter().any(|x| x.eq_ignore_ascii_case(w)));
                if !offered {
                    out.push(AuthCause {
                        code: Code::AuthSchemeNotOffered,
                        severity: Status::Warning,
                        summary: format!(
                            "--auth {} sends {}, but the server offers only {}",
                            ev.auth.as_str(),
                            want.join(" or "),
                            c.schemes.join(", ")
                        ),
                        remedy: match suggest(c) {
                            Some(s) => format!("Use {s}."),
                            None => "Use a scheme the server offers.".into(),
                        },
                        evidence: format!("{}: {}", s.id, s.detail),
                        short: format!("{}: {}", s.id, s.detail),
                        blocks: false,
                    });
                }
            }
            Some(AuthFacts::Token {
                error,
                claims,
                received_unix,
                ..
            }) if s.outcome == Outcome::Fail => {
                let (code, summary, remedy) = if let Some(e) = error {
                    token_error_cause(e, ev.auth)
                } else if let Some(c) = claims {
                    match claim_problem(c, ev.auth, *received_unix) {
                        Some((code, why)) => {
                            let remedy = match code {
                                Code::ConsumerAccountNoEws => "Sign in with a Microsoft 365 work or school account; personal Microsoft accounts cannot use EWS.".to_string(),
                                Code::TokenExpired => "Check this machine's clock, then run again for a fresh token.".into(),
                                Code::TokenWrongAudience => "Request the token for EWS: scope https://outlook.office365.com/EWS.AccessAsUser.All (delegated) or https://outlook.office365.com/.default (app-only).".into(),
                                Code::TokenMissingPermission if ev.auth == AuthMode::ClientCredentials => "Add the application permission full_access_as_app (Office 365 Exchange Online) to the app registration and grant admin consent; new role assignments can take 30 minutes or more to reach Exchange.".into(),
                                Code::TokenMissingPermission => "Add the delegated permission EWS.AccessAsUser.All (Office 365 Exchange Online) to the app registration and consent to it.".into(),
                                _ => "Check the app registration and the tenant, then sign in again.".into(),
                            };
                            (
                                code,
                                format!(
                                    "the access token cannot be used for EWS: {why}; no EWS request was sent with it"
                                ),
                                remedy,
                            )
                        }
                        None => continue,
                    }
                } else {
                    (
                        Code::SignInFailed,
                        format!("the sign-in did not complete: {}", s.detail),
                        "Check --login-authority, --tenant and --client-id, and that the identity platform is reachable from here.".into(),
                    )
                };
                let evidence = match error {
                    Some(e) => token_error_line(s, e),
                    None => format!("{}: {}", s.id, s.detail),
                };
                out.push(AuthCause {
                    code,
                    severity: Status::Critical,
                    summary,
                    remedy,
                    evidence,
                    short: format!("{}: {}", s.id, s.detail),
                    blocks: true,
                });
            }
            Some(AuthFacts::Ntlm { stage })
                if s.outcome == Outcome::Fail && stage == "rejected" =>
            {
                out.push(AuthCause {
                    code: Code::InvalidCredentials,
                    severity: Status::Critical,
                    summary: format!("the server refused the NTLM credentials after a complete handshake ({}). If the user name and password are right, Extended Protection for Authentication (channel binding) may be refusing NTLM: this client sends no channel binding token, and TLS inspection or a TLS-terminating proxy breaks channel binding for any client", s.detail),
                    remedy: "Check the user name (DOMAIN\\user or UPN) and password, and that the account is not locked or expired; if they are right, probe from a network path without TLS inspection, or ask the Exchange admin whether Extended Protection is enforced on the EWS virtual directory.".into(),
                    evidence: format!("{}: {}", s.id, s.detail),
                    short: format!("{}: {}", s.id, s.detail),
                    blocks: true,
                });
            }
            _ if s.outcome == Outcome::Fail && s.id != crate::auth::challenge::ID => {
                // A token step that got no answer at all (or the device code request failed).
                let code = match s.failure.as_ref().map(|f| f.kind) {
                    Some(FailureKind::Dns) => Code::DnsFailure,
                    Some(FailureKind::Tls) => Code::TlsFailure,
                    Some(FailureKind::Timeout) => Code::Timeout,
                    Some(FailureKind::Connect) => Code::ConnectionFailed,
                    _ => Code::SignInFailed,
                };
                out.push(AuthCause {
                    code,
                    severity: Status::Critical,
                    summary: format!("the sign-in could not complete: {}", s.detail),
                    remedy: "Check --login-authority, --tenant and --client-id, and that the identity platform (login.microsoftonline.com) is reachable from here (proxy, firewall).".into(),
                    evidence: format!("{}: {}", s.id, s.detail),
                    short: format!("{}: {}", s.id, s.detail),
                    blocks: true,
                });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::diagnose;
    use super::*;
    use crate::auth::facts::{Flow, TokenError};
    use crate::target::Mailbox;

    fn evidence(auth: AuthMode, steps: Vec<Step>) -> Evidence {
        Evidence {
            mailbox: "adele@contoso.com".into(),
            endpoint: Some("https://outlook.office365.com/EWS/Exchange.asmx".into()),
            auth,
            impersonating: false,
            write: false,
            steps,
            duration_ms: 1.0,
            discovery: None,
        }
    }

    fn auth_step(id: &str, outcome: Outcome, facts: AuthFacts) -> Step {
        let mut s = Step::skipped(id, StepKind::Auth, None, String::new());
        s.skipped = None;
        s.outcome = outcome;
        s.detail = "HTTP 400 Bad Request".into();
        s.auth = Some(facts);
        s
    }

    fn token_fail(error: &str, code: u32) -> Step {
        auth_step(
            "auth.token",
            Outcome::Fail,
            AuthFacts::Token {
                flow: Flow::ClientSecret,
                error: Some(Box::new(TokenError {
                    error: error.into(),
                    error_codes: vec![code],
                    description: Some(format!("AADSTS{code}: text")),
                    trace_id: Some("trace-1".into()),
                    correlation_id: Some("corr-1".into()),
                    timestamp: None,
                })),
                claims: None,
                received_unix: 0,
                polls: 1,
            },
        )
    }

    fn run(auth: AuthMode, steps: Vec<Step>) -> super::super::Verdict {
        let mb = Mailbox::parse("adele@contoso.com").unwrap();
        diagnose(&mb, &evidence(auth, steps))
    }

    #[test]
    fn token_error_codes_map_to_diagnoses() {
        for (error, code, want) in [
            ("invalid_grant", 50020, Code::ConsumerAccountNoEws),
            ("unauthorized_client", 700016, Code::AppNotFound),
            ("invalid_grant", 65001, Code::ConsentMissing),
            ("invalid_client", 7000215, Code::InvalidCredentials),
            ("invalid_grant", 50076, Code::MfaRequired),
            ("invalid_grant", 50079, Code::MfaRequired),
            ("authorization_declined", 0, Code::SignInFailed),
            ("expired_token", 70019, Code::SignInFailed),
            ("invalid_request", 90014, Code::SignInFailed),
        ] {
            let v = run(AuthMode::ClientCredentials, vec![token_fail(error, code)]);
            assert_eq!(v.diagnoses[0].code, want, "{error} {code}");
            assert_eq!(v.status, Status::Critical);
            let ev = v.diagnoses[0].evidence.join(" ");
            assert!(
                ev.contains("trace_id trace-1") && ev.contains("correlation_id corr-1"),
                "{ev}"
            );
            assert!(
                v.features
                    .iter()
                    .all(|f| f.status == super::super::FeatureStatus::Unavailable)
            );
        }
    }

    fn refusal(error: &str, code: u32) -> TokenError {
        TokenError {
            error: error.into(),
            error_codes: vec![code],
            description: None,
            trace_id: Some("trace-1".into()),
            correlation_id: Some("corr-1".into()),
            timestamp: None,
        }
    }

    #[test]
    fn refresh_refusals_say_why_in_plain_language() {
        for (error, code, needle) in [
            ("invalid_grant", 70008, "expired, unused for too long"),
            ("invalid_grant", 700082, "expired, unused for too long"),
            ("invalid_grant", 50173, "revoked"),
            ("invalid_grant", 70044, "sign-in frequency"),
            ("invalid_grant", 50076, "multi-factor authentication"),
            ("interaction_required", 50079, "multi-factor authentication"),
            ("invalid_grant", 65001, "lacks consent"),
            ("invalid_grant", 90014, "refused the request"),
        ] {
            let why = refresh_refusal(&refusal(error, code), AuthMode::DeviceCode);
            assert!(why.contains(needle), "{code}: {why}");
            assert!(why.contains(&format!("AADSTS{code}")), "{why}");
            assert!(
                why.contains("trace_id trace-1") && why.contains("correlation_id corr-1"),
                "{why}"
            );
        }
    }

    /// A refused refresh step is not the run's verdict when a sign-in followed it; alone (the
    /// refreshed token's claims were unusable) it is judged like any token step.
    #[test]
    fn a_refused_refresh_followed_by_a_sign_in_is_not_a_cause() {
        let mut refresh = token_fail("invalid_grant", 50076);
        refresh.id = crate::auth::oauth::REFRESH_ID.into();
        let mut signed_in = auth_step(
            "auth.token",
            Outcome::Pass,
            AuthFacts::Token {
                flow: Flow::DeviceCode,
                error: None,
                claims: None,
                received_unix: 0,
                polls: 1,
            },
        );
        signed_in.detail = "HTTP 200 OK".into();
        let v = run(AuthMode::DeviceCode, vec![refresh.clone(), signed_in]);
        assert!(v.diagnoses.is_empty(), "{:?}", v.diagnoses);
        let alone = run(AuthMode::DeviceCode, vec![refresh]);
        assert_eq!(alone.diagnoses[0].code, Code::MfaRequired);
    }

    #[test]
    fn claims_are_judged() {
        let ok = Claims {
            aud: Some("https://outlook.office365.com/".into()),
            scp: vec!["EWS.AccessAsUser.All".into()],
            roles: vec!["full_access_as_app".into()],
            exp: Some(2000),
            is_jwt: true,
            ..Claims::default()
        };
        assert_eq!(claim_problem(&ok, AuthMode::DeviceCode, 1000), None);
        assert_eq!(claim_problem(&ok, AuthMode::ClientCredentials, 1000), None);
        let code = |c: &Claims, m| claim_problem(c, m, 1000).map(|p| p.0);
        let mut c = ok.clone();
        c.exp = Some(999);
        assert_eq!(code(&c, AuthMode::DeviceCode), Some(Code::TokenExpired));
        let mut c = ok.clone();
        c.aud = Some("https://graph.microsoft.com".into());
        assert_eq!(
            code(&c, AuthMode::DeviceCode),
            Some(Code::TokenWrongAudience)
        );
        let mut c = ok.clone();
        c.scp = vec!["Mail.Read".into()];
        assert_eq!(
            code(&c, AuthMode::DeviceCode),
            Some(Code::TokenMissingPermission)
        );
        let mut c = ok.clone();
        c.roles = vec![];
        assert_eq!(
            code(&c, AuthMode::ClientCredentials),
            Some(Code::TokenMissingPermission)
        );
        let mut c = ok.clone();
        c.tid = Some(MSA_TENANT.into());
        assert_eq!(
            code(&c, AuthMode::DeviceCode),
            Some(Code::ConsumerAccountNoEws)
        );
        assert_eq!(
            code(&Claims::default(), AuthMode::DeviceCode),
            Some(Code::TokenInvalid)
        );
    }

    #[test]
    fn challenge_suggests_the_offered_scheme() {
        let ch = |schemes: &[&str]| {
            auth_step(
                "auth.challenge",
                Outcome::Pass,
                AuthFacts::Challenge(Challenge {
                    schemes: schemes.iter().map(|s| s.to_string()).collect(),
                    ..Challenge::default()
                }),
            )
        };
        let v = run(AuthMode::Basic, vec![ch(&["Negotiate", "NTLM"])]);
        let d = v
            .diagnoses
            .iter()
            .find(|d| d.code == Code::AuthSchemeNotOffered)
            .unwrap();
        assert_eq!(d.remedy, "Use --auth ntlm.");
        assert_eq!(d.severity, Status::Warning);
        let v = run(AuthMode::Ntlm, vec![ch(&["Bearer"])]);
        let d = v
            .diagnoses
            .iter()
            .find(|d| d.code == Code::AuthSchemeNotOffered)
            .unwrap();
        assert!(d.remedy.contains("--auth device-code"));
        // Offered: nothing to say.
        let v = run(AuthMode::DeviceCode, vec![ch(&["Bearer", "Basic"])]);
        assert!(
            v.diagnoses
                .iter()
                .all(|d| d.code != Code::AuthSchemeNotOffered)
        );
    }

    #[test]
    fn ntlm_rejected_after_handshake_names_extended_protection() {
        let s = auth_step(
            "auth.ntlm",
            Outcome::Fail,
            AuthFacts::Ntlm {
                stage: "rejected".into(),
            },
        );
        let v = run(AuthMode::Ntlm, vec![s]);
        assert_eq!(v.diagnoses[0].code, Code::InvalidCredentials);
        assert!(v.diagnoses[0].summary.contains("Extended Protection"));
    }
}
