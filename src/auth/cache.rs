//! The OAuth token cache (research/security.md OA-6): an access token is kept until shortly
//! before it expires, so repeated probes of a mailbox (and batch runs) do not fetch a token
//! each time (AADSTS50196 "loop detected" otherwise).
//!
//! Where: the OS keyring where one is available (keyring: Keychain, Windows Credential
//! Manager, the Secret Service), else one file in the user's cache directory, created with
//! mode 0600 at open time in a 0700 directory. An index file (no secrets) lists the keys, so
//! `ews-probe logout` can clear the keyring entries and the file.
//!
//! `EWS_PROBE_CACHE_DIR` moves the cache to that directory and turns the keyring off (tests,
//! and people who want the file only). A cache entry is keyed by a SHA-256 of the identity
//! platform root, tenant, client id, flow and scope; nothing else of the run goes in.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const ENV_DIR: &str = "EWS_PROBE_CACHE_DIR";
const SERVICE: &str = "ews-probe";
const TOKENS: &str = "tokens.json";
const INDEX: &str = "keyring-index.json";
/// A token is used only while it has at least this long to live.
pub const MARGIN_SECS: i64 = 300;

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    access_token: String,
    expires_at: i64,
}

/// Where tokens are kept.
pub struct TokenCache {
    dir: PathBuf,
    keyring: bool,
}

impl TokenCache {
    /// The user's cache (or `EWS_PROBE_CACHE_DIR`); `None` when no directory is known.
    pub fn user() -> Option<Self> {
        if let Some(d) = std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()) {
            return Some(TokenCache {
                dir: PathBuf::from(d),
                keyring: false,
            });
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| {
                    let h = PathBuf::from(h);
                    if cfg!(target_os = "macos") {
                        h.join("Library").join("Caches")
                    } else {
                        h.join(".cache")
                    }
                })
            })
            .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))?;
        Some(TokenCache {
            dir: base.join("ews-probe"),
            // Initializes the platform's store (Keychain, Credential Manager, Secret Service)
            // as keyring-core's default, which the entries below then use.
            keyring: keyring::Entry::store_status().is_ok(),
        })
    }

    /// A file-only cache in `dir` (tests).
    pub fn in_dir(dir: &Path) -> Self {
        TokenCache {
            dir: dir.to_path_buf(),
            keyring: false,
        }
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(TOKENS)
    }

    /// The cache key of one token request.
    pub fn key(authority: &str, tenant: &str, client_id: &str, flow: &str, scope: &str) -> String {
        let d = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            format!("{authority}\n{tenant}\n{client_id}\n{flow}\n{scope}").as_bytes(),
        );
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn read_map<T: for<'de> Deserialize<'de> + Default>(&self, name: &str) -> T {
        std::fs::read(self.dir.join(name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes a file with mode 0600 from the moment it exists (a temporary, then renamed).
    fn write_private(&self, name: &str, content: &[u8]) -> std::io::Result<()> {
        create_private_dir(&self.dir)?;
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(name))
    }

    /// A cached token that lives at least [`MARGIN_SECS`] past `now`.
    pub fn get(&self, key: &str, now: i64) -> Option<SecretString> {
        let entry: Option<Entry> = if self.keyring {
            keyring_core::Entry::new(SERVICE, key)
                .and_then(|e| e.get_password())
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
        } else {
            let map: BTreeMap<String, Entry> = self.read_map(TOKENS);
            map.get(key).cloned()
        };
        entry
            .filter(|e| e.expires_at - MARGIN_SECS > now)
            .map(|e| SecretString::from(e.access_token))
    }

    /// Keeps a token until `expires_at` (Unix seconds). Failures are reported, not fatal.
    pub fn put(&self, key: &str, token: &SecretString, expires_at: i64) -> Result<(), String> {
        let entry = Entry {
            access_token: token.expose_secret().to_string(),
            expires_at,
        };
        let json = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
        if self.keyring {
            let stored = keyring_core::Entry::new(SERVICE, key).and_then(|e| e.set_password(&json));
            if stored.is_ok() {
                let mut index: Vec<String> = self.read_map(INDEX);
                if !index.iter().any(|k| k == key) {
                    index.push(key.to_string());
                }
                let text = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
                return self.write_private(INDEX, &text).map_err(|e| e.to_string());
            }
        }
        let mut map: BTreeMap<String, Entry> = self.read_map(TOKENS);
        map.retain(|_, e| e.expires_at > expires_at - 86_400 * 2);
        map.insert(key.to_string(), entry);
        let text = serde_json::to_vec(&map).map_err(|e| e.to_string())?;
        self.write_private(TOKENS, &text)
            .map_err(|e| format!("{}: {e}", self.file().display()))
    }

    /// `ews-probe logout`: removes every cached token; returns how many were removed.
    pub fn clear(&self) -> Result<usize, String> {
        let mut n = 0;
        let index: Vec<String> = self.read_map(INDEX);
        for key in &index {
            if let Ok(e) = keyring_core::Entry::new(SERVICE, key)
                && e.delete_credential().is_ok()
            {
                n += 1;
            }
        }
        let map: BTreeMap<String, serde_json::Value> = self.read_map(TOKENS);
        n += map.len();
        for name in [TOKENS, INDEX] {
            match std::fs::remove_file(self.dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("{}: {e}", self.dir.join(name).display())),
            }
        }
        Ok(n)
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_cache_keeps_the_token_out_of_files_and_logout_clears_it() {
        // keyring-core's in-memory mock store stands in for the OS keyring (none here).
        keyring_core::set_default_store(keyring_core::mock::Store::new().unwrap());
        let d = tempfile::tempdir().unwrap();
        let c = TokenCache {
            dir: d.path().join("kc"),
            keyring: true,
        };
        let k = TokenCache::key(
            "https://login.example.test",
            "contoso",
            "app",
            "device_code",
            "s",
        );
        assert!(c.get(&k, 1000).is_none());
        c.put(&k, &SecretString::from("tok-keyring-77"), 5000)
            .unwrap();
        assert_eq!(c.get(&k, 1000).unwrap().expose_secret(), "tok-keyring-77");
        // The token is in the keyring, not on disk: only the index of keys is written.
        assert!(!c.file().exists());
        let index = std::fs::read_to_string(d.path().join("kc").join(INDEX)).unwrap();
        assert!(index.contains(&k) && !index.contains("tok-keyring-77"));
        assert_eq!(c.clear().unwrap(), 1);
        assert!(c.get(&k, 1000).is_none());
        assert!(!d.path().join("kc").join(INDEX).exists());
    }

    #[test]
    fn file_cache_round_trip_expiry_mode_and_clear() {
        let d = tempfile::tempdir().unwrap();
        let c = TokenCache::in_dir(&d.path().join("sub"));
        let k = TokenCache::key(
            "https://login.example.test",
            "contoso",
            "app",
            "client_credentials",
            "s",
        );
        assert_eq!(k.len(), 64);
        assert_ne!(
            k,
            TokenCache::key(
                "https://login.example.test",
                "contoso",
                "app2",
                "client_credentials",
                "s"
            )
        );
        assert!(c.get(&k, 1000).is_none());
        c.put(&k, &SecretString::from("tok-1"), 5000).unwrap();
        assert_eq!(c.get(&k, 1000).unwrap().expose_secret(), "tok-1");
        // Not within the margin of its expiry.
        assert!(c.get(&k, 5000 - MARGIN_SECS).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(c.file()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let dmode = std::fs::metadata(d.path().join("sub"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(dmode, 0o700);
        }
        assert_eq!(c.clear().unwrap(), 1);
        assert!(!c.file().exists());
        assert!(c.get(&k, 1000).is_none());
        assert_eq!(c.clear().unwrap(), 0);
    }
}
