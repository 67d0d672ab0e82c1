//! TLS on 127.0.0.1 for tests that reach named hosts: a test CA generated with rcgen, and a
//! small TLS front (tokio-rustls) per host name whose certificate that CA signed, forwarding
//! each connection to a plain backend (a wiremock server, or tests/common/fleet_server.rs).
//! The probe reaches a front with `--connect-to HOST:443:127.0.0.1:PORT` and trusts the CA
//! with `--ca-file`.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_rustls::rustls;
use wiremock::MockServer;

pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

pub fn new_ca() -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, "ews-probe test CA");
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// What is wrong with a host's certificate, if anything.
#[derive(Clone, Copy, PartialEq)]
pub enum Cert {
    Good,
    Expired,
    WrongName,
}

/// A TLS front for `host` on 127.0.0.1 forwarding every connection to a fresh wiremock.
pub async fn tls_host(ca: &Ca, host: &str, kind: Cert) -> (u16, MockServer) {
    let mock = MockServer::start().await;
    let port = tls_front(ca, host, kind, *mock.address()).await;
    (port, mock)
}

/// A TLS front for `host` on 127.0.0.1 forwarding every connection to `backend`; its port.
/// Runs on the caller's tokio runtime.
pub async fn tls_front(ca: &Ca, host: &str, kind: Cert, backend: SocketAddr) -> u16 {
    let name = if kind == Cert::WrongName {
        "www.fabrikam.example"
    } else {
        host
    };
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    if kind == Cert::Expired {
        p.not_before = rcgen::date_time_ymd(2024, 1, 1);
        p.not_after = rcgen::date_time_ymd(2025, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut up) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    port
}
