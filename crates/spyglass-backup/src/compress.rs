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
    /// gzip through flate2's zlib-rs backend (`gunzip` reads it). Level 0-9.
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
                let l = level.unwrap_or(2);
                if !(0..=9).contains(&l) {
                    return Err(format!("gzip level {l} is out of range 0-9"));
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

/// gzip with deflate's Z_HUFFMAN_ONLY strategy: no match search, only
/// entropy coding. Neural arrays (random-walk int16 samples) have almost no
/// repeated strings, so this keeps nearly all of deflate's gain on them at
/// about three times the speed of level 2. `gunzip` reads it like any gzip.
struct EntropyGz {
    d: zlib_rs::Deflate,
    out: Vec<u8>,
    inner: HashingFile,
}

fn zerr(e: zlib_rs::DeflateError) -> io::Error {
    io::Error::other(format!("gzip: {}", e.as_str()))
}

impl EntropyGz {
    fn new(inner: HashingFile) -> Self {
        let mut cfg = zlib_rs::DeflateConfig::new(1);
        cfg.window_bits = 31; // 15 + 16: a gzip header and trailer
        cfg.strategy = zlib_rs::Strategy::HuffmanOnly;
        EntropyGz {
            d: zlib_rs::Deflate::new_with_config(cfg),
            out: vec![0; 1 << 20],
            inner,
        }
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let (i0, o0) = (self.d.total_in(), self.d.total_out());
            self.d
                .compress(buf, &mut self.out, zlib_rs::DeflateFlush::NoFlush)
                .map_err(zerr)?;
            let used = (self.d.total_in() - i0) as usize;
            let made = (self.d.total_out() - o0) as usize;
            self.inner.write_all(&self.out[..made])?;
            buf = &buf[used..];
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<HashingFile> {
        loop {
            let o0 = self.d.total_out();
            let status = self
                .d
                .compress(&[], &mut self.out, zlib_rs::DeflateFlush::Finish)
                .map_err(zerr)?;
            let made = (self.d.total_out() - o0) as usize;
            self.inner.write_all(&self.out[..made])?;
            if status == zlib_rs::Status::StreamEnd {
                return Ok(self.inner);
            }
        }
    }
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<HashingFile>),
    EntropyGzip(EntropyGz),
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
        Self::create_with(path, compression, false)
    }

    /// Like [`SetFileWriter::create`]; with `entropy_only`, gzip files use
    /// Z_HUFFMAN_ONLY instead of the level (for tables of binary arrays).
    pub fn create_with(
        path: &Path,
        compression: Compression,
        entropy_only: bool,
    ) -> io::Result<SetFileWriter> {
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
            Compression::Gzip(_) if entropy_only => Encoder::EntropyGzip(EntropyGz::new(hf)),
            Compression::Gzip(level) => Encoder::Gzip(flate2::write::GzEncoder::new(
                hf,
                flate2::Compression::new(level),
            )),
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
            Encoder::EntropyGzip(e) => e.write_all(buf),
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
            Encoder::EntropyGzip(e) => e.finish()?,
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
            // The entropy-only gzip variant reads back with the standard decoder.
            if let Compression::Gzip(_) = c {
                let p2 = dir
                    .path()
                    .join(format!("e{}", c.suffix()).replace(['(', ')'], ""));
                let _ = std::fs::remove_file(&p2);
                let mut w = SetFileWriter::create_with(&p2, c, true).unwrap();
                w.write_all(&data).unwrap();
                let written = w.finish().unwrap();
                assert!(written.bytes < data.len() as u64);
                let mut back = Vec::new();
                open_sql(&p2).unwrap().read_to_end(&mut back).unwrap();
                assert_eq!(back, data);
            }
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
    fn parses_compression() {
        assert_eq!(Compression::parse("gzip", None), Ok(Compression::Gzip(2)));
        assert_eq!(
            Compression::parse("zstd", Some(5)),
            Ok(Compression::Zstd(5))
        );
        assert!(Compression::parse("gzip", Some(12)).is_err());
        assert!(Compression::parse("bz2", None).is_err());
    }
}
