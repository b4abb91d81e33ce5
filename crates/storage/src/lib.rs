//! Durable state behind small types: today the embedded SQLite store the gateway opens at start
//! (and reports through `/readyz`); cache entries, keys and ledgers join it as their issues land.
//!
//! It owns the database file, its schema and migrations. It knows nothing of HTTP or of the
//! request story. SQL here stays portable (no SQLite-only types in the schema) so the same schema
//! can run on PostgreSQL for multi-replica deployments.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

mod keys;
mod ledger;
mod secrets;

pub use keys::KeyRow;
pub use ledger::{LedgerRow, RequestRow, UsageRow};
pub use secrets::SealedSecret;

/// File name of the embedded database inside the data directory.
pub const DATABASE_FILE: &str = "reprise.db";

/// Ordered schema migrations; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    // 1: bookkeeping only; the features that need tables add the next versions.
    "CREATE TABLE IF NOT EXISTS reprise_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    // 2: cache entries. Keys are hex text (portable to PostgreSQL without BLOB/BYTEA
    // differences); times are Unix milliseconds.
    "CREATE TABLE cache_entries (
        exact_key TEXT PRIMARY KEY,
        scope_key TEXT NOT NULL,
        namespace TEXT NOT NULL,
        model TEXT NOT NULL,
        provider TEXT NOT NULL,
        completion TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        created_ms BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL,
        hits BIGINT NOT NULL DEFAULT 0
    );
    CREATE INDEX cache_entries_scope ON cache_entries (scope_key);
    CREATE INDEX cache_entries_expires ON cache_entries (expires_ms);",
    // 3: the final user message an entry answers, for the semantic index (rebuilt on start).
    "ALTER TABLE cache_entries ADD COLUMN prompt TEXT",
    // 4: virtual keys (only a SHA-256 of each key is kept) and the usage ledger. Money is in
    // nano-USD integers, so sums are exact.
    "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        label TEXT NOT NULL,
        prefix TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        team TEXT,
        rpm BIGINT,
        tpm BIGINT,
        daily_usd DOUBLE PRECISION,
        monthly_usd DOUBLE PRECISION,
        models TEXT,
        expires_ms BIGINT,
        created_ms BIGINT NOT NULL,
        last_used_ms BIGINT,
        revoked_ms BIGINT
    );
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        ts_ms BIGINT NOT NULL,
        request_id TEXT NOT NULL,
        key_id TEXT,
        team TEXT,
        model TEXT NOT NULL,
        target TEXT,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cached_tokens BIGINT NOT NULL,
        cost_nano_usd BIGINT,
        cache TEXT NOT NULL,
        saved_tokens BIGINT NOT NULL,
        saved_nano_usd BIGINT
    );
    CREATE INDEX ledger_ts ON ledger (ts_ms);
    CREATE INDEX ledger_key_ts ON ledger (key_id, ts_ms);",
    // 5: provider secrets stored through the CLI or admin API, sealed (XChaCha20-Poly1305,
    // hex text) with REPRISE_ENCRYPTION_KEY; the plaintext never reaches the database.
    "CREATE TABLE provider_secrets (
        name TEXT PRIMARY KEY,
        nonce TEXT NOT NULL,
        sealed TEXT NOT NULL,
        created_ms BIGINT NOT NULL
    );",
    // 6: the request log the dashboard reads (recent requests, top misses); kept for
    // `log_retention_days`. `prompt` only when the operator turned prompt logging on.
    "CREATE TABLE request_log (
        id INTEGER PRIMARY KEY,
        ts_ms BIGINT NOT NULL,
        request_id TEXT NOT NULL,
        route TEXT NOT NULL,
        model TEXT,
        key_label TEXT,
        target TEXT,
        status INTEGER NOT NULL,
        cache TEXT NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_nano_usd BIGINT,
        prompt TEXT
    );
    CREATE INDEX request_log_ts ON request_log (ts_ms);",
    // 7: the ledger's older days summed by UTC day, key, team and model (see
    // `Store::roll_up_ledger`); no key or no team is ''.
    "CREATE TABLE ledger_daily (
        day TEXT NOT NULL,
        key_id TEXT NOT NULL,
        team TEXT NOT NULL,
        model TEXT NOT NULL,
        requests BIGINT NOT NULL,
        cache_hits BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        cost_nano_usd BIGINT NOT NULL,
        unpriced_requests BIGINT NOT NULL,
        saved_tokens BIGINT NOT NULL,
        saved_nano_usd BIGINT NOT NULL,
        PRIMARY KEY (day, key_id, team, model)
    );",
];

/// A cache entry as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRow {
    pub exact_key: String,
    pub scope_key: String,
    pub namespace: String,
    pub model: String,
    pub provider: String,
    /// The stored `chat.completion`, JSON text.
    pub completion: String,
    pub bytes: i64,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub hits: i64,
    /// The final user message, when the semantic tier may use the entry.
    pub prompt: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database lock was poisoned by a panic")]
    Poisoned,
    #[error("the database schema is version {found}, newer than this build knows ({known})")]
    TooNew { found: i64, known: i64 },
}

/// The embedded store: one SQLite database in the data directory.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) conn: Arc<Mutex<Connection>>,
    /// A second connection, only to ask whether another connection (another process: the CLI)
    /// changed the database (`PRAGMA data_version`).
    watch: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the data directory and its database, and migrates the schema.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&conn)?;
        let watch = Connection::open(&path)?;
        watch.busy_timeout(std::time::Duration::from_secs(5))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            watch: Arc::new(Mutex::new(watch)),
            path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version in force.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
    }

    /// Runs `f`'s writes of cache entries as one transaction: all durable once this returns (a
    /// crash after it cannot lose them), none of them if it fails or a crash comes first (the
    /// store is never left with part of an entry). Blocking.
    pub fn write_cache<T>(
        &self,
        f: impl FnOnce(&mut CacheWrites<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let tx = conn.transaction()?;
        let done = {
            let mut writes = CacheWrites {
                put: tx.prepare_cached(PUT_CACHE_ENTRY)?,
                delete: tx.prepare_cached("DELETE FROM cache_entries WHERE exact_key = ?1")?,
            };
            f(&mut writes)?
        };
        tx.commit()?;
        Ok(done)
    }

    /// Writes (or replaces) a cache entry (see [`Store::write_cache`]). Blocking.
    pub fn put_cache_entry(&self, row: &CacheRow) -> Result<(), StoreError> {
        self.write_cache(|w| w.put(row))
    }

    /// Deletes cache entries by exact key, in one transaction; returns how many there were.
    /// Blocking.
    pub fn delete_cache_entries(&self, keys: &[String]) -> Result<usize, StoreError> {
        self.write_cache(|w| {
            let mut deleted = 0;
            for key in keys {
                deleted += usize::from(w.delete(key)?);
            }
            Ok(deleted)
        })
    }

    /// Every cache entry not expired at `now_ms`, oldest first; expired ones are deleted.
    /// Blocking.
    pub fn load_cache_entries(&self, now_ms: i64) -> Result<Vec<CacheRow>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        conn.execute("DELETE FROM cache_entries WHERE expires_ms <= ?1", [now_ms])?;
        let mut stmt = conn.prepare(
            "SELECT exact_key, scope_key, namespace, model, provider, completion, bytes,
                    created_ms, expires_ms, hits, prompt
             FROM cache_entries ORDER BY created_ms",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CacheRow {
                exact_key: r.get(0)?,
                scope_key: r.get(1)?,
                namespace: r.get(2)?,
                model: r.get(3)?,
                provider: r.get(4)?,
                completion: r.get(5)?,
                bytes: r.get(6)?,
                created_ms: r.get(7)?,
                expires_ms: r.get(8)?,
                hits: r.get(9)?,
                prompt: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// A round trip to the database: proves it is open and answering. Blocking; call from a
    /// blocking context.
    /// A number that changes whenever a connection other than the watcher (this process's
    /// writer, or another process) commits. Cheap: no disk read.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        let conn = self.watch.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.pragma_query_value(None, "data_version", |row| row.get(0))?)
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?;
        Ok(())
    }
}

const PUT_CACHE_ENTRY: &str = "INSERT INTO cache_entries
        (exact_key, scope_key, namespace, model, provider, completion, bytes, created_ms, expires_ms, hits, prompt)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
     ON CONFLICT (exact_key) DO UPDATE SET
        scope_key = excluded.scope_key, namespace = excluded.namespace,
        model = excluded.model, provider = excluded.provider,
        completion = excluded.completion, bytes = excluded.bytes,
        created_ms = excluded.created_ms, expires_ms = excluded.expires_ms,
        hits = excluded.hits, prompt = excluded.prompt";

/// Writes of cache entries inside one transaction (see [`Store::write_cache`]).
pub struct CacheWrites<'t> {
    put: rusqlite::CachedStatement<'t>,
    delete: rusqlite::CachedStatement<'t>,
}

impl CacheWrites<'_> {
    /// Writes (or replaces) a cache entry.
    pub fn put(&mut self, row: &CacheRow) -> Result<(), StoreError> {
        self.put.execute(rusqlite::params![
            row.exact_key,
            row.scope_key,
            row.namespace,
            row.model,
            row.provider,
            row.completion,
            row.bytes,
            row.created_ms,
            row.expires_ms,
            row.hits,
            row.prompt
        ])?;
        Ok(())
    }

    /// Deletes the cache entry stored under `exact_key`; whether there was one.
    pub fn delete(&mut self, exact_key: &str) -> Result<bool, StoreError> {
        Ok(self.delete.execute([exact_key])? > 0)
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let known = MIGRATIONS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_creates_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let store = Store::open(&nested).unwrap();
        store.ping().unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert!(nested.join(DATABASE_FILE).exists());
        drop(store);
        // Reopening an up-to-date database is a no-op.
        let again = Store::open(&nested).unwrap();
        assert_eq!(again.schema_version().unwrap(), MIGRATIONS.len() as i64);
    }

    fn row(key: &str, expires_ms: i64) -> CacheRow {
        CacheRow {
            exact_key: key.into(),
            scope_key: "s".into(),
            namespace: "".into(),
            model: "m".into(),
            provider: "openai".into(),
            completion: "{}".into(),
            bytes: 2,
            created_ms: 1,
            expires_ms,
            hits: 0,
            prompt: Some("q".into()),
        }
    }

    #[test]
    fn cache_entries_round_trip_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_cache_entry(&row("a", 100)).unwrap();
        store.put_cache_entry(&row("b", 1_000)).unwrap();
        let mut replaced = row("b", 2_000);
        replaced.completion = "{\"x\":1}".into();
        store.put_cache_entry(&replaced).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let rows = store.load_cache_entries(500).unwrap();
        assert_eq!(rows, vec![replaced]);
        assert_eq!(
            store.load_cache_entries(0).unwrap().len(),
            1,
            "expired rows were deleted"
        );
        assert_eq!(
            store
                .delete_cache_entries(&["b".into(), "zz".into()])
                .unwrap(),
            1
        );
        assert!(store.load_cache_entries(0).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_database_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DATABASE_FILE),
            b"this is not a database at all, no",
        )
        .unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Sqlite(_)), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join(DATABASE_FILE)).unwrap(),
            b"this is not a database at all, no",
            "left as it was"
        );
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
            conn.pragma_update(None, "user_version", 999).unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found: 999, .. }),
            "{err}"
        );
    }

    #[test]
    fn reports_an_uncreatable_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let err = Store::open(&file.join("sub")).unwrap_err();
        assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    }
}
