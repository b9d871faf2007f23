//! Rewrites `events/` from the code in `gtseg_tests::events`.
fn main() -> std::io::Result<()> {
    let root = gtseg_tests::workspace_root().join("events");
    gtseg_tests::events::write_sample_files(&root)?;
    println!("wrote {}", root.display());
    Ok(())
}
