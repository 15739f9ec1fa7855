//! DataJoint- and Spyglass-aware inventory and cleanup of files on disk.
//!
//! The pieces, each usable alone:
//!
//! - [`dirs`]: Spyglass's directories, resolved the way Spyglass does.
//! - [`store`]: DataJoint stores from the config (`stores`), with Spyglass
//!   forcing `raw` and `analysis` to its directories.
//! - [`paths`]: which file an `~external` row stands for (filepath,
//!   attachment, blob; subfolding), exactly as datajoint-python builds it.
//! - [`inventory`]: the database side (every schema's `~external_<store>`
//!   tables, the columns referencing them, used and unused rows, folder-path
//!   columns, orphan `analysis_nwbfile` rows).
//! - [`walk`]: a parallel, metadata-only disk walk that never follows a symlink.
//! - [`classify`]: pure decisions, with table-driven tests.
//! - [`scan`]: both sides run concurrently, then classified into [`Class`]es.
//! - [`apply`] and [`quarantine`]: guards, re-check right before acting,
//!   quarantine with a manifest, restore and purge.
//!
//! What went wrong in the field shapes the rules: a test pointed at a
//! production directory (so apply refuses when the tracked set is empty, when
//! too large a fraction would go, and when a store's directory is ambiguous);
//! analyses write files before their rows (so a grace period, and a re-check
//! of each item right before it is acted on); deletes were irreversible (so
//! quarantine first, purge later); scans hashed files for hours (so nothing
//! here reads file contents). This is the one library that interprets the
//! DataJoint config's `stores` and `custom` sections, which it receives parsed.
//! It never prints.
//!
//! ```
//! use spyglass_cleanup::{dirs, paths, store};
//! let custom = serde_json::json!({"spyglass_dirs": {"base": "/data/spyglass"}});
//! let d = dirs::resolve(custom.as_object().unwrap(), |_| None).unwrap().unwrap();
//! let stores = store::stores(&serde_json::Map::new(), Some(&d)).unwrap();
//! assert_eq!(stores[0].location, std::path::Path::new("/data/spyglass/analysis"));
//! let hash = [0xab; 16];
//! assert_eq!(
//!     paths::row_path("lfp_v1", &hash, None, None, &stores[0].subfolding),
//!     "lfp_v1/ab/ab/abababababababababababababababab"
//! );
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod apply;
pub mod classify;
pub mod dirs;
mod error;
pub mod inventory;
pub mod paths;
pub mod quarantine;
pub mod scan;
pub mod store;
pub mod walk;

pub use classify::Class;
pub use error::{CleanupError, Guard};
