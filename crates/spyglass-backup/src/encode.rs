//! Rows to SQL text that the stock `mysql` client and the server read back
//! bit-exactly.
//!
//! Values are written the way `mysqldump` writes them, which the PRODUCT
//! measurements favour over hex (smaller after compression, half the bytes to
//! compress): numbers as the server's text, strings as `'...'` and binary
//! strings as `_binary'...'` with `\0 \n \r \\ \' \Z` escaped, `BIT` and
//! geometry as `0x` hex. No raw NUL or CR byte ever appears, so the client's
//! line handling cannot alter a value, and no raw newline appears inside a
//! statement, so a data file is exactly one statement per line. The manifest
//! records the encoding (`escaped`).

use spyglass_db::mysql::consts::ColumnType;

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Integers, decimals, floats, YEAR: the server's text, unquoted.
    Number,
    /// `'...'` escaped (text, dates, times, ENUM, SET, JSON).
    Text,
    /// `_binary'...'` escaped (BINARY, VARBINARY, BLOB types).
    Binary,
    /// `0x...` (BIT, geometry).
    Hex,
}

/// `binary` collation/charset id in the protocol.
const BINARY_CHARSET: u16 = 63;

/// Chooses how to write a column from its protocol metadata.
pub fn kind_of(column_type: ColumnType, charset: u16) -> ValueKind {
    use ColumnType::*;
    match column_type {
        MYSQL_TYPE_DECIMAL
        | MYSQL_TYPE_NEWDECIMAL
        | MYSQL_TYPE_TINY
        | MYSQL_TYPE_SHORT
        | MYSQL_TYPE_LONG
        | MYSQL_TYPE_LONGLONG
        | MYSQL_TYPE_INT24
        | MYSQL_TYPE_YEAR
        | MYSQL_TYPE_FLOAT
        | MYSQL_TYPE_DOUBLE => ValueKind::Number,
        MYSQL_TYPE_BIT | MYSQL_TYPE_GEOMETRY => ValueKind::Hex,
        // MySQL reports JSON with the binary charset, but a JSON column refuses
        // a binary string: write it as text (as mysqldump does).
        MYSQL_TYPE_JSON => ValueKind::Text,
        MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
        | MYSQL_TYPE_BLOB
            if charset == BINARY_CHARSET =>
        {
            ValueKind::Binary
        }
        _ => ValueKind::Text,
    }
}

/// Which bytes need a backslash escape, and the letter that follows it.
const fn escape_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    t[0] = b'0';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\\' as usize] = b'\\';
    t[b'\'' as usize] = b'\'';
    t[0x1a] = b'Z';
    t
}
static ESCAPE: [u8; 256] = escape_table();

/// Appends `bytes` escaped for a single-quoted literal (without the quotes).
pub fn push_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + bytes.len() / 64 + 2);
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let e = ESCAPE[b as usize];
        if e != 0 {
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            out.push(e);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends one value as a SQL literal. `None` is `NULL`.
pub fn push_value(out: &mut Vec<u8>, kind: ValueKind, value: Option<&[u8]>) {
    let Some(v) = value else {
        out.extend_from_slice(b"NULL");
        return;
    };
    match kind {
        // `-0` would be read back as the integer 0; `-0e0` keeps a float's sign.
        ValueKind::Number if v == b"-0" => out.extend_from_slice(b"-0e0"),
        ValueKind::Number => out.extend_from_slice(v),
        ValueKind::Text => {
            out.push(b'\'');
            push_escaped(out, v);
            out.push(b'\'');
        }
        ValueKind::Binary => {
            out.extend_from_slice(b"_binary'");
            push_escaped(out, v);
            out.push(b'\'');
        }
        ValueKind::Hex => {
            if v.is_empty() {
                out.extend_from_slice(b"''");
            } else {
                out.reserve(2 + v.len() * 2);
                out.extend_from_slice(b"0x");
                for &b in v {
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
            }
        }
    }
}

/// Builds `INSERT INTO `t` (`a`,`b`) VALUES (...),(...);\n` statements no
/// longer than a limit (a single row longer than the limit is still one
/// statement; [`InsertBuilder::max_statement`] tells how long the longest was).
#[derive(Debug)]
pub struct InsertBuilder {
    prefix: Vec<u8>,
    limit: usize,
    buf: Vec<u8>,
    row: Vec<u8>,
    rows_in_buf: u64,
    max_statement: usize,
}

impl InsertBuilder {
    /// For table `table` (unqualified: files `USE` the schema) and its column names.
    pub fn new(table: &str, columns: &[String], limit: usize) -> Self {
        let mut prefix = format!("INSERT INTO {} (", spyglass_db::quote::ident(table)).into_bytes();
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                prefix.push(b',');
            }
            prefix.extend_from_slice(spyglass_db::quote::ident(c).as_bytes());
        }
        prefix.extend_from_slice(b") VALUES ");
        InsertBuilder {
            prefix,
            limit: limit.max(1024),
            buf: Vec::new(),
            row: Vec::new(),
            rows_in_buf: 0,
            max_statement: 0,
        }
    }

    /// Starts a row; push its values with [`InsertBuilder::value`], then call
    /// [`InsertBuilder::end_row`].
    pub fn begin_row(&mut self) {
        self.row.clear();
        self.row.push(b'(');
    }

    /// Appends one value of the current row.
    pub fn value(&mut self, first: bool, kind: ValueKind, v: Option<&[u8]>) {
        if !first {
            self.row.push(b',');
        }
        push_value(&mut self.row, kind, v);
    }

    /// Ends the row. If it would push the statement over the limit, the
    /// pending statement is returned first (complete, ending in `;\n`).
    pub fn end_row(&mut self) -> Option<Vec<u8>> {
        self.row.push(b')');
        let mut flushed = None;
        if self.rows_in_buf > 0 && self.buf.len() + 1 + self.row.len() + 2 > self.limit {
            flushed = self.finish();
        }
        if self.rows_in_buf == 0 {
            self.buf.extend_from_slice(&self.prefix);
        } else {
            self.buf.push(b',');
        }
        self.buf.extend_from_slice(&self.row);
        self.rows_in_buf += 1;
        flushed
    }

    /// The pending statement, if any rows are pending.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.rows_in_buf == 0 {
            return None;
        }
        self.buf.extend_from_slice(b";\n");
        self.max_statement = self.max_statement.max(self.buf.len() - 1);
        self.rows_in_buf = 0;
        let cap = self.buf.capacity();
        Some(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(cap.min(self.limit + 4096)),
        ))
    }

    /// Bytes of the longest statement produced so far (without the newline).
    pub fn max_statement(&self) -> usize {
        self.max_statement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(kind: ValueKind, v: Option<&[u8]>) -> String {
        let mut out = Vec::new();
        push_value(&mut out, kind, v);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn literals() {
        let cases: &[(ValueKind, Option<&[u8]>, &str)] = &[
            (ValueKind::Number, Some(b"-12.50"), "-12.50"),
            (ValueKind::Number, None, "NULL"),
            (ValueKind::Number, Some(b"-0"), "-0e0"),
            (ValueKind::Text, Some(b""), "''"),
            (ValueKind::Text, Some(b"NULL"), "'NULL'"),
            (
                ValueKind::Text,
                Some(b"it's a \\ \n\r\0\x1a"),
                r"'it\'s a \\ \n\r\0\Z'",
            ),
            (ValueKind::Text, Some("🐭".as_bytes()), "'🐭'"),
            (
                ValueKind::Binary,
                Some(b"\x00\xff'"),
                "_binary'\\0\u{fffd}\\''",
            ),
            (ValueKind::Hex, Some(&[0x03, 0xff]), "0x03ff"),
            (ValueKind::Hex, Some(&[]), "''"),
        ];
        for (kind, v, want) in cases {
            assert_eq!(lit(*kind, *v), *want, "{kind:?} {v:?}");
        }
    }

    #[test]
    fn no_raw_newline_nul_or_cr_survives() {
        let all: Vec<u8> = (0..=255u8).collect();
        let mut out = Vec::new();
        push_value(&mut out, ValueKind::Binary, Some(&all));
        assert!(!out.contains(&b'\n') && !out.contains(&0) && !out.contains(&b'\r'));
        // Unescaping gives the input back.
        let inner = &out[8..out.len() - 1];
        let mut back = Vec::new();
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'\\' {
                back.push(match inner[i + 1] {
                    b'0' => 0,
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b'Z' => 0x1a,
                    c => c,
                });
                i += 2;
            } else {
                back.push(inner[i]);
                i += 1;
            }
        }
        assert_eq!(back, all);
    }

    #[test]
    fn kinds_from_metadata() {
        assert_eq!(
            kind_of(ColumnType::MYSQL_TYPE_LONG_BLOB, 63),
            ValueKind::Binary
        );
        assert_eq!(
            kind_of(ColumnType::MYSQL_TYPE_BLOB, 45),
            ValueKind::Text,
            "TEXT is a blob type with a text charset"
        );
        assert_eq!(kind_of(ColumnType::MYSQL_TYPE_JSON, 63), ValueKind::Text);
        assert_eq!(kind_of(ColumnType::MYSQL_TYPE_BIT, 63), ValueKind::Hex);
        assert_eq!(
            kind_of(ColumnType::MYSQL_TYPE_NEWDECIMAL, 63),
            ValueKind::Number
        );
        assert_eq!(
            kind_of(ColumnType::MYSQL_TYPE_DATETIME, 63),
            ValueKind::Text
        );
        assert_eq!(
            kind_of(ColumnType::MYSQL_TYPE_STRING, 63),
            ValueKind::Binary,
            "BINARY(16) hashes"
        );
    }

    #[test]
    fn statements_respect_the_limit_and_keep_big_rows_whole() {
        let mut b = InsertBuilder::new("t`x", &["a".into(), "b c".into()], 1024);
        let mut out = Vec::new();
        for i in 0..100 {
            b.begin_row();
            b.value(true, ValueKind::Number, Some(i.to_string().as_bytes()));
            b.value(false, ValueKind::Text, Some(b"some text here"));
            out.extend(b.end_row());
        }
        b.begin_row();
        b.value(true, ValueKind::Number, Some(b"1000"));
        b.value(false, ValueKind::Binary, Some(&vec![b'x'; 5000]));
        out.extend(b.end_row());
        out.extend(b.finish());
        assert!(out.len() > 3);
        for s in &out[..out.len() - 1] {
            assert!(s.len() <= 1024, "{}", s.len());
            assert!(s.starts_with(b"INSERT INTO `t``x` (`a`,`b c`) VALUES ("));
            assert!(s.ends_with(b");\n"));
            assert_eq!(s.iter().filter(|&&c| c == b'\n').count(), 1);
        }
        assert!(
            out.last().unwrap().len() > 5000,
            "the big row is one statement"
        );
        assert_eq!(b.max_statement(), out.last().unwrap().len() - 1);
        let rows: usize = out
            .iter()
            .map(|s| s.windows(2).filter(|w| w == b"),").count() + 1)
            .sum();
        assert_eq!(rows, 101);
    }
}
