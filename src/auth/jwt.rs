//! JSON Web Tokens, the two ways the probe meets them:
//! * the client assertion of the certificate credential flow (Microsoft identity platform,
//!   "certificate credentials": RS256, `x5t` = base64url SHA-1 and `x5t#S256` = base64url
//!   SHA-256 thumbprint of the DER certificate; claims `aud` = the token endpoint, `iss` =
//!   `sub` = client id, `jti`, `nbf`, `iat`, `exp` at most 10 minutes later), signed with
//!   aws-lc-rs (already in the build through rustls);
//! * the claims of an access token, decoded but never trusted (OA-9): Microsoft says clients
//!   must not validate access tokens; the claims only explain a refusal.

use super::facts::Claims;
use aws_lc_rs::{digest, rand::SystemRandom, signature};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read --client-cert {0}: {1}")]
    Read(String, String),
    #[error(
        "--client-cert {0} holds no PEM certificate (it must hold the certificate and its private key)"
    )]
    NoCertificate(String),
    #[error(
        "--client-cert {0} holds no PEM private key (it must hold the certificate and its private key)"
    )]
    NoKey(String),
    #[error("--client-cert {0}: the private key is not an RSA key usable for RS256 ({1})")]
    BadKey(String, String),
}

/// A certificate credential: the DER certificate's thumbprints and its RSA key.
pub struct CertCredential {
    sha1: [u8; 20],
    sha256: [u8; 32],
    key: signature::RsaKeyPair,
}

impl std::fmt::Debug for CertCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CertCredential(x5t {}, key [redacted])",
            B64.encode(self.sha1)
        )
    }
}

impl CertCredential {
    /// Reads one PEM file holding the certificate and its private key (as the Azure CLI takes it).
    pub fn from_pem(shown: &str, pem: &[u8]) -> Result<Self, CertError> {
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| CertError::NoCertificate(shown.into()))?;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| CertError::NoKey(shown.into()))?;
        let pair = match &key {
            PrivateKeyDer::Pkcs8(k) => signature::RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => signature::RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(CertError::BadKey(shown.into(), "not RSA".into())),
        }
        .map_err(|e| CertError::BadKey(shown.into(), e.to_string()))?;
        let mut sha1 = [0u8; 20];
        sha1.copy_from_slice(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &cert).as_ref());
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest::digest(&digest::SHA256, &cert).as_ref());
        Ok(CertCredential {
            sha1,
            sha256,
            key: pair,
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Self, CertError> {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|e| CertError::Read(shown.clone(), e.to_string()))?;
        Self::from_pem(&shown, &pem)
    }

    /// The signed client assertion for `token_url`, valid from `now` for 10 minutes.
    pub fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
        now: i64,
    ) -> Result<SecretString, CertError> {
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": B64.encode(self.sha1),
            "x5t#S256": B64.encode(self.sha256),
        });
        let claims = serde_json::json!({
            "aud": token_url,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + 600,
        });
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(|e| CertError::BadKey("(signing)".into(), e.to_string()))?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            B64.encode(sig)
        )))
    }
}

fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reads an access token's claims without verifying it. An opaque (non-JWT) token, as
/// personal Microsoft accounts get, gives `is_jwt: false` and nothing else.
pub fn claims(token: &str) -> Claims {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = (parts.len() == 3)
        .then(|| B64.decode(parts[1].trim_end_matches('=')).ok())
        .flatten()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let Some(p) = payload.filter(|p| p.is_object()) else {
        return Claims::default();
    };
    let s = |k: &str| p.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Claims {
        aud: s("aud"),
        tid: s("tid"),
        scp: strings(p.get("scp")),
        roles: strings(p.get("roles")),
        exp: p.get("exp").and_then(|v| v.as_i64()),
        upn: s("upn").or_else(|| s("preferred_username")),
        appid: s("appid").or_else(|| s("azp")),
        is_jwt: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn unsigned(claims: serde_json::Value) -> String {
        format!(
            "{}.{}.c2ln",
            B64.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
            B64.encode(claims.to_string())
        )
    }

    #[test]
    fn reads_claims_without_verifying() {
        let t = unsigned(serde_json::json!({
            "aud": "https://outlook.office365.com", "tid": "t1", "scp": "EWS.AccessAsUser.All offline_access",
            "exp": 1700000000, "upn": "a@contoso.com", "appid": "app"
        }));
        let c = claims(&t);
        assert!(c.is_jwt);
        assert_eq!(c.aud.as_deref(), Some("https://outlook.office365.com"));
        assert_eq!(c.scp, vec!["EWS.AccessAsUser.All", "offline_access"]);
        assert_eq!(c.exp, Some(1700000000));
        let r = claims(&unsigned(
            serde_json::json!({"roles": ["full_access_as_app"]}),
        ));
        assert_eq!(r.roles, vec!["full_access_as_app"]);
        assert!(!claims("EwAoA8l6BAAU-opaque-msa-token").is_jwt);
        assert!(!claims("a.b.c").is_jwt);
    }

    #[test]
    fn certificate_assertion_header_claims_and_signature() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ews-probe-test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pem = format!("{}{}", cert.pem(), key.serialize_pem());
        let cred = CertCredential::from_pem("test.pem", pem.as_bytes()).unwrap();
        let url = "https://login.example.test/contoso.onmicrosoft.com/oauth2/v2.0/token";
        let jwt = secrecy::ExposeSecret::expose_secret(
            &cred.assertion("app-1", url, 1_800_000_000).unwrap(),
        )
        .to_string();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        let der = cert.der();
        assert_eq!(
            header["x5t"],
            B64.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
        );
        assert_eq!(
            header["x5t#S256"],
            B64.encode(digest::digest(&digest::SHA256, der).as_ref())
        );
        let c: serde_json::Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(c["aud"], url);
        assert_eq!(c["iss"], "app-1");
        assert_eq!(c["sub"], "app-1");
        assert_eq!(c["nbf"], 1_800_000_000);
        assert_eq!(c["exp"], 1_800_000_600);
        assert!(uuid::Uuid::parse_str(c["jti"].as_str().unwrap()).is_ok());
        // The signature verifies with the certificate's public key.
        // rcgen's raw public key of an RSA pair is the PKCS#1 RSAPublicKey aws-lc-rs takes.
        let pk = signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            key.public_key_raw().to_vec(),
        );
        pk.verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &B64.decode(parts[2]).unwrap(),
        )
        .expect("signature verifies");
        // A tampered claim does not.
        assert!(
            pk.verify(
                format!("{}.{}x", parts[0], parts[1]).as_bytes(),
                &B64.decode(parts[2]).unwrap()
            )
            .is_err()
        );
        // Errors: no key, no certificate.
        assert!(matches!(
            CertCredential::from_pem("c", cert.pem().as_bytes()),
            Err(CertError::NoKey(_))
        ));
        assert!(matches!(
            CertCredential::from_pem("c", key.serialize_pem().as_bytes()),
            Err(CertError::NoCertificate(_))
        ));
    }
}
