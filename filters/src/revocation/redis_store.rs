//! [`RedisStore`]: revocations shared by every replica, in Redis (standalone or Cluster).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{FromRedisValue, RedisError};

use super::batch::Batchers;
use super::resp::Endpoint;
use super::{
    effective_ttl, query_keys, KeyScheme, RevocationQuery, RevocationStore, StoreError, Verdict,
};

/// Longest wait between two reconnection attempts of a standalone connection (1 s): once
/// Redis is back, the store uses it again within about this delay.
pub(super) const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// Longest error message kept from the Redis client (bytes).
const MAX_MESSAGE_BYTES: usize = 200;

/// Stores `ARGV[1]` under `KEYS[1]` for `ARGV[2]` ms, without ever lowering a numeric value
/// already there (a subject's `revoked_before`) nor shortening its remaining TTL. An entry
/// written without a TTL gets one.
const REVOKE_SCRIPT: &str = r"
local val = ARGV[1]
local ttl = tonumber(ARGV[2])
local old = redis.call('GET', KEYS[1])
if old then
  local o = tonumber(old)
  if o and o > tonumber(val) then val = old end
  local left = redis.call('PTTL', KEYS[1])
  if left > ttl then ttl = left end
end
redis.call('SET', KEYS[1], val, 'PX', string.format('%d', ttl))
return 1
";

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` URLs (no default). Standalone: exactly one.
    /// Cluster: seed nodes, the others are discovered. Passwords never appear in errors or
    /// `Debug` output; prefer `${ENV}` references in the configuration file. `rediss://` needs
    /// a TLS feature of the `redis` crate that is not enabled.
    pub urls: Vec<String>,
    /// Whether `urls` are Redis Cluster seeds (default `false`). A wrong value fails at
    /// connect time (standalone against a cluster gets `MOVED` errors).
    pub cluster: bool,
    /// Bound on every call: a `check` that takes longer fails with [`StoreError::Timeout`]
    /// (default 50 ms). Raising it adds that much latency to every request while Redis is
    /// slow or unreachable; lowering it below the network round trip fails every check.
    pub timeout: Duration,
    /// Bound on establishing a connection (at `connect` and on each reconnection attempt),
    /// and on a reply the caller has already stopped waiting for (default 1 s).
    pub connect_timeout: Duration,
    /// Key names (default [`KeyScheme::default`], the issuer-compatible `revoked:<jti>`).
    pub keys: KeyScheme,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            urls: Vec::new(),
            cluster: false,
            timeout: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(1),
            keys: KeyScheme::default(),
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("RedisConfig")
            .field("urls", &urls)
            .field("cluster", &self.cluster)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("keys", &self.keys)
            .finish()
    }
}

#[derive(Clone)]
enum Conn {
    /// Multiplexed, reconnects by itself.
    Single(ConnectionManager),
    /// One multiplexed connection per node; routes each key to its shard.
    Cluster(ClusterConnection),
}

/// A connection and what is needed to report its errors safely.
#[derive(Clone)]
pub(super) struct Link {
    conn: Conn,
    /// Passwords found in the URLs, cut from any message.
    secrets: Arc<[String]>,
}

impl Link {
    /// Sends one command under `limit`.
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<T, StoreError> {
        let call = async {
            match &self.conn {
                Conn::Single(c) => cmd.query_async::<T>(&mut c.clone()).await,
                Conn::Cluster(c) => cmd.query_async::<T>(&mut c.clone()).await,
            }
        };
        match tokio::time::timeout(limit, call).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Err(e)) => Err(StoreError::Unavailable(sanitize(
                &e.to_string(),
                &self.secrets,
            ))),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

/// Revocations in Redis, shared by every replica.
///
/// Cheap to clone (the connections are shared). Create it within a tokio runtime. It needs
/// no reconnect logic from callers: after an outage, calls fail (within the timeout) until
/// Redis answers again, then succeed.
///
/// `check` goes through a batcher per tokio runtime (see `batch.rs`): concurrent checks are
/// sent as one `MGET`. On a standalone Redis over TCP, each runtime's batcher has a connection
/// of its own for checks and one-time ids, on which it speaks RESP itself (`resp.rs`);
/// revocation writes and `ping` use the store's shared `redis` crate connection. A Cluster
/// connection is shared by every call.
#[derive(Clone)]
pub struct RedisStore {
    link: Link,
    batchers: Arc<Batchers>,
    keys: KeyScheme,
    timeout: Duration,
    connect_timeout: Duration,
    /// Redacted URLs, for messages.
    target: Arc<str>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("cluster", &matches!(self.link.conn, Conn::Cluster(_)))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Opens a (lazy) connection as `cfg` says, and for a standalone Redis over TCP the endpoint
/// each runtime's batcher connects to on its own (resp.rs).
fn open_conn(
    cfg: &RedisConfig,
    target: &str,
    secrets: &Arc<[String]>,
) -> Result<(Link, Option<Endpoint>), StoreError> {
    let invalid = |e: RedisError| {
        StoreError::InvalidConfig(format!("{target}: {}", sanitize(&e.to_string(), secrets)))
    };
    let mut direct = None;
    let conn = if cfg.cluster {
        if cfg.urls.is_empty() {
            return Err(StoreError::InvalidConfig(
                "a Redis cluster needs at least one seed URL".into(),
            ));
        }
        let client = ClusterClientBuilder::new(cfg.urls.iter().map(String::as_str))
            .connection_timeout(cfg.connect_timeout)
            .response_timeout(cfg.connect_timeout)
            .build()
            .map_err(invalid)?;
        let config = ClusterConfig::new()
            .set_connection_timeout(cfg.connect_timeout)
            .set_response_timeout(cfg.connect_timeout);
        Conn::Cluster(client.get_pending_async_connection_with_config(config))
    } else {
        let [url] = cfg.urls.as_slice() else {
            return Err(StoreError::InvalidConfig(
                "a standalone Redis takes exactly one URL".into(),
            ));
        };
        let client = redis::Client::open(url.as_str()).map_err(invalid)?;
        direct = Endpoint::of(&client, cfg.connect_timeout, secrets.clone());
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.connect_timeout))
            .set_response_timeout(Some(cfg.connect_timeout))
            .set_max_delay(RECONNECT_MAX_DELAY);
        Conn::Single(ConnectionManager::new_lazy_with_config(client, config).map_err(invalid)?)
    };
    let link = Link {
        conn,
        secrets: secrets.clone(),
    };
    Ok((link, direct))
}

impl RedisStore {
    /// Connects and checks that Redis answers `PING` within `connect_timeout + timeout`.
    ///
    /// Fails with [`StoreError::InvalidConfig`] for a bad configuration and
    /// [`StoreError::Unavailable`] when Redis does not answer. A gateway that must start while
    /// Redis is down uses [`RedisStore::connect_lazy`] and reports readiness with `ping`.
    pub async fn connect(cfg: RedisConfig) -> Result<Self, StoreError> {
        let store = Self::connect_lazy(cfg)?;
        let limit = store.connect_timeout + store.timeout;
        match store.run::<redis::Value>(&redis::cmd("PING"), limit).await {
            Ok(_) => Ok(store),
            Err(StoreError::Timeout) => Err(StoreError::Unavailable(format!(
                "no answer from {} within {} ms",
                store.target,
                limit.as_millis()
            ))),
            Err(e) => Err(e),
        }
    }

    /// Builds the store without waiting for Redis: the connection is made by the first call
    /// and re-made after failures. Must be called within a tokio runtime.
    pub fn connect_lazy(cfg: RedisConfig) -> Result<Self, StoreError> {
        cfg.keys.validate()?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::InvalidConfig(
                "the Redis store must be created within a tokio runtime".into(),
            ));
        }
        if cfg.timeout.is_zero() || cfg.connect_timeout.is_zero() {
            return Err(StoreError::InvalidConfig(
                "redis timeouts must be positive".into(),
            ));
        }
        let target: Arc<str> = cfg
            .urls
            .iter()
            .map(|u| redact_url(u))
            .collect::<Vec<_>>()
            .join(",")
            .into();
        let secrets: Arc<[String]> = cfg.urls.iter().flat_map(|u| url_secrets(u)).collect();
        let (link, direct) = open_conn(&cfg, &target, &secrets)?;
        let batchers = Arc::new(Batchers::new(link.clone(), direct, cfg.connect_timeout));
        Ok(RedisStore {
            link,
            batchers,
            keys: cfg.keys,
            timeout: cfg.timeout,
            connect_timeout: cfg.connect_timeout,
            target,
        })
    }

    /// The key scheme in use (for the admin API and CLI).
    pub fn keys(&self) -> &KeyScheme {
        &self.keys
    }

    /// Sends one command under `limit` on the store's own connection.
    async fn run<T: FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<T, StoreError> {
        self.link.run(cmd, limit).await
    }

    async fn store(&self, key: String, value: i64, ttl: Duration) -> Result<(), StoreError> {
        let ttl = effective_ttl(ttl)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REVOKE_SCRIPT)
            .arg(1)
            .arg(key)
            .arg(value)
            .arg(ttl_ms);
        // The script only ever raises the value and the TTL, so a second attempt after a
        // failed one (a connection that had not yet seen a Redis restart) is harmless.
        match self.run::<redis::Value>(&cmd, self.timeout).await {
            Err(StoreError::Unavailable(_)) => self
                .run::<redis::Value>(&cmd, self.timeout)
                .await
                .map(|_| ()),
            other => other.map(|_| ()),
        }
    }
}

#[async_trait]
impl RevocationStore for RedisStore {
    async fn check(&self, q: &RevocationQuery<'_>) -> Result<Verdict, StoreError> {
        let wanted = query_keys(&self.keys, q);
        if wanted.is_empty() {
            return Ok(Verdict::Valid);
        }
        self.batchers.check(wanted, q.iat, self.timeout).await
    }

    async fn revoke_token(&self, jti: &str, ttl: Duration) -> Result<(), StoreError> {
        self.store(self.keys.token_key(jti), 1, ttl).await
    }

    async fn revoke_family(&self, family: &str, ttl: Duration) -> Result<(), StoreError> {
        self.store(self.keys.family_key(family), 1, ttl).await
    }

    async fn revoke_subject(
        &self,
        issuer: &str,
        subject: &str,
        before: i64,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.store(self.keys.subject_key(issuer, subject), before, ttl)
            .await
    }

    async fn use_once(&self, id: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = effective_ttl(ttl)?;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        // Through this runtime's batcher, like checks: it is on the request path.
        self.batchers
            .use_once(self.keys.once_key(id), ttl_ms, self.timeout)
            .await
    }

    /// `PING`; on a cluster, every primary must answer.
    async fn ping(&self) -> Result<(), StoreError> {
        self.run::<redis::Value>(&redis::cmd("PING"), self.timeout)
            .await
            .map(|_| ())
    }
}

/// `url` with its password (and any query string) replaced by `***`.
fn redact_url(url: &str) -> String {
    let (url, had_query) = match url.split_once('?') {
        Some((base, _)) => (base, true),
        None => (url, false),
    };
    let mut out = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                    format!("{scheme}://{user}:***@{host}{path}")
                }
                None => format!("{scheme}://{authority}{path}"),
            }
        }
        None => "<unparsable url>".to_string(),
    };
    if had_query {
        out.push_str("?***");
    }
    out
}

/// The passwords of `url` (raw and percent-decoded, from the userinfo and from a `password=`
/// or `pass=` query parameter), to cut from messages.
fn url_secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    if let Some((_, rest)) = base.split_once("://") {
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                found.push(password.to_string());
            }
        }
    }
    for pair in query.split('&') {
        if let Some(("password" | "pass", value)) = pair.split_once('=') {
            found.push(value.to_string());
        }
    }
    let decoded: Vec<String> = found.iter().map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty());
    found.sort();
    found.dedup();
    found
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(h), Some(l)) => match (hex(*h), hex(*l)) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            (Some(b), _, _) => {
                out.push(*b);
                i += 1;
            }
            (None, _, _) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A client error message made safe to return: secrets cut, control characters replaced,
/// at most [`MAX_MESSAGE_BYTES`].
pub(super) fn sanitize(message: &str, secrets: &[String]) -> String {
    let mut out = message.to_string();
    for secret in secrets {
        out = out.replace(secret.as_str(), "***");
    }
    let mut out: String = out
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_in_messages() {
        assert_eq!(
            redact_url("redis://user:s3cret@host:6380/2"),
            "redis://user:***@host:6380/2"
        );
        assert_eq!(
            redact_url("redis://:s3cret@host:6380"),
            "redis://:***@host:6380"
        );
        assert_eq!(redact_url("redis://host:6380"), "redis://host:6380");
        assert_eq!(redact_url("redis://host?password=x"), "redis://host?***");
        let secrets = url_secrets("redis://u:p%40ss@h/0");
        assert!(secrets.contains(&"p%40ss".to_string()));
        assert!(secrets.contains(&"p@ss".to_string()));
        assert_eq!(
            sanitize("auth p@ss failed\r\n", &secrets),
            "auth *** failed  "
        );
    }

    #[test]
    fn long_messages_are_truncated() {
        let long = "é".repeat(500);
        assert!(sanitize(&long, &[]).len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
    }
}
