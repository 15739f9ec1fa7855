//! The history file under the backup destination: one JSON line per night
//! (the newest measurement of a UTC day replaces that day's older one).

use std::path::Path;

use crate::aggregate::day_of;
use crate::model::HistoryRecord;
use crate::ReportError;

/// Records kept (about two years of nights).
pub const KEEP: usize = 800;

/// Reads the history; a missing file is an empty history, a line that is
/// not a record is skipped (a newer tool may have written more fields, which
/// are ignored; a torn last line is lost, not fatal).
pub fn read(file: &Path) -> Result<Vec<HistoryRecord>, ReportError> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReportError::io("reading", file)(e)),
    };
    let mut out: Vec<HistoryRecord> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    out.sort_by_key(|r| r.unix);
    Ok(out)
}

/// Puts `rec` into `hist` in place of the record of the same UTC day, oldest first.
pub fn upsert(hist: &mut Vec<HistoryRecord>, rec: HistoryRecord) {
    let day = day_of(rec.unix);
    hist.retain(|r| day_of(r.unix) != day);
    hist.push(rec);
    hist.sort_by_key(|r| r.unix);
    if hist.len() > KEEP {
        let extra = hist.len() - KEEP;
        hist.drain(..extra);
    }
}

/// Adds `rec` to the history file (replacing the same night's record),
/// written to a temporary name and renamed over the old file.
pub fn append(file: &Path, rec: HistoryRecord) -> Result<(), ReportError> {
    let mut hist = read(file)?;
    upsert(&mut hist, rec);
    let mut text = String::new();
    for r in &hist {
        // A record of plain maps and numbers always serializes.
        text.push_str(&serde_json::to_string(r).unwrap_or_default());
        text.push('\n');
    }
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(ReportError::io("writing", &tmp))?;
    std::fs::rename(&tmp, file).map_err(ReportError::io("renaming into place", file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(unix: i64, b: u64) -> HistoryRecord {
        HistoryRecord {
            at: String::new(),
            unix,
            source: "report".into(),
            schema_bytes: [("s".to_string(), b)].into(),
            store_bytes: Default::default(),
        }
    }

    #[test]
    fn one_record_per_night_survives_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h.jsonl");
        assert!(read(&f).unwrap().is_empty());
        append(&f, rec(86_400 * 10 + 3600, 1)).unwrap();
        append(&f, rec(86_400 * 11 + 3600, 2)).unwrap();
        // Later the same night: replaces it.
        append(&f, rec(86_400 * 11 + 7200, 3)).unwrap();
        let h = read(&f).unwrap();
        let got: Vec<u64> = h.iter().map(|r| r.db_bytes()).collect();
        assert_eq!(got, vec![1, 3]);
        // A torn line is skipped.
        let mut text = std::fs::read_to_string(&f).unwrap();
        text.push_str("{\"at\": \"2");
        std::fs::write(&f, text).unwrap();
        assert_eq!(read(&f).unwrap().len(), 2);
    }
}
