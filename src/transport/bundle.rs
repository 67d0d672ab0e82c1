//! A recorded session on disk: `session.json` (what was probed, how) plus one `.http` file per
//! exchange, `NNN-<key>.http`, in the order they completed. `--record DIR` writes one, `replay
//! DIR` reads one, and the demo scenarios are bundles compiled into the binary.

use std::path::Path;

pub const META_FILE: &str = "session.json";

#[derive(Debug, Clone)]
pub struct Bundle {
    /// Where it came from, for messages.
    pub origin: String,
    /// The text of `session.json`.
    pub meta: String,
    /// `(file name, text)` of every `.http` file, sorted by name.
    pub exchanges: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read bundle {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0} is not a recorded bundle: {1} is missing")]
    NoMeta(String, &'static str),
}

/// Largest file accepted in a bundle (the transport's body cap plus headers).
const MAX_FILE: u64 = super::DEFAULT_BODY_CAP as u64 + 64 * 1024;

impl Bundle {
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let origin = dir.display().to_string();
        let io = |e| BundleError::Io(origin.clone(), e);
        let meta_path = dir.join(META_FILE);
        if !meta_path.is_file() {
            return Err(BundleError::NoMeta(origin, META_FILE));
        }
        let meta = std::fs::read_to_string(&meta_path).map_err(io)?;
        let mut exchanges = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".http") {
                continue;
            }
            if entry.metadata().map_err(io)?.len() > MAX_FILE {
                return Err(BundleError::Io(
                    origin.clone(),
                    std::io::Error::other(format!("{name} is larger than a probe response can be")),
                ));
            }
            exchanges.push((name, std::fs::read_to_string(entry.path()).map_err(io)?));
        }
        exchanges.sort();
        Ok(Bundle {
            origin,
            meta,
            exchanges,
        })
    }

    pub fn from_embedded(origin: &str, files: &[(&str, &str)]) -> Result<Self, BundleError> {
        let meta = files
            .iter()
            .find(|(n, _)| *n == META_FILE)
            .map(|(_, t)| t.to_string())
            .ok_or_else(|| BundleError::NoMeta(origin.to_string(), META_FILE))?;
        let mut exchanges: Vec<(String, String)> = files
            .iter()
            .filter(|(n, _)| n.ends_with(".http"))
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        exchanges.sort();
        Ok(Bundle {
            origin: origin.to_string(),
            meta,
            exchanges,
        })
    }
}
