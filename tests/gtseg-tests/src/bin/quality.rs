//! The weighted fusion's quality benchmark (`gtseg_tests::quality`): prints the table of
//! majority, weighted, STAPLE per image, STAPLE over the batch and label voting over every
//! crowd, mean (worst seed), and the crowds on which weighted misses its targets.
//!
//! `cargo run --release -p gtseg-tests --bin quality` (SimpleITK must be importable by
//! `python3`: `make tools` puts it in `.venv/`, so put `.venv/bin` first on the PATH).

#[tokio::main]
async fn main() {
    let root = gtseg_tests::temp_dir("quality");
    let (table, misses) = gtseg_tests::quality::anchor_table(&root, &[1, 2, 3, 4, 5]).await;
    println!("{table}");
    if misses.is_empty() {
        println!("The weighted fusion meets its targets on every crowd.");
    } else {
        println!(
            "Where the weighted fusion misses its targets:\n- {}",
            misses.join("\n- ")
        );
    }
}
