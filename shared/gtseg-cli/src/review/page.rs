//! The page: the template with its style, its script and its data, and a policy that allows
//! only that style and that script. Every text from the data reaches the page as JSON that
//! the page's own script writes with `textContent`.

use base64::Engine as _;
use serde::Serialize;
use sha2::Digest as _;

use super::rows::{Class, Failed, Row, WorkerRank};

/// What the page shows, as its JSON block: the kept rows, and figures over every line.
#[derive(Debug, Serialize)]
pub(super) struct Data {
    pub(super) attribute: String,
    /// Every line of the manifest.
    pub(super) images: usize,
    /// The worst images, worst first, with their pictures.
    pub(super) rows: Vec<Row>,
    /// Lines without a label to show: how many, and the first of them.
    pub(super) failed_count: usize,
    pub(super) failed: Vec<Failed>,
    /// Images by agreement, in tenths, over every line.
    pub(super) histogram: [u64; 10],
    /// Every worker, ranked by mean agreement over every line.
    pub(super) workers: Vec<WorkerRank>,
    pub(super) classes: Vec<Class>,
}

/// The page: the template with its style, its script, its data and a policy that allows
/// only that style and that script.
pub(super) fn page(data: &Data) -> anyhow::Result<String> {
    const HTML: &str = include_str!("page.html");
    const STYLE: &str = include_str!("page.css");
    const SCRIPT: &str = include_str!("page.js");
    let hash = |text: &str| {
        let digest = sha2::Sha256::digest(text.as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    let csp = format!(
        "default-src 'none'; img-src 'self' file: data:; style-src {}; script-src {}; base-uri 'none'; form-action 'none'",
        hash(STYLE),
        hash(SCRIPT)
    );
    // JSON inside <script>: nothing in it may close the element or open a comment.
    let json = serde_json::to_string(data)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    Ok(HTML
        .replace("{{CSP}}", &csp)
        .replace("{{STYLE}}", STYLE)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{DATA}}", &json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn data_cannot_close_the_script_element_and_the_policy_names_the_script() {
        let data = Data {
            attribute: "</script><script>alert(1)</script>".into(),
            images: 1,
            rows: Vec::new(),
            failed_count: 1,
            histogram: [0; 10],
            workers: Vec::new(),
            failed: vec![Failed {
                id: "<!--".into(),
                reason: "a & b \u{2028}".into(),
            }],
            classes: Vec::new(),
        };
        let html = page(&data).unwrap();
        let start = html.find("id=\"data\">").unwrap();
        let block = &html[start..html[start..].find("</script>").unwrap() + start];
        assert!(!block.contains("</") && !block.contains("<!--") && !block.contains('&'));
        let parsed: Value =
            serde_json::from_str(&block["id=\"data\">".len()..]).expect("still JSON");
        assert_eq!(parsed["attribute"], "</script><script>alert(1)</script>");
        assert_eq!(
            html.matches("<script").count(),
            2,
            "the data block and ours"
        );
        assert!(html.contains("script-src 'sha256-"));
    }
}
