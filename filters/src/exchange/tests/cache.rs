//! `ExchangeCache`: single-flight, keys, early expiry, errors not cached.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use async_trait::async_trait;

use super::*;
use crate::exchange::cache::{cache_key, keep_for};

/// Wraps a signer, counts exchanges, and can be slowed down or made to fail.
struct Counting {
    signer: LocalSigner,
    calls: AtomicUsize,
    delay: Duration,
    failures_left: AtomicUsize,
}

impl Counting {
    fn new(delay: Duration) -> Arc<Counting> {
        Arc::new(Counting {
            signer: signer(vec![es256("k1")], "k1"),
            calls: AtomicUsize::new(0),
            delay,
            failures_left: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Exchanger for Counting {
    async fn exchange(&self, req: &ExchangeRequest<'_>) -> Result<IssuedToken, ExchangeError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let failing = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(ExchangeError::Unavailable("test failure"));
        }
        self.signer.exchange(req).await
    }
}

fn cache_over(inner: &Arc<Counting>) -> Arc<ExchangeCache> {
    Arc::new(ExchangeCache::new(
        Arc::clone(inner) as Arc<dyn Exchanger>,
        DEFAULT_EXCHANGE_CACHE_ENTRIES,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_one_subject_share_one_exchange() {
    let inner = Counting::new(Duration::from_millis(100));
    let cache = cache_over(&inner);
    let ask = Arc::new(Ask::new(alice()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let cache = Arc::clone(&cache);
        let ask = Arc::clone(&ask);
        tasks.spawn(async move { cache.exchange(&ask.req()).await });
    }
    let mut tokens = Vec::new();
    while let Some(result) = tasks.join_next().await {
        tokens.push(result.unwrap().unwrap().token);
    }
    assert_eq!(inner.calls(), 1, "exactly one signing");
    assert!(tokens.iter().all(|t| *t == tokens[0]));
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses), (49, 1));
    // Later requests are plain hits.
    cache.exchange(&ask.req()).await.unwrap();
    assert_eq!(inner.calls(), 1);
    assert_eq!(cache.stats().hits, 50);
}

#[tokio::test]
async fn different_audiences_scopes_or_subjects_get_different_tokens() {
    let inner = Counting::new(Duration::ZERO);
    let cache = cache_over(&inner);
    let base = Ask::new(alice());
    let first = cache.exchange(&base.req()).await.unwrap();

    let mut other_audience = Ask::new(alice());
    other_audience.audience = "billing-api".into();
    let second = cache.exchange(&other_audience.req()).await.unwrap();

    let mut narrower = Ask::new(alice());
    narrower.allowed = strings(&["orders:read"]);
    let third = cache.exchange(&narrower.req()).await.unwrap();

    let mut claims = alice().claims;
    claims.insert("jti".into(), json!("subject-jti-2"));
    let other_subject = Ask::new(subject(Value::Object(claims)));
    let fourth = cache.exchange(&other_subject.req()).await.unwrap();

    assert_eq!(inner.calls(), 4);
    let tokens = [&first.token, &second.token, &third.token, &fourth.token];
    for (i, a) in tokens.iter().enumerate() {
        for b in &tokens[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(&*third.scope, "orders:read");
    // Same inputs again: all hits.
    for ask in [&base, &other_audience, &narrower, &other_subject] {
        cache.exchange(&ask.req()).await.unwrap();
    }
    assert_eq!(inner.calls(), 4);
}

#[test]
fn allowed_sets_that_narrow_to_the_same_scope_share_a_key() {
    let a = Ask::new(alice());
    let mut b = Ask::new(alice());
    b.allowed = strings(&["orders:read", "orders:write", "not-held"]);
    assert_eq!(cache_key(&a.req()), cache_key(&b.req()));
    let mut c = Ask::new(alice());
    c.carry = strings(&["tenant"]);
    assert_ne!(cache_key(&a.req()), cache_key(&c.req()), "carried claims");
    let mut d = Ask::new(alice());
    d.ttl = Duration::from_secs(60);
    assert_ne!(cache_key(&a.req()), cache_key(&d.req()), "ttl");
}

#[test]
fn subjects_without_jti_are_keyed_by_the_token_itself() {
    let now = unix_now();
    let claims = json!({ "iss": SUBJECT_ISS, "sub": "bob", "exp": now + 600 });
    let mut a = Ask::new(subject(claims.clone()));
    a.token = "token-a".into();
    let mut b = Ask::new(subject(claims));
    b.token = "token-b".into();
    assert_ne!(cache_key(&a.req()), cache_key(&b.req()));
    // With a jti, the same subject presented twice is one key.
    let mut c = Ask::new(alice());
    c.token = "token-c".into();
    let mut d = Ask::new(alice());
    d.token = "token-d".into();
    assert_eq!(cache_key(&c.req()), cache_key(&d.req()));
}

#[test]
fn entries_expire_a_tenth_of_their_lifetime_early_and_at_least_five_seconds() {
    let now = 1_000_000;
    assert_eq!(keep_for(now + 3600, now), Duration::from_secs(3240));
    assert_eq!(keep_for(now + 300, now), Duration::from_secs(270));
    assert_eq!(keep_for(now + 30, now), Duration::from_secs(25));
    assert_eq!(keep_for(now + 5, now), Duration::ZERO);
    assert_eq!(keep_for(now + 1, now), Duration::ZERO);
    assert_eq!(keep_for(now - 10, now), Duration::ZERO);
    assert_eq!(keep_for(i64::MAX, i64::MIN), keep_for(i64::MAX, i64::MIN));
}

#[tokio::test]
async fn tokens_close_to_expiry_are_not_cached() {
    let inner = Counting::new(Duration::ZERO);
    let cache = cache_over(&inner);
    let ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "sub": "bob", "jti": "short", "exp": unix_now() + 4 }),
    ));
    let a = cache.exchange(&ask.req()).await.unwrap();
    let b = cache.exchange(&ask.req()).await.unwrap();
    assert_eq!(inner.calls(), 2);
    assert_ne!(a.token, b.token);
}

#[tokio::test]
async fn cached_token_is_dropped_before_it_expires() {
    let inner = Counting::new(Duration::ZERO);
    let cache = cache_over(&inner);
    // Lifetime 9 s: kept about 4 s (dropped 5 s early).
    let subject_exp = unix_now() + 9;
    let ask = Ask::new(subject(
        json!({ "iss": SUBJECT_ISS, "sub": "bob", "jti": "soon", "exp": subject_exp }),
    ));
    let started = Instant::now();
    let first = cache.exchange(&ask.req()).await.unwrap();
    let again = cache.exchange(&ask.req()).await.unwrap();
    assert_eq!(first.token, again.token);
    assert_eq!(inner.calls(), 1);
    // Poll until the entry is gone; bounded well before the subject expires.
    let deadline = started + Duration::from_secs(7);
    while inner.calls() == 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let token = cache.exchange(&ask.req()).await.unwrap();
        assert!(
            token.expires_at - unix_now() >= 4,
            "a cached token always has more than its early margin left"
        );
    }
    assert_eq!(inner.calls(), 2, "the entry expired and was renewed");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed <= Duration::from_secs(6),
        "{elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_shared_by_waiters_but_not_cached() {
    let inner = Counting::new(Duration::from_millis(100));
    inner.failures_left.store(1, Ordering::SeqCst);
    let cache = cache_over(&inner);
    let ask = Arc::new(Ask::new(alice()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let cache = Arc::clone(&cache);
        let ask = Arc::clone(&ask);
        tasks.spawn(async move { cache.exchange(&ask.req()).await });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(
            result.unwrap().unwrap_err(),
            ExchangeError::Unavailable("test failure")
        );
    }
    assert_eq!(inner.calls(), 1, "one failing exchange for all waiters");
    cache.exchange(&ask.req()).await.unwrap();
    assert_eq!(inner.calls(), 2, "the failure was not cached");
}

#[tokio::test]
async fn cache_hits_are_not_audited_again() {
    let inner = Counting::new(Duration::ZERO);
    let cache = cache_over(&inner);
    let ask = Ask::new(alice());
    let recorder = Recorder::start();
    for _ in 0..3 {
        cache.exchange(&ask.req()).await.unwrap();
    }
    let audits = recorder
        .events()
        .iter()
        .filter(|e| field(e, "message") == Some("token exchanged"))
        .count();
    assert_eq!(audits, 1);
}
