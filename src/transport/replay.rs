//! The replay back end: serves a bundle's recorded exchanges, matched by the request's key
//! (operation and target, e.g. `ews.get_folder.drafts`), in recorded order for repeated keys
//! (a retried request). A request the bundle does not hold fails as `not_recorded`.

use super::bundle::Bundle;
use super::httpfile;
use super::{FailureKind, HttpResponse, TransportError};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

pub struct Replay {
    queues: Mutex<HashMap<String, VecDeque<Result<HttpResponse, TransportError>>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{origin}: {file}: {message}")]
pub struct ReplayError {
    pub origin: String,
    pub file: String,
    pub message: String,
}

/// `007-ews.get_folder.drafts.http` → `ews.get_folder.drafts`.
fn key_from_file_name(name: &str) -> &str {
    let stem = name.strip_suffix(".http").unwrap_or(name);
    match stem.split_once('-') {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => stem,
    }
}

impl Replay {
    pub fn new(bundle: &Bundle) -> Result<Self, ReplayError> {
        let mut queues: HashMap<String, VecDeque<_>> = HashMap::new();
        for (name, text) in &bundle.exchanges {
            let rec = httpfile::parse(text).map_err(|e| ReplayError {
                origin: bundle.origin.clone(),
                file: name.clone(),
                message: e.0,
            })?;
            let key = rec
                .key
                .unwrap_or_else(|| key_from_file_name(name).to_string());
            queues.entry(key).or_default().push_back(rec.outcome);
        }
        Ok(Replay {
            queues: Mutex::new(queues),
        })
    }

    pub fn next(&self, key: &str) -> Result<HttpResponse, TransportError> {
        let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        q.get_mut(key)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| {
                Err(TransportError {
                    kind: FailureKind::NotRecorded,
                    message: format!("the bundle holds no (further) exchange for {key}"),
                    elapsed: Duration::ZERO,
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_in_order_per_key() {
        let b = Bundle::from_embedded(
            "t",
            &[
                ("session.json", "{}"),
                ("001-a.http", "HTTP/1.1 500 Internal Server Error\n\n"),
                ("002-b.http", "HTTP/1.1 200 OK\n\n"),
                ("003-a.http", "# key: a\nHTTP/1.1 200 OK\n\n"),
            ],
        )
        .unwrap();
        let r = Replay::new(&b).unwrap();
        assert_eq!(r.next("a").unwrap().status, 500);
        assert_eq!(r.next("a").unwrap().status, 200);
        assert_eq!(r.next("b").unwrap().status, 200);
        assert_eq!(r.next("a").unwrap_err().kind, FailureKind::NotRecorded);
    }

    #[test]
    fn key_from_names() {
        assert_eq!(
            key_from_file_name("007-ews.get_folder.drafts.http"),
            "ews.get_folder.drafts"
        );
        assert_eq!(key_from_file_name("ews.x.http"), "ews.x");
    }
}
