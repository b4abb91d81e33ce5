use std::fmt;

/// A credential. Its `Debug` and `Display` print a redaction, so a secret that ends up in a
/// log line, an error message or a panic shows nothing; reading it takes [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("sk-live-abcdef");
        assert!(!format!("{s:?} {s} {:?}", Some(&s)).contains("abcdef"));
        assert_eq!(s.expose(), "sk-live-abcdef");
    }
}
