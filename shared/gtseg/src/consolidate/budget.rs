//! The threads and the memory a batch may use.
//!
//! A batch is read and decided a few images at a time. Each image's decoding takes one CPU
//! (more when no other image is waiting for one) and the memory its decoders, row buffers
//! and encoded outputs need, from a budget set by the function's memory. An image larger than
//! the whole budget runs alone. The answers of images read but not yet done are counted too,
//! and reading waits while they hold half the budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::{Notify, Semaphore};

/// Memory kept back from the budget for the runtime, the SDK and the payload's read buffer.
const RESERVED: u64 = 96 << 20;
/// The smallest budget, whatever the function's memory.
const MINIMUM: u64 = 64 << 20;

/// The threads and memory of one batch (shared by its images' tasks).
#[derive(Debug)]
pub(crate) struct Budget {
    threads: usize,
    cpu: Arc<Semaphore>,
    /// Memory for decoding, in KiB.
    memory: Arc<Semaphore>,
    memory_kib: u32,
    /// Images read and waiting for a CPU.
    waiting: AtomicUsize,
    /// Bytes of answers held by images read and not yet done.
    held: AtomicU64,
    released: Notify,
}

impl Budget {
    /// A budget of `threads` CPUs and `memory_bytes` of memory (the function's; some is kept
    /// back).
    pub(crate) fn new(threads: usize, memory_bytes: u64) -> Self {
        let usable = memory_bytes.saturating_sub(RESERVED).max(MINIMUM);
        let memory_kib = u32::try_from(usable >> 10).unwrap_or(u32::MAX >> 4);
        Self {
            threads: threads.max(1),
            cpu: Arc::new(Semaphore::new(threads.max(1))),
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
            waiting: AtomicUsize::new(0),
            held: AtomicU64::new(0),
            released: Notify::new(),
        }
    }

    /// The images read ahead of the ones being decided, at most.
    pub(crate) fn window(&self) -> usize {
        self.threads + 2
    }

    /// Waits until the answers held by unfinished images are under half the budget, so that
    /// reading more cannot outrun the memory.
    pub(crate) async fn room_to_read(&self) {
        let half = u64::from(self.memory_kib) << 9;
        loop {
            let notified = self.released.notified();
            if self.held.load(Ordering::Acquire) < half {
                return;
            }
            notified.await;
        }
    }

    /// Counts `bytes` of answers as held until the returned guard is dropped.
    pub(crate) fn hold(self: &Arc<Self>, bytes: u64) -> Held {
        self.held.fetch_add(bytes, Ordering::AcqRel);
        Held {
            budget: Arc::clone(self),
            bytes,
        }
    }

    /// Runs `work` on a blocking thread once a CPU and `bytes` of memory are free (all the
    /// memory, for work larger than the whole budget). `work` gets the threads it may use: one,
    /// or more when no other image waits for a CPU. A panic in `work` is raised here.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        bytes: u64,
        work: impl FnOnce(usize) -> T + Send + 'static,
    ) -> T {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_kib);
        self.waiting.fetch_add(1, Ordering::AcqRel);
        // The semaphores are never closed, so acquiring cannot fail.
        let memory = Arc::clone(&self.memory).acquire_many_owned(kib).await;
        let cpu = Arc::clone(&self.cpu).acquire_owned().await;
        let others_waiting = self.waiting.fetch_sub(1, Ordering::AcqRel) > 1;
        let mut extra = Vec::new();
        if !others_waiting {
            while extra.len() + 1 < self.threads {
                match Arc::clone(&self.cpu).try_acquire_owned() {
                    Ok(p) => extra.push(p),
                    Err(_) => break,
                }
            }
        }
        let threads = 1 + extra.len();
        let out = tokio::task::spawn_blocking(move || work(threads))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        drop((memory, cpu, extra));
        out
    }
}

/// Answers counted as held (see [`Budget::hold`]).
#[derive(Debug)]
pub(crate) struct Held {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_image_gets_every_thread() {
        let budget = Budget::new(4, 1 << 30);
        assert_eq!(budget.run(1 << 20, |t| t).await, 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_bounds_how_many_images_decode_at_once() {
        // 100 MiB to spend; each image needs 40, so at most two at once.
        let budget = Arc::new(Budget::new(8, RESERVED + (100 << 20)));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let (b, now, most) = (Arc::clone(&budget), Arc::clone(&now), Arc::clone(&most));
            tasks.push(tokio::spawn(async move {
                b.run(40 << 20, move |_| {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "{most:?}");
        // An image larger than the whole budget still runs, alone.
        assert_eq!(budget.run(1 << 40, |_| 7).await, 7);
    }

    #[tokio::test]
    async fn reading_waits_while_answers_hold_half_the_budget() {
        let budget = Arc::new(Budget::new(2, RESERVED + (100 << 20)));
        let held = budget.hold(60 << 20);
        let blocked = tokio::time::timeout(Duration::from_millis(50), budget.room_to_read());
        assert!(blocked.await.is_err(), "60 of 100 MiB held: no room");
        drop(held);
        let free = tokio::time::timeout(Duration::from_millis(50), budget.room_to_read());
        assert!(free.await.is_ok());
    }
}
