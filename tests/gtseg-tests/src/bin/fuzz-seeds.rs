//! Seeds the fuzz corpora (`shared/gtseg-fuzz/corpus/<target>/`) from the sample events, so the
//! fuzzers start from realistic events, payloads, answers and PNGs.

use std::path::Path;

use base64::Engine as _;
use gtseg_tests::events::sample_files;
use serde_json::Value;

fn answer_png(answer: &Value) -> Option<Vec<u8>> {
    let obj = gtseg::event::find_answer_object(answer)?;
    let b64 = obj["labeledImage"]["pngImageData"].as_str()?;
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

fn main() -> std::io::Result<()> {
    let corpus = gtseg_tests::workspace_root().join("shared/gtseg-fuzz/corpus");
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();
    for (rel, bytes) in sample_files() {
        if rel.ends_with(".png") {
            seeds.push(("mask_png", bytes));
            continue;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if let Some(items) = v.as_array() {
            seeds.push(("consolidation_event", bytes.clone()));
            for content in items
                .iter()
                .flat_map(|i| i["annotations"].as_array().cloned().unwrap_or_default())
            {
                if let Some(c) = content["annotationData"]["content"].as_str() {
                    seeds.push(("worker_answer", c.as_bytes().to_vec()));
                    if let Some(png) = serde_json::from_str(c).ok().as_ref().and_then(answer_png) {
                        seeds.push(("mask_png", png));
                    }
                }
            }
        } else if let Some(png) = answer_png(&v) {
            seeds.push(("worker_answer", bytes.clone()));
            seeds.push(("mask_png", png));
        } else {
            seeds.push(("consolidation_event", bytes.clone()));
        }
    }
    for (i, (target, bytes)) in seeds.iter().enumerate() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{i:03}")), bytes)?;
    }
    println!(
        "wrote {} seeds under {}",
        seeds.len(),
        Path::new(&corpus).display()
    );
    Ok(())
}
