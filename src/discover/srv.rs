//! The last Autodiscover method: the DNS SRV record `_autodiscover._tcp.<domain>` (Microsoft:
//! "only use records that point to an SSL endpoint and that have the highest priority and
//! weight", research/ews-protocol.md §4.1). The lookup is a trait so tests stub it and never
//! query real DNS; the live one is hickory-resolver with the system configuration.

use std::future::Future;
use std::pin::Pin;

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

pub type Lookup<'a> = Pin<Box<dyn Future<Output = Result<Vec<SrvRecord>, String>> + Send + 'a>>;

/// Looks up SRV records of a name.
pub trait SrvLookup: Send + Sync {
    fn lookup<'a>(&'a self, name: &'a str) -> Lookup<'a>;
}

/// The system's DNS (hickory-resolver, `/etc/resolv.conf` or the Windows registry).
pub struct SystemSrv;

impl SrvLookup for SystemSrv {
    fn lookup<'a>(&'a self, name: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let h = name.trim_end_matches('.').to_ascii_lowercase();
            if h.ends_with(".invalid") {
                return Err(format!("{name} is a reserved .invalid name (RFC 6761)"));
            }
            let resolver = hickory_resolver::TokioResolver::builder_tokio()
                .map_err(|e| format!("no DNS configuration: {e}"))?
                .build()
                .map_err(|e| format!("no DNS resolver: {e}"))?;
            let fqdn = format!("{h}.");
            let answer = resolver
                .srv_lookup(fqdn.as_str())
                .await
                .map_err(|e| crate::util::truncate_for_display(&e.to_string(), 200))?;
            Ok(answer
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::SRV(s) => Some(SrvRecord {
                        priority: s.priority,
                        weight: s.weight,
                        port: s.port,
                        target: s.target.to_ascii().trim_end_matches('.').to_string(),
                    }),
                    _ => None,
                })
                .collect())
        })
    }
}

/// The records to use: https (port 443) only, then the highest priority (lowest number), then
/// the highest weight among those.
pub fn best(records: &[SrvRecord]) -> Vec<SrvRecord> {
    let https: Vec<&SrvRecord> = records.iter().filter(|r| r.port == 443).collect();
    let Some(prio) = https.iter().map(|r| r.priority).min() else {
        return Vec::new();
    };
    let top: Vec<&&SrvRecord> = https.iter().filter(|r| r.priority == prio).collect();
    let w = top.iter().map(|r| r.weight).max().unwrap_or(0);
    top.into_iter()
        .filter(|r| r.weight == w)
        .map(|r| (*r).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    #[test]
    fn picks_https_highest_priority_then_weight() {
        let recs = [
            r(0, 10, 80, "plain.contoso.example"),
            r(5, 100, 443, "backup.contoso.example"),
            r(1, 10, 443, "light.contoso.example"),
            r(1, 50, 443, "heavy.contoso.example"),
        ];
        assert_eq!(best(&recs), vec![r(1, 50, 443, "heavy.contoso.example")]);
        assert!(best(&[r(0, 0, 80, "x")]).is_empty());
    }
}
