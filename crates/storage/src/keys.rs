//! Virtual keys: only the SHA-256 of each key is stored, never the key.

use crate::{Store, StoreError};

/// A virtual key as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub id: String,
    pub label: String,
    /// The key's first characters, shown in lists so a user can tell keys apart.
    pub prefix: String,
    /// Lowercase hex SHA-256 of the whole key.
    pub hash: String,
    pub team: Option<String>,
    pub rpm: Option<i64>,
    pub tpm: Option<i64>,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    /// Comma-separated model patterns; `None` allows every model.
    pub models: Option<String>,
    pub expires_ms: Option<i64>,
    pub created_ms: i64,
    pub last_used_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

impl Store {
    pub fn insert_key(&self, key: &KeyRow) -> Result<(), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        conn.execute(
            "INSERT INTO api_keys (id, label, prefix, hash, team, rpm, tpm, daily_usd, monthly_usd,
                models, expires_ms, created_ms, last_used_ms, revoked_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            rusqlite::params![
                key.id,
                key.label,
                key.prefix,
                key.hash,
                key.team,
                key.rpm,
                key.tpm,
                key.daily_usd,
                key.monthly_usd,
                key.models,
                key.expires_ms,
                key.created_ms,
                key.last_used_ms,
                key.revoked_ms
            ],
        )?;
        Ok(())
    }

    /// Every key, revoked ones included, oldest first.
    pub fn keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = conn.prepare(
            "SELECT id, label, prefix, hash, team, rpm, tpm, daily_usd, monthly_usd, models,
                expires_ms, created_ms, last_used_ms, revoked_ms
             FROM api_keys ORDER BY created_ms, id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(KeyRow {
                id: r.get(0)?,
                label: r.get(1)?,
                prefix: r.get(2)?,
                hash: r.get(3)?,
                team: r.get(4)?,
                rpm: r.get(5)?,
                tpm: r.get(6)?,
                daily_usd: r.get(7)?,
                monthly_usd: r.get(8)?,
                models: r.get(9)?,
                expires_ms: r.get(10)?,
                created_ms: r.get(11)?,
                last_used_ms: r.get(12)?,
                revoked_ms: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Marks a key revoked; `false` when no unrevoked key has that id.
    pub fn revoke_key(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let changed = conn.execute(
            "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
            rusqlite::params![id, now_ms],
        )?;
        Ok(changed > 0)
    }
}
