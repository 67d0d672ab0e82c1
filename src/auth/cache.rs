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
//!
//! The device code flow's refresh token (it asks for `offline_access`) is kept in the same
//! entry as its access token, so it lives in the same store (keyring entry or the 0600 file)
//! and `logout` removes it with the token. It outlives the access token: the probe redeems it
//! when the access token has expired, instead of a new sign-in. Microsoft's refresh tokens
//! last 90 days by default and are replaced on every use (entra-docs `refresh-tokens.md`), so
//! an entry with a refresh token is kept for 90 days after its access token's expiry. Client
//! credentials never get one (research/security.md §2.4).

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
/// How long an entry with a refresh token is kept past its access token's expiry: Microsoft's
/// default refresh token lifetime (entra-docs `refresh-tokens.md`: "90 days for all other
/// scenarios"). The identity platform may end it sooner; the probe then signs in again.
pub const REFRESH_KEEP_SECS: i64 = 86_400 * 90;

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    access_token: String,
    expires_at: i64,
    /// The device code flow's refresh token (absent in entries of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// What the cache holds for one key.
#[derive(Default)]
pub struct Cached {
    /// The access token, if it lives at least [`MARGIN_SECS`] past `now`.
    pub access: Option<SecretString>,
    /// The refresh token, whatever the access token's age.
    pub refresh: Option<SecretString>,
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
        let path = self.dir.join(name);
        #[cfg(unix)]
        {
            // A token file others can read is not trusted, nor used (research/security.md
            // §3.5): its tokens may have been copied. The next write replaces it with a 0600 one.
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(&path)
                && m.permissions().mode() & 0o077 != 0
                && name == TOKENS
            {
                tracing::warn!(
                    "{} is readable by other users: its tokens are not used",
                    path.display()
                );
                return T::default();
            }
        }
        std::fs::read(path)
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

    fn entry(&self, key: &str) -> Option<Entry> {
        if self.keyring
            && let Some(e) = keyring_core::Entry::new(SERVICE, key)
                .and_then(|e| e.get_password())
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
        {
            return Some(e);
        }
        // The file also holds what the keyring refused to store (see `put`).
        let map: BTreeMap<String, Entry> = self.read_map(TOKENS);
        map.get(key).cloned()
    }

    /// A cached token that lives at least [`MARGIN_SECS`] past `now`.
    pub fn get(&self, key: &str, now: i64) -> Option<SecretString> {
        self.lookup(key, now).access
    }

    /// The access token (if still usable at `now`) and the refresh token of one key.
    pub fn lookup(&self, key: &str, now: i64) -> Cached {
        let Some(e) = self.entry(key) else {
            return Cached::default();
        };
        Cached {
            access: (e.expires_at - MARGIN_SECS > now).then(|| SecretString::from(e.access_token)),
            refresh: e.refresh_token.map(SecretString::from),
        }
    }

    /// Keeps a token until `expires_at` (Unix seconds). Failures are reported, not fatal.
    pub fn put(&self, key: &str, token: &SecretString, expires_at: i64) -> Result<(), String> {
        self.put_with_refresh(key, token, expires_at, None)
    }

    /// Keeps an access token and the refresh token that goes with it (replacing the entry:
    /// `None` stores no refresh token).
    pub fn put_with_refresh(
        &self,
        key: &str,
        token: &SecretString,
        expires_at: i64,
        refresh: Option<&SecretString>,
    ) -> Result<(), String> {
        let entry = Entry {
            access_token: token.expose_secret().to_string(),
            expires_at,
            refresh_token: refresh.map(|r| r.expose_secret().to_string()),
        };
        let json = serde_json::to_string(&entry).map_err(|e| e.to_string())?;
        if self.keyring {
            let entry = keyring_core::Entry::new(SERVICE, key);
            let stored = entry.as_ref().is_ok_and(|e| e.set_password(&json).is_ok());
            if !stored && let Ok(e) = &entry {
                // Too large for this store (Windows caps a credential at 2560 bytes): the file
                // below holds it, and no older keyring entry may shadow it.
                let _ = e.delete_credential();
            }
            if stored {
                let mut index: Vec<String> = self.read_map(INDEX);
                if !index.iter().any(|k| k == key) {
                    index.push(key.to_string());
                }
                let text = serde_json::to_vec(&index).map_err(|e| e.to_string())?;
                return self.write_private(INDEX, &text).map_err(|e| e.to_string());
            }
        }
        let mut map: BTreeMap<String, Entry> = self.read_map(TOKENS);
        map.retain(|_, e| {
            let keep = if e.refresh_token.is_some() {
                REFRESH_KEEP_SECS
            } else {
                86_400 * 2
            };
            e.expires_at > expires_at - keep
        });
        map.insert(key.to_string(), entry);
        self.write_map(&map)
    }

    fn write_map(&self, map: &BTreeMap<String, Entry>) -> Result<(), String> {
        let text = serde_json::to_vec(map).map_err(|e| e.to_string())?;
        self.write_private(TOKENS, &text)
            .map_err(|e| format!("{}: {e}", self.file().display()))
    }

    /// Forgets one key's entry, refresh token included (the identity platform refused the
    /// refresh token: keeping it would only fail again). Failures are reported, not fatal.
    pub fn remove(&self, key: &str) -> Result<(), String> {
        if self.keyring
            && let Ok(e) = keyring_core::Entry::new(SERVICE, key)
        {
            match e.delete_credential() {
                Ok(()) | Err(keyring_core::Error::NoEntry) => {}
                Err(err) => return Err(err.to_string()),
            }
        }
        let mut map: BTreeMap<String, Entry> = self.read_map(TOKENS);
        if map.remove(key).is_some() {
            self.write_map(&map)?;
        }
        Ok(())
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

    /// keyring-core's in-memory mock store stands in for the OS keyring (none here); set once,
    /// so tests running in parallel (with different keys) share it.
    fn mock_keyring() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            keyring_core::set_default_store(keyring_core::mock::Store::new().unwrap())
        });
    }

    #[test]
    fn keyring_cache_keeps_the_token_out_of_files_and_logout_clears_it() {
        mock_keyring();
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
    fn refresh_token_outlives_its_access_token_and_is_removed_with_the_entry() {
        let d = tempfile::tempdir().unwrap();
        let c = TokenCache::in_dir(d.path());
        let k = TokenCache::key("https://l.test", "t", "app", "device_code", "s");
        let other = TokenCache::key("https://l.test", "t", "app", "client_credentials", "s");
        c.put_with_refresh(
            &k,
            &SecretString::from("at-1"),
            5000,
            Some(&SecretString::from("rt-1")),
        )
        .unwrap();
        c.put(&other, &SecretString::from("app-at"), 5000).unwrap();
        // Within the margin: no access token, but the refresh token is there.
        let got = c.lookup(&k, 5000 - MARGIN_SECS);
        assert!(got.access.is_none());
        assert_eq!(got.refresh.unwrap().expose_secret(), "rt-1");
        assert_eq!(c.lookup(&k, 1000).access.unwrap().expose_secret(), "at-1");
        // Client credentials entries carry none.
        assert!(c.lookup(&other, 1000).refresh.is_none());
        // A later write (a month on) keeps the entry with a refresh token, drops the other.
        let later = TokenCache::key("https://l.test", "t2", "app", "device_code", "s");
        c.put(&later, &SecretString::from("at-2"), 5000 + 86_400 * 30)
            .unwrap();
        assert!(c.lookup(&k, 0).refresh.is_some());
        assert!(c.lookup(&other, 0).access.is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(c.file()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Replacing the entry without a refresh token stores none; remove forgets the key.
        c.put(&k, &SecretString::from("at-3"), 6000).unwrap();
        assert!(c.lookup(&k, 0).refresh.is_none());
        c.put_with_refresh(
            &k,
            &SecretString::from("at-4"),
            6000,
            Some(&SecretString::from("rt-4")),
        )
        .unwrap();
        c.remove(&k).unwrap();
        let left = c.lookup(&k, 0);
        assert!(left.access.is_none() && left.refresh.is_none());
        assert!(!std::fs::read_to_string(c.file()).unwrap().contains("rt-"));
        assert!(c.lookup(&later, 0).access.is_some());
        // An entry written by an older version (no refresh_token member) still reads.
        std::fs::write(
            c.file(),
            format!(r#"{{"{k}":{{"access_token":"old","expires_at":9000}}}}"#),
        )
        .unwrap();
        let old = c.lookup(&k, 0);
        assert_eq!(old.access.unwrap().expose_secret(), "old");
        assert!(old.refresh.is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_token_file_others_can_read_is_not_used_and_is_replaced() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let c = TokenCache::in_dir(d.path());
        let k = TokenCache::key("https://l.test", "t", "app", "device_code", "s");
        c.put_with_refresh(
            &k,
            &SecretString::from("at"),
            5000,
            Some(&SecretString::from("rt")),
        )
        .unwrap();
        assert!(c.lookup(&k, 0).refresh.is_some());
        std::fs::set_permissions(c.file(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let got = c.lookup(&k, 0);
        assert!(got.access.is_none() && got.refresh.is_none());
        // The next write starts afresh with a private file.
        c.put(&k, &SecretString::from("at-2"), 5000).unwrap();
        let mode = std::fs::metadata(c.file()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(c.lookup(&k, 0).access.unwrap().expose_secret(), "at-2");
    }

    #[test]
    fn keyring_entry_holds_the_refresh_token_and_remove_deletes_it() {
        mock_keyring();
        let d = tempfile::tempdir().unwrap();
        let c = TokenCache {
            dir: d.path().join("kc"),
            keyring: true,
        };
        let k = TokenCache::key("https://l.test", "t", "app", "device_code", "s");
        c.put_with_refresh(
            &k,
            &SecretString::from("at-k"),
            5000,
            Some(&SecretString::from("rt-keyring-9")),
        )
        .unwrap();
        assert!(!c.file().exists(), "no token file next to the keyring");
        assert_eq!(
            c.lookup(&k, 4999).refresh.unwrap().expose_secret(),
            "rt-keyring-9"
        );
        c.remove(&k).unwrap();
        assert!(c.lookup(&k, 0).refresh.is_none());
        // Removing what is not there is not an error.
        c.remove(&k).unwrap();
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
