//! The network steps for one host, the way a support engineer checks a path by hand: the DNS
//! answer (addresses), the TCP connect time, and a TLS handshake showing the version, cipher
//! suite and every certificate of the chain (subject, issuer, SANs, validity), with the
//! verifier's verdict and a hint when it fails (research/security.md §6.4, TL-5).
//!
//! Why this bypasses the transport choke point: reqwest hides the handshake (on a failed one
//! there is no response and no certificate at all), so this is a separate, *credential-free*
//! connection: nothing is written after the handshake, no HTTP request, no header, no body.
//! Its verifier is the one the HTTP client uses (rustls-platform-verifier: the OS trust store,
//! plus `--ca-file` roots), wrapped to record the certificates it was shown. It honours
//! `--resolve` and `--connect-to`; it does not run through a proxy (the caller skips it then).

use crate::transport::resolve::{ConnectTo, Pin, Resolver};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// How to reach hosts for the network steps.
#[derive(Debug, Clone)]
pub struct NetOptions {
    pub pins: Vec<Pin>,
    pub connect_to: Vec<ConnectTo>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// One certificate as shown to people.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CertFacts {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub not_before: String,
    pub not_after: String,
}

impl CertFacts {
    pub fn line(&self) -> String {
        format!(
            "subject {}; issuer {}; SANs {}; valid {} to {}",
            self.subject,
            self.issuer,
            if self.sans.is_empty() {
                "(none)".into()
            } else {
                self.sans.join(", ")
            },
            self.not_before,
            self.not_after
        )
    }
}

/// What the network steps found for one host.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostNetwork {
    pub host: String,
    pub port: u16,
    pub addresses: Vec<String>,
    pub dns_error: Option<String>,
    pub connect_ms: Option<f64>,
    pub connect_error: Option<String>,
    pub tls_version: Option<String>,
    pub cipher: Option<String>,
    /// Leaf first, as the server sent it.
    pub chain: Vec<CertFacts>,
    pub tls_error: Option<String>,
    /// What the TLS error most likely means, and what to do.
    pub tls_hint: Option<String>,
}

/// Reads one DER certificate; unreadable ones still show as such.
pub fn cert_facts(der: &[u8]) -> CertFacts {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => {
            let when = |t: &x509_parser::time::ASN1Time| {
                time::OffsetDateTime::from_unix_timestamp(t.timestamp())
                    .ok()
                    .and_then(|d| {
                        d.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| t.to_string())
            };
            let sans = match c.subject_alternative_name() {
                Ok(Some(ext)) => ext
                    .value
                    .general_names
                    .iter()
                    .filter_map(|g| match g {
                        x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                        x509_parser::extensions::GeneralName::IPAddress(ip) => {
                            Some(format!("IP {ip:?}"))
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            CertFacts {
                subject: c.subject().to_string(),
                issuer: c.issuer().to_string(),
                sans,
                not_before: when(&c.validity().not_before),
                not_after: when(&c.validity().not_after),
            }
        }
        Err(e) => CertFacts {
            subject: format!("(unreadable certificate: {e})"),
            issuer: String::new(),
            sans: vec![],
            not_before: String::new(),
            not_after: String::new(),
        },
    }
}

/// The verifier's error in words a support engineer acts on.
pub fn tls_hint(error: &str, host: &str, chain: &[CertFacts]) -> String {
    let leaf = chain.first();
    if error.contains("Expired") {
        format!(
            "the certificate has expired (valid until {}): the server's administrator must renew it",
            leaf.map(|c| c.not_after.as_str()).unwrap_or("?")
        )
    } else if error.contains("NotValidYet") {
        "the certificate is not valid yet: check this machine's clock, or the server's certificate dates".into()
    } else if error.contains("NotValidForName") {
        format!(
            "name mismatch: the certificate is for {}, not {host}; the name points at the wrong server, or the certificate lacks this name",
            leaf.map(|c| c.sans.join(", ")).unwrap_or_default()
        )
    } else if error.contains("UnknownIssuer") {
        format!(
            "unknown issuer: the chain ends at \"{}\", which this machine does not trust. Behind corporate TLS inspection (Zscaler, Netskope, a firewall) pass the inspection root CA with --ca-file PATH; otherwise the server lacks its intermediate certificate",
            chain.last().map(|c| c.issuer.as_str()).unwrap_or("?")
        )
    } else if error.contains("Revoked") {
        "the certificate was revoked: the server's administrator must replace it".into()
    } else if error.contains("protocol version") || error.contains("PeerIncompatible") {
        "the server offers no TLS version this tool speaks (1.2 or 1.3): old Exchange servers need TLS 1.2 enabled".into()
    } else {
        "the TLS handshake failed; the certificate chain above is what the server sent".into()
    }
}

/// Wraps the real verifier and keeps the certificates it was shown.
#[derive(Debug)]
struct Recording {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Mutex<Vec<Vec<u8>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut s) = self.seen.lock() {
            s.clear();
            s.push(end_entity.to_vec());
            s.extend(intermediates.iter().map(|c| c.to_vec()));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn verifier(ca_file: Option<&PathBuf>) -> Result<Arc<dyn ServerCertVerifier>, String> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut extra = Vec::new();
    if let Some(p) = ca_file {
        let pem = std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        for c in CertificateDer::pem_slice_iter(&pem) {
            extra.push(c.map_err(|e| format!("{}: {e}", p.display()))?);
        }
    }
    let v = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(v))
}

/// Where `host:port` is reached: `--connect-to`, else `--resolve` pins, else DNS.
async fn addresses(o: &NetOptions, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    if let Some(c) = o
        .connect_to
        .iter()
        .find(|c| c.host.eq_ignore_ascii_case(host) && c.port == port)
    {
        return Ok(vec![SocketAddr::new(c.addr, c.to_port)]);
    }
    let r = Resolver::new(&o.pins);
    if let Some(a) = r.pinned(host) {
        return Ok(a.iter().map(|s| SocketAddr::new(s.ip(), port)).collect());
    }
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if h == "invalid" || h.ends_with(".invalid") {
        return Err(format!(
            "{host} is a reserved .invalid name (RFC 6761), it never resolves"
        ));
    }
    match tokio::time::timeout(o.timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err("DNS timed out".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(it)) => {
            let v: Vec<SocketAddr> = it.collect();
            if v.is_empty() {
                Err(format!("{host} has no addresses"))
            } else {
                Ok(v)
            }
        }
    }
}

/// The network facts as report steps: `net.<host>.dns`, `.tcp`, `.tls`, as far as they got.
pub fn steps(n: &HostNetwork) -> Vec<crate::evidence::Step> {
    use crate::evidence::{Step, StepKind};
    let step = Step::ran;
    let (host, port) = (&n.host, n.port);
    let base = format!("net.{host}");
    let mut out = Vec::new();
    if let Some(e) = &n.dns_error {
        out.push(step(
            format!("{base}.dns"),
            StepKind::Dns,
            false,
            0.0,
            format!("{host}: {e}"),
        ));
        return out;
    }
    out.push(step(
        format!("{base}.dns"),
        StepKind::Dns,
        true,
        0.0,
        format!("{host} → {}", n.addresses.join(", ")),
    ));
    if let Some(e) = &n.connect_error {
        out.push(step(
            format!("{base}.tcp"),
            StepKind::Tcp,
            false,
            0.0,
            format!("port {port}: {e}"),
        ));
        return out;
    }
    out.push(step(
        format!("{base}.tcp"),
        StepKind::Tcp,
        true,
        n.connect_ms.unwrap_or(0.0),
        format!("connected to port {port}"),
    ));
    let leaf = n.chain.first().map(|c| c.line()).unwrap_or_default();
    let detail = match &n.tls_error {
        Some(e) => format!("{}; {}", e, n.tls_hint.as_deref().unwrap_or("")),
        None => format!(
            "{} {}; {} certificate(s), leaf: {leaf}",
            n.tls_version.as_deref().unwrap_or("?"),
            n.cipher.as_deref().unwrap_or("?"),
            n.chain.len()
        ),
    };
    out.push(step(
        format!("{base}.tls"),
        StepKind::Tls,
        n.tls_error.is_none(),
        0.0,
        detail,
    ));
    out
}

/// Runs DNS, TCP and the TLS handshake for `host:port`. Never sends application data.
pub async fn check(o: &NetOptions, host: &str, port: u16) -> HostNetwork {
    let mut n = HostNetwork {
        host: host.to_string(),
        port,
        ..HostNetwork::default()
    };
    let addrs = match addresses(o, host, port).await {
        Ok(a) => a,
        Err(e) => {
            n.dns_error = Some(e);
            return n;
        }
    };
    n.addresses = addrs.iter().map(|a| a.ip().to_string()).collect();
    let started = Instant::now();
    let tcp =
        match tokio::time::timeout(o.timeout, tokio::net::TcpStream::connect(&addrs[..])).await {
            Err(_) => {
                n.connect_error = Some("TCP connect timed out".into());
                return n;
            }
            Ok(Err(e)) => {
                n.connect_error = Some(e.to_string());
                return n;
            }
            Ok(Ok(s)) => s,
        };
    n.connect_ms = Some(crate::util::millis(started.elapsed()));
    let inner = match verifier(o.ca_file.as_ref()) {
        Ok(v) => v,
        Err(e) => {
            n.tls_error = Some(e);
            return n;
        }
    };
    let rec = Arc::new(Recording {
        inner,
        seen: Mutex::new(Vec::new()),
    });
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b
            .dangerous()
            .with_custom_certificate_verifier(rec.clone())
            .with_no_client_auth(),
        Err(e) => {
            n.tls_error = Some(e.to_string());
            return n;
        }
    };
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        n.tls_error = Some(format!("{host} is not a valid TLS server name"));
        return n;
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let result = tokio::time::timeout(o.timeout, connector.connect(name, tcp)).await;
    let seen: Vec<Vec<u8>> = rec.seen.lock().map(|s| s.clone()).unwrap_or_default();
    n.chain = seen.iter().map(|d| cert_facts(d)).collect();
    match result {
        Err(_) => n.tls_error = Some("TLS handshake timed out".into()),
        Ok(Err(e)) => {
            let msg = e
                .get_ref()
                .map(|inner| format!("{inner:?} ({inner})"))
                .unwrap_or_else(|| e.to_string());
            n.tls_hint = Some(tls_hint(&msg, host, &n.chain));
            n.tls_error = Some(crate::util::truncate_for_display(&msg, 300));
        }
        Ok(Ok(stream)) => {
            let (_, conn) = stream.get_ref();
            n.tls_version = conn.protocol_version().map(|v| format!("{v:?}"));
            n.cipher = conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()));
            // Closed without a byte of application data.
            drop(stream);
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_cause() {
        let chain = vec![CertFacts {
            subject: "CN=mail.contoso.example".into(),
            issuer: "CN=Corp Inspection CA".into(),
            sans: vec!["mail.contoso.example".into()],
            not_before: "2025-01-01T00:00:00Z".into(),
            not_after: "2025-06-01T00:00:00Z".into(),
        }];
        assert!(tls_hint("InvalidCertificate(Expired)", "h", &chain).contains("2025-06-01"));
        assert!(
            tls_hint(
                "InvalidCertificate(NotValidForNameContext {..})",
                "other.example",
                &chain
            )
            .contains("mail.contoso.example, not other.example")
        );
        let u = tls_hint("InvalidCertificate(UnknownIssuer)", "h", &chain);
        assert!(
            u.contains("Corp Inspection CA") && u.contains("--ca-file"),
            "{u}"
        );
    }
}
