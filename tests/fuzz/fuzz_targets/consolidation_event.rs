//! Any bytes as a consolidation event, a payload, or a pre-annotation event: every parser and
//! the pure logic behind them must answer with a value or an error, never a panic.
#![no_main]

use gtseg::event::{ConsolidationEvent, PayloadItem, PreAnnotationEvent, from_slice, from_value};
use gtseg::{ClassList, S3Uri, job_name, object_file_name};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = from_slice::<ConsolidationEvent>("event", data) {
        let _ = job_name(&ev.labeling_job_arn);
        let _ = S3Uri::parse(&ev.payload.s3_uri);
        if let Some(cats) = &ev.label_categories {
            let _ = ClassList::from_categories(cats);
        }
        let _ = serde_json::to_vec(&ev);
    }
    if let Ok(items) = from_slice::<Vec<Value>>("payload", data) {
        for item in &items {
            if let Ok(it) = from_value::<PayloadItem>("item", item) {
                if let Ok(name) = object_file_name(&it.dataset_object_id) {
                    assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
                }
                for a in &it.annotations {
                    if let Some(c) = &a.annotation_data.content {
                        let _ = gtseg::parse_answer(c.as_bytes());
                    }
                }
            }
        }
    }
    if let Ok(ev) = from_slice::<PreAnnotationEvent>("event", data) {
        if let Ok(classes) = ClassList::new(["car", "road"]) {
            let (resp, skip) = gtseg::build_task(&ev, &classes, None);
            assert_eq!(resp.is_human_annotation_required, skip.is_none());
        }
    }
});
