//! The tool's own settings file, `spyglass-admin.toml`: typed and read in
//! `spyglass_jobs::settings` (errors name the file, line and column; the
//! hint is chosen in `output::hint_for`).

pub use spyglass_jobs::settings::*;
