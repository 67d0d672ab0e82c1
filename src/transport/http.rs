//! The live back end: one reqwest client (one connection pool) per run, rustls with the OS
//! trust store, no automatic redirects (Autodiscover and EWS redirects are policy decisions,
//! not the client's), no automatic retries (retries happen in [`super::retry`] only, RE-7),
//! and a hard size cap while the body streams in.

use super::resolve::{ConnectTo, Pin, Resolver};
use super::{FailureKind, HttpRequest, HttpResponse, Method, TransportError, redact::Redactor};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub connect_timeout: Duration,
    /// Longest silence between two reads of one response.
    pub read_timeout: Duration,
    pub body_cap: usize,
    pub pins: Vec<Pin>,
    /// `--connect-to` entries.
    pub connect_to: Vec<ConnectTo>,
    /// Extra PEM CA certificates trusted on top of the OS store.
    pub ca_file: Option<std::path::PathBuf>,
    pub proxy: Option<String>,
    pub user_agent: String,
    /// NTLM is connection-oriented: every request on one pinned HTTP/1.1 connection, cookies
    /// kept (Exchange's X-BackEndCookie), so the handshake and the SOAP requests share it.
    pub connection_auth: bool,
    /// Idle connections kept per host (a fleet keeps one per request it may run at once).
    pub pool_idle_per_host: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            body_cap: super::DEFAULT_BODY_CAP,
            pins: Vec::new(),
            connect_to: Vec::new(),
            ca_file: None,
            proxy: None,
            user_agent: format!("ews-probe/{}", env!("CARGO_PKG_VERSION")),
            connection_auth: false,
            pool_idle_per_host: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile {
        path: String,
        source: std::io::Error,
    },
    #[error("CA file {0} holds no usable PEM certificate")]
    CaPem(String),
    #[error("bad proxy URL: {0}")]
    Proxy(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

pub struct HttpClient {
    client: reqwest::Client,
    resolver: Resolver,
    connect_to: Vec<ConnectTo>,
    body_cap: usize,
    /// For connection-oriented authentication (NTLM): every request on one connection.
    pinned: Option<super::pinned::Pinned>,
}

impl HttpClient {
    pub fn new(opts: &HttpOptions) -> Result<Self, ClientError> {
        let mut pins = opts.pins.clone();
        for c in &opts.connect_to {
            pins.push(Pin {
                host: c.host.clone(),
                port: c.to_port,
                addr: c.addr,
            });
        }
        let resolver = Resolver::new(&pins);
        let mut b = reqwest::Client::builder()
            .user_agent(opts.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(opts.connect_timeout)
            // A stalled connection (no byte for this long) fails before the overall deadline.
            .read_timeout(opts.read_timeout)
            .pool_max_idle_per_host(opts.pool_idle_per_host)
            .dns_resolver(resolver.clone());
        let mut extra_roots = Vec::new();
        if let Some(path) = &opts.ca_file {
            let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
                path: path.display().to_string(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|_| ClientError::CaPem(path.display().to_string()))?;
            if certs.is_empty() {
                return Err(ClientError::CaPem(path.display().to_string()));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
            use rustls_pki_types::pem::PemObject;
            extra_roots = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
                .filter_map(Result::ok)
                .collect();
        }
        if let Some(p) = &opts.proxy {
            let proxy = reqwest::Proxy::all(p).map_err(|e| ClientError::Proxy(e.to_string()))?;
            b = b.proxy(proxy);
        }
        let pinned = if opts.connection_auth {
            if opts.proxy.is_some() {
                return Err(ClientError::Proxy(
                    "NTLM authenticates a direct connection; --proxy is not supported with --auth ntlm".into(),
                ));
            }
            if !opts.connect_to.is_empty() {
                return Err(ClientError::Build(
                    "--connect-to is not supported with --auth ntlm (its one authenticated connection goes to the URL's own host and port); use --resolve to pin the host's address".into(),
                ));
            }
            Some(
                super::pinned::Pinned::new(opts, resolver.clone(), extra_roots)
                    .map_err(ClientError::Build)?,
            )
        } else {
            None
        };
        let client = b.build().map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(HttpClient {
            client,
            resolver,
            connect_to: opts.connect_to.clone(),
            body_cap: opts.body_cap,
            pinned,
        })
    }

    /// Plain `http://` is for loopback only (tests, labs): anything else could carry
    /// credentials in clear text. The one exception is a GET with no body and no credential
    /// header (Autodiscover's documented unauthenticated redirect probe): it carries nothing.
    fn plain_http_allowed(&self, req: &HttpRequest) -> bool {
        let url = &req.url;
        if url.scheme() != "http" {
            return true;
        }
        if req.method == Method::Get
            && req.body.is_none()
            && !req.headers.iter().any(|h| h.sensitive)
        {
            return true;
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || self
                        .resolver
                        .pinned(d)
                        .is_some_and(|a| a.iter().all(|s| s.ip().is_loopback()))
            }
            None => false,
        }
    }

    pub async fn send(
        &self,
        req: &HttpRequest,
        remaining: Duration,
        redactor: &Redactor,
    ) -> Result<HttpResponse, TransportError> {
        let start = Instant::now();
        let fail = |kind, message: String| TransportError {
            kind,
            message: redactor.text(&message),
            elapsed: start.elapsed(),
        };
        if !matches!(req.url.scheme(), "http" | "https") {
            return Err(fail(
                FailureKind::Refused,
                format!("unsupported URL scheme '{}'", req.url.scheme()),
            ));
        }
        if !self.plain_http_allowed(req) {
            return Err(fail(
                FailureKind::Refused,
                format!(
                    "plain http:// to {} refused: credentials and mailbox data only travel over https (http is allowed to loopback addresses only)",
                    req.url.host_str().unwrap_or("?")
                ),
            ));
        }
        if remaining.is_zero() {
            return Err(fail(
                FailureKind::Timeout,
                "deadline passed before the request".into(),
            ));
        }
        if let Some(p) = &self.pinned {
            return p.send(req, remaining).await.map_err(|mut e| {
                e.message = redactor.text(&e.message);
                e
            });
        }
        // --connect-to: same URL, Host and TLS name; another port (the address is pinned).
        let mut target = req.url.clone();
        let mut host_header = None;
        if let (Some(host), Some(port)) = (req.url.host_str(), req.url.port_or_known_default())
            && let Some(c) = self
                .connect_to
                .iter()
                .find(|c| c.host.eq_ignore_ascii_case(host) && c.port == port)
        {
            host_header = Some(match req.url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            });
            let _ = target.set_port(Some(c.to_port));
        }
        let mut rb = match req.method {
            Method::Get => self.client.get(target),
            Method::Post => self.client.post(target),
        };
        if let Some(h) = host_header {
            rb = rb.header(reqwest::header::HOST, h);
        }
        for h in &req.headers {
            let mut v = reqwest::header::HeaderValue::from_str(&h.value).map_err(|_| {
                fail(
                    FailureKind::Refused,
                    format!("header {} has characters HTTP does not allow", h.name),
                )
            })?;
            v.set_sensitive(h.sensitive);
            rb = rb.header(h.name.as_str(), v);
        }
        if let Some(b) = &req.body {
            rb = rb.body(b.clone());
        }
        rb = rb.timeout(remaining);
        let deadline = start + remaining;

        let resp = rb.send().await.map_err(|e| {
            let (kind, msg) = classify(&e);
            fail(kind, msg)
        })?;
        let status = resp.status();
        let headers = super::header_pairs(resp.headers());
        if let Some(len) = resp.content_length()
            && len as usize > self.body_cap
        {
            return Err(fail(
                FailureKind::TooLarge,
                format!(
                    "HTTP {} with a {len}-byte body refused: over the {} MiB cap",
                    status.as_u16(),
                    self.body_cap / (1024 * 1024)
                ),
            ));
        }
        let mut body = Vec::new();
        let mut resp = resp;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = match tokio::time::timeout(left, resp.chunk()).await {
                Err(_) => {
                    return Err(fail(
                        FailureKind::Timeout,
                        format!(
                            "deadline passed while reading the body of HTTP {}",
                            status.as_u16()
                        ),
                    ));
                }
                Ok(Err(e)) => {
                    let (kind, msg) = classify(&e);
                    return Err(fail(kind, format!("while reading the body: {msg}")));
                }
                Ok(Ok(c)) => c,
            };
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > self.body_cap {
                return Err(fail(
                    FailureKind::TooLarge,
                    format!(
                        "HTTP {} body refused: over the {} MiB cap",
                        status.as_u16(),
                        self.body_cap / (1024 * 1024)
                    ),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            headers,
            body,
            elapsed: start.elapsed(),
        })
    }
}

/// Sorts a reqwest error into what a support engineer acts on, from its chain of causes.
pub fn classify(e: &reqwest::Error) -> (FailureKind, String) {
    let mut chain = Vec::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut io_kind = None;
    while let Some(s) = src {
        chain.push(s.to_string());
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        src = s.source();
    }
    let text = chain
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(": ");
    let lower = text.to_ascii_lowercase();
    let kind = if e.is_timeout() || lower.contains("timed out") {
        FailureKind::Timeout
    } else if lower.contains("dns error") {
        FailureKind::Dns
    } else if lower.contains("certificate")
        || lower.contains("tls")
        || lower.contains("handshake")
        || lower.contains("invalidcontenttype")
        || lower.contains("corrupt message")
    {
        FailureKind::Tls
    } else if e.is_connect()
        || matches!(
            io_kind,
            Some(
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        )
        || lower.contains("connection closed")
        || lower.contains("connection reset")
    {
        FailureKind::Connect
    } else {
        FailureKind::Other
    };
    (kind, crate::util::truncate_for_display(&text, 400))
}
