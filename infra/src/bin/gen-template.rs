//! Writes `infra/template.yaml` from the code.

fn main() -> std::io::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml");
    std::fs::write(&path, livestream_infra::template_yaml())?;
    println!("wrote {}", path.display());
    Ok(())
}
