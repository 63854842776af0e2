//! Concurrency protection per service: at most `max_in_flight` requests
//! in flight (until their response body has been sent), an optional bounded
//! queue for the rest, and a queue timeout. Built on tokio's semaphore,
//! whose uncontended acquire is a single atomic operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Full, and the queue is full (or there is none).
    QueueFull,
    /// Waited `queue_timeout` without getting a slot.
    Timeout,
}

/// The limit of one service.
#[derive(Debug)]
pub struct Limit {
    slots: Arc<Semaphore>,
    queued: AtomicUsize,
    queue_size: usize,
    queue_timeout: Duration,
}

impl Limit {
    /// From validated config.
    pub fn new(c: &gatehouse_config::Concurrency) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(c.max_in_flight)),
            queued: AtomicUsize::new(0),
            queue_size: c.queue_size,
            queue_timeout: c.queue_timeout,
        }
    }

    /// The queue timeout (for Retry-After hints).
    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// Takes a slot, waiting in the queue if allowed. The slot is released
    /// when the permit is dropped.
    pub async fn acquire(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        // Join the queue only if there is room.
        let mut n = self.queued.load(Ordering::Relaxed);
        loop {
            if n >= self.queue_size {
                return Err(Rejected::QueueFull);
            }
            match self
                .queued
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => n = actual,
            }
        }
        let waited =
            tokio::time::timeout(self.queue_timeout, self.slots.clone().acquire_owned()).await;
        self.queued.fetch_sub(1, Ordering::AcqRel);
        match waited {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; treat it like a timeout.
            Ok(Err(_)) | Err(_) => Err(Rejected::Timeout),
        }
    }
}
