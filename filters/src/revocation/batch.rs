//! Coalescing of concurrent revocation checks: one `MGET` per batch instead of one per check.
//!
//! Each tokio runtime that calls [`Batchers::check`] gets its own batcher task, so that it
//! runs on the threads of the requests it serves and sees every check they queue in one
//! round of the scheduler. On a standalone Redis it also gets its own connection, opened
//! (lazily) by its first batch, so that the connection's driver task runs on that runtime
//! too: a check then costs no wake-up of another thread. A Cluster connection is shared by
//! every runtime (it tracks the shards' topology once). A check queues its keys
//! and waits for its verdict; the batcher takes every check queued when it runs (at most
//! [`MAX_BATCH_CHECKS`]), lets the runtime run the other tasks that are ready (one
//! `yield_now`, which may queue more checks), and sends them all as ONE `MGET`. Redis reads
//! and the gateway writes one command per batch, so syscalls, wake-ups and Redis work are
//! divided by the batch size. When idle, a check is sent at once (after that one yield).
//!
//! What each check sees is unchanged: its keys are read from Redis after it was queued (no
//! result is ever reused between checks), it costs one round trip from its point of view,
//! and it is bounded by the store's per-call timeout. On a Cluster, the combined `MGET` is
//! split per slot by the client, as a single check's is.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::{Handle, Id};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::redis_store::Link;
use super::{parse_before, refuses, verdict_of, Kind, StoreError, Verdict};

/// Most checks combined into one `MGET` (64, so at most 192 keys). Larger batches divide the
/// per-command cost further but make one slow reply delay more requests.
pub(super) const MAX_BATCH_CHECKS: usize = 64;

/// Most batches in flight per runtime (16). Further checks wait in the queue (within their
/// timeout) while Redis answers slowly, so a stalled server holds a bounded number of them.
const MAX_IN_FLIGHT: usize = 16;

/// Checks that may wait for a batcher (4096 per runtime); beyond that, callers wait to queue
/// within their own timeout.
const QUEUE_CAPACITY: usize = 4096;

/// One queued check: its keys in verdict order, the token's `iat`, where to answer.
struct Job {
    keys: Vec<(Kind, String)>,
    iat: Option<i64>,
    reply: oneshot::Sender<Result<Verdict, StoreError>>,
}

/// Opens a new lazy connection (standalone Redis), for one runtime.
pub(super) type OpenLink = Box<dyn Fn() -> Result<Link, StoreError> + Send + Sync>;

/// The batchers of one store, one per runtime that checks through it.
pub(super) struct Batchers {
    /// The store's shared connection, used when `open` is `None` or fails.
    link: Link,
    open: Option<OpenLink>,
    /// Bound on one batch's `MGET`: a reply that the callers may have stopped waiting for.
    batch_limit: Duration,
    queues: Mutex<Vec<(Id, mpsc::Sender<Job>, Link)>>,
}

impl Batchers {
    pub(super) fn new(link: Link, open: Option<OpenLink>, batch_limit: Duration) -> Self {
        Batchers {
            link,
            open,
            batch_limit,
            queues: Mutex::new(Vec::new()),
        }
    }

    /// The connection of the current runtime (for its other hot-path commands).
    pub(super) fn runtime_link(&self) -> Result<Link, StoreError> {
        self.queue().map(|(_, link)| link)
    }

    /// Checks `keys` (never empty) in the current runtime's next batch, within `timeout`.
    pub(super) async fn check(
        &self,
        keys: Vec<(Kind, String)>,
        iat: Option<i64>,
        timeout: Duration,
    ) -> Result<Verdict, StoreError> {
        let (queue, _) = self.queue()?;
        let (reply, answer) = oneshot::channel();
        let call = async {
            queue
                .send(Job { keys, iat, reply })
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

    /// The queue and connection of the current runtime's batcher, started on first use (and
    /// again if the previous one stopped). Batchers of runtimes that shut down are forgotten
    /// here.
    fn queue(&self) -> Result<(mpsc::Sender<Job>, Link), StoreError> {
        let runtime = Handle::try_current().map_err(|_| {
            StoreError::Unavailable("a revocation check needs a tokio runtime".into())
        })?;
        let id = runtime.id();
        let mut queues = self.queues.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, q, link)) = queues.iter().find(|(i, q, _)| *i == id && !q.is_closed()) {
            return Ok((q.clone(), link.clone()));
        }
        queues.retain(|(_, q, _)| !q.is_closed());
        // A connection of its own when possible; the shared one otherwise.
        let link = self
            .open
            .as_ref()
            .and_then(|open| open().ok())
            .unwrap_or_else(|| self.link.clone());
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        runtime.spawn(run_batcher(rx, link.clone(), self.batch_limit));
        queues.push((id, tx.clone(), link.clone()));
        Ok((tx, link))
    }
}

/// The batcher task of one runtime: runs until every sender (the store) is gone.
async fn run_batcher(mut queue: mpsc::Receiver<Job>, link: Link, batch_limit: Duration) {
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
        if jobs.len() < MAX_BATCH_CHECKS {
            // Let the tasks that are ready run first: those that check queue now.
            tokio::task::yield_now().await;
            while jobs.len() < MAX_BATCH_CHECKS {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
        }
        let batch = std::mem::replace(&mut jobs, Vec::with_capacity(MAX_BATCH_CHECKS));
        in_flight.spawn(run_batch(link.clone(), batch, batch_limit));
    }
    while in_flight.join_next().await.is_some() {}
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

fn answer_all(jobs: Vec<Job>, e: &StoreError) {
    for job in jobs {
        let _ = job.reply.send(Err(e.clone()));
    }
}

/// The verdict for one check from its values, in the order of its keys (token, family,
/// subject): the first entry found that refuses the token.
pub(super) fn verdict_for(
    keys: &[(Kind, String)],
    values: &[Option<Vec<u8>>],
    iat: Option<i64>,
) -> Verdict {
    for ((kind, _), value) in keys.iter().zip(values) {
        let Some(value) = value else { continue };
        let before = match kind {
            Kind::Subject => parse_before(value),
            Kind::Token | Kind::Family => None,
        };
        if refuses(*kind, before, iat) {
            return verdict_of(*kind);
        }
    }
    Verdict::Valid
}
