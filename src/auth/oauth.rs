//! OAuth 2.0 with the Microsoft identity platform, for Exchange Online (research/security.md
//! §2): the device code flow (delegated, `EWS.AccessAsUser.All`) and the client credentials
//! flow (app-only, `.default`, with a client secret or a certificate assertion).
//!
//! The `oauth2` crate runs the flows (request shapes, device code polling with
//! `authorization_pending` and `slow_down` +5 s); its HTTP client is a closure over the
//! project's [`Transport`], so every token request passes the choke point: deadline,
//! redaction (the form fields `client_secret`, `client_assertion`, `device_code` and the
//! response's `access_token`/`refresh_token` are masked by name), tracing and recording, and
//! a recorded bundle replays the sign-in too. The token endpoint's raw answers are kept so
//! the Microsoft error fields (`error_codes`, `trace_id`, `correlation_id`) reach the
//! evidence, which `oauth2`'s standard error type would drop.
//!
//! The device code flow's refresh token is cached with its access token; when the access
//! token has expired, the probe redeems the refresh token (`auth.refresh`) instead of a new
//! sign-in, and falls back to the device code flow when the identity platform refuses it.

use super::AuthMode;
use super::facts::{AuthFacts, Claims, Flow, TokenError};
use super::jwt::CertCredential;
use crate::evidence::{Failure, HttpFacts, Outcome, Step, StepKind};
use crate::transport::{Header, HttpRequest, HttpResponse, Method, Transport, TransportError};
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, RefreshToken, Scope,
    StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl, basic::BasicClient,
};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The identity platform's root (DESIGN §3 `--login-authority`).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Delegated EWS permission (OA-2), with a refresh token.
pub const DELEGATED_SCOPES: &[&str] = &[
    "https://outlook.office365.com/EWS.AccessAsUser.All",
    "offline_access",
];
/// App-only: every application permission granted on Exchange Online (`full_access_as_app`).
pub const APP_SCOPE: &str = "https://outlook.office365.com/.default";
pub const DEVICECODE_ID: &str = "auth.devicecode";
pub const TOKEN_ID: &str = "auth.token";
/// The cached refresh token redeemed at the token endpoint (device code flow only).
pub const REFRESH_ID: &str = "auth.refresh";
/// Token endpoint errors after which a refresh token can never work again (expired, revoked,
/// password changed, or the sign-in now needs the user: RFC 6749 §5.2, OpenID Connect Core
/// §3.1.2.6); it is dropped from the cache. Other failures keep it for the next run.
const REFUSED_GRANT: &[&str] = &["invalid_grant", "interaction_required", "consent_required"];

/// How the app proves itself in the client credentials flow.
pub enum ClientAuth {
    /// Device code: a public client, no secret.
    None,
    Secret(SecretString),
    Certificate(CertCredential),
    /// A replayed bundle: the request is never sent, so no secret is needed.
    Replayed,
}

/// One OAuth configuration, and the token it got (fetched once per run).
pub struct OAuthConfig {
    pub mode: AuthMode,
    /// The identity platform's root, e.g. `https://login.microsoftonline.com`.
    pub authority: url::Url,
    /// Tenant id or domain, or `organizations`; never `consumers` (OA-1).
    pub tenant: String,
    pub client_id: String,
    pub client: ClientAuth,
    /// Where tokens are kept between runs; `None`: fetch every run (replay, `--record`).
    pub cache: Option<super::cache::TokenCache>,
    token: OnceLock<SecretString>,
    /// The run's one acquisition through [`OAuthConfig::acquire`]: a fleet shares this
    /// configuration between mailboxes, and the first to ask runs the flow while the others
    /// wait for its outcome (a token, or the one failed sign-in).
    once: tokio::sync::OnceCell<Acquired>,
}

impl std::fmt::Debug for OAuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OAuthConfig({}, {}, tenant {}, client {}, [secrets redacted])",
            self.mode.as_str(),
            self.authority,
            self.tenant,
            self.client_id
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("--login-authority '{0}' is not a URL")]
    BadUrl(String),
    #[error("--login-authority {0}: use https (plain http is allowed to loopback addresses only)")]
    NotHttps(String),
    #[error(
        "--tenant consumers: personal Microsoft accounts cannot use EWS; use your organisation's tenant id or domain, or 'organizations'"
    )]
    Consumers,
    #[error("--tenant '{0}' is not a tenant id or domain")]
    BadTenant(String),
}

/// Checks `--login-authority`: https, or http to loopback (tests).
pub fn authority(raw: &str) -> Result<url::Url, ConfigError> {
    let u = url::Url::parse(raw).map_err(|_| ConfigError::BadUrl(raw.into()))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    if !u.username().is_empty() || u.password().is_some() || u.query().is_some() {
        return Err(ConfigError::BadUrl(raw.into()));
    }
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(ConfigError::NotHttps(raw.into())),
    }
}

/// Checks `--tenant` (default `organizations`).
pub fn tenant(raw: Option<&str>) -> Result<String, ConfigError> {
    let t = raw.unwrap_or("organizations").trim();
    if t.eq_ignore_ascii_case("consumers") {
        return Err(ConfigError::Consumers);
    }
    if t.is_empty()
        || !t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(ConfigError::BadTenant(t.into()));
    }
    Ok(t.to_string())
}

type SleepFut = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What the token flow produced: its steps, and whether EWS requests may follow.
#[derive(Clone)]
pub struct Acquired {
    pub steps: Vec<Step>,
    pub usable: bool,
}

/// One token endpoint exchange as the closure saw it.
struct Seen {
    key: String,
    outcome: Result<HttpResponse, TransportError>,
}

impl OAuthConfig {
    pub fn new(
        mode: AuthMode,
        authority: url::Url,
        tenant: String,
        client_id: String,
        client: ClientAuth,
    ) -> Self {
        OAuthConfig {
            mode,
            authority,
            tenant,
            client_id,
            client,
            cache: None,
            token: OnceLock::new(),
            once: tokio::sync::OnceCell::new(),
        }
    }

    /// The configuration a replayed bundle runs with: its requests are matched by key only.
    pub fn replayed(mode: AuthMode) -> Self {
        OAuthConfig::new(
            mode,
            url::Url::parse(DEFAULT_AUTHORITY).expect("constant URL"),
            "organizations".into(),
            "replayed".into(),
            if mode == AuthMode::DeviceCode {
                ClientAuth::None
            } else {
                ClientAuth::Replayed
            },
        )
    }

    fn endpoint(&self, last: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/{last}",
            self.authority.as_str().trim_end_matches('/'),
            self.tenant
        )
    }
    pub fn token_url(&self) -> String {
        self.endpoint("token")
    }
    pub fn devicecode_url(&self) -> String {
        self.endpoint("devicecode")
    }

    fn cache_key(&self) -> String {
        let (flow, scope) = match self.client {
            ClientAuth::None => ("device_code", DELEGATED_SCOPES.join(" ")),
            _ => ("client_credentials", APP_SCOPE.to_string()),
        };
        super::cache::TokenCache::key(
            self.authority.as_str(),
            &self.tenant,
            &self.client_id,
            flow,
            &scope,
        )
    }

    /// A token from the cache, as a step (no request is sent).
    fn cached(&self, t: &Transport, now_unix: i64, tok: SecretString) -> Option<Acquired> {
        t.redactor().learn(tok.expose_secret());
        let claims = super::jwt::claims(tok.expose_secret());
        // Only tokens that passed these checks are cached; an expired one is not returned.
        if crate::diagnose::claim_problem(&claims, self.mode, now_unix).is_some() {
            return None;
        }
        let mut st = Step::skipped(TOKEN_ID, StepKind::Auth, None, String::new());
        st.skipped = None;
        st.outcome = Outcome::Pass;
        st.detail = t.redactor().text(&format!(
            "token from the cache; {}",
            claims_summary(&claims)
        ));
        st.auth = Some(AuthFacts::Token {
            flow: self.flow(),
            error: None,
            claims: Some(Box::new(claims)),
            received_unix: now_unix,
            polls: 0,
        });
        let _ = self.token.set(tok);
        Some(Acquired {
            steps: vec![st],
            usable: true,
        })
    }

    /// The access token, once acquired.
    pub fn token(&self) -> Option<&SecretString> {
        self.token.get()
    }

    pub fn register_secrets(&self, r: &mut crate::transport::redact::Redactor) {
        if let ClientAuth::Secret(s) = &self.client {
            r.add_secret(s.expose_secret());
        }
    }

    fn flow(&self) -> Flow {
        match self.client {
            ClientAuth::None => Flow::DeviceCode,
            ClientAuth::Certificate(_) => Flow::ClientCertificate,
            ClientAuth::Secret(_) | ClientAuth::Replayed => Flow::ClientSecret,
        }
    }

    /// Runs the flow through the transport, live sleeping between device code polls. Boxed
    /// as a `Send` future here, where its lifetimes are concrete: a fleet spawns probes as
    /// tasks, and the closures inside would otherwise hit rustc's higher-ranked `Send` limit.
    ///
    /// Once per configuration: when a fleet's mailboxes share it, the first caller runs the
    /// flow and the others wait for that outcome and get a copy of its steps marked as reused
    /// (no request, duration 0). Their wait does not count against their `--timeout`.
    pub fn acquire<'a>(
        &'a self,
        t: &'a Transport,
        now_unix: i64,
    ) -> futures_util::future::BoxFuture<'a, Acquired> {
        let replay = t.is_replay();
        Box::pin(async move {
            let left = t.remaining();
            let mut ran = false;
            let got = self
                .once
                .get_or_init(|| {
                    ran = true;
                    self.acquire_with(t, now_unix, move |d| -> SleepFut {
                        if replay {
                            Box::pin(async {})
                        } else {
                            Box::pin(tokio::time::sleep(d))
                        }
                    })
                })
                .await;
            if ran {
                return got.clone();
            }
            t.set_remaining(left);
            reused(got)
        })
    }

    /// Runs the flow; `sleep` waits between device code polls (tests pass a recorder).
    pub async fn acquire_with<S>(&self, t: &Transport, now_unix: i64, sleep: S) -> Acquired
    where
        S: Fn(Duration) -> SleepFut + Send + Sync,
    {
        if self.token.get().is_some() {
            // Fetched once per run; a second call reuses it.
            return Acquired {
                steps: Vec::new(),
                usable: true,
            };
        }
        let found = match &self.cache {
            Some(c) => c.lookup(&self.cache_key(), now_unix),
            None => Default::default(),
        };
        if let Some(r) = &found.refresh {
            t.redactor().learn(r.expose_secret());
        }
        if let Some(tok) = found.access
            && let Some(cached) = self.cached(t, now_unix, tok)
        {
            return cached;
        }
        let mut steps = Vec::new();
        if let (Some(rt), ClientAuth::None) = (found.refresh, &self.client) {
            match self.refresh(t, now_unix, rt).await {
                Refreshed::Done(got) => return got,
                Refreshed::Fallback(st) => steps.extend(st.map(|s| *s)),
            }
        }
        // No refresh token, or it was not usable: one sign-in, never a second refresh.
        let mut got = self.sign_in(t, now_unix, sleep).await;
        steps.append(&mut got.steps);
        got.steps = steps;
        got
    }

    /// Judges a new token's claims into its step: pass or fail, the claims' summary and the
    /// problem (if any) appended to the detail. The problem, if the token is unusable.
    fn judge_claims(
        &self,
        t: &Transport,
        st: &mut Step,
        claims: &Claims,
        now_unix: i64,
    ) -> Option<(crate::diagnose::Code, String)> {
        let problem = crate::diagnose::claim_problem(claims, self.mode, now_unix);
        st.outcome = if problem.is_none() {
            Outcome::Pass
        } else {
            Outcome::Fail
        };
        st.detail = t.redactor().text(&format!(
            "{}; {}{}",
            st.detail,
            claims_summary(claims),
            problem
                .as_ref()
                .map(|(_, p)| format!("; {p}"))
                .unwrap_or_default()
        ));
        problem
    }

    /// Redeems the cached refresh token (grant_type=refresh_token, the same client, scope and
    /// authority as the sign-in that issued it). A usable new access token ends the
    /// acquisition; otherwise the step says why and the device code flow follows.
    async fn refresh(&self, t: &Transport, now_unix: i64, rt: SecretString) -> Refreshed {
        let Ok(token_url) = TokenUrl::new(self.token_url()) else {
            // The sign-in that follows reports the unusable URL.
            return Refreshed::Fallback(None);
        };
        let http = TransportClient::new(t, REFRESH_ID);
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_url);
        let rtok = RefreshToken::new(rt.expose_secret().to_string());
        let mut req = client.exchange_refresh_token(&rtok);
        for s in DELEGATED_SCOPES {
            req = req.add_scope(Scope::new((*s).to_string()));
        }
        let result = req.request_async(&http).await;
        let seen = http.seen.into_inner().unwrap_or_else(|p| p.into_inner());
        let Some(ex) = seen.last() else {
            return Refreshed::Fallback(None);
        };
        let mut st = exchange_step(t, REFRESH_ID, ex);
        let key = self.cache_key();
        match result {
            Ok(tok) => {
                let access = SecretString::from(tok.access_token().secret().clone());
                t.redactor().learn(access.expose_secret());
                // Microsoft rotates refresh tokens; without a new one the old one stays good.
                let next = match tok.refresh_token() {
                    Some(n) => {
                        t.redactor().learn(n.secret());
                        SecretString::from(n.secret().clone())
                    }
                    None => rt,
                };
                let claims = super::jwt::claims(access.expose_secret());
                st.detail = format!(
                    "{}: refreshed from the cached refresh token (no sign-in)",
                    st.detail
                );
                let problem = self.judge_claims(t, &mut st, &claims, now_unix);
                let exp = claims
                    .exp
                    .or_else(|| tok.expires_in().map(|d| now_unix + d.as_secs() as i64));
                st.auth = Some(AuthFacts::Token {
                    flow: self.flow(),
                    error: None,
                    claims: Some(Box::new(claims)),
                    received_unix: now_unix,
                    polls: 0,
                });
                let usable = problem.is_none();
                if usable {
                    if let (Some(cache), Some(exp)) = (&self.cache, exp)
                        && let Err(e) = cache.put_with_refresh(&key, &access, exp, Some(&next))
                    {
                        tracing::warn!("could not cache the token: {e}");
                    }
                    let _ = self.token.set(access);
                }
                Refreshed::Done(Acquired {
                    steps: vec![st],
                    usable,
                })
            }
            Err(e) => {
                let error = ex.outcome.as_ref().ok().and_then(|r| token_error(&r.body));
                let refused = error
                    .as_ref()
                    .is_some_and(|e| REFUSED_GRANT.contains(&e.error.as_str()));
                let kept = if refused {
                    if let Some(cache) = &self.cache
                        && let Err(e) = cache.remove(&key)
                    {
                        tracing::warn!("could not remove the refused refresh token: {e}");
                    }
                    "it was removed from the cache"
                } else {
                    "it is kept for the next run"
                };
                let why = match &error {
                    Some(te) => format!(
                        "the cached refresh token was not accepted: {}",
                        crate::diagnose::refresh_refusal(te, self.mode)
                    ),
                    None if ex.outcome.is_err() => {
                        "the cached refresh token could not be redeemed".into()
                    }
                    None => format!("the cached refresh token could not be redeemed: {e}"),
                };
                st.outcome = Outcome::Fail;
                st.detail = t.redactor().text(&format!(
                    "{}: {why}; {kept}; signing in with a device code instead",
                    st.detail
                ));
                if !t.is_replay() {
                    eprintln!("{}", st.detail);
                }
                st.auth = Some(AuthFacts::Token {
                    flow: self.flow(),
                    error: error.map(Box::new),
                    claims: None,
                    received_unix: now_unix,
                    polls: 0,
                });
                Refreshed::Fallback(Some(Box::new(st)))
            }
        }
    }

    /// A new sign-in: the device code flow, or the client credentials grant.
    async fn sign_in<S>(&self, t: &Transport, now_unix: i64, sleep: S) -> Acquired
    where
        S: Fn(Duration) -> SleepFut + Send + Sync,
    {
        let http = TransportClient::new(t, TOKEN_ID);
        let token_url = match TokenUrl::new(self.token_url()) {
            Ok(u) => u,
            Err(e) => return self.config_failure(&format!("token URL: {e}")),
        };
        let client = BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(token_url);
        let started = std::time::Instant::now();
        let mut polls = 0u32;
        let mut expires_in: Option<Duration> = None;
        let mut refresh: Option<SecretString> = None;
        let result: Result<SecretString, String> = match &self.client {
            ClientAuth::None => {
                let dev_url = match DeviceAuthorizationUrl::new(self.devicecode_url()) {
                    Ok(u) => u,
                    Err(e) => return self.config_failure(&format!("device code URL: {e}")),
                };
                let client = client.set_device_authorization_url(dev_url);
                let mut req = client.exchange_device_code();
                for s in DELEGATED_SCOPES {
                    req = req.add_scope(Scope::new((*s).to_string()));
                }
                let details: Result<StandardDeviceAuthorizationResponse, _> =
                    req.request_async(&http).await;
                match details {
                    Err(e) => Err(format!("device code request failed: {e}")),
                    Ok(details) => {
                        if !t.is_replay() {
                            eprintln!(
                                "To sign in, open {} and enter the code {} (valid for {} minutes). Waiting…",
                                details.verification_uri().as_str(),
                                details.user_code().secret(),
                                details.expires_in().as_secs() / 60
                            );
                        }
                        // The time a person takes to sign in does not count against
                        // --timeout: the deadline moves for the polling, then back.
                        let left = t.remaining();
                        t.set_remaining(details.expires_in() + left);
                        let polling = client.exchange_device_access_token(&details).request_async(
                            &http,
                            &sleep,
                            Some(details.expires_in()),
                        );
                        let r = tokio::select! {
                            r = polling => r.map(|tok| {
                                expires_in = tok.expires_in();
                                refresh = tok.refresh_token().map(|r| {
                                    t.redactor().learn(r.secret());
                                    SecretString::from(r.secret().clone())
                                });
                                SecretString::from(tok.access_token().secret().clone())
                            })
                            .map_err(|e| format!("{e}")),
                            _ = http.give_up.notified() => Err("the token endpoint failed 3 polls in a row; stopped waiting".to_string()),
                        };
                        t.set_remaining(left);
                        r
                    }
                }
            }
            auth => {
                let client = match auth {
                    ClientAuth::Secret(s) => {
                        client.set_client_secret(ClientSecret::new(s.expose_secret().to_string()))
                    }
                    ClientAuth::Replayed => client.set_client_secret(ClientSecret::new(
                        crate::transport::redact::MASK.into(),
                    )),
                    _ => client,
                };
                let mut req = client
                    .exchange_client_credentials()
                    .add_scope(Scope::new(APP_SCOPE.into()));
                let assertion;
                if let ClientAuth::Certificate(c) = auth {
                    match c.assertion(&self.client_id, &self.token_url(), now_unix) {
                        Ok(a) => assertion = a,
                        Err(e) => return self.config_failure(&e.to_string()),
                    }
                    t.redactor().learn(assertion.expose_secret());
                    req = req
                        .add_extra_param(
                            "client_assertion_type",
                            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        )
                        .add_extra_param("client_assertion", assertion.expose_secret().to_string());
                }
                req.request_async(&http)
                    .await
                    .map(|tok| {
                        expires_in = tok.expires_in();
                        SecretString::from(tok.access_token().secret().clone())
                    })
                    .map_err(|e| format!("{e}"))
            }
        };
        let seen = http.seen.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut steps = Vec::new();
        // The device authorization request, when there was one.
        if let Some(d) = seen.iter().find(|s| s.key == DEVICECODE_ID) {
            let mut st = exchange_step(t, DEVICECODE_ID, d);
            if st.outcome == Outcome::Pass && seen.iter().all(|s| s.key != TOKEN_ID) {
                // Answered, but unusable (the flow stopped before any poll).
                st.outcome = Outcome::Fail;
                if let Err(msg) = &result {
                    st.detail = t.redactor().text(&format!("{}: {msg}", st.detail));
                }
            }
            if let Some(resp) = d.outcome.as_ref().ok().filter(|r| r.status != 200) {
                st.auth = Some(AuthFacts::Token {
                    flow: self.flow(),
                    error: token_error(&resp.body).map(Box::new),
                    claims: None,
                    received_unix: now_unix,
                    polls: 0,
                });
            }
            steps.push(st);
        }
        let token_ex: Vec<&Seen> = seen.iter().filter(|s| s.key == TOKEN_ID).collect();
        polls += token_ex.len() as u32;
        let mut usable = false;
        if let Some(last) = token_ex.last() {
            let mut st = exchange_step(t, TOKEN_ID, last);
            if t.is_replay() {
                st.duration_ms = token_ex
                    .iter()
                    .map(|s| match &s.outcome {
                        Ok(r) => crate::util::millis(r.elapsed),
                        Err(e) => crate::util::millis(e.elapsed),
                    })
                    .sum();
            } else {
                st.duration_ms = crate::util::millis(started.elapsed());
            }
            st.attempts.count = polls;
            let (error, claims) = match (&result, &last.outcome) {
                (Ok(tok), _) => {
                    t.redactor().learn(tok.expose_secret());
                    (None, Some(super::jwt::claims(tok.expose_secret())))
                }
                (Err(_), Ok(resp)) => (token_error(&resp.body), None),
                (Err(_), Err(_)) => (None, None),
            };
            if let Some(c) = &claims {
                usable = self.judge_claims(t, &mut st, c, now_unix).is_none();
            } else {
                st.outcome = Outcome::Fail;
                if let Some(e) = &error {
                    st.detail = t.redactor().text(&format!(
                        "{}: {}{}",
                        st.detail,
                        e.error,
                        e.error_codes
                            .first()
                            .map(|c| format!(" AADSTS{c}"))
                            .unwrap_or_default()
                    ));
                } else if let Err(msg) = &result {
                    st.detail = t.redactor().text(&format!("{}: {msg}", st.detail));
                }
            }
            st.auth = Some(AuthFacts::Token {
                flow: self.flow(),
                error: error.map(Box::new),
                claims: claims.map(Box::new),
                received_unix: now_unix,
                polls,
            });
            steps.push(st);
        } else if let Err(msg) = &result
            && steps.is_empty()
        {
            return self.config_failure(msg);
        }
        if let Ok(tok) = result
            && usable
        {
            if let Some(cache) = &self.cache {
                let exp = super::jwt::claims(tok.expose_secret())
                    .exp
                    .or_else(|| expires_in.map(|d| now_unix + d.as_secs() as i64));
                if let Some(exp) = exp
                    && let Err(e) =
                        cache.put_with_refresh(&self.cache_key(), &tok, exp, refresh.as_ref())
                {
                    tracing::warn!("could not cache the token: {e}");
                }
            }
            let _ = self.token.set(tok);
        }
        Acquired { steps, usable }
    }

    fn config_failure(&self, msg: &str) -> Acquired {
        let mut st = Step::skipped(TOKEN_ID, StepKind::Auth, None, String::new());
        st.skipped = None;
        st.outcome = Outcome::Fail;
        st.detail = format!("no token request could be made: {msg}");
        st.failure = Some(Failure {
            kind: crate::transport::FailureKind::Refused,
            message: st.detail.clone(),
        });
        Acquired {
            steps: vec![st],
            usable: false,
        }
    }
}

/// How a refresh went: a final outcome, or the step saying why the device code flow follows.
enum Refreshed {
    Done(Acquired),
    Fallback(Option<Box<Step>>),
}

/// Another mailbox's copy of the run's one acquisition: the same steps and facts (so the
/// same diagnosis), with no time spent and a detail saying so.
fn reused(got: &Acquired) -> Acquired {
    let mut steps = got.steps.clone();
    for st in &mut steps {
        st.duration_ms = 0.0;
        st.detail = format!(
            "obtained once for this run and reused (no request for this mailbox): {}",
            st.detail
        );
    }
    Acquired {
        steps,
        usable: got.usable,
    }
}

/// The token step's line about the token.
fn claims_summary(c: &Claims) -> String {
    if !c.is_jwt {
        return "token is not a JWT (personal Microsoft accounts get opaque tokens)".into();
    }
    let mut s = format!("token aud {}", c.aud.as_deref().unwrap_or("(none)"));
    if !c.scp.is_empty() {
        s.push_str(&format!(", scp {}", c.scp.join(" ")));
    }
    if !c.roles.is_empty() {
        s.push_str(&format!(", roles {}", c.roles.join(" ")));
    }
    if let Some(tid) = &c.tid {
        s.push_str(&format!(", tid {tid}"));
    }
    s
}

/// Decodes a token endpoint error body (Microsoft's fields; never branching on the text, OA-7).
pub fn token_error(body: &[u8]) -> Option<TokenError> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
    let error = s("error")?;
    let mut error_codes: Vec<u32> = v
        .get("error_codes")
        .and_then(|x| x.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|n| n.as_u64())
                .map(|n| n as u32)
                .collect()
        })
        .unwrap_or_default();
    if error_codes.is_empty() {
        // Older answers carry the code only in the description ("AADSTS50020: …").
        if let Some(d) = s("error_description")
            && let Some(rest) = d.strip_prefix("AADSTS")
        {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                error_codes.push(n);
            }
        }
    }
    Some(TokenError {
        error,
        error_codes,
        // For display only: the first line, without the ids (they are kept as fields).
        description: s("error_description").map(|d| {
            let first = d.lines().next().unwrap_or("");
            let text = first.split(" Trace ID:").next().unwrap_or(first).trim();
            text.chars().take(400).collect()
        }),
        trace_id: s("trace_id"),
        correlation_id: s("correlation_id"),
        timestamp: s("timestamp"),
    })
}

/// A step for one token endpoint exchange.
fn exchange_step(t: &Transport, id: &str, s: &Seen) -> Step {
    let mut st = Step::skipped(id, StepKind::Auth, None, String::new());
    st.skipped = None;
    st.attempts.count = 1;
    match &s.outcome {
        Err(e) => {
            st.outcome = Outcome::Fail;
            st.duration_ms = crate::util::millis(e.elapsed);
            let mut f = Failure::from(e);
            f.message = t.redactor().text(&f.message);
            st.detail = f.message.clone();
            st.failure = Some(f);
        }
        Ok(resp) => {
            let http = HttpFacts::from_response(resp);
            st.outcome = if resp.status == 200 {
                Outcome::Pass
            } else {
                Outcome::Fail
            };
            st.duration_ms = crate::util::millis(resp.elapsed);
            st.detail = format!("HTTP {} {}", http.status, http.reason);
            st.http = Some(http);
        }
    }
    st
}

/// The `oauth2` HTTP client: each token endpoint request goes through the transport, and is
/// kept for the evidence. oauth2 keeps polling through transport errors (RFC 8628 back-off)
/// until the code expires; after 3 in a row `give_up` fires and the probe stops waiting.
/// A type of its own (not a closure) so its future is a plain boxed `Send` one: a fleet runs
/// probes as tasks, and closures returning borrowing futures hit rustc's higher-ranked
/// `Send` limit.
struct TransportClient {
    /// The run's transport (a shared clone): no lifetime parameter, which would make the
    /// oauth2 futures fail rustc's higher-ranked `Send` check when a fleet spawns probes.
    t: Transport,
    seen: Mutex<Vec<Seen>>,
    give_up: tokio::sync::Notify,
    failures: std::sync::atomic::AtomicU32,
    /// The key (and step id) of token endpoint requests: [`TOKEN_ID`] or [`REFRESH_ID`].
    token_key: &'static str,
}

impl TransportClient {
    fn new(t: &Transport, token_key: &'static str) -> Self {
        TransportClient {
            t: t.clone(),
            seen: Mutex::new(Vec::new()),
            give_up: tokio::sync::Notify::new(),
            failures: std::sync::atomic::AtomicU32::new(0),
            token_key,
        }
    }

    fn transport(&self) -> &Transport {
        &self.t
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for TransportClient {
    type Error = TransportError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let r = send(self.transport(), request, &self.seen, self.token_key).await;
            if r.is_err() {
                if self
                    .failures
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    + 1
                    >= 3
                {
                    self.give_up.notify_one();
                }
            } else {
                self.failures.store(0, std::sync::atomic::Ordering::SeqCst);
            }
            r
        })
    }
}

/// One token endpoint request through the transport.
async fn send(
    t: &Transport,
    req: oauth2::HttpRequest,
    seen: &Mutex<Vec<Seen>>,
    token_key: &'static str,
) -> Result<oauth2::HttpResponse, TransportError> {
    let url = url::Url::parse(&req.uri().to_string()).map_err(|e| TransportError {
        kind: crate::transport::FailureKind::Refused,
        message: format!("bad token endpoint URL: {e}"),
        elapsed: Duration::ZERO,
    })?;
    let key = if url.path().ends_with("/devicecode") {
        DEVICECODE_ID
    } else {
        token_key
    };
    let headers = req
        .headers()
        .iter()
        .map(|(n, v)| Header {
            name: n.as_str().to_string(),
            value: v.to_str().unwrap_or_default().to_string(),
            sensitive: n == http::header::AUTHORIZATION,
        })
        .collect();
    let method = if req.method() == http::Method::GET {
        Method::Get
    } else {
        Method::Post
    };
    let body = String::from_utf8_lossy(req.body()).into_owned();
    let hr = HttpRequest {
        key: key.into(),
        method,
        url,
        headers,
        body: (!body.is_empty()).then_some(body),
        retryable: false,
    };
    let outcome = t.send(&hr).await;
    let converted = outcome.as_ref().map_err(Clone::clone).and_then(|r| {
        let mut b = http::Response::builder().status(r.status);
        for (n, v) in &r.headers {
            b = b.header(n.as_str(), v.as_str());
        }
        b.body(r.body.clone()).map_err(|e| TransportError {
            kind: crate::transport::FailureKind::Other,
            message: format!("unusable token endpoint response: {e}"),
            elapsed: r.elapsed,
        })
    });
    seen.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
        key: key.into(),
        outcome,
    });
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_microsoft_token_errors() {
        let body = br#"{"error":"invalid_grant","error_description":"AADSTS50020: User account 'jamie.doe@outlook.com' from identity provider 'live.com' does not exist in tenant 'Contoso'.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[50020],"timestamp":"2026-11-24 09:00:01Z","trace_id":"0b6e1d2c-aaaa-4bbb-8ccc-111122223333","correlation_id":"5d1e2f3a-dddd-4eee-9fff-444455556666"}"#;
        let e = token_error(body).unwrap();
        assert_eq!(e.error, "invalid_grant");
        assert_eq!(e.error_codes, vec![50020]);
        assert_eq!(
            e.trace_id.as_deref(),
            Some("0b6e1d2c-aaaa-4bbb-8ccc-111122223333")
        );
        assert!(
            e.description
                .unwrap()
                .starts_with("AADSTS50020: User account")
        );
        let old = token_error(br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#).unwrap();
        assert_eq!(old.error_codes, vec![7000215]);
        assert!(token_error(b"<html>").is_none());
    }

    #[test]
    fn authority_and_tenant_rules() {
        assert!(authority("https://login.microsoftonline.com").is_ok());
        assert!(authority("http://127.0.0.1:8080").is_ok());
        assert_eq!(
            authority("http://login.example.com"),
            Err(ConfigError::NotHttps("http://login.example.com".into()))
        );
        assert_eq!(tenant(None).unwrap(), "organizations");
        assert_eq!(tenant(Some("Consumers")), Err(ConfigError::Consumers));
        assert!(tenant(Some("a/b")).is_err());
        let c = OAuthConfig::new(
            AuthMode::DeviceCode,
            authority("https://login.example.test/").unwrap(),
            "contoso.com".into(),
            "app".into(),
            ClientAuth::None,
        );
        assert_eq!(
            c.token_url(),
            "https://login.example.test/contoso.com/oauth2/v2.0/token"
        );
        assert_eq!(
            c.devicecode_url(),
            "https://login.example.test/contoso.com/oauth2/v2.0/devicecode"
        );
    }
}
