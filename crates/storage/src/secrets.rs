//! Provider secrets, stored sealed: the store never sees a plaintext key.

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    /// Hex.
    pub nonce: String,
    /// Hex: ciphertext and tag.
    pub sealed: String,
    pub created_ms: i64,
}

impl Store {
    pub fn put_secret(&self, secret: &SealedSecret) -> Result<(), StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        conn.execute(
            "INSERT INTO provider_secrets (name, nonce, sealed, created_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, sealed = excluded.sealed,
                created_ms = excluded.created_ms",
            rusqlite::params![secret.name, secret.nonce, secret.sealed, secret.created_ms],
        )?;
        Ok(())
    }

    pub fn secret(&self, name: &str) -> Result<Option<SealedSecret>, StoreError> {
        Ok(self.secrets()?.into_iter().find(|s| s.name == name))
    }

    pub fn secrets(&self) -> Result<Vec<SealedSecret>, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        let mut stmt = conn.prepare(
            "SELECT name, nonce, sealed, created_ms FROM provider_secrets ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(SealedSecret {
                name: r.get(0)?,
                nonce: r.get(1)?,
                sealed: r.get(2)?,
                created_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// `false` when no secret has that name.
    pub fn delete_secret(&self, name: &str) -> Result<bool, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        Ok(conn.execute("DELETE FROM provider_secrets WHERE name = ?1", [name])? > 0)
    }
}
