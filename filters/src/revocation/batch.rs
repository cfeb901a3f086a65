//! Coalescing of concurrent revocation checks: one `MGET` per batch instead of one per check.
//!
//! Each tokio runtime that calls [`Batchers::check`] gets its own batcher task, so that it
//! runs on the threads of the requests it serves and sees every check they queue in one
//! round of the scheduler. On a standalone Redis over TCP the batcher owns a connection of its
//! own and speaks RESP on it directly (`resp.rs`): a check then costs no wake-up of another
//! task or thread. Otherwise (Cluster, Unix socket) it sends its batches on the store's
//! shared `redis` crate connection (a Cluster connection tracks the shards' topology once).
//! A check queues its keys and waits for its verdict; the batcher takes every check queued
//! when it runs (at most [`MAX_BATCH_CHECKS`]) and sends them all as ONE `MGET`. Redis reads
//! and the gateway writes one command per batch, so syscalls, wake-ups and Redis work are
//! divided by the batch size. One-time ids (`use_once`) go through the same queue, each as
//! its own `SET … NX`.
//!
//! How long a batch waits to grow differs by path. On the RESP connection, which pipelines,
//! a batch is sent as soon as it is taken; the checks queued meanwhile form the next one.
//! Yielding first, to let every ready request queue its check, made batches of ≈ 29 checks at
//! `wrk -c32` but also made nearly every request wait on the same reply, with the thread idle
//! until it came: sending at once gave batches of ≈ 8 and 5 % more requests per second on
//! the revocation route, for ≈ 0.6 µs more Redis CPU per check. On the crate's connection
//! each batch is a spawned task, so there the batcher yields once (`take_ready`) first.
//!
//! What each check sees is unchanged: its keys are read from Redis after it was queued (no
//! result is ever reused between checks), it costs one round trip from its point of view,
//! and it is bounded by the store's per-call timeout. On a Cluster, the combined `MGET` is
//! split per slot by the client, as a single check's is.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::{Handle, Id};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::redis_store::Link;
use super::resp::{run_direct, Endpoint};
use super::{parse_before, refuses, verdict_of, Kind, StoreError, Verdict};

/// Most checks combined into one `MGET` (64, so at most 192 keys). Larger batches divide the
/// per-command cost further but make one slow reply delay more requests.
pub(super) const MAX_BATCH_CHECKS: usize = 64;

/// Most batches in flight per runtime (16). Further checks wait in the queue (within their
/// timeout) while Redis answers slowly, so a stalled server holds a bounded number of them.
pub(super) const MAX_IN_FLIGHT: usize = 16;

/// Checks that may wait for a batcher (4096 per runtime); beyond that, callers wait to queue
/// within their own timeout.
const QUEUE_CAPACITY: usize = 4096;

/// One queued check: its keys in verdict order, the token's `iat`, where to answer.
pub(super) struct Job {
    pub(super) keys: Vec<(Kind, String)>,
    pub(super) iat: Option<i64>,
    pub(super) reply: oneshot::Sender<Result<Verdict, StoreError>>,
}

/// What a batcher is asked to do.
pub(super) enum Work {
    Check(Job),
    /// `SET <key> 1 NX PX <ttl_ms>`: `true` when the key was set (first use).
    Once {
        key: String,
        ttl_ms: u64,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
}

/// The batchers of one store, one per runtime that checks through it.
pub(super) struct Batchers {
    /// The store's shared connection, used when there is no `direct` endpoint.
    link: Link,
    /// A standalone Redis over TCP: each batcher opens its own connection to it.
    direct: Option<Arc<Endpoint>>,
    /// Bound on one batch's `MGET`: a reply that the callers may have stopped waiting for.
    batch_limit: Duration,
    queues: Mutex<Vec<(Id, mpsc::Sender<Work>)>>,
}

impl Batchers {
    pub(super) fn new(link: Link, direct: Option<Endpoint>, batch_limit: Duration) -> Self {
        Batchers {
            link,
            direct: direct.map(Arc::new),
            batch_limit,
            queues: Mutex::new(Vec::new()),
        }
    }

    /// Records `key` once (`SET NX PX`) in the current runtime's queue, within `timeout`.
    pub(super) async fn use_once(
        &self,
        key: String,
        ttl_ms: u64,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.call(Work::Once { key, ttl_ms, reply }, answer, timeout)
            .await
    }

    /// Checks `keys` (never empty) in the current runtime's next batch, within `timeout`.
    pub(super) async fn check(
        &self,
        keys: Vec<(Kind, String)>,
        iat: Option<i64>,
        timeout: Duration,
    ) -> Result<Verdict, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.call(Work::Check(Job { keys, iat, reply }), answer, timeout)
            .await
    }

    /// Queues `work` and waits for its `answer`, all within `timeout`.
    async fn call<T>(
        &self,
        work: Work,
        answer: oneshot::Receiver<Result<T, StoreError>>,
        timeout: Duration,
    ) -> Result<T, StoreError> {
        let queue = self.queue()?;
        let call = async {
            queue
                .send(work)
                .await
                .map_err(|_| StoreError::Unavailable("revocation batcher stopped".into()))?;
            answer.await.map_err(|_| {
                StoreError::Unavailable("revocation batcher dropped the check".into())
            })?
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Timeout),
        }
    }

    /// The queue of the current runtime's batcher, started on first use (and again if the
    /// previous one stopped). Batchers of runtimes that shut down are forgotten here.
    fn queue(&self) -> Result<mpsc::Sender<Work>, StoreError> {
        let runtime = Handle::try_current().map_err(|_| {
            StoreError::Unavailable("a revocation check needs a tokio runtime".into())
        })?;
        let id = runtime.id();
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, q)) = queues.iter().find(|(i, q)| *i == id && !q.is_closed()) {
            return Ok(q.clone());
        }
        queues.retain(|(_, q)| !q.is_closed());
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        match &self.direct {
            Some(endpoint) => runtime.spawn(run_direct(rx, endpoint.clone())),
            None => runtime.spawn(run_batcher(rx, self.link.clone(), self.batch_limit)),
        };
        queues.push((id, tx.clone()));
        Ok(tx)
    }
}

/// The batcher task of one runtime on the shared `redis` crate connection: runs until every
/// sender (the store) is gone.
async fn run_batcher(mut queue: mpsc::Receiver<Work>, link: Link, batch_limit: Duration) {
    let mut in_flight = JoinSet::new();
    let mut jobs = Vec::with_capacity(MAX_BATCH_CHECKS);
    loop {
        while in_flight.try_join_next().is_some() {}
        if in_flight.len() >= MAX_IN_FLIGHT {
            in_flight.join_next().await;
            continue;
        }
        if queue.recv_many(&mut jobs, MAX_BATCH_CHECKS).await == 0 {
            break;
        }
        take_ready(&mut queue, &mut jobs).await;
        let mut batch = Vec::with_capacity(jobs.len());
        for work in jobs.drain(..) {
            match work {
                Work::Check(job) => batch.push(job),
                Work::Once { key, ttl_ms, reply } => {
                    in_flight.spawn(run_once(link.clone(), key, ttl_ms, reply, batch_limit));
                }
            }
        }
        if !batch.is_empty() {
            in_flight.spawn(run_batch(link.clone(), batch, batch_limit));
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// After a batch's first work arrived (crate path): lets the tasks that are ready run first
/// (one `yield_now`; those that check queue now), then takes what they queued, up to
/// [`MAX_BATCH_CHECKS`] in `work`.
async fn take_ready(queue: &mut mpsc::Receiver<Work>, work: &mut Vec<Work>) {
    if work.len() >= MAX_BATCH_CHECKS {
        return;
    }
    tokio::task::yield_now().await;
    while work.len() < MAX_BATCH_CHECKS {
        match queue.try_recv() {
            Ok(w) => work.push(w),
            Err(_) => break,
        }
    }
}

/// Sends one `MGET` for the checks whose callers still wait, and answers each.
async fn run_batch(link: Link, mut jobs: Vec<Job>, limit: Duration) {
    jobs.retain(|j| !j.reply.is_closed());
    if jobs.is_empty() {
        return;
    }
    let mut cmd = redis::cmd("MGET");
    let mut wanted = 0;
    for job in &jobs {
        for (_, key) in &job.keys {
            cmd.arg(key.as_bytes());
        }
        wanted += job.keys.len();
    }
    let values = match link.run::<Vec<Option<Vec<u8>>>>(&cmd, limit).await {
        Ok(values) if values.len() == wanted => values,
        Ok(_) => {
            let e = StoreError::Unavailable("MGET returned the wrong number of values".into());
            return answer_all(jobs, &e);
        }
        Err(e) => return answer_all(jobs, &e),
    };
    answer_checks(jobs, &values);
}

/// Answers each check of one `MGET` from its share of `values` (in the order of the jobs).
pub(super) fn answer_checks<V: AsRef<[u8]>>(jobs: Vec<Job>, values: &[Option<V>]) {
    let mut start = 0;
    for job in jobs {
        let end = start + job.keys.len();
        let verdict = verdict_for(
            &job.keys,
            values.get(start..end).unwrap_or_default(),
            job.iat,
        );
        start = end;
        let _ = job.reply.send(Ok(verdict));
    }
}

/// Sends one `SET … NX PX` and answers whether it set the key.
async fn run_once(
    link: Link,
    key: String,
    ttl_ms: u64,
    reply: oneshot::Sender<Result<bool, StoreError>>,
    limit: Duration,
) {
    if reply.is_closed() {
        return;
    }
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(1).arg("NX").arg("PX").arg(ttl_ms);
    let answer = link
        .run::<redis::Value>(&cmd, limit)
        .await
        .map(|v| !matches!(v, redis::Value::Nil));
    let _ = reply.send(answer);
}

pub(super) fn answer_all(jobs: Vec<Job>, e: &StoreError) {
    for job in jobs {
        let _ = job.reply.send(Err(e.clone()));
    }
}

/// The verdict for one check from its values, in the order of its keys (token, family,
/// subject): the first entry found that refuses the token.
fn verdict_for<V: AsRef<[u8]>>(
    keys: &[(Kind, String)],
    values: &[Option<V>],
    iat: Option<i64>,
) -> Verdict {
    for ((kind, _), value) in keys.iter().zip(values) {
        let Some(value) = value else { continue };
        let before = match kind {
            Kind::Subject => parse_before(value.as_ref()),
            Kind::Token | Kind::Family => None,
        };
        if refuses(*kind, before, iat) {
            return verdict_of(*kind);
        }
    }
    Verdict::Valid
}
