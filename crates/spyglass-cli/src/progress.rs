//! Progress bars on stderr, only on a terminal and never with --json/--quiet.

use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting progress bar for the backup engine.
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
    rows: std::sync::atomic::AtomicU64,
}

impl Bar {
    pub fn new(enabled: bool) -> Self {
        Bar {
            bar: Mutex::new(None),
            enabled: enabled && std::io::stderr().is_terminal(),
            rows: Default::default(),
        }
    }
}

impl spyglass_backup::progress::Progress for Bar {
    fn start(&self, phase: &str, total_bytes: u64) {
        if !self.enabled {
            return;
        }
        let pb = ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(phase.to_owned());
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(pb);
        }
    }
    fn advance(&self, bytes: u64, rows: u64) {
        if let Ok(b) = self.bar.lock() {
            if let Some(pb) = b.as_ref() {
                pb.inc(bytes);
                if rows > 0 {
                    let r = self
                        .rows
                        .fetch_add(rows, std::sync::atomic::Ordering::Relaxed)
                        + rows;
                    pb.set_message(format!("{r} rows"));
                }
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(pb) = b.take() {
                pb.finish_and_clear();
            }
        }
    }
    fn note(&self, message: &str) {
        eprintln!("note: {message}");
    }
}
