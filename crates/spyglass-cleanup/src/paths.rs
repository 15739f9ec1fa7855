//! Row to file, exactly as datajoint-python 0.14 `external.py` builds paths
//! (`fetch_external_paths`, `_make_uuid_path`, `subfold`):
//!
//! - filepath: `<location>/<filepath>` (no schema folder)
//! - attachment: `<location>/<db>/<subfold(hex)>/<hex>.<attachment_name>`
//! - blob: `<location>/<db>/<subfold(hex)>/<hex>`
//!
//! `hex` is the 16-byte hash as 32 lowercase hex digits; `subfold` takes
//! successive prefixes of it (`(2, 2)` gives `ab/cd/abcd...`). Paths here are
//! relative to the store's location.

/// What kind of object an `~external` row stands for (DataJoint decides by
/// which columns are set: `attachment_name` first, then `filepath`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// `filepath@store`: the row names a path relative to the store.
    Filepath,
    /// `attach@store`: an uploaded file under the schema's folder.
    Attachment,
    /// `blob@store`: a serialized array under the schema's folder.
    Blob,
}

/// 32 lowercase hex digits.
pub fn hex(hash: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(hash.len() * 2);
    for b in hash {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// Parses 32 hex digits (either case) into 16 bytes.
pub fn unhex(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in b.chunks(2).enumerate() {
        let v = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        out[i] = (v(pair[0])? << 4) | v(pair[1])?;
    }
    Some(out)
}

/// The folder names `subfold` gives for `hex` (DataJoint lower-cases them).
pub fn subfold(hex: &str, folds: &[usize]) -> Vec<String> {
    let mut rest = hex;
    let mut out = Vec::with_capacity(folds.len());
    for &n in folds {
        let n = n.min(rest.len());
        out.push(rest[..n].to_ascii_lowercase());
        rest = &rest[n..];
    }
    out
}

/// The kind of a row from its `attachment_name` and `filepath` columns.
pub fn row_kind(attachment_name: Option<&str>, filepath: Option<&str>) -> RowKind {
    match (attachment_name, filepath) {
        (Some(a), _) if !a.is_empty() => RowKind::Attachment,
        (_, Some(f)) if !f.is_empty() => RowKind::Filepath,
        _ => RowKind::Blob,
    }
}

/// The path, relative to the store's location, of the file a row stands for.
pub fn row_path(
    db: &str,
    hash: &[u8],
    attachment_name: Option<&str>,
    filepath: Option<&str>,
    folds: &[usize],
) -> String {
    match row_kind(attachment_name, filepath) {
        RowKind::Filepath => normalize(filepath.unwrap_or_default()),
        kind => {
            let h = hex(hash);
            let mut p = String::with_capacity(db.len() + 48);
            p.push_str(db);
            for f in subfold(&h, folds) {
                p.push('/');
                p.push_str(&f);
            }
            p.push('/');
            p.push_str(&h);
            if kind == RowKind::Attachment {
                p.push('.');
                p.push_str(attachment_name.unwrap_or_default());
            }
            p
        }
    }
}

/// A `filepath` value as a relative path: DataJoint stores it relative with
/// `/` separators; stray `./` and repeated slashes are dropped so the value
/// compares equal to the walked path.
pub fn normalize(rel: &str) -> String {
    let mut out = String::with_capacity(rel.len());
    for part in rel.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(part);
    }
    out
}

/// If `rel` has the shape of a blob or attachment path
/// (`<db>/<folds...>/<hex>[.<name>]`), the schema and hash it would belong to.
/// Used to re-check a file against the database by hash.
pub fn parse_uuid_path(rel: &str, folds: &[usize]) -> Option<(String, [u8; 16])> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() != folds.len() + 2 {
        return None;
    }
    let name = parts[parts.len() - 1];
    let h = name.get(..32)?;
    let rest = &name[32..];
    if !(rest.is_empty() || rest.starts_with('.')) {
        return None;
    }
    let hash = unhex(h)?;
    let lower = h.to_ascii_lowercase();
    if subfold(&lower, folds)
        .iter()
        .map(String::as_str)
        .ne(parts[1..parts.len() - 1].iter().copied())
    {
        return None;
    }
    Some((parts[0].to_owned(), hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: [u8; 16] = [
        0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
        0x77,
    ];

    #[test]
    fn paths_by_kind() {
        type Case<'a> = (Option<&'a str>, Option<&'a str>, &'a [usize], &'a str);
        let cases: &[Case] = &[
            (None, Some("j16/j16_A.nwb"), &[2, 2], "j16/j16_A.nwb"),
            (None, Some("./a//b.nwb"), &[2, 2], "a/b.nwb"),
            (
                None,
                None,
                &[2, 2],
                "db/ab/cd/abcdef01234567890011223344556677",
            ),
            (
                None,
                Some(""),
                &[2, 2],
                "db/ab/cd/abcdef01234567890011223344556677",
            ),
            (
                Some("x.tar.gz"),
                None,
                &[2, 2],
                "db/ab/cd/abcdef01234567890011223344556677.x.tar.gz",
            ),
            (
                Some("x.png"),
                Some("ignored"),
                &[1],
                "db/a/abcdef01234567890011223344556677.x.png",
            ),
            (None, None, &[], "db/abcdef01234567890011223344556677"),
            (
                None,
                None,
                &[2, 2, 3],
                "db/ab/cd/ef0/abcdef01234567890011223344556677",
            ),
        ];
        for (att, fp, folds, want) in cases {
            assert_eq!(
                row_path("db", &H, *att, *fp, folds),
                *want,
                "{att:?} {fp:?} {folds:?}"
            );
        }
    }

    #[test]
    fn uuid_paths_parse_back() {
        for folds in [&[2usize, 2][..], &[], &[1, 3]] {
            for att in [None, Some("f.nwb")] {
                let p = row_path("my_db", &H, att, None, folds);
                assert_eq!(
                    parse_uuid_path(&p, folds),
                    Some(("my_db".to_owned(), H)),
                    "{p}"
                );
            }
        }
        for bad in [
            "my_db/ab/cd/xyz",
            "my_db/ab/abcdef01234567890011223344556677",
            "my_db/zz/cd/abcdef01234567890011223344556677",
            "a/b.nwb",
        ] {
            assert_eq!(parse_uuid_path(bad, &[2, 2]), None, "{bad}");
        }
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&H)), Some(H));
        assert_eq!(unhex(&hex(&H).to_uppercase()), Some(H));
        assert_eq!(unhex("zz"), None);
    }
}
