//! Compressed files with a running sha256 of what lands on disk.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Compression of the files of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "method", content = "level")]
pub enum Compression {
    /// gzip (`gunzip` reads it), written by libdeflate as members. Level 0-12.
    Gzip(u32),
    /// zstd with frame checksums (`zstd -d` reads it). Level 1-19.
    Zstd(i32),
    /// Plain SQL.
    None,
}

impl Compression {
    /// File name suffix, e.g. `.sql.gz`.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip(_) => ".sql.gz",
            Compression::Zstd(_) => ".sql.zst",
            Compression::None => ".sql",
        }
    }

    /// The shell command that writes a file's SQL to stdout.
    pub fn cat_command(self) -> &'static str {
        match self {
            Compression::Gzip(_) => "gunzip -c",
            Compression::Zstd(_) => "zstd -dc",
            Compression::None => "cat",
        }
    }

    /// Parses `gzip`, `zstd`, `none` with an optional level.
    pub fn parse(method: &str, level: Option<i32>) -> Result<Compression, String> {
        match method {
            "gzip" | "gz" => {
                let l = level.unwrap_or(crate::dump::GZIP_LEVEL as i32);
                if !(0..=12).contains(&l) {
                    return Err(format!("gzip level {l} is out of range 0-12"));
                }
                Ok(Compression::Gzip(l as u32))
            }
            "zstd" | "zst" => {
                let l = level.unwrap_or(3);
                if !(1..=19).contains(&l) {
                    return Err(format!("zstd level {l} is out of range 1-19"));
                }
                Ok(Compression::Zstd(l))
            }
            "none" => Ok(Compression::None),
            o => Err(format!("unknown compression '{o}' (gzip, zstd or none)")),
        }
    }
}

/// Counts and hashes bytes on their way to the file.
struct HashingFile {
    inner: BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Input bytes per gzip member of [`GzMembers`].
const MEMBER_BYTES: usize = 2 << 20;

/// gzip written as concatenated members, each a whole block deflated at once
/// by libdeflate (RFC 1952 allows any number of members; `gunzip`, zcat and
/// every decoder here read them as one stream). Whole-block deflate chooses
/// its blocks and Huffman codes with the block in view, which is why it beats
/// streaming zlib in both time and size; a member restarts the 32 KiB window,
/// which costs well under 0.1% at 2 MiB.
struct GzMembers {
    c: libdeflater::Compressor,
    block: Vec<u8>,
    out: Vec<u8>,
    members: u64,
    inner: HashingFile,
}

impl GzMembers {
    fn new(inner: HashingFile, level: u32) -> io::Result<Self> {
        let lvl = libdeflater::CompressionLvl::new(level as i32)
            .map_err(|_| io::Error::other(format!("gzip level {level} is out of range 0-12")))?;
        Ok(GzMembers {
            c: libdeflater::Compressor::new(lvl),
            block: Vec::with_capacity(MEMBER_BYTES),
            out: Vec::new(),
            members: 0,
            inner,
        })
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let take = (MEMBER_BYTES - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == MEMBER_BYTES {
                self.member()?;
            }
        }
        Ok(())
    }

    /// Deflates the block into one member.
    fn member(&mut self) -> io::Result<()> {
        let bound = self.c.gzip_compress_bound(self.block.len());
        if self.out.len() < bound {
            self.out.resize(bound, 0);
        }
        let n = self
            .c
            .gzip_compress(&self.block, &mut self.out)
            .map_err(|e| io::Error::other(format!("gzip: {e}")))?;
        self.inner.write_all(&self.out[..n])?;
        self.block.clear();
        self.members += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<HashingFile> {
        // An empty file is still one (empty) member: gunzip refuses zero bytes.
        if !self.block.is_empty() || self.members == 0 {
            self.member()?;
        }
        Ok(self.inner)
    }
}

enum Encoder {
    Gzip(GzMembers),
    Zstd(zstd::stream::write::Encoder<'static, HashingFile>),
    Plain(HashingFile),
}

/// A file being written: SQL in, compressed bytes out, with counts and sha256.
pub struct SetFileWriter {
    enc: Encoder,
    raw_bytes: u64,
}

impl std::fmt::Debug for SetFileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetFileWriter")
            .field("raw_bytes", &self.raw_bytes)
            .finish_non_exhaustive()
    }
}

/// What a finished file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Uncompressed bytes.
    pub raw_bytes: u64,
    /// Bytes on disk.
    pub bytes: u64,
    /// sha256 of the bytes on disk, lowercase hex.
    pub sha256: String,
}

impl SetFileWriter {
    /// Creates `path` (mode 0600: sets may hold password hashes and lab data).
    pub fn create(path: &Path, compression: Compression) -> io::Result<SetFileWriter> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let hf = HashingFile {
            inner: BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let enc = match compression {
            Compression::Gzip(level) => Encoder::Gzip(GzMembers::new(hf, level)?),
            Compression::Zstd(level) => {
                let mut e = zstd::stream::write::Encoder::new(hf, level)?;
                e.include_checksum(true)?;
                Encoder::Zstd(e)
            }
            Compression::None => Encoder::Plain(hf),
        };
        Ok(SetFileWriter { enc, raw_bytes: 0 })
    }

    /// Appends SQL text.
    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.raw_bytes += buf.len() as u64;
        match &mut self.enc {
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Zstd(e) => e.write_all(buf),
            Encoder::Plain(e) => e.write_all(buf),
        }
    }

    /// Uncompressed bytes written so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }

    /// Ends the stream, flushes and fsyncs the file.
    pub fn finish(self) -> io::Result<Written> {
        let raw_bytes = self.raw_bytes;
        let hf = match self.enc {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Zstd(e) => e.finish()?,
            Encoder::Plain(e) => e,
        };
        let HashingFile {
            inner,
            hasher,
            bytes,
        } = hf;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Written {
            raw_bytes,
            bytes,
            sha256: hex(&hasher.finalize()),
        })
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 and size of a file on disk.
pub fn file_sha256(path: &Path) -> io::Result<(u64, String)> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((n_total, hex(&h.finalize())))
}

/// Opens a set file for reading its SQL, decompressing by its name's suffix.
/// gzip and zstd decoders check the stream's own checksum at its end, so
/// reading to the end proves the stream complete.
pub fn open_sql(path: &Path) -> io::Result<Box<dyn Read + Send>> {
    let f = BufReader::with_capacity(1 << 20, File::open(path)?);
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::with_buffer(f)?)
    } else {
        Box::new(f)
    })
}

/// Same as [`open_sql`] over bytes already in memory.
pub fn open_sql_bytes(name: &str, bytes: Vec<u8>) -> io::Result<Box<dyn Read + Send>> {
    let c = io::Cursor::new(bytes);
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(c))
    } else if name.ends_with(".zst") {
        Box::new(zstd::stream::read::Decoder::new(c)?)
    } else {
        Box::new(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_compression_and_detect_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [
            Compression::Gzip(1),
            Compression::Gzip(6),
            Compression::Zstd(3),
            Compression::None,
        ] {
            let p = dir
                .path()
                .join(format!("f{c:?}{}", c.suffix()).replace(['(', ')'], ""));
            let mut w = SetFileWriter::create(&p, c).unwrap();
            w.write_all(&data).unwrap();
            let written = w.finish().unwrap();
            assert_eq!(written.raw_bytes, data.len() as u64);
            assert_eq!(
                file_sha256(&p).unwrap(),
                (written.bytes, written.sha256.clone())
            );
            let mut back = Vec::new();
            open_sql(&p).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, data, "{c:?}");
            if c != Compression::None {
                // Cut the file short: reading must fail, not return less data silently.
                let bytes = std::fs::read(&p).unwrap();
                std::fs::write(&p, &bytes[..bytes.len() - 9]).unwrap();
                let mut back = Vec::new();
                assert!(
                    open_sql(&p).unwrap().read_to_end(&mut back).is_err(),
                    "{c:?} truncation undetected"
                );
            }
        }
    }

    #[test]
    fn gzip_members_read_back_with_gunzip_and_an_empty_file_is_valid_gzip() {
        let dir = tempfile::tempdir().unwrap();
        // Three and a half members of text-like, compressible SQL.
        let line = b"INSERT INTO `t` VALUES (1,'abc',_binary 'x\\0y'),(2,'def',NULL);\n";
        let data: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(MEMBER_BYTES * 7 / 2)
            .collect();
        for (name, bytes) in [("big.sql.gz", &data[..]), ("empty.sql.gz", &[][..])] {
            let p = dir.path().join(name);
            let mut w = SetFileWriter::create(&p, Compression::Gzip(6)).unwrap();
            w.write_all(bytes).unwrap();
            let written = w.finish().unwrap();
            assert!(
                written.bytes > 0,
                "{name}: even an empty file is one member"
            );
            let mut back = Vec::new();
            open_sql(&p).unwrap().read_to_end(&mut back).unwrap();
            assert_eq!(back, bytes, "{name} through our reader");
            // The stock tool restores read it too (`gunzip -c | mysql`).
            let out = std::process::Command::new("gunzip")
                .arg("-c")
                .arg(&p)
                .output()
                .expect("gunzip runs");
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.stdout, bytes, "{name} through gunzip");
        }
    }

    #[test]
    fn parses_compression() {
        assert_eq!(Compression::parse("gzip", None), Ok(Compression::Gzip(6)));
        assert_eq!(
            Compression::parse("zstd", Some(5)),
            Ok(Compression::Zstd(5))
        );
        assert!(Compression::parse("gzip", Some(13)).is_err());
        assert!(Compression::parse("bz2", None).is_err());
    }
}
