//! Logging: JSON lines on stdout (one per request, plus operational events), or a human-readable
//! format when stdout is a terminal. The filter comes from `REPRISE_LOG` (e.g. `debug`,
//! `reprise=debug,info`), default `info`.

use std::io::{IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// How long a line may wait in the buffer before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full is written at once.
const HIGH_WATER: usize = 64 * 1024;
/// Past this, callers wait for the writer (a stalled stdout slows requests, never loses lines).
const MAX_BUFFERED: usize = 8 * 1024 * 1024;

/// Installs the global subscriber. Keep the guard alive until exit: dropping it writes what is
/// buffered.
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_env("REPRISE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (lines, guard) = Lines::start();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(lines);
    if json {
        let _ = JSON_LINES.set(lines);
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.compact().init();
    }
    guard
}

/// The log's line buffer. Request handlers append whole lines to it under a lock; one writer
/// thread takes the buffer every [`FLUSH_EVERY`] (sooner past [`HIGH_WATER`]) and writes it to
/// stdout in one call. A busy gateway thus makes a few writes a second and no cross-thread
/// wake-up per line (a channel to a writer thread, as `tracing-appender` has, costs a wake-up,
/// a yield and often a write per request).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lines(&'static Shared);

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// The writer waits on it; signalled when the buffer stops being empty, fills or closes.
    wake: Condvar,
    /// Callers past [`MAX_BUFFERED`] wait on it; signalled when the writer takes the buffer.
    drained: Condvar,
}

#[derive(Debug, Default)]
struct State {
    buffer: Vec<u8>,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while appending leaves at worst a partial line; logging carries on.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Lines {
    /// The buffer and its writer thread, writing to stdout.
    fn start() -> (Lines, LogGuard) {
        Self::start_to(std::io::stdout())
    }

    /// The buffer (it lives for the whole process) and its writer thread, writing to `out`.
    fn start_to(mut out: impl Write + Send + 'static) -> (Lines, LogGuard) {
        let shared: &'static Shared = Box::leak(Box::default());
        let writer = std::thread::Builder::new()
            .name("reprise-log".to_owned())
            .spawn(move || write_out(shared, &mut out))
            .ok();
        // Without a writer thread nothing would empty the buffer: lines go straight through.
        shared.lock().closed = writer.is_none();
        (Lines(shared), LogGuard { shared, writer })
    }

    /// Appends one whole line (or several). Once the log is closed, writes straight through.
    fn push(self, bytes: &[u8]) {
        let mut state = self.0.lock();
        while state.buffer.len() >= MAX_BUFFERED && !state.closed {
            state = self
                .0
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            drop(state);
            let _ = std::io::stdout().lock().write_all(bytes);
            return;
        }
        let was_empty = state.buffer.is_empty();
        state.buffer.extend_from_slice(bytes);
        let full = state.buffer.len() >= HIGH_WATER;
        drop(state);
        if was_empty || full {
            self.0.wake.notify_one();
        }
    }
}

/// The writer thread: waits for a first line, lets a batch gather, writes it, until closed.
fn write_out(shared: &Shared, out: &mut impl Write) {
    let mut batch = Vec::new();
    let mut state = shared.lock();
    loop {
        while state.buffer.is_empty() && !state.closed {
            state = shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let deadline = Instant::now() + FLUSH_EVERY;
        while !state.closed && state.buffer.len() < HIGH_WATER {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = shared
                .wake
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        batch.clear();
        std::mem::swap(&mut batch, &mut state.buffer);
        let closed = state.closed;
        drop(state);
        shared.drained.notify_all();
        // Nowhere to report a failed write to stdout: the lines are dropped, the gateway runs on.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        if closed {
            return;
        }
        state = shared.lock();
    }
}

/// Writes what is buffered and stops the writer thread when dropped; later lines are written
/// straight through.
#[derive(Debug)]
pub struct LogGuard {
    shared: &'static Shared,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.shared.drained.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// What `tracing` writes one event through: the event's whole line in one `write_all`.
#[derive(Debug)]
pub(crate) struct LineWriter(Lines);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.push(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(*self)
    }
}

/// The JSON log writer, once [`init`] chose JSON: the request log serialises its line itself
/// (one `serde_json` pass, several times cheaper than a formatted `tracing` event) and hands it
/// to the same buffer, so lines never interleave.
static JSON_LINES: OnceLock<Lines> = OnceLock::new();

/// Writes one pre-serialised JSON log line, if logs are JSON. Returns false when they are not
/// (the caller then logs through `tracing`).
pub(crate) fn write_json_line(line: &[u8]) -> bool {
    match JSON_LINES.get() {
        Some(lines) => {
            lines.push(line);
            true
        }
        None => false,
    }
}

/// The current time as RFC 3339 with microseconds, like the `tracing` JSON lines.
pub(crate) fn timestamp() -> impl std::fmt::Display {
    humantime::format_rfc3339_micros(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, RwLock};

    use super::*;

    /// A writer that keeps what it is given; its writes wait while someone holds `gate` for
    /// writing.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        gate: Arc<RwLock<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.read().unwrap();
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_of(sink: &Sink) -> Vec<String> {
        let bytes = sink.bytes.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_order_and_none_is_lost() {
        let sink = Sink::default();
        let (lines, guard) = Lines::start_to(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        // Lines of varying length, past the high-water mark many times over.
                        let pad = "x".repeat(i % 97);
                        lines.push(
                            format!("{{\"t\":{t},\"i\":{i},\"pad\":\"{pad}\"}}\n").as_bytes(),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let out = lines_of(&sink);
        assert_eq!(out.len(), 20_000);
        let mut next = [0_u64; 4];
        for line in out {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let t = v["t"].as_u64().unwrap() as usize;
            assert_eq!(v["i"].as_u64().unwrap(), next[t], "thread {t} out of order");
            next[t] += 1;
        }
    }

    #[test]
    fn a_stalled_output_makes_callers_wait_and_loses_nothing() {
        let sink = Sink::default();
        let gate = Arc::clone(&sink.gate);
        let closed = gate.write().unwrap();
        let (lines, guard) = Lines::start_to(sink.clone());
        let line = format!("{}\n", "y".repeat(1023));
        // The writer takes at most one batch (at most the whole bound) before it is stuck.
        let count = 2 * MAX_BUFFERED / line.len() + 2_000;
        let pushing = {
            let line = line.clone();
            std::thread::spawn(move || {
                for _ in 0..count {
                    lines.push(line.as_bytes());
                }
            })
        };
        // The writer is stuck in its first write; the buffer fills to its bound and the caller
        // waits there instead of growing it or dropping lines.
        while lines.0.lock().buffer.len() + line.len() <= MAX_BUFFERED {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!pushing.is_finished());
        assert!(lines.0.lock().buffer.len() < MAX_BUFFERED + line.len());
        drop(closed);
        pushing.join().unwrap();
        drop(guard);
        let out = lines_of(&sink);
        assert_eq!(out.len(), count);
        assert!(out.iter().all(|l| l.len() == 1023));
    }
}
