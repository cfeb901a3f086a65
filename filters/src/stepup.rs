//! Step-up authentication (RFC 9470): a route may demand an authentication context class
//! (`acr`) and a maximum age of the user's authentication (`auth_time`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::claims::VerifiedToken;
use crate::error::AuthError;

/// A route's step-up requirement. Checked on every request after validation (never cached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepUp {
    acr_values: Vec<String>,
    max_age: Option<Duration>,
    advertised: Arc<str>,
}

impl StepUp {
    /// `acr_values`: the token's `acr` must be one of them (empty: any `acr`, or none).
    /// `max_age`: `auth_time` must be at most this old (`None`: not checked). The values are
    /// advertised as they are in the challenge, so they must be printable ASCII without `"`
    /// or `\` (the config check enforces it).
    pub fn new(acr_values: Vec<String>, max_age: Option<Duration>) -> Self {
        let advertised = acr_values.join(" ").into();
        StepUp {
            acr_values,
            max_age,
            advertised,
        }
    }

    /// Whether the route asks for nothing.
    pub fn is_empty(&self) -> bool {
        self.acr_values.is_empty() && self.max_age.is_none()
    }

    /// Checks the token's `acr` and `auth_time` at `now` (Unix seconds). A missing or
    /// non-string `acr`, or a missing, non-numeric or future (beyond `leeway`) `auth_time`,
    /// fails the check rather than the token: the client is told to re-authenticate.
    pub fn check(&self, t: &VerifiedToken, now: i64, leeway: Duration) -> Result<(), AuthError> {
        let fail = || AuthError::InsufficientUserAuthentication {
            acr_values: self.advertised.clone(),
            max_age: self.max_age.map(|d| d.as_secs()),
        };
        if !self.acr_values.is_empty() {
            match t.claims.get("acr") {
                Some(Value::String(acr)) if self.acr_values.iter().any(|a| a == acr) => {}
                _ => return Err(fail()),
            }
        }
        if let Some(max_age) = self.max_age {
            let auth_time = match t.claims.get("auth_time") {
                Some(Value::Number(n)) => n.as_i64().or_else(|| {
                    n.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.trunc() as i64)
                }),
                _ => None,
            };
            let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
            let ahead = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
            match auth_time {
                Some(at) if now.saturating_sub(at) <= max && at <= now.saturating_add(ahead) => {}
                _ => return Err(fail()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    impl StepUp {
        fn check_at(&self, t: &VerifiedToken, now: i64) -> Result<(), AuthError> {
            self.check(t, now, Duration::from_secs(30))
        }
    }

    fn token(claims: Value) -> VerifiedToken {
        VerifiedToken {
            issuer_id: "idp".into(),
            iss: "https://idp".into(),
            sub: Some("alice".into()),
            exp: NOW + 60,
            iat: Some(NOW),
            jti: None,
            scopes: vec![],
            client: None,
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn acr_must_be_one_of_the_route_values() {
        let s = StepUp::new(vec!["urn:mfa".into(), "urn:hwk".into()], None);
        assert!(s.check_at(&token(json!({"acr": "urn:mfa"})), NOW).is_ok());
        assert!(s.check_at(&token(json!({"acr": "urn:hwk"})), NOW).is_ok());
        for bad in [
            json!({"acr": "urn:pwd"}),
            json!({}),
            json!({"acr": ["urn:mfa"]}),
        ] {
            match s.check_at(&token(bad.clone()), NOW) {
                Err(AuthError::InsufficientUserAuthentication {
                    acr_values,
                    max_age,
                }) => {
                    assert_eq!(&*acr_values, "urn:mfa urn:hwk");
                    assert_eq!(max_age, None);
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn auth_time_must_be_within_max_age() {
        let s = StepUp::new(vec![], Some(Duration::from_secs(300)));
        assert!(s
            .check_at(&token(json!({"auth_time": NOW - 300})), NOW)
            .is_ok());
        assert!(s
            .check_at(&token(json!({"auth_time": NOW + 30})), NOW)
            .is_ok());
        for bad in [
            json!({"auth_time": NOW - 301}),
            json!({"auth_time": NOW + 31}),
            json!({}),
            json!({"auth_time": "1800000000"}),
        ] {
            match s.check_at(&token(bad.clone()), NOW) {
                Err(AuthError::InsufficientUserAuthentication { max_age, .. }) => {
                    assert_eq!(max_age, Some(300));
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_empty_requirement_accepts_everything() {
        let s = StepUp::new(vec![], None);
        assert!(s.is_empty());
        assert!(s.check_at(&token(json!({})), NOW).is_ok());
    }
}
