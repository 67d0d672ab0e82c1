//! One pinned HTTP/1.1 connection, for connection-oriented authentication (NTLM).
//!
//! NTLM authenticates a TCP connection: NEGOTIATE, AUTHENTICATE and the SOAP requests after
//! them must travel on the same one. reqwest (hyper's pooled client) gives no such promise:
//! it hands a finished connection back to its pool asynchronously and races a new connect
//! against the pool checkout, so a request sent at once can go out on a fresh, unauthenticated
//! connection (observed against the test acceptor under load). Here hyper's low-level
//! `client::conn::http1` drives exactly one connection; requests take turns on it, and a new
//! one is opened only when the server closed the old one. Cookies the server sets
//! (Exchange's `X-BackEndCookie`) are kept and sent back. TLS is rustls with the same trust
//! as the pooled client: the OS store through rustls-platform-verifier, plus `--ca-file`.
//! Proxies are not supported here (NTLM through a proxy needs a CONNECT tunnel).

use super::resolve::Resolver;
use super::{FailureKind, HttpRequest, HttpResponse, Method, TransportError};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_rustls::rustls;

pub struct Pinned {
    tls: Arc<rustls::ClientConfig>,
    resolver: Resolver,
    connect_timeout: Duration,
    user_agent: String,
    body_cap: usize,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The open connection and the origin it goes to.
    conn: Option<(String, SendRequest<Full<Bytes>>)>,
    cookies: Vec<(String, String)>,
}

fn err(kind: FailureKind, message: String, start: Instant) -> TransportError {
    TransportError {
        kind,
        message,
        elapsed: start.elapsed(),
    }
}

/// Sorts an error of the connection into a failure kind, from its chain of causes.
fn classify(e: &(dyn std::error::Error + 'static)) -> (FailureKind, String) {
    let mut chain = Vec::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut tls = false;
    while let Some(s) = src {
        chain.push(s.to_string());
        tls |= s.downcast_ref::<rustls::Error>().is_some();
        src = s.source();
    }
    let text = chain.join(": ");
    let lower = text.to_ascii_lowercase();
    let kind = if tls || lower.contains("certificate") || lower.contains("tls") {
        FailureKind::Tls
    } else {
        FailureKind::Connect
    };
    (kind, crate::util::truncate_for_display(&text, 400))
}

impl Pinned {
    pub fn new(
        opts: &super::http::HttpOptions,
        resolver: Resolver,
        extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = if extra_roots.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
        }
        .map_err(|e| format!("TLS trust store: {e}"))?;
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Pinned {
            tls: Arc::new(tls),
            resolver,
            connect_timeout: opts.connect_timeout,
            user_agent: opts.user_agent.clone(),
            body_cap: opts.body_cap,
            state: tokio::sync::Mutex::new(State::default()),
        })
    }

    async fn connect(
        &self,
        url: &url::Url,
        start: Instant,
    ) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let host = url
            .host_str()
            .ok_or_else(|| err(FailureKind::Refused, "URL without a host".into(), start))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<std::net::SocketAddr> = match self.resolver.pinned(&host) {
            Some(a) => a
                .iter()
                .map(|s| std::net::SocketAddr::new(s.ip(), port))
                .collect(),
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|e| err(FailureKind::Dns, format!("dns error: {host}: {e}"), start))?
                .collect(),
        };
        let mut last = None;
        let mut tcp = None;
        for a in addrs {
            match tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(a))
                .await
            {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => last = Some(format!("{a}: {e}")),
                Err(_) => last = Some(format!("{a}: connect timed out")),
            }
        }
        let tcp = tcp.ok_or_else(|| {
            err(
                FailureKind::Connect,
                format!(
                    "could not connect to {host}:{port}: {}",
                    last.unwrap_or_else(|| "no address".into())
                ),
                start,
            )
        })?;
        let _ = tcp.set_nodelay(true);
        if url.scheme() == "https" {
            let name = rustls_pki_types::ServerName::try_from(host.clone())
                .map_err(|e| err(FailureKind::Tls, format!("{host}: {e}"), start))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    let (_, m) = classify(&e);
                    err(
                        FailureKind::Tls,
                        format!("TLS handshake with {host}: {m}"),
                        start,
                    )
                })?;
            self.handshake(TokioIo::new(tls), start).await
        } else {
            self.handshake(TokioIo::new(tcp), start).await
        }
    }

    async fn handshake<T>(
        &self,
        io: T,
        start: Instant,
    ) -> Result<SendRequest<Full<Bytes>>, TransportError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| {
                let (k, m) = classify(&e);
                err(k, m, start)
            })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(target: "ews_probe::http", "pinned connection ended: {e}");
            }
        });
        Ok(sender)
    }

    /// Sends one request on the pinned connection (opening it first if needed).
    pub async fn send(
        &self,
        req: &HttpRequest,
        remaining: Duration,
    ) -> Result<HttpResponse, TransportError> {
        let start = Instant::now();
        let work = self.send_inner(req, start);
        match tokio::time::timeout(remaining, work).await {
            Ok(r) => r,
            Err(_) => Err(err(FailureKind::Timeout, "deadline passed".into(), start)),
        }
    }

    async fn send_inner(
        &self,
        req: &HttpRequest,
        start: Instant,
    ) -> Result<HttpResponse, TransportError> {
        let origin = req.url.origin().ascii_serialization();
        let mut st = self.state.lock().await;
        let reuse = matches!(&st.conn, Some((o, s)) if *o == origin && !s.is_closed());
        if !reuse {
            let sender = self.connect(&req.url, start).await?;
            st.conn = Some((origin.clone(), sender));
        }
        let host_header = match req.url.port() {
            Some(p) => format!("{}:{p}", req.url.host_str().unwrap_or_default()),
            None => req.url.host_str().unwrap_or_default().to_string(),
        };
        let path = match req.url.query() {
            Some(q) => format!("{}?{q}", req.url.path()),
            None => req.url.path().to_string(),
        };
        let mut b = hyper::Request::builder()
            .method(match req.method {
                Method::Get => hyper::Method::GET,
                Method::Post => hyper::Method::POST,
            })
            .uri(path)
            .header(hyper::header::HOST, host_header)
            .header(hyper::header::USER_AGENT, self.user_agent.as_str());
        for h in &req.headers {
            let mut v = hyper::header::HeaderValue::from_str(&h.value).map_err(|_| {
                err(
                    FailureKind::Refused,
                    format!("header {} has characters HTTP does not allow", h.name),
                    start,
                )
            })?;
            v.set_sensitive(h.sensitive);
            b = b.header(h.name.as_str(), v);
        }
        if !st.cookies.is_empty() {
            let c: Vec<String> = st.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let mut v = hyper::header::HeaderValue::from_str(&c.join("; "))
                .unwrap_or_else(|_| hyper::header::HeaderValue::from_static(""));
            v.set_sensitive(true);
            b = b.header(hyper::header::COOKIE, v);
        }
        let body = Full::new(Bytes::from(req.body.clone().unwrap_or_default()));
        let request = b
            .body(body)
            .map_err(|e| err(FailureKind::Refused, format!("bad request: {e}"), start))?;
        let Some((_, sender)) = st.conn.as_mut() else {
            return Err(err(FailureKind::Connect, "no connection".into(), start));
        };
        sender.ready().await.map_err(|e| {
            let (k, m) = classify(&e);
            err(k, m, start)
        })?;
        let resp = sender.send_request(request).await.map_err(|e| {
            let (k, m) = classify(&e);
            err(k, m, start)
        })?;
        let status = resp.status();
        let headers = super::header_pairs(resp.headers());
        for (n, v) in &headers {
            if n.eq_ignore_ascii_case("set-cookie")
                && let Some((name, value)) = v.split(';').next().and_then(|p| p.split_once('='))
            {
                let (name, value) = (name.trim().to_string(), value.trim().to_string());
                st.cookies.retain(|(n, _)| *n != name);
                st.cookies.push((name, value));
            }
        }
        let limited = http_body_util::Limited::new(resp.into_body(), self.body_cap);
        let body = limited.collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                err(
                    FailureKind::TooLarge,
                    format!(
                        "HTTP {} body refused: over the {} MiB cap",
                        status.as_u16(),
                        self.body_cap / (1024 * 1024)
                    ),
                    start,
                )
            } else {
                err(
                    FailureKind::Connect,
                    format!("while reading the body: {e}"),
                    start,
                )
            }
        })?;
        Ok(HttpResponse {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("").to_string(),
            headers,
            body: body.to_bytes().to_vec(),
            elapsed: start.elapsed(),
        })
    }
}
