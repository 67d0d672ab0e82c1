//! Name resolution for the HTTP client: curl-style `--resolve HOST:PORT:ADDR` pins first, then
//! the system resolver. Names under the special-use `.invalid` TLD (RFC 6761 §6.4) fail at
//! once without a query, as resolvers should treat them; the tests rely on that to produce a
//! DNS failure without touching the network.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Resolver {
    pins: Arc<HashMap<String, Vec<SocketAddr>>>,
}

/// One `--resolve HOST:PORT:ADDR` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub host: String,
    pub port: u16,
    pub addr: std::net::IpAddr,
}

impl std::str::FromStr for Pin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not HOST:PORT:ADDR (e.g. mail.contoso.com:443:127.0.0.1)");
        let (host, rest) = s.split_once(':').ok_or_else(bad)?;
        let (port, addr) = rest.split_once(':').ok_or_else(bad)?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        Ok(Pin {
            host: host.to_ascii_lowercase(),
            port: port.parse().map_err(|_| bad())?,
            addr: addr.parse().map_err(|_| bad())?,
        })
    }
}

/// One `--connect-to HOST:PORT:ADDR:PORT2` entry (curl's option): requests for HOST:PORT go
/// to ADDR:PORT2, while the URL, the Host header and the TLS server name stay HOST. Support
/// engineers use it to test one server behind a name; the tests use it to serve
/// `https://contoso.example` (port 443) from a loopback port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    pub host: String,
    pub port: u16,
    pub addr: std::net::IpAddr,
    pub to_port: u16,
}

impl std::str::FromStr for ConnectTo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "'{s}' is not HOST:PORT:ADDR:PORT2 (e.g. autodiscover.contoso.com:443:10.0.0.5:8443)"
            )
        };
        let (host, rest) = s.split_once(':').ok_or_else(bad)?;
        let (port, rest) = rest.split_once(':').ok_or_else(bad)?;
        let (addr, to_port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad());
        }
        Ok(ConnectTo {
            host: host.to_ascii_lowercase(),
            port: port.parse().map_err(|_| bad())?,
            addr: addr.parse().map_err(|_| bad())?,
            to_port: to_port.parse().map_err(|_| bad())?,
        })
    }
}

impl Resolver {
    pub fn new(pins: &[Pin]) -> Self {
        let mut map: HashMap<String, Vec<SocketAddr>> = HashMap::new();
        for p in pins {
            map.entry(p.host.clone())
                .or_default()
                .push(SocketAddr::new(p.addr, p.port));
        }
        Resolver {
            pins: Arc::new(map),
        }
    }

    /// The pinned addresses of a host, if any.
    pub fn pinned(&self, host: &str) -> Option<&[SocketAddr]> {
        self.pins.get(&host.to_ascii_lowercase()).map(Vec::as_slice)
    }
}

fn is_special_invalid(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "invalid" || h.ends_with(".invalid")
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let pinned = self.pinned(&host).map(<[SocketAddr]>::to_vec);
        Box::pin(async move {
            if let Some(addrs) = pinned {
                let it: Addrs = Box::new(addrs.into_iter());
                return Ok(it);
            }
            if is_special_invalid(&host) {
                return Err(format!(
                    "dns error: {host} is a reserved .invalid name (RFC 6761), it never resolves"
                )
                .into());
            }
            match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(it) => {
                    let v: Vec<SocketAddr> = it.collect();
                    if v.is_empty() {
                        Err(format!("dns error: {host} has no addresses").into())
                    } else {
                        let it: Addrs = Box::new(v.into_iter());
                        Ok(it)
                    }
                }
                Err(e) => Err(format!("dns error: {host}: {e}").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pins() {
        let p: Pin = "Mail.Contoso.example:8443:127.0.0.1".parse().unwrap();
        assert_eq!(p.host, "mail.contoso.example");
        assert_eq!(p.port, 8443);
        let p6: Pin = "h:443:[::1]".parse().unwrap();
        assert!(p6.addr.is_loopback());
        assert!("nohost".parse::<Pin>().is_err());
        assert!("h:99999:127.0.0.1".parse::<Pin>().is_err());
        assert!("h:443:not-an-ip".parse::<Pin>().is_err());
    }

    #[test]
    fn parses_connect_to() {
        let c: ConnectTo = "Contoso.example:443:127.0.0.1:8443".parse().unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.to_port),
            ("contoso.example", 443, 8443)
        );
        assert!(
            "h:443:[::1]:1"
                .parse::<ConnectTo>()
                .unwrap()
                .addr
                .is_loopback()
        );
        assert!("h:443:127.0.0.1".parse::<ConnectTo>().is_err());
        assert!(":443:127.0.0.1:1".parse::<ConnectTo>().is_err());
    }

    #[test]
    fn invalid_tld_is_special() {
        assert!(is_special_invalid("ews.contoso.invalid"));
        assert!(is_special_invalid("INVALID."));
        assert!(!is_special_invalid("invalid.contoso.com"));
    }
}
