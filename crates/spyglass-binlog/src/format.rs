//! The on-disk binary log format, as far as the archive and the replay need
//! it: the file magic, the 19-byte v4 event header, CRC32 footers, and the
//! few event bodies read here (rotate, query, table map, rows, GTID).
//! MariaDB's own event types (160-163) are kept as raw bytes.

/// The first four bytes of every binlog file.
pub const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];
/// Length of the v4 event header.
pub const HEADER_LEN: usize = 19;

/// Event type codes used here.
#[allow(missing_docs)]
pub mod types {
    pub const QUERY: u8 = 2;
    pub const STOP: u8 = 3;
    pub const ROTATE: u8 = 4;
    pub const INTVAR: u8 = 5;
    pub const RAND: u8 = 13;
    pub const USER_VAR: u8 = 14;
    pub const FORMAT_DESCRIPTION: u8 = 15;
    pub const XID: u8 = 16;
    pub const TABLE_MAP: u8 = 19;
    pub const WRITE_ROWS_V1: u8 = 23;
    pub const UPDATE_ROWS_V1: u8 = 24;
    pub const DELETE_ROWS_V1: u8 = 25;
    pub const HEARTBEAT: u8 = 27;
    pub const ROWS_QUERY: u8 = 29;
    pub const WRITE_ROWS: u8 = 30;
    pub const UPDATE_ROWS: u8 = 31;
    pub const DELETE_ROWS: u8 = 32;
    pub const GTID: u8 = 33;
    pub const ANONYMOUS_GTID: u8 = 34;
    pub const PREVIOUS_GTIDS: u8 = 35;
    pub const PARTIAL_UPDATE_ROWS: u8 = 39;
    pub const TRANSACTION_PAYLOAD: u8 = 40;
    pub const HEARTBEAT_V2: u8 = 41;
    /// MariaDB: the statement text of the following row events.
    pub const MARIA_ANNOTATE_ROWS: u8 = 160;
    /// MariaDB: binlog checkpoint.
    pub const MARIA_BINLOG_CHECKPOINT: u8 = 161;
    /// MariaDB: GTID (starts an event group).
    pub const MARIA_GTID: u8 = 162;
    /// MariaDB: GTID list at the start of a file.
    pub const MARIA_GTID_LIST: u8 = 163;
    /// MariaDB: compressed row events (10.2+), 166..=171.
    pub const MARIA_ROWS_COMPRESSED_FIRST: u8 = 166;
    /// Last MariaDB compressed row event type.
    pub const MARIA_ROWS_COMPRESSED_LAST: u8 = 171;
    /// MariaDB: compressed query event.
    pub const MARIA_QUERY_COMPRESSED: u8 = 165;
}

/// Header flag: the file is open (cleared in the FDE when the server closes it).
pub const LOG_EVENT_BINLOG_IN_USE_F: u16 = 0x1;
/// Header flag: an event the server made up for the stream (not in any file).
pub const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;
/// Rows event flag: last rows event of a statement.
pub const STMT_END_F: u16 = 0x1;

/// The common header of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Seconds since the epoch (UTC) when the statement started.
    pub timestamp: u32,
    /// Event type code.
    pub type_code: u8,
    /// Server that wrote it.
    pub server_id: u32,
    /// Whole event length, header and checksum included.
    pub size: u32,
    /// Position of the next event in the file (0 for made-up events).
    pub log_pos: u32,
    /// Header flags.
    pub flags: u16,
}

fn u16le(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}
fn u32le(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
pub(crate) fn uint_le(b: &[u8]) -> u64 {
    b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

/// Parses the header at the start of `b` (None when `b` is shorter than a header).
pub fn header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER_LEN {
        return None;
    }
    Some(Header {
        timestamp: u32le(b, 0),
        type_code: b[4],
        server_id: u32le(b, 5),
        size: u32le(b, 9),
        log_pos: u32le(b, 13),
        flags: u16le(b, 17),
    })
}

/// Length of the longest prefix of a binlog file made of the magic and
/// complete events (what survives a kill mid-write), or None without magic.
pub fn complete_prefix(file: &[u8]) -> Option<usize> {
    if file.len() < 4 || file[..4] != MAGIC {
        return None;
    }
    let mut at = 4;
    while let Some(h) = header(&file[at..]) {
        let size = h.size as usize;
        if size < HEADER_LEN || at + size > file.len() {
            break;
        }
        at += size;
    }
    Some(at)
}

/// Iterates over the complete events of a file (after the magic), with their offsets.
pub fn events(file: &[u8]) -> impl Iterator<Item = (usize, Header, &[u8])> {
    let mut at = if file.starts_with(&MAGIC) {
        4
    } else {
        file.len()
    };
    std::iter::from_fn(move || {
        let h = header(file.get(at..)?)?;
        let size = h.size as usize;
        if size < HEADER_LEN || at + size > file.len() {
            return None;
        }
        let start = at;
        at += size;
        Some((start, h, &file[start..at]))
    })
}

/// The checksum algorithm a format description event declares (0 off, 1 CRC32).
pub fn fde_checksum_alg(fde: &[u8]) -> u8 {
    // ... alg (1 byte) + CRC32 (4 bytes) end every FDE of a server that knows checksums.
    if fde.len() >= HEADER_LEN + 5 + 57 {
        fde[fde.len() - 5]
    } else {
        0
    }
}

/// CRC32 (zlib polynomial) as binlog checksums use it.
pub fn crc32(b: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(b);
    c.sum()
}

/// Rewrites an event's size field and, when `checksum`, its CRC32 footer.
pub fn finish_event(ev: &mut [u8], checksum: bool) {
    let n = ev.len();
    ev[9..13].copy_from_slice(&(n as u32).to_le_bytes());
    if checksum && n >= HEADER_LEN + 4 {
        let c = crc32(&ev[..n - 4]);
        ev[n - 4..].copy_from_slice(&c.to_le_bytes());
    }
}

/// Sets or clears header flags of an event in place, keeping its checksum right.
pub fn set_flags(ev: &mut [u8], flags: u16, checksum: bool) {
    ev[17..19].copy_from_slice(&flags.to_le_bytes());
    finish_event(ev, checksum);
}

/// The next file and position a rotate event names.
pub fn rotate_target(ev: &[u8], checksum: bool) -> Option<(String, u64)> {
    let end = ev.len().checked_sub(if checksum { 4 } else { 0 })?;
    let body = ev.get(HEADER_LEN..end)?;
    if body.len() < 8 {
        return None;
    }
    let pos = uint_le(&body[..8]);
    let name = String::from_utf8_lossy(&body[8..]).into_owned();
    Some((name, pos))
}

/// Whether an event type is a row event (applied through `BINLOG`).
pub fn is_rows(t: u8) -> bool {
    matches!(
        t,
        types::WRITE_ROWS_V1
            | types::UPDATE_ROWS_V1
            | types::DELETE_ROWS_V1
            | types::WRITE_ROWS
            | types::UPDATE_ROWS
            | types::DELETE_ROWS
            | types::PARTIAL_UPDATE_ROWS
    ) || (types::MARIA_ROWS_COMPRESSED_FIRST..=types::MARIA_ROWS_COMPRESSED_LAST).contains(&t)
}

/// A table map event's table id, schema and table.
pub fn table_map(ev: &[u8]) -> Option<(u64, String, String)> {
    let b = ev.get(HEADER_LEN..)?;
    let id = uint_le(b.get(..6)?);
    let dlen = *b.get(8)? as usize;
    let db = b.get(9..9 + dlen)?;
    let tl = 9 + dlen + 1;
    let tlen = *b.get(tl)? as usize;
    let table = b.get(tl + 1..tl + 1 + tlen)?;
    Some((
        id,
        String::from_utf8_lossy(db).into_owned(),
        String::from_utf8_lossy(table).into_owned(),
    ))
}

/// A copy of a table map event with its schema name replaced.
pub fn rename_table_map(ev: &[u8], new_db: &str, checksum: bool) -> Option<Vec<u8>> {
    let dlen = *ev.get(HEADER_LEN + 8)? as usize;
    if new_db.len() > 255 {
        return None;
    }
    let mut out = Vec::with_capacity(ev.len() + new_db.len());
    out.extend_from_slice(&ev[..HEADER_LEN + 8]);
    out.push(new_db.len() as u8);
    out.extend_from_slice(new_db.as_bytes());
    out.extend_from_slice(ev.get(HEADER_LEN + 9 + dlen..)?);
    finish_event(&mut out, checksum);
    Some(out)
}

/// A rows event's table id and flags.
pub fn rows_table(ev: &[u8]) -> Option<(u64, u16)> {
    let b = ev.get(HEADER_LEN..HEADER_LEN + 8)?;
    Some((uint_le(&b[..6]), u16le(b, 6)))
}

/// Sets a rows event's flags (post-header), keeping its checksum right.
pub fn set_rows_flags(ev: &mut [u8], flags: u16, checksum: bool) {
    ev[HEADER_LEN + 6..HEADER_LEN + 8].copy_from_slice(&flags.to_le_bytes());
    finish_event(ev, checksum);
}

/// What the replay needs from a query event.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Connection id that ran it.
    pub thread_id: u32,
    /// Default schema when it ran (empty: none).
    pub schema: String,
    /// The statement.
    pub sql: Vec<u8>,
    /// OPTION_* bits of the session (`Q_FLAGS2`).
    pub flags2: Option<u32>,
    /// `sql_mode` bits.
    pub sql_mode: Option<u64>,
    /// character_set_client, collation_connection, collation_server ids.
    pub charset: Option<(u16, u16, u16)>,
    /// collation_database id.
    pub charset_database: Option<u16>,
    /// time_zone.
    pub time_zone: Option<String>,
    /// lc_time_names id.
    pub lc_time_names: Option<u16>,
    /// explicit_defaults_for_timestamp (MySQL).
    pub explicit_defaults_for_timestamp: Option<bool>,
    /// default_collation_for_utf8mb4 (MySQL).
    pub default_collation_for_utf8mb4: Option<u16>,
}

/// Parses a query event (both flavors' status variables).
pub fn query(ev: &[u8], checksum: bool) -> Option<Query> {
    let end = ev.len().checked_sub(if checksum { 4 } else { 0 })?;
    let b = ev.get(HEADER_LEN..end)?;
    let thread_id = u32le(b.get(..4)?, 0);
    let dlen = *b.get(8)? as usize;
    let svlen = u16le(b.get(11..13)?, 0) as usize;
    let sv = b.get(13..13 + svlen)?;
    let db = b.get(13 + svlen..13 + svlen + dlen)?;
    let sql = b.get(13 + svlen + dlen + 1..)?;
    let mut q = Query {
        thread_id,
        schema: String::from_utf8_lossy(db).into_owned(),
        sql: sql.to_vec(),
        ..Query::default()
    };
    let mut i = 0;
    while i < sv.len() {
        let key = sv[i];
        i += 1;
        let rest = &sv[i..];
        let len = match key {
            0 => {
                q.flags2 = Some(u32le(rest.get(..4)?, 0));
                4
            }
            1 => {
                q.sql_mode = Some(uint_le(rest.get(..8)?));
                8
            }
            2 => *rest.first()? as usize + 2,
            3 => 4,
            4 => {
                let r = rest.get(..6)?;
                q.charset = Some((u16le(r, 0), u16le(r, 2), u16le(r, 4)));
                6
            }
            5 => {
                let n = *rest.first()? as usize;
                q.time_zone = Some(String::from_utf8_lossy(rest.get(1..1 + n)?).into_owned());
                1 + n
            }
            6 => *rest.first()? as usize + 1,
            7 => {
                q.lc_time_names = Some(u16le(rest.get(..2)?, 0));
                2
            }
            8 => {
                q.charset_database = Some(u16le(rest.get(..2)?, 0));
                2
            }
            9 => 8,
            10 => 4,
            11 => {
                let u = *rest.first()? as usize;
                let h = *rest.get(1 + u)? as usize;
                2 + u + h
            }
            12 => {
                let count = *rest.first()? as usize;
                let mut j = 1;
                if count != 254 {
                    for _ in 0..count {
                        let z = rest.get(j..)?.iter().position(|&c| c == 0)?;
                        j += z + 1;
                    }
                }
                j
            }
            13 => 3,
            // MySQL: Q_COMMIT_TS / Q_COMMIT_TS2 (never written by servers).
            16 => {
                q.explicit_defaults_for_timestamp = Some(*rest.first()? != 0);
                1
            }
            17 => 8,
            18 => {
                q.default_collation_for_utf8mb4 = Some(u16le(rest.get(..2)?, 0));
                2
            }
            19 | 20 => 1,
            // MariaDB: Q_HRNOW (3 bytes), Q_XID (8).
            128 => 3,
            129 => 8,
            _ => break,
        };
        i += len;
    }
    Some(q)
}

/// The GTID event's commit time in microseconds (MySQL `immediate_commit_timestamp`)
/// and its GTID text (`uuid:gno`; None for an anonymous one).
pub fn mysql_gtid(ev: &[u8], checksum: bool) -> (Option<i64>, Option<String>) {
    let end = ev.len().saturating_sub(if checksum { 4 } else { 0 });
    let Some(b) = ev.get(HEADER_LEN..end) else {
        return (None, None);
    };
    let gtid = (ev[4] == types::GTID && b.len() >= 25).then(|| {
        let s = &b[1..17];
        let hex: String = s.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}:{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..],
            uint_le(&b[17..25])
        )
    });
    // flags 1, sid 16, gno 8, lt_type 1, last_committed 8, sequence 8, then 7 bytes.
    let commit = b.get(42..49).map(|t| {
        let v = uint_le(t) & !(1u64 << 55);
        v as i64
    });
    (commit, gtid)
}

/// MariaDB GTID event: `domain-server-seq`.
pub fn mariadb_gtid(ev: &[u8]) -> Option<String> {
    let b = ev.get(HEADER_LEN..HEADER_LEN + 13)?;
    let h = header(ev)?;
    Some(format!(
        "{}-{}-{}",
        u32le(b, 8),
        h.server_id,
        uint_le(&b[..8])
    ))
}

/// MariaDB GTID event flag: a standalone event group (DDL, no BEGIN/COMMIT).
pub fn mariadb_gtid_standalone(ev: &[u8]) -> bool {
    ev.get(HEADER_LEN + 12).is_some_and(|f| f & 1 != 0)
}

/// Events that only keep the log's own books (format, rotation, GTID lists,
/// checkpoints, heartbeats): never part of a transaction.
pub fn is_bookkeeping(type_code: u8) -> bool {
    matches!(
        type_code,
        types::FORMAT_DESCRIPTION
            | types::ROTATE
            | types::STOP
            | types::PREVIOUS_GTIDS
            | types::MARIA_GTID_LIST
            | types::MARIA_BINLOG_CHECKPOINT
            | types::HEARTBEAT
            | types::HEARTBEAT_V2
    )
}

/// What a GTID event (`GTID`, `ANONYMOUS_GTID` or MariaDB's `GTID`) says of
/// the transaction it opens: its commit time in microseconds when the
/// server wrote one (MySQL 8.0.1+), its GTID, and whether it is a MariaDB
/// standalone event group (DDL, no COMMIT follows).
pub fn gtid_event(type_code: u8, ev: &[u8], checksum: bool) -> (Option<i64>, Option<String>, bool) {
    if type_code == types::MARIA_GTID {
        (None, mariadb_gtid(ev), mariadb_gtid_standalone(ev))
    } else {
        let (c, g) = mysql_gtid(ev, checksum);
        (c.filter(|c| *c > 0), g, false)
    }
}

/// Standard base64 (with padding), as the `BINLOG` statement takes it.
pub fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn complete_prefix_drops_a_torn_event() {
        let mut f = MAGIC.to_vec();
        let mut ev = vec![0u8; 23];
        ev[4] = types::XID;
        finish_event(&mut ev, true);
        f.extend_from_slice(&ev);
        f.extend_from_slice(&ev[..10]);
        assert_eq!(complete_prefix(&f), Some(4 + 23));
        assert_eq!(events(&f).count(), 1);
        assert_eq!(complete_prefix(b"nope"), None);
    }
}
