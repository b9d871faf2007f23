//! The worker task templates (`templates/*.liquid.html`) rendered by a real Liquid engine on
//! the pre-annotation output of every sample event, with stand-ins for Ground Truth's
//! filters, then parsed as HTML: what the `crowd-semantic-segmentation` element receives must
//! decode back to exactly what the functions produced.

use std::time::SystemTime;

use gtseg::{Config, LocalStore, Service};
use gtseg_tests::events::{LABEL_CONFIG_URI, VERIFY_CATEGORIES, VERIFY_CONFIG_URI};
use gtseg_tests::{copy_tree, temp_dir, workspace_root};
use liquid_core::{
    Display_filter, Filter, FilterReflection, ParseFilter, Runtime, Value, ValueView,
};
use serde_json::json;

/// Ground Truth's `grant_read_access`: an `s3://` URI becomes a presigned `https://` URL.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "grant_read_access",
    description = "s3:// URI to a signed https URL (stand-in).",
    parsed(GrantReadAccessFilter)
)]
struct GrantReadAccess;

#[derive(Debug, Default, Display_filter)]
#[name = "grant_read_access"]
struct GrantReadAccessFilter;

impl Filter for GrantReadAccessFilter {
    fn evaluate(
        &self,
        input: &dyn ValueView,
        _runtime: &dyn Runtime,
    ) -> liquid_core::Result<Value> {
        let s = input.to_kstr();
        let (bucket, key) = s
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .ok_or_else(|| {
                liquid_core::Error::with_msg(format!(
                    "grant_read_access: {s:?} is not an s3:// URI"
                ))
            })?;
        Ok(Value::scalar(format!(
            "https://{bucket}.s3.amazonaws.com/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=0123abcd"
        )))
    }
}

/// Ground Truth's `to_json`: the value as JSON text.
#[derive(Clone, ParseFilter, FilterReflection)]
#[filter(
    name = "to_json",
    description = "The value as JSON.",
    parsed(ToJsonFilter)
)]
struct ToJson;

#[derive(Debug, Default, Display_filter)]
#[name = "to_json"]
struct ToJsonFilter;

impl Filter for ToJsonFilter {
    fn evaluate(
        &self,
        input: &dyn ValueView,
        _runtime: &dyn Runtime,
    ) -> liquid_core::Result<Value> {
        let text = serde_json::to_string(&input.to_value())
            .map_err(|e| liquid_core::Error::with_msg(e.to_string()))?;
        Ok(Value::scalar(text))
    }
}

fn render(template: &str, task_input: &serde_json::Value) -> String {
    let parser = liquid::ParserBuilder::with_stdlib()
        .filter(GrantReadAccess)
        .filter(ToJson)
        .build()
        .unwrap();
    let text = std::fs::read_to_string(workspace_root().join("templates").join(template)).unwrap();
    let globals = liquid::model::to_object(&json!({"task": {"input": task_input}})).unwrap();
    parser.parse(&text).unwrap().render(&globals).unwrap()
}

/// The `crowd-semantic-segmentation` element's attributes, entity-decoded.
fn element_attrs(html: &str) -> std::collections::BTreeMap<String, String> {
    attrs_of(html, "crowd-semantic-segmentation")
}

/// The attributes of the first `element` of the page, entity-decoded.
fn attrs_of(html: &str, element: &str) -> std::collections::BTreeMap<String, String> {
    let dom = tl::parse(html, tl::ParserOptions::default()).unwrap();
    let parser = dom.parser();
    let node = dom
        .query_selector(element)
        .unwrap()
        .next()
        .expect("the element");
    let tag = node.get(parser).unwrap().as_tag().unwrap();
    tag.attributes()
        .iter()
        .map(|(k, v)| {
            (
                k.into_owned(),
                html_escape::decode_html_entities(&v.unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

async fn pre_annotation(event_file: &str, store: &std::path::Path) -> serde_json::Value {
    pre_annotation_of(&sample(event_file), LABEL_CONFIG_URI, store).await
}

fn sample(event_file: &str) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(workspace_root().join("events").join(event_file)).unwrap(),
    )
    .unwrap()
}

/// The pre-annotation response to `ev`, with the labels of `config` pinned.
async fn pre_annotation_of(
    ev: &serde_json::Value,
    config: &str,
    store: &std::path::Path,
) -> serde_json::Value {
    let config = Config {
        label_category_config: Some(config.into()),
        ..Config::default()
    };
    let s = Service::new(LocalStore::new(store), config);
    s.replay(ev, SystemTime::now()).await.unwrap()
}

fn assert_rendered(html: &str) {
    // (A lone "}}" is fine: it closes nested JSON objects.)
    for leftover in ["{{", "{%", "%}"] {
        assert!(
            !html.contains(leftover),
            "unrendered Liquid ({leftover}) in:\n{html}"
        );
    }
}

#[tokio::test]
async fn templates_render_every_sample_events_task_input() {
    let store = temp_dir("templates");
    copy_tree(&workspace_root().join("events/store"), &store).unwrap();
    for event in [
        "pre-annotation/image-line.json",
        "pre-annotation/adjustment-line.json",
    ] {
        let out = pre_annotation(event, &store).await;
        assert_eq!(out["isHumanAnnotationRequired"], true);
        let input = &out["taskInput"];
        for template in ["labeling.liquid.html", "adjustment.liquid.html"] {
            let html = render(template, input);
            assert_rendered(&html);
            let attrs = element_attrs(&html);
            assert_eq!(attrs["name"], "crowd-semantic-segmentation");
            let src = &attrs["src"];
            assert!(
                src.starts_with(
                    "https://gt-example-bucket.s3.amazonaws.com/images/street-0001.png?"
                ),
                "{src}"
            );
            let labels: serde_json::Value = serde_json::from_str(&attrs["labels"]).unwrap();
            assert_eq!(labels, input["labels"], "{template} on {event}");
            let adjustment_line = event.contains("adjustment");
            let has_initial = attrs.contains_key("initial-value");
            assert_eq!(
                has_initial,
                adjustment_line && template.starts_with("adjustment"),
                "{template} on {event}"
            );
            if has_initial {
                let iv: serde_json::Value =
                    serde_json::from_str(&attrs["initial-value"]).expect("initial-value is JSON");
                assert!(
                    iv["src"]
                        .as_str()
                        .unwrap()
                        .starts_with("https://gt-example-bucket.s3.amazonaws.com/output/")
                );
                assert_eq!(iv["labelMappings"], input["initialValue"]["labelMappings"]);
            }
        }
    }
    // A text line needs no worker: Ground Truth never renders a task for it.
    let out = pre_annotation("pre-annotation/text-line.json", &store).await;
    assert_eq!(out["isHumanAnnotationRequired"], false);
}

#[tokio::test]
async fn awkward_labels_survive_the_round_trip_through_html() {
    let store = temp_dir("templates-awkward");
    copy_tree(&workspace_root().join("events/store"), &store).unwrap();
    let awkward = [
        "say \"cheese\"",
        "fish & chips",
        "<script>alert(1)</script>",
        "it's",
        "Straße",
        "車",
        "emoji 🚗",
        "a'b\"c<d>e&f",
    ];
    let config = json!({"document-version": "2018-11-28", "labels": awkward.iter().map(|l| json!({"label": l})).collect::<Vec<_>>()});
    std::fs::write(
        store.join("gt-example-bucket/config/labels.json"),
        config.to_string(),
    )
    .unwrap();
    let out = pre_annotation("pre-annotation/adjustment-line.json", &store).await;
    let input = &out["taskInput"];
    for template in ["labeling.liquid.html", "adjustment.liquid.html"] {
        let html = render(template, input);
        assert_rendered(&html);
        assert!(!html.contains("<script>alert"), "labels are escaped");
        let attrs = element_attrs(&html);
        let labels: Vec<String> = serde_json::from_str(&attrs["labels"]).unwrap();
        assert_eq!(labels, awkward, "{template}");
    }
}

/// The verification template on a verification line whose earlier classes and whose
/// categories are hostile: the classifier gets this job's categories and the earlier mask as
/// its overlay, every name decodes back exactly, and nothing in the page is a script from data.
#[tokio::test]
async fn the_verification_template_shows_the_earlier_mask_and_the_categories() {
    let store = temp_dir("templates-verify");
    copy_tree(&workspace_root().join("events/store"), &store).unwrap();
    let hostile = "<img src=x onerror=alert(1)>";
    let mut line = sample("pre-annotation/verification-line.json");
    let map = &mut line["dataObject"]["street-scenes-v1-ref-metadata"]["internal-color-map"];
    map["1"]["class-name"] = json!(hostile);
    map["2"]["class-name"] = json!("say \"cheese\" & it's");
    let earlier: Vec<String> = [hostile, "say \"cheese\" & it's", "person", "building"]
        .map(str::to_owned)
        .to_vec();
    for (categories, hostile_categories) in [
        (VERIFY_CATEGORIES.map(str::to_owned).to_vec(), false),
        (
            vec![
                "Label(s) correct".to_owned(),
                hostile.to_owned(),
                "a'b\"c<d>e&f".to_owned(),
            ],
            true,
        ),
    ] {
        if hostile_categories {
            let config = json!({"document-version": "2018-11-28",
                "labels": categories.iter().map(|l| json!({"label": l})).collect::<Vec<_>>(),
                "auditLabelAttributeName": "street-scenes-v1-ref"});
            std::fs::write(
                store.join("gt-example-bucket/config/verification-labels.json"),
                config.to_string(),
            )
            .unwrap();
        }
        let out = pre_annotation_of(&line, VERIFY_CONFIG_URI, &store).await;
        assert_eq!(out["isHumanAnnotationRequired"], true);
        let input = &out["taskInput"];
        let html = render("verification.liquid.html", input);
        assert_rendered(&html);
        assert!(!html.contains("<img src=x"), "names are escaped:\n{html}");
        let attrs = attrs_of(&html, "crowd-image-classifier");
        assert_eq!(attrs["name"], "crowd-image-classifier");
        assert!(
            attrs["src"]
                .starts_with("https://gt-example-bucket.s3.amazonaws.com/images/street-0001.png?")
        );
        let shown: Vec<String> = serde_json::from_str(&attrs["categories"]).unwrap();
        assert_eq!(shown, categories);
        let overlay: serde_json::Value =
            serde_json::from_str(&attrs["overlay"]).expect("overlay is JSON");
        let seg = &overlay["semanticSegmentation"];
        let labels: Vec<String> = serde_json::from_value(seg["labels"].clone()).unwrap();
        assert_eq!(labels, earlier);
        assert_eq!(
            seg["labelMappings"],
            input["overlay"]["semanticSegmentation"]["labelMappings"]
        );
        assert_eq!(seg["labelMappings"][hostile]["color"], "#2ca02c");
        assert!(
            seg["src"]
                .as_str()
                .unwrap()
                .starts_with("https://gt-example-bucket.s3.amazonaws.com/output/street-scenes-v1/")
        );
        // The worker's comment box is there; the only script is the crowd elements' own.
        let dom = tl::parse(&html, tl::ParserOptions::default()).unwrap();
        assert_eq!(dom.query_selector("worker-comment").unwrap().count(), 1);
        assert_eq!(dom.query_selector("script").unwrap().count(), 1);
        assert_eq!(dom.query_selector("img").unwrap().count(), 0);
    }
}
