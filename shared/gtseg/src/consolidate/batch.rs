//! The batch's scheduler: the payload's images read a few at a time, each handed to a task
//! once its answers are read, within the memory and threads of the budget; the results in
//! payload order.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::budget::Budget;
use super::payload::Items;
use super::read::{ImageInput, read_image};
use super::{BatchContext, BatchError, decode};
use crate::store::ObjectStore;
use crate::uri::S3Uri;

/// One batch's store, settings, payload and budget: what every image's task shares.
#[derive(Debug)]
pub(super) struct Batch<S> {
    pub(super) store: S,
    pub(super) ctx: BatchContext,
    pub(super) payload: S3Uri,
    pub(super) budget: Arc<Budget>,
    /// The payload, opened before the first pass.
    pub(super) opened: std::sync::Mutex<Option<Items>>,
}

impl<S: ObjectStore> Batch<S> {
    pub(super) async fn open(&self) -> Result<Items, BatchError> {
        Items::open(
            &self.store,
            &self.payload,
            self.ctx.limits.max_payload_bytes,
        )
        .await
    }

    /// The payload's items from the start: the one opened already, else a new read.
    async fn items(&self) -> Result<Items, BatchError> {
        let opened = self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match opened {
            Some(items) => Ok(items),
            None => self.open().await,
        }
    }

    /// Runs `each` on every image of the payload, its answers read: a few images at once,
    /// within the budget; the results in payload order. The first error stops the batch (the
    /// images in flight are dropped).
    pub(super) async fn each_image<R, F, Fut>(
        self: &Arc<Self>,
        each: F,
    ) -> Result<Vec<R>, BatchError>
    where
        R: Send + 'static,
        F: Fn(Arc<Self>, ImageInput) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, BatchError>> + Send + 'static,
    {
        let each = Arc::new(each);
        let mut items = self.items().await?;
        let mut running = tokio::task::JoinSet::new();
        let mut done: BTreeMap<usize, R> = BTreeMap::new();
        let mut more = true;
        loop {
            while more && running.len() < self.budget.window() {
                self.budget.room_to_read().await;
                let Some(item) = items.next().await? else {
                    more = false;
                    break;
                };
                let (batch, each, index) = (Arc::clone(self), Arc::clone(&each), item.index);
                running.spawn(async move {
                    let result = async {
                        let image = read_image(&batch.store, &batch.ctx.limits, item).await?;
                        // Its answers count against the budget until it is done.
                        let held = batch.budget.hold(image.bytes());
                        let out = each(Arc::clone(&batch), image).await;
                        drop(held);
                        out
                    };
                    (index, result.await)
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (index, result) =
                joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
            done.insert(index, result?);
        }
        Ok(done.into_values().collect())
    }
}

/// Memory that deciding `image` needs besides its answers: the decoders and row buffers of
/// its workers, and its encoded outputs (see `decode::memory`).
pub(super) fn estimate(image: &ImageInput) -> u64 {
    let sizes: Vec<(u32, u32)> = image
        .workers
        .iter()
        .filter_map(|w| w.mask().ok())
        .filter_map(|a| a.png_size())
        .collect();
    let Some(&(w, h)) = sizes.first() else {
        return 0;
    };
    decode::memory(w, h, sizes.len())
}
