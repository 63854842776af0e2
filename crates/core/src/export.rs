//! The export queue: a bounded hand-off from the request path (the log
//! phase) to an exporter task (access logs, traces, metrics pushes).
//!
//! [`Queue::try_push`] never blocks and never allocates beyond the bound:
//! when the queue is full, or its consumer is gone, the record is dropped
//! and counted ([`Queue::dropped`]), so a slow or dead exporter costs the
//! request path nothing but a counter. The consumer side ([`Consumer`])
//! receives records one by one or in batches, and sees the end of the
//! stream once every producer handle is dropped.
//!
//! A plugin typically gets its queue from the gateway's resources
//! (`cx.resources.shared(key, ..)` holding the [`Queue`] and the
//! [`Consumer`] handed to a background task), so the queue and its
//! exporter survive reloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::metrics::Counter;

#[derive(Debug, Default)]
struct Stats {
    pushed: AtomicU64,
    dropped: AtomicU64,
}

/// The producer side: cheap to clone, every clone feeds the same consumer.
#[derive(Debug)]
pub struct Queue<T> {
    tx: mpsc::Sender<T>,
    stats: Arc<Stats>,
    /// Also counts dropped records, when set (a metric an exporter shows).
    dropped_metric: Option<Counter>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            stats: Arc::clone(&self.stats),
            dropped_metric: self.dropped_metric.clone(),
        }
    }
}

/// Why a record was not queued; it is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError<T> {
    /// The queue holds `capacity` records already.
    #[error("export queue full")]
    Full(T),
    /// The consumer is gone.
    #[error("export queue closed")]
    Closed(T),
}

/// The consumer side of a [`Queue`]; one per queue.
#[derive(Debug)]
pub struct Consumer<T> {
    rx: mpsc::Receiver<T>,
    stats: Arc<Stats>,
}

impl<T> Queue<T> {
    /// A queue holding at most `capacity` records (at least 1).
    pub fn bounded(capacity: usize) -> (Queue<T>, Consumer<T>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let stats = Arc::new(Stats::default());
        (
            Queue {
                tx,
                stats: Arc::clone(&stats),
                dropped_metric: None,
            },
            Consumer { rx, stats },
        )
    }

    /// Also counts dropped records in `counter` (for example a
    /// `gatehouse_export_dropped_total{queue="..."}` series).
    pub fn with_dropped_metric(mut self, counter: Counter) -> Self {
        self.dropped_metric = Some(counter);
        self
    }

    /// Queues `record` if there is room; never blocks or waits. A record
    /// that does not fit (full, or no consumer) is counted as dropped and
    /// handed back.
    pub fn try_push(&self, record: T) -> Result<(), PushError<T>> {
        match self.tx.try_send(record) {
            Ok(()) => {
                self.stats.pushed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                if let Some(c) = &self.dropped_metric {
                    c.inc();
                }
                Err(match e {
                    mpsc::error::TrySendError::Full(r) => PushError::Full(r),
                    mpsc::error::TrySendError::Closed(r) => PushError::Closed(r),
                })
            }
        }
    }

    /// Records queued so far.
    pub fn pushed(&self) -> u64 {
        self.stats.pushed.load(Ordering::Relaxed)
    }

    /// Records dropped so far (full or closed).
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// The bound.
    pub fn capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// Records waiting for the consumer.
    pub fn len(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Consumer<T> {
    /// The next record; `None` once every [`Queue`] handle is dropped and
    /// the queue is drained.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }

    /// Waits for at least one record, then moves up to `max` waiting
    /// records into `batch`; returns how many (0 at the end of the stream).
    pub async fn recv_batch(&mut self, batch: &mut Vec<T>, max: usize) -> usize {
        self.rx.recv_many(batch, max.max(1)).await
    }

    /// Like [`Consumer::recv_batch`] for a plain thread (not inside an
    /// async runtime): blocks for the first record, then takes what else
    /// is waiting, up to `max`.
    pub fn blocking_recv_batch(&mut self, batch: &mut Vec<T>, max: usize) -> usize {
        let Some(first) = self.rx.blocking_recv() else {
            return 0;
        };
        batch.push(first);
        let mut n = 1;
        while n < max.max(1) {
            match self.rx.try_recv() {
                Ok(r) => {
                    batch.push(r);
                    n += 1;
                }
                Err(_) => break,
            }
        }
        n
    }

    /// A record if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Records dropped by the producers so far.
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_plain_thread_receives_batches_and_sees_the_end() {
        let (q, mut c) = Queue::bounded(8);
        for i in 0..5 {
            q.try_push(i).unwrap();
        }
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut batch = Vec::new();
            loop {
                let n = c.blocking_recv_batch(&mut batch, 3);
                if n == 0 {
                    return all;
                }
                assert!(n <= 3);
                all.append(&mut batch);
            }
        });
        std::thread::sleep(Duration::from_millis(20));
        q.try_push(5).unwrap();
        drop(q);
        assert_eq!(reader.join().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn full_queue_drops_and_counts_without_blocking() {
        let (q, mut c) = Queue::bounded(2);
        assert_eq!(q.capacity(), 2);
        assert!(q.try_push(1).is_ok());
        assert!(q.try_push(2).is_ok());
        assert_eq!(q.len(), 2);
        assert_eq!(q.try_push(3), Err(PushError::Full(3)));
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pushed(), 2);
        assert_eq!(c.try_recv(), Some(1));
        assert!(q.try_push(4).is_ok());
        assert_eq!(c.try_recv(), Some(2));
        assert_eq!(c.try_recv(), Some(4));
        assert_eq!(c.try_recv(), None);
        assert!(q.is_empty());
        assert_eq!(c.dropped(), 1);
    }

    #[test]
    fn a_gone_consumer_counts_as_dropped() {
        let metrics = crate::metrics::Metrics::default();
        let counter = metrics
            .counter(
                "gatehouse_export_dropped_total",
                "Dropped.",
                &[("queue", "t")],
            )
            .unwrap();
        let (q, c) = Queue::bounded(4);
        let q = q.with_dropped_metric(counter.clone());
        drop(c);
        assert_eq!(q.try_push("x"), Err(PushError::Closed("x")));
        assert_eq!(q.dropped(), 1);
        assert_eq!(counter.get(), 1);
    }

    #[tokio::test]
    async fn consumer_sees_the_end_once_producers_are_gone() {
        let (q, mut c) = Queue::bounded(8);
        let q2 = q.clone();
        q.try_push(1).unwrap();
        q2.try_push(2).unwrap();
        drop((q, q2));
        let mut batch = Vec::new();
        assert_eq!(c.recv_batch(&mut batch, 10).await, 2);
        assert_eq!(batch, [1, 2]);
        assert_eq!(c.recv().await, None);
        assert_eq!(c.recv_batch(&mut batch, 10).await, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_producers_account_for_every_record() {
        const PRODUCERS: u64 = 8;
        const EACH: u64 = 20_000;
        let (q, mut c) = Queue::bounded(64);
        let consumer = tokio::spawn(async move {
            let mut got = 0u64;
            let mut sum = 0u64;
            let mut batch = Vec::new();
            loop {
                batch.clear();
                if c.recv_batch(&mut batch, 32).await == 0 {
                    break;
                }
                got += batch.len() as u64;
                sum += batch.iter().sum::<u64>();
                // A slow exporter: producers must drop, not wait.
                if got % 512 < 32 {
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            (got, sum, c.dropped())
        });
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|_| {
                let q = q.clone();
                std::thread::spawn(move || {
                    let mut ok = 0u64;
                    let mut ok_sum = 0u64;
                    for i in 0..EACH {
                        if q.try_push(i).is_ok() {
                            ok += 1;
                            ok_sum += i;
                        }
                    }
                    (ok, ok_sum)
                })
            })
            .collect();
        let mut ok = 0;
        let mut ok_sum = 0;
        for p in producers {
            let (n, s) = p.join().unwrap();
            ok += n;
            ok_sum += s;
        }
        assert_eq!(q.pushed(), ok);
        assert_eq!(q.pushed() + q.dropped(), PRODUCERS * EACH);
        drop(q);
        let (got, sum, dropped) = consumer.await.unwrap();
        assert_eq!(got, ok, "every queued record reaches the consumer");
        assert_eq!(sum, ok_sum, "and only those");
        assert_eq!(dropped, PRODUCERS * EACH - ok);
    }
}
