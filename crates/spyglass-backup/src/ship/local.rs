//! A directory on this machine (a mounted NAS, a USB disk): the simplest
//! [`Remote`]. Files are copied to a temporary name, synced and renamed; a
//! staged copy is the directory `<base>/<name>.partial`, committed by a
//! rename and a sync of the base directory.

use std::collections::BTreeMap;
use std::path::Path;

use camino::Utf8Path;

use super::{io_err, refuse_unless_set_name, Method, Remote, ShipError};
use crate::compress::file_sha256;

/// The directory `base` as a ship target.
#[derive(Debug)]
pub struct Local<'a> {
    base: &'a Utf8Path,
}

impl<'a> Local<'a> {
    pub(super) fn new(base: &'a Utf8Path) -> Self {
        Local { base }
    }
}

impl Remote for Local<'_> {
    fn host(&self) -> String {
        "local".into()
    }

    fn location(&self, name: &str) -> String {
        self.base.join(name).into_string()
    }

    fn probe(&mut self, create: bool) -> Result<Vec<String>, ShipError> {
        let base = self.base.as_std_path();
        if create {
            std::fs::create_dir_all(base).map_err(io_err("creating", base))?;
        }
        let mut dirs = Vec::new();
        for e in std::fs::read_dir(base)
            .map_err(io_err("reading", base))?
            .flatten()
        {
            // A name that is not UTF-8 is no set's name (sets are named by
            // this tool): it is not listed, so nothing ever removes it.
            if let Ok(name) = e.file_name().into_string() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(name);
                }
            }
        }
        Ok(dirs)
    }

    fn method(&self) -> Result<Method, ShipError> {
        Ok(Method {
            transport: "copy",
            verified_by: "local",
            sends_whole_set: false,
        })
    }

    fn hashes(&self, dir: &str) -> Result<BTreeMap<String, String>, ShipError> {
        let root = self.base.join(dir);
        let mut files = Vec::new();
        crate::set::walk(root.as_std_path(), root.as_std_path(), &mut files)?;
        let mut map = BTreeMap::new();
        for rel in files {
            let p = root.join(&rel);
            let (_, sum) =
                file_sha256(p.as_std_path()).map_err(io_err("reading", p.as_std_path()))?;
            map.insert(rel, sum);
        }
        Ok(map)
    }

    fn send(&self, set: &Path, staging: &str, files: &[String]) -> Result<(), ShipError> {
        let root = self.base.join(staging);
        for rel in files {
            let (src, dst) = (set.join(rel), root.join(rel).into_std_path_buf());
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(io_err("creating", p))?;
            }
            let tmp = dst.with_extension("part");
            {
                let mut r = std::fs::File::open(&src).map_err(io_err("reading", &src))?;
                let mut w = std::fs::File::create(&tmp).map_err(io_err("writing", &dst))?;
                std::io::copy(&mut r, &mut w).map_err(io_err("writing", &dst))?;
                w.sync_all().map_err(io_err("writing", &dst))?;
            }
            std::fs::rename(&tmp, &dst).map_err(io_err("writing", &dst))?;
        }
        Ok(())
    }

    fn remove_files(&self, staging: &str, files: &[String]) -> Result<(), ShipError> {
        for f in files {
            let p = self.base.join(staging).join(f).into_std_path_buf();
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err("removing", p)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn commit(&self, staging: &str, name: &str) -> Result<(), ShipError> {
        self.rename(staging, name)
    }

    fn reopen(&self, name: &str, staging: &str) -> Result<(), ShipError> {
        self.rename(name, staging)
    }

    fn remove_set(&self, name: &str) -> Result<(), ShipError> {
        refuse_unless_set_name(&self.host(), name)?;
        let p = self.base.join(name).into_std_path_buf();
        std::fs::remove_dir_all(&p).map_err(io_err("removing", p))
    }

    fn sizes(&self, name: &str) -> Result<BTreeMap<String, u64>, ShipError> {
        let root = self.base.join(name);
        let mut files = Vec::new();
        crate::set::walk(root.as_std_path(), root.as_std_path(), &mut files)?;
        let mut map = BTreeMap::new();
        for rel in files {
            let p = root.join(&rel).into_std_path_buf();
            let md = std::fs::metadata(&p).map_err(io_err("reading", &p))?;
            map.insert(rel, md.len());
        }
        Ok(map)
    }

    fn health(&mut self) -> Result<super::Health, ShipError> {
        let st = crate::destination::probe(self.base.as_std_path());
        let sets = if st.exists {
            self.probe(false)?
        } else {
            Vec::new()
        };
        // Missing: shipping creates it, when its nearest existing parent is writable.
        let writable = if st.exists {
            st.writable
        } else {
            self.base
                .as_std_path()
                .ancestors()
                .find(|p| p.is_dir())
                .is_some_and(|p| crate::destination::probe(p).writable)
        };
        Ok(super::Health {
            sets,
            exists: st.exists,
            writable: Some(writable),
            free_bytes: st.free_bytes,
            missing: Vec::new(),
        })
    }

    fn fetch(&self, name: &str, files: &[String], dest: &Path) -> Result<(), ShipError> {
        let root = self.base.join(name);
        for rel in files {
            let (src, dst) = (root.join(rel).into_std_path_buf(), dest.join(rel));
            if let Some(p) = dst.parent() {
                std::fs::create_dir_all(p).map_err(io_err("creating", p))?;
            }
            std::fs::copy(&src, &dst).map_err(io_err("reading", &src))?;
        }
        Ok(())
    }
}

impl Local<'_> {
    /// Renames `from` to `to` (which must not exist) and syncs the base
    /// directory, so the new name survives a power cut.
    fn rename(&self, from: &str, to: &str) -> Result<(), ShipError> {
        let (f, t) = (self.base.join(from), self.base.join(to));
        if t.exists() {
            return Err(ShipError::Remote {
                host: "local".into(),
                what: format!("renaming {t} into place"),
                detail: "already exists".into(),
            });
        }
        std::fs::rename(&f, &t).map_err(io_err("renaming into place", t.as_std_path()))?;
        crate::set::sync_dir(self.base.as_std_path())?;
        Ok(())
    }
}
