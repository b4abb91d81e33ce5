//! Logging: JSON lines on stdout (one per request, plus operational events), or a human-readable
//! format when stdout is a terminal. The filter comes from `REPRISE_LOG` (e.g. `debug`,
//! `reprise=debug,info`), default `info`.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Keep the guard alive until exit: dropping it flushes.
pub fn init(format: LogFormat) -> WorkerGuard {
    let filter = EnvFilter::try_from_env("REPRISE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Lines go through a writer thread so a slow stdout never stalls request handling; it is
    // not lossy: under pressure callers wait rather than lines being dropped.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        // Buffered: the writer thread drains every queued line, then flushes once, so a busy
        // gateway makes one write per batch rather than one per line.
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stdout(),
        ));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer.clone());
    if json {
        let _ = JSON_LINES.set(writer.clone());
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

/// The JSON log writer, once [`init`] chose JSON: the request log serialises its line itself
/// (one `serde_json` pass, several times cheaper than a formatted `tracing` event) and hands it
/// to the same writer, so lines never interleave.
static JSON_LINES: OnceLock<NonBlocking> = OnceLock::new();

/// Writes one pre-serialised JSON log line, if logs are JSON. Returns false when they are not
/// (the caller then logs through `tracing`).
pub(crate) fn write_json_line(line: &[u8]) -> bool {
    match JSON_LINES.get() {
        Some(writer) => {
            let mut writer = writer.clone();
            let _ = writer.write_all(line);
            true
        }
        None => false,
    }
}

/// The current time as RFC 3339 with microseconds, like the `tracing` JSON lines.
pub(crate) fn timestamp() -> impl std::fmt::Display {
    humantime::format_rfc3339_micros(std::time::SystemTime::now())
}
