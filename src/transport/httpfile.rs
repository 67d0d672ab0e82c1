//! The `.http` text form of one recorded exchange, used by `--record` bundles, the replay
//! transport and the fixtures under `fixtures/http/`:
//!
//! ```text
//! # free comment lines (what the fixture shows, where its shape comes from)
//! # key: ews.get_folder.msgfolderroot
//! # duration_ms: 41.2
//! HTTP/1.1 401 Unauthorized
//! WWW-Authenticate: Bearer authorization_uri="…"
//!
//! body…
//! ```
//!
//! A transport failure is recorded as `# error: <kind>: <message>` with no status line.

use super::{FailureKind, HttpResponse, TransportError};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RecordedExchange {
    pub key: Option<String>,
    pub outcome: Result<HttpResponse, TransportError>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpFileError(pub String);

/// Parses the text of a `.http` file.
pub fn parse(text: &str) -> Result<RecordedExchange, HttpFileError> {
    let mut key = None;
    let mut duration = Duration::ZERO;
    let mut error: Option<(FailureKind, String)> = None;
    let mut rest = text;
    loop {
        let (line, tail) = match rest.split_once('\n') {
            Some((l, t)) => (l, t),
            None => (rest, ""),
        };
        let line_t = line.trim_end_matches('\r');
        if let Some(comment) = line_t.strip_prefix('#') {
            let comment = comment.trim();
            if let Some(v) = comment.strip_prefix("key:") {
                key = Some(v.trim().to_string());
            } else if let Some(v) = comment.strip_prefix("duration_ms:") {
                let ms: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| HttpFileError(format!("bad duration_ms '{}'", v.trim())))?;
                duration = Duration::from_secs_f64(ms.max(0.0) / 1000.0);
            } else if let Some(v) = comment.strip_prefix("error:") {
                let (kind, msg) = v.trim().split_once(':').unwrap_or((v.trim(), ""));
                let kind = FailureKind::from_name(kind.trim())
                    .ok_or_else(|| HttpFileError(format!("unknown error kind '{kind}'")))?;
                error = Some((kind, msg.trim().to_string()));
            }
            rest = tail;
            if tail.is_empty() {
                break;
            }
            continue;
        }
        if line_t.trim().is_empty() && error.is_none() && !tail.is_empty() {
            rest = tail;
            continue;
        }
        break;
    }
    if let Some((kind, message)) = error {
        return Ok(RecordedExchange {
            key,
            outcome: Err(TransportError {
                kind,
                message,
                elapsed: duration,
            }),
        });
    }
    let (head, body) = match rest.find("\r\n\r\n") {
        Some(i) => (&rest[..i], &rest[i + 4..]),
        None => match rest.find("\n\n") {
            Some(i) => (&rest[..i], &rest[i + 2..]),
            None => (rest.trim_end(), ""),
        },
    };
    let mut lines = head.lines();
    let status_line = lines
        .next()
        .ok_or_else(|| HttpFileError("missing status line".into()))?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/") {
        return Err(HttpFileError(format!(
            "expected 'HTTP/1.1 <status>', found '{}'",
            crate::util::truncate_for_display(status_line, 60)
        )));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| HttpFileError(format!("bad status line '{status_line}'")))?;
    let reason = parts.next().unwrap_or("").trim().to_string();
    let mut headers = Vec::new();
    for l in lines {
        let (n, v) = l
            .split_once(':')
            .ok_or_else(|| HttpFileError(format!("bad header line '{l}'")))?;
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    Ok(RecordedExchange {
        key,
        outcome: Ok(HttpResponse {
            status,
            reason,
            headers,
            body: body.as_bytes().to_vec(),
            elapsed: duration,
        }),
    })
}

/// Writes one exchange; header values and the body must already be redacted.
pub fn render(
    key: &str,
    request_line: &str,
    outcome: &Result<HttpResponse, TransportError>,
) -> String {
    let mut s = String::new();
    s.push_str("# ews-probe recorded exchange (redacted)\n");
    s.push_str(&format!("# key: {key}\n# request: {request_line}\n"));
    match outcome {
        Ok(r) => {
            s.push_str(&format!(
                "# duration_ms: {}\n",
                crate::util::millis(r.elapsed)
            ));
            s.push_str(&format!("HTTP/1.1 {} {}\n", r.status, r.reason));
            for (n, v) in &r.headers {
                s.push_str(&format!("{n}: {v}\n"));
            }
            s.push('\n');
            s.push_str(&String::from_utf8_lossy(&r.body));
        }
        Err(e) => {
            s.push_str(&format!(
                "# duration_ms: {}\n",
                crate::util::millis(e.elapsed)
            ));
            s.push_str(&format!(
                "# error: {}: {}\n",
                e.kind.name(),
                e.message.replace('\n', " ")
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_response() {
        let resp = HttpResponse {
            status: 401,
            reason: "Unauthorized".into(),
            headers: vec![("WWW-Authenticate".into(), "Basic Realm=\"\"".into())],
            body: b"<html/>".to_vec(),
            elapsed: Duration::from_millis(12),
        };
        let text = render(
            "ews.get_folder.inbox",
            "POST https://x/EWS/Exchange.asmx",
            &Ok(resp),
        );
        let back = parse(&text).unwrap();
        assert_eq!(back.key.as_deref(), Some("ews.get_folder.inbox"));
        let r = back.outcome.unwrap();
        assert_eq!((r.status, r.reason.as_str()), (401, "Unauthorized"));
        assert_eq!(r.headers[0].1, "Basic Realm=\"\"");
        assert_eq!(r.body, b"<html/>");
        assert_eq!(r.elapsed, Duration::from_millis(12));
    }

    #[test]
    fn round_trips_a_failure() {
        let e = TransportError {
            kind: FailureKind::Dns,
            message: "no such host".into(),
            elapsed: Duration::from_millis(3),
        };
        let back = parse(&render("k", "POST u", &Err(e))).unwrap();
        let e = back.outcome.unwrap_err();
        assert_eq!(e.kind, FailureKind::Dns);
        assert_eq!(e.message, "no such host");
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("hello\n").is_err());
        assert!(parse("HTTP/1.1 abc OK\n\n").is_err());
        assert!(parse("# error: nonsense: x\n").is_err());
    }
}
