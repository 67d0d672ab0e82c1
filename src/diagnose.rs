//! The diagnosis: a pure function from the target and the evidence to diagnoses, feature
//! verdicts and a status. No I/O, no clock. Every rule reads like a row of a table — a
//! condition on one step's evidence, the code it gives, a summary and a remedy — and has a
//! unit test here and an integration test on a recorded response.
//!
//! Order of precedence (most specific first): who the account is (consumer), what the token
//! or sign-in said, tenant policy, then per-mailbox, per-folder, and finally generic
//! transport and server causes. Codes are a contract (DESIGN §6): add, never rename.

use crate::auth::AuthMode;
use crate::evidence::{Evidence, Outcome, Step, StepKind};

#[path = "diagnose_auth.rs"]
mod auth_rules;
use crate::ews::response::BodyError;
use crate::probe::plan::{self, Feature};
use crate::target::{AccountKind, Mailbox};
use crate::transport::FailureKind;
pub use auth_rules::{MSA_TENANT, claim_problem, refresh_refusal, suggest};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Unknown,
    Warning,
    Critical,
}

impl Status {
    /// The JSON name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// Nagios/Icinga exit code (DESIGN §5).
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// Severity of one diagnosis; the run's status is the worst (critical > warning > unknown > ok).
pub type Severity = Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Code {
    // Listed most specific first: the derived order is the report order.
    ConsumerAccountNoEws,
    TokenExpired,
    TokenWrongAudience,
    TokenInvalid,
    BasicAuthRejected,
    EwsAccessBlocked,
    AccountLocked,
    InvalidCredentials,
    MailboxNotFound,
    ImpersonationDenied,
    MailboxMoving,
    MailboxUnavailable,
    FolderAccessDenied,
    CleanupFailed,
    Throttled,
    SchemaMismatch,
    NotEwsEndpoint,
    TlsFailure,
    DnsFailure,
    ConnectionFailed,
    Timeout,
    AutodiscoverFailed,
    ServerError,
    UnexpectedResponse,
    // Authentication (issue 4), added at the end: codes are never reordered.
    AppNotFound,
    ConsentMissing,
    MfaRequired,
    SignInFailed,
    TokenMissingPermission,
    AuthSchemeNotOffered,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::ConsumerAccountNoEws => "consumer_account_no_ews",
            Code::TokenExpired => "token_expired",
            Code::TokenWrongAudience => "token_wrong_audience",
            Code::TokenInvalid => "token_invalid",
            Code::BasicAuthRejected => "basic_auth_rejected",
            Code::EwsAccessBlocked => "ews_access_blocked",
            Code::AccountLocked => "account_locked",
            Code::InvalidCredentials => "invalid_credentials",
            Code::MailboxNotFound => "mailbox_not_found",
            Code::ImpersonationDenied => "impersonation_denied",
            Code::MailboxMoving => "mailbox_moving",
            Code::MailboxUnavailable => "mailbox_unavailable",
            Code::FolderAccessDenied => "folder_access_denied",
            Code::CleanupFailed => "cleanup_failed",
            Code::Throttled => "throttled",
            Code::SchemaMismatch => "schema_mismatch",
            Code::NotEwsEndpoint => "not_ews_endpoint",
            Code::TlsFailure => "tls_failure",
            Code::DnsFailure => "dns_failure",
            Code::ConnectionFailed => "connection_failed",
            Code::Timeout => "timeout",
            Code::AutodiscoverFailed => "autodiscover_failed",
            Code::ServerError => "server_error",
            Code::UnexpectedResponse => "unexpected_response",
            Code::AppNotFound => "app_not_found",
            Code::ConsentMissing => "consent_missing",
            Code::MfaRequired => "mfa_required",
            Code::SignInFailed => "sign_in_failed",
            Code::TokenMissingPermission => "token_missing_permission",
            Code::AuthSchemeNotOffered => "auth_scheme_not_offered",
        }
    }

    /// Codes that say the probe could not test, rather than that the mailbox cannot do it.
    fn leaves_untested(self) -> bool {
        matches!(self, Code::SchemaMismatch | Code::Throttled)
    }
}

impl Serialize for Diagnosis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Diagnosis", 5)?;
        st.serialize_field("code", self.code.as_str())?;
        st.serialize_field("severity", &self.severity)?;
        st.serialize_field("summary", &self.summary)?;
        st.serialize_field("remedy", &self.remedy)?;
        st.serialize_field("evidence", &self.evidence)?;
        st.end()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    pub code: Code,
    pub severity: Severity,
    pub summary: String,
    pub remedy: String,
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureStatus {
    Available,
    Unavailable,
    Degraded,
    Untested,
}

impl FeatureStatus {
    /// The JSON name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureStatus::Available => "available",
            FeatureStatus::Unavailable => "unavailable",
            FeatureStatus::Degraded => "degraded",
            FeatureStatus::Untested => "untested",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureVerdict {
    pub name: &'static str,
    pub status: FeatureStatus,
    pub reason: String,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub kind: AccountKind,
    pub basis: Vec<String>,
}

/// The diagnosis of one run.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub account: Account,
    pub status: Status,
    pub diagnoses: Vec<Diagnosis>,
    pub features: Vec<FeatureVerdict>,
}

/// Facts about the run the rules need beside the failing step.
struct Ctx<'a> {
    kind: AccountKind,
    auth: AuthMode,
    exchange_online: bool,
    mailbox: &'a str,
    domain: &'a str,
}

/// Host names of Exchange Online's EWS front ends.
pub fn is_exchange_online_host(host: &str) -> bool {
    let h = host.to_ascii_lowercase();
    ["outlook.office365.com", "outlook.office.com"].contains(&h.as_str())
        || h.ends_with(".outlook.com")
        || h.ends_with(".office365.com")
        || h.ends_with(".office.com")
}

/// The schemes a `WWW-Authenticate` value offers, in order, e.g. `["Bearer", "Basic"]`.
pub fn offered_schemes(www_authenticate: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // A scheme is a token at the start of the value or of a comma-separated element that is
    // not an auth-param (no '=' before the next space or comma).
    for part in www_authenticate.split(',') {
        let t = part.trim();
        let word: String = t
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if word.is_empty() {
            continue;
        }
        let after = &t[word.len()..];
        let is_param = after.trim_start().starts_with('=');
        if !is_param && !out.iter().any(|s| s.eq_ignore_ascii_case(&word)) {
            out.push(word);
        }
    }
    out
}

/// The numeric id of an `x-ms-diagnostics` value (`2000003;reason="…";error_category="…"`).
fn ms_diagnostics(step: &Step) -> Option<(u32, String)> {
    let v = step.http.as_ref()?.header("x-ms-diagnostics")?;
    let (id, rest) = v.split_once(';').unwrap_or((v, ""));
    let id: u32 = id.trim().parse().ok()?;
    let reason = rest
        .split("reason=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string();
    Some((id, reason))
}

/// A cause found in one step.
#[derive(Debug, Clone)]
struct Cause {
    code: Code,
    summary: String,
    remedy: String,
}

fn cause(code: Code, summary: impl Into<String>, remedy: impl Into<String>) -> Cause {
    Cause {
        code,
        summary: summary.into(),
        remedy: remedy.into(),
    }
}

fn consumer_cause(c: &Ctx) -> Cause {
    cause(
        Code::ConsumerAccountNoEws,
        format!(
            "{} is a consumer Outlook.com/Hotmail/Live account; Microsoft offers no EWS for consumer accounts, so sign-in may seem to work but every EWS call is refused (integrations log the user out when they switch to it)",
            c.mailbox
        ),
        "Connect the integration with a Microsoft 365 (work or school) or Exchange Server mailbox. There is no setting that enables EWS for an Outlook.com account.",
    )
}

/// Rules for one failed step, in precedence order. `None` when the step did not fail.
fn step_cause(s: &Step, c: &Ctx) -> Option<Cause> {
    if s.outcome != Outcome::Fail {
        return None;
    }
    // 1. No response at all: transport failures.
    if let Some(f) = &s.failure {
        return Some(match f.kind {
            FailureKind::Dns => cause(
                Code::DnsFailure,
                format!("the EWS host name does not resolve: {}", f.message),
                "Check the EWS URL's host name; test name resolution from this machine (nslookup), or pin an address with --resolve HOST:PORT:ADDR.",
            ),
            FailureKind::Tls => cause(
                Code::TlsFailure,
                format!("the TLS handshake with the EWS host failed: {}", f.message),
                "Check the server certificate (expiry, name, chain). Behind TLS inspection, pass the corporate CA with --ca-file PATH.",
            ),
            FailureKind::Timeout => cause(
                Code::Timeout,
                format!("no complete answer before the deadline: {}", f.message),
                "Retry with a longer --timeout; if it persists, check the network path (proxy, firewall) and the server's load.",
            ),
            FailureKind::Connect | FailureKind::Other => cause(
                Code::ConnectionFailed,
                format!("could not talk to the EWS host: {}", f.message),
                "Check that the host and port are right and reachable from here (firewall, proxy with --proxy URL).",
            ),
            FailureKind::TooLarge | FailureKind::Refused | FailureKind::NotRecorded => cause(
                Code::UnexpectedResponse,
                f.message.clone(),
                "Inspect the recorded evidence (--record DIR) and the EWS URL.",
            ),
        });
    }
    let http = s.http.as_ref()?;
    let status = http.status;
    let www = http.header("www-authenticate").unwrap_or("");
    let schemes = offered_schemes(www);
    let offers = |name: &str| schemes.iter().any(|x| x.eq_ignore_ascii_case(name));

    // 2. Account locked (Exchange's 456).
    if status == 456 {
        return Some(cause(
            Code::AccountLocked,
            "HTTP 456: the account is locked or must complete a sign-in step (Exchange returns 456 with an unlock URL)",
            "Sign in once interactively (Outlook on the web) to unlock or complete the required step, then retry.",
        ));
    }
    // 3. Authentication refused.
    if (status == 401 || status == 403) && c.kind == AccountKind::Consumer {
        return Some(consumer_cause(c));
    }
    if status == 401 {
        if let Some((id, reason)) = ms_diagnostics(s) {
            let why = if reason.is_empty() {
                String::new()
            } else {
                format!(" (\"{reason}\")")
            };
            return Some(match id {
                2000002 => cause(
                    Code::TokenExpired,
                    format!(
                        "Exchange refused the access token: it has expired (x-ms-diagnostics 2000002){why}"
                    ),
                    "Get a fresh token (tokens live about an hour) and run again.",
                ),
                2000003 => cause(
                    Code::TokenWrongAudience,
                    format!(
                        "Exchange refused the access token: it was issued for another resource (x-ms-diagnostics 2000003){why}"
                    ),
                    "Request the token for EWS: scope https://outlook.office365.com/EWS.AccessAsUser.All (delegated) or https://outlook.office365.com/.default (app-only); on-premises hybrid, the audience must be the server's own https URL.",
                ),
                _ => cause(
                    Code::TokenInvalid,
                    format!("Exchange refused the access token (x-ms-diagnostics {id}){why}"),
                    "Check the token's tenant, app registration and permissions (EWS.AccessAsUser.All or full_access_as_app), then get a new one.",
                ),
            });
        }
        if c.auth == AuthMode::Basic && (c.exchange_online || offers("Bearer")) {
            return Some(cause(
                Code::BasicAuthRejected,
                "Exchange Online refused Basic authentication: it has been switched off for EWS since 2022–2023 (a Basic challenge in the answer does not mean Basic works)",
                "Use OAuth 2.0: --auth device-code (delegated) or --auth client-credentials (app-only).",
            ));
        }
        let negotiate_only = !schemes.is_empty()
            && schemes
                .iter()
                .all(|x| x.eq_ignore_ascii_case("NTLM") || x.eq_ignore_ascii_case("Negotiate"));
        if negotiate_only && c.auth != AuthMode::Ntlm {
            return Some(cause(
                Code::InvalidCredentials,
                format!(
                    "the server accepts only {} authentication; the {} credentials sent were not accepted",
                    schemes.join(" and "),
                    c.auth.as_str()
                ),
                "Use --auth ntlm with the account's DOMAIN\\user or UPN (on-premises Exchange), or ask the Exchange admin to enable the scheme you need on the EWS virtual directory.",
            ));
        }
        if c.auth.is_token() {
            return Some(cause(
                Code::TokenInvalid,
                format!(
                    "Exchange refused the access token (HTTP 401{})",
                    if www.is_empty() {
                        String::new()
                    } else {
                        format!("; offers: {}", schemes.join(", "))
                    }
                ),
                "Check that the token is for https://outlook.office365.com with EWS.AccessAsUser.All or full_access_as_app, then get a new one.",
            ));
        }
        if c.auth == AuthMode::None {
            return Some(cause(
                Code::InvalidCredentials,
                format!(
                    "EWS requires authentication and none was sent (offers: {})",
                    if schemes.is_empty() {
                        "nothing named".into()
                    } else {
                        schemes.join(", ")
                    }
                ),
                "Run again with credentials: --auth basic|ntlm|bearer|device-code|client-credentials.",
            ));
        }
        return Some(cause(
            Code::InvalidCredentials,
            format!(
                "the server refused the {} credentials (HTTP 401)",
                c.auth.as_str()
            ),
            "Check the user name (UPN or DOMAIN\\user) and password; check that the account is not locked or its password expired.",
        ));
    }
    if status == 403 {
        return Some(if c.exchange_online {
            cause(
                Code::EwsAccessBlocked,
                "Exchange Online refused EWS for this work account (HTTP 403): EWS is turned off for the tenant or the user, the application is not in the tenant's EWS allow list, or the licence has no EWS rights. Since 2026-10-01 Exchange Online blocks EWS unless the tenant allows it; it is retired on 2027-04-01",
                "An Exchange admin checks Get-OrganizationConfig (EWSEnabled, EwsAllowedAppIDs — add the integration's app id) and Get-CASMailbox (EwsEnabled) and the licence; plan the move to Microsoft Graph before 2027-04-01.",
            )
        } else {
            cause(
                Code::EwsAccessBlocked,
                "the server refused EWS for this account (HTTP 403): EWS access is turned off for the mailbox or by an EWS application access policy",
                "An Exchange admin checks Get-CASMailbox (EwsEnabled, EwsAllowOutlook, EwsApplicationAccessPolicy) and Get-OrganizationConfig (EwsApplicationAccessPolicy, EwsAllowList).",
            )
        });
    }
    if status == 407 {
        return Some(cause(
            Code::ConnectionFailed,
            "the proxy requires authentication (HTTP 407)",
            "Use a proxy that lets this machine through, or a NO_PROXY entry for the Exchange host.",
        ));
    }
    // 4. The SOAP layer, when the body was SOAP.
    if let Some(code) = s.error_code() {
        let inner = s
            .soap
            .as_ref()
            .and_then(|x| x.first_error())
            .and_then(|m| m.inner_code());
        let text = s
            .soap
            .as_ref()
            .and_then(|x| {
                x.fault
                    .as_ref()
                    .map(|f| f.faultstring.clone())
                    .or_else(|| x.first_error().and_then(|m| m.text.clone()))
            })
            .unwrap_or_default();
        return Some(code_cause(code, inner, &text, s, c));
    }
    // 5. Bodies that are not EWS at all.
    if let Some(be) = &s.body_error {
        let not_ews = matches!(
            be,
            BodyError::Html { .. }
                | BodyError::NotXml { .. }
                | BodyError::NotSoap { .. }
                | BodyError::Empty
        );
        // A 5xx is the server's failure whatever page came with it; below that, a body
        // that is not SOAP means the URL is not EWS.
        if status == 404 || (not_ews && status < 500) {
            return Some(cause(
                Code::NotEwsEndpoint,
                format!("the URL answered HTTP {status} with {be}: this is not an EWS endpoint"),
                "Use the mailbox's EWS URL (usually https://<host>/EWS/Exchange.asmx; https://outlook.office365.com/EWS/Exchange.asmx for Exchange Online).",
            ));
        }
    }
    if status == 404 {
        return Some(cause(
            Code::NotEwsEndpoint,
            "HTTP 404: nothing at this URL",
            "Use the mailbox's EWS URL (usually https://<host>/EWS/Exchange.asmx).",
        ));
    }
    if status == 503 || status == 429 {
        return Some(cause(
            Code::Throttled,
            format!(
                "HTTP {status}: the server is queueing or limiting EWS requests{}",
                retry_note(s)
            ),
            "Retry later; for many mailboxes lower the concurrency. The server's back-off hint is in the evidence.",
        ));
    }
    if (500..600).contains(&status) {
        return Some(cause(
            Code::ServerError,
            format!("HTTP {status} from the server without an EWS error"),
            "Retry later; if it persists, the Exchange admin checks the EWS application pool and the server logs (request-id in the evidence).",
        ));
    }
    Some(cause(
        Code::UnexpectedResponse,
        format!(
            "an answer the probe does not recognise (HTTP {status}{})",
            s.body_error
                .as_ref()
                .map(|b| format!(", {b}"))
                .unwrap_or_default()
        ),
        "Keep the recorded evidence (--record DIR) and check the EWS URL and anything between this machine and the server.",
    ))
}

fn retry_note(s: &Step) -> String {
    let mut n = String::new();
    if s.attempts.count > 1 {
        n.push_str(&format!("; {} attempts", s.attempts.count));
    }
    if let Some(ms) = s.attempts.hint_past_deadline_ms {
        n.push_str(&format!(
            "; the server asked to wait {ms} ms, past the deadline"
        ));
    }
    n
}

/// Rules on EWS response codes (research/ews-protocol.md §2.2).
fn code_cause(code: &str, inner: Option<&str>, text: &str, s: &Step, c: &Ctx) -> Cause {
    let said = if text.is_empty() {
        code.to_string()
    } else {
        format!("{code}: {text}")
    };
    match code {
        "ErrorServerBusy"
        | "ErrorExceededConnectionCount"
        | "ErrorTooManyObjectsOpened"
        | "ErrorExceededSubscriptionCount" => cause(
            Code::Throttled,
            format!(
                "Exchange is throttling this account ({said}){}",
                retry_note(s)
            ),
            "Retry after the server's back-off; for many mailboxes lower the concurrency (EWS allows about 10–27 concurrent requests per user).",
        ),
        "ErrorSchemaValidation"
        | "ErrorInvalidServerVersion"
        | "ErrorIncorrectSchemaVersion"
        | "ErrorInvalidSchemaVersionForMailboxVersion"
        | "ErrorInvalidRequest" => cause(
            Code::SchemaMismatch,
            format!("the server rejected the probe's request itself, not the mailbox ({said})"),
            "Run again with another --server-version (e.g. Exchange2010_SP2 for old servers) and report the evidence to the ews-probe maintainers.",
        ),
        "ErrorNonExistentMailbox"
        | "ErrorMissingEmailAddress"
        | "ErrorMailRecipientNotFound"
        | "ErrorInvalidSmtpAddress" => cause(
            Code::MailboxNotFound,
            format!("Exchange has no mailbox for {} ({said})", c.mailbox),
            "Check the address (primary SMTP address, not an alias of another tenant) and that the user has an Exchange mailbox licence.",
        ),
        "ErrorImpersonateUserDenied"
        | "ErrorImpersonationDenied"
        | "ErrorImpersonationFailed"
        | "ErrorInvalidExchangeImpersonationHeaderData" => cause(
            Code::ImpersonationDenied,
            format!("the account may not act for {} ({said})", c.mailbox),
            "Grant the service account ApplicationImpersonation (on-premises) or the app full_access_as_app with an application access policy scope that includes this mailbox (Exchange Online).",
        ),
        "ErrorMailboxMoveInProgress" => cause(
            Code::MailboxMoving,
            format!("the mailbox is being moved ({said})"),
            "Wait for the move to finish and run again.",
        ),
        "ErrorMailboxStoreUnavailable"
        | "ErrorMailboxFailover"
        | "ErrorConnectionFailed"
        | "ErrorInternalServerTransientError" => cause(
            Code::MailboxUnavailable,
            format!("the mailbox database is not available right now ({said})"),
            "Retry later; if it persists the Exchange admin checks the mailbox database and its copies.",
        ),
        "ErrorAccessDenied"
        | "ErrorFolderNotFound"
        | "ErrorNoFreeBusyAccess"
        | "ErrorItemNotFound" => cause(
            Code::FolderAccessDenied,
            format!("{} was refused by the mailbox ({said})", s.id),
            "Check the folder permissions and any policy that limits this app's access (Set-MailboxFolderPermission, application access policies); the mailbox owner or an admin can grant it.",
        ),
        "ErrorAccountDisabled" | "ErrorPasswordExpired" | "ErrorPasswordChangeRequired" => cause(
            Code::InvalidCredentials,
            format!("the account cannot sign in ({said})"),
            "Re-enable the account or change its password, then run again.",
        ),
        "ErrorInvalidLicense" | "ErrorOrganizationAccessBlocked" => cause(
            Code::EwsAccessBlocked,
            format!("Exchange refused EWS for this account's licence or tenant ({said})"),
            "Assign a licence with Exchange Online EWS rights (not F1/F3/Kiosk), or check the tenant's state.",
        ),
        "ErrorInternalServerError" => match inner {
            Some(i) if i != code => {
                let mut inner_cause = code_cause(i, None, text, s, c);
                inner_cause.summary = format!(
                    "{} (inner error of ErrorInternalServerError)",
                    inner_cause.summary
                );
                inner_cause
            }
            _ => cause(
                Code::ServerError,
                format!("Exchange reported an internal error ({said})"),
                "Retry later; if it persists the Exchange admin checks the server logs (request-id in the evidence).",
            ),
        },
        "ErrorFreeBusyGenerationFailed"
        | "ErrorProxyRequestProcessingFailed"
        | "ErrorServiceDiscoveryFailed"
        | "ErrorAvailabilityConfigNotFound" => cause(
            Code::ServerError,
            format!("the availability service failed ({said})"),
            "The Exchange admin checks the availability service (Get-AvailabilityConfig, hybrid free/busy) and its logs.",
        ),
        _ => cause(
            Code::UnexpectedResponse,
            format!("EWS answered with {said}"),
            "Look the code up in Microsoft's ResponseCode reference; the raw evidence is in the report.",
        ),
    }
}

/// One line of evidence for a step.
fn evidence_line(s: &Step) -> String {
    let mut line = format!("{}: {}", s.id, s.detail);
    if let Some(h) = &s.http {
        for name in ["www-authenticate", "x-ms-diagnostics", "request-id"] {
            if let Some(v) = h.header(name) {
                line.push_str(&format!("; {name}: {v}"));
            }
        }
    }
    line
}

fn account(target: &Mailbox, ev: &Evidence) -> Account {
    let (mut kind, mut basis) = target.initial_kind();
    if let Some(d) = &ev.discovery {
        discovery_rules::account_basis(d, &mut kind, &mut basis);
    }
    let host = ev
        .endpoint
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string));
    if kind == AccountKind::Unknown
        && let Some(h) = &host
    {
        if is_exchange_online_host(h) {
            kind = AccountKind::WorkOrSchool;
            basis.push(format!("EWS endpoint {h} is Exchange Online"));
        } else if let Some(s) = ev.steps.iter().find(|s| s.soap.is_some()) {
            kind = AccountKind::OnPremises;
            basis.push(format!(
                "EWS answered from {h} ({}), not an Exchange Online host",
                s.id
            ));
        } else if let Some(schemes) = ev
            .steps
            .iter()
            .filter_map(|s| s.http.as_ref()?.header("www-authenticate"))
            .map(offered_schemes)
            .find(|v| {
                !v.is_empty()
                    && v.iter().all(|x| {
                        x.eq_ignore_ascii_case("NTLM") || x.eq_ignore_ascii_case("Negotiate")
                    })
            })
        {
            kind = AccountKind::OnPremises;
            basis.push(format!(
                "{h} offers only {} authentication, as Exchange Server does",
                schemes.join(" and ")
            ));
        }
    }
    Account { kind, basis }
}

/// Diagnoses a run. Pure: the same target and evidence give the same verdict.
pub fn diagnose(target: &Mailbox, ev: &Evidence) -> Verdict {
    let account = account(target, ev);
    let exchange_online = ev
        .endpoint
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(is_exchange_online_host))
        .unwrap_or(false);
    let ctx = Ctx {
        kind: account.kind,
        auth: ev.auth,
        exchange_online,
        mailbox: target.address(),
        domain: target.domain(),
    };
    let mut diagnoses: Vec<Diagnosis> = Vec::new();
    let mut add =
        |code: Code, sev: Severity, summary: String, remedy: String, line: Option<String>| {
            if let Some(d) = diagnoses.iter_mut().find(|d| d.code == code) {
                d.severity = d.severity.max(sev);
                if let Some(l) = line
                    && !d.evidence.contains(&l)
                {
                    d.evidence.push(l);
                }
            } else {
                diagnoses.push(Diagnosis {
                    code,
                    severity: sev,
                    summary,
                    remedy,
                    evidence: line.into_iter().collect(),
                });
            }
        };

    let conn = ev.step(plan::CONNECTIVITY.id);
    let conn_cause = conn.and_then(|s| step_cause(s, &ctx));
    // Whole-mailbox causes: the connectivity check failed, so nothing else could run.
    let conn_blocks = conn.is_some_and(|s| s.outcome == Outcome::Fail)
        && ev
            .steps
            .iter()
            .filter(|s| s.kind == StepKind::Ews)
            .skip(1)
            .all(|s| s.outcome == Outcome::Skip);
    // Authentication causes: the challenge, the token endpoint, the token's claims.
    let auth_causes = auth_rules::causes(ev);
    let auth_block = auth_causes.iter().find(|c| c.blocks);

    // No EWS endpoint at all (no URL and nothing found).
    if ev.endpoint.is_none() {
        if account.kind == AccountKind::Consumer {
            let c = consumer_cause(&ctx);
            add(
                c.code,
                Status::Critical,
                c.summary,
                c.remedy,
                Some(format!("account: consumer domain {}", ctx.domain)),
            );
        } else if let Some(d) = ev.discovery.as_ref().filter(|d| d.autodiscover) {
            let (sev, summary, remedy, lines) = discovery_rules::autodiscover_failed(d);
            let mut lines = lines.into_iter();
            add(Code::AutodiscoverFailed, sev, summary, remedy, lines.next());
            for l in lines {
                add(
                    Code::AutodiscoverFailed,
                    sev,
                    String::new(),
                    String::new(),
                    Some(l),
                );
            }
        } else {
            add(
                Code::AutodiscoverFailed,
                Status::Unknown,
                "no EWS URL was given and none was discovered".into(),
                "Pass the mailbox's EWS URL with --ews-url.".into(),
                None,
            );
        }
    }

    // TLS failures the network steps explained (with the chain and a hint); a proxy's 407.
    if let Some(d) = &ev.discovery {
        if let Some((sev, summary, remedy, lines)) = discovery_rules::proxy_407(d) {
            let mut lines = lines.into_iter();
            add(Code::ConnectionFailed, sev, summary, remedy, lines.next());
            for l in lines {
                add(
                    Code::ConnectionFailed,
                    sev,
                    String::new(),
                    String::new(),
                    Some(l),
                );
            }
        }
        for (sev, summary, remedy, lines) in
            discovery_rules::tls_failures(d, ev.endpoint.as_deref())
        {
            let mut lines = lines.into_iter();
            add(Code::TlsFailure, sev, summary, remedy, lines.next());
            for l in lines {
                add(Code::TlsFailure, sev, String::new(), String::new(), Some(l));
            }
        }
    }

    let mut feature_cause: Vec<(Feature, FeatureStatus, String)> = Vec::new();
    for f in Feature::ALL {
        let ids = plan::feature_checks(f, ev.write);
        let steps: Vec<&Step> = ids.iter().filter_map(|id| ev.step(id)).collect();
        if ev.endpoint.is_none() {
            let (st, why) = if account.kind == AccountKind::Consumer {
                (
                    FeatureStatus::Unavailable,
                    "consumer_account_no_ews: consumer accounts have no EWS".to_string(),
                )
            } else {
                (FeatureStatus::Untested, "no EWS endpoint".to_string())
            };
            feature_cause.push((f, st, why));
            continue;
        }
        if let Some(a) = auth_block {
            feature_cause.push((
                f,
                FeatureStatus::Unavailable,
                format!("{}: sign-in failed: {}", a.code.as_str(), a.short),
            ));
            continue;
        }
        if conn_blocks {
            let c = conn_cause.clone().expect("a failed step has a cause");
            let st = if c.code.leaves_untested() {
                FeatureStatus::Untested
            } else {
                FeatureStatus::Unavailable
            };
            let detail = conn.map(|s| s.detail.as_str()).unwrap_or_default();
            feature_cause.push((
                f,
                st,
                format!("{}: connectivity check failed: {detail}", c.code.as_str()),
            ));
            continue;
        }
        // The first failed check (other than connectivity, unless it alone failed) decides.
        let failed = steps
            .iter()
            .skip(1)
            .find(|s| s.outcome == Outcome::Fail)
            .or_else(|| steps.first().filter(|s| s.outcome == Outcome::Fail));
        if let Some(s) = failed {
            let c = step_cause(s, &ctx).expect("failed step");
            let st = if c.code.leaves_untested() {
                FeatureStatus::Untested
            } else {
                FeatureStatus::Unavailable
            };
            feature_cause.push((
                f,
                st,
                format!("{}: {} failed: {}", c.code.as_str(), s.id, s.detail),
            ));
        } else if let Some(s) = steps.iter().find(|s| s.was_throttled()) {
            feature_cause.push((
                f,
                FeatureStatus::Degraded,
                format!(
                    "throttled: {} answered after {} attempts (waited {} ms)",
                    s.id,
                    s.attempts.count,
                    s.attempts.waits_ms.iter().sum::<u64>()
                ),
            ));
        } else if steps.iter().any(|s| s.outcome == Outcome::Pass) {
            feature_cause.push((f, FeatureStatus::Available, "every check passed".into()));
        } else {
            feature_cause.push((f, FeatureStatus::Untested, "no check ran".into()));
        }
    }

    for a in &auth_causes {
        add(
            a.code,
            a.severity,
            a.summary.clone(),
            a.remedy.clone(),
            Some(a.evidence.clone()),
        );
    }
    // Diagnoses from every failed EWS step (discovery and authentication steps are judged
    // above, as a whole).
    for s in ev.steps.iter().filter(|s| s.kind == StepKind::Ews) {
        if let Some(c) = step_cause(s, &ctx) {
            let is_conn = s.id == plan::CONNECTIVITY.id;
            let is_cleanup = s.id.starts_with("ews.delete_item.");
            let sev = if c.code == Code::SchemaMismatch {
                Status::Unknown
            } else if c.code == Code::Throttled {
                Status::Warning
            } else if is_conn && conn_blocks {
                Status::Critical
            } else {
                Status::Warning
            };
            if is_cleanup {
                add(
                    Code::CleanupFailed,
                    Status::Warning,
                    format!(
                        "the probe's test draft could not be deleted ({}: {})",
                        c.code.as_str(),
                        c.summary
                    ),
                    format!(
                        "Delete the draft \"{}\" from Drafts by hand. {}",
                        crate::ews::ops::create_item::PROBE_SUBJECT,
                        c.remedy
                    ),
                    Some(evidence_line(s)),
                );
            } else {
                add(c.code, sev, c.summary, c.remedy, Some(evidence_line(s)));
            }
        }
        if s.outcome == Outcome::Pass && s.was_throttled() {
            add(
                Code::Throttled,
                Status::Warning,
                format!("Exchange throttled the probe; {} answered after {} attempts", s.id, s.attempts.count),
                "Nothing to fix for one mailbox; for many, lower the concurrency and honour BackOffMilliseconds.".into(),
                Some(format!("{}: waited {:?} ms between attempts", s.id, s.attempts.waits_ms)),
            );
        }
        if s.outcome == Outcome::Fail
            && s.id.starts_with("ews.delete_item.")
            && s.http.is_none()
            && s.failure.is_none()
        {
            add(
                Code::CleanupFailed,
                Status::Warning,
                s.skipped.clone().unwrap_or_default(),
                format!(
                    "Delete the draft \"{}\" from Drafts by hand.",
                    crate::ews::ops::create_item::PROBE_SUBJECT
                ),
                Some(evidence_line(s)),
            );
        }
    }
    // A consumer account is the root cause whatever the transport said, once EWS refused it.
    diagnoses.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));

    let features: Vec<FeatureVerdict> = feature_cause
        .into_iter()
        .map(|(f, status, reason)| FeatureVerdict {
            name: f.name(),
            status,
            reason,
            checks: plan::feature_checks(f, ev.write)
                .into_iter()
                .filter(|id| ev.step(id).is_some())
                .collect(),
        })
        .collect();

    let mut status = diagnoses
        .iter()
        .map(|d| d.severity)
        .max()
        .unwrap_or(Status::Ok);
    if status < Status::Warning
        && features.iter().any(|f| {
            matches!(
                f.status,
                FeatureStatus::Unavailable | FeatureStatus::Degraded
            )
        })
    {
        status = Status::Warning;
    }
    Verdict {
        account,
        status,
        diagnoses,
        features,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_offered_schemes() {
        assert_eq!(
            offered_schemes(
                r#"Bearer client_id="00000002-0000-0ff1-ce00-000000000000", trusted_issuers="x@*", token_types="app_asserted_user_v1 service_asserted_app_v1", authorization_uri="https://login.windows.net/common/oauth2/authorize", error="invalid_token",Basic Realm="",Basic Realm="""#
            ),
            vec!["Bearer", "Basic"]
        );
        assert_eq!(
            offered_schemes("Negotiate, NTLM"),
            vec!["Negotiate", "NTLM"]
        );
        assert_eq!(
            offered_schemes("Basic Realm=\"\",Negotiate"),
            vec!["Basic", "Negotiate"]
        );
        assert!(offered_schemes("").is_empty());
    }

    #[test]
    fn exchange_online_hosts() {
        assert!(is_exchange_online_host("outlook.office365.com"));
        assert!(is_exchange_online_host("OUTLOOK.OFFICE.COM"));
        assert!(!is_exchange_online_host("mail.contoso.com"));
        assert!(!is_exchange_online_host("office365.com.evil.example"));
    }

    #[test]
    fn status_order_and_exit_codes() {
        assert!(
            Status::Critical > Status::Warning
                && Status::Warning > Status::Unknown
                && Status::Unknown > Status::Ok
        );
        assert_eq!(
            [
                Status::Ok,
                Status::Warning,
                Status::Critical,
                Status::Unknown
            ]
            .map(Status::exit_code),
            [0, 1, 2, 3]
        );
    }
}

#[cfg(test)]
#[path = "diagnose_tests.rs"]
mod rule_tests;

#[path = "diagnose_discovery.rs"]
mod discovery_rules;
