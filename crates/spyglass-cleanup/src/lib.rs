//! DataJoint- and Spyglass-aware inventory and cleanup of files on disk.
//!
//! Today this crate resolves the Spyglass directories the way Spyglass does
//! ([`dirs`]); the inventory, scan, classification and quarantine follow in
//! the cleanup issue. This is the one library allowed to interpret the
//! DataJoint config (its `stores` and `custom` sections), which it receives
//! already parsed as a [`spyglass_db::dj_config::DjConfig`].
//!
//! ```
//! use spyglass_cleanup::dirs::{resolve, DirKey};
//! let custom = serde_json::json!({"spyglass_dirs": {"base": "/data/spyglass"}});
//! let dirs = resolve(custom.as_object().unwrap(), |_| None).unwrap().unwrap();
//! assert_eq!(dirs.get(DirKey::Sorting).unwrap().path, std::path::Path::new("/data/spyglass/spikesorting"));
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod dirs;
