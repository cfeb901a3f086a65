//! `tokengate revoke`: writes a revocation to the configured Redis store, with the same
//! key scheme the gateway reads.

use std::path::Path;
use std::time::Duration;

use filters::revocation::{RedisConfig, RedisStore, RevocationStore};

use crate::config;

/// What to revoke.
pub enum What {
    Token { jti: String, exp: i64 },
    Family(String),
    Subject { issuer: String, subject: String },
    Nothing,
}

impl What {
    /// From the CLI arguments (clap guarantees exactly one group member).
    pub fn from_args(
        jti: Option<String>,
        exp: Option<i64>,
        family: Option<String>,
        subject: Option<Vec<String>>,
    ) -> Self {
        match (jti, exp, family, subject) {
            (Some(jti), Some(exp), _, _) => What::Token { jti, exp },
            (_, _, Some(f), _) => What::Family(f),
            (_, _, _, Some(v)) if v.len() == 2 => What::Subject {
                issuer: v[0].clone(),
                subject: v[1].clone(),
            },
            _ => What::Nothing,
        }
    }
}

/// Connects, writes, and describes what was written.
pub fn run(path: &Path, what: What, ttl: Option<&str>) -> Result<String, String> {
    let settings = config::load(path).map_err(|e| e.to_string())?;
    let Some(redis) = settings.revocation.redis.clone() else {
        return Err(
            "the configuration has no [redis]: the embedded memory store lives inside the running \
                    gateway; use its admin API (POST /revocations/...) instead"
                .into(),
        );
    };
    let ttl = match ttl {
        Some(t) => humantime::parse_duration(t).map_err(|e| format!("--ttl {t:?}: {e}"))?,
        None => settings.revocation.default_ttl,
    };
    let now = filters::validate::unix_now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async move {
        let store = RedisStore::connect(RedisConfig {
            urls: redis.urls,
            cluster: redis.cluster,
            timeout: redis.timeout.max(Duration::from_secs(1)),
            connect_timeout: redis.connect_timeout,
            keys: settings.revocation.keys,
        })
        .await
        .map_err(|e| e.to_string())?;
        match what {
            What::Token { jti, exp } => {
                if exp <= now {
                    return Ok(format!(
                        "token {jti:?} has already expired; nothing written"
                    ));
                }
                let ttl = Duration::from_secs(u64::try_from(exp - now).unwrap_or(1));
                store
                    .revoke_token(&jti, ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!("revoked token {jti:?} for {}s", ttl.as_secs()))
            }
            What::Family(f) => {
                store
                    .revoke_family(&f, ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!("revoked family {f:?} for {}s", ttl.as_secs()))
            }
            What::Subject { issuer, subject } => {
                store
                    .revoke_subject(&issuer, &subject, now, ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(format!(
                    "revoked tokens of {subject:?} from {issuer:?} issued before {now}, for {}s",
                    ttl.as_secs()
                ))
            }
            What::Nothing => Err(
                "say what to revoke: --jti ID --exp UNIX, --family FID or --subject ISS SUB".into(),
            ),
        }
    })
}
