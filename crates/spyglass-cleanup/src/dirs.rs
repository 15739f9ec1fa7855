//! Spyglass's data directories, resolved like `spyglass.settings` does:
//! base from `custom.spyglass_dirs.base`, else `$SPYGLASS_BASE_DIR`; each other
//! directory from `custom.spyglass_dirs.<key>`, else `$SPYGLASS_<KEY>_DIR`,
//! else `<base>/<default>`.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

/// One of Spyglass's directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DirKey {
    /// The base every default is relative to.
    Base,
    /// Raw NWB files (store `raw`).
    Raw,
    /// Analysis NWB files (store `analysis`).
    Analysis,
    /// Spike-sorting recordings (folders named by `recording_path`).
    Recording,
    /// Spike sortings (folders named by `sorting_path`).
    Sorting,
    /// Waveform extractions.
    Waveforms,
    /// Temporary files.
    Temp,
    /// Video files.
    Video,
    /// Exports.
    Export,
}

impl DirKey {
    /// Every directory except the base, in Spyglass's order.
    pub const SUBDIRS: [DirKey; 8] = [
        DirKey::Raw,
        DirKey::Analysis,
        DirKey::Recording,
        DirKey::Sorting,
        DirKey::Waveforms,
        DirKey::Temp,
        DirKey::Video,
        DirKey::Export,
    ];

    /// The key in `custom.spyglass_dirs` and in `SPYGLASS_<KEY>_DIR`.
    pub fn key(self) -> &'static str {
        match self {
            DirKey::Base => "base",
            DirKey::Raw => "raw",
            DirKey::Analysis => "analysis",
            DirKey::Recording => "recording",
            DirKey::Sorting => "sorting",
            DirKey::Waveforms => "waveforms",
            DirKey::Temp => "temp",
            DirKey::Video => "video",
            DirKey::Export => "export",
        }
    }

    /// The folder name under base when nothing else is configured.
    pub fn default_name(self) -> &'static str {
        match self {
            DirKey::Base => "",
            DirKey::Raw => "raw",
            DirKey::Analysis => "analysis",
            DirKey::Recording => "recording",
            DirKey::Sorting => "spikesorting",
            DirKey::Waveforms => "waveforms",
            DirKey::Temp => "tmp",
            DirKey::Video => "video",
            DirKey::Export => "export",
        }
    }

    /// The environment variable Spyglass reads for it.
    pub fn env_var(self) -> String {
        match self {
            DirKey::Base => "SPYGLASS_BASE_DIR".to_owned(),
            k => format!("SPYGLASS_{}_DIR", k.key().to_ascii_uppercase()),
        }
    }
}

/// Where a directory setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DirSource {
    /// `custom.spyglass_dirs.<key>` in the DataJoint config.
    Config,
    /// `SPYGLASS_<KEY>_DIR`.
    Env,
    /// `<base>/<default>`.
    Default,
}

/// A resolved directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpyglassDir {
    /// Which one.
    pub key: DirKey,
    /// Its path.
    pub path: PathBuf,
    /// Where the setting came from.
    pub source: DirSource,
}

/// All of Spyglass's directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpyglassDirs {
    /// Base first, then [`DirKey::SUBDIRS`] in order.
    pub dirs: Vec<SpyglassDir>,
}

impl SpyglassDirs {
    /// The directory for `key`.
    pub fn get(&self, key: DirKey) -> Option<&SpyglassDir> {
        self.dirs.iter().find(|d| d.key == key)
    }
}

/// A directory setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirsError {
    /// `custom.spyglass_dirs` or one of its values has the wrong type.
    #[error("custom.spyglass_dirs{key}: {detail}")]
    Invalid {
        /// `.key` or empty for the object itself.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

/// Resolves the directories from the DataJoint config's `custom` object and
/// the environment (`env` looks a variable up). `Ok(None)` when no base
/// directory is configured anywhere, as Spyglass then refuses to start.
pub fn resolve(
    custom: &Map<String, Value>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<SpyglassDirs>, DirsError> {
    let empty = Map::new();
    let cfg = match custom.get("spyglass_dirs") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(DirsError::Invalid {
                key: String::new(),
                detail: "must be an object".into(),
            })
        }
    };
    let from_cfg = |key: DirKey| -> Result<Option<PathBuf>, DirsError> {
        match cfg.get(key.key()) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            // Spyglass strips stray double quotes from values.
            Some(Value::String(s)) => Ok(Some(PathBuf::from(s.replace('"', "")))),
            Some(_) => Err(DirsError::Invalid {
                key: format!(".{}", key.key()),
                detail: "must be a path string".into(),
            }),
        }
    };
    let from_env = |key: DirKey| {
        env(&key.env_var())
            .filter(|v| !v.trim().is_empty())
            .map(|v| PathBuf::from(v.replace('"', "")))
    };
    let (base, source) = match (from_cfg(DirKey::Base)?, from_env(DirKey::Base)) {
        (Some(p), _) => (p, DirSource::Config),
        (None, Some(p)) => (p, DirSource::Env),
        (None, None) => return Ok(None),
    };
    let mut dirs = vec![SpyglassDir {
        key: DirKey::Base,
        path: base.clone(),
        source,
    }];
    for key in DirKey::SUBDIRS {
        let (path, source) = match (from_cfg(key)?, from_env(key)) {
            (Some(p), _) => (p, DirSource::Config),
            (None, Some(p)) => (p, DirSource::Env),
            (None, None) => (base.join(key.default_name()), DirSource::Default),
        };
        dirs.push(SpyglassDir {
            key,
            path: absolutize(&base, path),
            source,
        });
    }
    Ok(Some(SpyglassDirs { dirs }))
}

fn absolutize(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn custom(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn config_beats_env_beats_default() {
        let c = custom(json!({"spyglass_dirs": {"base": "/cfg", "raw": "/cfg-raw"}}));
        let env = |k: &str| match k {
            "SPYGLASS_BASE_DIR" => Some("/env".to_owned()),
            "SPYGLASS_RAW_DIR" => Some("/env-raw".to_owned()),
            "SPYGLASS_ANALYSIS_DIR" => Some("/env-analysis".to_owned()),
            _ => None,
        };
        let d = resolve(&c, env).unwrap().unwrap();
        let get = |k| d.get(k).unwrap();
        assert_eq!(
            (get(DirKey::Base).path.as_path(), &get(DirKey::Base).source),
            (Path::new("/cfg"), &DirSource::Config)
        );
        assert_eq!(get(DirKey::Raw).path, Path::new("/cfg-raw"));
        assert_eq!(
            (
                get(DirKey::Analysis).path.as_path(),
                &get(DirKey::Analysis).source
            ),
            (Path::new("/env-analysis"), &DirSource::Env)
        );
        assert_eq!(
            (
                get(DirKey::Sorting).path.as_path(),
                &get(DirKey::Sorting).source
            ),
            (Path::new("/cfg/spikesorting"), &DirSource::Default)
        );
        assert_eq!(get(DirKey::Temp).path, Path::new("/cfg/tmp"));
        assert_eq!(d.dirs.len(), 9);
    }

    #[test]
    fn env_base_and_nothing() {
        let d = resolve(&Map::new(), |k| {
            (k == "SPYGLASS_BASE_DIR").then(|| "/b".to_owned())
        })
        .unwrap()
        .unwrap();
        assert_eq!(d.get(DirKey::Video).unwrap().path, Path::new("/b/video"));
        assert!(resolve(&Map::new(), |_| None).unwrap().is_none());
    }

    #[test]
    fn wrong_types_are_named() {
        let e = resolve(&custom(json!({"spyglass_dirs": {"base": 3}})), |_| None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "custom.spyglass_dirs.base: must be a path string"
        );
        assert!(resolve(&custom(json!({"spyglass_dirs": []})), |_| None).is_err());
    }
}
