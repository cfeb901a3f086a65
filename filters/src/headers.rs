//! Identity-header policy: which incoming headers are removed, and how claim values are
//! encoded into the headers the gateway injects.
//!
//! # Encoding of claim values
//! One rule, so a backend can always decode what it receives:
//! - a string is sent as its UTF-8 bytes, percent-encoded (`%XX`, upper-case hex) for
//!   every byte outside `!`..`~` and for `%` and `,` — so `Jane Doe` becomes
//!   `Jane%20Doe`, `Zoë` becomes `Zo%C3%AB`, and CR, LF and NUL can never reach a header;
//! - a number or boolean is sent as its JSON text (`42`, `true`);
//! - an array is sent as its elements, each encoded by these rules, joined by `,`;
//! - an object (or an array inside an array) is sent as its compact JSON text,
//!   percent-encoded like a string;
//! - `null` or a missing claim: the header is not sent.

use serde_json::Value;

/// Lower-cases `name` and maps `_` to `-`: the spelling under which a header is compared
/// against the strip policy (some servers treat `x_auth_subject` as `x-auth-subject`).
pub fn canonical_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' => '-',
            b => b.to_ascii_lowercase() as char,
        })
        .collect()
}

/// Headers that carry a client's proof of possession or claim a client certificate. They are
/// removed from every request before forwarding: the DPoP proof is for the gateway alone,
/// and a certificate header would let a client claim a certificate it never presented
/// (tokengate reads the certificate from its own TLS handshake, never from a header).
pub const CREDENTIAL_HEADERS: [&str; 28] = [
    "dpop",
    "x-forwarded-client-cert",
    "client-cert",
    "client-cert-chain",
    "x-client-cert",
    "x-client-cert-chain",
    "x-client-certificate",
    "x-ssl-client-cert",
    "ssl-client-cert",
    "x-ssl-cert",
    "x-arr-clientcert",
    "x-client-verify",
    "x-ssl-client-verify",
    "x-client-dn",
    "x-ssl-client-dn",
    "x-ssl-client-s-dn",
    "x-ssl-client-fingerprint",
    "x-ssl-client-sha1",
    "x-client-cert-fingerprint",
    "x-forwarded-tls-client-cert",
    "x-forwarded-tls-client-cert-info",
    "x-amzn-mtls-clientcert",
    "x-amzn-mtls-clientcert-leaf",
    "x-amzn-mtls-clientcert-issuer",
    "x-amzn-mtls-clientcert-subject",
    "x-amzn-mtls-clientcert-serial-number",
    "x-amzn-mtls-clientcert-validity",
    "cf-client-cert-sha256",
];

/// Whether an incoming header must be removed before forwarding: its canonical name
/// starts with the (canonical) `strip_prefix`, or equals one of the canonical names the
/// gateway injects.
pub fn must_strip(name: &str, strip_prefix: &str, injected: &[String]) -> bool {
    let bytes = name.as_bytes();
    // Names from the `http` crate are lower case already; without an `_` they are their
    // own canonical form, and are compared as they are (every request header goes through
    // here).
    if !bytes.iter().any(|b| *b == b'_' || b.is_ascii_uppercase()) {
        return (!strip_prefix.is_empty() && bytes.starts_with(strip_prefix.as_bytes()))
            || injected.iter().any(|i| i.as_bytes() == bytes);
    }
    let mut canon = [0u8; 64];
    if bytes.len() > canon.len() {
        // Long names: allocate; rare.
        let c = canonical_name(name);
        return (!strip_prefix.is_empty() && c.starts_with(strip_prefix)) || injected.contains(&c);
    }
    for (d, s) in canon.iter_mut().zip(bytes) {
        *d = if *s == b'_' {
            b'-'
        } else {
            s.to_ascii_lowercase()
        };
    }
    let c = &canon[..bytes.len()];
    (!strip_prefix.is_empty() && c.starts_with(strip_prefix.as_bytes()))
        || injected.iter().any(|i| i.as_bytes() == c)
}

/// Encodes a claim value for a header (see the module docs). `None` for `null`.
pub fn encode_claim(value: &Value) -> Option<String> {
    let mut out = String::new();
    match value {
        Value::Null => return None,
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                match item {
                    Value::Array(_) => push_encoded(&mut out, &item.to_string()),
                    other => encode_scalar(&mut out, other),
                }
            }
        }
        other => encode_scalar(&mut out, other),
    }
    Some(out)
}

fn encode_scalar(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => push_encoded(out, s),
        Value::Number(_) | Value::Bool(_) | Value::Null => out.push_str(&value.to_string()),
        Value::Object(_) | Value::Array(_) => push_encoded(out, &value.to_string()),
    }
}

/// Encodes a string claim (see the module docs): the common case of identity headers,
/// without building a JSON value.
pub fn encode_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded(&mut out, s);
    out
}

/// Percent-encodes every byte outside `!`..`~`, and `%` and `,`.
pub fn push_encoded(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in s.bytes() {
        if (0x21..=0x7e).contains(&b) && b != b'%' && b != b',' {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 0xf)] as char);
        }
    }
}

/// The `x-auth-scopes` value: scopes encoded like strings, separated by one space.
pub fn encode_scopes(scopes: &[String]) -> String {
    let mut out = String::new();
    for (i, s) in scopes.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_encoded(&mut out, s);
    }
    out
}

/// A well-formed incoming `x-request-id` is kept: 1..=128 bytes of `A-Za-z0-9-_.:`.
pub fn is_valid_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 128
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strip_matches_every_spelling_of_the_prefix() {
        let injected = vec!["x-tenant".to_string()];
        for n in [
            "x-auth-subject",
            "X-Auth-Subject",
            "X_AUTH_SUBJECT",
            "x-auth_scopes",
            "x-auth-",
        ] {
            assert!(must_strip(n, "x-auth-", &injected), "{n}");
        }
        assert!(must_strip("X_Tenant", "x-auth-", &injected));
        assert!(!must_strip("x-authority", "x-auth-", &injected));
        assert!(!must_strip("accept", "x-auth-", &injected));
        let long = format!("x-auth-{}", "a".repeat(100));
        assert!(must_strip(&long, "x-auth-", &injected));
        // Lower-case names without `_` (how the `http` crate hands them over) take the
        // direct comparison; it must agree with the canonicalising path.
        assert!(must_strip("x-tenant", "x-auth-", &injected));
        assert!(!must_strip("x-tenants", "x-auth-", &injected));
        assert!(!must_strip("x-tenan", "x-auth-", &injected));
        assert!(!must_strip("x-auth-subject", "", &injected));
        assert!(!must_strip("x_auth_subject", "", &injected));
        for n in [
            "x-auth-subject",
            "x-tenant",
            "accept",
            "x-authority",
            "x-auth",
        ] {
            let upper = n.to_ascii_uppercase();
            assert_eq!(
                must_strip(n, "x-auth-", &injected),
                must_strip(&upper, "x-auth-", &injected),
                "{n}"
            );
        }
    }

    #[test]
    fn plain_ascii_strings_pass_unchanged() {
        assert_eq!(encode_claim(&json!("acme-42")).unwrap(), "acme-42");
    }

    #[test]
    fn control_characters_never_reach_a_header() {
        let v = encode_claim(&json!("a\r\nX-Injected: 1\u{0}")).unwrap();
        assert_eq!(v, "a%0D%0AX-Injected:%201%00");
        assert!(v.bytes().all(|b| (0x21..=0x7e).contains(&b)));
    }

    #[test]
    fn non_ascii_is_percent_encoded_utf8() {
        assert_eq!(encode_claim(&json!("Zoë")).unwrap(), "Zo%C3%AB");
    }

    #[test]
    fn percent_and_comma_are_escaped_so_decoding_is_unambiguous() {
        assert_eq!(encode_claim(&json!("50%,x")).unwrap(), "50%25%2Cx");
        assert_eq!(encode_claim(&json!(["a,b", "c"])).unwrap(), "a%2Cb,c");
    }

    #[test]
    fn scalars_and_structures_have_one_encoding() {
        assert_eq!(encode_claim(&json!(42)).unwrap(), "42");
        assert_eq!(encode_claim(&json!(true)).unwrap(), "true");
        assert_eq!(encode_claim(&json!(null)), None);
        assert_eq!(
            encode_claim(&json!({"a": "b c"})).unwrap(),
            r#"{"a":"b%20c"}"#
        );
        assert_eq!(encode_claim(&json!([1, [2]])).unwrap(), "1,[2]");
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(is_valid_request_id(b"abc-123_x.y:z"));
        assert!(!is_valid_request_id(b""));
        assert!(!is_valid_request_id(b"a b"));
        assert!(!is_valid_request_id(&[b'a'; 129]));
    }
}
