//! Durable state behind small types: today the embedded SQLite store the gateway opens at start
//! (and reports through `/readyz`); cache entries, keys and ledgers join it as their issues land.
//!
//! It owns the database file, its schema and migrations. It knows nothing of HTTP or of the
//! request story. SQL here stays portable (no SQLite-only types in the schema) so the same schema
//! can run on PostgreSQL for multi-replica deployments.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// File name of the embedded database inside the data directory.
pub const DATABASE_FILE: &str = "reprise.db";

/// Ordered schema migrations; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[
    // 1: bookkeeping only; the features that need tables add the next versions.
    "CREATE TABLE IF NOT EXISTS reprise_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
];

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
    conn: Arc<Mutex<Connection>>,
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
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
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

    /// A round trip to the database: proves it is open and answering. Blocking; call from a
    /// blocking context.
    pub fn ping(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?;
        Ok(())
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
