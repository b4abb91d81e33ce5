//! Who is calling. Virtual keys (`rp-` and 64 hex digits: 256 random bits) are checked against
//! the SHA-256 the store keeps (never the key); a key is found by its first characters and its
//! hash compared in constant time. In pass-through mode the client's own provider key is
//! forwarded upstream, never stored, and its SHA-256 names the cache namespace.
//!
//! The key ring is reloaded when another process (the `reprise key` CLI) changes the store, so a
//! revocation takes effect on the next request.

use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use reprise_providers::Secret;
use reprise_storage::{KeyRow, Store};

use crate::GatewayError;
use crate::routing::matches_pattern;

/// Characters of a key shown in lists (`rp-` and 8 hex digits) and used to find it.
pub const PREFIX_LEN: usize = 11;

/// A virtual key, as the gateway holds it.
#[derive(Debug)]
pub struct Key {
    pub id: String,
    pub label: String,
    pub prefix: String,
    hash: [u8; 32],
    pub team: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    /// Model patterns the key may use; empty: every model.
    pub models: Vec<String>,
    pub expires_ms: Option<i64>,
    pub revoked: bool,
}

impl Key {
    fn from_row(row: &KeyRow) -> Option<Self> {
        let mut hash = [0u8; 32];
        decode_hex(&row.hash, &mut hash)?;
        Some(Self {
            id: row.id.clone(),
            label: row.label.clone(),
            prefix: row.prefix.clone(),
            hash,
            team: row.team.clone(),
            rpm: row.rpm.and_then(|n| u64::try_from(n).ok()),
            tpm: row.tpm.and_then(|n| u64::try_from(n).ok()),
            daily_usd: row.daily_usd,
            monthly_usd: row.monthly_usd,
            models: row
                .models
                .as_deref()
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            expires_ms: row.expires_ms,
            revoked: row.revoked_ms.is_some(),
        })
    }

    /// The cache namespace of the key's requests: its team's, shared by the team's keys.
    pub fn namespace(&self) -> String {
        match &self.team {
            Some(team) => format!("team:{team}"),
            None => format!("key:{}", self.id),
        }
    }

    #[cfg(test)]
    pub fn for_tests(id: &str, rpm: Option<u64>, tpm: Option<u64>) -> Self {
        Self {
            id: id.to_owned(),
            label: id.to_owned(),
            prefix: String::new(),
            hash: [0; 32],
            team: None,
            rpm,
            tpm,
            daily_usd: None,
            monthly_usd: None,
            models: Vec::new(),
            expires_ms: None,
            revoked: false,
        }
    }

    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| matches_pattern(p, model))
    }
}

/// Who made a request.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub key: Option<Arc<Key>>,
    /// Pass-through mode: the client's provider key, sent upstream instead of the target's.
    pub upstream_key: Option<Secret>,
    /// The cache namespace the caller's entries live in.
    pub namespace: Option<String>,
}

#[derive(Debug)]
struct Ring {
    version: i64,
    keys: Vec<Arc<Key>>,
}

/// The virtual keys, kept in step with the store.
#[derive(Debug)]
pub struct KeyRing {
    store: Store,
    ring: RwLock<Ring>,
    /// When the store was last asked for changes, while no key exists (milliseconds since start).
    last_empty_check: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
}

/// While no key exists, the store is asked for a first key at most this often (with keys,
/// on every request, so a revocation takes effect at once).
const EMPTY_CHECK_MS: u64 = 200;

impl KeyRing {
    /// Loads every key. Blocking.
    pub fn load(store: Store) -> anyhow::Result<Self> {
        let version = store.data_version()?;
        let keys = load_keys(&store)?;
        Ok(Self {
            store,
            ring: RwLock::new(Ring { version, keys }),
            last_empty_check: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
        })
    }

    /// [`KeyRing::refresh`], throttled while the ring is empty (the open, keyless hot path).
    pub fn refresh_for_request(&self) {
        if !self.any() {
            use std::sync::atomic::Ordering;
            let now = self.started.elapsed().as_millis() as u64;
            let last = self.last_empty_check.load(Ordering::Relaxed);
            if now.saturating_sub(last) < EMPTY_CHECK_MS && last != 0 {
                return;
            }
            self.last_empty_check.store(now.max(1), Ordering::Relaxed);
        }
        self.refresh();
    }

    /// Reloads the keys if the store changed since the last look (another process created or
    /// revoked one). A failed look keeps the keys in hand.
    pub fn refresh(&self) {
        let Ok(version) = self.store.data_version() else {
            return;
        };
        let current = self.ring.read().map(|r| r.version).unwrap_or(version);
        if current == version {
            return;
        }
        match load_keys(&self.store) {
            Ok(keys) => {
                if let Ok(mut ring) = self.ring.write() {
                    *ring = Ring { version, keys };
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not reload the virtual keys"),
        }
    }

    /// Whether any key exists (revoked ones included: a gateway that had keys stays closed).
    pub fn any(&self) -> bool {
        self.ring.read().map(|r| !r.keys.is_empty()).unwrap_or(true)
    }

    pub fn all(&self) -> Vec<Arc<Key>> {
        self.ring.read().map(|r| r.keys.clone()).unwrap_or_default()
    }

    /// The key a bearer token names, if it is valid now.
    pub fn authenticate(&self, token: &str, now_ms: i64) -> Result<Arc<Key>, GatewayError> {
        self.refresh();
        let hash = hash_key(token);
        let prefix = token.get(..PREFIX_LEN).unwrap_or(token);
        let found = self.ring.read().ok().and_then(|ring| {
            ring.keys
                .iter()
                .filter(|k| k.prefix == prefix)
                .find(|k| bool::from(k.hash.ct_eq(&hash)))
                .cloned()
        });
        let key = found.ok_or(GatewayError::Unauthenticated {
            code: "invalid_api_key",
            message: "Incorrect API key provided. Use a Reprise virtual key (rp-...) as the \
                      bearer token.",
        })?;
        if key.revoked {
            return Err(GatewayError::Unauthenticated {
                code: "key_revoked",
                message: "This API key has been revoked.",
            });
        }
        if key.expires_ms.is_some_and(|at| now_ms >= at) {
            return Err(GatewayError::Unauthenticated {
                code: "key_expired",
                message: "This API key has expired.",
            });
        }
        Ok(key)
    }

    /// Creates a key; returns the key itself (shown once) and its row.
    pub fn create(&self, new: NewKey, now_ms: i64) -> anyhow::Result<(String, KeyRow)> {
        let (key, row) = new.into_row(now_ms)?;
        self.store.insert_key(&row)?;
        self.reload()?;
        Ok((key, row))
    }

    pub fn revoke(&self, id: &str, now_ms: i64) -> anyhow::Result<bool> {
        let revoked = self.store.revoke_key(id, now_ms)?;
        self.reload()?;
        Ok(revoked)
    }

    fn reload(&self) -> anyhow::Result<()> {
        let version = self.store.data_version()?;
        let keys = load_keys(&self.store)?;
        if let Ok(mut ring) = self.ring.write() {
            *ring = Ring { version, keys };
        }
        Ok(())
    }
}

fn load_keys(store: &Store) -> anyhow::Result<Vec<Arc<Key>>> {
    Ok(store
        .keys()?
        .iter()
        .filter_map(Key::from_row)
        .map(Arc::new)
        .collect())
}

/// What `reprise key create` and `POST /admin/keys` ask for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub label: String,
    pub team: Option<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
    #[serde(default)]
    pub models: Vec<String>,
    /// Unix milliseconds.
    pub expires_ms: Option<i64>,
}

impl NewKey {
    fn into_row(self, now_ms: i64) -> anyhow::Result<(String, KeyRow)> {
        if self.label.trim().is_empty() {
            anyhow::bail!("a key needs a label");
        }
        for (name, value) in [
            ("daily-usd", self.daily_usd),
            ("monthly-usd", self.monthly_usd),
        ] {
            if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                anyhow::bail!("--{name} must be an amount in USD, 0 or more");
            }
        }
        if self.rpm == Some(0) || self.tpm == Some(0) {
            anyhow::bail!("a rate limit must be at least 1");
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let key = format!("rp-{}", encode_hex(&secret));
        let mut id_bytes = [0u8; 6];
        getrandom::fill(&mut id_bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let to_i64 = |v: Option<u64>| v.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let row = KeyRow {
            id: format!("key_{}", encode_hex(&id_bytes)),
            label: self.label,
            prefix: key[..PREFIX_LEN].to_owned(),
            hash: encode_hex(&hash_key(&key)),
            team: self.team.filter(|t| !t.trim().is_empty()),
            rpm: to_i64(self.rpm),
            tpm: to_i64(self.tpm),
            daily_usd: self.daily_usd,
            monthly_usd: self.monthly_usd,
            models: (!self.models.is_empty()).then(|| self.models.join(",")),
            expires_ms: self.expires_ms,
            created_ms: now_ms,
            last_used_ms: None,
            revoked_ms: None,
        };
        Ok((key, row))
    }
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The cache namespace of a pass-through caller: a digest of their provider key.
pub fn passthrough_namespace(key: &str) -> String {
    format!("byok:{}", &encode_hex(&hash_key(key))[..32])
}

pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(())
}

/// Who is calling, from the request's headers, under the configured mode.
pub fn identify(
    state: &crate::AppState,
    headers: &http::HeaderMap,
) -> Result<Caller, GatewayError> {
    const MISSING: GatewayError = GatewayError::Unauthenticated {
        code: "missing_api_key",
        message: "You didn't provide an API key. Send it as a bearer token (the OpenAI SDKs' \
                  api_key).",
    };
    match state.config().auth {
        crate::config::AuthMode::Passthrough => {
            let token = bearer(headers).ok_or(MISSING)?;
            let namespace = (!state.config().passthrough_shared_cache)
                .then(|| passthrough_namespace(token))
                .or_else(|| Some("byok".to_owned()));
            Ok(Caller {
                key: None,
                upstream_key: Some(Secret::new(token)),
                namespace,
            })
        }
        crate::config::AuthMode::Keys => {
            state.keys().refresh_for_request();
            if !state.keys().any() {
                return Ok(Caller::default());
            }
            let token = bearer(headers).ok_or(MISSING)?;
            let key = state.keys().authenticate(token, crate::state::unix_ms())?;
            Ok(Caller {
                namespace: Some(key.namespace()),
                key: Some(key),
                upstream_key: None,
            })
        }
    }
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (tempfile::TempDir, KeyRing) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, KeyRing::load(store).unwrap())
    }

    #[test]
    fn keys_are_random_hashed_and_checked() {
        let (_dir, ring) = ring();
        assert!(!ring.any());
        let new = NewKey {
            label: "ci".into(),
            models: vec!["gpt-*".into()],
            ..NewKey::default()
        };
        let (key, row) = ring.create(new.clone(), 1_000).unwrap();
        let (other, _) = ring.create(new, 1_000).unwrap();
        assert_ne!(key, other);
        assert!(key.starts_with("rp-") && key.len() == 67, "{key}");
        assert_ne!(row.hash, key, "only the hash is stored");
        assert!(!row.hash.contains(&key[3..]));
        let found = ring.authenticate(&key, 2_000).unwrap();
        assert_eq!(found.id, row.id);
        assert!(found.allows_model("gpt-4o") && !found.allows_model("claude-3"));
        // Same prefix, another key: refused.
        let forged = format!(
            "{}{}",
            &key[..PREFIX_LEN],
            "0".repeat(key.len() - PREFIX_LEN)
        );
        assert!(matches!(
            ring.authenticate(&forged, 2_000),
            Err(GatewayError::Unauthenticated {
                code: "invalid_api_key",
                ..
            })
        ));
        assert!(ring.revoke(&row.id, 3_000).unwrap());
        assert!(matches!(
            ring.authenticate(&key, 4_000),
            Err(GatewayError::Unauthenticated {
                code: "key_revoked",
                ..
            })
        ));
    }

    #[test]
    fn expired_keys_are_refused() {
        let (_dir, ring) = ring();
        let new = NewKey {
            label: "temp".into(),
            expires_ms: Some(5_000),
            ..NewKey::default()
        };
        let (key, _) = ring.create(new, 1_000).unwrap();
        assert!(ring.authenticate(&key, 4_999).is_ok());
        assert!(matches!(
            ring.authenticate(&key, 5_000),
            Err(GatewayError::Unauthenticated {
                code: "key_expired",
                ..
            })
        ));
    }

    #[test]
    fn a_key_created_by_another_process_is_seen_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::load(Store::open(dir.path()).unwrap()).unwrap();
        // The CLI: another connection to the same database.
        let cli = KeyRing::load(Store::open(dir.path()).unwrap()).unwrap();
        let (key, row) = cli
            .create(
                NewKey {
                    label: "x".into(),
                    ..NewKey::default()
                },
                1,
            )
            .unwrap();
        assert!(ring.authenticate(&key, 2).is_ok());
        cli.revoke(&row.id, 3).unwrap();
        assert!(ring.authenticate(&key, 4).is_err());
    }

    #[test]
    fn bearer_tokens() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert("authorization", "Bearer rp-abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("rp-abc"));
        h.insert("authorization", "basic xyz".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
