//! The threads that decide a batch's images.

use std::sync::Mutex;
use std::sync::mpsc;

/// `f` over every item on up to `threads` scoped threads, each taking the next item when it
/// is free; results in input order. A panic in `f` is re-raised here (by the thread scope).
pub(crate) fn par_map<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let n = items.len();
    let queue = Mutex::new(items.into_iter().enumerate());
    let (done, results) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, n.max(1)) {
            let done = done.clone();
            let (queue, f) = (&queue, &f);
            scope.spawn(move || {
                // A poisoned queue means another thread panicked: the scope re-raises it.
                while let Some((i, item)) = queue.lock().ok().and_then(|mut q| q.next()) {
                    let _ = done.send((i, f(item)));
                }
            });
        }
    });
    drop(done);
    let mut out: Vec<(usize, R)> = results.into_iter().collect();
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
