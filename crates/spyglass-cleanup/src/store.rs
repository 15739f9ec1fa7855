//! DataJoint stores as a lab's configuration defines them.
//!
//! A store is `stores.<name>` in the DataJoint config: `protocol` (`file` or
//! `s3`), `location`, optional `subfolding` (default `(2, 2)`). Spyglass
//! replaces `stores.raw` and `stores.analysis` with its raw and analysis
//! directories, so for those two the Spyglass directory wins; when the
//! DataJoint file names another location, plain DataJoint and Spyglass would
//! disagree about where the files are, and [`Store::conflict`] says so.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::dirs::{DirKey, SpyglassDirs};
use crate::CleanupError;

/// DataJoint's default `subfolding`.
pub const DEFAULT_SUBFOLDING: [usize; 2] = [2, 2];

/// Where a store's location came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreSource {
    /// `stores.<name>.location` in the DataJoint config.
    Config,
    /// Spyglass's raw or analysis directory (Spyglass forces these stores).
    Spyglass,
}

/// One store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Store {
    /// `raw`, `analysis`, ...
    pub name: String,
    /// `file`, `s3`, ...
    pub protocol: String,
    /// The directory files live in (for `file` stores).
    pub location: PathBuf,
    /// Folder prefixes of the hash for blobs and attachments.
    pub subfolding: Vec<usize>,
    /// Where `location` came from.
    pub source: StoreSource,
    /// The DataJoint file's `location` when it differs from the Spyglass
    /// directory that wins; cleanup refuses to act on such a store.
    pub conflict: Option<PathBuf>,
}

impl Store {
    /// True for stores on a local or mounted file system.
    pub fn is_file(&self) -> bool {
        self.protocol == "file"
    }
}

/// Builds the stores from the DataJoint config's `stores` object and the
/// Spyglass directories (if configured).
pub fn stores(
    config: &Map<String, Value>,
    dirs: Option<&SpyglassDirs>,
) -> Result<Vec<Store>, CleanupError> {
    let mut out = Vec::new();
    for (name, spec) in config {
        let Value::Object(spec) = spec else {
            return Err(CleanupError::Config(format!(
                "stores.{name} must be an object"
            )));
        };
        let protocol = match spec.get("protocol") {
            Some(Value::String(p)) => p.to_ascii_lowercase(),
            None => "file".to_owned(),
            Some(_) => {
                return Err(CleanupError::Config(format!(
                    "stores.{name}.protocol must be a string"
                )))
            }
        };
        let location = match spec.get("location") {
            Some(Value::String(l)) => PathBuf::from(l),
            None if protocol != "file" => PathBuf::new(),
            _ => {
                return Err(CleanupError::Config(format!(
                    "stores.{name}.location must be a path string"
                )))
            }
        };
        let subfolding = match spec.get("subfolding") {
            None => DEFAULT_SUBFOLDING.to_vec(),
            Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .filter(|n| (1..=32).contains(n))
                        .map(|n| n as usize)
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    CleanupError::Config(format!(
                        "stores.{name}.subfolding must be a list of small positive numbers"
                    ))
                })?,
            Some(_) => {
                return Err(CleanupError::Config(format!(
                    "stores.{name}.subfolding must be a list"
                )))
            }
        };
        out.push(Store {
            name: name.clone(),
            protocol,
            location,
            subfolding,
            source: StoreSource::Config,
            conflict: None,
        });
    }
    if let Some(dirs) = dirs {
        for (name, key) in [("raw", DirKey::Raw), ("analysis", DirKey::Analysis)] {
            let Some(dir) = dirs.get(key) else { continue };
            match out.iter_mut().find(|s| s.name == name) {
                Some(s) => {
                    let same = s.protocol == "file" && same_dir(&s.location, &dir.path);
                    if !same {
                        s.conflict = Some(s.location.clone());
                    }
                    s.protocol = "file".into();
                    s.location = dir.path.clone();
                    s.source = StoreSource::Spyglass;
                }
                None => out.push(Store {
                    name: name.to_owned(),
                    protocol: "file".into(),
                    location: dir.path.clone(),
                    subfolding: DEFAULT_SUBFOLDING.to_vec(),
                    source: StoreSource::Spyglass,
                    conflict: None,
                }),
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Same directory: equal after resolving symlinks when both exist, else equal as written.
pub fn same_dir(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => {
            crate::paths::normalize(&a.to_string_lossy())
                == crate::paths::normalize(&b.to_string_lossy())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dirs(base: &str) -> SpyglassDirs {
        let c = json!({"spyglass_dirs": {"base": base}});
        crate::dirs::resolve(c.as_object().unwrap(), |_| None)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn spyglass_forces_raw_and_analysis() {
        let cfg = json!({
            "raw": {"protocol": "file", "location": "/lab/raw"},
            "analysis": {"protocol": "file", "location": "/elsewhere/analysis", "subfolding": [3]},
            "video": {"protocol": "file", "location": "/lab/video", "subfolding": null},
            "cloud": {"protocol": "s3", "endpoint": "x", "bucket": "b", "location": "p"},
        });
        let d = dirs("/lab");
        let s = stores(cfg.as_object().unwrap(), Some(&d)).unwrap();
        let get = |n: &str| s.iter().find(|x| x.name == n).unwrap();
        assert_eq!(get("raw").location, PathBuf::from("/lab/raw"));
        assert_eq!(get("raw").conflict, None);
        assert_eq!(get("analysis").location, PathBuf::from("/lab/analysis"));
        assert_eq!(
            get("analysis").conflict,
            Some(PathBuf::from("/elsewhere/analysis"))
        );
        assert_eq!(get("analysis").subfolding, vec![3]);
        assert_eq!(get("video").subfolding, Vec::<usize>::new());
        assert_eq!(get("video").source, StoreSource::Config);
        assert!(!get("cloud").is_file());
    }

    #[test]
    fn spyglass_adds_missing_stores_and_bad_values_are_named() {
        let s = stores(&Map::new(), Some(&dirs("/b"))).unwrap();
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["analysis", "raw"]
        );
        assert_eq!(s[0].subfolding, vec![2, 2]);
        let e = stores(json!({"x": {"location": 3}}).as_object().unwrap(), None).unwrap_err();
        assert_eq!(e.to_string(), "stores.x.location must be a path string");
        let e = stores(
            json!({"x": {"location": "/x", "subfolding": [0]}})
                .as_object()
                .unwrap(),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("stores.x.subfolding"));
    }
}
