//! Provider secrets stored through the CLI or the admin API: sealed with XChaCha20-Poly1305
//! under `REPRISE_ENCRYPTION_KEY` (32 bytes, 64 hex digits), a fresh random nonce per secret and
//! the secret's name as associated data (a sealed value moved to another name does not open).
//! Targets name them with `api_key_secret`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use reprise_providers::Secret;
use reprise_storage::{SealedSecret, Store};

use crate::auth::{decode_hex, encode_hex};

pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// From the `REPRISE_ENCRYPTION_KEY` value.
    pub fn new(key: &Secret) -> anyhow::Result<Self> {
        let mut bytes = [0u8; 32];
        decode_hex(key.expose().trim(), &mut bytes).ok_or_else(|| {
            anyhow::anyhow!(
                "REPRISE_ENCRYPTION_KEY must be 32 bytes written as 64 hex digits \
                 (for example: openssl rand -hex 32)"
            )
        })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| anyhow::anyhow!("REPRISE_ENCRYPTION_KEY has the wrong length"))?;
        Ok(Self { cipher })
    }

    pub fn seal(&self, name: &str, value: &str, now_ms: i64) -> anyhow::Result<SealedSecret> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("could not seal the secret"))?;
        Ok(SealedSecret {
            name: name.to_owned(),
            nonce: encode_hex(&nonce),
            sealed: encode_hex(&sealed),
            created_ms: now_ms,
        })
    }

    pub fn open(&self, secret: &SealedSecret) -> anyhow::Result<Secret> {
        let fail = || {
            anyhow::anyhow!(
                "the stored secret {:?} does not open with this REPRISE_ENCRYPTION_KEY (another \
                 key sealed it, or it was altered)",
                secret.name
            )
        };
        let mut nonce = [0u8; 24];
        decode_hex(&secret.nonce, &mut nonce).ok_or_else(fail)?;
        let mut sealed = vec![0u8; secret.sealed.len() / 2];
        decode_hex(&secret.sealed, &mut sealed).ok_or_else(fail)?;
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: secret.name.as_bytes(),
                },
            )
            .map_err(|_| fail())?;
        Ok(Secret::new(String::from_utf8(plain).map_err(|_| fail())?))
    }
}

/// Stores `value` under `name`, sealed.
pub fn put(
    store: &Store,
    key: Option<&Secret>,
    name: &str,
    value: &str,
    now_ms: i64,
) -> anyhow::Result<()> {
    let key = key.ok_or_else(|| anyhow::anyhow!("storing a provider secret needs REPRISE_ENCRYPTION_KEY (64 hex digits, e.g. openssl rand -hex 32)"))?;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        anyhow::bail!("a secret name is ASCII letters, digits, '-', '_' or '.'");
    }
    if value.is_empty() {
        anyhow::bail!("the secret is empty");
    }
    store.put_secret(&Sealer::new(key)?.seal(name, value, now_ms)?)?;
    Ok(())
}

/// The stored secret `name`, opened.
pub fn get(store: &Store, key: Option<&Secret>, name: &str) -> anyhow::Result<Secret> {
    let key = key.ok_or_else(|| {
        anyhow::anyhow!("the stored secret {name:?} needs REPRISE_ENCRYPTION_KEY to be opened")
    })?;
    let sealed = store.secret(name)?.ok_or_else(|| {
        anyhow::anyhow!("no stored secret is named {name:?} (reprise secret set {name})")
    })?;
    Sealer::new(key)?.open(&sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_name() {
        let sealer = Sealer::new(&Secret::new(KEY)).unwrap();
        let sealed = sealer.seal("openai", "sk-live-123", 1).unwrap();
        assert!(!sealed.sealed.contains(&encode_hex(b"sk-live-123")));
        assert_eq!(sealer.open(&sealed).unwrap().expose(), "sk-live-123");
        let again = sealer.seal("openai", "sk-live-123", 1).unwrap();
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce each time");
        let moved = SealedSecret {
            name: "other".into(),
            ..sealed.clone()
        };
        assert!(sealer.open(&moved).is_err(), "bound to its name");
        let other = Sealer::new(&Secret::new(KEY.replace('0', "f"))).unwrap();
        assert!(other.open(&sealed).is_err());
        assert!(Sealer::new(&Secret::new("short")).is_err());
    }
}
