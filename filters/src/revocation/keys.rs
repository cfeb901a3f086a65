//! Key names: prefixes from [`KeyScheme`], ids made safe by [`key_component`].

use std::borrow::Cow;

use aws_lc_rs::digest;

use super::{KeyScheme, StoreError};

/// Longest id used verbatim in a key (128 bytes); longer ids are hashed. Changing it changes
/// the keys of ids between the old and the new length, so external writers must change too.
pub const MAX_VERBATIM_ID_BYTES: usize = 128;

/// What replaces an id that cannot be used verbatim: `sha256:` + 64 lowercase hex digits.
pub const HASHED_ID_PREFIX: &str = "sha256:";

/// Longest accepted key prefix (64 bytes).
const MAX_PREFIX_BYTES: usize = 64;

/// The bytes that may appear in a verbatim id: `A-Za-z0-9-._~:@+/=`.
const PLAIN: [bool; 256] = crate::alphanumeric_and(b"-._~:@+/=");

fn is_plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// The key component for one id (`jti`, family, `iss`, `sub`), by the rule of the module
/// docs: verbatim when it is 1..=128 bytes of `A-Za-z0-9-._~:@+/=`, otherwise `sha256:` and
/// the lowercase hex SHA-256 of its bytes. The result is at most 128 bytes.
pub fn key_component(id: &str) -> Cow<'_, str> {
    let bytes = id.as_bytes();
    if !bytes.is_empty()
        && bytes.len() <= MAX_VERBATIM_ID_BYTES
        && bytes.iter().all(|b| is_plain(*b))
    {
        return Cow::Borrowed(id);
    }
    let hash = digest::digest(&digest::SHA256, bytes);
    let mut out = String::with_capacity(HASHED_ID_PREFIX.len() + 64);
    out.push_str(HASHED_ID_PREFIX);
    push_hex(&mut out, hash.as_ref());
    Cow::Owned(out)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

fn join(prefix: &str, parts: &[&str]) -> String {
    let mut key =
        String::with_capacity(prefix.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    key.push_str(prefix);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(':');
        }
        key.push_str(&key_component(part));
    }
    key
}

impl KeyScheme {
    /// The key of a revoked token: `<token_prefix><jti>` (default `revoked:<jti>`), the id
    /// made safe by [`key_component`].
    pub fn token_key(&self, jti: &str) -> String {
        join(&self.token_prefix, &[jti])
    }

    /// The key of a revoked family: `<family_prefix><fid>` (default `family:<fid>`).
    pub fn family_key(&self, family: &str) -> String {
        join(&self.family_prefix, &[family])
    }

    /// The key of a subject revocation: `<subject_prefix><iss>:<sub>` (default
    /// `revoked_before:<iss>:<sub>`), each id made safe on its own.
    pub fn subject_key(&self, issuer: &str, subject: &str) -> String {
        join(&self.subject_prefix, &[issuer, subject])
    }

    /// The key of a one-time id: `<once_prefix><id>` (default `dpop_jti:<id>`).
    pub fn once_key(&self, id: &str) -> String {
        join(&self.once_prefix, &[id])
    }

    /// Checks the prefixes: each 1..=64 bytes of printable ASCII without spaces, and none a
    /// prefix of another (otherwise a token key could equal a family key).
    pub fn validate(&self) -> Result<(), StoreError> {
        let prefixes = [
            ("token_prefix", self.token_prefix.as_str()),
            ("family_prefix", self.family_prefix.as_str()),
            ("subject_prefix", self.subject_prefix.as_str()),
            ("once_prefix", self.once_prefix.as_str()),
        ];
        for (name, prefix) in prefixes {
            if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
                return Err(StoreError::InvalidConfig(format!(
                    "{name} must be 1 to {MAX_PREFIX_BYTES} bytes"
                )));
            }
            if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(StoreError::InvalidConfig(format!(
                    "{name} must be printable ASCII without spaces"
                )));
            }
        }
        for (i, (a_name, a)) in prefixes.iter().enumerate() {
            for (j, (b_name, b)) in prefixes.iter().enumerate() {
                if i != j && b.starts_with(a) {
                    return Err(StoreError::InvalidConfig(format!(
                        "{a_name} is a prefix of {b_name}: their keys could collide"
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashed(key: &str, prefix: &str) -> bool {
        key.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(HASHED_ID_PREFIX))
            .is_some_and(|hex| {
                hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
    }

    #[test]
    fn default_scheme_matches_issuer_convention() {
        let k = KeyScheme::default();
        assert_eq!(k.token_key("abc-123"), "revoked:abc-123");
        assert_eq!(k.family_key("f1"), "family:f1");
        assert_eq!(
            k.subject_key("https://idp.example/", "user@example.com"),
            "revoked_before:https://idp.example/:user@example.com"
        );
        assert!(k.validate().is_ok());
    }

    #[test]
    fn plain_ids_up_to_128_bytes_are_verbatim() {
        let id = "A-z0.9_~:@+/=".repeat(10);
        let id = &id[..MAX_VERBATIM_ID_BYTES];
        assert_eq!(key_component(id), id);
        let longer = format!("{id}a");
        assert!(hashed(&key_component(&longer), ""));
    }

    #[test]
    fn exactly_the_documented_bytes_are_verbatim() {
        let allowed: Vec<u8> = (b'A'..=b'Z')
            .chain(b'a'..=b'z')
            .chain(b'0'..=b'9')
            .chain(*b"-._~:@+/=")
            .collect();
        for b in 0..=255u8 {
            let id = String::from_utf8_lossy(&[b'x', b]).into_owned();
            let verbatim = key_component(&id) == id;
            assert_eq!(verbatim, allowed.contains(&b), "byte {b:#04x}");
        }
    }

    #[test]
    fn hostile_ids_are_hashed_and_bounded() {
        let k = KeyScheme::default();
        let hostile = [
            "a".repeat(4096),
            "a\r\nFLUSHALL\r\n".to_string(),
            "*".to_string(),
            "a b".to_string(),
            "{tag}".to_string(),
            "caf\u{e9}".to_string(),
            "\u{0}\u{fffd}\u{1b}".to_string(),
            String::new(),
        ];
        for id in &hostile {
            let key = k.token_key(id);
            assert!(hashed(&key, "revoked:"), "{key:?}");
            assert_eq!(key.len(), "revoked:".len() + HASHED_ID_PREFIX.len() + 64);
        }
        let subject = k.subject_key(&"i".repeat(4096), "s p a c e");
        assert!(subject.len() <= "revoked_before:".len() + 2 * 71 + 1);
        assert!(subject.bytes().all(|b| b.is_ascii_graphic()));
    }

    #[test]
    fn hashing_is_sha256_of_the_id_bytes() {
        // SHA-256("a b"), from `printf "a b" | sha256sum`.
        assert_eq!(
            key_component("a b"),
            "sha256:c8687a08aa5d6ed2044328fa6a697ab8e96dc34291e8c2034ae8c38e6fcc6d65"
        );
    }

    #[test]
    fn overlapping_or_unprintable_prefixes_are_refused() {
        let bad = [
            KeyScheme {
                family_prefix: "revoked:f".into(),
                ..KeyScheme::default()
            },
            KeyScheme {
                token_prefix: "re voked:".into(),
                ..KeyScheme::default()
            },
            KeyScheme {
                subject_prefix: String::new(),
                ..KeyScheme::default()
            },
            KeyScheme {
                token_prefix: "revoked:\u{e9}".into(),
                ..KeyScheme::default()
            },
        ];
        for k in bad {
            assert!(
                matches!(k.validate(), Err(StoreError::InvalidConfig(_))),
                "{k:?}"
            );
        }
    }
}
