//! Any bytes as a consolidation event, a payload, or a pre-annotation event: every parser and
//! the pure logic behind them (the verification category rule included) must answer with a
//! value or an error, never a panic.
#![no_main]

use gtseg::event::{ConsolidationEvent, PayloadItem, PreAnnotationEvent, from_slice, from_value};
use gtseg::fuzzing::{Ballot, ParsedAnswer, consolidate_categories, object_file_name};
use gtseg::{ClassList, S3Uri, job_name};
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
        // Verification answers go through the category rule: workers by id, categories by
        // a small hash of the label, so that any payload is a batch for it.
        let mut verdicts: Vec<Vec<(String, usize)>> = Vec::new();
        for item in &items {
            if let Ok(it) = from_value::<PayloadItem>("item", item) {
                if let Ok(name) = object_file_name(&it.dataset_object_id) {
                    assert!(!name.contains('/') && !name.starts_with('.'), "{name}");
                }
                let mut image = Vec::new();
                for a in &it.annotations {
                    if let Some(c) = &a.annotation_data.content {
                        if let Ok(ParsedAnswer::Verification(v)) = gtseg::fuzzing::parse_answer(c.as_bytes())
                        {
                            image.push((a.worker_id.clone(), v.label.len() % 4));
                        }
                    }
                }
                verdicts.push(image);
            }
        }
        let ballots: Vec<Vec<Ballot<'_>>> = verdicts
            .iter()
            .map(|i| {
                i.iter()
                    .map(|(w, c)| Ballot {
                        worker: w,
                        category: *c,
                    })
                    .collect()
            })
            .collect();
        let fit = consolidate_categories(3, &ballots);
        for (v, b) in fit.verdicts.iter().zip(&ballots) {
            let b: Vec<&Ballot<'_>> = b.iter().filter(|b| b.category < 3).collect();
            assert_eq!(v.is_some(), !b.is_empty());
            if let Some(v) = v {
                assert!(
                    v.category < 3 && (0.0..=1.0).contains(&v.confidence),
                    "{v:?}"
                );
            }
        }
    }
    if let Ok(ev) = from_slice::<PreAnnotationEvent>("event", data) {
        if let Ok(classes) = ClassList::new(["car", "road"]) {
            let (resp, skip) = gtseg::fuzzing::build_task(&ev, &classes, None);
            assert_eq!(resp.is_human_annotation_required, skip.is_none());
        }
    }
});
