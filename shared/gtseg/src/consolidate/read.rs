//! Reading a batch: the payload's items and every worker's answer, inline or from the store.

use serde_json::Value;

use super::validate::Exclusion;
use super::{IO_CONCURRENCY, join_next};
use crate::config::Limits;
use crate::event::{AnnotationData, PayloadItem, WorkerAnswer, find_answer_object, from_value};
use crate::store::ObjectStore;
use crate::uri::S3Uri;

/// One worker's answer after reading, before decoding.
#[derive(Debug)]
pub(crate) struct WorkerInput {
    pub(crate) worker_id: String,
    pub(crate) answer: Result<WorkerAnswer, Exclusion>,
}

/// One image of the payload after reading.
#[derive(Debug)]
pub(crate) struct ImageInput {
    pub(crate) id: String,
    /// The mask's file name, from the id (see [`super::object_file_name`]).
    pub(crate) file: String,
    pub(crate) workers: Vec<WorkerInput>,
}

/// Reads every image's answers, several images at once, keeping payload order.
pub(crate) async fn read_images<S: ObjectStore>(
    store: &S,
    limits: Limits,
    items: Vec<(PayloadItem, String)>,
) -> Vec<ImageInput> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut slots: Vec<Option<ImageInput>> = (0..items.len()).map(|_| None).collect();
    for (i, (item, file)) in items.into_iter().enumerate() {
        while tasks.len() >= IO_CONCURRENCY {
            if let Some((k, img)) = join_next(&mut tasks).await {
                slots[k] = Some(img);
            }
        }
        let store = store.clone();
        tasks.spawn(async move { (i, read_image(&store, &limits, item, file).await) });
    }
    while let Some((k, img)) = join_next(&mut tasks).await {
        slots[k] = Some(img);
    }
    slots.into_iter().flatten().collect()
}

/// Reads every answer of one image (inline or from the store) and parses it.
async fn read_image<S: ObjectStore>(
    store: &S,
    limits: &Limits,
    item: PayloadItem,
    file: String,
) -> ImageInput {
    let mut workers = Vec::with_capacity(item.annotations.len());
    for (n, ann) in item.annotations.into_iter().enumerate() {
        let answer = if n >= limits.max_answers_per_image {
            Err(Exclusion::TooManyAnswers(limits.max_answers_per_image))
        } else {
            read_answer(store, limits, &ann.annotation_data).await
        };
        workers.push(WorkerInput {
            worker_id: ann.worker_id,
            answer,
        });
    }
    ImageInput {
        id: item.dataset_object_id,
        file,
        workers,
    }
}

async fn read_answer<S: ObjectStore>(
    store: &S,
    limits: &Limits,
    data: &AnnotationData,
) -> Result<WorkerAnswer, Exclusion> {
    let fetched;
    let text: &[u8] = match (&data.content, &data.s3_uri) {
        (Some(c), _) => c.as_bytes(),
        (None, Some(u)) => {
            let uri = S3Uri::parse(u).map_err(Exclusion::BadUri)?;
            fetched = store
                .get(&uri, limits.max_payload_bytes)
                .await
                .map_err(Exclusion::Unreadable)?;
            &fetched
        }
        (None, None) => return Err(Exclusion::NoData),
    };
    parse_answer(text)
}

/// Parses a worker's answer JSON (the `content` string, or the object an `s3Uri` names) and
/// finds the answer by its shape.
pub fn parse_answer(json: &[u8]) -> Result<WorkerAnswer, Exclusion> {
    let root: Value = serde_json::from_slice(json).map_err(Exclusion::NotJson)?;
    let obj = find_answer_object(&root).ok_or(Exclusion::NoAnswerObject)?;
    from_value("the worker answer", obj).map_err(Exclusion::Shape)
}
