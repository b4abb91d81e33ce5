//! The usage ledger's writer: requests append their rows to a buffer in memory (a push under a
//! mutex: no task is woken per request, which a channel would do); one task writes the buffer to
//! the store at least once a second, or as soon as it holds a full batch, in one transaction.
//!
//! The promise: a row is durable at most one second (plus one batch write) after its request
//! ended. A clean shutdown writes every row before the process exits; `kill -9` loses at most
//! the rows of the last second.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use reprise_storage::{LedgerRow, RequestRow, Store};
use tokio::sync::{Notify, oneshot};

/// How often buffered rows are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Rows that make the writer write before its tick.
const BATCH: usize = 2_000;

#[derive(Debug, Default)]
struct Buffer {
    rows: Vec<LedgerRow>,
    logs: Vec<RequestRow>,
    flushes: Vec<oneshot::Sender<()>>,
}

#[derive(Debug, Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    wake: Notify,
}

#[derive(Debug, Clone)]
pub struct Ledger {
    shared: Arc<Shared>,
}

impl Ledger {
    /// Starts the writer task on the current runtime; it stops once the ledger is dropped
    /// (after writing what was left).
    pub fn start(store: Store) -> Self {
        let shared = Arc::new(Shared::default());
        tokio::spawn(write_loop(store, Arc::downgrade(&shared)));
        Self { shared }
    }

    fn push(&self, f: impl FnOnce(&mut Buffer)) {
        let full = {
            let mut buffer = self.shared.buffer.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut buffer);
            buffer.rows.len() + buffer.logs.len() >= BATCH
        };
        if full {
            self.shared.wake.notify_one();
        }
    }

    /// Buffers a ledger row. Never drops it.
    pub fn record(&self, row: LedgerRow) {
        self.push(|b| b.rows.push(row));
    }

    /// Buffers a request-log row (the dashboard's recent requests and top misses).
    pub fn log(&self, row: RequestRow) {
        self.push(|b| b.logs.push(row));
    }

    /// Writes every row buffered so far; returns once they are durable.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        self.push(|b| b.flushes.push(done));
        self.shared.wake.notify_one();
        let _ = wait.await;
    }
}

async fn write_loop(store: Store, shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failed = Buffer::default();
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        tokio::select! {
            _ = tick.tick() => {}
            () = strong.wake.notified() => {}
        }
        let mut taken =
            std::mem::take(&mut *strong.buffer.lock().unwrap_or_else(|p| p.into_inner()));
        drop(strong);
        // Rows a failed write left behind go first.
        failed.rows.append(&mut taken.rows);
        failed.logs.append(&mut taken.logs);
        let (rows, logs) = (
            std::mem::take(&mut failed.rows),
            std::mem::take(&mut failed.logs),
        );
        if !rows.is_empty() || !logs.is_empty() {
            let store = store.clone();
            let written = tokio::task::spawn_blocking(move || {
                let result = store.append(&rows, &logs);
                (rows, logs, result)
            })
            .await;
            match written {
                Ok((_, _, Ok(()))) => {}
                Ok((rows, logs, Err(err))) => {
                    tracing::error!(error = %err, rows = rows.len(), "could not write the ledger; retrying with the next batch");
                    failed.rows = rows;
                    failed.logs = logs;
                }
                Err(err) => tracing::error!(error = %err, "the ledger write task failed"),
            }
        }
        for done in taken.flushes {
            let _ = done.send(());
        }
    }
}
