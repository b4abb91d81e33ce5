//! The usage ledger's writer: requests hand their rows to a bounded channel; one task writes
//! them to the store in batches, at least once a second, in one transaction per batch.
//!
//! The promise: a row is durable at most one second (plus one batch write) after its request
//! ended. A clean shutdown writes every row before the process exits; `kill -9` loses at most
//! the rows of the last second.

use std::time::Duration;

use reprise_storage::{LedgerRow, RequestRow, Store};
use tokio::sync::{mpsc, oneshot};

/// How often queued rows are written.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Most rows in one transaction.
const BATCH: usize = 2_000;
/// Rows queued at most; beyond it a request waits for room rather than drop its row.
const QUEUE: usize = 65_536;

enum Command {
    Row(Box<LedgerRow>),
    Log(Box<RequestRow>),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug, Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Row(_) => "Row",
            Command::Log(_) => "Log",
            Command::Flush(_) => "Flush",
        })
    }
}

impl Ledger {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Store) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(store, rx));
        Self { tx }
    }

    /// Queues a ledger row. Never drops it: when the queue is full, a task waits for room.
    pub fn record(&self, row: LedgerRow) {
        self.queue(Command::Row(Box::new(row)));
    }

    /// Queues a request-log row (the dashboard's recent requests and top misses).
    pub fn log(&self, row: RequestRow) {
        self.queue(Command::Log(Box::new(row)));
    }

    fn queue(&self, command: Command) {
        match self.tx.try_send(command) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(command)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(command).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::error!("the ledger writer has stopped; a usage row was not recorded");
            }
        }
    }

    /// Writes every row queued so far; returns once they are durable.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(store: Store, mut rx: mpsc::Receiver<Command>) {
    let mut batch: Vec<LedgerRow> = Vec::new();
    let mut logged: Vec<RequestRow> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut tick = tokio::time::interval(FLUSH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closed = tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Row(row)) => {
                    batch.push(*row);
                    if batch.len() + logged.len() < BATCH {
                        continue;
                    }
                    false
                }
                Some(Command::Log(row)) => {
                    logged.push(*row);
                    if batch.len() + logged.len() < BATCH {
                        continue;
                    }
                    false
                }
                Some(Command::Flush(done)) => {
                    // Everything queued before the flush is already in `batch`.
                    waiting.push(done);
                    false
                }
                None => true,
            },
            _ = tick.tick() => false,
        };
        if !batch.is_empty() || !logged.is_empty() {
            let rows = std::mem::take(&mut batch);
            let log = std::mem::take(&mut logged);
            let store = store.clone();
            let written = tokio::task::spawn_blocking(move || {
                let result = store.append(&rows, &log);
                (rows, log, result)
            })
            .await;
            match written {
                Ok((_, _, Ok(()))) => {}
                Ok((rows, log, Err(err))) => {
                    tracing::error!(error = %err, rows = rows.len(), "could not write the ledger; retrying with the next batch");
                    batch = rows;
                    logged = log;
                }
                Err(err) => tracing::error!(error = %err, "the ledger write task failed"),
            }
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if closed {
            return;
        }
    }
}
